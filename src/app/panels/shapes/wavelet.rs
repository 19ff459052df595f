//! The Shapes tab's wavelet section: WaLa's analytic first stage on a loaded SDF (cubic grid):
//! encode to the wavelet tree, decode, report what the round trip keeps, show the reconstruction,
//! and blend two shapes coefficient by coefficient.

use crate::app::Session;
use crate::app::notify::Log;
use crate::core::jobs::{self, JobError, JobHandle};
use crate::core::{Mesh, Volume};
use crate::methods::wala::roundtrip::{self, RoundTripReport};
use crate::methods::wala::tree::{WALA_TRUNCATION, WaveletTree, sdf_from_volume};
use crate::render::{Geometry, Scene, SceneObject};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct WaveletSettings {
    /// Clip the SDF to ±0.1 first (WaLa's TSDF).
    pub truncate: bool,
    pub show_reconstruction: bool,
    pub show_blend: bool,
    /// Blend weight of shape B.
    pub blend: f32,
}

impl Default for WaveletSettings {
    fn default() -> Self {
        Self {
            truncate: true,
            show_reconstruction: true,
            show_blend: true,
            blend: 0.5,
        }
    }
}

/// One encoded shape.
pub struct Encoded {
    pub asset: u64,
    pub name: String,
    pub report: RoundTripReport,
    pub tree: Arc<WaveletTree>,
    pub mesh: Option<Arc<Mesh>>,
}

pub struct Outcome {
    pub a: Encoded,
    pub b: Option<Encoded>,
    /// Grid and voxel-to-world transform shared by both.
    grid: [usize; 3],
    affine: crate::core::Affine,
}

#[derive(Default)]
pub struct WaveletRuntime {
    pub a: Option<u64>,
    pub b: Option<u64>,
    job: Option<JobHandle<Outcome>>,
    pub outcome: Option<Outcome>,
    blend_job: Option<(f32, JobHandle<Option<Mesh>>)>,
    /// The blend mesh and the weight it was made at.
    blend: Option<(f32, Option<Arc<Mesh>>)>,
    pub error: Option<String>,
}

impl WaveletRuntime {
    pub fn busy(&self) -> bool {
        self.job.is_some() || self.blend_job.is_some()
    }

    pub fn poll(&mut self, log: &mut Log) {
        if let Some(result) = self.job.as_ref().and_then(|j| j.poll()) {
            self.job = None;
            match result {
                Ok(o) => {
                    let r = &o.a.report;
                    log.info(format!(
                        "wavelet round trip of {}: tree {:?}, compression {:.2}, RMS {:.4}, IoU {:.4}",
                        o.a.name, r.tree_shape, r.compression, r.rms_error, r.iou
                    ));
                    self.outcome = Some(o);
                    self.blend = None;
                    self.error = None;
                }
                Err(e) => self.error = Some(e.to_string()),
            }
        }
        if let Some((t, result)) = self.blend_job.as_ref().and_then(|(t, j)| j.poll().map(|r| (*t, r))) {
            self.blend_job = None;
            match result {
                Ok(mesh) => self.blend = Some((t, mesh.map(Arc::new))),
                Err(e) => self.error = Some(e.to_string()),
            }
        }
    }

    /// Adds the reconstruction of A and the blend, side by side with the inputs.
    pub fn add_to_scene(&self, scene: &mut Scene, settings: &WaveletSettings, recon_id: u64, blend_id: u64) {
        let Some(o) = &self.outcome else { return };
        if settings.show_reconstruction
            && let Some(m) = &o.a.mesh
        {
            let name = format!("{} (wavelet round trip)", o.a.name);
            scene
                .objects
                .push(SceneObject::new(recon_id, name, Geometry::Mesh(m.clone())));
        }
        if settings.show_blend
            && let Some((t, Some(m))) = &self.blend
        {
            let name = format!("blend t = {t:.2}");
            let mut object = SceneObject::new(blend_id, name, Geometry::Mesh(m.clone()));
            object.coloring = crate::render::Coloring::Solid(crate::render::scene::PALETTE[1]);
            scene.objects.push(object);
        }
    }

    pub fn provenance(&self, blend: bool) -> serde_json::Value {
        let Some(o) = &self.outcome else {
            return serde_json::Value::Null;
        };
        serde_json::json!({
            "operation": if blend { "wavelet-tree blend, decoded, marching cubes at 0" } else { "wavelet round trip, marching cubes at 0" },
            "transform": "bior6.8, 3 levels, mode zero, 2 coarsest detail levels kept (WaLa's wavelet tree)",
            "a": {"name": o.a.name, "report": o.a.report},
            "b": o.b.as_ref().map(|b| serde_json::json!({"name": b.name, "report": b.report})),
            "blend_t": if blend { self.blend.as_ref().map(|(t, _)| *t) } else { None },
        })
    }

    /// Starts decoding the blend at `t` unless it is current or running.
    fn schedule_blend(&mut self, t: f32, waker: Option<jobs::Waker>) {
        let Some(o) = &self.outcome else { return };
        let Some(b) = &o.b else { return };
        if self.blend.as_ref().is_some_and(|(bt, _)| *bt == t) || self.blend_job.is_some() {
            return;
        }
        let (ta, tb, grid, affine) = (o.a.tree.clone(), b.tree.clone(), o.grid, o.affine);
        let job = jobs::spawn("Wavelet blend", waker, move |ctx| {
            ctx.set(0.2, "decoding");
            let tree = roundtrip::lerp_trees(&ta, &tb, t).map_err(|e| JobError::Failed(e.to_string()))?;
            let sdf = roundtrip::decode(&tree, grid).map_err(|e| JobError::Failed(e.to_string()))?;
            ctx.check()?;
            roundtrip::zero_surface(&sdf, affine).map_err(|e| JobError::Failed(e.to_string()))
        });
        self.blend_job = Some((t, job));
    }
}

/// Encodes and decodes one SDF volume.
fn encode(asset: u64, name: String, volume: &Volume, truncation: Option<f32>) -> Result<Encoded, JobError> {
    let rt = roundtrip::round_trip(&sdf_from_volume(volume), truncation)
        .map_err(|e| JobError::Failed(format!("{name}: {e}")))?;
    let mesh = roundtrip::zero_surface(&rt.decoded, *volume.world_from_voxel())
        .map_err(|e| JobError::Failed(e.to_string()))?;
    Ok(Encoded {
        asset,
        name,
        report: rt.report,
        tree: Arc::new(rt.tree),
        mesh: mesh.map(Arc::new),
    })
}

/// Cubic volumes with both signs: the signed distance fields the transform takes.
fn sdf_candidates(session: &Session) -> Vec<(u64, String)> {
    session
        .shapes
        .sdf_volumes()
        .filter_map(|id| session.get(id).map(|a| (id, a.name.clone())))
        .collect()
}

fn pick(ui: &mut egui::Ui, label: &str, slot: &mut Option<u64>, candidates: &[(u64, String)], optional: bool) {
    let current = slot
        .and_then(|id| candidates.iter().find(|c| c.0 == id))
        .map_or("none", |c| c.1.as_str());
    egui::ComboBox::from_label(label)
        .selected_text(current)
        .width(180.0)
        .show_ui(ui, |ui| {
            if optional {
                ui.selectable_value(slot, None, "none");
            }
            for (id, name) in candidates {
                ui.selectable_value(slot, Some(*id), name);
            }
        });
}

pub fn section(ui: &mut egui::Ui, settings: &mut WaveletSettings, session: &mut Session) {
    ui.strong("Wavelet tree (WaLa, stage 1)");
    let candidates = sdf_candidates(session);
    let rt = &mut session.shapes.wavelet;
    if candidates.is_empty() {
        ui.weak("Needs a signed distance field on a cubic grid (negative inside), e.g. the demo shapes.");
        return;
    }
    if rt.a.is_none_or(|id| !candidates.iter().any(|c| c.0 == id)) {
        rt.a = candidates.first().map(|c| c.0);
    }
    pick(ui, "shape A", &mut rt.a, &candidates, false);
    pick(ui, "shape B (blend)", &mut rt.b, &candidates, true);
    ui.checkbox(&mut settings.truncate, format!("truncate to ±{WALA_TRUNCATION} (TSDF)"));
    let busy = rt.job.is_some();
    ui.horizontal(|ui| {
        if ui.add_enabled(!busy, egui::Button::new("Encode and decode")).clicked() {
            start(session, settings);
        }
        if busy {
            ui.spinner();
        }
    });
    let rt = &mut session.shapes.wavelet;
    if let Some(e) = &rt.error {
        ui.colored_label(ui.visuals().error_fg_color, e);
    }
    let Some(o) = &rt.outcome else { return };
    report_grid(ui, &o.a);
    if let Some(b) = &o.b {
        report_grid(ui, b);
    }
    if o.a.report.compression < 2.0 {
        ui.weak(
            "On WaLa's 256³ grid the tree (64 × 46³) holds 2.7× fewer values than the SDF; on smaller \
             grids the filter's support makes it relatively larger.",
        );
    }
    ui.checkbox(&mut settings.show_reconstruction, "show the round trip of A");
    if o.b.is_some() {
        ui.checkbox(&mut settings.show_blend, "show the tree-space blend");
        ui.add(egui::Slider::new(&mut settings.blend, 0.0..=1.0).text("blend A to B"));
        ui.weak(
            "The transform is linear: blending trees equals blending the SDFs. The learned latent \
             (below) interpolates differently.",
        );
        let waker = session.waker.clone();
        session.shapes.wavelet.schedule_blend(settings.blend, waker);
    }
}

fn report_grid(ui: &mut egui::Ui, e: &Encoded) {
    let r = &e.report;
    let rows = [
        ("shape", e.name.clone()),
        ("grid, tree", format!("{:?}, {:?}", r.grid, r.tree_shape)),
        ("compression", format!("{:.2}×", r.compression)),
        ("max |Δ| / RMS", format!("{:.4} / {:.5}", r.max_abs_error, r.rms_error)),
        ("IoU of solids", format!("{:.4}", r.iou)),
    ];
    egui::Grid::new(("wavelet-report", e.asset))
        .num_columns(2)
        .show(ui, |ui| {
            for (name, value) in rows {
                ui.label(name);
                ui.label(value);
                ui.end_row();
            }
        });
}

pub fn start(session: &mut Session, settings: &WaveletSettings) {
    let rt = &session.shapes.wavelet;
    let get = |id: Option<u64>| {
        let id = id?;
        Some((id, session.get(id)?.name.clone(), session.shapes.volume(id)?))
    };
    let Some(a) = get(rt.a) else { return };
    let b = get(rt.b).filter(|b| b.2.dims() == a.2.dims());
    if rt.b.is_some() && b.is_none() {
        session.shapes.wavelet.error = Some("shape B must be on the same grid as A".into());
    }
    let truncation = settings.truncate.then_some(WALA_TRUNCATION);
    let waker = session.waker.clone();
    let job = jobs::spawn("Wavelet round trip", waker, move |ctx| {
        ctx.set(0.1, "shape A");
        let (grid, affine) = (a.2.dims(), *a.2.world_from_voxel());
        let ea = encode(a.0, a.1, &a.2, truncation)?;
        ctx.check()?;
        let eb = match b {
            Some(b) => {
                ctx.set(0.55, "shape B");
                Some(encode(b.0, b.1, &b.2, truncation)?)
            }
            None => None,
        };
        Ok(Outcome {
            a: ea,
            b: eb,
            grid,
            affine,
        })
    });
    session.shapes.wavelet.job = Some(job);
}
