//! A synthetic longitudinal brain-MRI cohort built on the MNI152 2009 template (T1 plus its grey-
//! and white-matter maps), for training and testing the demo LDAE. **Every scan is synthetic**:
//! one template deformed and re-shaded, not a real subject.
//!
//! Each subject gets, once:
//! - an anatomy: a per-axis scale of 0.95–1.05 about the template centre plus a smooth random
//!   displacement (per axis, a sum of [`WARP_WAVES`] plane waves of 90–200 mm wavelength, about
//!   2 mm rms, a few mm at most);
//! - a contrast: grey matter, white matter and CSF means each varied around the template's
//!   (the template is split into `tissue mixture + residual detail`, and the mixture re-shaded);
//! - a scanner: global gain, a smooth multiplicative bias field (exp of plane waves of
//!   150–300 mm wavelength, about ±10 %) and a Rician noise level (σ 0.008–0.025).
//!
//! Each visit (months [`MONTHS`]) adds atrophy that grows with age and with a disease factor
//! (CN 0–0.2, MCI 0.35–0.65, AD 0.7–1.0), see [`Subject::atrophy`]:
//! - ventricles and CSF expand: tissue is pushed away from CSF along the gradient of a smoothed
//!   CSF map (CSF = 1 − GM − WM inside the brain), integrated in small steps so the map stays
//!   one-to-one. The ventricular part (CSF inside the ellipsoid [`VENTRICLE_CENTER_MM`] ±
//!   [`VENTRICLE_SEMI_AXES_MM`]) and the sulcal part have separate rates;
//! - grey matter thins: a fraction of each voxel's grey-matter partial volume turns into CSF;
//! - each hippocampal region (ellipsoids at [`HIPPOCAMPUS_CENTERS_MM`] ± [`HIPPOCAMPUS_SEMI_AXES_MM`],
//!   in MNI mm; template voxels (46.7, 73.3, 40.0) and (84.0, 73.3, 40.0) ± (4.7, 11.3, 6.0) on
//!   the 1.5 mm grid) contracts towards its centre and loses extra grey matter, faster with disease.
//!
//! The rates are exaggerated two to three times over published ones so that two years of change
//! shows at 3 mm. Intensities end in [0, 1] (white matter near 0.75), background 0 (skull-stripped
//! like LDAE's inputs), quantised to 1/4096. Everything follows from the seed: subject `i` depends
//! only on `(seed, i)`, voxel noise on `(seed, i, month, voxel)`, whatever the thread count.

use super::warp::{self, Corners};
use crate::core::Volume;
use crate::core::diffusion::Rng;
use crate::core::jobs::JobContext;
use crate::core::volume::{Affine, compose, invert};
use rayon::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Visit months.
pub const MONTHS: [u32; 5] = [0, 6, 12, 18, 24];
/// Region whose CSF counts as ventricular (MNI mm): lateral and third ventricles.
pub const VENTRICLE_CENTER_MM: [f32; 3] = [0.0, -10.0, 12.0];
pub const VENTRICLE_SEMI_AXES_MM: [f32; 3] = [30.0, 45.0, 25.0];
/// Left and right hippocampal regions (MNI mm).
pub const HIPPOCAMPUS_CENTERS_MM: [[f32; 3]; 2] = [[-28.0, -24.0, -12.0], [28.0, -24.0, -12.0]];
pub const HIPPOCAMPUS_SEMI_AXES_MM: [f32; 3] = [7.0, 17.0, 9.0];
/// The contraction fades to zero at this multiple of the hippocampal ellipsoid's radii, so the
/// surrounding tissue follows smoothly (and the map stays one-to-one for contractions below 1.25).
const HIPPOCAMPUS_REACH: f32 = 1.5;
/// Extra grey-matter loss at the hippocampal centre per unit of contraction.
const HIPPOCAMPUS_GM_LOSS: f32 = 0.5;
/// Plane waves per displacement component.
pub const WARP_WAVES: usize = 4;
const BIAS_WAVES: usize = 4;
/// Output intensity of the template's white-matter mean before gain and bias.
const WHITE_MATTER_LEVEL: f32 = 0.75;
/// Output values are multiples of 1/QUANTUM (like a scanner's integer range; compresses well).
const QUANTUM: f32 = 4096.0;
/// Largest flow step when pushing tissue away from CSF (mm); small steps keep the map one-to-one.
const FLOW_STEP_MM: f32 = 0.5;
/// Smoothing of the CSF maps whose gradients drive the expansion (mm).
const VENTRICLE_SMOOTH_MM: f32 = 3.0;
const SULCAL_SMOOTH_MM: f32 = 2.0;
/// A voxel counts as CSF in [`ventricle_csf_ml`] below this fraction of the scan's 90th
/// brain-intensity percentile (white matter), so gain and bias drifts do not move the measure.
pub const CSF_FRACTION_OF_WHITE: f32 = 0.45;

#[derive(Debug, thiserror::Error)]
pub enum CohortError {
    #[error("template maps: {0}")]
    Template(String),
    #[error("output grid: {0}")]
    Grid(String),
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Sink(String),
}

/// The template: T1 intensities, and grey- and white-matter probabilities (0–1, or 0–255 as the
/// shipped uint8 maps store them) on one grid.
#[derive(Clone, Copy, Debug)]
pub struct TemplateMaps<'a> {
    pub t1: &'a Volume,
    pub gm: &'a Volume,
    pub wm: &'a Volume,
}

/// Where the scans are written.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GridSpec {
    /// The template's own grid (131×155×126 at 1.5 mm for the shipped maps).
    Template,
    /// LDAE's input grid: 128×160×128 at 1.5 mm, padded/cropped about the centre as MONAI's
    /// `ResizeWithPadOrCrop` does.
    Ldae,
    /// The demo model's grid: LDAE's box at 3 mm, 64×80×64.
    Demo,
    /// Any box centred like [`GridSpec::Ldae`].
    Custom { dims: [usize; 3], spacing_mm: f32 },
}

impl GridSpec {
    fn dims_spacing(self, template_dims: [usize; 3], template_mm: f32) -> ([usize; 3], f32) {
        match self {
            GridSpec::Template => (template_dims, template_mm),
            GridSpec::Ldae => ([128, 160, 128], 1.5),
            GridSpec::Demo => ([64, 80, 64], 3.0),
            GridSpec::Custom { dims, spacing_mm } => (dims, spacing_mm),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Diagnosis {
    Cn,
    Mci,
    Ad,
}

impl Diagnosis {
    pub fn as_str(self) -> &'static str {
        match self {
            Diagnosis::Cn => "CN",
            Diagnosis::Mci => "MCI",
            Diagnosis::Ad => "AD",
        }
    }
}

/// How far atrophy has gone at one visit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Atrophy {
    /// Push of tissue away from ventricular CSF (mm at the steepest CSF edge).
    pub ventricle_mm: f32,
    /// Push away from sulcal CSF (mm).
    pub sulcal_mm: f32,
    /// Fraction of grey-matter partial volume turned into CSF.
    pub gm_loss: f32,
    /// Relative contraction of the hippocampal regions (0.1: sampled 10 % further out, so the
    /// region shows about 9 % smaller per axis).
    pub hippocampus: f32,
}

/// One plane wave `amp · sin(k · x + phase)`, `x` in mm.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Wave {
    k: [f32; 3],
    phase: f32,
    amp: f32,
}

impl Wave {
    fn random(rng: &mut Rng, wavelength_mm: (f64, f64), amp_sd: f64) -> Self {
        // Uniform direction on the sphere from three normals.
        let mut d = [rng.normal(), rng.normal(), rng.normal()];
        let n = d.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-9);
        let lambda = wavelength_mm.0 + (wavelength_mm.1 - wavelength_mm.0) * rng.uniform();
        let k = std::f64::consts::TAU / lambda;
        for v in &mut d {
            *v *= k / n;
        }
        Self {
            k: d.map(|v| v as f32),
            phase: (std::f64::consts::TAU * rng.uniform()) as f32,
            amp: (amp_sd * rng.normal()) as f32,
        }
    }
    #[inline]
    fn at(&self, x: [f32; 3]) -> f32 {
        self.amp * (self.k[0] * x[0] + self.k[1] * x[1] + self.k[2] * x[2] + self.phase).sin()
    }
}

/// A subject's fixed traits: anatomy, contrast and scanner.
#[derive(Clone, Debug, PartialEq)]
struct Traits {
    scale: [f32; 3],
    warp: [[Wave; WARP_WAVES]; 3],
    /// Multipliers of the template's grey-matter, white-matter and CSF means.
    tissue_gain: [f32; 3],
    gain: f32,
    noise_sd: f32,
    bias: [Wave; BIAS_WAVES],
}

/// One synthetic subject.
#[derive(Clone, Debug, PartialEq)]
pub struct Subject {
    /// `sub-000`, `sub-001`, …
    pub id: String,
    pub index: usize,
    pub baseline_age: f32,
    pub diagnosis: Diagnosis,
    pub disease_factor: f32,
    seed: u64,
    traits: Traits,
}

/// splitmix64 finaliser of `a` combined with `b`: independent streams per subject and visit.
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(0x632B_E59B_D9B4_E019);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Subject {
    /// Subject `index` of the cohort drawn from `seed`. Diagnoses cycle CN, MCI, AD so any
    /// cohort of 3k subjects is balanced.
    pub fn new(seed: u64, index: usize) -> Self {
        let seed = mix(seed, index as u64);
        let mut rng = Rng::new(seed);
        let diagnosis = [Diagnosis::Cn, Diagnosis::Mci, Diagnosis::Ad][index % 3];
        let (age_lo, age_hi, df_lo, df_hi) = match diagnosis {
            Diagnosis::Cn => (60.0, 80.0, 0.0, 0.2),
            Diagnosis::Mci => (62.0, 84.0, 0.35, 0.65),
            Diagnosis::Ad => (64.0, 88.0, 0.7, 1.0),
        };
        let baseline_age = (age_lo + (age_hi - age_lo) * rng.uniform()) as f32;
        let disease_factor = (df_lo + (df_hi - df_lo) * rng.uniform()) as f32;
        let mut uniform = |lo: f64, hi: f64| (lo + (hi - lo) * rng.uniform()) as f32;
        let head = uniform(0.96, 1.04);
        let scale = [0; 3].map(|_| head * uniform(0.985, 1.015));
        let tissue_gain = [uniform(0.94, 1.06), uniform(0.96, 1.04), uniform(0.7, 1.3)];
        let gain = uniform(0.9, 1.1);
        let noise_sd = uniform(0.008, 0.025);
        let warp = [0; 3].map(|_| [0; WARP_WAVES].map(|_| Wave::random(&mut rng, (90.0, 200.0), 1.0)));
        let bias = [0; BIAS_WAVES].map(|_| Wave::random(&mut rng, (150.0, 300.0), 0.05));
        Self {
            id: format!("sub-{index:03}"),
            index,
            baseline_age,
            diagnosis,
            disease_factor,
            seed,
            traits: Traits {
                scale,
                warp,
                tissue_gain,
                gain,
                noise_sd,
                bias,
            },
        }
    }

    /// Age in years at a visit.
    pub fn age_at(&self, month: u32) -> f32 {
        self.baseline_age + month as f32 / 12.0
    }

    /// Atrophy at a visit: an age term (from 55 years on) plus a disease term that is present at
    /// baseline and grows with time since baseline, each rate higher with the disease factor.
    pub fn atrophy(&self, month: u32) -> Atrophy {
        let a = (self.age_at(month) - 55.0).max(0.0);
        let d = self.disease_factor;
        let years = month as f32 / 12.0;
        Atrophy {
            ventricle_mm: 0.04 * a + 1.5 * d + (0.05 + 1.3 * d) * years,
            sulcal_mm: 0.02 * a + 0.5 * d + (0.03 + 0.35 * d) * years,
            gm_loss: (0.003 * a + 0.06 * d + (0.002 + 0.04 * d) * years).min(0.6),
            hippocampus: (0.002 * a + 0.08 * d + (0.004 + 0.05 * d) * years).min(0.4),
        }
    }
}

/// The cohort's subjects for a seed.
pub fn subjects(seed: u64, count: usize) -> Vec<Subject> {
    (0..count).map(|i| Subject::new(seed, i)).collect()
}

/// One scan as the cohort table lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct ScanRecord {
    pub subject: String,
    pub month: u32,
    pub age: f32,
    pub diagnosis: Diagnosis,
    pub disease_factor: f32,
}

/// BIDS-like file name of a scan (LDAE reads the month from `ses-Mxx`).
pub fn scan_file_name(subject: &str, month: u32) -> String {
    format!("{subject}_ses-M{month:02}_T1w.nii.gz")
}

/// Mean template intensity of (nearly) pure grey matter, white matter and CSF.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TissueMeans {
    pub gm: f32,
    pub wm: f32,
    pub csf: f32,
}

/// The template digested for one output grid: what every scan samples.
pub struct Prepared {
    template_dims: [usize; 3],
    /// Per template voxel: grey matter, white matter, CSF, residual T1 detail, brain mask;
    /// pre-smoothed against aliasing when the output grid is coarser.
    maps: Vec<[f32; 5]>,
    /// Per template voxel: unit-scaled ventricular push (3) then sulcal push (3), in voxels.
    push: Vec<[f32; 6]>,
    pub means: TissueMeans,
    /// Template voxel ↔ world mm (MNI), as f32 rows.
    world_from_tvox: [[f32; 4]; 3],
    tvox_from_world: [[f32; 4]; 3],
    /// Scanner-space centre for scaling (world mm).
    centre_mm: [f32; 3],
    out_dims: [usize; 3],
    out_spacing_mm: f32,
    /// Output voxel j sits at template voxel `origin + j · step`.
    origin: [f32; 3],
    step: f32,
    out_affine: Affine,
}

#[inline]
fn affine_apply(a: &[[f32; 4]; 3], p: [f32; 3]) -> [f32; 3] {
    std::array::from_fn(|r| a[r][0] * p[0] + a[r][1] * p[1] + a[r][2] * p[2] + a[r][3])
}

fn to_f32_rows(a: &Affine) -> [[f32; 4]; 3] {
    std::array::from_fn(|r| std::array::from_fn(|c| a[r][c] as f32))
}

/// Where a MONAI centre pad/crop of `n` voxels to `m` starts, in input voxels.
fn pad_or_crop_start(n: usize, m: usize) -> f32 {
    if m >= n {
        -(((m - n) / 2) as f32)
    } else {
        (n / 2) as f32 - (m / 2) as f32
    }
}

/// Reduces a 0–255 probability map to 0–1.
fn probabilities(v: &Volume) -> Vec<f32> {
    let max = v.data().iter().copied().fold(0.0f32, f32::max);
    let scale = if max > 1.5 { 1.0 / 255.0 } else { 1.0 };
    v.data().iter().map(|&x| (x * scale).clamp(0.0, 1.0)).collect()
}

fn mean_where(values: &[f32], weight: &[f32], min: f32) -> Option<f32> {
    let (sum, n) = values
        .iter()
        .zip(weight)
        .filter(|(_, w)| **w > min)
        .fold((0.0f64, 0usize), |(s, n), (v, _)| (s + f64::from(*v), n + 1));
    (n > 0).then(|| (sum / n as f64) as f32)
}

/// Gradient of `map` smoothed by `sigma_mm`, in voxels per unit push, scaled so its 99.5th
/// percentile magnitude inside the brain is 1 and capped there (one sharp edge must not set the
/// scale for the rest).
fn push_field(map: &[f32], dims: [usize; 3], mm: f32, sigma_mm: f32, mask: &[f32]) -> [Vec<f32>; 3] {
    let s = warp::smooth(map, dims, sigma_mm / mm);
    let mut g = warp::gradient(&s, dims, mm);
    let mut mags: Vec<f32> = (0..map.len())
        .filter(|&i| mask[i] > 0.5)
        .map(|i| (g[0][i] * g[0][i] + g[1][i] * g[1][i] + g[2][i] * g[2][i]).sqrt())
        .collect();
    let scale = if mags.is_empty() {
        1.0
    } else {
        let k = (mags.len() - 1) * 995 / 1000;
        let (_, q, _) = mags.select_nth_unstable_by(k, f32::total_cmp);
        if *q > 0.0 { 1.0 / *q } else { 1.0 }
    };
    // One mm of push is 1/mm voxels.
    let to_vox = scale / mm;
    for i in 0..map.len() {
        let m = (g[0][i] * g[0][i] + g[1][i] * g[1][i] + g[2][i] * g[2][i]).sqrt() * scale;
        let cap = if m > 1.0 { 1.0 / m } else { 1.0 };
        for c in &mut g {
            c[i] *= to_vox * cap;
        }
    }
    g
}

/// Digests the template for scans on `grid`.
/// [`prepare`] on three decoded maps (e.g. `io::demo_assets::template_volumes`).
pub fn prepare_maps(t1: &Volume, gm: &Volume, wm: &Volume, grid: GridSpec) -> Result<Prepared, CohortError> {
    prepare(TemplateMaps { t1, gm, wm }, grid)
}

pub fn prepare(t: TemplateMaps<'_>, grid: GridSpec) -> Result<Prepared, CohortError> {
    let dims = t.t1.dims();
    for (name, v) in [("grey-matter", t.gm), ("white-matter", t.wm)] {
        if v.dims() != dims {
            return Err(CohortError::Template(format!(
                "the {name} map is {:?} but the T1 is {dims:?}",
                v.dims()
            )));
        }
        let same =
            (0..3).all(|r| (0..4).all(|c| (v.world_from_voxel()[r][c] - t.t1.world_from_voxel()[r][c]).abs() < 1e-3));
        if !same {
            return Err(CohortError::Template(format!(
                "the {name} map's affine differs from the T1's"
            )));
        }
    }
    let sp = t.t1.spacing_mm();
    let mm = sp[0];
    if !mm.is_finite() || mm <= 0.0 || sp.iter().any(|s| (s - mm).abs() > 1e-3 * mm) {
        return Err(CohortError::Template(format!("needs isotropic voxels, got {sp:?} mm")));
    }
    let tvox_from_world =
        invert(t.t1.world_from_voxel()).ok_or_else(|| CohortError::Template("the affine is singular".into()))?;
    let (out_dims, out_spacing_mm) = grid.dims_spacing(dims, mm);
    if out_dims.contains(&0) || !out_spacing_mm.is_finite() || out_spacing_mm <= 0.0 {
        return Err(CohortError::Grid(format!("{out_dims:?} at {out_spacing_mm} mm")));
    }
    let step = out_spacing_mm / mm;
    let origin: [f32; 3] = std::array::from_fn(|a| {
        let extent = out_dims[a] as f32 * step;
        if (extent - extent.round()).abs() < 1e-4 {
            // MONAI's integer pad/crop, then the centre of each coarse voxel's block.
            pad_or_crop_start(dims[a], extent.round() as usize) + (step - 1.0) / 2.0
        } else {
            (dims[a] as f32 - 1.0) / 2.0 - (out_dims[a] as f32 - 1.0) / 2.0 * step
        }
    });
    let mut vox_map = crate::core::volume::IDENTITY;
    for a in 0..3 {
        vox_map[a][a] = f64::from(step);
        vox_map[a][3] = f64::from(origin[a]);
    }
    let out_affine = compose(t.t1.world_from_voxel(), &vox_map);

    let t1 = t.t1.data();
    let t1_max = t1.iter().copied().fold(0.0f32, f32::max);
    let mask: Vec<f32> = t1.iter().map(|&v| f32::from(u8::from(v > 0.01 * t1_max))).collect();
    let gm = probabilities(t.gm);
    let wm = probabilities(t.wm);
    // CSF also outside the template's mask: tissue that atrophy pulls inwards leaves CSF behind,
    // and the skull-strip mask (sampled before atrophy) keeps the intracranial volume fixed.
    let csf: Vec<f32> = (0..t1.len()).map(|i| (1.0 - gm[i] - wm[i]).max(0.0)).collect();
    let csf_in: Vec<f32> = csf.iter().zip(&mask).map(|(c, m)| c * m).collect();
    let missing = |tissue: &str| CohortError::Template(format!("no voxel is mostly {tissue}"));
    let means = TissueMeans {
        gm: mean_where(t1, &gm, 0.9).ok_or_else(|| missing("grey matter"))?,
        wm: mean_where(t1, &wm, 0.9).ok_or_else(|| missing("white matter"))?,
        csf: mean_where(t1, &csf_in, 0.9).ok_or_else(|| missing("CSF"))?,
    };
    let residual: Vec<f32> = (0..t1.len())
        .map(|i| mask[i] * (t1[i] - gm[i] * means.gm - wm[i] * means.wm - csf[i] * means.csf))
        .collect();

    let world_from_tvox = to_f32_rows(t.t1.world_from_voxel());
    let ventricle_weight: Vec<f32> = (0..t1.len())
        .map(|i| {
            let (x, y, z) = (i % dims[0], (i / dims[0]) % dims[1], i / (dims[0] * dims[1]));
            let w = affine_apply(&world_from_tvox, [x as f32, y as f32, z as f32]);
            let r = (0..3)
                .map(|a| ((w[a] - VENTRICLE_CENTER_MM[a]) / VENTRICLE_SEMI_AXES_MM[a]).powi(2))
                .sum::<f32>()
                .sqrt();
            // 1 inside, fading to 0 over the outer 30 % of the radius.
            ((1.3 - r) / 0.3).clamp(0.0, 1.0)
        })
        .collect();
    let vent: Vec<f32> = csf_in.iter().zip(&ventricle_weight).map(|(c, w)| c * w).collect();
    let sulci: Vec<f32> = csf_in
        .iter()
        .zip(&ventricle_weight)
        .map(|(c, w)| c * (1.0 - w))
        .collect();
    let gv = push_field(&vent, dims, mm, VENTRICLE_SMOOTH_MM, &mask);
    let gs = push_field(&sulci, dims, mm, SULCAL_SMOOTH_MM, &mask);
    let push = (0..t1.len())
        .map(|i| [gv[0][i], gv[1][i], gv[2][i], gs[0][i], gs[1][i], gs[2][i]])
        .collect();

    // Anti-aliasing for coarser output grids (a 2× block average is close to σ ≈ 0.87 voxel).
    let sigma = if step > 1.0 {
        0.5 * (step * step - 1.0).sqrt()
    } else {
        0.0
    };
    let fields = [gm, wm, csf, residual, mask].map(|f| warp::smooth(&f, dims, sigma));
    let maps = (0..t1.len())
        .map(|i| [fields[0][i], fields[1][i], fields[2][i], fields[3][i], fields[4][i]])
        .collect();
    let c = dims.map(|n| (n as f32 - 1.0) / 2.0);
    Ok(Prepared {
        template_dims: dims,
        maps,
        push,
        means,
        centre_mm: affine_apply(&world_from_tvox, c),
        world_from_tvox,
        tvox_from_world: to_f32_rows(&tvox_from_world),
        out_dims,
        out_spacing_mm,
        origin,
        step,
        out_affine,
    })
}

impl Prepared {
    pub fn output_dims(&self) -> [usize; 3] {
        self.out_dims
    }
    pub fn output_spacing_mm(&self) -> f32 {
        self.out_spacing_mm
    }
    pub fn output_affine(&self) -> &Affine {
        &self.out_affine
    }
}

/// Two independent standard normals from a counter: noise that does not depend on thread order.
#[inline]
fn hashed_normals(seed: u64, i: u64) -> (f32, f32) {
    let h = mix(seed, i);
    let u1 = ((h >> 40) as f32 + 1.0) / (1u64 << 24) as f32; // (0, 1]
    let u2 = ((h & 0xFF_FFFF) as f32) / (1u64 << 24) as f32;
    let r = (-2.0 * u1.ln()).sqrt();
    let (s, c) = (std::f32::consts::TAU * u2).sin_cos();
    (r * c, r * s)
}

/// Per-visit nuisance: the bias field and gain drift a little between sessions.
struct Session {
    /// Added to the subject's bias waves: a weaker field of the session's own.
    bias_jitter: [Wave; BIAS_WAVES],
    gain: f32,
    noise_seed: u64,
}

impl Session {
    fn new(subject: &Subject, month: u32) -> Self {
        let seed = mix(subject.seed, 1000 + u64::from(month));
        let mut rng = Rng::new(seed);
        let bias_jitter = [0; BIAS_WAVES].map(|_| Wave::random(&mut rng, (150.0, 300.0), 0.01));
        let gain = subject.traits.gain * (1.0 + 0.01 * rng.normal() as f32);
        Self {
            bias_jitter,
            gain,
            noise_seed: mix(seed, 0xB1A5),
        }
    }
}

/// One scan of `subject` at `month` on the prepared grid.
pub fn synthesize(prep: &Prepared, subject: &Subject, month: u32) -> Result<Volume, CohortError> {
    let [nx, ny, nz] = prep.out_dims;
    let plane = nx * ny;
    let mut data = vec![0.0f32; plane * nz];
    let atrophy = subject.atrophy(month);
    let session = Session::new(subject, month);
    let tr = &subject.traits;
    let tissue = [
        prep.means.gm * tr.tissue_gain[0],
        prep.means.wm * tr.tissue_gain[1],
        prep.means.csf * tr.tissue_gain[2],
    ];
    let level = WHITE_MATTER_LEVEL / prep.means.wm * session.gain;
    let total_push = atrophy.ventricle_mm.max(atrophy.sulcal_mm);
    let flow_steps = ((total_push / FLOW_STEP_MM).ceil() as usize).max(1);
    let (pv, ps) = (
        atrophy.ventricle_mm / flow_steps as f32,
        atrophy.sulcal_mm / flow_steps as f32,
    );
    let tdims = prep.template_dims;
    data.par_chunks_mut(plane).enumerate().for_each(|(z, out)| {
        for y in 0..ny {
            for x in 0..nx {
                let j = [x, y, z];
                let tv: [f32; 3] = std::array::from_fn(|a| prep.origin[a] + j[a] as f32 * prep.step);
                let scanner_mm = affine_apply(&prep.world_from_tvox, tv);
                // Subject anatomy: scaled about the centre, then displaced smoothly.
                let mut w: [f32; 3] =
                    std::array::from_fn(|a| prep.centre_mm[a] + (scanner_mm[a] - prep.centre_mm[a]) / tr.scale[a]);
                let rel = w;
                for (a, waves) in tr.warp.iter().enumerate() {
                    w[a] += waves.iter().map(|wave| wave.at(rel)).sum::<f32>();
                }
                let mut p = affine_apply(&prep.tvox_from_world, w);
                // Skull-stripped like LDAE's inputs. The mask follows the subject's anatomy but not
                // the atrophy: the intracranial volume stays, and CSF fills what tissue gives up.
                let mask = Corners::at(tdims, p).sample_n(&prep.maps)[4];
                if mask < 0.5 {
                    continue;
                }
                // Ventricles and sulci widen: sample further along the CSF gradient, in steps.
                for _ in 0..flow_steps {
                    let g = Corners::at(tdims, p).sample_n(&prep.push);
                    for a in 0..3 {
                        p[a] += pv * g[a] + ps * g[3 + a];
                    }
                }
                // Hippocampal regions contract towards their centres.
                let mut q = affine_apply(&prep.world_from_tvox, p);
                let mut hippo_weight = 0.0f32;
                for c in &HIPPOCAMPUS_CENTERS_MM {
                    let u = (0..3)
                        .map(|a| ((q[a] - c[a]) / HIPPOCAMPUS_SEMI_AXES_MM[a]).powi(2))
                        .sum::<f32>()
                        / (HIPPOCAMPUS_REACH * HIPPOCAMPUS_REACH);
                    if u < 1.0 {
                        let bump = (1.0 - u) * (1.0 - u);
                        hippo_weight = hippo_weight.max(bump);
                        for a in 0..3 {
                            q[a] += atrophy.hippocampus * bump * (q[a] - c[a]);
                        }
                    }
                }
                let p = affine_apply(&prep.tvox_from_world, q);
                let [gm, wm, csf, residual, _] = Corners::at(tdims, p).sample_n(&prep.maps);
                let loss = (atrophy.gm_loss + HIPPOCAMPUS_GM_LOSS * atrophy.hippocampus * hippo_weight).min(0.9);
                let lost = gm * loss;
                let t1 = residual + (gm - lost) * tissue[0] + wm * tissue[1] + (csf + lost) * tissue[2];
                let log_bias: f32 = tr
                    .bias
                    .iter()
                    .chain(&session.bias_jitter)
                    .map(|b| b.at(scanner_mm))
                    .sum();
                let bias = log_bias.exp();
                let clean = (t1 * level * bias).max(0.0);
                let idx = x + nx * y;
                let (n1, n2) = hashed_normals(session.noise_seed, (z * plane + idx) as u64);
                let re = clean + tr.noise_sd * n1;
                let im = tr.noise_sd * n2;
                let rician = (re * re + im * im).sqrt();
                out[idx] = (rician.clamp(0.0, 1.0) * QUANTUM).round() / QUANTUM;
            }
        }
    });
    Volume::new(prep.out_dims, 1, [prep.out_spacing_mm; 3], prep.out_affine, data)
        .map_err(|e| CohortError::Grid(e.to_string()))
}

/// Generates every `(subject, month)` scan in parallel, handing each to `sink` (which writes it)
/// as soon as it is ready; returns the records in subject-then-month order. Progress and
/// cancellation go through `ctx`.
pub fn generate<F>(
    prep: &Prepared,
    subjects: &[Subject],
    months: &[u32],
    ctx: &JobContext,
    sink: F,
) -> Result<Vec<ScanRecord>, CohortError>
where
    F: Fn(&ScanRecord, Volume) -> Result<(), String> + Sync,
{
    let jobs: Vec<(&Subject, u32)> = subjects
        .iter()
        .flat_map(|s| months.iter().map(move |&m| (s, m)))
        .collect();
    let total = jobs.len().max(1);
    let done = AtomicUsize::new(0);
    ctx.set(0.0, format!("generating {} scans", jobs.len()));
    jobs.par_iter()
        .map(|&(subject, month)| {
            ctx.check().map_err(|_| CohortError::Cancelled)?;
            let volume = synthesize(prep, subject, month)?;
            let record = ScanRecord {
                subject: subject.id.clone(),
                month,
                age: subject.age_at(month),
                diagnosis: subject.diagnosis,
                disease_factor: subject.disease_factor,
            };
            sink(&record, volume).map_err(CohortError::Sink)?;
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            ctx.set(n as f32 / total as f32, format!("{} month {month}", subject.id));
            Ok(record)
        })
        .collect()
}

/// The scan's white-matter level: its 90th brain-intensity percentile (voxels above the zero
/// background); `None` for an empty scan.
fn white_level(data: &[f32]) -> Option<f32> {
    let mut brain: Vec<f32> = data.iter().copied().filter(|&v| v > 0.0).collect();
    if brain.is_empty() {
        return None;
    }
    let k = (brain.len() - 1) * 9 / 10;
    let (_, white, _) = brain.select_nth_unstable_by(k, f32::total_cmp);
    Some(*white)
}

/// Values of the voxels inside the cohort's ventricle ellipsoid (which lies deep in the brain).
fn ventricle_region_values(volume: &Volume) -> Vec<f32> {
    let [nx, ny, nz] = volume.dims();
    let data = volume.frame(0);
    let mut values = Vec::new();
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                let v = data[volume.index(x, y, z)];
                let w = volume.world_from_voxel_point([x as f64, y as f64, z as f64]);
                let r2: f64 = (0..3)
                    .map(|a| {
                        ((w[a] - f64::from(VENTRICLE_CENTER_MM[a])) / f64::from(VENTRICLE_SEMI_AXES_MM[a])).powi(2)
                    })
                    .sum();
                if r2 < 1.0 {
                    values.push(v);
                }
            }
        }
    }
    values
}

/// Volume (mL) of dark voxels (below [`CSF_FRACTION_OF_WHITE`] of white matter, above the
/// zero background) inside the ventricle region of a cohort scan: a crude ventricle measure that
/// needs no segmentation.
pub fn ventricle_csf_ml(volume: &Volume) -> f64 {
    let s = volume.spacing_mm();
    let voxel_ml = f64::from(s[0] * s[1] * s[2]) / 1000.0;
    let Some(white) = white_level(volume.frame(0)) else {
        return 0.0;
    };
    let threshold = CSF_FRACTION_OF_WHITE * white;
    let count = ventricle_region_values(volume)
        .into_iter()
        .filter(|&v| v > 0.0 && v < threshold)
        .count();
    count as f64 * voxel_ml
}

/// Mean intensity inside the ventricle region as a fraction of white matter (lower: more CSF, larger
/// ventricles). Unlike [`ventricle_csf_ml`], which counts voxels below a threshold and so reads a
/// blurred scan's softened ventricles as nearly none, this moves smoothly with the amount of CSF
/// however blurred the scan is: the measure to read a decoded or edited scan by. Every voxel of the
/// region counts, a decode's slightly negative ones as 0 (left out, they would hide the darkest
/// voxels). `None` for a scan without brain or without voxels in the region.
pub fn ventricle_region_mean(volume: &Volume) -> Option<f64> {
    let white = f64::from(white_level(volume.frame(0))?);
    let values = ventricle_region_values(volume);
    if values.is_empty() || white <= 0.0 {
        return None;
    }
    Some(values.iter().map(|&v| f64::from(v.max(0.0))).sum::<f64>() / values.len() as f64 / white)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_depend_only_on_seed_and_index() {
        let a = subjects(7, 5);
        let b = subjects(7, 9);
        assert_eq!(a[..], b[..5]);
        assert_ne!(subjects(8, 1)[0], a[0]);
        let dx: Vec<_> = b.iter().map(|s| s.diagnosis).collect();
        assert_eq!(&dx[..3], &[Diagnosis::Cn, Diagnosis::Mci, Diagnosis::Ad]);
    }

    #[test]
    fn atrophy_grows_with_time_and_disease() {
        let cohort = subjects(1, 3);
        let (cn, ad) = (&cohort[0], &cohort[2]);
        for s in [cn, ad] {
            for w in MONTHS.windows(2) {
                let (a, b) = (s.atrophy(w[0]), s.atrophy(w[1]));
                assert!(b.ventricle_mm > a.ventricle_mm && b.gm_loss > a.gm_loss && b.hippocampus > a.hippocampus);
            }
        }
        let rate = |s: &Subject| s.atrophy(24).hippocampus - s.atrophy(0).hippocampus;
        assert!(rate(ad) > 2.0 * rate(cn));
    }

    #[test]
    fn monai_pad_crop_offsets() {
        // 131→128 crops one voxel at the start; 155→160 pads two; 126→128 pads one.
        assert_eq!(pad_or_crop_start(131, 128), 1.0);
        assert_eq!(pad_or_crop_start(155, 160), -2.0);
        assert_eq!(pad_or_crop_start(126, 128), -1.0);
    }

    #[test]
    fn hashed_normals_look_standard() {
        let n = 20000;
        let (mut s, mut s2) = (0.0f64, 0.0f64);
        for i in 0..n {
            let (a, b) = hashed_normals(3, i);
            s += f64::from(a) + f64::from(b);
            s2 += f64::from(a * a + b * b);
        }
        let m = s / (2 * n) as f64;
        let v = s2 / (2 * n) as f64 - m * m;
        assert!(m.abs() < 0.03 && (v - 1.0).abs() < 0.05, "{m} {v}");
    }
}
