//! Model manifests (`models/<name>/model.toml`) and the registry that finds them: the models
//! shipped beside the program and the user's own, under the XDG data directory.
//!
//! A manifest says what a model is: family, architecture config (in the upstream field names),
//! weights file and its sha256, licence, preprocessing, latent layout and citation.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The method families the app knows how to run.
pub const FAMILIES: [&str; 7] = [
    "ldae",
    "wala",
    "wala-diffusion",
    "motion2vecsets",
    "relreps",
    "sage",
    "wildfusion",
];
pub const MANIFEST_FILE: &str = "model.toml";

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read ({source}): {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid model.toml ({problem}): {}", path.display())]
    Invalid { path: PathBuf, problem: String },
    #[error("unknown model family {family:?} (known: {}): {}", FAMILIES.join(", "), path.display())]
    UnknownFamily { path: PathBuf, family: String },
    #[error("weights sha256 mismatch (manifest {expected}, file {found}): {}", path.display())]
    HashMismatch {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("cannot write ({source}): {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `model.toml`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub family: String,
    #[serde(default)]
    pub description: String,
    /// Path of the weights, relative to the manifest's folder (or absolute).
    pub weights: PathBuf,
    /// Hex sha256 of the weights file; empty means "not recorded".
    #[serde(default)]
    pub sha256: String,
    #[serde(default)]
    pub licence: String,
    #[serde(default)]
    pub citation: String,
    /// Whether this is a small demo model trained by `latent-workbench train`.
    #[serde(default)]
    pub demo: bool,
    /// Architecture config, in the reference implementation's field names.
    #[serde(default)]
    pub config: toml::Table,
    #[serde(default)]
    pub preprocessing: toml::Table,
    /// Latent layout: shapes and names of the codes the model produces.
    #[serde(default)]
    pub latent: toml::Table,
}

/// Where a model was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Builtin,
    User,
}

#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    pub manifest: Manifest,
    pub dir: PathBuf,
    pub origin: Origin,
}

impl Entry {
    /// The weights path, resolved against the manifest's folder.
    pub fn weights_path(&self) -> PathBuf {
        if self.manifest.weights.is_absolute() {
            self.manifest.weights.clone()
        } else {
            self.dir.join(&self.manifest.weights)
        }
    }
    /// Checks the weights file against the recorded sha256.
    pub fn verify(&self) -> Result<(), ManifestError> {
        let path = self.weights_path();
        let found = sha256_file(&path)?;
        if self.manifest.sha256.is_empty() || self.manifest.sha256.eq_ignore_ascii_case(&found) {
            Ok(())
        } else {
            Err(ManifestError::HashMismatch {
                path,
                expected: self.manifest.sha256.clone(),
                found,
            })
        }
    }
}

impl Manifest {
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let m: Manifest = toml::from_str(text).map_err(|e| ManifestError::Invalid {
            path: path.to_path_buf(),
            problem: e.message().to_string(),
        })?;
        if !FAMILIES.contains(&m.family.as_str()) {
            return Err(ManifestError::UnknownFamily {
                path: path.to_path_buf(),
                family: m.family,
            });
        }
        Ok(m)
    }

    pub fn read(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }
}

/// Hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String, ManifestError> {
    let read_err = |source| ManifestError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(read_err)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(read_err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The folders searched, in order: the shipped `models/` and the user's data directory.
pub fn search_dirs() -> Vec<(PathBuf, Origin)> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("LW_MODELS_DIR") {
        dirs.push((PathBuf::from(d), Origin::Builtin));
    } else {
        // A source checkout (cargo run) has them beside Cargo.toml; an installed binary beside itself.
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        if manifest_dir.is_dir() {
            dirs.push((manifest_dir, Origin::Builtin));
        } else if let Some(exe_dir) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
        {
            dirs.push((exe_dir.join("models"), Origin::Builtin));
        }
    }
    dirs.push((user_models_dir(), Origin::User));
    dirs
}

/// `$XDG_DATA_HOME/latent-workbench/models` (default `~/.local/share/...`).
pub fn user_models_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("latent-workbench").join("models")
}

/// All models found, sorted by name; folders whose manifest is broken are returned as errors
/// beside the good ones so one bad folder hides nothing else.
pub fn scan(dirs: &[(PathBuf, Origin)]) -> (Vec<Entry>, Vec<ManifestError>) {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for (dir, origin) in dirs {
        let Ok(read) = std::fs::read_dir(dir) else { continue };
        let mut subdirs: Vec<PathBuf> = read
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        subdirs.sort();
        for sub in subdirs {
            let path = sub.join(MANIFEST_FILE);
            if !path.is_file() {
                continue;
            }
            match Manifest::read(&path) {
                Ok(manifest) => entries.push(Entry {
                    manifest,
                    dir: sub,
                    origin: *origin,
                }),
                Err(e) => errors.push(e),
            }
        }
    }
    entries.sort_by(|a, b| a.manifest.name.cmp(&b.manifest.name));
    (entries, errors)
}

/// A model given as a folder path (holding `model.toml`) or as the name of a registered model of
/// `family` (the search folders: the shipped `models/` and the user's). The error lists the
/// registered models of that family.
pub fn find_entry(spec: &str, family: &str) -> Result<Entry, String> {
    let path = Path::new(spec);
    let folder = if path.is_file() && path.file_name().is_some_and(|n| n == MANIFEST_FILE) {
        path.parent().map(Path::to_path_buf)
    } else {
        path.join(MANIFEST_FILE).is_file().then(|| path.to_path_buf())
    };
    if let Some(dir) = folder {
        let manifest = Manifest::read(&dir.join(MANIFEST_FILE)).map_err(|e| e.to_string())?;
        if manifest.family != family {
            return Err(format!("{spec}: a {} model, not {family}", manifest.family));
        }
        return Ok(Entry {
            manifest,
            dir,
            origin: Origin::User,
        });
    }
    let (entries, _) = scan(&search_dirs());
    let known: Vec<&str> = entries
        .iter()
        .filter(|e| e.manifest.family == family)
        .map(|e| e.manifest.name.as_str())
        .collect();
    entries
        .iter()
        .find(|e| e.manifest.name == spec && e.manifest.family == family)
        .cloned()
        .ok_or_else(|| {
            format!(
                "{spec}: no model folder (with {MANIFEST_FILE}) and no registered {family} model of that name (registered: {})",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            )
        })
}

/// Registers a user's own checkpoint: writes `<user dir>/<name>/model.toml` pointing at the
/// file (not copied) with its sha256. The family's config is filled in later by the method
/// (or by hand); until then the manifest records what the user said.
pub fn add_user_model(
    weights: &Path,
    family: &str,
    name: &str,
    config: BTreeMap<String, toml::Value>,
    dir: &Path,
) -> Result<Entry, ManifestError> {
    if !FAMILIES.contains(&family) {
        return Err(ManifestError::UnknownFamily {
            path: weights.to_path_buf(),
            family: family.to_string(),
        });
    }
    let weights = std::fs::canonicalize(weights).map_err(|source| ManifestError::Read {
        path: weights.to_path_buf(),
        source,
    })?;
    let manifest = Manifest {
        name: name.to_string(),
        family: family.to_string(),
        description: format!("User checkpoint {}", weights.display()),
        sha256: sha256_file(&weights)?,
        weights,
        licence: String::new(),
        citation: String::new(),
        demo: false,
        config: config.into_iter().collect(),
        preprocessing: toml::Table::new(),
        latent: toml::Table::new(),
    };
    let folder = dir.join(name);
    let path = folder.join(MANIFEST_FILE);
    let write_err = |source| ManifestError::Write {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(&folder).map_err(write_err)?;
    let text = toml::to_string_pretty(&manifest).map_err(|e| ManifestError::Invalid {
        path: path.clone(),
        problem: e.to_string(),
    })?;
    // Temporary name, then rename: never half a manifest.
    let tmp = folder.join(".model.toml.partial");
    std::fs::write(&tmp, text).map_err(write_err)?;
    std::fs::rename(&tmp, &path).map_err(write_err)?;
    Ok(Entry {
        manifest,
        dir: folder,
        origin: Origin::User,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_scan_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path().join("ckpt.safetensors");
        std::fs::write(&w, b"weights").unwrap();
        let models = dir.path().join("models");
        let e = add_user_model(&w, "ldae", "my-ldae", BTreeMap::new(), &models).unwrap();
        assert_eq!(e.manifest.sha256, sha256_file(&w).unwrap());
        assert!(e.manifest.weights.is_absolute());
        let (entries, errors) = scan(&[(models.clone(), Origin::User)]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].manifest.family, "ldae");
        entries[0].verify().unwrap();
        std::fs::write(&w, b"tampered").unwrap();
        assert!(matches!(entries[0].verify(), Err(ManifestError::HashMismatch { .. })));
    }

    #[test]
    fn known_hash_and_bad_manifests() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(
            sha256_file(&f).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let p = Path::new("models/x/model.toml");
        assert!(matches!(
            Manifest::parse("name = 'x'\nfamily = 'gan'\nweights = 'w'", p),
            Err(ManifestError::UnknownFamily { .. })
        ));
        let e = Manifest::parse("name = 'x'", p).unwrap_err();
        assert!(e.to_string().contains("models/x/model.toml"), "{e}");
        let ok = Manifest::parse(
            "name='x'\nfamily='wala'\nweights='w.safetensors'\n[config]\nlatent_channels=4\n[latent]\nshape=[4,12,12,12]",
            p,
        )
        .unwrap();
        assert_eq!(ok.config["latent_channels"].as_integer(), Some(4));
    }
}
