//! Seeded randomness of our own: xoshiro256** seeded through splitmix64, standard normals by the
//! Box–Muller transform, computed on the CPU in f64, rounded to f32 and then moved to the target device
//! and dtype. candle's CPU generator cannot be seeded (`Device::set_seed` fails on the CPU in candle
//! 0.11) and the CUDA/Metal ones differ from it, so samplers never use candle's random functions: the
//! same seed gives the same sample on every device and in every dtype.

use candle_core::{DType, Device, Tensor};

/// A source of standard normal noise for the samplers.
pub trait NoiseSource {
    /// A tensor of independent N(0, 1) values.
    fn randn(&mut self, shape: &[usize], dtype: DType, device: &Device) -> candle_core::Result<Tensor>;
}

/// xoshiro256** (Blackman & Vigna) with a splitmix64 seeder; normals by Box–Muller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
    spare: Option<u64>, // the second Box–Muller value, as f64 bits
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Self { s, spare: None }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal value.
    pub fn normal(&mut self) -> f64 {
        if let Some(bits) = self.spare.take() {
            return f64::from_bits(bits);
        }
        let u1 = 1.0 - self.uniform(); // (0, 1]: ln is finite
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
        self.spare = Some((r * s).to_bits());
        r * c
    }

    /// `n` standard normal values rounded to f32.
    pub fn normals_f32(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.normal() as f32).collect()
    }
}

impl NoiseSource for Rng {
    fn randn(&mut self, shape: &[usize], dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
        let n = shape.iter().product();
        Tensor::from_vec(self.normals_f32(n), shape, &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(device)
    }
}

/// One generator per batch item (like EDM's `StackedRandomGenerator`): item `i` of every drawn tensor
/// comes from the generator seeded with `seeds[i]`, so a sample does not depend on what else is in the
/// batch. Drawn tensors must have `seeds.len()` as their first dimension.
#[derive(Debug, Clone)]
pub struct BatchRng {
    items: Vec<Rng>,
}

impl BatchRng {
    pub fn new(seeds: &[u64]) -> Self {
        Self {
            items: seeds.iter().map(|&s| Rng::new(s)).collect(),
        }
    }
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl NoiseSource for BatchRng {
    fn randn(&mut self, shape: &[usize], dtype: DType, device: &Device) -> candle_core::Result<Tensor> {
        if shape.first() != Some(&self.items.len()) {
            candle_core::bail!(
                "BatchRng holds {} seeds but a tensor of shape {shape:?} was requested",
                self.items.len()
            );
        }
        let per_item: usize = shape[1..].iter().product();
        let mut data = Vec::with_capacity(per_item * self.items.len());
        for rng in &mut self.items {
            data.extend(rng.normals_f32(per_item));
        }
        Tensor::from_vec(data, shape, &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_and_xoshiro_reference_values() {
        // splitmix64 from seed 0: published first output 0xE220A8397B1DCDAF.
        let mut sm = 0u64;
        assert_eq!(splitmix64(&mut sm), 0xE220_A839_7B1D_CDAF);
        // xoshiro256** with state [1, 2, 3, 4]: first outputs 11520, 0, 1509978240, 1215971899390074240
        // (reference implementation by Blackman & Vigna).
        let mut r = Rng {
            s: [1, 2, 3, 4],
            spare: None,
        };
        let got: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
        assert_eq!(got, vec![11520, 0, 1509978240, 1215971899390074240]);
    }

    #[test]
    fn normals_have_unit_moments() {
        let mut r = Rng::new(7);
        let n = 200_000;
        let v: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.01, "var {var}");
        let u: Vec<f64> = (0..n).map(|_| r.uniform()).collect();
        assert!(u.iter().all(|&x| (0.0..1.0).contains(&x)));
    }

    #[test]
    fn batch_rng_items_do_not_depend_on_the_batch() {
        let mut a = BatchRng::new(&[3, 4]);
        let mut b = BatchRng::new(&[4]);
        let ta = a.randn(&[2, 5], DType::F32, &Device::Cpu).unwrap();
        let tb = b.randn(&[1, 5], DType::F32, &Device::Cpu).unwrap();
        let ra: Vec<Vec<f32>> = ta.to_vec2().unwrap();
        let rb: Vec<Vec<f32>> = tb.to_vec2().unwrap();
        assert_eq!(ra[1], rb[0]);
        assert!(a.randn(&[3, 5], DType::F32, &Device::Cpu).is_err());
    }
}
