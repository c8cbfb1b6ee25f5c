//! Each GPU kernel and GEMM of one MiniLM-L6 layer (hidden 384, 12 heads of 32, FFN 1536) on one full
//! batch: pairs of the `xenc bench` length mix (mostly 60-170 tokens, a tail to 512) packed to the default
//! 16,384-token budget. Timed with CUDA events around `iters` back-to-back launches (no host sync inside),
//! so a figure is device time per launch; throughput is in tokens. Without a usable GPU it says why and
//! exits (CI). Run on a GPU machine: `cargo bench --bench gpu_kernels` or the prebuilt binary with --bench.
//!
//! Then a table of the four GEMM shapes at 16,343 and 5,417 rows (a full batch; a 1 x 50 rerank): every
//! algorithm cuBLASLt's heuristic offers (up to 8) and the `XENC_GEMM=cublas` path, each timed with
//! events after a warm-up, median of several runs: device µs and TFLOP/s per launch, the ratio to the
//! heuristic's first choice (what xenc runs by default), and host µs per call (the enqueue time).

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use cudarc::driver::sys::CUevent_flags;
use half::f16;
use xenc::batch::Queries;
use xenc::batch::RaggedBatch;
use xenc::bench::Rng;
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

/// Row counts of the GEMM table: the tokens of a full 16,384-token batch and of a 1 x 50 rerank.
const GEMM_ROWS: [usize; 2] = [16_343, 5_417];
/// The layer's GEMMs: name, k, n, bias epilogue.
const GEMMS: [(&str, usize, usize, bool); 4] = [
    ("qkv+bias", H, 3 * H, true),
    ("out_proj", H, H, false),
    ("ffn_in", H, INTER, false),
    ("ffn_out", INTER, H, false),
];
const WARMUP: u64 = 10;
const RUNS: usize = 7;
const PER_RUN: u64 = 20;

/// Median over [`RUNS`] runs of [`PER_RUN`] back-to-back launches (after [`WARMUP`] launches and a
/// sync): device µs per launch from events, host µs per call from the enqueue loop.
fn median_us(gpu: &Gpu, mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..WARMUP {
        f();
    }
    let flags = Some(CUevent_flags::CU_EVENT_DEFAULT);
    let (mut device, mut host) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        gpu.synchronize().unwrap();
        let start = gpu.stream().record_event(flags).unwrap();
        let t0 = Instant::now();
        for _ in 0..PER_RUN {
            f();
        }
        host.push(t0.elapsed().as_secs_f64() * 1e6 / PER_RUN as f64);
        let end = gpu.stream().record_event(flags).unwrap();
        device.push(f64::from(start.elapsed_ms(&end).unwrap()) * 1e3 / PER_RUN as f64);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(device), median(host))
}

/// The GEMM table: for each shape and row count, every heuristic algorithm and the cuBLAS path.
fn gemm_algorithms(gpu: &mut Gpu, rng: &mut Rng) {
    let max_rows = GEMM_ROWS.into_iter().max().unwrap();
    let x = random(gpu, rng, max_rows * INTER, 1.0);
    let w = random(gpu, rng, INTER * H, 0.05);
    let bias = random(gpu, rng, INTER, 0.1);
    let mut out = random(gpu, rng, max_rows * INTER, 1.0);
    let default = gpu.gemm_choice();
    println!(
        "\ngpu_kernels: GEMM algorithms on {} (device µs per launch: median of {RUNS} runs of \
         {PER_RUN} after {WARMUP} warm-up; vs #0: time / time of the heuristic's first choice; host µs: \
         enqueue time per call). xenc runs: {}",
        gpu.info().describe(),
        default.describe()
    );
    println!(
        "{:<22} {:>6} {:<8} {:>9} {:>8} {:>7} {:>8}  cuBLASLt algorithm",
        "shape", "rows", "path", "µs", "TFLOP/s", "vs #0", "host µs"
    );
    for rows in GEMM_ROWS {
        for (name, k, n, with_bias) in GEMMS {
            let shape = format!("{name} {k}x{n}");
            let (xv, wv, bv) = (x.slice(..rows * k), w.slice(..n * k), bias.slice(..n));
            let b = with_bias.then_some(&bv);
            let flops = 2.0 * (rows * k * n) as f64;
            let algos =
                match lt_algorithms(gpu, &xv, &wv, b, &mut out.slice_mut(..rows * n), rows, k, n) {
                    Ok(a) => a,
                    Err(e) => {
                        println!("{shape:<22} {rows:>6} lt       error: {e}");
                        Vec::new()
                    }
                };
            let mut first = None;
            let mut row = |path: &str, us: f64, host: f64, what: &str| {
                let vs = first.map_or(1.0, |f: f64| us / f);
                first.get_or_insert(us);
                println!(
                    "{shape:<22} {rows:>6} {path:<8} {us:>9.2} {:>8.1} {vs:>7.3} {host:>8.2}  {what}",
                    flops / us / 1e6
                );
            };
            for a in &algos {
                let mut o = out.slice_mut(..rows * n);
                let mut go = || linear_lt(gpu, a.index, &xv, &wv, b, &mut o, rows, k, n);
                if let Err(e) = go() {
                    println!("{shape:<22} {rows:>6} lt #{:<4} error: {e}", a.index);
                    continue;
                }
                let (us, host) = median_us(gpu, || go().unwrap());
                row(&format!("lt #{}", a.index), us, host, &a.describe());
            }
            gpu.set_gemm_path(GemmPath::Cublas);
            {
                let gpu = &*gpu;
                let mut o = out.slice_mut(..rows * n);
                let mut go = || match b {
                    Some(b) => linear_bias(gpu, &xv, &wv, b, &mut o, rows, k, n),
                    None => linear(gpu, &xv, &wv, &mut o, rows, k, n),
                };
                let what = if with_bias {
                    "cudarc CudaBlasLT::matmul (heuristic per call)"
                } else {
                    "cuBLAS cublasGemmEx"
                };
                match go() {
                    Ok(()) => {
                        let (us, host) = median_us(gpu, || go().unwrap());
                        row("cublas", us, host, what);
                    }
                    Err(e) => println!("{shape:<22} {rows:>6} cublas   error: {e}"),
                }
            }
            gpu.set_gemm_path(default.path);
        }
    }
    gpu.synchronize().unwrap();
}

fn gpu_kernels(c: &mut Criterion) {
    if let Err(why) = xenc::cuda::probe() {
        eprintln!("gpu_kernels: skipped: {why}");
        return;
    }
    let mut gpu = Gpu::new(0, &xenc::CudaOptions::default()).unwrap();
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
        (
            "attention hd32 (mma v3, A/B candidate)",
            AttentionKernel::MmaV3,
        ),
        (
            "attention hd32 (mma v3, 4-stage K/V ring, A/B candidate)",
            AttentionKernel::MmaS4,
        ),
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
    // XENC_RESIDUAL=gemm: the out-proj GEMM adds bias and residual into x, LayerNorm reads only x. Each
    // bench call adds to x again; values stay finite because the next bench's LayerNorm rescales them.
    bench!(
        "out_proj_gemm adding bias and residual (linear_bias_add, XENC_RESIDUAL=gemm)",
        linear_bias_add(
            &gpu,
            &ctx.as_view(),
            &w_out.as_view(),
            &b_h.as_view(),
            &mut x.as_view_mut(),
            t,
            H,
            H
        )
    );
    bench!(
        "layernorm (XENC_RESIDUAL=gemm)",
        layernorm(&gpu, &mut x, &gamma, &beta, t, H, 1e-12)
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
        "ffn_in_gemm + bias_gelu fused (gemm_bias_gelu, XENC_FFN_IN=fused)",
        linear_bias_gelu(&gpu, GbgWarps::W32, &x, &w_in, &b_in, &mut ffn, t, H, INTER)
    );
    bench!(
        "ffn_in_gemm + bias_gelu fused, 64 x 64 warps (XENC_FFN_IN=fused-w64)",
        linear_bias_gelu(&gpu, GbgWarps::W64, &x, &w_in, &b_in, &mut ffn, t, H, INTER)
    );
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
    let mut logits = gpu.stream().alloc_zeros::<f32>(n).unwrap();
    for (name, pooler) in [
        ("pooler_classifier (v3)", Pooler::V3),
        ("pooler_classifier (v4, A/B candidate)", Pooler::V4),
    ] {
        bench!(
            name,
            pooler_classifier_with(
                &gpu,
                pooler,
                &x.slice(..n * H),
                &w_out,
                &b_h,
                &b_h,
                &b_h.slice(..1),
                &mut logits,
                n,
                H,
                1
            )
        );
    }
    g.finish();
    drop((x, qkv, ctx, proj, ffn, logits, n));
    gemm_algorithms(&mut gpu, &mut rng);
}

criterion_group!(benches, gpu_kernels);
criterion_main!(benches);
