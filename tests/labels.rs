//! A head with several labels (an NLI-style cross-encoder: contradiction / entailment / neutral):
//! every label's logit within 1e-5 of transformers in float64, the scores sentence-transformers'
//! `predict` gives (raw by default, `apply_softmax`), batch vs alone, and `rerank` refusing unless a
//! label is chosen, in the library and the CLI. Synthetic checkpoint from scripts/build_shape_models.py
//! (LABEL_SHAPES), goldens from scripts/make_label_goldens.py (tests/golden/labels/).

mod common;

use std::process::Command;

use common::{checkpoint, golden_dir, goldens, label};
use serde_json::Value;
use xenc::{Activation, CrossEncoder, Device, Error};

const NAME: &str = "l2-h128-3labels";
const LABELS: [&str; 3] = ["contradiction", "entailment", "neutral"];

fn dir() -> std::path::PathBuf {
    checkpoint(&format!("shapes/{NAME}"))
}

fn model(
    edit: impl FnOnce(xenc::CrossEncoderBuilder) -> xenc::CrossEncoderBuilder,
) -> CrossEncoder {
    edit(CrossEncoder::builder(dir()).device(Device::Cpu))
        .build()
        .unwrap_or_else(|e| panic!("{NAME}: {e} (run scripts/fixtures.sh)"))
}

/// The golden lines and their pairs' text.
fn gold() -> (Vec<Value>, Vec<(String, String)>) {
    let pairs = goldens();
    let path = golden_dir().join("labels").join(format!("{NAME}.jsonl"));
    let gold: Vec<Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(gold.len() >= 100, "{} goldens", gold.len());
    let texts = gold
        .iter()
        .map(|g| {
            let p = &pairs[g["index"].as_u64().unwrap() as usize];
            (p.query.clone(), p.document.clone())
        })
        .collect();
    (gold, texts)
}

fn floats(v: &Value) -> Vec<f64> {
    serde_json::from_value(v.clone()).unwrap()
}

/// The largest |got - want| over every pair and label, and the pair it is at.
fn worst(got: &[f32], gold: &[Value], field: &str) -> (f64, usize) {
    let (mut worst, mut at) = (0f64, 0);
    for (k, (row, g)) in got.chunks_exact(3).zip(gold).enumerate() {
        let want = floats(&g[field]);
        assert_eq!(want.len(), 3, "{field} of pair {k}");
        for (x, w) in row.iter().zip(&want) {
            let e = (*x as f64 - w).abs();
            if e > worst {
                (worst, at) = (e, k);
            }
        }
    }
    (worst, at)
}

#[test]
fn every_labels_logit_matches_transformers_in_float64() {
    let m = model(|b| b);
    assert_eq!(m.num_labels(), 3);
    assert_eq!(m.config().labels, LABELS);
    // sentence-transformers' default for several labels: Identity.
    assert_eq!(m.activation(), Activation::Raw);
    let (gold, texts) = gold();
    for (g, (q, d)) in gold.iter().zip(&texts) {
        let e = m.tokenizer().encode_pair(q, d).unwrap();
        let want: Vec<u32> = serde_json::from_value(g["input_ids"].clone()).unwrap();
        assert_eq!(e.input_ids, want, "ids of pair {}", g["index"]);
    }
    let logits = m.logits(&texts).unwrap();
    assert_eq!(logits.len(), 3 * texts.len());
    let (err, at) = worst(&logits, &gold, "logits");
    let i = gold[at]["index"].as_u64().unwrap() as usize;
    println!(
        "{NAME}: worst |logit - float64 golden| = {err:.3e} at {}",
        label(&goldens()[i], i)
    );
    assert!(err <= 1e-5, "{err:.3e} at golden line {at}");
    // score() with the default activation is sentence-transformers' predict().
    let (err, at) = worst(&m.score(&texts).unwrap(), &gold, "st_default");
    assert!(err <= 1e-5, "default scores: {err:.3e} at golden line {at}");

    // Each pair's logits are the same alone as in the batch, bit for bit.
    for (k, pair) in texts.iter().enumerate().step_by(7) {
        let alone = m.logits(std::slice::from_ref(pair)).unwrap();
        assert_eq!(alone, logits[3 * k..3 * k + 3], "pair {k} alone vs batched");
    }
}

#[test]
fn softmax_scores_are_sentence_transformers_apply_softmax() {
    let m = model(|b| b.activation(Activation::Softmax));
    let (gold, texts) = gold();
    let scores = m.score(&texts).unwrap();
    let (err, at) = worst(&scores, &gold, "st_softmax");
    assert!(err <= 1e-5, "softmax scores: {err:.3e} at golden line {at}");
    for row in scores.chunks_exact(3) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
    }
}

#[test]
fn rerank_refuses_several_labels_unless_one_is_chosen() {
    let (_, texts) = gold();
    let query = texts[0].0.as_str();
    let docs: Vec<&str> = texts[..40].iter().map(|(_, d)| d.as_str()).collect();

    let m = model(|b| b);
    assert_eq!(m.label(), None);
    match m.rerank(query, &docs, 5) {
        Err(Error::Option(msg)) => {
            assert!(
                msg.contains("3 labels (0 contradiction, 1 entailment, 2 neutral)")
                    && msg.contains("label"),
                "{msg}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    // Chosen by name or by index: ranked by that label's score, as sorting the pairs' scores would.
    let want: Vec<f32> = m
        .score(&docs.iter().map(|d| (query, *d)).collect::<Vec<_>>())
        .unwrap()
        .chunks_exact(3)
        .map(|r| r[1])
        .collect();
    for chosen in ["entailment", "1"] {
        let m = model(|b| b.label(chosen));
        assert_eq!(m.label(), Some(1));
        let ranked = m.rerank(query, &docs, docs.len()).unwrap();
        assert_eq!(ranked.len(), docs.len());
        for w in ranked.windows(2) {
            assert!(w[0].score >= w[1].score, "{chosen}: not best first");
        }
        for r in &ranked {
            assert_eq!(r.score, want[r.index], "{chosen}: document {}", r.index);
        }
    }
    for bad in ["maybe", "3"] {
        let err = CrossEncoder::builder(dir())
            .device(Device::Cpu)
            .label(bad)
            .build()
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains(&format!("label {bad:?} is not one of the model's labels"))
                && err.contains("2 neutral"),
            "{err}"
        );
    }
}

#[test]
fn softmax_is_refused_for_a_one_label_model() {
    let err = CrossEncoder::builder(checkpoint("shapes/l2-h128-hd64"))
        .device(Device::Cpu)
        .activation(Activation::Softmax)
        .build()
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("softmax") && err.contains("one-label"),
        "{err}"
    );
}

fn xenc(args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_xenc"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn the_cli_prints_every_label_and_reranks_by_the_chosen_one() {
    let (gold, texts) = gold();
    let d = dir();
    let model = d.to_str().unwrap();
    let input: String = texts[..20]
        .iter()
        .map(|(q, d)| serde_json::json!({"query": q, "document": d}).to_string() + "\n")
        .collect();
    for (flags, field) in [(&[][..], "st_default"), (&["--softmax"][..], "st_softmax")] {
        let mut args = vec!["score", "--model", model, "--device", "cpu"];
        args.extend(flags);
        let out = xenc(&args, &input);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 20);
        for (line, g) in lines.iter().zip(&gold) {
            let scores = line["scores"].as_object().expect("a scores object");
            let keys: Vec<&str> = scores.keys().map(String::as_str).collect();
            assert_eq!(keys, LABELS, "labels in id2label's order");
            for (name, want) in LABELS.iter().zip(floats(&g[field])) {
                let got = scores[*name].as_f64().unwrap();
                assert!(
                    (got - want).abs() <= 1e-5,
                    "{field} {name}: {got} vs {want}"
                );
            }
        }
    }

    let docs: String = texts[..10].iter().map(|(_, d)| d.clone() + "\n").collect();
    let query = texts[0].0.as_str();
    let out = xenc(
        &[
            "rerank", "--model", model, "--device", "cpu", "--query", query,
        ],
        &docs,
    );
    assert_eq!(out.status.code(), Some(1), "refused");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("3 labels") && err.contains("--label"), "{err}");
    assert!(out.stdout.is_empty());

    let args = [
        "rerank", "--model", model, "--device", "cpu", "--label", "neutral", "--query", query,
    ];
    let out = xenc(&args, &docs);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ranked: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(ranked.len(), 10);
    let docs: Vec<&str> = texts[..10].iter().map(|(_, d)| d.as_str()).collect();
    let want = (self::model(|b| b.label("neutral")).rerank(query, &docs, 10)).unwrap();
    for (line, w) in ranked.iter().zip(&want) {
        assert_eq!(line["index"].as_u64(), Some(w.index as u64));
        assert_eq!(line["score"].as_f64().unwrap() as f32, w.score);
    }
}
