//! RoBERTa / XLM-RoBERTa cross-encoders (the bge-reranker family) on the CPU: synthetic checkpoints in
//! the real models' shapes (scripts/build_family_models.py: XLM-R with head_dim 64 and 514 positions,
//! XLM-R with 8,194 positions for long inputs, RoBERTa with head_dim 32), an XLM-R-style Unigram
//! tokenizer (tests/fixtures/xlmr-tokenizer/), and float64 goldens from transformers
//! (scripts/make_family_goldens.py, tests/golden/families/).

mod common;

use common::{checkpoint, golden_dir, goldens};
use xenc::{Activation, CrossEncoder, Device, PairTokenizer, TokenizerEngine};

struct Case {
    query: String,
    document: String,
    input_ids: Vec<u32>,
    logit: f64,
    what: String,
}

fn cases(name: &str) -> Vec<Case> {
    let pairs = goldens();
    let path = golden_dir().join("families").join(format!("{name}.jsonl"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| {
            let g: serde_json::Value = serde_json::from_str(l).unwrap();
            let (query, document, what) = match g["index"].as_u64() {
                Some(i) => {
                    let p = &pairs[i as usize];
                    (p.query.clone(), p.document.clone(), format!("pair {i}"))
                }
                None => (
                    g["query"].as_str().unwrap().to_string(),
                    g["document"].as_str().unwrap().to_string(),
                    "a long pair".to_string(),
                ),
            };
            Case {
                query,
                document,
                input_ids: serde_json::from_value(g["input_ids"].clone()).unwrap(),
                logit: g["logit"].as_f64().unwrap(),
                what,
            }
        })
        .collect()
}

fn model(name: &str) -> CrossEncoder {
    CrossEncoder::builder(checkpoint(&format!("families/{name}")))
        .device(Device::Cpu)
        .build()
        .unwrap_or_else(|e| panic!("{name}: {e} (run scripts/fixtures.sh)"))
}

/// Ids equal to transformers' fast tokenizer, all token types 0, logits within 1e-5 of float64
/// transformers, and each of `alone_every`-th pair (and every long one) bit-identical alone and in the
/// batch.
fn check_family(name: &str, default_activation: Activation, max_length: usize, alone_every: usize) {
    let model = model(name);
    assert_eq!(model.activation(), default_activation, "{name}");
    assert_eq!(model.max_length(), max_length, "{name}");
    assert_eq!(model.tokenizer().engine(), "hf-tokenizers", "{name}");
    // <s> A </s></s> B </s>: what an over-long check (the server's) adds to the texts' tokens.
    assert_eq!(model.tokenizer().special_tokens_per_pair(), 4, "{name}");
    let cases = cases(name);
    assert!(cases.len() >= 100, "{name}: {} goldens", cases.len());
    let texts: Vec<(&str, &str)> = cases
        .iter()
        .map(|c| (c.query.as_str(), c.document.as_str()))
        .collect();
    for (c, &(q, d)) in cases.iter().zip(&texts) {
        let e = model.tokenizer().encode_pair(q, d).unwrap();
        assert_eq!(e.input_ids, c.input_ids, "{name}: ids of {}", c.what);
        assert!(
            e.token_type_ids.iter().all(|&t| t == 0),
            "{name}: {}",
            c.what
        );
    }
    let logits = model.logits(&texts).unwrap();
    let (mut worst, mut at) = (0f64, 0);
    for (k, (l, c)) in logits.iter().zip(&cases).enumerate() {
        let e = (*l as f64 - c.logit).abs();
        if e > worst {
            (worst, at) = (e, k);
        }
    }
    println!(
        "{name}: worst |logit - float64 golden| = {worst:.3e} at {} ({} tokens)",
        cases[at].what,
        cases[at].input_ids.len()
    );
    assert!(worst <= 1e-5, "{name}: {worst:.3e} at {}", cases[at].what);
    for (k, (pair, c)) in texts.iter().zip(&cases).enumerate() {
        if k % alone_every == 0 || c.input_ids.len() > 512 {
            let alone = model.logits(&[*pair]).unwrap()[0];
            assert_eq!(
                alone.to_bits(),
                logits[k].to_bits(),
                "{name}: {} alone {alone} vs batched {}",
                c.what,
                logits[k]
            );
        }
    }
}

#[test]
fn xlm_roberta_head_dim_64() {
    check_family("xlmr-l2-h384-hd64", Activation::Sigmoid, 512, 7);
}

#[test]
fn xlm_roberta_8194_positions_with_long_pairs() {
    let longest = cases("xlmr-l2-h128-pos8194")
        .iter()
        .map(|c| c.input_ids.len())
        .max()
        .unwrap();
    assert_eq!(longest, 8192, "the goldens hold a pair truncated to 8,192");
    check_family("xlmr-l2-h128-pos8194", Activation::Sigmoid, 8192, 9);
}

#[test]
fn roberta_head_dim_32_raw_default() {
    check_family("roberta-l2-h128-hd32", Activation::Raw, 512, 9);
}

/// 514 positions numbered from pad_token_id + 1 = 2 leave 512 for a pair: 513 is refused, naming why.
#[test]
fn positions_start_after_the_padding_index() {
    let dir = checkpoint("families/xlmr-l2-h384-hd64");
    let model = CrossEncoder::builder(&dir)
        .device(Device::Cpu)
        .max_length(512)
        .build()
        .unwrap();
    assert_eq!(model.config().positions(), 512);
    assert_eq!(model.config().position_offset, 2);
    let err = CrossEncoder::builder(&dir)
        .device(Device::Cpu)
        .max_length(513)
        .build()
        .err()
        .expect("513 tokens do not fit");
    let msg = err.to_string();
    assert!(
        msg.contains("512 positions") && msg.contains("pad_token_id + 1"),
        "{msg}"
    );
}

/// A RoBERTa model on the GPU waits for a GPU run to verify it: asking for CUDA says so (before any
/// CUDA call, so also here without a GPU), and Auto runs it on the CPU.
#[test]
fn gpu_refuses_a_family_no_gpu_has_run() {
    let dir = checkpoint("families/roberta-l2-h128-hd32");
    let err = CrossEncoder::builder(&dir)
        .device(Device::Cuda(0))
        .build()
        .err()
        .expect("not verified on a GPU");
    assert!(
        err.to_string().contains("not yet verified on a GPU"),
        "{err}"
    );
    let auto = CrossEncoder::builder(&dir)
        .device(Device::Auto)
        .build()
        .unwrap();
    assert!(!auto.on_gpu());
}

/// config.json's model_type must match the tensors: a BERT checkpoint labelled xlm-roberta is refused
/// with the tensor it lacks.
#[test]
fn a_family_without_its_tensors_is_named() {
    let bert = checkpoint("f32");
    let tmp = tempfile::tempdir().unwrap();
    for f in [
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(bert.join(f), tmp.path().join(f)).unwrap();
    }
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(bert.join("config.json")).unwrap()).unwrap();
    cfg["model_type"] = "xlm-roberta".into();
    std::fs::write(tmp.path().join("config.json"), cfg.to_string()).unwrap();
    let err = CrossEncoder::builder(tmp.path())
        .device(Device::Cpu)
        .build()
        .err()
        .expect("no roberta tensors");
    let msg = err.to_string();
    assert!(
        msg.contains("roberta.embeddings.word_embeddings.weight") && msg.contains("model_type"),
        "{msg}"
    );
}

// ---- token-id parity on 20,000 generated pairs (the generator of scripts/make_family_goldens.py) ----

const TRICKY: &[&str] = &[
    "é",
    "e\u{301}",
    "日本語",
    "😀",
    "ß",
    "İ",
    "\t",
    "  ",
    "-",
    "'",
    "ﬁ",
    "Ⅻ",
    "①",
    "\u{200b}",
    "Ǆ",
    "ﾟ",
    "Ω",
    "½",
    "…",
    "\u{a0}",
    "«",
    "»",
    "x²",
    "ＡＢＣ",
    "<s>",
    "</s>",
    "<unk>",
];

struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Python's `str.split()`: runs of whitespace, where Python's whitespace also has U+001C..U+001F.
fn python_words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
        .filter(|w| !w.is_empty())
}

fn fuzz_pairs(words: &[String], n: usize, seed: u64) -> Vec<(String, String)> {
    let mut rng = SplitMix64(seed);
    let text = |rng: &mut SplitMix64, count: u64| {
        let mut parts = Vec::new();
        for _ in 0..count {
            if rng.next().is_multiple_of(5) {
                parts.push(TRICKY[(rng.next() % TRICKY.len() as u64) as usize].to_string());
            } else {
                parts.push(words[(rng.next() % words.len() as u64) as usize].clone());
            }
        }
        let sep = if rng.next().is_multiple_of(7) {
            ""
        } else {
            " "
        };
        parts.join(sep)
    };
    (0..n)
        .map(|_| {
            let q = 1 + rng.next() % 12;
            let q = text(&mut rng, q);
            let d = rng.next() % 200;
            (q, text(&mut rng, d))
        })
        .collect()
}

fn fnv1a<'a>(ids: impl Iterator<Item = &'a [u32]>) -> String {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for seq in ids {
        for x in seq.iter().copied().chain([u32::MAX]) {
            for b in x.to_le_bytes() {
                h = (h ^ b as u64).wrapping_mul(0x100_0000_01B3);
            }
        }
    }
    format!("{h:016x}")
}

#[test]
fn xlmr_tokenizer_matches_transformers_on_20000_generated_pairs() {
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(golden_dir().join("families/fuzz.json")).unwrap(),
    )
    .unwrap();
    let (n, block) = (
        meta["pairs"].as_u64().unwrap() as usize,
        meta["block"].as_u64().unwrap() as usize,
    );
    let digests: Vec<String> = serde_json::from_value(meta["digests"].clone()).unwrap();
    assert_eq!(digests.len() * block, n);
    let mut words = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for g in goldens() {
        for text in [&g.query, &g.document] {
            for w in python_words(text) {
                if seen.insert(w.to_string()) {
                    words.push(w.to_string());
                }
            }
        }
    }
    let pairs = fuzz_pairs(&words, n, meta["seed"].as_u64().unwrap());
    let path =
        env!("CARGO_MANIFEST_DIR").to_string() + "/tests/fixtures/xlmr-tokenizer/tokenizer.json";
    let tok = PairTokenizer::from_file_with(
        path.as_ref(),
        meta["max_length"].as_u64().unwrap() as usize,
        TokenizerEngine::Auto,
    )
    .unwrap();
    let encoded = tok.encode_pairs(&pairs).unwrap();
    for (b, want) in digests.iter().enumerate() {
        let got = fnv1a(
            encoded[b * block..(b + 1) * block]
                .iter()
                .map(|e| e.input_ids.as_slice()),
        );
        assert_eq!(
            &got,
            want,
            "block {b} (pairs {}..{})",
            b * block,
            (b + 1) * block
        );
    }
}

/// BERT's `[CLS] A [SEP] B [SEP]` adds 3 tokens, against RoBERTa's 4 (checked in `check_family`).
#[test]
fn bert_pairs_add_three_special_tokens() {
    let model = CrossEncoder::builder(checkpoint("f32"))
        .device(Device::Cpu)
        .build()
        .unwrap();
    assert_eq!(model.tokenizer().special_tokens_per_pair(), 3);
}
