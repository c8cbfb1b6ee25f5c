//! The checkpoint loader on arbitrary bytes: `config.json`, a NUL byte, then `model.safetensors`
//! when the input starts with `{`; otherwise all of it is the file, under a fixed tiny config. Every
//! input must give Ok or Err; a panic, an abort or an allocation over 256 MiB is a finding (the
//! inputs are a few KiB: nothing they imply may allocate more, whatever sizes config.json claims).
//! A model that loads must have the config's sizes and finite weights.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};

use libfuzzer_sys::fuzz_target;
use xenc::weights::BertWeights;
use xenc::ModelConfig;

/// The system allocator, aborting on any allocation over [`LIMIT`]: a finding with or without a
/// sanitizer (libFuzzer's own -malloc_limit_mb needs one), and found where it is made, not when the
/// pages are touched.
struct Bounded;

const LIMIT: usize = 256 << 20;

fn check(size: usize) {
    if size > LIMIT {
        eprintln!("loader fuzz target: an allocation of {size} bytes (limit {LIMIT})");
        std::process::abort();
    }
}

unsafe impl GlobalAlloc for Bounded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOC: Bounded = Bounded;

/// The config of the seed corpus's tiny checkpoints (fuzz/make_corpus.py).
const TINY: &str = r#"{"model_type":"bert","hidden_act":"gelu","hidden_size":4,"num_attention_heads":2,
    "num_hidden_layers":1,"intermediate_size":8,"max_position_embeddings":8,"type_vocab_size":2,
    "vocab_size":16,"layer_norm_eps":1e-12,"num_labels":1}"#;

fuzz_target!(|data: &[u8]| {
    let (config, file) = match data.iter().position(|&b| b == 0) {
        Some(i) if data[0] == b'{' => (&data[..i], &data[i + 1..]),
        _ => (&b""[..], data),
    };
    let parsed = std::str::from_utf8(config)
        .ok()
        .filter(|s| !s.is_empty())
        .map(ModelConfig::from_json_str);
    let cfg = match parsed {
        Some(Ok(cfg)) => cfg,
        Some(Err(e)) => {
            assert!(e.to_string().starts_with("config.json: "), "{e}");
            ModelConfig::from_json_str(TINY).unwrap()
        }
        None => ModelConfig::from_json_str(TINY).unwrap(),
    };
    match BertWeights::from_bytes(file, &cfg) {
        Ok(w) => {
            let h = cfg.hidden_size;
            assert_eq!(w.word_embeddings.len(), cfg.vocab_size * h);
            assert_eq!(w.layers.len(), cfg.num_hidden_layers);
            assert_eq!(w.layers[0].qkv_weight.len(), 3 * h * h);
            let all = [
                &w.word_embeddings,
                &w.position_embeddings,
                &w.classifier_weight,
            ];
            assert!(all.iter().all(|t| t.iter().all(|x| x.is_finite())));
            assert!(w
                .layers
                .iter()
                .all(|l| l.qkv_weight.iter().all(|x| x.is_finite())));
        }
        Err(e) => {
            let m = e.to_string();
            assert!(
                m.starts_with("model.safetensors") || m.starts_with("config.json"),
                "{m}"
            );
        }
    }
});
