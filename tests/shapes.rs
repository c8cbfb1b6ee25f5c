//! Other BERT shapes, so nothing is tied to MiniLM-L6's sizes: head_dim 64 (2 layers, hidden 128),
//! TinyBERT's hidden 312 with head_dim 26 (4 layers), and a 1-layer model with 128 positions, eps 1e-7
//! and raw-logit default. Synthetic weights (scripts/build_shape_models.py), float64 goldens from
//! transformers (scripts/make_shape_goldens.py, tests/golden/shapes/).

mod common;

use common::{checkpoint, golden_dir, goldens, label};
use xenc::{Activation, CrossEncoder, Device};

fn check_shape(name: &str, default_activation: Activation) {
    let dir = checkpoint(&format!("shapes/{name}"));
    let model = CrossEncoder::builder(&dir)
        .device(Device::Cpu)
        .build()
        .unwrap_or_else(|e| panic!("{name}: {e} (run scripts/fixtures.sh)"));
    assert_eq!(model.activation(), default_activation, "{name}");
    let pairs = goldens();
    let path = golden_dir().join("shapes").join(format!("{name}.jsonl"));
    let gold: Vec<serde_json::Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(gold.len() >= 100, "{name}: {} goldens", gold.len());

    let idx: Vec<usize> = gold
        .iter()
        .map(|g| g["index"].as_u64().unwrap() as usize)
        .collect();
    let texts: Vec<(&str, &str)> = idx
        .iter()
        .map(|&i| (pairs[i].query.as_str(), pairs[i].document.as_str()))
        .collect();
    for (g, &(q, d)) in gold.iter().zip(&texts) {
        let e = model.tokenizer().encode_pair(q, d).unwrap();
        let want: Vec<u32> = serde_json::from_value(g["input_ids"].clone()).unwrap();
        assert_eq!(e.input_ids, want, "{name}: ids of pair {}", g["index"]);
    }
    let logits = model.logits(&texts).unwrap();
    let (mut worst, mut at) = (0f64, 0);
    for (k, (l, g)) in logits.iter().zip(&gold).enumerate() {
        let e = (*l as f64 - g["logit"].as_f64().unwrap()).abs();
        if e > worst {
            (worst, at) = (e, k);
        }
    }
    let i = idx[at];
    println!(
        "{name}: worst |logit - float64 golden| = {worst:.3e} at {}",
        label(&pairs[i], i)
    );
    assert!(
        worst <= 1e-5,
        "{name}: {worst:.3e} at {} (a stale checkpoint? rerun scripts/fixtures.sh)",
        label(&pairs[i], i)
    );
    for (k, pair) in texts.iter().enumerate().step_by(9) {
        let alone = model.logits(&[*pair]).unwrap()[0];
        assert!(
            (alone - logits[k]).abs() <= 1e-6,
            "{name}: pair {} alone {alone} vs batched {}",
            idx[k],
            logits[k]
        );
    }
}

#[test]
fn head_dim_64() {
    check_shape("l2-h128-hd64", Activation::Sigmoid);
}

#[test]
fn tinybert_hidden_312_head_dim_26() {
    check_shape("tinybert-h312", Activation::Sigmoid);
}

#[test]
fn one_layer_128_positions_raw_default() {
    check_shape("l1-h64-pos128", Activation::Raw);
}
