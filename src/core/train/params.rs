//! Trainable parameters with seeded initialisation.
//!
//! Models build themselves from a candle `VarBuilder`; each layer asks for its tensors with an
//! init hint (Kaiming-uniform weights, uniform biases, ones for norms). `VarMap` answers with
//! candle's generator, which cannot be seeded on the CPU, so this backend answers instead, drawing
//! every value from one xoshiro [`Rng`] in the order the model asks for them: the same seed and the
//! same architecture give the same starting weights on every run and device.

use crate::core::diffusion::Rng;
use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::Init;
use candle_nn::init::NormalOrUniform;
use candle_nn::var_builder::{SimpleBackend, VarBuilder};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use super::{Result, TrainError};

#[derive(Debug)]
struct Inner {
    vars: Mutex<BTreeMap<String, Var>>,
    rng: Mutex<Rng>,
}

/// The parameters of one model, keyed by their dotted names; cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct SeededParams {
    inner: Arc<Inner>,
}

impl SeededParams {
    pub fn new(seed: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                vars: Mutex::new(BTreeMap::new()),
                rng: Mutex::new(Rng::new(seed)),
            }),
        }
    }

    /// A builder whose missing tensors are created here (seeded) and whose existing ones are reused.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), dtype, device.clone())
    }

    /// `(name, var)` sorted by name.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let vars = self.inner.vars.lock().unwrap_or_else(PoisonError::into_inner);
        vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The vars in name order (what the optimiser updates).
    pub fn vars(&self) -> Vec<Var> {
        self.named_vars().into_iter().map(|(_, v)| v).collect()
    }

    /// Snapshot of the current values, sorted by name.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        self.named_vars()
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().copy().unwrap_or_else(|_| v.as_tensor().clone())))
            .collect()
    }

    /// Number of scalar parameters.
    pub fn count(&self) -> usize {
        self.named_vars().iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Overwrites every parameter with the tensor of the same name; a missing name or a shape
    /// mismatch is an error that names the tensor (nothing is changed then).
    pub fn load(&self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let vars = self.named_vars();
        for (name, var) in &vars {
            let t = tensors
                .get(name)
                .ok_or_else(|| TrainError::Invalid(format!("parameter {name} missing from the loaded tensors")))?;
            if t.dims() != var.dims() {
                return Err(TrainError::Invalid(format!(
                    "parameter {name}: expected shape {:?}, found {:?}",
                    var.dims(),
                    t.dims()
                )));
            }
        }
        for (name, var) in &vars {
            var.set(&tensors[name].to_dtype(var.dtype())?.to_device(var.device())?)?;
        }
        Ok(())
    }

    fn draw(&self, shape: &Shape, init: Init) -> Vec<f32> {
        let n = shape.elem_count();
        let mut rng = self.inner.rng.lock().unwrap_or_else(PoisonError::into_inner);
        let rng = &mut *rng;
        let uniform = |rng: &mut Rng, lo: f64, up: f64| -> Vec<f32> {
            (0..n).map(|_| (lo + (up - lo) * rng.uniform()) as f32).collect()
        };
        let normal = |rng: &mut Rng, mean: f64, std: f64| -> Vec<f32> {
            (0..n).map(|_| (mean + std * rng.normal()) as f32).collect()
        };
        match init {
            Init::Const(c) => vec![c as f32; n],
            Init::Uniform { lo, up } => uniform(rng, lo, up),
            Init::Randn { mean, stdev } => normal(rng, mean, stdev),
            Init::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                let std = non_linearity.gain() / (fan.for_shape(shape).max(1) as f64).sqrt();
                match dist {
                    NormalOrUniform::Uniform => uniform(rng, -3f64.sqrt() * std, 3f64.sqrt() * std),
                    NormalOrUniform::Normal => normal(rng, 0.0, std),
                }
            }
        }
    }
}

impl SimpleBackend for SeededParams {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        if let Some(var) = self.inner.vars.lock().unwrap_or_else(PoisonError::into_inner).get(name) {
            if var.shape() != &s {
                candle_core::bail!("shape mismatch on {name}: asked {s:?}, have {:?}", var.shape());
            }
            return Ok(var.as_tensor().clone());
        }
        let values = self.draw(&s, h);
        let t = Tensor::from_vec(values, s, &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(dev)?;
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        self.inner
            .vars
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> candle_core::Result<Tensor> {
        match self.inner.vars.lock().unwrap_or_else(PoisonError::into_inner).get(name) {
            Some(v) => Ok(v.as_tensor().clone()),
            None => candle_core::bail!("parameter {name} does not exist yet (its shape is needed to create it)"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner
            .vars
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(seed: u64) -> SeededParams {
        let p = SeededParams::new(seed);
        let vb = p.var_builder(DType::F32, &Device::Cpu);
        candle_nn::linear(8, 4, vb.pp("fc")).unwrap();
        candle_nn::layer_norm(4, 1e-5, vb.pp("ln")).unwrap();
        p
    }

    #[test]
    fn same_seed_same_weights_and_pytorch_bounds() {
        let (a, b, c) = (build(7), build(7), build(8));
        let flat = |p: &SeededParams| -> Vec<f32> {
            p.tensors()
                .iter()
                .flat_map(|(_, t)| t.flatten_all().unwrap().to_vec1::<f32>().unwrap())
                .collect()
        };
        assert_eq!(flat(&a), flat(&b));
        assert_ne!(flat(&a), flat(&c));
        let names: Vec<String> = a.named_vars().into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["fc.bias", "fc.weight", "ln.bias", "ln.weight"]);
        // candle's linear: Kaiming-normal weight (std √2/√fan_in = 0.5), bias uniform in ±1/√fan_in.
        let t: HashMap<_, _> = a.tensors().into_iter().collect();
        let w = t["fc.weight"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let std = (w.iter().map(|x| x * x).sum::<f32>() / w.len() as f32).sqrt();
        assert!((0.3..0.7).contains(&std), "{std}");
        let b = t["fc.bias"].to_vec1::<f32>().unwrap();
        assert!(b.iter().all(|x| x.abs() <= 1.0 / 8f32.sqrt()), "{b:?}");
        assert_eq!(t["ln.weight"].to_vec1::<f32>().unwrap(), vec![1.0; 4]);
        assert_eq!(a.count(), 8 * 4 + 4 + 4 + 4);
    }

    #[test]
    fn load_checks_names_and_shapes() {
        let a = build(1);
        let b = build(2);
        let mut t: HashMap<_, _> = b.tensors().into_iter().collect();
        a.load(&t).unwrap();
        assert_eq!(
            a.tensors()[1].1.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            t["fc.weight"].flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        t.insert(
            "fc.weight".into(),
            Tensor::zeros((3, 3), DType::F32, &Device::Cpu).unwrap(),
        );
        let e = a.load(&t).unwrap_err().to_string();
        assert!(e.contains("fc.weight") && e.contains("[4, 8]"), "{e}");
        t.remove("fc.weight");
        assert!(a.load(&t).unwrap_err().to_string().contains("missing"));
    }
}
