//! Shape generation with a WaLa diffusion model, as WaLa's `run.py` does it: a condition (a point
//! cloud, or nothing for an unconditional model) → respaced DDPM sampling with classifier-free
//! guidance → the pre-quant latent → nearest codes, VQ-VAE decoder, inverse wavelet transform →
//! an SDF on the model's grid → marching cubes at 0. `wala-generate` and the Shapes tab both
//! drive this.
//!
//! A model is a folder as WaLa publishes one (`ADSKAILab/WaLa-*` on Hugging Face): `args.json`
//! and `checkpoint.ckpt` (or the same keys converted to `checkpoint.safetensors`). The autoencoder
//! normally comes from the same checkpoint (`autoencoder.` keys); a registered WaLa-family
//! autoencoder can stand in for it (a diffusion model trained on that autoencoder's latents).

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use super::latent::{Decoded, Latent, LatentError, LatentModel};
use super::uvit::{Condition, LatentDiffusion, SampleOptions, UvitConfig, UvitError, VoxelGrid};
use super::vqvae::{VqVaeConfig, VqVaeError};
use crate::core::asset::Asset;
use crate::core::diffusion::{Progress, Rng};
use crate::core::{Mesh, Volume};

/// The hyper-parameters file of a WaLa model folder.
pub const ARGS_FILE: &str = "args.json";
/// The checkpoint names looked for, in order: upstream's, then a safetensors conversion.
pub const CHECKPOINT_FILES: [&str; 2] = ["checkpoint.ckpt", "checkpoint.safetensors"];
/// Points in upstream's point-cloud condition (its example h5 holds 25 000 × 3).
pub const WALA_POINTS: usize = 25_000;
/// The half-extent WaLa's shapes fill in its `[-1, 1]³` grid (its example point cloud spans ±0.9).
pub const WALA_EXTENT: f32 = 0.9;
/// Grid side when `args.json` names none (`resolution`; 256 in every released model).
pub const WALA_RESOLUTION: usize = 256;
/// TSDF truncation of WaLa's lineage (only used to encode; generation never truncates).
const WALA_TRUNCATION: f32 = 0.1;

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("WaLa model folder {folder}: {problem}")]
    Folder { folder: PathBuf, problem: String },
    #[error("{0}")]
    Mismatch(String),
    /// A model name or registered folder that does not resolve to a diffusion model.
    #[error("{0}")]
    Model(String),
    #[error("condition: {0}")]
    Condition(String),
    #[error(transparent)]
    Uvit(#[from] UvitError),
    #[error(transparent)]
    Latent(#[from] LatentError),
    #[error(transparent)]
    VqVae(#[from] VqVaeError),
    #[error("WaLa generation: {0}")]
    Candle(#[from] candle_core::Error),
}

impl GenerateError {
    /// Whether the sampler stopped because the progress callback asked it to.
    pub fn is_cancelled(&self) -> bool {
        matches!(
            self,
            GenerateError::Uvit(UvitError::Diffusion(crate::core::diffusion::DiffusionError::Cancelled))
        )
    }
}

impl From<GenerateError> for crate::core::jobs::JobError {
    fn from(e: GenerateError) -> Self {
        if e.is_cancelled() {
            Self::Cancelled
        } else {
            Self::Failed(e.to_string())
        }
    }
}

/// A WaLa diffusion model with the autoencoder that decodes its latents.
pub struct WalaGenerator {
    /// The folder's name.
    pub name: String,
    pub folder: PathBuf,
    pub checkpoint: PathBuf,
    /// sha256 of the checkpoint file.
    pub sha256: String,
    pub diffusion: LatentDiffusion,
    pub autoencoder: LatentModel,
    /// Whether the autoencoder came from the same checkpoint (else a registered model).
    pub autoencoder_in_checkpoint: bool,
    /// Where the diffusion model runs (the autoencoder decodes on the CPU, as `LatentModel`
    /// does everywhere).
    pub device: Device,
}

/// How a condition point cloud is placed in WaLa's grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Framing {
    /// Centre the bounding box and scale its largest half-extent to [`WALA_EXTENT`]; the
    /// generated mesh is mapped back to the input's frame.
    Fit,
    /// Use the coordinates as they are (upstream's behaviour: its inputs are already framed).
    AsGiven,
}

/// What a model is conditioned on, ready for it.
#[derive(Clone, Debug, PartialEq)]
pub enum ConditionInput {
    /// A point cloud in the model's frame.
    Points(Vec<[f32; 3]>),
    /// An occupancy grid over the model's `[-1, 1]³`.
    Voxels(VoxelGrid),
}

impl ConditionInput {
    /// "25000 points" or "16³ voxels, 413 occupied".
    pub fn describe(&self) -> String {
        match self {
            ConditionInput::Points(p) => format!("{} points", p.len()),
            ConditionInput::Voxels(g) => format!("{}³ voxels, {} occupied", g.resolution, g.count()),
        }
    }
}

/// A condition in the model's frame, and how to map the model's frame back to the input's.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub input: ConditionInput,
    /// `input = centre + model / scale`.
    pub centre: [f32; 3],
    pub scale: f32,
    /// How the input was placed (a voxel JSON is always taken as given).
    pub framing: Framing,
}

impl Prepared {
    /// Model-frame coordinates back to the input's frame.
    pub fn to_input(&self, p: [f32; 3]) -> [f32; 3] {
        [0, 1, 2].map(|k| self.centre[k] + p[k] / self.scale)
    }

    /// The framing in words, for reports.
    pub fn framing_note(&self) -> &'static str {
        match self.framing {
            Framing::Fit => "box fitted to ±0.9, shape mapped back",
            Framing::AsGiven => "as given",
        }
    }
}

/// What generation does, in words, for provenance.
pub const OPERATION: &str = "WaLa generation: respaced DDPM sampling with classifier-free guidance from seeded noise, nearest codes, VQ-VAE decoder, inverse wavelet transform, marching cubes at 0";

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GenerateOptions {
    pub sample: SampleOptions,
    /// Seeds the starting noise and every sampler step (the same seed gives the same shape).
    pub seed: u64,
}

/// A generated shape.
pub struct Generated {
    /// The sampled pre-quant latent `(1, E, G, G, G)`.
    pub latent: Latent,
    /// Its decode: the SDF on the model's grid and the codes it snapped to.
    pub decoded: Decoded,
}

fn read_args(folder: &Path) -> Result<serde_json::Value, GenerateError> {
    let bad = |problem: String| GenerateError::Folder {
        folder: folder.to_path_buf(),
        problem,
    };
    let path = folder.join(ARGS_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| bad(format!("cannot read {ARGS_FILE}: {e}")))?;
    serde_json::from_str(&text).map_err(|e| bad(format!("{ARGS_FILE} is not JSON: {e}")))
}

/// The registry family of WaLa diffusion-model folders that carry a `model.toml` beside
/// `args.json` and the checkpoint (the demo model does).
pub const DIFFUSION_FAMILY: &str = "wala-diffusion";
/// The shipped demo diffusion model, used when no model is named.
pub const DEMO_MODEL: &str = "wala-shapes-diffusion";

/// The model folder `spec` names: a folder as given (WaLa's layout), or a registered diffusion
/// model (its name, or a folder with a `model.toml`), whose checkpoint is then checked against the
/// recorded sha256.
pub fn resolve_model(spec: &str) -> Result<PathBuf, GenerateError> {
    let path = Path::new(spec);
    if path.is_dir() && !path.join(crate::core::manifest::MANIFEST_FILE).is_file() {
        return Ok(path.to_path_buf());
    }
    // find_entry's messages name the spec already.
    let entry = crate::core::manifest::find_entry(spec, DIFFUSION_FAMILY).map_err(GenerateError::Model)?;
    entry.verify().map_err(|e| GenerateError::Model(e.to_string()))?;
    Ok(entry.dir)
}

/// Whether `path` looks like a WaLa model folder (args.json beside a checkpoint), so the app can
/// open it as a model rather than as data.
pub fn is_model_folder(path: &Path) -> bool {
    path.join(ARGS_FILE).is_file() && find_checkpoint(path).is_ok()
}

/// The checkpoint of a WaLa model folder.
pub fn find_checkpoint(folder: &Path) -> Result<PathBuf, GenerateError> {
    if !folder.is_dir() {
        return Err(GenerateError::Folder {
            folder: folder.to_path_buf(),
            problem: "not a folder".into(),
        });
    }
    CHECKPOINT_FILES
        .iter()
        .map(|n| folder.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| GenerateError::Folder {
            folder: folder.to_path_buf(),
            problem: format!("holds neither {}", CHECKPOINT_FILES.join(" nor ")),
        })
}

impl WalaGenerator {
    /// Opens a WaLa model folder, its diffusion model on `device`; `autoencoder` replaces the
    /// checkpoint's own.
    pub fn open(folder: &Path, autoencoder: Option<LatentModel>, device: &Device) -> Result<Self, GenerateError> {
        let checkpoint = find_checkpoint(folder)?;
        let args = read_args(folder)?;
        let cfg = UvitConfig::from_args_json(&args)?;
        let name = folder
            .file_name()
            .map_or_else(|| folder.display().to_string(), |n| n.to_string_lossy().into_owned());
        let sha256 = crate::core::manifest::sha256_file(&checkpoint).map_err(|e| GenerateError::Folder {
            folder: folder.to_path_buf(),
            problem: e.to_string(),
        })?;
        let (diffusion, _) = LatentDiffusion::from_checkpoint(&checkpoint, &cfg, device)?;
        let in_checkpoint = autoencoder.is_none();
        let autoencoder = match autoencoder {
            Some(model) => model,
            None => {
                let vq = VqVaeConfig::from_args_json(&args)?;
                let grid = args
                    .get("resolution")
                    .and_then(serde_json::Value::as_u64)
                    .map_or(WALA_RESOLUTION, |r| r as usize);
                LatentModel::load(&checkpoint, name.clone(), sha256.clone(), vq, grid, WALA_TRUNCATION)?
            }
        };
        let vq = autoencoder.vqvae.config();
        if (vq.e_dim, vq.grid_size) != (cfg.e_dim, cfg.grid_size) {
            return Err(GenerateError::Mismatch(format!(
                "{name} samples latents of {} × {g}³ but the autoencoder {} decodes {} × {s}³",
                cfg.e_dim,
                autoencoder.name,
                vq.e_dim,
                g = cfg.grid_size,
                s = vq.grid_size,
            )));
        }
        Ok(Self {
            name,
            folder: folder.to_path_buf(),
            checkpoint,
            sha256,
            diffusion,
            autoencoder,
            autoencoder_in_checkpoint: in_checkpoint,
            device: device.clone(),
        })
    }

    /// What the model is conditioned on.
    pub fn condition(&self) -> Condition {
        // open() validated the config, so the condition is known.
        self.diffusion.config().condition().unwrap_or(Condition::None)
    }

    /// The side of the voxel grids a voxel-conditioned model takes (`2·voxel_dim`, 16 upstream).
    pub fn voxel_resolution(&self) -> Option<usize> {
        match self.condition() {
            Condition::Voxel { .. } => self.diffusion.config().voxel_dim.map(|d| 2 * d),
            _ => None,
        }
    }

    /// The condition this model takes, made from a loaded asset: points (a mesh sampled on its
    /// surface) for a point-cloud model, the occupancy of a mesh for a voxel model.
    pub fn prepare(
        &self,
        asset: &Asset,
        point_count: usize,
        seed: u64,
        framing: Framing,
    ) -> Result<Prepared, GenerateError> {
        // A signed distance volume conditions through its surface, like a mesh.
        let surface;
        let asset = match asset {
            Asset::Volume(v) => {
                surface = Asset::Mesh(sdf_surface(v)?);
                &surface
            }
            other => other,
        };
        match self.condition() {
            Condition::None => Err(GenerateError::Condition(format!(
                "{} is unconditional and takes no condition",
                self.name
            ))),
            Condition::PointCloud { .. } => condition_points(asset, point_count, seed, framing),
            Condition::Voxel { .. } => match asset {
                Asset::Mesh(mesh) if !mesh.triangles.is_empty() => {
                    voxelize(mesh, self.voxel_resolution().unwrap_or(16), framing)
                }
                other => Err(GenerateError::Condition(format!(
                    "a voxel-conditioned model takes a closed mesh or an SDF volume (voxelised) or a voxel JSON, not a {}",
                    other.kind()
                ))),
            },
        }
    }

    /// A one-line description for lists and reports.
    pub fn describe(&self) -> String {
        let cfg = self.diffusion.config();
        let cond = match self.condition() {
            Condition::None => "unconditional".to_string(),
            Condition::PointCloud { tokens, .. } => format!("point-cloud conditioned ({tokens} tokens)"),
            Condition::Voxel { .. } => format!("voxel conditioned ({}³)", self.voxel_resolution().unwrap_or(0)),
        };
        format!(
            "{}: {cond}, latent {} × {g}³, {}-step schedule{}; decoded by {} on a {}³ grid",
            self.name,
            cfg.e_dim,
            cfg.diffusion_step,
            if cfg.guided() { ", classifier-free guidance" } else { "" },
            if self.autoencoder_in_checkpoint {
                "its own autoencoder"
            } else {
                &self.autoencoder.name
            },
            self.autoencoder.grid,
            g = cfg.grid_size,
        )
    }

    /// Samples one latent from `condition` (`None` for an unconditional model) and decodes it.
    /// `progress` sees the sampler's steps and may cancel.
    pub fn generate(
        &self,
        condition: Option<&ConditionInput>,
        options: &GenerateOptions,
        progress: Progress,
    ) -> Result<Generated, GenerateError> {
        let device = &self.device;
        let refuse = |m: String| Err(GenerateError::Condition(format!("{} {m}", self.name)));
        let tokens = match (self.condition(), condition) {
            (Condition::None, None) => None,
            (Condition::None, Some(_)) => return refuse("is unconditional and takes no condition".into()),
            (Condition::PointCloud { .. }, Some(ConditionInput::Points(points))) if !points.is_empty() => {
                let flat: Vec<f32> = points.iter().flatten().copied().collect();
                let points = Tensor::from_vec(flat, (1, points.len(), 3), device)?;
                Some(self.diffusion.encode_points(&points)?)
            }
            (Condition::PointCloud { .. }, _) => return refuse("needs a point cloud".into()),
            (Condition::Voxel { .. }, Some(ConditionInput::Voxels(grid))) => {
                Some(self.diffusion.encode_voxels(&grid.tensor(device)?)?)
            }
            (Condition::Voxel { .. }, _) => {
                return refuse(format!(
                    "needs a {r}³ voxel grid",
                    r = self.voxel_resolution().unwrap_or(0)
                ));
            }
        };
        let latent = sample_latent(&self.diffusion, tokens.as_ref(), options, device, progress)?;
        let decoded = self.autoencoder.decode(&latent)?;
        Ok(Generated { latent, decoded })
    }

    /// The zero level set of a generated SDF, in the model's `[-1, 1]³` frame (vertex `i` of the
    /// grid at `2i/N − 1`, WaLa's mapping); `None` when the SDF has no surface.
    pub fn mesh(&self, generated: &Generated) -> Result<Option<Mesh>, GenerateError> {
        let affine = crate::methods::demo_data::shapes::grid_affine(self.autoencoder.grid);
        super::roundtrip::zero_surface(&generated.decoded.sdf, affine)
            .map_err(|e| GenerateError::Latent(LatentError::Tree(e.to_string())))
    }

    /// [`WalaGenerator::mesh`] mapped back into the frame of the input `prepared` came from
    /// (the model's frame when there is no condition).
    pub fn mesh_in_input_frame(
        &self,
        generated: &Generated,
        prepared: Option<&Prepared>,
    ) -> Result<Option<Mesh>, GenerateError> {
        let mut mesh = self.mesh(generated)?;
        if let (Some(m), Some(c)) = (mesh.as_mut(), prepared) {
            for p in &mut m.positions {
                *p = c.to_input(*p);
            }
        }
        Ok(mesh)
    }
}

/// Whether `volume` can be a condition: a signed distance field, negative inside, so its first
/// frame holds values of both signs.
pub fn is_sdf_volume(volume: &Volume) -> bool {
    let frame = volume.frame(0);
    frame.iter().any(|&v| v < 0.0) && frame.iter().any(|&v| v > 0.0)
}

/// The zero level set of a signed distance volume (negative inside) in world coordinates.
fn sdf_surface(volume: &Volume) -> Result<Mesh, GenerateError> {
    use crate::methods::isosurface::{Inside, IsoOptions, marching_cubes};
    if !is_sdf_volume(volume) {
        return Err(GenerateError::Condition(
            "the volume is not a signed distance field (no values of both signs), so it has no surface to condition on"
                .into(),
        ));
    }
    let options = IsoOptions {
        level: 0.0,
        inside: Inside::Below,
        frame: 0,
    };
    Ok(marching_cubes(volume, &options))
}

/// One latent sampled from encoder tokens (`None` for an unconditional model), seeded by
/// `options.seed`, on `device` (the model's) and returned on the CPU: the diffusion half of
/// [`WalaGenerator::generate`], which the demo trainer's evaluation runs too.
pub fn sample_latent(
    diffusion: &LatentDiffusion,
    tokens: Option<&Tensor>,
    options: &GenerateOptions,
    device: &Device,
    progress: Progress,
) -> Result<Latent, GenerateError> {
    let ctx = diffusion.context(tokens)?;
    let mut rng = Rng::new(options.seed);
    let x_t = diffusion.initial_noise(1, &mut rng, device)?;
    let grid = diffusion
        .sample(&ctx, &x_t, &options.sample, &mut rng, progress)?
        .to_device(&Device::Cpu)?;
    Ok(Latent { grid })
}

/// The condition point cloud of a loaded asset: a point cloud's points (a seeded subset of
/// `count` when it has more), `count` area-weighted samples of a mesh's surface, or an `N × 3`
/// array; framed as `framing` says.
pub fn condition_points(asset: &Asset, count: usize, seed: u64, framing: Framing) -> Result<Prepared, GenerateError> {
    let bad = |m: String| Err(GenerateError::Condition(m));
    let points: Vec<[f32; 3]> = match asset {
        Asset::PointCloud(cloud) => subsample(&cloud.points, count, seed),
        Asset::Mesh(mesh) if !mesh.triangles.is_empty() => {
            crate::methods::metrics::shape::sample_surface(mesh, count, seed)
        }
        Asset::Mesh(_) => return bad("the mesh has no triangles to sample".into()),
        Asset::Tensors(tensors) => match tensors.iter().find(|t| matches!(t.shape(), [_, 3])) {
            Some(t) => subsample(
                &t.values()
                    .chunks_exact(3)
                    .map(|c| [c[0], c[1], c[2]])
                    .collect::<Vec<_>>(),
                count,
                seed,
            ),
            None => return bad("no N × 3 array among the tensors".into()),
        },
        other => {
            return bad(format!(
                "a {} is not a point cloud, a mesh, an SDF volume or an N × 3 array",
                other.kind()
            ));
        }
    };
    let (points, centre, scale) = frame_points(points, framing)?;
    Ok(Prepared {
        input: ConditionInput::Points(points),
        centre,
        scale,
        framing,
    })
}

/// The occupancy of a closed mesh on an `r`³ grid of cells over `[-1, 1]³` (cell centres tested
/// inside by ray parity), its box framed as `framing` says. Upstream's voxel models read
/// ready-made voxel JSON; voxelising a mesh this way is our addition.
pub fn voxelize(mesh: &Mesh, r: usize, framing: Framing) -> Result<Prepared, GenerateError> {
    let (_, centre, scale) = frame_points(mesh.positions.clone(), framing)?;
    let inside = crate::methods::metrics::shape::InsideTest::new(mesh);
    let cell = |i: usize| VoxelGrid::cell_centre(r, i);
    let mut occupancy = vec![0f32; r * r * r];
    for x in 0..r {
        for y in 0..r {
            for z in 0..r {
                let p = [cell(x), cell(y), cell(z)];
                let q = [0, 1, 2].map(|k| centre[k] + p[k] / scale);
                if inside.contains(q) {
                    occupancy[(x * r + y) * r + z] = 1.0;
                }
            }
        }
    }
    Ok(Prepared {
        input: ConditionInput::Voxels(VoxelGrid {
            resolution: r,
            occupancy,
        }),
        centre,
        scale,
        framing,
    })
}

/// A voxel JSON as upstream's `run.py --voxel_files` reads it (already in the model's frame).
pub fn voxel_json(text: &str) -> Result<Prepared, GenerateError> {
    let grid = VoxelGrid::from_json(text).map_err(GenerateError::Condition)?;
    Ok(voxel_condition(grid))
}

/// A voxel grid already in the model's frame as the condition, taken as given.
pub fn voxel_condition(grid: VoxelGrid) -> Prepared {
    Prepared {
        input: ConditionInput::Voxels(grid),
        centre: [0.0; 3],
        scale: 1.0,
        framing: Framing::AsGiven,
    }
}

fn subsample(points: &[[f32; 3]], count: usize, seed: u64) -> Vec<[f32; 3]> {
    if points.len() <= count {
        return points.to_vec();
    }
    // A seeded partial Fisher–Yates shuffle: the first `count` of a random permutation.
    let n = points.len();
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng = Rng::new(seed);
    for i in 0..count {
        let j = i + (rng.uniform() * (n - i) as f64) as usize;
        idx.swap(i, j.min(n - 1));
    }
    idx[..count].iter().map(|&i| points[i]).collect()
}

/// Points in the model's frame, with the centre and scale that map them back.
pub type Framed = (Vec<[f32; 3]>, [f32; 3], f32);

/// Places `points` in the model's frame: the framed points, and the centre and scale that map
/// them back (`input = centre + model / scale`).
pub fn frame_points(points: Vec<[f32; 3]>, framing: Framing) -> Result<Framed, GenerateError> {
    if points.is_empty() {
        return Err(GenerateError::Condition("the point cloud is empty".into()));
    }
    if points.iter().flatten().any(|v| !v.is_finite()) {
        return Err(GenerateError::Condition(
            "the point cloud holds NaN or infinite coordinates".into(),
        ));
    }
    if framing == Framing::AsGiven {
        return Ok((points, [0.0; 3], 1.0));
    }
    let (mut lo, mut hi) = ([f32::INFINITY; 3], [f32::NEG_INFINITY; 3]);
    for p in &points {
        for k in 0..3 {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
    }
    let centre = [0, 1, 2].map(|k| 0.5 * (lo[k] + hi[k]));
    let half = (0..3).map(|k| 0.5 * (hi[k] - lo[k])).fold(0.0f32, f32::max);
    if half <= 0.0 {
        return Err(GenerateError::Condition("all the points coincide".into()));
    }
    let scale = WALA_EXTENT / half;
    let points = points
        .iter()
        .map(|p| [0, 1, 2].map(|k| (p[k] - centre[k]) * scale))
        .collect();
    Ok((points, centre, scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitting_centres_the_box_and_maps_back() {
        let pts = vec![[1.0, 2.0, 3.0], [3.0, 2.5, 3.5], [2.0, 3.0, 4.0]];
        let (framed, centre, scale) = frame_points(pts.clone(), Framing::Fit).unwrap();
        let max = framed.iter().flatten().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!((max - WALA_EXTENT).abs() < 1e-6, "{max}");
        let c = Prepared {
            input: ConditionInput::Points(framed.clone()),
            centre,
            scale,
            framing: Framing::Fit,
        };
        for (p, q) in pts.iter().zip(&framed) {
            let back = c.to_input(*q);
            for k in 0..3 {
                assert!((back[k] - p[k]).abs() < 1e-5);
            }
        }
        let (given, ..) = frame_points(pts.clone(), Framing::AsGiven).unwrap();
        assert_eq!(given, pts);
    }

    #[test]
    fn bad_clouds_are_named() {
        let e = frame_points(vec![], Framing::Fit).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        let e = frame_points(vec![[f32::NAN, 0.0, 0.0]], Framing::Fit)
            .unwrap_err()
            .to_string();
        assert!(e.contains("NaN"), "{e}");
        let e = frame_points(vec![[1.0, 1.0, 1.0]; 3], Framing::Fit)
            .unwrap_err()
            .to_string();
        assert!(e.contains("coincide"), "{e}");
    }

    #[test]
    fn subsampling_is_seeded_and_distinct() {
        let pts: Vec<[f32; 3]> = (0..100).map(|i| [i as f32, 0.0, 0.0]).collect();
        let a = subsample(&pts, 10, 7);
        assert_eq!(a, subsample(&pts, 10, 7));
        assert_ne!(a, subsample(&pts, 10, 8));
        let mut xs: Vec<i32> = a.iter().map(|p| p[0] as i32).collect();
        xs.sort();
        xs.dedup();
        assert_eq!(xs.len(), 10);
        assert_eq!(subsample(&pts, 200, 7).len(), 100);
    }
}
