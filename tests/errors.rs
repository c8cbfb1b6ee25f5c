//! Bad checkpoints and bad options: each is a clear error that names what is wrong, never a panic.

mod common;

use std::path::Path;

use common::{test_model, write_tiny, TINY};
use xenc::{CrossEncoder, Device};

fn load_err(dir: &Path) -> String {
    match CrossEncoder::builder(dir).device(Device::Cpu).build() {
        Ok(_) => panic!("{} loaded, expected an error", dir.display()),
        Err(e) => e.to_string(),
    }
}

fn tiny_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    write_tiny(d.path(), TINY, |_| {});
    d
}

fn assert_contains(err: &str, needles: &[&str]) {
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in the error: {err}");
    }
}

#[test]
fn the_synthetic_checkpoint_itself_loads_and_scores() {
    let d = tiny_dir();
    let m = CrossEncoder::builder(d.path())
        .device(Device::Cpu)
        .build()
        .unwrap();
    assert_eq!(m.max_length(), 64);
    let s = m.score(&[("a query", "a document"), ("", "")]).unwrap();
    assert!(s.iter().all(|x| x.is_finite() && *x > 0.0 && *x < 1.0));
}

#[test]
fn missing_directory_and_files_are_named() {
    let d = tiny_dir();
    let gone = d.path().join("nope");
    assert_contains(&load_err(&gone), &["nope", "not found"]);
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        let d = tiny_dir();
        std::fs::remove_file(d.path().join(f)).unwrap();
        assert_contains(&load_err(d.path()), &[f, "not found"]);
    }
}

#[test]
fn truncated_or_garbled_safetensors_is_an_error() {
    let d = tiny_dir();
    let path = d.path().join("model.safetensors");
    let full = std::fs::read(&path).unwrap();
    for cut in [0, 4, 8, 100, full.len() / 2, full.len() - 1] {
        std::fs::write(&path, &full[..cut]).unwrap();
        assert_contains(&load_err(d.path()), &["model.safetensors", "cannot parse"]);
    }
    // A header length that points far past the end of the file.
    let mut garbled = full.clone();
    garbled[..8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    std::fs::write(&path, &garbled).unwrap();
    assert_contains(&load_err(d.path()), &["cannot parse"]);
    // A header that is not JSON.
    let mut garbled = full;
    garbled[8..16].copy_from_slice(b"garbage!");
    std::fs::write(&path, &garbled).unwrap();
    assert_contains(&load_err(d.path()), &["cannot parse"]);
}

#[test]
fn renamed_tensor_is_named() {
    let d = tempfile::tempdir().unwrap();
    let name = "bert.encoder.layer.1.attention.self.key.weight";
    write_tiny(d.path(), TINY, |specs| {
        specs.iter_mut().find(|(n, _)| n == name).unwrap().0 = name.replace("key", "kee");
    });
    assert_contains(
        &load_err(d.path()),
        &[&format!("tensor `{name}` is missing")],
    );
}

#[test]
fn wrong_shape_is_named_with_both_shapes() {
    let d = tempfile::tempdir().unwrap();
    write_tiny(d.path(), TINY, |specs| {
        specs
            .iter_mut()
            .find(|(n, _)| n == "bert.pooler.dense.weight")
            .unwrap()
            .1 = vec![16, 17];
    });
    assert_contains(
        &load_err(d.path()),
        &["bert.pooler.dense.weight", "[16, 17]", "expected [16, 16]"],
    );
}

#[test]
fn unprefixed_tensor_names_load_too() {
    let d = tempfile::tempdir().unwrap();
    write_tiny(d.path(), TINY, |specs| {
        for (n, _) in specs.iter_mut() {
            if let Some(rest) = n.strip_prefix("bert.") {
                *n = rest.to_string();
            }
        }
        // Buffers such as position_ids are ignored.
        specs.push(("embeddings.position_ids".into(), vec![1, 64]));
    });
    CrossEncoder::builder(d.path())
        .device(Device::Cpu)
        .build()
        .unwrap();
}

fn edit_config(dir: &Path, field: &str, value: serde_json::Value) {
    let path = dir.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg[field] = value;
    std::fs::write(path, cfg.to_string()).unwrap();
}

#[test]
fn unsupported_config_values_are_named() {
    for (field, value, needles) in [
        (
            "hidden_act",
            serde_json::json!("gelu_new"),
            &["config.json", "hidden_act", "gelu_new"][..],
        ),
        (
            "model_type",
            serde_json::json!("t5"),
            &["model_type", "t5"][..],
        ),
        (
            "num_labels",
            serde_json::json!(3),
            &["`num_labels` is 3 but `id2label` names 1 label"][..],
        ),
        // Three labels in config.json, a one-label head in the weights.
        (
            "id2label",
            serde_json::json!({"0": "a", "1": "b", "2": "c"}),
            &["classifier", "shape"][..],
        ),
        ("hidden_size", serde_json::json!(24), &["shape"][..]),
    ] {
        let d = tiny_dir();
        edit_config(d.path(), field, value);
        assert_contains(&load_err(d.path()), needles);
    }
    let d = tiny_dir();
    std::fs::write(d.path().join("config.json"), "{ not json").unwrap();
    assert_contains(&load_err(d.path()), &["config.json", "not valid JSON"]);
}

#[test]
fn unsupported_activation_needs_an_explicit_choice() {
    let d = tiny_dir();
    edit_config(
        d.path(),
        "sentence_transformers",
        serde_json::json!({"activation_fn": "torch.nn.modules.activation.Tanh"}),
    );
    assert_contains(&load_err(d.path()), &["activation_fn", "Tanh"]);
    let m = CrossEncoder::builder(d.path())
        .device(Device::Cpu)
        .activation(xenc::Activation::Raw)
        .build()
        .unwrap();
    assert_eq!(m.activation(), xenc::Activation::Raw);
}

#[test]
fn garbled_tokenizer_is_an_error() {
    let d = tiny_dir();
    std::fs::write(d.path().join("tokenizer.json"), "{\"version\": 1}").unwrap();
    assert_contains(&load_err(d.path()), &["tokenizer", "tokenizer.json"]);
}

#[test]
fn bad_options_are_errors() {
    let model = test_model("f32");
    let err = |b: xenc::CrossEncoderBuilder| match b.device(Device::Cpu).build() {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    };
    assert_contains(
        &err(CrossEncoder::builder(&model).max_length(513)),
        &["max_length 513", "512"],
    );
    assert_contains(
        &err(CrossEncoder::builder(&model).max_length(3)),
        &["max_length 3"],
    );
    assert_contains(
        &err(CrossEncoder::builder(&model).token_budget(100)),
        &["token budget 100"],
    );
    assert_contains(&err(CrossEncoder::builder(&model).threads(0)), &["threads"]);
}

#[test]
fn cuda_without_a_gpu_is_an_error_not_a_panic() {
    // On machines with a usable GPU this loads; elsewhere it must fail cleanly.
    match CrossEncoder::builder(test_model("f32"))
        .device(Device::Cuda(0))
        .build()
    {
        Ok(m) => println!("CUDA is available here: {}", m.device_name()),
        Err(e) => {
            println!("expected without a GPU: {e}");
            assert!(e.to_string().starts_with("CUDA: "), "{e}");
        }
    }
}

#[test]
fn default_max_length_is_tokenizer_configs_model_max_length() {
    // As sentence-transformers' CrossEncoder: tokenizer_config.json's model_max_length truncates.
    let d = tiny_dir();
    let path = d.path().join("tokenizer_config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg["model_max_length"] = 16.into();
    std::fs::write(&path, cfg.to_string()).unwrap();
    let build = |n: Option<usize>| {
        let b = CrossEncoder::builder(d.path()).device(Device::Cpu);
        n.map_or(b.clone(), |n| b.max_length(n)).build().unwrap()
    };
    let long = [(
        "a question with several words",
        "a document that runs on for more than sixteen word pieces in all, surely",
    )];
    let (default, at16, at64) = (build(None), build(Some(16)), build(Some(64)));
    assert_eq!(default.max_length(), 16);
    assert_eq!(default.score(&long).unwrap(), at16.score(&long).unwrap());
    assert_ne!(default.score(&long).unwrap(), at64.score(&long).unwrap());
    // Beyond the model's positions (here 64) it is not a limit xenc can use: the positions' one is.
    cfg["model_max_length"] = 1000.into();
    std::fs::write(&path, cfg.to_string()).unwrap();
    assert_eq!(build(None).max_length(), 64);
    // Too small for any text: the file is named, not an option the caller did not give.
    cfg["model_max_length"] = 2.into();
    std::fs::write(&path, cfg.to_string()).unwrap();
    let err = load_err(d.path());
    assert_contains(
        &err,
        &["tokenizer_config.json: model_max_length", "max_length 2"],
    );
    assert!(!err.starts_with("invalid option"), "{err}");
}

#[test]
fn bad_encoded_pairs_are_named_by_their_index() {
    let d = tiny_dir();
    let m = CrossEncoder::builder(d.path())
        .device(Device::Cpu)
        .build()
        .unwrap();
    let pair = |len: usize| xenc::EncodedPair {
        input_ids: vec![101; len],
        token_type_ids: vec![0; len],
    };
    let item = |pairs: &[xenc::EncodedPair]| match m.logits_encoded(pairs) {
        Err(xenc::Error::Item {
            what,
            index,
            message,
        }) => (what, index, message),
        other => panic!("expected an item error, got {other:?}"),
    };
    // Planning sorts by length; the error still names the input's index, the first bad one.
    let (what, index, message) = item(&[pair(10), pair(20), pair(100), pair(90), pair(7)]);
    assert_eq!((what, index), ("pair", 2));
    assert!(message.contains("100 tokens"), "{message}");
    // Length mismatches that would cancel out in a batch's totals.
    let (mut a, mut b) = (pair(3), pair(2));
    b.token_type_ids.push(a.token_type_ids.pop().unwrap());
    let (_, index, message) = item(&[pair(5), a, b.clone()]);
    assert_eq!(index, 1);
    assert!(
        message.contains("3 token ids but 2 token types"),
        "{message}"
    );
    let (_, index, message) = item(&[pair(5), pair(4), b]);
    assert_eq!(index, 2);
    assert!(
        message.contains("2 token ids but 3 token types"),
        "{message}"
    );
}

#[test]
fn threads_bound_tokenisation_too() {
    let d = tiny_dir();
    let m = CrossEncoder::builder(d.path())
        .device(Device::Cpu)
        .threads(1)
        .build()
        .unwrap();
    assert_eq!(m.tokenizer().threads(), 1);
    assert_eq!(m.device_name(), "cpu (1 threads)");
}

#[test]
fn a_logit_that_overflows_is_an_error_naming_the_pair_not_a_score() {
    // Finite weights whose classifier overflows f32 (the pooler saturates at tanh = 1, the classifier
    // sums 16 × f32::MAX): every logit is +inf, which must never come out as a score (JSON would print
    // it as null, and it would sort first or last).
    let d = tiny_dir();
    let path = d.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let all = |x: f32| -> Vec<u8> { (0..TINY.hidden).flat_map(|_| x.to_le_bytes()).collect() };
    let tensors: Vec<(String, Vec<u8>, Vec<usize>)> = st
        .tensors()
        .into_iter()
        .map(|(name, v)| {
            let data = match name.as_str() {
                "classifier.weight" => all(f32::MAX),
                "bert.pooler.dense.bias" => all(100.0),
                _ => v.data().to_vec(),
            };
            (name, data, v.shape().to_vec())
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, data, shape)| {
            let v =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data);
            (n.clone(), v.unwrap())
        })
        .collect();
    std::fs::write(&path, safetensors::tensor::serialize(views, None).unwrap()).unwrap();
    let m = CrossEncoder::builder(d.path())
        .device(Device::Cpu)
        .build()
        .unwrap();
    let err = m
        .score(&[("a query", "a document"), ("q", "d")])
        .unwrap_err();
    assert_eq!(err.item(), Some(("pair", 0)), "{err}");
    assert_contains(&err.to_string(), &["pair 0", "logit", "not finite"]);
    let err = m.rerank("a query", &["a document"], 1).unwrap_err();
    assert_eq!(err.item(), Some(("document", 0)), "{err}");
}

/// model.safetensors split into its JSON header and its data.
fn split_safetensors(bytes: &[u8]) -> (serde_json::Value, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (header, bytes[8 + n..].to_vec())
}

fn join_safetensors(header: &serde_json::Value, data: &[u8]) -> Vec<u8> {
    let json = header.to_string();
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(data);
    out
}

/// Edits the synthetic checkpoint's model.safetensors through its header and data.
fn edit_safetensors(dir: &Path, edit: impl FnOnce(&mut serde_json::Value, &mut Vec<u8>)) {
    let path = dir.join("model.safetensors");
    let (mut header, mut data) = split_safetensors(&std::fs::read(&path).unwrap());
    edit(&mut header, &mut data);
    std::fs::write(path, join_safetensors(&header, &data)).unwrap();
}

fn offsets(header: &serde_json::Value, name: &str) -> (usize, usize) {
    let o = &header[name]["data_offsets"];
    (
        o[0].as_u64().unwrap() as usize,
        o[1].as_u64().unwrap() as usize,
    )
}

#[test]
fn a_config_far_larger_than_the_file_is_a_config_error_not_an_abort() {
    // 3·H² f32 for Q|K|V alone is 48 GiB at H = 65,536 and overflows at 2^24: the sizes are checked
    // against the file before anything is allocated from them.
    for hidden in [65_536, 1 << 20, 1 << 24] {
        let d = tiny_dir();
        edit_config(d.path(), "hidden_size", serde_json::json!(hidden));
        edit_config(d.path(), "num_attention_heads", serde_json::json!(1));
        let err = load_err(d.path());
        assert_contains(
            &err,
            &[
                "config.json",
                &format!("hidden_size {hidden}"),
                "model.safetensors holds",
            ],
        );
    }
    // Layers, vocabulary or positions beyond what the file holds: the fields are named.
    for (field, value) in [
        ("num_hidden_layers", 1_000_000),
        ("vocab_size", 1 << 24),
        ("max_position_embeddings", 1 << 24),
        ("intermediate_size", 1 << 24),
    ] {
        let d = tiny_dir();
        edit_config(d.path(), field, serde_json::json!(value));
        assert_contains(
            &load_err(d.path()),
            &["config.json", &format!("{field} {value}")],
        );
    }
}

#[test]
fn a_huge_sparse_file_is_refused_from_its_header_alone() {
    // A valid header, then 20 GiB the header does not describe: a sparse file (no disk used). The
    // header is checked against the file's length before any data is read or allocated.
    let d = tiny_dir();
    let path = d.path().join("model.safetensors");
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(20 << 30).unwrap();
    drop(f);
    let err = load_err(d.path());
    assert_contains(
        &err,
        &[
            "model.safetensors",
            &format!("{} bytes belong to no tensor", (20u64 << 30) - len),
            "not fully covered",
        ],
    );
}

#[test]
fn header_offsets_that_overlap_leave_gaps_or_pass_the_end_are_named() {
    let shift = |header: &mut serde_json::Value, name: &str, by: i64| {
        let (s, e) = offsets(header, name);
        header[name]["data_offsets"] = serde_json::json!([s as i64 + by, e as i64 + by]);
    };
    // Two tensors next to each other in the data: move the second one.
    let d = tiny_dir();
    let (header, _) =
        split_safetensors(&std::fs::read(d.path().join("model.safetensors")).unwrap());
    let mut names: Vec<String> = header
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect();
    names.sort_by_key(|n| offsets(&header, n));
    let (first, second) = (names[1].as_str(), names[2].as_str());

    let d = tiny_dir();
    edit_safetensors(d.path(), |h, _| shift(h, second, -4));
    assert_contains(
        &load_err(d.path()),
        &[
            &format!("tensor `{second}` starts at byte"),
            &format!("inside tensor `{first}`"),
            "overlap",
        ],
    );
    let d = tiny_dir();
    edit_safetensors(d.path(), |h, _| shift(h, second, 4));
    assert_contains(
        &load_err(d.path()),
        &[
            "belong to no tensor",
            &format!("after tensor `{first}`"),
            &format!("before `{second}`"),
        ],
    );
    // A shape that does not match the byte range.
    let a = "bert.embeddings.word_embeddings.weight";
    let d = tiny_dir();
    edit_safetensors(d.path(), |h, _| {
        h[a]["shape"] = serde_json::json!([30522, 15])
    });
    assert_contains(
        &load_err(d.path()),
        &[
            &format!("tensor `{a}` has shape [30522, 15]"),
            "data_offsets",
        ],
    );
    // The last tensor running past the end: a truncated file.
    let d = tiny_dir();
    edit_safetensors(d.path(), |_, data| {
        data.pop();
    });
    assert_contains(
        &load_err(d.path()),
        &["past the end of the file", "truncated"],
    );
}

/// Writes `value` over element `index` of f32 tensor `name` in the synthetic checkpoint.
fn poison(dir: &Path, name: &str, index: usize, value: f32) {
    edit_safetensors(dir, |h, data| {
        let at = offsets(h, name).0 + 4 * index;
        data[at..at + 4].copy_from_slice(&value.to_le_bytes());
    });
}

#[test]
fn non_finite_weights_are_named_with_their_first_index() {
    for (name, index, value, needle) in [
        (
            "bert.embeddings.word_embeddings.weight",
            100_000,
            f32::NAN,
            "NaN at index 100000 ([6250, 0] in shape [30522, 16])",
        ),
        (
            "bert.encoder.layer.1.attention.self.value.weight",
            17,
            f32::INFINITY,
            "inf at index 17 ([1, 1] in shape [16, 16])",
        ),
        ("classifier.bias", 0, f32::NEG_INFINITY, "-inf at index 0"),
    ] {
        let d = tiny_dir();
        poison(d.path(), name, index, value);
        // A second bad value later in the tensor: the first is named.
        if index > 0 {
            poison(d.path(), name, index + 1, f32::NAN);
        }
        assert_contains(
            &load_err(d.path()),
            &[&format!("tensor `{name}` holds {needle}")],
        );
    }
}
