//! The layering promise (design.md): core ← io, methods, render ← app; cli uses all but app.
//! This test scans the sources for imports that break it, e.g. `io` or `core` naming egui,
//! wgpu or the app.

use std::path::{Path, PathBuf};

/// Tokens a module must not mention (outside comments).
fn forbidden(module: &str) -> &'static [&'static str] {
    match module {
        "core" => &[
            "egui",
            "eframe",
            "egui_tiles",
            "rfd",
            "wgpu",
            "crate::io",
            "crate::methods",
            "crate::render",
            "crate::app",
            "crate::cli",
            "candle_transformers",
        ],
        "io" => &[
            "egui",
            "eframe",
            "egui_tiles",
            "rfd",
            "wgpu",
            "crate::methods",
            "crate::render",
            "crate::app",
            "crate::cli",
        ],
        "methods" => &[
            "egui",
            "eframe",
            "egui_tiles",
            "rfd",
            "wgpu",
            "crate::io",
            "crate::render",
            "crate::app",
            "crate::cli",
        ],
        "render" => &[
            "egui",
            "eframe",
            "egui_tiles",
            "rfd",
            "crate::io",
            "crate::methods",
            "crate::app",
            "crate::cli",
        ],
        "cli" => &["egui", "eframe", "egui_tiles", "rfd", "egui_kittest", "crate::app"],
        _ => &[],
    }
}

/// `(line number, token)` for each forbidden token used as a path segment in `source`.
fn violations(module: &str, source: &str) -> Vec<(usize, &'static str)> {
    let mut found = Vec::new();
    for (n, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for &tok in forbidden(module) {
            let mut rest = code;
            while let Some(pos) = rest.find(tok) {
                let before = rest[..pos].chars().next_back();
                let after = rest[pos + tok.len()..].chars().next();
                let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
                // A whole identifier or path, not part of a longer name or a string like "egui".
                let quoted = before == Some('"');
                if !ident(before) && !ident(after) && !quoted {
                    found.push((n + 1, tok));
                    break;
                }
                rest = &rest[pos + tok.len()..];
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn lower_layers_do_not_import_higher_ones() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut problems = Vec::new();
    for module in ["core", "io", "methods", "render", "cli"] {
        let mut files = Vec::new();
        rust_files(&src.join(module), &mut files);
        assert!(!files.is_empty(), "src/{module} has no Rust files");
        for f in files {
            let text = std::fs::read_to_string(&f).expect("read source");
            for (line, tok) in violations(module, &text) {
                problems.push(format!("{}:{line}: `{module}` must not use `{tok}`", f.display()));
            }
        }
    }
    assert!(problems.is_empty(), "layering violations:\n{}", problems.join("\n"));
}

#[test]
fn the_scanner_catches_a_violation() {
    assert_eq!(violations("io", "use egui::Ui;"), vec![(1, "egui")]);
    assert_eq!(
        violations("core", "fn f() { crate::app::run() }"),
        vec![(1, "crate::app")]
    );
    assert!(violations("core", "// egui is only named in a comment").is_empty());
    assert!(violations("core", "let my_egui_thing = 1;").is_empty());
    assert!(
        violations("render", "use wgpu::Device;").is_empty(),
        "render may use wgpu"
    );
    assert_eq!(violations("cli", "use crate::app::Launch;"), vec![(1, "crate::app")]);
}
