//! The host steps on the critical path of `CrossEncoder::rerank` and `logits_encoded`, one by one, on
//! pairs of the seeded `xenc bench` workload: a 1 query x 50 document rerank (~5,400 tokens, one batch)
//! and 143 pairs (~16k tokens, one full batch of the default budget). Steps: `plan_batches`,
//! `RaggedBatch::from_pairs`, `check_pair` per pair (what `logits_encoded` checks) against the batch's
//! `validate`, `pack_batch` (the CUDA path's index packing, pure Rust), and
//! rerank's tokenisation on the calling thread against rayon on all cores, for 1 to 50 documents (the
//! measurements behind rerank's choice between the two), also right after ~0.6 ms of idling, as a rerank
//! after a GPU batch meets the pool (`rerank_tokenize_after_idle`). Needs the test checkpoint
//! (`bash scripts/fixtures.sh`); says so and exits if absent.
//! `cargo bench --bench host_path [-- FILTER]`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rayon::prelude::*;
use xenc::batch::{check_pair, plan_batches, RaggedBatch};
use xenc::cuda::plan::{pack_batch, PackedBatch};
use xenc::tokenize::{PairTokenizer, Piece};
use xenc::{CrossEncoder, Device, EncodedPair, ModelConfig, DEFAULT_TOKEN_BUDGET};

mod common;

/// rerank's tokenisation on the calling thread: the query once, each document joined to it.
fn rerank_encode_serial(tok: &PairTokenizer, q: &Piece, docs: &[&str]) -> Vec<EncodedPair> {
    docs.iter()
        .map(|d| tok.join(q, &tok.encode_piece(d).unwrap()).unwrap())
        .collect()
}

/// The same on rayon's global pool (all cores), one task per document at most.
fn rerank_encode_parallel(tok: &PairTokenizer, q: &Piece, docs: &[&str]) -> Vec<EncodedPair> {
    docs.par_iter()
        .map(|d| tok.join(q, &tok.encode_piece(d).unwrap()).unwrap())
        .collect()
}

fn host_path(c: &mut Criterion) {
    // f16 where only that travels (the GPU bundle): tokenisation and packing do not depend on it.
    let Some(dir) = common::test_model_path("f32").or_else(|| common::test_model_path("f16"))
    else {
        eprintln!("host_path: skipped: no test checkpoint (run `bash scripts/fixtures.sh`)");
        return;
    };
    let cfg = ModelConfig::from_file(&dir.join("config.json")).unwrap();
    let tok = PairTokenizer::from_file(&dir.join("tokenizer.json"), 512).unwrap();
    let pairs = xenc::bench::generate_with(&tok, 2000, 42);
    // As `xenc bench` reranks: the first pair's query with the first 50 documents.
    let query = pairs[0].0.as_str();
    let docs: Vec<&str> = pairs[..50].iter().map(|(_, d)| d.as_str()).collect();
    let q = tok.encode_piece(query).unwrap();
    let rerank = rerank_encode_serial(&tok, &q, &docs);
    assert_eq!(rerank, rerank_encode_parallel(&tok, &q, &docs));
    let full = tok.encode_pairs(&pairs[..143]).unwrap();

    let heads = cfg.num_attention_heads;
    for (name, encoded) in [("rerank_1x50", &rerank), ("pairs_143", &full)] {
        let lengths: Vec<usize> = encoded.iter().map(EncodedPair::len).collect();
        let tokens: usize = lengths.iter().sum();
        let plan = plan_batches(&lengths, DEFAULT_TOKEN_BUDGET);
        assert_eq!(plan.len(), 1, "{name}: {tokens} tokens are not one batch");
        let batch = RaggedBatch::from_pairs(plan[0].iter().map(|&i| &encoded[i]));
        let mut packed = PackedBatch::default();

        let mut group = c.benchmark_group(format!("host_path/{name}"));
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(2));
        group.throughput(Throughput::Elements(tokens as u64));
        group.bench_function("plan_batches", |b| {
            b.iter(|| plan_batches(&lengths, DEFAULT_TOKEN_BUDGET))
        });
        group.bench_function("from_pairs", |b| {
            b.iter(|| RaggedBatch::from_pairs(plan[0].iter().map(|&i| &encoded[i])))
        });
        group.bench_function("validate", |b| b.iter(|| batch.validate(&cfg).unwrap()));
        group.bench_function("check_pairs", |b| {
            b.iter(|| {
                encoded
                    .iter()
                    .try_for_each(|p| check_pair(p, &cfg))
                    .unwrap()
            })
        });
        group.bench_function("pack_batch", |b| {
            b.iter(|| pack_batch(&batch, heads, &mut packed).unwrap())
        });
        // Everything `logits_encoded` does on the host before the model (and pack_batch, which the
        // CUDA path adds), on one batch.
        group.bench_function("all_before_upload", |b| {
            b.iter(|| {
                let lengths: Vec<usize> = encoded.iter().map(EncodedPair::len).collect();
                let plan = plan_batches(&lengths, DEFAULT_TOKEN_BUDGET);
                plan[0]
                    .iter()
                    .try_for_each(|&i| check_pair(&encoded[i], &cfg))
                    .unwrap();
                let batch = RaggedBatch::from_pairs(plan[0].iter().map(|&i| &encoded[i]));
                pack_batch(&batch, heads, &mut packed).unwrap()
            })
        });
        group.finish();
    }

    // rerank's own choice between the two (`CrossEncoder::encode_documents`).
    let model = CrossEncoder::builder(&dir)
        .device(Device::Cpu)
        .build()
        .unwrap();
    assert_eq!(model.encode_documents(query, &docs).unwrap(), rerank);
    let cores = rayon::current_num_threads();
    let mut group = c.benchmark_group("host_path/rerank_tokenize");
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_millis(700));
    for n in [1, 2, 4, 8, 16, 50] {
        let docs = &docs[..n];
        let bytes: usize = docs.iter().map(|d| d.len()).sum();
        eprintln!("host_path: {n} documents are {bytes} bytes");
        group.throughput(Throughput::Bytes(bytes as u64));
        group.bench_with_input(BenchmarkId::new("rerank", n), docs, |b, docs| {
            b.iter(|| model.encode_documents(query, docs).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("1-thread", n), docs, |b, docs| {
            b.iter(|| {
                let q = tok.encode_piece(query).unwrap();
                rerank_encode_serial(&tok, &q, docs)
            })
        });
        group.bench_with_input(
            BenchmarkId::new(format!("{cores}-thread"), n),
            docs,
            |b, docs| {
                b.iter(|| {
                    let q = tok.encode_piece(query).unwrap();
                    rerank_encode_parallel(&tok, &q, docs)
                })
            },
        );
    }
    group.finish();

    // The same 50 documents as a rerank after a GPU batch meets them: the calling thread has been
    // waiting (spinning, as a CUDA synchronisation does) for ~0.6 ms and rayon's workers have gone to
    // sleep. Only the tokenisation is timed.
    let mut group = c.benchmark_group("host_path/rerank_tokenize_after_idle");
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_millis(1500));
    let bytes: usize = docs.iter().map(|d| d.len()).sum();
    group.throughput(Throughput::Bytes(bytes as u64));
    let after_idle = |b: &mut criterion::Bencher, f: &dyn Fn()| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let idle = std::time::Instant::now();
                while idle.elapsed() < Duration::from_micros(600) {
                    std::hint::spin_loop();
                }
                let t0 = std::time::Instant::now();
                f();
                total += t0.elapsed();
            }
            total
        })
    };
    let n = docs.len();
    group.bench_function(BenchmarkId::new("rerank", n), |b| {
        after_idle(b, &|| {
            model.encode_documents(query, &docs).unwrap();
        })
    });
    group.bench_function(BenchmarkId::new("1-thread", n), |b| {
        after_idle(b, &|| {
            let q = tok.encode_piece(query).unwrap();
            rerank_encode_serial(&tok, &q, &docs);
        })
    });
    group.bench_function(BenchmarkId::new(format!("{cores}-thread"), n), |b| {
        after_idle(b, &|| {
            let q = tok.encode_piece(query).unwrap();
            rerank_encode_parallel(&tok, &q, &docs);
        })
    });
    group.finish();
}

criterion_group!(benches, host_path);
criterion_main!(benches);
