//! Tabs whose panels are not built yet say what they will do and which issue builds them.

use super::Tab;

/// What the tab will do, the issue that builds it, and what a user can do meanwhile.
fn plan(tab: Tab) -> (&'static str, &'static str, &'static str) {
    match tab {
        Tab::Interpolation => (
            "Missing-scan synthesis (LDAE): pick two scans of a subject and their times, choose a target time, and \
             synthesise the scan in between (semantic code lerped, stochastic code slerped, decoded), scored with \
             SSIM/MSE/PSNR against the real scan when there is one.",
            "issue #4 (LDAE)",
            INSPECT,
        ),
        Tab::Attributes => (
            "Attribute manipulation: fit linear-probe directions (disease, age) in LDAE's semantic latent from a \
             labelled set, then slide a scan along them and watch it change.",
            "issue #4 (LDAE)",
            INSPECT,
        ),
        Tab::Stitching => (
            "Relative-representation stitching: compare two models' latent spaces through shared anchors, see \
             projections side by side with linked selection, and stitch one model's encoder to another's head.",
            "issue #5 (relative representations)",
            INSPECT,
        ),
        Tab::FailureSearch => (
            "SAGE failure search: adversarial search of a generator's latent and condition spaces against an \
             ensemble of classifiers, with a gallery of found failures to confirm or reject.",
            "issue #6 (SAGE)",
            "The search itself is built and runs from the command line: `latent-workbench sage --class heart -o run/` \
             searches the demo generator and writes report.json and a gallery (see the README).",
        ),
        _ => ("", "", ""),
    }
}

const INSPECT: &str = "Today you can inspect its inputs in the Viewer and Latent inspector tabs.";

pub fn ui(ui: &mut egui::Ui, tab: Tab) {
    let (what, issue, meanwhile) = plan(tab);
    ui.heading(tab.title());
    ui.add_space(6.0);
    ui.label(egui::RichText::new("Not built yet.").strong());
    ui.label(what);
    ui.add_space(4.0);
    ui.weak(format!("Planned in {issue}. {meanwhile}"));
}
