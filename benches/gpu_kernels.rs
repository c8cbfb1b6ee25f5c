//! Each GPU kernel and GEMM of one MiniLM-L6 layer (hidden 384, 12 heads of 32, FFN 1536) on one full
//! batch: pairs of the `xenc bench` length mix (mostly 60-170 tokens, a tail to 512) packed to the default
//! 16,384-token budget. Timed with CUDA events around `iters` back-to-back launches (no host sync inside),
//! so a figure is device time per launch; throughput is in tokens. Without a usable GPU it says why and
//! exits (CI). Run on a GPU machine: `cargo bench --bench gpu_kernels` or the prebuilt binary with --bench.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use cudarc::driver::sys::CUevent_flags;
use half::f16;
use xenc::batch::RaggedBatch;
use xenc::bench::Rng;
use xenc::cpu::ops::Queries;
use xenc::cuda::kernels::*;
use xenc::EncodedPair;

const H: usize = 384;
const HEADS: usize = 12;
const D: usize = 32;
const INTER: usize = 1536;
const VOCAB: usize = 30522;
const BUDGET: usize = 16_384;

/// Pair lengths like the generated workload (~114 tokens on average) up to the token budget.
fn batch(rng: &mut Rng) -> RaggedBatch {
    let mut pairs = Vec::new();
    let mut tokens = 0;
    loop {
        let u = rng.unit();
        let len = if u < 0.9 {
            60 + (rng.unit() * 110.0) as usize
        } else {
            170 + (rng.unit() * 342.0) as usize
        };
        if tokens + len > BUDGET {
            break;
        }
        tokens += len;
        pairs.push(EncodedPair {
            input_ids: (0..len)
                .map(|_| (rng.next_u64() % VOCAB as u64) as u32)
                .collect(),
            token_type_ids: (0..len).map(|i| (i > 16) as u32).collect(),
        });
    }
    RaggedBatch::from_pairs(&pairs)
}

fn random(gpu: &Gpu, rng: &mut Rng, n: usize, scale: f32) -> CudaSlice<f16> {
    let v: Vec<f32> = (0..n)
        .map(|_| (2.0 * rng.unit() as f32 - 1.0) * scale)
        .collect();
    upload_f16(gpu, &v).unwrap()
}

/// Device time of `iters` launches of `f`, measured with events on the GPU's stream.
fn timed(gpu: &Gpu, iters: u64, mut f: impl FnMut()) -> Duration {
    let flags = Some(CUevent_flags::CU_EVENT_DEFAULT);
    let start = gpu.stream().record_event(flags).unwrap();
    for _ in 0..iters {
        f();
    }
    let end = gpu.stream().record_event(flags).unwrap();
    let ms = start.elapsed_ms(&end).unwrap();
    Duration::from_secs_f64(f64::from(ms) / 1e3)
}

fn gpu_kernels(c: &mut Criterion) {
    if let Err(why) = xenc::cuda::probe() {
        eprintln!("gpu_kernels: skipped: {why}");
        return;
    }
    let gpu = Gpu::new(0).unwrap();
    let mut rng = Rng::new(11);
    let b = batch(&mut rng);
    let (t, n) = (b.num_tokens(), b.num_pairs());
    eprintln!(
        "gpu_kernels: {} — {n} pairs, {t} tokens per batch",
        gpu.info().describe()
    );
    let db = DeviceBatch::new(&gpu, &b, HEADS).unwrap();
    let word = random(&gpu, &mut rng, VOCAB * H, 0.1);
    let pos = random(&gpu, &mut rng, 512 * H, 0.1);
    let tt = random(&gpu, &mut rng, 2 * H, 0.1);
    let gamma = random(&gpu, &mut rng, H, 1.0);
    let beta = random(&gpu, &mut rng, H, 0.1);
    let w_qkv = random(&gpu, &mut rng, 3 * H * H, 0.05);
    let b_qkv = random(&gpu, &mut rng, 3 * H, 0.1);
    let w_out = random(&gpu, &mut rng, H * H, 0.05);
    let b_h = random(&gpu, &mut rng, H, 0.1);
    let w_in = random(&gpu, &mut rng, INTER * H, 0.05);
    let b_in = random(&gpu, &mut rng, INTER, 0.1);
    let w_ffn_out = random(&gpu, &mut rng, H * INTER, 0.03);
    let mut x = random(&gpu, &mut rng, t * H, 1.0);
    let mut qkv = random(&gpu, &mut rng, t * 3 * H, 1.0);
    let mut ctx = random(&gpu, &mut rng, t * H, 1.0);
    let mut proj = random(&gpu, &mut rng, t * H, 1.0);
    let mut ffn = random(&gpu, &mut rng, t * INTER, 1.0);

    let mut g = c.benchmark_group(format!("gpu_kernels/{t}_tokens"));
    g.throughput(Throughput::Elements(t as u64));
    g.sample_size(20);
    macro_rules! bench {
        ($name:expr, $launch:expr) => {
            g.bench_function($name, |bch| {
                bch.iter_custom(|iters| timed(&gpu, iters, || $launch.unwrap()))
            });
        };
    }
    bench!(
        "embed_layernorm",
        embed_layernorm(&gpu, &db, &word, &pos, &tt, &gamma, &beta, &mut x, H, 1e-12)
    );
    bench!(
        "qkv_gemm_bias (cuBLASLt)",
        linear_bias(
            &gpu,
            &x.as_view(),
            &w_qkv.as_view(),
            &b_qkv.as_view(),
            &mut qkv.as_view_mut(),
            t,
            H,
            3 * H
        )
    );
    for (name, kernel) in [
        ("attention hd32 (mma)", AttentionKernel::Mma),
        ("attention hd32 (simt)", AttentionKernel::Simt),
    ] {
        bench!(
            name,
            attention_varlen_with(&gpu, kernel, &db, &qkv, &mut ctx, Queries::All, HEADS, D)
        );
    }
    bench!(
        "attention [CLS] only (default kernel)",
        attention_varlen(&gpu, &db, &qkv, &mut ctx, Queries::ClsOnly, HEADS, D)
    );
    bench!(
        "out_proj_gemm",
        linear(
            &gpu,
            &ctx.as_view(),
            &w_out.as_view(),
            &mut proj.as_view_mut(),
            t,
            H,
            H
        )
    );
    bench!(
        "add_bias_residual_layernorm",
        add_bias_residual_layernorm(&gpu, &proj, &b_h, &mut x, &gamma, &beta, t, H, 1e-12)
    );
    bench!(
        "ffn_in_gemm",
        linear(
            &gpu,
            &x.as_view(),
            &w_in.as_view(),
            &mut ffn.as_view_mut(),
            t,
            H,
            INTER
        )
    );
    bench!("bias_gelu", bias_gelu(&gpu, &mut ffn, &b_in, t, INTER));
    bench!(
        "ffn_out_gemm",
        linear(
            &gpu,
            &ffn.as_view(),
            &w_ffn_out.as_view(),
            &mut proj.as_view_mut(),
            t,
            INTER,
            H
        )
    );
    g.finish();
    drop((x, qkv, ctx, proj, ffn, n));
}

criterion_group!(benches, gpu_kernels);
criterion_main!(benches);
