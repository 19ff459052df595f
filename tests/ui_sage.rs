//! Headless tests of the Failure search tab (egui_kittest, no display, no GPU) on the shipped demo
//! generator and sprite classifiers: a search runs in the background with live curves, its
//! gallery takes a person's verdicts by button and by key, the run folder is saved and opened
//! again; Cancel pauses within an iteration and Resume finishes the same run as an uninterrupted
//! search.

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use latent_workbench::app::panels::failure_search::FailureSearchSettings;
use latent_workbench::app::{AppState, Command, Session};
use latent_workbench::core::jobs::JobContext;
use latent_workbench::methods::sage::report;
use latent_workbench::methods::sage::search::Search;
use latent_workbench::methods::sage::setup::SageSetup;
#[path = "common/resnet_folder.rs"]
mod resnet_folder;
#[path = "common/wait.rs"]
mod wait;

struct Panel {
    state: AppState,
    session: Session,
    commands: Vec<Command>,
}

fn harness(settings: FailureSearchSettings) -> Harness<'static, Panel> {
    let mut session = Session::default();
    session.rescan_models();
    let state = AppState {
        failure_search: settings,
        ..AppState::default()
    };
    let panel = Panel {
        state,
        session,
        commands: Vec::new(),
    };
    Harness::builder().with_size(egui::vec2(1300.0, 900.0)).build_ui_state(
        |ui, p: &mut Panel| {
            latent_workbench::app::panels::failure_search::ui(ui, &mut p.state, &mut p.session, &mut p.commands)
        },
        panel,
    )
}

/// Steps until `done` holds (jobs run on worker threads).
fn step_until(h: &mut Harness<'static, Panel>, what: &str, done: impl Fn(&Panel) -> bool) {
    wait::until(h, what, done);
}

fn idle(h: &mut Harness<'static, Panel>) {
    step_until(h, "the panel's jobs", |p| !p.session.failure_search.busy());
}

/// Presses Search and waits for the search to finish without an error; its result.
fn search_to_the_end(h: &mut Harness<'static, Panel>) -> latent_workbench::methods::sage::search::SearchResult {
    h.get_by_label("Search").click();
    h.step();
    idle(h);
    let rt = &h.state().session.failure_search;
    assert_eq!(rt.error, None);
    rt.result().expect("the search finished").clone()
}

/// A small search: 4 restarts, every restart shown.
fn small(budget: usize) -> FailureSearchSettings {
    FailureSearchSettings {
        restarts: 4,
        budget,
        show_all: true,
        ..FailureSearchSettings::default()
    }
}

#[test]
fn a_search_runs_live_and_its_verdicts_are_saved_with_the_run() {
    let mut h = harness(small(20));
    idle(&mut h);
    assert_eq!(h.state().session.failure_search.error, None);
    assert_eq!(
        h.state().session.failure_search.class_names(),
        Some(vec!["square".into(), "ellipse".into(), "heart".into()]),
        "the models load on opening"
    );
    h.get_by_label_contains("Base rates");
    h.get_by_label("Screening draws");
    let result = search_to_the_end(&mut h);
    assert_eq!(result.candidates.len(), 4);
    assert_eq!(
        result.history.len(),
        15,
        "budget 20 = 10 screening draws (at most half the budget) + 5 gradient evaluations"
    );
    assert_eq!(
        h.state().session.failure_search.live_iterations(),
        15,
        "the live curves saw every iteration"
    );
    h.get_by_label_contains("SSR(A)");
    h.get_by_label("SSR(H) – of 0 judged");
    h.get_by_label("Best so far");

    // Accept the first card by its button, then reject the second by keys.
    h.get_all_by_label("Accept").next().unwrap().click();
    h.run_steps(2);
    assert_eq!(
        h.state().session.failure_search.result().unwrap().candidates[0].human,
        Some(true)
    );
    h.get_by_label("SSR(H) 100.0 % of 1 judged");
    let card = h
        .get_all_by_label_contains("restart 0 ·")
        .next()
        .unwrap()
        .rect()
        .center();
    h.hover_at(card);
    h.step();
    h.key_press(egui::Key::ArrowDown);
    h.step();
    h.key_press(egui::Key::R);
    h.run_steps(2);
    let judged: Vec<Option<bool>> = h.state().session.failure_search.result().unwrap().candidates[..2]
        .iter()
        .map(|c| c.human)
        .collect();
    assert_eq!(judged, [Some(true), Some(false)]);
    h.get_by_label("SSR(H) 50.0 % of 2 judged");
    assert!(h.state().session.failure_search.unsaved);

    // Save, then open the folder in a fresh panel: the verdicts come back.
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let waker = h.state().session.waker.clone();
    h.state_mut().session.failure_search.save(Some(run.clone()), waker);
    idle(&mut h);
    assert!(!h.state().session.failure_search.unsaved);
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join(report::REPORT_FILE)).unwrap()).unwrap();
    assert_eq!(value["candidates"][0]["human"], true);
    assert_eq!(value["candidates"][1]["human"], false);
    assert_eq!(value["summary"]["ssr_human"], 0.5);
    assert!(run.join("latents.safetensors").is_file());
    assert!(run.join("candidates/000.png").is_file());

    let saved = h.state().session.failure_search.result().unwrap().clone();
    let mut other = harness(FailureSearchSettings {
        budget: 40,
        ..small(40)
    });
    idle(&mut other);
    other.state_mut().session.failure_search.open(Some(run.clone()), None);
    idle(&mut other);
    let opened = other.state().session.failure_search.result().expect("the run opens");
    // Latents come back exactly, pictures to 8 bits, verdicts and scores as saved.
    assert_eq!(opened.candidates.len(), saved.candidates.len());
    for (a, b) in opened.candidates.iter().zip(&saved.candidates) {
        assert_eq!(a.variable, b.variable);
        assert_eq!(
            (a.human, a.auto_success, &a.member_probs),
            (b.human, b.auto_success, &b.member_probs)
        );
        assert_eq!(a.images.len(), b.images.len());
        for (x, y) in a.images.iter().zip(&b.images) {
            let worst = x
                .iter()
                .zip(y)
                .map(|(p, q)| (p - q.clamp(0.0, 1.0)).abs())
                .fold(0.0f32, f32::max);
            assert!(worst <= 0.5 / 255.0 + 1e-6, "{worst}");
        }
    }
    assert_eq!(
        other.state().state.failure_search.budget,
        20,
        "the run's settings are adopted"
    );
    other.get_by_label("SSR(H) 50.0 % of 2 judged");
}

#[test]
fn cancel_pauses_and_resume_finishes_the_same_run() {
    let settings = small(60);
    let mut h = harness(settings.clone());
    idle(&mut h);
    h.get_by_label("Search").click();
    h.step();
    step_until(&mut h, "three iterations", |p| {
        p.session.failure_search.live_iterations() >= 3
    });
    h.get_by_label("Cancel").click();
    h.step();
    idle(&mut h);
    let paused = h
        .state()
        .session
        .failure_search
        .paused()
        .expect("a cancelled search pauses")
        .clone();
    // 20 screening draws, then 20 gradient evaluations.
    assert!(paused.iteration >= 3 && paused.iteration < 40, "{}", paused.iteration);
    assert!(h.state().session.failure_search.result().is_none());
    h.get_by_label(&format!("Resume ({}/40)", paused.iteration)).click();
    h.step();
    idle(&mut h);
    let resumed = h
        .state()
        .session
        .failure_search
        .result()
        .expect("the resumed search finishes")
        .clone();
    assert!(h.state().session.failure_search.paused().is_none());

    // The same search, uninterrupted, through the library.
    let spec = settings.spec(&h.state().session).unwrap();
    let setup = SageSetup::load(spec, &candle_core::Device::Cpu).unwrap();
    let search = Search::new(setup.generator.as_ref(), &setup.ensemble, settings.config()).unwrap();
    let Ok(full) = search.run(search.initial_state().unwrap(), &JobContext::detached(), &mut |_, _| {}) else {
        panic!("the search failed");
    };
    assert_eq!(resumed.candidates, full.candidates);
    assert_eq!(resumed.history, full.history);
}

#[test]
fn a_missing_model_is_named_and_nothing_runs() {
    let mut h = harness(FailureSearchSettings {
        generator: "no-such-generator".into(),
        ..FailureSearchSettings::default()
    });
    h.run_steps(3);
    h.get_by_label("no-such-generator is not a registered sage model");
    assert!(!h.state().session.failure_search.busy());
    h.get_by_label("Search");
}

/// A Stable Diffusion folder (the tiny random pipeline of the parity fixture) as the generator and
/// torchvision ResNet folders (formula weights) as ensemble and judge, chosen in the panel: the
/// classes come from the typed list, the folder fields show, and a search runs to the end.
#[test]
fn a_stable_diffusion_folder_is_searched_with_resnet_folders() {
    use latent_workbench::app::panels::failure_search::{SD_GENERATOR, SdSettings};
    use latent_workbench::methods::sage::search::ModeKind;
    let tmp = tempfile::tempdir().unwrap();
    let member = tmp.path().join("resnet-member");
    let judge = tmp.path().join("resnet-judge");
    resnet_folder::write(&member, 18, "dog\ncat\nboat\ncar\ntree");
    resnet_folder::write(&judge, 18, "tree\ncat\ndog\ncar\nboat");
    let sd = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sage/tiny-sd");
    let settings = FailureSearchSettings {
        generator: SD_GENERATOR.into(),
        sd: SdSettings {
            folder: sd.display().to_string(),
            classes: "cat, dog".into(),
            guidance: 1.0,
            size: 16,
            ..SdSettings::default()
        },
        classifiers: vec![member.display().to_string()],
        classifier_folders: vec![member.display().to_string(), judge.display().to_string()],
        held_out: judge.display().to_string(),
        class: 1,
        mode: ModeKind::Random,
        restarts: 2,
        budget: 3,
        steps: 2,
        show_all: true,
        ..FailureSearchSettings::default()
    };
    let mut h = harness(settings);
    idle(&mut h);
    assert_eq!(h.state().session.failure_search.error, None);
    h.get_by_label("Folder");
    h.get_by_label("Prompt");
    h.get_by_label("resnet-member (folder)");
    assert!(
        h.get_all_by_label("resnet-judge (folder)").count() >= 1,
        "the judge's folder is listed"
    );
    assert!(
        h.query_by_label_contains("The judge is also in the ensemble").is_none(),
        "a folder the panel knows is not in the ensemble unless ticked"
    );
    assert_eq!(
        h.state().session.failure_search.class_names(),
        Some(vec!["cat".into(), "dog".into()])
    );
    let result = search_to_the_end(&mut h);
    assert_eq!(result.candidates.len(), 2);
    assert_eq!(result.image_shape, [3, 16, 16]);

    // A folder that is not a classifier is refused by name, and the ensemble stays as it was.
    let rt = h.state_mut();
    let (state, session) = (&mut rt.state, &mut rt.session);
    session
        .failure_search
        .add_classifier_folder(&mut state.failure_search, tmp.path().display().to_string());
    assert!(
        session
            .failure_search
            .error
            .as_deref()
            .unwrap_or("")
            .contains("not a classifier folder"),
        "{:?}",
        session.failure_search.error
    );
    assert_eq!(state.failure_search.classifier_folders.len(), 2);
    assert_eq!(state.failure_search.classifiers.len(), 1);
}
