//! The CPU path against the real thing: token ids from transformers' tokenizer and logits from the model
//! run in float64 by transformers (tests/golden/, made by scripts/make_goldens.py).

mod common;

use common::{goldens, label, test_model};
use xenc::{Activation, CrossEncoder, Device};

fn load(dtype: &str) -> CrossEncoder {
    CrossEncoder::builder(test_model(dtype))
        .device(Device::Cpu)
        .build()
        .unwrap_or_else(|e| panic!("loading the {dtype} test checkpoint: {e}"))
}

#[test]
fn token_ids_match_transformers_for_every_pair() {
    let model = load("f32");
    let gold = goldens();
    assert!(gold.len() >= 150, "only {} golden pairs", gold.len());
    let mut mismatches = Vec::new();
    for (i, g) in gold.iter().enumerate() {
        let e = model
            .tokenizer()
            .encode_pair(&g.query, &g.document)
            .unwrap();
        if e.input_ids != g.input_ids || e.token_type_ids != g.token_type_ids {
            mismatches.push(format!(
                "{}: {} ids vs {} golden",
                label(g, i),
                e.input_ids.len(),
                g.input_ids.len()
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    let longest = gold.iter().map(|g| g.input_ids.len()).max().unwrap();
    assert_eq!(
        longest, 512,
        "the goldens should include pairs truncated to max_length"
    );
}

#[test]
fn rerank_tokenisation_joins_pieces_like_encode_pair() {
    // rerank tokenises the query once and joins it with each document; it must give the same ids.
    let model = load("f32");
    let tok = model.tokenizer();
    for (i, g) in goldens().iter().enumerate() {
        let q = tok.encode_piece(&g.query).unwrap();
        let d = tok.encode_piece(&g.document).unwrap();
        let joined = tok.join(&q, &d).unwrap();
        assert_eq!(joined.input_ids, g.input_ids, "{}", label(g, i));
        assert_eq!(joined.token_type_ids, g.token_type_ids, "{}", label(g, i));
    }
}

/// Scores every golden pair in one call and returns the worst |logit - golden| with its pair.
fn worst_logit_error(model: &CrossEncoder) -> (f64, usize) {
    let gold = goldens();
    let pairs: Vec<(&str, &str)> = gold
        .iter()
        .map(|g| (g.query.as_str(), g.document.as_str()))
        .collect();
    let logits = model.logits(&pairs).unwrap();
    logits
        .iter()
        .zip(&gold)
        .map(|(&l, g)| (l as f64 - g.logit).abs())
        .enumerate()
        .fold(
            (0.0, 0),
            |(w, wi), (i, e)| if e > w { (e, i) } else { (w, wi) },
        )
}

fn check_dtype(dtype: &str, tolerance: f64) {
    let model = load(dtype);
    let (err, i) = worst_logit_error(&model);
    let gold = goldens();
    println!(
        "{dtype} checkpoint: worst |logit - float64 golden| = {err:.3e} (tolerance {tolerance:.0e}) at {}",
        label(&gold[i], i)
    );
    assert!(
        err <= tolerance,
        "{dtype}: {err:.3e} > {tolerance:.0e} at {}",
        label(&gold[i], i)
    );
}

#[test]
fn f32_logits_within_1e5_of_float64_goldens() {
    check_dtype("f32", 1e-5);
}

#[test]
fn f16_checkpoint_within_5e3() {
    check_dtype("f16", 5e-3);
}

#[test]
fn bf16_checkpoint_within_3e2() {
    check_dtype("bf16", 3e-2);
}

#[test]
fn default_activation_matches_sentence_transformers() {
    let model = load("f32");
    assert_eq!(model.activation(), Activation::Sigmoid);
    let gold = goldens();
    let pairs: Vec<(&str, &str)> = gold
        .iter()
        .map(|g| (g.query.as_str(), g.document.as_str()))
        .collect();
    let scores = model.score(&pairs).unwrap();
    let (mut worst, mut at) = (0f64, 0);
    for (i, (s, g)) in scores.iter().zip(&gold).enumerate() {
        let e = (*s as f64 - g.st_score).abs();
        if e > worst {
            (worst, at) = (e, i);
        }
    }
    println!(
        "worst |score - sentence-transformers| = {worst:.3e} at {}",
        label(&gold[at], at)
    );
    assert!(worst <= 1e-5, "{worst:.3e} at {}", label(&gold[at], at));
}

#[test]
fn a_batch_scores_like_each_pair_alone_and_keeps_input_order() {
    let model = load("f32");
    let gold = goldens();
    // Interleave long and short pairs so the length-sorted plan reorders them internally.
    let mut order: Vec<usize> = (0..gold.len()).collect();
    order.sort_by_key(|&i| (i % 7, std::cmp::Reverse(gold[i].input_ids.len())));
    let pairs: Vec<(&str, &str)> = order
        .iter()
        .map(|&i| (gold[i].query.as_str(), gold[i].document.as_str()))
        .collect();
    let batched = model.logits(&pairs).unwrap();
    let mut worst = 0f32;
    for (k, &i) in order.iter().enumerate() {
        let alone = model.logits(&pairs[k..k + 1]).unwrap()[0];
        worst = worst.max((alone - batched[k]).abs());
        assert!(
            (alone - batched[k]).abs() <= 1e-6,
            "{}: batch {} vs alone {alone}",
            label(&gold[i], i),
            batched[k]
        );
    }
    println!(
        "batch vs alone: worst difference {worst:.2e} over {} pairs",
        pairs.len()
    );

    // A small token budget forces many batches; the results must not move.
    let small = CrossEncoder::builder(test_model("f32"))
        .device(Device::Cpu)
        .token_budget(600)
        .build()
        .unwrap();
    let again = small.logits(&pairs).unwrap();
    for (k, (a, b)) in batched.iter().zip(&again).enumerate() {
        assert!((a - b).abs() <= 1e-6, "pair {k}: {a} vs {b}");
    }
}

#[test]
fn rerank_orders_by_score_and_agrees_with_score() {
    let model = load("f32");
    let gold = goldens();
    let query = "how do vaccines train the immune system";
    let docs: Vec<&str> = gold.iter().take(50).map(|g| g.document.as_str()).collect();
    let pairs: Vec<(&str, &str)> = docs.iter().map(|d| (query, *d)).collect();
    let scores = model.score(&pairs).unwrap();
    let ranked = model.rerank(query, &docs, 10).unwrap();
    assert_eq!(ranked.len(), 10);
    for w in ranked.windows(2) {
        assert!(w[0].score >= w[1].score);
    }
    let mut expected: Vec<usize> = (0..docs.len()).collect();
    expected.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let got: Vec<usize> = ranked.iter().map(|r| r.index).collect();
    assert_eq!(got, expected[..10].to_vec());
    for r in &ranked {
        assert!((r.score - scores[r.index]).abs() <= 1e-6);
    }
    assert_eq!(model.rerank(query, &docs, 1000).unwrap().len(), docs.len());
    assert!(model
        .rerank(query, &Vec::<String>::new(), 5)
        .unwrap()
        .is_empty());
}

#[test]
fn max_length_is_settable() {
    let model = CrossEncoder::builder(test_model("f32"))
        .device(Device::Cpu)
        .max_length(32)
        .build()
        .unwrap();
    let g = &goldens()[0];
    let e = model
        .tokenizer()
        .encode_pair(&g.query, &g.document)
        .unwrap();
    assert!(e.input_ids.len() <= 32);
    assert!(model
        .score(&[(g.query.as_str(), g.document.as_str())])
        .is_ok());
}
