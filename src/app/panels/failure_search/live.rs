//! The live view of a search: the objective per iteration (mean over restarts, and the mean of
//! each restart's best so far), every ensemble member's mean probability of the class being
//! pushed, and the best image so far. Drawn from the records the job appends.

use super::compute::LiveView;

const CHART_HEIGHT: f32 = 150.0;
const PREVIEW_PX: f32 = 150.0;
/// Colours of the member curves, in ensemble order.
const MEMBER_COLORS: [egui::Color32; 6] = [
    egui::Color32::from_rgb(86, 180, 233),
    egui::Color32::from_rgb(230, 159, 0),
    egui::Color32::from_rgb(0, 158, 115),
    egui::Color32::from_rgb(204, 121, 167),
    egui::Color32::from_rgb(240, 228, 66),
    egui::Color32::from_rgb(213, 94, 0),
];

/// The best image's texture, with the preview it was made from (restart and objective).
#[derive(Default)]
pub struct LiveTextures {
    best: Option<((usize, u32), egui::TextureHandle)>,
}

/// One curve: its legend, colour and values per iteration.
struct Series {
    label: String,
    color: egui::Color32,
    values: Vec<f32>,
}

pub fn show(ui: &mut egui::Ui, live: &LiveView, members: &[String], textures: &mut LiveTextures, running: bool) {
    let (losses, probs, best, iterations) = {
        let l = live.lock().unwrap_or_else(|p| p.into_inner());
        let losses = vec![
            Series {
                label: "objective (mean of restarts)".into(),
                color: ui.visuals().text_color(),
                values: l.records.iter().map(|r| r.loss).collect(),
            },
            Series {
                label: "best so far".into(),
                color: egui::Color32::from_rgb(213, 94, 0),
                values: l.records.iter().map(|r| r.best_loss).collect(),
            },
        ];
        let probs: Vec<Series> = (0..l.records.first().map_or(0, |r| r.member_probs.len()))
            .map(|m| Series {
                label: members.get(m).cloned().unwrap_or_else(|| format!("member {m}")),
                color: MEMBER_COLORS[m % MEMBER_COLORS.len()],
                values: l.records.iter().map(|r| r.member_probs[m]).collect(),
            })
            .collect();
        (losses, probs, l.best.clone(), l.iterations)
    };
    if losses[0].values.is_empty() && !running {
        return;
    }
    ui.horizontal_top(|ui| {
        let chart_width = ((ui.available_width() - PREVIEW_PX - 30.0) / 2.0).max(160.0);
        ui.vertical(|ui| {
            ui.label("Objective (lower: stronger failure)");
            chart(ui, chart_width, &losses, None, iterations);
        });
        ui.vertical(|ui| {
            ui.label("p(class) per ensemble member");
            chart(ui, chart_width, &probs, Some((0.0, 1.0)), iterations);
        });
        ui.vertical(|ui| {
            ui.label("Best so far");
            match best {
                Some(b) => {
                    let key = (b.restart, b.loss.to_bits());
                    if textures.best.as_ref().is_none_or(|(k, _)| *k != key) {
                        let image = egui::ColorImage::from_rgb([b.width, b.height], &b.rgb);
                        let tex = ui.ctx().load_texture("sage_best", image, egui::TextureOptions::NEAREST);
                        textures.best = Some((key, tex));
                    }
                    if let Some((_, tex)) = &textures.best {
                        ui.image((tex.id(), egui::vec2(PREVIEW_PX, PREVIEW_PX)));
                    }
                    ui.weak(format!("restart {}, objective {:.2}", b.restart, b.loss));
                }
                None => {
                    ui.weak("(none yet)");
                }
            }
        });
    });
}

/// A line chart of `series` over iterations `0..iterations` (the x axis spans the whole search,
/// so progress reads at a glance), with its y range (given, or the data's) and a legend.
fn chart(ui: &mut egui::Ui, width: f32, series: &[Series], y: Option<(f32, f32)>, iterations: usize) {
    let (rect, _) = ui.allocate_exact_size(egui::vec2(width, CHART_HEIGHT), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    let visuals = ui.visuals();
    painter.rect_filled(rect, 2.0, visuals.extreme_bg_color);
    let finite = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .filter(|v| v.is_finite());
    let (lo, hi) =
        y.unwrap_or_else(|| finite.fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v))));
    let n = series
        .iter()
        .map(|s| s.values.len())
        .max()
        .unwrap_or(0)
        .max(iterations)
        .max(2);
    // Room on the left for the y labels and below for the iteration count.
    let plot = egui::Rect::from_min_max(rect.min + egui::vec2(40.0, 8.0), rect.max - egui::vec2(8.0, 18.0));
    let text = visuals.weak_text_color();
    let font = egui::FontId::proportional(10.0);
    if lo.is_finite() && hi.is_finite() {
        let span = if hi > lo { hi - lo } else { 1.0 };
        let to_screen = |i: usize, v: f32| {
            egui::pos2(
                plot.left() + plot.width() * i as f32 / (n - 1) as f32,
                plot.bottom() - plot.height() * (v - lo) / span,
            )
        };
        for (v, align) in [(hi, egui::Align2::RIGHT_TOP), (lo, egui::Align2::RIGHT_BOTTOM)] {
            painter.text(
                egui::pos2(plot.left() - 4.0, to_screen(0, v).y),
                align,
                format!("{v:.2}"),
                font.clone(),
                text,
            );
        }
        for s in series {
            let points: Vec<egui::Pos2> = s
                .values
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_finite())
                .map(|(i, v)| to_screen(i, *v))
                .collect();
            painter.add(egui::Shape::line(points, egui::Stroke::new(1.5, s.color)));
        }
    }
    painter.text(
        rect.right_bottom() - egui::vec2(4.0, 2.0),
        egui::Align2::RIGHT_BOTTOM,
        format!(
            "iteration {}/{}",
            series.first().map_or(0, |s| s.values.len()),
            iterations
        ),
        font.clone(),
        text,
    );
    let mut legend_y = rect.top() + 4.0;
    for s in series {
        painter.text(
            egui::pos2(rect.right() - 4.0, legend_y),
            egui::Align2::RIGHT_TOP,
            &s.label,
            font.clone(),
            s.color,
        );
        legend_y += 12.0;
    }
}
