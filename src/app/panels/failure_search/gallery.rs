//! The gallery of a finished search: the summary (SSR(A), held-out confirmed, SSR(H), NGR), then
//! one card per candidate (the failures the ensemble found, or every restart) with its images,
//! every classifier's verdict and the normality test, and Accept / Reject buttons for a person's
//! judgement. Keys over the gallery: Up/Down pick a card, A accepts, R rejects, U clears.

use super::FailureSearchSettings;
use super::compute::Finished;
use crate::methods::sage::gallery::planar_to_rgb8;
use crate::methods::sage::search::{Candidate, Objective, SearchConfig};
use std::collections::HashMap;

const THUMB_PX: f32 = 80.0;

#[derive(Default)]
pub struct GalleryView {
    /// Per (restart, image) its texture.
    textures: HashMap<(usize, usize), egui::TextureHandle>,
    /// Index into the candidates of the card picked for the keyboard.
    selected: Option<usize>,
}

impl GalleryView {
    /// A new result: every texture is stale.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or("–".into(), |v| format!("{:.1} %", v * 100.0))
}

/// The class a candidate's image `j` was asked to show (or, for a switch, meant to show).
fn asked_class(config: &SearchConfig, image: usize) -> usize {
    match config.objective {
        Objective::Unrelated => config.class,
        Objective::Distorted => image,
        Objective::SwitchCondition { target } => target,
    }
}

/// "name: top ellipse 0.91 (heart 0.05)" for one classifier's probabilities of one image.
fn verdict_line(name: &str, probs: &[f32], asked: usize, class_names: &[String]) -> String {
    let (top, p) = probs
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or((0, 0.0), |(i, p)| (i, *p));
    let class = |i: usize| class_names.get(i).cloned().unwrap_or_else(|| format!("class {i}"));
    let asked_p = probs.get(asked).copied().unwrap_or(f32::NAN);
    if top == asked {
        format!("{name}: {} {p:.2}", class(top))
    } else {
        format!("{name}: {} {p:.2} ({} {asked_p:.2})", class(top), class(asked))
    }
}

pub fn show(
    ui: &mut egui::Ui,
    finished: &Finished,
    settings: &mut FailureSearchSettings,
    view: &mut GalleryView,
) -> Vec<(usize, Option<bool>)> {
    let result = &finished.result;
    let info = &finished.info;
    let s = result.summary();
    let found = result.candidates.iter().filter(|c| c.auto_success).count();
    ui.horizontal_wrapped(|ui| {
        ui.strong(format!("SSR(A) {} ({found}/{})", pct(Some(s.ssr_auto)), s.restarts))
            .on_hover_text("Share of restarts whose result every ensemble member calls a failure");
        ui.separator();
        ui.label(format!("held-out confirmed {}", pct(s.held_out_confirmed_rate)))
            .on_hover_text("Share of restarts the held-out judge (never used for gradients) confirms too");
        ui.separator();
        ui.label(format!("SSR(H) {} of {} judged", pct(s.ssr_human), s.human_judged))
            .on_hover_text("Share of the candidates you judged that you accepted as real generator failures");
        ui.separator();
        ui.label(format!("NGR {}", pct(s.non_gaussian_rate)))
            .on_hover_text("Share of the ensemble's failures whose latent fails a KS normality test (α = 0.05)");
        ui.separator();
        if let Some(real) = s.confirmed_generator_failure_rate {
            ui.label(format!("confirmed and drawn wrong {}", pct(Some(real))))
                .on_hover_text(
                    "The generator knows what it drew: share of restarts the judge confirms whose drawn shape really is another class (the rest are classifier errors)",
                );
            ui.separator();
        }
        ui.weak(format!("{} generator calls, {:.1} s", s.generator_calls, s.seconds));
    });
    ui.horizontal(|ui| {
        ui.checkbox(&mut settings.show_all, "Show every restart");
        ui.weak(
            "Accept: a real generator failure; Reject: not one (e.g. the classifiers err). Keys: Up, Down, A, R, U",
        );
    });
    let shown: Vec<usize> = (0..result.candidates.len())
        .filter(|&i| settings.show_all || result.candidates[i].auto_success)
        .collect();
    if shown.is_empty() {
        ui.label("The ensemble found no failure in this run: try another class, mode, step size or a larger budget.");
        return Vec::new();
    }
    let [_, h, w] = result.image_shape;
    let mut verdicts: Vec<(usize, Option<bool>)> = Vec::new();
    let scroll = egui::ScrollArea::vertical().id_salt("sage_gallery").show(ui, |ui| {
        for &i in &shown {
            let c = &result.candidates[i];
            let selected = view.selected == Some(i);
            let frame = egui::Frame::group(ui.style()).fill(if selected {
                ui.visuals().selection.bg_fill.gamma_multiply(0.35)
            } else {
                ui.visuals().panel_fill
            });
            frame.show(ui, |ui| {
                ui.horizontal_top(|ui| {
                    for (j, img) in c.images.iter().enumerate() {
                        let tex = view.textures.entry((c.restart, j)).or_insert_with(|| {
                            let rgb = planar_to_rgb8(img, h, w);
                            ui.ctx().load_texture(
                                format!("sage_candidate_{}_{j}", c.restart),
                                egui::ColorImage::from_rgb([w, h], &rgb),
                                egui::TextureOptions::NEAREST,
                            )
                        });
                        ui.image((tex.id(), egui::vec2(THUMB_PX, THUMB_PX)));
                    }
                    ui.vertical(|ui| {
                        if card_text(ui, c, selected, result.config, info, &settings_names(info)).clicked() {
                            view.selected = Some(i);
                        }
                        ui.horizontal(|ui| {
                            if ui.selectable_label(c.human == Some(true), "Accept").clicked() {
                                verdicts.push((i, (c.human != Some(true)).then_some(true)));
                            }
                            if ui.selectable_label(c.human == Some(false), "Reject").clicked() {
                                verdicts.push((i, (c.human != Some(false)).then_some(false)));
                            }
                        });
                    });
                });
            });
        }
    });
    if scroll
        .inner_rect
        .contains(ui.input(|i| i.pointer.hover_pos()).unwrap_or_default())
    {
        keyboard(ui, &shown, view, result, &mut verdicts);
    }
    if let Some((i, _)) = verdicts.last() {
        view.selected = Some(*i);
    }
    verdicts
}

fn settings_names(info: &crate::methods::sage::report::RunInfo) -> Vec<String> {
    let mut names: Vec<String> = info.models["ensemble"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if let Some(h) = info.models["held_out"]["name"].as_str() {
        names.push(h.to_string());
    }
    names
}

/// The card's text; its header picks the card (returned).
fn card_text(
    ui: &mut egui::Ui,
    c: &Candidate,
    selected: bool,
    config: SearchConfig,
    info: &crate::methods::sage::report::RunInfo,
    names: &[String],
) -> egui::Response {
    let status = match (c.auto_success, c.held_out_success) {
        (true, Some(true)) => "ensemble failure, judge confirms",
        (true, Some(false)) => "ensemble failure, judge does not confirm",
        (true, None) => "ensemble failure",
        (false, _) => "no failure",
    };
    let header = ui.selectable_label(
        selected,
        egui::RichText::new(format!(
            "restart {} · iteration {} · objective {:.2} · {status}",
            c.restart, c.iteration, c.objective_value
        ))
        .strong(),
    );
    // The first image speaks for the candidate (the asked class; a switch's first fresh latent).
    let asked = asked_class(&config, 0);
    let mut lines: Vec<String> = c
        .member_probs
        .first()
        .map(|members| {
            members
                .iter()
                .enumerate()
                .map(|(m, p)| {
                    let name = names.get(m).cloned().unwrap_or_else(|| format!("member {m}"));
                    verdict_line(&name, p, asked, &info.class_names)
                })
                .collect()
        })
        .unwrap_or_default();
    if let Some(p) = c.held_out_probs.as_ref().and_then(|h| h.first()) {
        let name = names
            .get(c.member_probs.first().map_or(0, Vec::len))
            .cloned()
            .unwrap_or("held-out".into());
        lines.push(format!("judge {}", verdict_line(&name, p, asked, &info.class_names)));
    }
    if let Some(shares) = c.drawn_shares.as_ref().and_then(|d| d.first()) {
        let verdict = match c.generator_failure {
            Some(true) => "a generator failure",
            _ => "not a generator failure",
        };
        lines.push(format!(
            "{} ({verdict})",
            verdict_line("drawn", shares, asked, &info.class_names)
        ));
    }
    ui.label(lines.join("  ·  "));
    if let (Some(p), Some(ng)) = (c.ks_p, c.non_gaussian) {
        ui.weak(format!(
            "KS p {p:.3}{} · |z|²/d {:.2}",
            if ng { " (non-Gaussian)" } else { "" },
            c.norm_ratio.unwrap_or(f64::NAN)
        ));
    }
    header
}

/// Up/Down move the picked card; A accepts, R rejects, U clears its verdict.
fn keyboard(
    ui: &egui::Ui,
    shown: &[usize],
    view: &mut GalleryView,
    result: &crate::methods::sage::search::SearchResult,
    verdicts: &mut Vec<(usize, Option<bool>)>,
) {
    let pos = view.selected.and_then(|s| shown.iter().position(|&i| i == s));
    let (down, up, accept, reject, clear) = ui.input_mut(|i| {
        (
            i.consume_key(egui::Modifiers::NONE, egui::Key::ArrowDown),
            i.consume_key(egui::Modifiers::NONE, egui::Key::ArrowUp),
            i.consume_key(egui::Modifiers::NONE, egui::Key::A),
            i.consume_key(egui::Modifiers::NONE, egui::Key::R),
            i.consume_key(egui::Modifiers::NONE, egui::Key::U),
        )
    });
    if down {
        view.selected = Some(shown[pos.map_or(0, |p| (p + 1).min(shown.len() - 1))]);
    }
    if up {
        view.selected = Some(shown[pos.map_or(0, |p| p.saturating_sub(1))]);
    }
    if let Some(i) = view.selected.filter(|i| *i < result.candidates.len()) {
        if accept {
            verdicts.push((i, Some(true)));
        } else if reject {
            verdicts.push((i, Some(false)));
        } else if clear {
            verdicts.push((i, None));
        }
    }
}
