//! Where the weights are inside a checkpoint, and what their keys are called.
//!
//! - In a pickle: a plain state dict, or the state dict under a wrapper key (`state_dict` for
//!   Lightning, `model` for Motion2VecSets, `model_state_dict`, `module`, `net`), or an EMA copy
//!   under `ema_state_dict`/`state_dict_ema`/`model_ema`/`ema_model`/`ema` when
//!   [`LoadOptions::prefer_ema`] is set. Nested dicts and lists are flattened with `.`.
//! - Inside the chosen dict, EMA copies stored as `model_ema.*` keys (CompVis/LDM `LitEma`,
//!   which also drops the dots: `model_ema.diffusion_modelinput_blocks00weight`; or timm-style
//!   with the dots kept) replace the weights they shadow when `prefer_ema` is set, and are
//!   dropped otherwise.
//! - Then every key loses the prefixes in [`LoadOptions::strip_prefixes`] (repeatedly, so
//!   `module._orig_mod.model.x` becomes `x`), and with [`LoadOptions::select_prefix`] only the
//!   keys under it are kept, without it.
//!
//! What was chosen is written into the checkpoint's metadata under `checkpoint.*` keys.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::pickle::{Object, Pickle, TensorRef, Value};
use super::{LoadOptions, WeightsError};

/// Wrapper keys that hold the model's state dict, in order of preference.
pub const STATE_DICT_KEYS: &[&str] = &["state_dict", "model_state_dict", "model", "module", "net"];
/// Wrapper keys that hold an EMA copy of it, in order of preference.
pub const EMA_KEYS: &[&str] = &["ema_state_dict", "state_dict_ema", "model_ema", "ema_model", "ema"];
/// The key of the one tensor of a file saved as `torch.save(tensor)`.
pub const BARE_TENSOR_KEY: &str = "tensor";
/// Prefix of EMA copies stored inside the state dict.
pub const EMA_PREFIX: &str = "model_ema.";
/// Top-level keys whose nested values are copied into the metadata.
const HPARAM_KEYS: &[&str] = &["hyper_parameters", "hparams", "hyper_params", "config", "cfg", "args"];

/// Nodes the walks over a pickle may visit, per object in it: a tree is visited about once
/// per node; a graph that shares subgraphs to multiply its size runs out.
const WALK_PER_OBJECT: usize = 4;
/// Longest flattened key accepted (torch keys are tens of bytes).
const MAX_KEY_LEN: usize = 4096;
/// Most bytes of metadata taken from a pickle.
const MAX_METADATA_BYTES: usize = 4 << 20;
/// Deepest nesting followed.
const MAX_DEPTH: usize = 64;
/// Most metadata entries taken from a pickle.
const MAX_METADATA: usize = 10_000;

/// Tensors chosen from a pickle, with what was chosen.
#[derive(Debug, Clone)]
pub struct Selection {
    pub tensors: Vec<(String, TensorRef)>,
    pub metadata: BTreeMap<String, String>,
}

struct Walker<'p> {
    p: &'p Pickle,
    budget: usize,
    metadata_bytes: usize,
}

impl Walker<'_> {
    fn step(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("values nested more than {MAX_DEPTH} deep (or a cycle)"));
        }
        match self.budget.checked_sub(1) {
            Some(b) => {
                self.budget = b;
                Ok(())
            }
            None => Err("more values than a checkpoint can hold (shared values repeated too often)".into()),
        }
    }

    /// Tensors under `v`, keyed by their dotted path below `prefix`; stops after `limit`.
    fn tensors(
        &mut self,
        v: &Value,
        prefix: &str,
        depth: usize,
        out: &mut Vec<(String, TensorRef)>,
        limit: usize,
    ) -> Result<(), String> {
        self.step(depth)?;
        if out.len() >= limit {
            return Ok(());
        }
        if prefix.len() > MAX_KEY_LEN {
            return Err(format!("a key longer than {MAX_KEY_LEN} bytes"));
        }
        let join = |k: &str| {
            if prefix.is_empty() {
                k.to_owned()
            } else {
                format!("{prefix}.{k}")
            }
        };
        match self.p.object(v) {
            Some(Object::Tensor(t)) => out.push((prefix.to_owned(), t.clone())),
            Some(Object::Dict(items)) => {
                for (k, v) in items {
                    let key = match k {
                        Value::Str(s) => s.to_string(),
                        Value::Int(i) => i.to_string(),
                        _ => continue,
                    };
                    self.tensors(v, &join(&key), depth + 1, out, limit)?;
                }
            }
            Some(Object::List(items) | Object::Tuple(items)) => {
                for (i, v) in items.iter().enumerate() {
                    self.tensors(v, &join(&i.to_string()), depth + 1, out, limit)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn has_tensors(&mut self, v: &Value) -> Result<bool, String> {
        let mut out = Vec::new();
        self.tensors(v, "", 0, &mut out, 1)?;
        Ok(!out.is_empty())
    }

    fn insert(&mut self, out: &mut BTreeMap<String, String>, key: &str, value: String) {
        self.metadata_bytes += key.len() + value.len();
        if self.metadata_bytes <= MAX_METADATA_BYTES {
            out.insert(key.to_owned(), value);
        }
    }

    /// Scalars under `v` as strings, keyed by dotted path.
    fn scalars(
        &mut self,
        v: &Value,
        key: &str,
        depth: usize,
        out: &mut BTreeMap<String, String>,
    ) -> Result<(), String> {
        self.step(depth)?;
        if out.len() >= MAX_METADATA || depth > 16 || self.metadata_bytes > MAX_METADATA_BYTES {
            return Ok(());
        }
        if let Some(s) = render(v) {
            self.insert(out, key, s);
            return Ok(());
        }
        let join = |k: &str| format!("{key}.{k}");
        match self.p.object(v) {
            Some(Object::Dict(items)) => {
                for (k, v) in items {
                    if let Some(k) = render(k) {
                        self.scalars(v, &join(&k), depth + 1, out)?;
                    }
                }
            }
            Some(Object::List(items) | Object::Tuple(items)) => {
                let rendered: Option<Vec<String>> = items.iter().map(render).collect();
                match rendered {
                    Some(r) if r.len() <= 64 => self.insert(out, key, format!("[{}]", r.join(", "))),
                    _ => {
                        for (i, v) in items.iter().enumerate() {
                            self.scalars(v, &join(&i.to_string()), depth + 1, out)?;
                        }
                    }
                }
            }
            // argparse.Namespace, AttributeDict-like objects: their attribute dict. omegaconf
            // containers keep their items under `_content` and nodes their value under `_val`.
            Some(Object::Opaque { state: Some(state), .. }) => {
                let inner = self
                    .p
                    .dict_get(state, "_content")
                    .or_else(|| self.p.dict_get(state, "_val"))
                    .unwrap_or(state);
                self.scalars(inner, key, depth + 1, out)?;
            }
            Some(Object::Device(d)) => self.insert(out, key, d.to_string()),
            _ => {}
        }
        Ok(())
    }
}

/// A scalar as Python would print it; `None` for containers and objects.
fn render(v: &Value) -> Option<String> {
    Some(match v {
        Value::None => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Int(i) => i.to_string(),
        Value::BigInt(bytes) => {
            let hex: String = bytes.iter().rev().map(|b| format!("{b:02x}")).collect();
            format!("0x{hex} (two's complement)")
        }
        Value::Float(f) => format!("{f:?}"),
        Value::Str(s) => s.to_string(),
        Value::Bytes(b) => format!("<{} bytes>", b.len()),
        Value::Obj(_) => return None,
    })
}

/// Choose the tensors of a parsed `data.pkl` and arrange their keys.
pub fn select(p: &Pickle, opts: &LoadOptions, path: &Path) -> Result<Selection, WeightsError> {
    let unsupported = |what: String| WeightsError::UnsupportedPickle {
        path: path.to_path_buf(),
        what,
    };
    let mut w = Walker {
        p,
        budget: p.objects.len().saturating_mul(WALK_PER_OBJECT).saturating_add(4096),
        metadata_bytes: 0,
    };
    let mut metadata = BTreeMap::new();
    let root = &p.root;
    // `torch.save(tensor)`: one tensor and no dict (e.g. LDAE's `semantic_mean.pt`).
    if let Some(t) = p.tensor(root) {
        let metadata = BTreeMap::from([("checkpoint.layout".to_string(), "tensor".to_string())]);
        return Ok(Selection {
            tensors: vec![(BARE_TENSOR_KEY.to_string(), t.clone())],
            metadata,
        });
    }
    let Some(items) = p.dict(root) else {
        let kind = p.object(root).map_or("scalar", Object::kind);
        return Err(WeightsError::NoTensors {
            path: path.to_path_buf(),
            detail: format!("the pickle holds a {kind}, not a dict of tensors"),
        });
    };

    // Metadata: top-level scalars and hyper-parameter dicts.
    for (k, v) in items {
        let Value::Str(key) = k else { continue };
        if let Some(s) = render(v) {
            w.insert(&mut metadata, key, s);
        } else if HPARAM_KEYS.contains(&&**key) {
            w.scalars(v, key, 0, &mut metadata).map_err(unsupported)?;
        }
    }

    // A plain state dict has tensors at the top level; a wrapper does not.
    let plain = items.iter().any(|(_, v)| p.tensor(v).is_some());
    let mut chosen = None;
    if !plain {
        if opts.prefer_ema {
            for key in EMA_KEYS {
                if let Some(v) = p.dict_get(root, key)
                    && w.has_tensors(v).map_err(unsupported)?
                {
                    chosen = Some((*key, v));
                    break;
                }
            }
            if chosen.is_none() {
                metadata.insert("checkpoint.ema".into(), "no EMA copy under a separate key".into());
            }
        }
        if chosen.is_none() {
            for key in STATE_DICT_KEYS {
                if let Some(v) = p.dict_get(root, key)
                    && w.has_tensors(v).map_err(unsupported)?
                {
                    chosen = Some((*key, v));
                    break;
                }
            }
        }
    }
    let (layout, value) = chosen.unwrap_or((if plain { "plain" } else { "nested" }, root));
    metadata.insert("checkpoint.layout".into(), layout.into());
    if EMA_KEYS.contains(&layout) {
        metadata.insert("checkpoint.ema".into(), format!("selected `{layout}`"));
    }

    let mut tensors = Vec::new();
    w.tensors(value, "", 0, &mut tensors, usize::MAX).map_err(unsupported)?;
    if tensors.is_empty() {
        let keys: Vec<String> = items.iter().filter_map(|(k, _)| render(k)).take(12).collect();
        return Err(WeightsError::NoTensors {
            path: path.to_path_buf(),
            detail: format!("no tensors under any of the keys [{}]", keys.join(", ")),
        });
    }
    // Python dict semantics: a later duplicate key wins.
    let mut seen = HashMap::new();
    let mut dedup: Vec<(String, TensorRef)> = Vec::with_capacity(tensors.len());
    for (k, t) in tensors {
        match seen.get(&k) {
            Some(&i) => dedup[i] = (k, t),
            None => {
                seen.insert(k.clone(), dedup.len());
                dedup.push((k, t));
            }
        }
    }
    let tensors = arrange(dedup, opts, path, &mut metadata)?;
    Ok(Selection { tensors, metadata })
}

/// Resolve `model_ema.*` copies, strip prefixes and apply `select_prefix` to flat keys.
pub fn arrange<T>(
    items: Vec<(String, T)>,
    opts: &LoadOptions,
    path: &Path,
    metadata: &mut BTreeMap<String, String>,
) -> Result<Vec<(String, T)>, WeightsError> {
    // 1. EMA copies inside the dict.
    let (ema, mut regular): (Vec<_>, Vec<_>) = items.into_iter().partition(|(k, _)| k.starts_with(EMA_PREFIX));
    if !ema.is_empty() {
        let n_ema = ema.len();
        if opts.prefer_ema {
            let mut ema: HashMap<String, T> = ema
                .into_iter()
                .map(|(k, t)| (k[EMA_PREFIX.len()..].to_owned(), t))
                .collect();
            let mut replaced = 0usize;
            for (key, t) in regular.iter_mut() {
                let rest = key.strip_prefix("model.").unwrap_or(key);
                let candidates = [rest.to_owned(), rest.replace('.', ""), key.clone()];
                if let Some(e) = candidates.iter().find_map(|c| ema.remove(c)) {
                    *t = e;
                    replaced += 1;
                }
            }
            let note = if replaced == 0 {
                format!("{n_ema} `{EMA_PREFIX}*` tensors match none of the weights; regular weights kept")
            } else {
                format!("`{EMA_PREFIX}*` copies replace {replaced} of {} tensors", regular.len())
            };
            metadata.insert("checkpoint.ema".into(), note);
        } else {
            metadata.insert(
                "checkpoint.ema".into(),
                format!("{n_ema} `{EMA_PREFIX}*` tensors ignored"),
            );
        }
    }

    // 2. Strip prefixes.
    let mut out: Vec<(String, T)> = Vec::with_capacity(regular.len());
    let mut origin: HashMap<String, String> = HashMap::new();
    for (key, t) in regular {
        let mut k = key.as_str();
        'strip: loop {
            for p in &opts.strip_prefixes {
                if !p.is_empty()
                    && let Some(rest) = k.strip_prefix(p.as_str())
                    && !rest.is_empty()
                {
                    k = rest;
                    continue 'strip;
                }
            }
            break;
        }
        let k = k.to_owned();
        if let Some(first) = origin.insert(k.clone(), key.clone()) {
            return Err(WeightsError::DuplicateKey {
                path: path.to_path_buf(),
                key: k,
                first,
                second: key,
            });
        }
        out.push((k, t));
    }

    // 3. Keep one sub-model.
    if let Some(sel) = opts.select_prefix.as_deref().filter(|s| !s.is_empty()) {
        let mut heads: Vec<&str> = out.iter().map(|(k, _)| k.split('.').next().unwrap_or(k)).collect();
        heads.dedup();
        let heads: Vec<String> = {
            let mut h: Vec<String> = heads.into_iter().map(|h| format!("{h}.")).collect();
            h.sort();
            h.dedup();
            h.truncate(12);
            h
        };
        let kept: Vec<(String, T)> = out
            .into_iter()
            .filter_map(|(k, t)| k.strip_prefix(sel).filter(|r| !r.is_empty()).map(|r| (r.to_owned(), t)))
            .collect();
        if kept.is_empty() {
            return Err(WeightsError::NoTensors {
                path: path.to_path_buf(),
                detail: format!("no key starts with `{sel}` (keys start with {})", heads.join(", ")),
            });
        }
        metadata.insert("checkpoint.select_prefix".into(), sel.to_owned());
        out = kept;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::weights::pickle::parse;

    #[test]
    fn shared_subgraphs_cannot_multiply_the_walk() {
        // {'state_dict': L40} with L0 = [1] and L(i+1) = [Li, Li]: 2^40 paths from 42 lists.
        let mut p = vec![0x80, 2, b'}', b'X', 10, 0, 0, 0];
        p.extend(b"state_dict");
        p.extend([b']', b'K', 1, b'a', b'q', 0]);
        for i in 0..40u8 {
            p.extend([b'0', b']', b'h', i, b'a', b'h', i, b'a', b'q', i + 1]);
        }
        p.extend([b's', b'.']);
        let pickle = parse(&p).unwrap();
        let err = select(&pickle, &LoadOptions::default(), Path::new("dag.pt")).unwrap_err();
        assert!(matches!(err, WeightsError::UnsupportedPickle { .. }), "{err}");
    }

    #[test]
    fn prefixes_strip_repeatedly_and_collisions_are_errors() {
        let opts = LoadOptions::default();
        let mut meta = BTreeMap::new();
        let items = vec![("module._orig_mod.model.a".to_owned(), 1), ("model.b".to_owned(), 2)];
        let out = arrange(items, &opts, Path::new("x.pt"), &mut meta).unwrap();
        assert_eq!(out, vec![("a".to_owned(), 1), ("b".to_owned(), 2)]);
        let items = vec![("module.a".to_owned(), 1), ("a".to_owned(), 2)];
        let err = arrange(items, &opts, Path::new("x.pt"), &mut meta).unwrap_err();
        assert!(
            err.to_string().contains("keys `module.a` and `a` both become `a`"),
            "{err}"
        );
    }

    #[test]
    fn timm_style_model_ema_keys_keep_their_dots() {
        let opts = LoadOptions {
            prefer_ema: true,
            ..LoadOptions::default()
        };
        let mut meta = BTreeMap::new();
        let items = vec![("blocks.0.w".to_owned(), 1), ("model_ema.blocks.0.w".to_owned(), 10)];
        let out = arrange(items, &opts, Path::new("x.pt"), &mut meta).unwrap();
        assert_eq!(out, vec![("blocks.0.w".to_owned(), 10)]);
    }
}
