//! The numbers beside the maps: how well the two spaces agree, absolute against relative (and
//! Procrustes-aligned as the baseline), CKA, and the zero-shot stitching scores.

use super::compute::{Analysis, Inputs};
use crate::methods::relreps::MatchScores;

fn cell(ui: &mut egui::Ui, v: Option<f64>) {
    match v {
        Some(v) => ui.monospace(format!("{v:.3}")),
        None => ui.weak("n/a"),
    };
}

pub fn show(ui: &mut egui::Ui, inputs: &Inputs, analysis: Option<&Analysis>) {
    ui.label(egui::RichText::new("Agreement of A and B").strong());
    ui.weak(format!(
        "{} shared samples, widths {} and {}",
        inputs.a.len(),
        inputs.a.dim(),
        inputs.b.dim()
    ));
    if inputs.dropped.from_a + inputs.dropped.from_b > 0 {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            format!(
                "dropped {} samples of A and {} of B that the other lacks",
                inputs.dropped.from_a, inputs.dropped.from_b
            ),
        );
    }
    let Some(an) = analysis else {
        ui.weak("No comparison yet.");
        return;
    };
    let c = &an.comparison;
    ui.weak(format!(
        "{} {} anchors, similarity vectors: {}",
        c.anchor_indices.len(),
        c.options.mode.name(),
        an.key.similarity.label()
    ));
    let k = c.relative.k;
    let cols: [(&str, Option<&MatchScores>); 3] = [
        ("absolute", c.absolute.as_ref()),
        ("relative", Some(&c.relative)),
        ("Procrustes", Some(&c.procrustes.scores)),
    ];
    egui::Grid::new("stitching-metrics-grid")
        .striped(true)
        .num_columns(4)
        .spacing([10.0, 4.0])
        .show(ui, |ui| {
            ui.label("");
            for (name, _) in &cols {
                ui.label(egui::RichText::new(*name).strong());
            }
            ui.end_row();
            type Pick = fn(&MatchScores) -> f64;
            let rows: [(String, Pick, &str); 3] = [
                (
                    format!("Jaccard@{k}"),
                    |s| s.jaccard,
                    "Overlap of each sample's k nearest neighbours found with its A vector and with its B vector",
                ),
                (
                    format!("MRR@{k}"),
                    |s| s.mrr,
                    "Querying B's neighbours with A's vector: 1/rank of the sample itself (0 past rank k)",
                ),
                ("mean cosine".into(), |s| s.cosine, "Mean cos(a_i, b_i) over samples"),
            ];
            for (name, pick, help) in rows {
                ui.label(name).on_hover_text(help);
                for (_, s) in &cols {
                    cell(ui, s.map(pick));
                }
                ui.end_row();
            }
            ui.label("linear CKA")
                .on_hover_text("Linear centred kernel alignment; any widths");
            cell(ui, Some(c.cka_absolute));
            cell(ui, Some(c.cka_relative));
            ui.label("");
            ui.end_row();
        });
    if c.absolute.is_none() {
        ui.weak("The widths differ: absolute vectors share no coordinates.");
    }
    ui.weak(format!(
        "Procrustes fit on the anchors: residual {:.3} on anchors, {:.3} on all",
        c.procrustes.fit.anchor_residual, c.procrustes.fit.residual
    ));

    ui.add_space(8.0);
    ui.label(egui::RichText::new("Zero-shot stitching").strong());
    match &an.stitching {
        None => {
            ui.weak("Needs models with heads: available for the sprite demo pair.");
        }
        Some(Err(e)) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        Some(Ok(st)) => stitching_table(ui, st),
    }
}

fn stitching_table(ui: &mut egui::Ui, st: &super::compute::Stitched) {
    let r = &st.report;
    let c = &r.classifier;
    ui.weak(format!(
        "Heads fitted on {}'s {} training samples, scored on {} held-out ones; {} anchors from the training split.",
        r.model_b,
        r.train,
        r.test,
        r.anchor_ids.len()
    ));
    ui.label(format!(
        "Classifier accuracy ({}; chance {:.2})",
        c.label_column, c.chance
    ));
    let pct = |v: Option<f64>| v.map(|x| x * 100.0);
    egui::Grid::new("stitching-classifier-grid")
        .striped(true)
        .num_columns(3)
        .spacing([10.0, 4.0])
        .show(ui, |ui| {
            ui.label("head");
            ui.label(egui::RichText::new("B -> B").strong())
                .on_hover_text("unstitched: B's encoder, head fitted on B");
            ui.label(egui::RichText::new("A -> B").strong())
                .on_hover_text("stitched: A's encoder into the head fitted on B, no training on A");
            ui.end_row();
            ui.label("relative")
                .on_hover_text("Head on the similarity vectors to the anchors");
            percent(ui, pct(Some(c.relative_unstitched)));
            percent(ui, pct(Some(c.relative_stitched)));
            ui.end_row();
            ui.label("absolute")
                .on_hover_text("The same head on the raw latents (needs equal widths to stitch)");
            percent(ui, pct(Some(c.absolute_unstitched)));
            percent(ui, pct(c.absolute_stitched));
            ui.end_row();
            ui.label("B's own classifier");
            percent(ui, pct(Some(r.own_heads.b)));
            percent(ui, pct(r.own_heads.b_on_a));
            ui.end_row();
        });
    let d = &r.decoder;
    ui.add_space(4.0);
    ui.label("Reconstruction by B's decoder (MSE per pixel)");
    egui::Grid::new("stitching-decoder-grid")
        .striped(true)
        .num_columns(3)
        .spacing([10.0, 4.0])
        .show(ui, |ui| {
            ui.label("route");
            ui.label(egui::RichText::new("MSE").strong());
            ui.label(egui::RichText::new("latent R²").strong())
                .on_hover_text("How well the route reproduces B's own latent (1 = exactly)");
            ui.end_row();
            ui.label("B -> B unstitched");
            cell(ui, Some(d.unstitched_mse));
            ui.label("");
            ui.end_row();
            ui.label("B -> B relative");
            cell(ui, Some(d.relative_unstitched_mse));
            cell(ui, Some(d.relative_unstitched_latent_r2));
            ui.end_row();
            ui.label("A -> B relative");
            cell(ui, Some(d.relative_stitched_mse));
            cell(ui, Some(d.relative_stitched_latent_r2));
            ui.end_row();
            ui.label("A -> B absolute");
            cell(ui, d.absolute_stitched_mse);
            cell(ui, d.absolute_stitched_latent_r2);
            ui.end_row();
        });
}

fn percent(ui: &mut egui::Ui, v: Option<f64>) {
    match v {
        Some(v) => ui.monospace(format!("{v:.1} %")),
        None => ui.weak("n/a"),
    };
}
