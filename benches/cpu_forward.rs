//! CPU forward (model only: pre-tokenised pairs → logits) at a few batch sizes, on the seeded workload
//! of `xenc bench`. Needs the test checkpoint (`bash scripts/fixtures.sh`); says so and exits if absent.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use xenc::{CrossEncoder, Device};

mod common;

/// The f32 test checkpoint, if its weights are there.
fn model_dir() -> Option<std::path::PathBuf> {
    common::test_model_path("f32/model.safetensors")?;
    common::test_model_path("f32")
}

fn cpu_forward(c: &mut Criterion) {
    let Some(dir) = model_dir() else {
        eprintln!("cpu_forward: skipped: no test checkpoint (run `bash scripts/fixtures.sh`)");
        return;
    };
    let model = CrossEncoder::builder(dir)
        .device(Device::Cpu)
        .build()
        .unwrap();
    let pairs = xenc::bench::generate_with(model.tokenizer(), 64, 42);
    let encoded = model.tokenizer().encode_pairs(&pairs).unwrap();

    let mut group = c.benchmark_group("cpu_forward");
    group.sample_size(10);
    for n in [1usize, 8, 32, 64] {
        let batch = &encoded[..n];
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), batch, |b, batch| {
            b.iter(|| model.logits_encoded(batch).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, cpu_forward);
criterion_main!(benches);
