//! The Stitching tab: two latent spaces of the same samples compared through shared anchors
//! (relative representations, issue #5). Side-by-side PCA maps of space A and space B coloured by
//! a label column, anchors marked, a selection linked across both maps with the selected inputs
//! below; metrics absolute against relative; zero-shot stitching scores and reconstructions for
//! the sprite demo pair.
//!
//! All computation runs in one background job (`compute`); the panel only lays out and scales.

mod colors;
pub mod compute;
mod gallery;
mod metrics;
pub mod plot;

use crate::app::{AppState, Command, Session};
use crate::core::jobs::{self, JobError, JobHandle};
use crate::methods::relreps::AnchorMode;
use compute::{Analysis, AnalysisKey, Inputs, Output, Similarity, Source};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;

/// The family of the sprite demo models in the model registry.
const DEMO_FAMILY: &str = "relreps";
const DEFAULT_MODEL_A: &str = "relreps-sprites-a";
const DEFAULT_MODEL_B: &str = "relreps-sprites-b";
/// Width of the metrics column beside the plots.
const SIDE_WIDTH: f32 = 330.0;
/// Height of the strip of selected inputs under the plots.
const STRIP_HEIGHT: f32 = 250.0;
const JOB_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// What the panel remembers across restarts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct StitchingSettings {
    /// Compare two latent files instead of the demo models.
    pub use_files: bool,
    pub model_a: String,
    pub model_b: String,
    /// Held-out sprites the demo models encode.
    pub samples: usize,
    pub file_a: String,
    pub file_b: String,
    /// Optional labels/metadata CSV for the files.
    pub labels: String,
    pub anchors: usize,
    pub anchor_mode: AnchorMode,
    pub similarity: Similarity,
    /// Neighbourhood size of Jaccard@k and MRR@k.
    pub k: usize,
    pub seed: u64,
    /// Label column that colours the points.
    pub color_by: Option<String>,
}

impl Default for StitchingSettings {
    fn default() -> Self {
        Self {
            use_files: false,
            model_a: DEFAULT_MODEL_A.into(),
            model_b: DEFAULT_MODEL_B.into(),
            samples: 2000,
            file_a: String::new(),
            file_b: String::new(),
            labels: String::new(),
            anchors: 300,
            anchor_mode: AnchorMode::Uniform,
            similarity: Similarity::Raw,
            k: 10,
            seed: 0,
            color_by: Some("shape".into()),
        }
    }
}

/// Which path a Browse button fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FileSlot {
    A,
    B,
    Labels,
}

/// Per-session state of the panel (jobs, results, selection, textures); never persisted.
#[derive(Default)]
pub struct StitchingRuntime {
    inputs: Option<Arc<Inputs>>,
    analysis: Option<Arc<Analysis>>,
    job: Option<JobHandle<Output>>,
    /// Why the last run failed.
    pub error: Option<String>,
    /// Selected rows (sorted), the same samples in both spaces.
    selection: Vec<usize>,
    selected: Vec<bool>,
    coloring: Option<(Option<String>, colors::Coloring)>,
    plots: [plot::PlotView; 2],
    gallery: gallery::Gallery,
    browse: Option<(FileSlot, JobHandle<Option<PathBuf>>)>,
    /// The demo pair was started once on opening (not again after a failure).
    opened: bool,
}

impl StitchingRuntime {
    /// Whether a comparison or a decoding of the selection is running.
    pub fn busy(&self) -> bool {
        self.job.is_some() || self.gallery.busy()
    }
    pub fn inputs(&self) -> Option<&Inputs> {
        self.inputs.as_deref()
    }
    pub fn analysis(&self) -> Option<&Analysis> {
        self.analysis.as_deref()
    }
    /// Ids of the selected samples (the same in both spaces).
    pub fn selected_ids(&self) -> Vec<String> {
        let Some(inputs) = &self.inputs else { return Vec::new() };
        self.selection.iter().map(|&i| inputs.a.ids()[i].clone()).collect()
    }
    /// Where row `row` was drawn in plot 0 (space A) or 1 (space B) on the last frame.
    pub fn screen_pos(&self, plot: usize, row: usize) -> Option<egui::Pos2> {
        let inputs = self.inputs.as_ref()?;
        let pca = if plot == 0 { &inputs.pca_a } else { &inputs.pca_b };
        Some(self.plots.get(plot)?.frame?.to_screen(*pca.points.get(row)?))
    }
    /// The plot rectangle drawn last frame.
    pub fn plot_rect(&self, plot: usize) -> Option<egui::Rect> {
        Some(self.plots.get(plot)?.frame?.rect)
    }

    /// Starts loading (if needed) and analysing in the background; a running job is cancelled.
    pub fn start(&mut self, source: Source, key: AnalysisKey, waker: Option<jobs::Waker>) {
        if let Some(old) = self.job.take() {
            old.cancel();
        }
        self.error = None;
        let cached = self.inputs.clone();
        let name = format!("Comparing spaces ({} anchors)", key.anchors);
        self.job = Some(jobs::spawn(name, waker, move |ctx| {
            compute::run(source, cached, key, ctx)
        }));
    }

    fn poll(&mut self, session_log: &mut crate::app::notify::Log) {
        let Some(job) = &self.job else { return };
        let Some(result) = job.poll() else { return };
        self.job = None;
        match result {
            Ok(out) => {
                let same = self.inputs.as_ref().is_some_and(|i| Arc::ptr_eq(i, &out.inputs));
                if !same {
                    self.selection.clear();
                    self.selected = vec![false; out.inputs.a.len()];
                    self.coloring = None;
                    self.gallery.clear();
                    session_log.info(format!(
                        "Stitching: loaded {} and {} ({} shared samples)",
                        out.inputs.name_a,
                        out.inputs.name_b,
                        out.inputs.a.len()
                    ));
                }
                self.inputs = Some(out.inputs);
                self.analysis = Some(Arc::new(out.analysis));
                self.gallery.forget_reconstructions();
            }
            Err(JobError::Cancelled) => {}
            Err(e) => {
                session_log.error(format!("Stitching: {e}"));
                self.error = Some(e.to_string());
            }
        }
    }

    fn edit_selection(&mut self, edit: plot::SelectionEdit) {
        let n = self.selected.len();
        match edit {
            plot::SelectionEdit::Clear => self.selected.iter_mut().for_each(|s| *s = false),
            plot::SelectionEdit::Replace(rows) => {
                self.selected.iter_mut().for_each(|s| *s = false);
                rows.into_iter()
                    .filter(|&r| r < n)
                    .for_each(|r| self.selected[r] = true);
            }
            plot::SelectionEdit::Add(rows) => rows
                .into_iter()
                .filter(|&r| r < n)
                .for_each(|r| self.selected[r] = true),
            plot::SelectionEdit::Toggle(r) if r < n => self.selected[r] = !self.selected[r],
            plot::SelectionEdit::Toggle(_) => {}
        }
        self.selection = (0..n).filter(|&i| self.selected[i]).collect();
    }
}

/// The demo models registered under the relreps family, by name.
fn demo_models(session: &Session) -> Vec<&crate::core::manifest::Entry> {
    session
        .models
        .iter()
        .filter(|m| m.manifest.family == DEMO_FAMILY)
        .collect()
}

/// The source the settings describe, or what is missing.
fn source(settings: &StitchingSettings, session: &Session) -> Result<Source, String> {
    if settings.use_files {
        let path = |s: &str| (!s.trim().is_empty()).then(|| PathBuf::from(s.trim()));
        let (Some(a), Some(b)) = (path(&settings.file_a), path(&settings.file_b)) else {
            return Err("Pick two latent files (.npy, .safetensors or .csv) holding the same samples.".into());
        };
        return Ok(Source::Files {
            a,
            b,
            labels: path(&settings.labels),
        });
    }
    let models = demo_models(session);
    let find = |name: &str| models.iter().find(|m| m.manifest.name == name);
    match (find(&settings.model_a), find(&settings.model_b)) {
        (Some(a), Some(b)) => Ok(Source::Demo {
            name_a: a.manifest.name.clone(),
            dir_a: a.dir.clone(),
            name_b: b.manifest.name.clone(),
            dir_b: b.dir.clone(),
            samples: settings.samples,
            seed: crate::methods::relreps::demo::HELDOUT_SEED,
        }),
        _ => Err(format!(
            "Pick two sprite demo models (family \"{DEMO_FAMILY}\"); {} and {} are not registered.",
            settings.model_a, settings.model_b
        )),
    }
}

/// The analysis settings; the stratifying column is the colour column when it holds classes.
fn analysis_key(settings: &StitchingSettings, inputs: Option<&Inputs>) -> AnalysisKey {
    let label_column = match inputs {
        Some(i) => compute::stratify_column(i, settings.color_by.as_deref()),
        // Resolved by the job once the spaces are loaded.
        None => settings.color_by.clone(),
    };
    AnalysisKey {
        anchors: settings.anchors.clamp(1, inputs.map_or(usize::MAX, |i| i.a.len())),
        mode: settings.anchor_mode,
        similarity: settings.similarity,
        k: settings.k.max(1),
        seed: settings.seed,
        label_column,
    }
}

pub fn ui(ui: &mut egui::Ui, state: &mut AppState, session: &mut Session, _commands: &mut Vec<Command>) {
    let settings = &mut state.stitching;
    let mut rt = std::mem::take(&mut session.stitching);
    rt.poll(&mut session.log);
    poll_browse(&mut rt, settings);
    if rt.job.is_some() || rt.browse.is_some() {
        ui.ctx().request_repaint_after(JOB_POLL);
    }
    // The tab opens comparing the demo pair when both models are there.
    if !rt.opened {
        rt.opened = true;
        if !settings.use_files
            && rt.inputs.is_none()
            && let Ok(src) = source(settings, session)
        {
            rt.start(src, analysis_key(settings, None), session.waker.clone());
        }
    }

    ui.heading("Stitching: relative representations");
    source_controls(ui, settings, session, &mut rt);
    analysis_controls(ui, settings, session, &mut rt);
    ui.separator();

    match (&rt.inputs, &rt.job) {
        (None, Some(_)) => {
            ui.weak("Computing the first comparison; the maps appear when it is done.");
        }
        (None, None) => {
            empty_hint(ui, settings, session, &rt);
        }
        (Some(_), _) => results(ui, settings, &mut rt, session.waker.clone()),
    }
    session.stitching = rt;
}

/// Says what to do when nothing is loaded.
fn empty_hint(ui: &mut egui::Ui, settings: &StitchingSettings, session: &Session, rt: &StitchingRuntime) {
    if let Some(e) = &rt.error {
        ui.colored_label(ui.visuals().error_fg_color, e);
        ui.add_space(6.0);
    }
    if settings.use_files {
        ui.label(
            "Pick two latent files holding the same samples (matched by an id column, otherwise by row), and \
             optionally a labels CSV, then press Compare.",
        );
    } else if demo_models(session).len() < 2 {
        ui.label(egui::RichText::new("No sprite demo models are registered yet.").strong());
        ui.label(
            "Train the pair with `latent-workbench train relreps-sprites-a` and `latent-workbench train \
             relreps-sprites-b` (they are saved under models/ and appear here), or choose \"Latent files\" above \
             to compare two latent spaces you exported yourself.",
        );
    } else {
        ui.label("Pick two demo models and press Compare.");
    }
}

fn source_controls(ui: &mut egui::Ui, settings: &mut StitchingSettings, session: &Session, rt: &mut StitchingRuntime) {
    ui.horizontal_wrapped(|ui| {
        ui.label("Spaces:");
        ui.radio_value(&mut settings.use_files, false, "Demo models");
        ui.radio_value(&mut settings.use_files, true, "Latent files");
        ui.separator();
        if settings.use_files {
            for (slot, label, hint) in [
                (FileSlot::A, "A", "space A: .npy, .safetensors or .csv"),
                (FileSlot::B, "B", "space B: the same samples"),
                (
                    FileSlot::Labels,
                    "labels",
                    "optional labels CSV (id column or row order)",
                ),
            ] {
                ui.label(label);
                let text = match slot {
                    FileSlot::A => &mut settings.file_a,
                    FileSlot::B => &mut settings.file_b,
                    FileSlot::Labels => &mut settings.labels,
                };
                ui.add(egui::TextEdit::singleline(text).hint_text(hint).desired_width(170.0));
                if ui
                    .add_enabled(rt.browse.is_none(), egui::Button::new("…"))
                    .on_hover_text("Browse")
                    .clicked()
                {
                    rt.browse = Some((slot, browse(slot, session.waker.clone())));
                }
            }
        } else {
            let models = demo_models(session);
            for (label, name) in [("A", &mut settings.model_a), ("B", &mut settings.model_b)] {
                egui::ComboBox::from_label(label)
                    .selected_text(name.as_str())
                    .show_ui(ui, |ui| {
                        for m in &models {
                            ui.selectable_value(name, m.manifest.name.clone(), &m.manifest.name)
                                .on_hover_text(&m.manifest.description);
                        }
                    });
            }
            ui.add(
                egui::DragValue::new(&mut settings.samples)
                    .range(100..=20_000)
                    .speed(10)
                    .prefix("sprites "),
            )
            .on_hover_text("Held-out sprites both models encode");
        }
    });
}

fn analysis_controls(
    ui: &mut egui::Ui,
    settings: &mut StitchingSettings,
    session: &Session,
    rt: &mut StitchingRuntime,
) {
    let n = rt.inputs.as_ref().map_or(usize::MAX, |i| i.a.len());
    ui.horizontal_wrapped(|ui| {
        ui.add(
            egui::DragValue::new(&mut settings.anchors)
                .range(1..=n.min(10_000))
                .prefix("anchors "),
        )
        .on_hover_text("How many samples both spaces are expressed against (chosen in A, the same ids in B)");
        egui::ComboBox::from_id_salt("anchor-mode")
            .selected_text(settings.anchor_mode.name())
            .show_ui(ui, |ui| {
                for m in [
                    AnchorMode::Uniform,
                    AnchorMode::Stratified,
                    AnchorMode::Fps,
                    AnchorMode::Kmeans,
                ] {
                    ui.selectable_value(&mut settings.anchor_mode, m, m.name());
                }
            })
            .response
            .on_hover_text("Anchor selection: uniform random, stratified by class, farthest-point or k-means-nearest");
        ui.separator();
        ui.label("Similarity vectors:");
        for s in Similarity::ALL {
            ui.radio_value(&mut settings.similarity, s, s.label());
        }
        ui.separator();
        ui.add(egui::DragValue::new(&mut settings.k).range(1..=100).prefix("k "))
            .on_hover_text("Neighbourhood size of Jaccard@k and MRR@k");
        ui.add(egui::DragValue::new(&mut settings.seed).prefix("seed "));
        ui.separator();
        let src = source(settings, session);
        let key = analysis_key(settings, rt.inputs.as_deref());
        let running = rt.job.is_some();
        let button = ui
            .add_enabled(src.is_ok() && !running, egui::Button::new("Compare"))
            .on_hover_text(src.as_ref().err().map_or("Compare the two spaces", String::as_str));
        if button.clicked()
            && let Ok(src) = src
        {
            rt.start(src, key.clone(), session.waker.clone());
        }
        if let Some(job) = &rt.job {
            let p = job.progress();
            ui.add(
                egui::ProgressBar::new(p.fraction())
                    .desired_width(180.0)
                    .text(p.message()),
            );
            if ui.button("Cancel").clicked() {
                job.cancel();
            }
        } else if rt.analysis.as_ref().is_some_and(|a| a.key != key) {
            ui.colored_label(ui.visuals().warn_fg_color, "settings changed: press Compare");
        }
    });
}

/// A native file dialog on its own thread (it blocks that thread, not the UI).
fn browse(slot: FileSlot, waker: Option<jobs::Waker>) -> JobHandle<Option<PathBuf>> {
    jobs::spawn("Pick a file", waker, move |_| {
        let title = match slot {
            FileSlot::A => "Latent space A",
            FileSlot::B => "Latent space B",
            FileSlot::Labels => "Labels CSV",
        };
        let dialog = rfd::FileDialog::new().set_title(title);
        let dialog = if slot == FileSlot::Labels {
            dialog.add_filter("CSV", &["csv"])
        } else {
            dialog.add_filter("Latents", &["npy", "safetensors", "csv"])
        };
        Ok(dialog.pick_file())
    })
}

fn poll_browse(rt: &mut StitchingRuntime, settings: &mut StitchingSettings) {
    let Some((slot, job)) = &rt.browse else { return };
    let Some(result) = job.poll() else { return };
    let slot = *slot;
    rt.browse = None;
    if let Ok(Some(path)) = result {
        let text = path.display().to_string();
        match slot {
            FileSlot::A => settings.file_a = text,
            FileSlot::B => settings.file_b = text,
            FileSlot::Labels => settings.labels = text,
        }
    }
}

/// Plots, metrics and the selection strip.
fn results(ui: &mut egui::Ui, settings: &mut StitchingSettings, rt: &mut StitchingRuntime, waker: Option<jobs::Waker>) {
    let Some(inputs) = rt.inputs.clone() else { return };
    let n = inputs.a.len();
    if rt.selected.len() != n {
        rt.selected = vec![false; n];
        rt.selection.clear();
    }
    // Colour column: the setting if the spaces have it, else the first column.
    let columns = inputs.a.columns();
    if settings
        .color_by
        .as_ref()
        .is_none_or(|c| !columns.iter().any(|k| &k.name == c))
    {
        settings.color_by = columns.first().map(|c| c.name.clone());
    }
    let plain = ui.visuals().text_color();
    if rt.coloring.as_ref().is_none_or(|(k, _)| *k != settings.color_by) {
        let column = settings
            .color_by
            .as_ref()
            .and_then(|c| columns.iter().find(|k| &k.name == c));
        rt.coloring = Some((settings.color_by.clone(), colors::color_by(column, n, plain)));
    }

    ui.horizontal_wrapped(|ui| {
        egui::ComboBox::from_label("Colour by")
            .selected_text(settings.color_by.as_deref().unwrap_or("(none)"))
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut settings.color_by, None, "(none)");
                for c in columns {
                    ui.selectable_value(&mut settings.color_by, Some(c.name.clone()), &c.name);
                }
            });
        if let Some((_, coloring)) = &rt.coloring {
            legend(ui, &coloring.legend);
        }
        ui.separator();
        ui.label(format!("{} of {n} selected", rt.selection.len()));
        if ui
            .add_enabled(!rt.selection.is_empty(), egui::Button::new("Clear selection"))
            .clicked()
        {
            rt.edit_selection(plot::SelectionEdit::Clear);
        }
        ui.weak("drag a box or click in either map; shift adds");
    });

    let area = ui.available_rect_before_wrap();
    ui.allocate_rect(area, egui::Sense::hover());
    let gap = 6.0;
    let strip_h = STRIP_HEIGHT.min(area.height() * 0.4);
    let side_w = SIDE_WIDTH.min(area.width() * 0.3);
    let plots_w = area.width() - side_w - gap;
    let plots_h = area.height() - strip_h - gap;
    let plot_w = (plots_w - gap) / 2.0;
    let rect_a = egui::Rect::from_min_size(area.min, egui::vec2(plot_w, plots_h));
    let rect_b = egui::Rect::from_min_size(area.min + egui::vec2(plot_w + gap, 0.0), egui::vec2(plot_w, plots_h));
    let side = egui::Rect::from_min_size(area.min + egui::vec2(plots_w + gap, 0.0), egui::vec2(side_w, plots_h));
    let strip = egui::Rect::from_min_size(
        area.min + egui::vec2(0.0, plots_h + gap),
        egui::vec2(area.width(), strip_h),
    );

    let anchors: &[usize] = rt.analysis.as_ref().map_or(&[], |a| &a.comparison.anchor_indices);
    let colors = rt.coloring.as_ref().map_or(&[][..], |(_, c)| &c.colors);
    let axes = |p: &crate::methods::relreps::Pca2| {
        [
            format!("PC1 ({:.0} %)", p.explained[0] * 100.0),
            format!("PC2 ({:.0} %)", p.explained[1] * 100.0),
        ]
    };
    let title_a = format!("A: {} ({}-d)", inputs.name_a, inputs.a.dim());
    let title_b = format!("B: {} ({}-d)", inputs.name_b, inputs.b.dim());
    let mut edits = Vec::new();
    let [view_a, view_b] = &mut rt.plots;
    for (rect, view, label, title, pca) in [
        (rect_a, view_a, "Space A plot", &title_a, &inputs.pca_a),
        (rect_b, view_b, "Space B plot", &title_b, &inputs.pca_b),
    ] {
        let data = plot::PlotData {
            label,
            title,
            axes: axes(pca),
            points: &pca.points,
            colors,
            anchors,
            selected: &rt.selected,
            selected_rows: &rt.selection,
            ids: inputs.a.ids(),
        };
        edits.extend(plot::show(ui, rect, view, &data));
    }
    for e in edits {
        rt.edit_selection(e);
    }

    let mut side_ui = ui.new_child(
        egui::UiBuilder::new()
            .max_rect(side)
            .layout(egui::Layout::top_down(egui::Align::Min)),
    );
    egui::ScrollArea::vertical()
        .id_salt("stitching-metrics")
        .auto_shrink([false; 2])
        .show(&mut side_ui, |ui| metrics::show(ui, &inputs, rt.analysis.as_deref()));

    let mut strip_ui = ui.new_child(
        egui::UiBuilder::new()
            .max_rect(strip)
            .layout(egui::Layout::top_down(egui::Align::Min)),
    );
    gallery::show(
        &mut strip_ui,
        &inputs,
        rt.analysis.as_ref(),
        &rt.selection,
        &mut rt.gallery,
        waker,
    );
}

fn legend(ui: &mut egui::Ui, legend: &colors::Legend) {
    match legend {
        colors::Legend::Plain => {}
        colors::Legend::Categories(classes) => {
            for (name, color) in classes.iter().take(12) {
                // A painted swatch: the default fonts have no filled-square glyph.
                let (rect, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
                ui.painter().rect_filled(rect, 1.0, *color);
                ui.label(name);
            }
            if classes.len() > 12 {
                ui.weak(format!("+{} more", classes.len() - 12));
            }
        }
        colors::Legend::Range { lo, hi } => {
            ui.label(format!("{lo:.3}"));
            let (rect, _) = ui.allocate_exact_size(egui::vec2(90.0, 12.0), egui::Sense::hover());
            let steps = 30;
            for s in 0..steps {
                let t0 = s as f32 / steps as f32;
                let r = egui::Rect::from_min_max(
                    egui::pos2(rect.left() + t0 * rect.width(), rect.top()),
                    egui::pos2(
                        rect.left() + (t0 + 1.0 / steps as f32) * rect.width() + 0.5,
                        rect.bottom(),
                    ),
                );
                ui.painter().rect_filled(r, 0.0, colors::ramp(t0));
            }
            ui.label(format!("{hi:.3}"));
        }
    }
}
