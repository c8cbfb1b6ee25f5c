//! Shared by the integration tests: where the test checkpoint and the goldens are.
#![allow(dead_code)]

use std::path::PathBuf;

/// Where scripts/fixtures.sh puts the test checkpoints: `XENC_TEST_MODEL_DIR`, default
/// `$HOME/.cache/xenc/test-model`.
pub fn model_root() -> PathBuf {
    std::env::var_os("XENC_TEST_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is not set"))
                .join(".cache/xenc/test-model")
        })
}

/// A checkpoint under the model root (`f32`, `f16`, `bf16`, `shapes/NAME`). A missing one fails the
/// test with the command that builds it: never a silent pass.
pub fn checkpoint(rel: &str) -> PathBuf {
    let dir = model_root().join(rel);
    assert!(
        dir.join("model.safetensors").is_file(),
        "test checkpoint missing at {}: run `bash scripts/fixtures.sh`",
        dir.display()
    );
    dir
}

/// The MiniLM test checkpoint in `dtype` (f32, f16, bf16), built by `scripts/fetch-test-model.sh`.
pub fn test_model(dtype: &str) -> PathBuf {
    checkpoint(dtype)
}

/// tests/golden, or `XENC_GOLDEN_DIR` (a test binary run on another machine, e.g. by
/// scripts/gpu-check.sh, cannot rely on the source path baked in at build time).
pub fn golden_dir() -> PathBuf {
    std::env::var_os("XENC_GOLDEN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden"))
}

#[derive(Debug, Clone)]
pub struct Golden {
    pub query: String,
    pub document: String,
    pub note: String,
    pub input_ids: Vec<u32>,
    pub token_type_ids: Vec<u32>,
    /// transformers, model in float64.
    pub logit: f64,
    /// sentence-transformers CrossEncoder.predict with its default activation.
    pub st_score: f64,
}

/// tests/golden/pairs.jsonl joined with tests/golden/goldens.jsonl (same order).
pub fn goldens() -> Vec<Golden> {
    let read = |name: &str| -> Vec<serde_json::Value> {
        let path = golden_dir().join(name);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let pairs = read("pairs.jsonl");
    let gold = read("goldens.jsonl");
    assert_eq!(
        pairs.len(),
        gold.len(),
        "pairs.jsonl and goldens.jsonl differ in length"
    );
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    pairs
        .iter()
        .zip(&gold)
        .enumerate()
        .map(|(i, (p, g))| {
            assert_eq!(g["index"].as_u64(), Some(i as u64));
            Golden {
                query: p["query"].as_str().unwrap().to_string(),
                document: p["document"].as_str().unwrap().to_string(),
                note: p["note"].as_str().unwrap_or("").to_string(),
                input_ids: ids(&g["input_ids"]),
                token_type_ids: ids(&g["token_type_ids"]),
                logit: g["logit"].as_f64().unwrap(),
                st_score: g["st_score"].as_f64().unwrap(),
            }
        })
        .collect()
}

/// A short printable name for a pair in failure messages.
pub fn label(g: &Golden, i: usize) -> String {
    let cut = |s: &str| s.chars().take(40).collect::<String>();
    format!(
        "pair {i} [{}] q={:?} d={:?}",
        g.note,
        cut(&g.query),
        cut(&g.document)
    )
}

/// The shape of a synthetic BERT checkpoint (random weights) used by the error and shape tests.
#[derive(Debug, Clone, Copy)]
pub struct Tiny {
    pub hidden: usize,
    pub heads: usize,
    pub layers: usize,
    pub intermediate: usize,
    pub max_positions: usize,
}

pub const TINY: Tiny = Tiny {
    hidden: 16,
    heads: 2,
    layers: 2,
    intermediate: 32,
    max_positions: 64,
};

pub const VOCAB: usize = 30522;

/// (name, shape) of every tensor of a BertForSequenceClassification with one label.
pub fn tiny_tensor_specs(t: Tiny) -> Vec<(String, Vec<usize>)> {
    let (h, i) = (t.hidden, t.intermediate);
    let mut specs = vec![
        (
            "bert.embeddings.word_embeddings.weight".to_string(),
            vec![VOCAB, h],
        ),
        (
            "bert.embeddings.position_embeddings.weight".into(),
            vec![t.max_positions, h],
        ),
        (
            "bert.embeddings.token_type_embeddings.weight".into(),
            vec![2, h],
        ),
        ("bert.embeddings.LayerNorm.weight".into(), vec![h]),
        ("bert.embeddings.LayerNorm.bias".into(), vec![h]),
        ("bert.pooler.dense.weight".into(), vec![h, h]),
        ("bert.pooler.dense.bias".into(), vec![h]),
        ("classifier.weight".into(), vec![1, h]),
        ("classifier.bias".into(), vec![1]),
    ];
    for l in 0..t.layers {
        let p = format!("bert.encoder.layer.{l}.");
        for part in ["query", "key", "value"] {
            specs.push((format!("{p}attention.self.{part}.weight"), vec![h, h]));
            specs.push((format!("{p}attention.self.{part}.bias"), vec![h]));
        }
        specs.push((format!("{p}attention.output.dense.weight"), vec![h, h]));
        specs.push((format!("{p}attention.output.dense.bias"), vec![h]));
        specs.push((format!("{p}attention.output.LayerNorm.weight"), vec![h]));
        specs.push((format!("{p}attention.output.LayerNorm.bias"), vec![h]));
        specs.push((format!("{p}intermediate.dense.weight"), vec![i, h]));
        specs.push((format!("{p}intermediate.dense.bias"), vec![i]));
        specs.push((format!("{p}output.dense.weight"), vec![h, i]));
        specs.push((format!("{p}output.dense.bias"), vec![h]));
        specs.push((format!("{p}output.LayerNorm.weight"), vec![h]));
        specs.push((format!("{p}output.LayerNorm.bias"), vec![h]));
    }
    specs
}

/// Writes a synthetic checkpoint into `dir`: config.json for `t`, model.safetensors with seeded random
/// f32 weights (after `edit` may rename, reshape or drop entries of the spec list), and the test
/// checkpoint's tokenizer files.
pub fn write_tiny(
    dir: &std::path::Path,
    t: Tiny,
    edit: impl FnOnce(&mut Vec<(String, Vec<usize>)>),
) {
    use safetensors::{tensor::TensorView, Dtype};
    std::fs::create_dir_all(dir).unwrap();
    let config = serde_json::json!({
        "architectures": ["BertForSequenceClassification"],
        "model_type": "bert", "hidden_act": "gelu", "hidden_size": t.hidden,
        "num_attention_heads": t.heads, "num_hidden_layers": t.layers,
        "intermediate_size": t.intermediate, "max_position_embeddings": t.max_positions,
        "type_vocab_size": 2, "vocab_size": VOCAB, "layer_norm_eps": 1e-12,
        "id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let mut specs = tiny_tensor_specs(t);
    edit(&mut specs);
    let mut state = 0x2545F4914F6CDD1Du64;
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = specs
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let is_ln_weight = name.ends_with("LayerNorm.weight");
            let data: Vec<u8> = (0..n)
                .flat_map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let u = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                    let v = if is_ln_weight { 1.0 + 0.2 * u } else { 0.2 * u };
                    v.to_le_bytes()
                })
                .collect();
            (name, shape, data)
        })
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(name, shape, data)| {
            (
                name.clone(),
                TensorView::new(Dtype::F32, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    let file = safetensors::tensor::serialize(views, None).unwrap();
    std::fs::write(dir.join("model.safetensors"), file).unwrap();
    let src = test_model("f32");
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "vocab.txt",
    ] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
}
