//! The timeline under the 4D view: play/pause, step, scrub, loop and speed, with keyboard
//! shortcuts (Space plays or pauses, ← → step one frame, Home goes to the first frame).

use crate::core::motion::Playback;

/// Speeds offered, as multiples of the sequence's own frame rate.
pub const SPEEDS: [f32; 6] = [0.1, 0.25, 0.5, 1.0, 2.0, 4.0];

/// Draws the bar for a timeline of `frames` frames at `fps`; returns whether the time changed
/// by the user's hand (scrub, step, key).
pub fn bar(ui: &mut egui::Ui, playback: &mut Playback, frames: usize, fps: f32) -> bool {
    let before = playback.time;
    let last = frames.saturating_sub(1) as f32;
    ui.horizontal(|ui| {
        let label = if playback.playing { "Pause" } else { "Play" };
        if ui.button(label).on_hover_text("Space").clicked() {
            toggle(playback, frames);
        }
        if ui.button("Previous frame").on_hover_text("Left arrow").clicked() {
            playback.step(-1, frames);
        }
        if ui.button("Next frame").on_hover_text("Right arrow").clicked() {
            playback.step(1, frames);
        }
        let slider = egui::Slider::new(&mut playback.time, 0.0..=last.max(0.0))
            .show_value(false)
            .text("frame");
        let response = ui.add_enabled(frames > 1, slider);
        if response.dragged() {
            playback.playing = false;
        }
        ui.label(format!(
            "frame {} / {}   {:.2} s",
            playback.frame() + 1,
            frames,
            playback.time / fps.max(1e-6)
        ));
        ui.checkbox(&mut playback.looping, "Loop");
        egui::ComboBox::from_id_salt("motion-speed")
            .selected_text(format!("{}×", playback.speed))
            .show_ui(ui, |ui| {
                for s in SPEEDS {
                    ui.selectable_value(&mut playback.speed, s, format!("{s}×"));
                }
            })
            .response
            .on_hover_text("Playback speed");
    });
    keys(ui, playback, frames);
    playback.time != before
}

fn toggle(playback: &mut Playback, frames: usize) {
    // Playing again from the end of a non-looping run starts over.
    if !playback.playing && !playback.looping && playback.frame() + 1 >= frames {
        playback.time = 0.0;
    }
    playback.playing = !playback.playing;
}

/// Shortcuts, unless a text field has the keyboard.
fn keys(ui: &egui::Ui, playback: &mut Playback, frames: usize) {
    if ui.ctx().egui_wants_keyboard_input() {
        return;
    }
    let (space, left, right, home) = ui.input(|i| {
        (
            i.key_pressed(egui::Key::Space),
            i.key_pressed(egui::Key::ArrowLeft),
            i.key_pressed(egui::Key::ArrowRight),
            i.key_pressed(egui::Key::Home),
        )
    });
    if space {
        toggle(playback, frames);
    }
    if left {
        playback.step(-1, frames);
    }
    if right {
        playback.step(1, frames);
    }
    if home {
        playback.time = 0.0;
        playback.playing = false;
    }
}
