//! Exporting a sequence: one animated `.glb` (morph targets, plays in Blender, f3d, three.js) or
//! one OBJ/PLY per frame, each with a provenance JSON. The save dialog and the writing run in a
//! job; the writers themselves are plain functions the tests call.

use super::MotionSettings;
use crate::app::Session;
use crate::core::jobs::{self, JobError};
use crate::core::motion::MotionSequence;
use crate::render::RenderSettings;
use crate::render::motion::{self, MotionStyle, ShownSequence, View};
use std::path::Path;
use std::sync::Arc;

/// How a sequence is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Glb,
    Frames(&'static str),
}

/// Writes `sequence` as `format` at `path` (a `.glb` file, or a folder for frames) with its
/// provenance: `<stem>.provenance.json` beside a `.glb`, `provenance.json` inside a frames folder.
/// Returns what was written, for the log.
pub fn write_export(
    path: &Path,
    sequence: &MotionSequence,
    format: Format,
    provenance: &serde_json::Value,
) -> Result<String, String> {
    let json = serde_json::to_vec_pretty(provenance).map_err(|e| e.to_string())?;
    match format {
        Format::Glb => {
            crate::io::motion::write_glb(path, sequence).map_err(|e| e.to_string())?;
            crate::io::atomic::write_bytes(&path.with_extension("provenance.json"), &json)
                .map_err(|e| e.to_string())?;
            Ok(format!(
                "{} ({} frames as morph targets)",
                path.display(),
                sequence.len()
            ))
        }
        Format::Frames(ext) => {
            let files = crate::io::motion::write_frames(path, sequence, ext).map_err(|e| e.to_string())?;
            crate::io::atomic::write_bytes(&path.join("provenance.json"), &json).map_err(|e| e.to_string())?;
            Ok(format!("{} frames (.{ext}) in {}", files.len(), path.display()))
        }
    }
}

/// Image size of the PNG exports.
pub const PNG_SIZE: [u32; 2] = [1280, 720];
/// Views of a turntable.
pub const TURNTABLE_VIEWS: usize = 36;

/// Renders `views` of the shown sequences into `dir` as `frame_0000.png`... with
/// `provenance.json`; returns what was written, for the log.
pub fn write_png_views(
    dir: &Path,
    shown: &[ShownSequence],
    style: &MotionStyle,
    settings: &RenderSettings,
    views: &[View],
    provenance: &serde_json::Value,
) -> Result<String, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let digits = views.len().saturating_sub(1).to_string().len().max(4);
    motion::render_views::<anyhow::Error>(shown, style, settings, PNG_SIZE, views, |k, image| {
        crate::io::image::write_png(&dir.join(format!("frame_{k:0digits$}.png")), &image)?;
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    let json = serde_json::to_vec_pretty(provenance).map_err(|e| e.to_string())?;
    crate::io::atomic::write_bytes(&dir.join("provenance.json"), &json).map_err(|e| e.to_string())?;
    Ok(format!("{} PNG images in {}", views.len(), dir.display()))
}

/// What an exported sequence came from.
fn provenance(session: &Session, id: u64, sequence: &MotionSequence, format: Format) -> serde_json::Value {
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let input = session.get(id).map_or(
        serde_json::Value::Null,
        |a| serde_json::json!({"name": a.name, "path": a.path}),
    );
    serde_json::json!({
        "program": "latent-workbench",
        "version": crate::VERSION,
        "created_unix_s": created,
        "input": input,
        "made_by": {
            "operation": "motion export",
            "format": match format {
                Format::Glb => "glb: frame 1 as the base mesh, later frames as morph targets, one animation".to_string(),
                Format::Frames(ext) => format!("one .{ext} per frame"),
            },
            "frames": sequence.len(),
            "fps": sequence.fps,
            "faces": sequence.triangles.len(),
            "points_per_frame": sequence.corresponding(),
        },
    })
}

/// Export buttons: images of the view, then each visible sequence's files.
pub fn section(ui: &mut egui::Ui, session: &mut Session, settings: &MotionSettings) {
    ui.strong("Export");
    let shown = session.motion.visible_sequences();
    let busy = session.motion.export.is_some();
    if !shown.is_empty() {
        ui.horizontal(|ui| {
            let mut views = None;
            let camera = settings.viewport.camera;
            if ui
                .add_enabled(!busy, egui::Button::new("PNG frames…"))
                .on_hover_text("One image per frame of the view as shown (camera, colours, trails)")
                .clicked()
            {
                views = Some(("playback frames", motion::playback_views(&shown, camera)));
            }
            if ui
                .add_enabled(!busy, egui::Button::new("Turntable…"))
                .on_hover_text(format!("{TURNTABLE_VIEWS} views turning once around the current frame"))
                .clicked()
            {
                let t = session.motion.playback.time;
                views = Some(("turntable", motion::turntable_views(t, camera, TURNTABLE_VIEWS)));
            }
            if let Some((what, views)) = views {
                let provenance = serde_json::json!({
                    "program": "latent-workbench",
                    "version": crate::VERSION,
                    "inputs": shown.iter().map(|s| {
                        session.get(s.id).map_or(serde_json::Value::Null, |a| serde_json::json!({"name": a.name, "path": a.path}))
                    }).collect::<Vec<_>>(),
                    "made_by": {"operation": what, "images": views.len(), "size": PNG_SIZE},
                });
                let mut render = settings.viewport.settings;
                // The scene is laid out already (see the tab); the renderer must not shift it.
                render.arrangement = crate::render::Arrangement::Overlay;
                session.motion.export = Some(png_job(shown.clone(), settings.style(), render, views, provenance, session.waker.clone()));
            }
        });
    }
    let rows: Vec<(u64, String, Arc<MotionSequence>)> = session
        .motion
        .visible()
        .map(|(id, s)| {
            let name = session.get(*id).map_or_else(String::new, |a| a.name.clone());
            (*id, name, s.shown.sequence.clone())
        })
        .collect();
    if rows.is_empty() {
        ui.weak("No sequence in the view.");
        return;
    }
    for (id, name, sequence) in rows {
        ui.label(&name);
        ui.horizontal(|ui| {
            let glb_ok = sequence.corresponding().is_some();
            let mut chosen = None;
            if ui
                .add_enabled(!busy && glb_ok, egui::Button::new("GLB…"))
                .on_hover_text("One animated .glb: the frames as morph targets")
                .clicked()
            {
                chosen = Some(Format::Glb);
            }
            if ui.add_enabled(!busy, egui::Button::new("OBJ frames…")).clicked() {
                chosen = Some(Format::Frames("obj"));
            }
            if ui.add_enabled(!busy, egui::Button::new("PLY frames…")).clicked() {
                chosen = Some(Format::Frames("ply"));
            }
            if let Some(format) = chosen {
                let provenance = provenance(session, id, &sequence, format);
                session.motion.export = Some(job(
                    name.clone(),
                    sequence.clone(),
                    format,
                    provenance,
                    session.waker.clone(),
                ));
            }
        });
    }
}

fn job(
    name: String,
    sequence: Arc<MotionSequence>,
    format: Format,
    provenance: serde_json::Value,
    waker: Option<jobs::Waker>,
) -> jobs::JobHandle<Option<String>> {
    let stem = crate::app::panels::file_stem(&name);
    jobs::spawn(format!("Export {name}"), waker, move |ctx| {
        let dialog = rfd::FileDialog::new().set_title("Export sequence");
        let path = match format {
            Format::Glb => dialog
                .set_file_name(format!("{stem}.glb"))
                .add_filter("glTF binary", &["glb"])
                .save_file(),
            Format::Frames(_) => dialog.pick_folder().map(|dir| dir.join(&stem)),
        };
        let Some(path) = path else { return Ok(None) };
        ctx.set(0.3, "writing");
        write_export(&path, &sequence, format, &provenance)
            .map(Some)
            .map_err(JobError::Failed)
    })
}

fn png_job(
    shown: Vec<ShownSequence>,
    style: MotionStyle,
    settings: RenderSettings,
    views: Vec<View>,
    provenance: serde_json::Value,
    waker: Option<jobs::Waker>,
) -> jobs::JobHandle<Option<String>> {
    jobs::spawn("Export PNG images", waker, move |ctx| {
        let Some(dir) = rfd::FileDialog::new().set_title("Folder for the images").pick_folder() else {
            return Ok(None);
        };
        ctx.set(0.1, "rendering");
        write_png_views(&dir, &shown, &style, &settings, &views, &provenance)
            .map(Some)
            .map_err(JobError::Failed)
    })
}

pub fn poll(session: &mut Session) {
    let Some(job) = &session.motion.export else { return };
    let Some(result) = job.poll() else { return };
    session.motion.export = None;
    match result {
        Ok(Some(what)) => session.log.info(format!("exported {what}")),
        Ok(None) | Err(JobError::Cancelled) => {}
        Err(e) => session.log.error(format!("export failed: {e}")),
    }
}
