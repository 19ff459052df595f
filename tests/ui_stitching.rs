//! Headless tests of the Stitching tab (egui_kittest, no display, no GPU): it says what to do
//! with no models, computes a comparison of two small latent files in its background job and
//! shows it, and a selection made in one map selects the same samples in the other.

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use latent_workbench::app::panels::stitching;
use latent_workbench::app::{AppState, Command, Session};
use std::path::Path;
#[path = "common/wait.rs"]
mod wait;

/// The panel alone, with the state the app would hand it.
struct Panel {
    state: AppState,
    session: Session,
    commands: Vec<Command>,
}

fn harness(state: AppState) -> Harness<'static, Panel> {
    let panel = Panel {
        state,
        session: Session::default(),
        commands: Vec::new(),
    };
    Harness::builder().with_size(egui::vec2(1300.0, 850.0)).build_ui_state(
        |ui, p: &mut Panel| stitching::ui(ui, &mut p.state, &mut p.session, &mut p.commands),
        panel,
    )
}

/// Steps until the panel's jobs are done.
fn settle(h: &mut Harness<'static, Panel>) {
    wait::until(h, "the stitching job", |p| !p.session.stitching.busy());
}

/// Space A: `n` samples in 6-d, three classes along three directions; space B: the same samples
/// rotated (a coordinate permutation with sign flips) and rescaled, listed in reverse order so
/// they must be matched by id.
fn write_spaces(dir: &Path, n: usize) -> (String, String) {
    let classes = ["red", "green", "blue"];
    let mut a = String::from("id,f0,f1,f2,f3,f4,f5,class\n");
    let mut rows_b = Vec::new();
    for i in 0..n {
        let c = i % 3;
        let t = i as f32 * 0.37;
        let v: Vec<f32> = (0..6)
            .map(|k| {
                let centre = if k == 2 * c { 3.0 } else { 0.0 };
                centre + (t * (k as f32 + 1.3)).sin() * 0.6
            })
            .collect();
        let line = |x: &[f32]| x.iter().map(|x| format!("{x:.5}")).collect::<Vec<_>>().join(",");
        a.push_str(&format!("s{i},{},{}\n", line(&v), classes[c]));
        let w: Vec<f32> = [v[3], -v[0], v[5], v[1], -v[4], v[2]].iter().map(|x| 2.5 * x).collect();
        rows_b.push(format!("s{i},{}\n", line(&w)));
    }
    let b = String::from("id,g0,g1,g2,g3,g4,g5\n") + &rows_b.into_iter().rev().collect::<String>();
    let (pa, pb) = (dir.join("a.csv"), dir.join("b.csv"));
    std::fs::write(&pa, a).unwrap();
    std::fs::write(&pb, b).unwrap();
    (pa.display().to_string(), pb.display().to_string())
}

fn computed(dir: &Path) -> Harness<'static, Panel> {
    let (a, b) = write_spaces(dir, 90);
    let mut state = AppState::default();
    state.stitching.use_files = true;
    state.stitching.file_a = a;
    state.stitching.file_b = b;
    state.stitching.anchors = 12;
    state.stitching.k = 5;
    let mut h = harness(state);
    h.run_steps(1);
    h.get_by_label("Compare").click();
    h.step();
    settle(&mut h);
    h
}

#[test]
fn without_models_it_says_what_to_do() {
    let mut h = harness(AppState::default());
    h.run_steps(2);
    h.get_by_label("No sprite demo models are registered yet.");
    h.get_by_label_contains("latent-workbench train relreps-sprites-a");
    assert!(!h.state().session.stitching.busy(), "nothing to compute");
    // Switching to files asks for them.
    h.get_by_label("Latent files").click();
    h.run_steps(2);
    h.get_by_label_contains("Pick two latent files");
}

#[test]
fn a_computed_comparison_is_drawn_with_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let h = computed(dir.path());
    let p = h.state();
    let rt = &p.session.stitching;
    assert_eq!(rt.error, None);
    let inputs = rt.inputs().expect("the spaces are loaded");
    assert_eq!(inputs.a.len(), 90);
    assert_eq!(inputs.a.ids(), inputs.b.ids(), "rows matched by id");
    let c = &rt.analysis().expect("the comparison is done").comparison;
    assert_eq!(c.anchor_indices.len(), 12);
    // A rotation plus rescaling: relative agreement is perfect, absolute is not.
    assert!(c.relative.cosine > 0.9999, "{:?}", c.relative);
    assert!(c.absolute.unwrap().cosine < 0.5, "{:?}", c.absolute);
    h.get_by_label("Space A plot (0 selected)");
    h.get_by_label("Space B plot (0 selected)");
    h.get_by_label("Jaccard@5");
    h.get_by_label("linear CKA");
    // Files carry no heads: the stitching section says so.
    h.get_by_label_contains("Needs models with heads");
    // The class column colours the points and is listed in the legend.
    h.get_by_label("green");
    // The first comparison was started before the label columns were known: its key must still
    // match the panel's settings.
    assert!(
        h.query_by_label("settings changed: press Compare").is_none(),
        "a fresh comparison must not ask for another"
    );
}

#[test]
fn changed_settings_ask_for_a_new_comparison() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = computed(dir.path());
    h.state_mut().state.stitching.anchors = 20;
    h.run_steps(2);
    h.get_by_label("settings changed: press Compare");
}

#[test]
fn selection_is_linked_across_both_maps() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = computed(dir.path());
    let (rect_a, inside, ids) = {
        let rt = &h.state().session.stitching;
        let rect = rt.plot_rect(0).unwrap();
        // A box over the left half of map A.
        let band = egui::Rect::from_min_max(
            rect.min + egui::vec2(2.0, 2.0),
            rect.center_bottom() - egui::vec2(0.0, 2.0),
        );
        let ids = rt.inputs().unwrap().a.ids().to_vec();
        let inside: Vec<String> = (0..ids.len())
            .filter(|&i| band.contains(rt.screen_pos(0, i).unwrap()))
            .map(|i| ids[i].clone())
            .collect();
        (band, inside, ids)
    };
    assert!(
        !inside.is_empty() && inside.len() < ids.len(),
        "{} of {}",
        inside.len(),
        ids.len()
    );
    h.hover_at(rect_a.min);
    h.step();
    h.drag_at(rect_a.min);
    h.step();
    h.hover_at(rect_a.center());
    h.step();
    h.hover_at(rect_a.max);
    h.step();
    h.drop_at(rect_a.max);
    h.run_steps(2);
    let selected = h.state().session.stitching.selected_ids();
    assert_eq!(selected, inside, "the box selects exactly the points inside it");
    // Both maps highlight the same samples.
    let n = inside.len();
    h.get_by_label(&format!("Space A plot ({n} selected)"));
    h.get_by_label(&format!("Space B plot ({n} selected)"));
    h.get_by_label(&format!("{n} of 90 selected"));

    // A click on a point of map B selects that sample in both.
    let (row, pos) = {
        let rt = &h.state().session.stitching;
        let row = 7;
        (row, rt.screen_pos(1, row).unwrap())
    };
    h.hover_at(pos);
    h.step();
    h.event(egui::Event::PointerButton {
        pos,
        button: egui::PointerButton::Primary,
        pressed: true,
        modifiers: egui::Modifiers::NONE,
    });
    h.event(egui::Event::PointerButton {
        pos,
        button: egui::PointerButton::Primary,
        pressed: false,
        modifiers: egui::Modifiers::NONE,
    });
    h.run_steps(2);
    let selected = h.state().session.stitching.selected_ids();
    assert_eq!(selected.len(), 1);
    let rt = &h.state().session.stitching;
    // The picked point is the one under the pointer (or one drawn on the same pixel).
    let picked = ids.iter().position(|id| *id == selected[0]).unwrap();
    assert!(
        rt.screen_pos(1, picked).unwrap().distance(pos) < 1.0,
        "picked row {picked}, wanted {row}"
    );
    h.get_by_label("Space A plot (1 selected)");
    h.get_by_label("Space B plot (1 selected)");
}
