//! Tokenisation throughput, Hugging Face `tokenizers` against xenc's WordPiece engine, on 2,000
//! pairs of the seeded `xenc bench` workload, on one thread and on all cores. Needs the test
//! checkpoint's tokenizer.json (`bash scripts/fixtures.sh`); says so and exits if absent.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use xenc::tokenize::{Engine, PairTokenizer};

mod common;

fn tokenize(c: &mut Criterion) {
    let Some(path) = common::test_model_path("f32/tokenizer.json") else {
        eprintln!("tokenize: skipped: no test checkpoint (run `bash scripts/fixtures.sh`)");
        return;
    };
    let hf = PairTokenizer::from_file_with(&path, 512, Engine::Hf).unwrap();
    let fast = PairTokenizer::from_file_with(&path, 512, Engine::Xenc).unwrap();
    let pairs = xenc::bench::generate_with(&fast, 2000, 42);
    assert_eq!(
        hf.encode_pairs(&pairs).unwrap(),
        fast.encode_pairs(&pairs).unwrap()
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let mut group = c.benchmark_group("tokenize_2000_pairs");
    group.sample_size(10);
    group.throughput(Throughput::Elements(pairs.len() as u64));
    for threads in [1, cores] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        for (name, tok) in [("hf-tokenizers", &hf), ("xenc-wordpiece", &fast)] {
            group.bench_with_input(
                BenchmarkId::new(name, format!("{threads}-thread")),
                &pairs,
                |b, pairs| b.iter(|| pool.install(|| tok.encode_pairs(pairs).unwrap())),
            );
        }
    }
    // rerank's path: one query piece joined with 50 document pieces, on the calling thread.
    let (query, _) = &pairs[0];
    let docs: Vec<&str> = pairs[1..51].iter().map(|(_, d)| d.as_str()).collect();
    group.throughput(Throughput::Elements(docs.len() as u64));
    for (name, tok) in [("hf-tokenizers", &hf), ("xenc-wordpiece", &fast)] {
        group.bench_function(BenchmarkId::new(name, "rerank-1x50-1-thread"), |b| {
            b.iter(|| {
                let q = tok.encode_piece(query).unwrap();
                docs.iter()
                    .map(|d| tok.join(&q, &tok.encode_piece(d).unwrap()).unwrap())
                    .collect::<Vec<_>>()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, tokenize);
criterion_main!(benches);
