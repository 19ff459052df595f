//! Noise schedules (β_t, ᾱ_t) and timestep respacing.
//!
//! Everything is f64, as improved-diffusion, PDAE and LDAE compute it in numpy before casting to f32.
//! A respaced schedule keeps a subset of the original timesteps: its ᾱ are the kept ᾱ and its betas are
//! re-derived as β'_i = 1 − ᾱ_{k_i}/ᾱ_{k_{i−1}} (improved-diffusion `SpacedDiffusion`); the network is
//! still called with the original timestep `k_i` ([`Schedule::model_timestep`]).

use super::{Result, invalid};

/// How the betas of a training schedule are laid out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BetaSchedule {
    /// `linspace(start, end, T)` (DDPM: 1e-4 → 0.02 at T = 1000).
    Linear { start: f64, end: f64 },
    /// Stable Diffusion's `linspace(√start, √end, T)²` (0.00085 → 0.012).
    ScaledLinear { start: f64, end: f64 },
    /// Nichol & Dhariwal's cosine ᾱ(t) = cos²((t/T + 0.008)/1.008 · π/2), β capped at `max_beta` (0.999).
    Cosine { max_beta: f64 },
}

/// A discrete diffusion schedule, possibly respaced.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    betas: Vec<f64>,
    alphas_cumprod: Vec<f64>,
    /// Original timestep of each entry (identity unless respaced).
    timestep_map: Vec<usize>,
    /// Number of steps of the schedule the model was trained on.
    original_num_steps: usize,
    /// improved-diffusion's `rescale_timesteps`: the model sees `k · 1000 / T` instead of `k`.
    rescale_timesteps: bool,
}

/// numpy's `linspace(start, stop, n)` (endpoint included): `start + i·step`, last value exactly `stop`.
pub fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    match n {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (stop - start) / (n - 1) as f64;
            let mut v: Vec<f64> = (0..n).map(|i| i as f64 * step + start).collect();
            v[n - 1] = stop;
            v
        }
    }
}

impl Schedule {
    /// A schedule of `num_steps` betas of the given layout.
    pub fn new(kind: BetaSchedule, num_steps: usize) -> Result<Self> {
        let betas = match kind {
            BetaSchedule::Linear { start, end } => linspace(start, end, num_steps),
            BetaSchedule::ScaledLinear { start, end } => linspace(start.sqrt(), end.sqrt(), num_steps)
                .into_iter()
                .map(|b| b * b)
                .collect(),
            BetaSchedule::Cosine { max_beta } => {
                let abar = |t: f64| ((t + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2).cos().powi(2);
                let n = num_steps as f64;
                (0..num_steps)
                    .map(|i| (1.0 - abar((i + 1) as f64 / n) / abar(i as f64 / n)).min(max_beta))
                    .collect()
            }
        };
        Self::from_betas(betas)
    }

    /// DDPM's linear schedule 1e-4 → 0.02 (LDAE, PDAE: T = 1000).
    pub fn linear(num_steps: usize, start: f64, end: f64) -> Result<Self> {
        Self::new(BetaSchedule::Linear { start, end }, num_steps)
    }

    /// improved-diffusion's named "linear": 1e-4 → 0.02 scaled by 1000/T, so any T matches T = 1000.
    pub fn improved_linear(num_steps: usize) -> Result<Self> {
        if num_steps == 0 {
            return invalid("a schedule needs at least one step");
        }
        let scale = 1000.0 / num_steps as f64;
        Self::linear(num_steps, scale * 0.0001, scale * 0.02)
    }

    /// Nichol & Dhariwal's cosine schedule with max β 0.999.
    pub fn cosine(num_steps: usize) -> Result<Self> {
        Self::new(BetaSchedule::Cosine { max_beta: 0.999 }, num_steps)
    }

    /// Stable Diffusion's scaled-linear schedule.
    pub fn scaled_linear(num_steps: usize, start: f64, end: f64) -> Result<Self> {
        Self::new(BetaSchedule::ScaledLinear { start, end }, num_steps)
    }

    /// improved-diffusion's `get_named_beta_schedule` names ("linear", "cosine"), plus diffusers'
    /// "scaled_linear" (0.00085 → 0.012) and "squaredcos_cap_v2" (= cosine).
    pub fn named(name: &str, num_steps: usize) -> Result<Self> {
        match name {
            "linear" => Self::improved_linear(num_steps),
            "cosine" | "squaredcos_cap_v2" => Self::cosine(num_steps),
            "scaled_linear" => Self::scaled_linear(num_steps, 0.00085, 0.012),
            other => invalid(format!("unknown beta schedule {other:?}")),
        }
    }

    /// A schedule from explicit betas, each in (0, 1].
    pub fn from_betas(betas: Vec<f64>) -> Result<Self> {
        if betas.is_empty() {
            return invalid("a schedule needs at least one step");
        }
        if let Some(b) = betas.iter().find(|b| !(**b > 0.0 && **b <= 1.0)) {
            return invalid(format!("beta {b} is outside (0, 1]"));
        }
        let mut acc = 1.0;
        let alphas_cumprod = betas
            .iter()
            .map(|b| {
                acc *= 1.0 - b;
                acc
            })
            .collect();
        let n = betas.len();
        Ok(Self {
            betas,
            alphas_cumprod,
            timestep_map: (0..n).collect(),
            original_num_steps: n,
            rescale_timesteps: false,
        })
    }

    /// Number of entries (steps) of this schedule.
    pub fn len(&self) -> usize {
        self.betas.len()
    }
    pub fn is_empty(&self) -> bool {
        self.betas.is_empty()
    }
    pub fn betas(&self) -> &[f64] {
        &self.betas
    }
    pub fn alphas_cumprod(&self) -> &[f64] {
        &self.alphas_cumprod
    }
    /// `(√ᾱ, √(1−ᾱ))` of every entry in f32: what a trainer noises with,
    /// `x_t = √ᾱ_t·x₀ + √(1−ᾱ_t)·ε`.
    pub fn noising_coefficients(&self) -> (Vec<f32>, Vec<f32>) {
        self.alphas_cumprod
            .iter()
            .map(|a| (a.sqrt() as f32, (1.0 - a).sqrt() as f32))
            .unzip()
    }
    /// ᾱ of entry `i`.
    pub fn alpha_cumprod(&self, i: usize) -> f64 {
        self.alphas_cumprod[i]
    }
    /// ᾱ of the entry before `i`, 1.0 before the first (improved-diffusion's `alphas_cumprod_prev`).
    pub fn alpha_cumprod_prev(&self, i: usize) -> f64 {
        if i == 0 { 1.0 } else { self.alphas_cumprod[i - 1] }
    }
    /// The original timestep of each entry.
    pub fn timestep_map(&self) -> &[usize] {
        &self.timestep_map
    }
    pub fn original_num_steps(&self) -> usize {
        self.original_num_steps
    }

    /// The timestep value the network sees for entry `i`: the original timestep, times 1000/T when
    /// [`Schedule::with_rescaled_timesteps`] is set.
    pub fn model_timestep(&self, i: usize) -> f64 {
        let t = self.timestep_map[i] as f64;
        if self.rescale_timesteps {
            t * 1000.0 / self.original_num_steps as f64
        } else {
            t
        }
    }

    /// improved-diffusion's `rescale_timesteps=True`.
    pub fn with_rescaled_timesteps(mut self, rescale: bool) -> Self {
        self.rescale_timesteps = rescale;
        self
    }

    /// Keeps the entries whose *current* index is in `keep` (any order, duplicates ignored) and re-derives
    /// their betas from ᾱ. Respacing a respaced schedule composes the timestep maps.
    pub fn respace(&self, keep: &[usize]) -> Result<Self> {
        let mut keep: Vec<usize> = keep.to_vec();
        keep.sort_unstable();
        keep.dedup();
        if keep.is_empty() {
            return invalid("respacing keeps no timestep");
        }
        if let Some(&k) = keep.iter().find(|&&k| k >= self.len()) {
            return invalid(format!("timestep {k} is outside a schedule of {} steps", self.len()));
        }
        let mut last = 1.0;
        let mut betas = Vec::with_capacity(keep.len());
        for &k in &keep {
            let ac = self.alphas_cumprod[k];
            betas.push(1.0 - ac / last);
            last = ac;
        }
        Ok(Self {
            betas,
            alphas_cumprod: keep.iter().map(|&k| self.alphas_cumprod[k]).collect(),
            timestep_map: keep.iter().map(|&k| self.timestep_map[k]).collect(),
            original_num_steps: self.original_num_steps,
            rescale_timesteps: self.rescale_timesteps,
        })
    }

    /// [`Schedule::respace`] with improved-diffusion's `space_timesteps(len, spec)` ("ddimN" or section
    /// counts such as "250" or "10,15,20").
    pub fn respaced(&self, spec: &str) -> Result<Self> {
        self.respace(&space_timesteps(self.len(), spec)?)
    }
}

/// improved-diffusion / guided-diffusion `space_timesteps`, ascending.
///
/// - `"ddimN"`: the smallest integer stride whose `range(0, T, stride)` has exactly N elements.
/// - `"a,b,c"` (or a single count): T is cut into that many nearly equal sections (the first `T mod k`
///   one step longer); section i keeps `counts[i]` steps evenly spaced over it, positions accumulated by
///   repeated addition of `(size − 1)/(count − 1)` and rounded half-to-even, as Python's `round`.
///   E.g. "5" of 1000 → {0, 250, 500, 749, 999} (WaLa).
pub fn space_timesteps(num_timesteps: usize, spec: &str) -> Result<Vec<usize>> {
    let spec = spec.trim();
    if let Some(n) = spec.strip_prefix("ddim") {
        let want: usize = n
            .trim()
            .parse()
            .map_err(|_| super::DiffusionError::Invalid(format!("bad step count in {spec:?}")))?;
        for stride in 1..num_timesteps {
            if num_timesteps.div_ceil(stride) == want {
                return Ok((0..num_timesteps).step_by(stride).collect());
            }
        }
        return invalid(format!(
            "cannot create exactly {want} steps from {num_timesteps} with an integer stride"
        ));
    }
    let counts: Vec<usize> = spec
        .split(',')
        .map(|c| c.trim().parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| super::DiffusionError::Invalid(format!("bad section counts {spec:?}")))?;
    if counts.is_empty() || num_timesteps < counts.len() {
        return invalid(format!("cannot split {num_timesteps} steps into sections {spec:?}"));
    }
    let size_per = num_timesteps / counts.len();
    let extra = num_timesteps % counts.len();
    let mut start = 0usize;
    let mut kept = Vec::new();
    for (i, &count) in counts.iter().enumerate() {
        let size = size_per + usize::from(i < extra);
        if size < count {
            return invalid(format!("cannot divide a section of {size} steps into {count}"));
        }
        let stride = if count <= 1 {
            1.0
        } else {
            (size - 1) as f64 / (count - 1) as f64
        };
        let mut pos = 0.0f64;
        for _ in 0..count {
            kept.push(start + pos.round_ties_even() as usize);
            pos += stride;
        }
        start += size;
    }
    kept.sort_unstable();
    kept.dedup();
    Ok(kept)
}

/// PDAE's "ddimS": improved-diffusion's stride set for S steps plus the last timestep T−1
/// (S = 100 of 1000 → 0, 10, …, 990, 999: S + 1 entries).
pub fn pdae_timesteps(num_timesteps: usize, steps: usize) -> Result<Vec<usize>> {
    let mut kept = space_timesteps(num_timesteps, &format!("ddim{steps}"))?;
    if kept.last() != Some(&(num_timesteps - 1)) {
        kept.push(num_timesteps - 1);
    }
    Ok(kept)
}

/// LDAE's "ddimS" (`get_ddim_betas_and_timestep_map`): `{int(v) for v in linspace(0, T−1, S+1)}`
/// (S = 100 of 1000 → 0, 9, 19, …, 989, 999). Entry 0 is the clean latent's state: inversion runs
/// entries 0 → S, sampling S → 0 and returns the state of entry 0 (see [`super::End::Index`]).
pub fn ldae_timesteps(num_timesteps: usize, steps: usize) -> Vec<usize> {
    let mut kept: Vec<usize> = linspace(0.0, (num_timesteps - 1) as f64, steps + 1)
        .into_iter()
        .map(|v| v as usize)
        .collect();
    kept.dedup();
    kept
}

/// diffusers' "leading" spacing (`DDIMScheduler`/`DDPMScheduler` default): `k · (T / n) + offset`,
/// ascending. With offset 0 this equals `space_timesteps(T, "ddimN")` whenever n divides T.
pub fn leading_timesteps(num_timesteps: usize, n: usize, offset: usize) -> Vec<usize> {
    let ratio = num_timesteps / n.max(1);
    (0..n).map(|k| k * ratio + offset).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wala_five_steps() {
        assert_eq!(space_timesteps(1000, "5").unwrap(), vec![0, 250, 500, 749, 999]);
        assert_eq!(space_timesteps(1000, "ddim50").unwrap().len(), 50);
        assert!(space_timesteps(10, "ddim7").is_err());
        assert!(space_timesteps(10, "4,20").is_err());
        assert!(space_timesteps(10, "x").is_err());
    }

    #[test]
    fn respacing_keeps_alpha_cumprod_and_recomputes_betas() {
        let s = Schedule::linear(1000, 1e-4, 0.02).unwrap();
        let r = s.respaced("ddim10").unwrap();
        assert_eq!(r.timestep_map(), &[0, 100, 200, 300, 400, 500, 600, 700, 800, 900]);
        let mut acc = 1.0;
        for (i, b) in r.betas().iter().enumerate() {
            acc *= 1.0 - b;
            assert!((acc - s.alpha_cumprod(r.timestep_map()[i])).abs() < 1e-12);
        }
        let rr = r.respace(&[0, 5, 9]).unwrap();
        assert_eq!(rr.timestep_map(), &[0, 500, 900]);
        assert_eq!(rr.model_timestep(2), 900.0);
        assert_eq!(
            Schedule::improved_linear(250)
                .unwrap()
                .with_rescaled_timesteps(true)
                .model_timestep(1),
            4.0
        );
    }

    #[test]
    fn ldae_and_pdae_spacings() {
        let l = ldae_timesteps(1000, 100);
        assert_eq!(l.len(), 101);
        assert_eq!(&l[..3], &[0, 9, 19]);
        assert_eq!(&l[99..], &[989, 999]);
        let p = pdae_timesteps(1000, 100).unwrap();
        assert_eq!(p.len(), 101);
        assert_eq!(&p[99..], &[990, 999]);
        assert_eq!(leading_timesteps(1000, 20, 0), space_timesteps(1000, "ddim20").unwrap());
    }
}
