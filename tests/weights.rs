//! Checkpoint loading against fixtures written by torch 2.15 (`tests/fixtures/make_checkpoints.py`,
//! described in `tests/fixtures/weights/expected.json`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use latent_workbench::core::weights::{
    self, Checkpoint, CheckpointFormat, Expected, LoadOptions, WeightsError, build_model, check, expected_by,
    load_checkpoint, var_builder,
};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/weights")
}

fn manifest() -> Value {
    let text = std::fs::read_to_string(dir().join("expected.json")).expect("read expected.json");
    serde_json::from_str(&text).expect("parse expected.json")
}

fn options(v: &Value) -> LoadOptions {
    let mut o = LoadOptions::default();
    if let Some(b) = v.get("prefer_ema").and_then(Value::as_bool) {
        o.prefer_ema = b;
    }
    if let Some(list) = v.get("strip_prefixes").and_then(Value::as_array) {
        o.strip_prefixes = list.iter().map(|s| s.as_str().unwrap().to_owned()).collect();
    }
    if let Some(s) = v.get("select_prefix").and_then(Value::as_str) {
        o.select_prefix = Some(s.to_owned());
    }
    o
}

fn load(file: &str, opts: &LoadOptions) -> Result<Checkpoint, WeightsError> {
    load_checkpoint(&dir().join(file), opts)
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

/// Keys, shapes, dtypes and values equal what torch wrote.
fn assert_reference(label: &str, ckpt: &Checkpoint, reference: &Value) {
    let reference = reference.as_object().unwrap();
    let want: BTreeSet<&str> = reference.keys().map(String::as_str).collect();
    let got: BTreeSet<&str> = ckpt.tensors.keys().map(String::as_str).collect();
    assert_eq!(got, want, "{label}: keys");
    for (key, r) in reference {
        let t = &ckpt.tensors[key];
        let shape: Vec<usize> = r["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(t.dims(), shape.as_slice(), "{label}: shape of `{key}`");
        assert_eq!(
            t.dtype().as_str(),
            r["dtype"].as_str().unwrap(),
            "{label}: dtype of `{key}`"
        );
        let expected: Vec<f64> = r["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().parse().unwrap())
            .collect();
        assert_eq!(values(t), expected, "{label}: values of `{key}`");
    }
}

#[test]
fn every_layout_loads_the_values_torch_saved() {
    let m = manifest();
    let cases = m["cases"].as_array().unwrap();
    assert!(cases.len() >= 15);
    for case in cases {
        let file = case["file"].as_str().unwrap();
        let opts = options(&case["options"]);
        let label = format!("{file} with {opts:?}");
        let ckpt = load(file, &opts).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(ckpt.source, dir().join(file));
        let format = if file.ends_with(".safetensors") {
            CheckpointFormat::SafeTensors
        } else {
            CheckpointFormat::TorchZip
        };
        assert_eq!(ckpt.format, format, "{label}");
        assert_reference(&label, &ckpt, &m["references"][case["reference"].as_str().unwrap()]);
        for (k, v) in case["metadata"].as_object().unwrap() {
            assert_eq!(
                ckpt.metadata.get(k).map(String::as_str),
                v.as_str(),
                "{label}: metadata `{k}` in {:?}",
                ckpt.metadata
            );
        }
    }
}

#[test]
fn pickle_tensors_equal_the_safetensors_reference() {
    for (pt, st) in [
        ("plain.pt", "conv.safetensors"),
        ("dtypes.pt", "dtypes.safetensors"),
        ("litema.ckpt", "litema.safetensors"),
    ] {
        let opts = LoadOptions {
            prefer_ema: true,
            ..LoadOptions::default()
        };
        let a = load(pt, &opts).unwrap();
        let b = load(st, &opts).unwrap();
        assert_eq!(
            a.tensors.keys().collect::<Vec<_>>(),
            b.tensors.keys().collect::<Vec<_>>(),
            "{pt}"
        );
        for (k, ta) in &a.tensors {
            let tb = &b.tensors[k];
            assert_eq!((ta.dims(), ta.dtype()), (tb.dims(), tb.dtype()), "{pt}: `{k}`");
            assert_eq!(values(ta), values(tb), "{pt}: `{k}`");
        }
    }
}

#[test]
fn strided_views_and_shared_storage() {
    let c = load("dtypes.pt", &LoadOptions::default()).unwrap();
    let base = c.tensors["base"].to_vec2::<f32>().unwrap();
    let t = c.tensors["transposed"].to_vec2::<f32>().unwrap();
    assert_eq!(t.len(), 4);
    for (i, row) in base.iter().enumerate() {
        for (j, &x) in row.iter().enumerate() {
            assert_eq!(t[j][i], x);
        }
    }
    assert_eq!(c.tensors["rows"].to_vec2::<f32>().unwrap(), base[1..].to_vec());
    assert_eq!(
        c.tensors["column"].to_vec1::<f32>().unwrap(),
        base.iter().map(|r| r[1]).collect::<Vec<_>>()
    );
    assert_eq!(
        c.tensors["expanded"].to_vec2::<f32>().unwrap(),
        vec![vec![0.0, 1.0, 2.0]; 2]
    );
    assert_eq!(c.tensors["bool"].to_vec1::<u8>().unwrap(), vec![1, 0, 1]);
    assert_eq!(c.tensors["i8"].to_vec1::<i16>().unwrap(), vec![-128, -1, 127]);
    assert_eq!(c.tensors["u16"].to_vec1::<u32>().unwrap(), vec![0, 65535, 1234]);
    assert_eq!(c.tensors["i64"].to_vec1::<i64>().unwrap(), vec![-(1 << 40), -1, 0, 7]);
    assert_eq!(c.tensors["scalar"].dims(), &[] as &[usize]);
    assert_eq!(c.tensors["empty"].dims(), &[0, 3]);
}

#[test]
fn lightning_metadata_and_prefixes() {
    let c = load("lightning.ckpt", &LoadOptions::default()).unwrap();
    assert!(c.tensors.contains_key("0.weight") && !c.tensors.keys().any(|k| k.starts_with("model.")));
    // Optimizer state and callback tensors are not weights.
    assert_eq!(c.tensors.len(), 11);
    assert_eq!(c.metadata["hyper_parameters.lr"], "0.0001");
    assert_eq!(c.metadata["args.seed"], "7");

    // Motion2VecSets' DataParallel + torch.compile prefixes are stripped repeatedly.
    let c = load("motion2vecsets.pth", &LoadOptions::default()).unwrap();
    assert!(c.tensors.contains_key("4.running_var"));
    // And kept when asked to.
    let keep = LoadOptions {
        strip_prefixes: vec![],
        ..LoadOptions::default()
    };
    let c = load("motion2vecsets.pth", &keep).unwrap();
    assert!(c.tensors.contains_key("module._orig_mod.4.running_var"));
}

#[test]
fn prefer_ema_falls_back_and_says_so() {
    let c = load(
        "plain.pt",
        &LoadOptions {
            prefer_ema: true,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert_eq!(c.metadata["checkpoint.layout"], "plain");
    let c = load(
        "motion2vecsets.pth",
        &LoadOptions {
            prefer_ema: true,
            ..LoadOptions::default()
        },
    )
    .unwrap();
    assert_eq!(c.metadata["checkpoint.layout"], "model");
    assert_eq!(c.metadata["checkpoint.ema"], "no EMA copy under a separate key");
}

fn variant(e: &WeightsError) -> &'static str {
    match e {
        WeightsError::NotFound { .. } => "NotFound",
        WeightsError::Io { .. } => "Io",
        WeightsError::Truncated { .. } => "Truncated",
        WeightsError::Corrupt { .. } => "Corrupt",
        WeightsError::UnsafePickle { .. } => "UnsafePickle",
        WeightsError::UnsupportedPickle { .. } => "UnsupportedPickle",
        WeightsError::UnsupportedFormat { .. } => "UnsupportedFormat",
        WeightsError::UnsupportedDtype { .. } => "UnsupportedDtype",
        WeightsError::NoTensors { .. } => "NoTensors",
        WeightsError::DuplicateKey { .. } => "DuplicateKey",
        WeightsError::Mismatch(_) => "Mismatch",
        WeightsError::Candle { .. } => "Candle",
        _ => "other",
    }
}

#[test]
fn damaged_and_unsupported_files_give_precise_errors_naming_the_file() {
    let m = manifest();
    for e in m["errors"].as_array().unwrap() {
        let file = e["file"].as_str().unwrap();
        let path = dir().join(file);
        let err = match load_checkpoint(&path, &options(&e["options"])) {
            Ok(_) => panic!("{file}: loaded"),
            Err(err) => err,
        };
        let msg = err.to_string();
        assert_eq!(variant(&err), e["variant"].as_str().unwrap(), "{file}: {msg}");
        assert!(msg.contains(e["phrase"].as_str().unwrap()), "{file}: {msg}");
        assert!(
            msg.contains(&path.display().to_string()),
            "{file}: message does not name the file: {msg}"
        );
        assert_eq!(err.path(), path);
    }
}

#[test]
fn malicious_pickles_are_refused_and_nothing_runs() {
    let m = manifest();
    let pwned = Path::new(m["pwned_path"].as_str().unwrap());
    let _ = std::fs::remove_file(pwned);
    for (file, global) in [
        ("malicious_system.pt", "posix.system"),
        ("malicious_popen.pt", "subprocess.Popen"),
        ("malicious_eval.pt", "builtins.eval"),
    ] {
        let path = dir().join(file);
        let err = load_checkpoint(&path, &LoadOptions::default()).map(|_| ()).unwrap_err();
        match &err {
            WeightsError::UnsafePickle {
                path: p,
                global: g,
                code_execution,
            } => {
                assert_eq!(p, &path);
                assert_eq!(g, global);
                assert!(code_execution);
            }
            other => panic!("{file}: {other}"),
        }
        assert_eq!(
            err.to_string(),
            format!(
                "refusing to load {}: the pickle asks to call {global} (code execution)",
                path.display()
            )
        );
        // The pickle parser alone refuses it too, before any zip or tensor work.
        assert!(!pwned.exists(), "{file}: the payload ran");
    }
    let err = load("unknown_class.pt", &LoadOptions::default())
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(
            err,
            WeightsError::UnsafePickle {
                code_execution: false,
                ..
            }
        ),
        "{err}"
    );
    assert!(!pwned.exists());
}

/// The conv stack of the fixtures, built from real candle layers where candle has them.
fn conv_stack(vb: VarBuilder<'static>) -> candle_core::Result<Vec<Tensor>> {
    let w0 = vb.pp("0").get((4, 1, 3, 3, 3), "weight")?;
    let b0 = vb.pp("0").get(4, "bias")?;
    let gn = candle_nn::group_norm(2, 4, 1e-5, vb.pp("1"))?;
    let w3 = vb.pp("3").get((2, 4, 1, 1, 1), "weight")?;
    let b3 = vb.pp("3").get(2, "bias")?;
    let bn = candle_nn::batch_norm(2, candle_nn::BatchNormConfig::default(), vb.pp("4"))?;
    let x = Tensor::ones((1, 4, 2, 2), DType::F32, &Device::Cpu)?;
    let _ = candle_core::Module::forward(&gn, &x)?;
    let _ = candle_core::ModuleT::forward_t(&bn, &x.narrow(1, 0, 2)?, false)?;
    Ok(vec![w0, b0, w3, b3])
}

#[test]
fn a_model_loads_through_var_builder() {
    let c = load("lightning.ckpt", &LoadOptions::default()).unwrap();
    let reference = load("conv.safetensors", &LoadOptions::default()).unwrap();
    let out = conv_stack(var_builder(c.clone(), DType::F32, &Device::Cpu)).unwrap();
    assert_eq!(values(&out[0]), values(&reference.tensors["0.weight"]));

    let (_, report) = build_model(&c, DType::F32, &Device::Cpu, false, conv_stack).unwrap();
    let unused: Vec<&str> = report.unexpected.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(unused, vec!["4.num_batches_tracked"]);
    assert_eq!(report.requested.len(), 10);

    // Expectations from the constructor, checked: only the unused counter is reported.
    let expected = expected_by(DType::F32, conv_stack).unwrap();
    let Err(WeightsError::Mismatch(r)) = check(&c, &expected) else {
        panic!("expected a mismatch")
    };
    assert!(r.missing.is_empty() && r.shape_mismatches.is_empty() && r.dtype_mismatches.is_empty());
    assert_eq!(r.unexpected[0].key, "4.num_batches_tracked");
}

#[test]
fn a_wrong_model_gets_a_report_with_key_expected_and_found() {
    let c = load("plain.pt", &LoadOptions::default()).unwrap();
    let path = dir().join("plain.pt");
    // A 2D conv where the checkpoint has a 3D one.
    let wrong = |vb: VarBuilder<'static>| -> candle_core::Result<()> {
        vb.pp("0").get((4, 1, 3, 3), "weight")?;
        vb.pp("0").get(4, "bias")?;
        vb.pp("2").get(4, "weight")?;
        Ok(())
    };
    let err = wrong(var_builder(c.clone(), DType::F32, &Device::Cpu))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "checkpoint {}: key `0.weight` expected shape [4, 1, 3, 3], found [4, 1, 3, 3, 3]",
            path.display()
        )),
        "{err}"
    );

    let Err(WeightsError::Mismatch(report)) = build_model(&c, DType::F32, &Device::Cpu, true, wrong) else {
        panic!("expected a mismatch")
    };
    assert_eq!(report.source, path);
    assert_eq!(report.missing.len(), 1);
    assert_eq!(report.missing[0].key, "2.weight");
    assert_eq!(report.shape_mismatches.len(), 1);
    assert_eq!(report.unexpected.len(), 9);
    let text = report.to_string();
    assert!(
        text.contains("1 missing key, 9 unexpected keys, 1 shape mismatch, 0 dtype mismatches"),
        "{text}"
    );
    assert!(
        text.contains("key `0.weight` expected shape [4, 1, 3, 3], found [4, 1, 3, 3, 3]"),
        "{text}"
    );
    assert!(
        text.contains("missing key `2.weight`: expected shape [4] (f32)"),
        "{text}"
    );
    assert!(
        text.contains("unexpected key `4.num_batches_tracked`: shape [] (i64)"),
        "{text}"
    );

    // The same through `check`, with a dtype expectation too.
    let expected = vec![
        Expected {
            key: "0.weight".into(),
            shape: vec![4, 1, 3, 3],
            dtype: DType::F32,
        },
        Expected {
            key: "4.num_batches_tracked".into(),
            shape: vec![],
            dtype: DType::F32,
        },
    ];
    let Err(err @ WeightsError::Mismatch(_)) = check(&c, &expected) else {
        panic!()
    };
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("checkpoint {} does not match the model", path.display())),
        "{text}"
    );
    assert!(
        text.contains("key `4.num_batches_tracked` expected dtype f32, found i64"),
        "{text}"
    );
}

#[test]
fn truncated_pickles_are_errors_not_panics() {
    // The in-memory parser on a data.pkl cut at every length: an error, never a panic.
    let raw = std::fs::read(dir().join("lightning.ckpt")).unwrap();
    let start = raw.windows(2).position(|w| w == [0x80, 0x02]).unwrap();
    let mut ok = 0;
    for end in start..raw.len().min(start + 4000) {
        if weights::pickle::parse(&raw[start..end]).is_ok() {
            ok += 1;
        }
    }
    assert!(ok >= 1, "the full pickle parses at some length");
}
