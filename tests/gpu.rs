//! The CUDA backend on a real GPU: every kernel (and both GEMMs) against its CPU twin in `xenc::cpu::ops`
//! on random ragged batches, the whole fp16 model against the float64 goldens, a batch against each of
//! its pairs alone, and run-to-run determinism.
//!
//! Every GPU test is `#[ignore]`d, so a plain `cargo test` reports them as not run ("N ignored"), never
//! as passed; scripts/gpu-check.sh runs them with `--include-ignored` (a test below holds every test of
//! this file to that). Run without a usable GPU, a test writes "<test>: skipped: <reason>" to stderr
//! (past the harness's output capture) and returns; XENC_REQUIRE_GPU=1 (set by scripts/gpu-check.sh)
//! turns a skip into a failure. XENC_GOLDEN_DIR overrides tests/golden (see tests/common).
//!
//! Kernel error budget (flash-attention's rule): the reference is the fp32 twin on the f32 inputs; the
//! baseline is the same twin on fp16-rounded inputs with its output rounded to fp16, i.e. the error
//! that fp16 storage alone costs. A kernel may be off the reference by at most 2x the baseline's max
//! error. gather_rows copies, so it must be exact.

mod common;

use std::io::Write;

use half::f16;
use xenc::batch::{plan_batches, Queries, RaggedBatch};
use xenc::bench::Rng;
use xenc::cpu::ops;
use xenc::cuda::kernels::*;
use xenc::cuda::CudaBackend;
use xenc::weights::BertWeights;
use xenc::{CudaOptions, EncodedPair, ModelConfig};

use common::goldens;

/// Pair lengths of the random ragged batches: around the warp (32), the query tile (64, 128) and the
/// maximum (512).
const LENGTHS: [usize; 10] = [1, 2, 31, 32, 33, 127, 128, 129, 511, 512];
const EPS: f32 = 1e-12;

/// Writes to the real stderr: the test harness captures `println!`/`eprintln!` but not this.
fn note(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// Why this machine cannot run the GPU tests, or None. Fails instead under XENC_REQUIRE_GPU.
fn skip_reason(test: &str) -> Option<String> {
    let why = xenc::cuda::probe().err()?;
    let required = std::env::var_os("XENC_REQUIRE_GPU").is_some_and(|v| v != "0");
    assert!(!required, "{test}: XENC_REQUIRE_GPU is set, but: {why}");
    note(&format!("{test}: skipped: {why}"));
    Some(why)
}

/// The kernel choices gpu-check asks for through the conventional variables (`XENC_ATTENTION`, ...);
/// the default set when none is set.
fn options() -> CudaOptions {
    CudaOptions::from_lookup(|k| std::env::var(k).ok()).expect("XENC_* kernel options")
}

fn gpu(test: &str) -> Option<Gpu> {
    if skip_reason(test).is_some() {
        return None;
    }
    Some(
        Gpu::new(0, &options())
            .unwrap_or_else(|e| panic!("{test}: probe found a GPU but opening it failed: {e}")),
    )
}

/// Deterministic test inputs from the crate's seeded generator.
trait TestInputs {
    /// Uniform in [-scale, scale).
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32>;
    fn below(&mut self, n: usize) -> u32;
}

impl TestInputs for Rng {
    fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| (2.0 * self.unit() as f32 - 1.0) * scale)
            .collect()
    }
    fn below(&mut self, n: usize) -> u32 {
        (self.next_u64() % n as u64) as u32
    }
}

/// A batch with the pairs of [`LENGTHS`] in a shuffled order, random ids below `vocab`.
fn ragged_batch(rng: &mut Rng, vocab: usize) -> RaggedBatch {
    let mut lengths = LENGTHS.to_vec();
    for i in (1..lengths.len()).rev() {
        lengths.swap(i, rng.below(i + 1) as usize);
    }
    let pairs: Vec<EncodedPair> = lengths
        .iter()
        .map(|&l| EncodedPair {
            input_ids: (0..l).map(|_| rng.below(vocab)).collect(),
            token_type_ids: (0..l).map(|i| (i > l / 3) as u32).collect(),
        })
        .collect();
    RaggedBatch::from_pairs(&pairs)
}

/// The one test of this file that runs everywhere: every other `#[test]` here is `#[ignore]`d with a
/// reason, so that where there is no GPU `cargo test` shows them as ignored rather than passed.
#[test]
fn gpu_tests_are_ignored_by_default() {
    let lines: Vec<&str> = include_str!("gpu.rs").lines().collect();
    let mut ignored = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.trim() != "#[test]" {
            continue;
        }
        let name = lines[i + 1..]
            .iter()
            .find_map(|l| l.trim().strip_prefix("fn "))
            .and_then(|l| l.split('(').next())
            .unwrap();
        if name == "gpu_tests_are_ignored_by_default" {
            continue;
        }
        assert!(
            lines[i + 1].trim().starts_with("#[ignore = \""),
            "{name}: a GPU test must be #[ignore = \"...\"] (scripts/gpu-check.sh runs it)"
        );
        ignored += 1;
    }
    assert!(ignored >= 17, "{ignored} GPU tests found");
}

fn r16(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| f16::from_f32(x).to_f32()).collect()
}

fn max_err(a: &[f32], b: &[f32]) -> (f64, usize) {
    assert_eq!(a.len(), b.len());
    let mut worst = (0f64, 0);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let e = if x.is_finite() {
            (*x as f64 - *y as f64).abs()
        } else {
            f64::INFINITY
        };
        if e > worst.0 {
            worst = (e, i);
        }
    }
    worst
}

/// Asserts the kernel's error is within 2x the fp16-storage baseline and prints the share used.
fn check(name: &str, got: &[f32], reference: &[f32], baseline: &[f32]) {
    let (err, at) = max_err(got, reference);
    let (base, _) = max_err(baseline, reference);
    let budget = 2.0 * base;
    note(&format!(
        "{name}: max |gpu - fp32 ref| {err:.3e} at {at} (fp16 baseline {base:.3e}, budget {budget:.3e}, {:.0}% used)",
        100.0 * err / budget.max(f64::MIN_POSITIVE)
    ));
    assert!(
        err <= budget,
        "{name}: error {err:.3e} at element {at} exceeds the budget {budget:.3e}"
    );
}

fn up(gpu: &Gpu, x: &[f32]) -> CudaSlice<f16> {
    upload_f16(gpu, x).unwrap()
}

fn down(gpu: &Gpu, x: &CudaSlice<f16>) -> Vec<f32> {
    download_f16(gpu, &x.as_view()).unwrap()
}

#[test]
#[ignore = "needs a CUDA GPU: scripts/gpu-check.sh runs them"]
fn embed_layernorm_matches_cpu() {
    let Some(gpu) = gpu("embed_layernorm_matches_cpu") else {
        return;
    };
    let (h, vocab, positions, types) = (384, 1000, 512, 2);
    let mut rng = Rng::new(1);
    let b = ragged_batch(&mut rng, vocab);
    let t = b.num_tokens();
    let inputs = [
        rng.vec(vocab * h, 0.5),
        rng.vec(positions * h, 0.2),
        rng.vec(types * h, 0.2),
        rng.vec(h, 0.2).iter().map(|g| 1.0 + g).collect(),
        rng.vec(h, 0.1),
    ];
    let twin = |x: &[Vec<f32>]| {
        let mut out = vec![0f32; t * h];
        let (ids, tt, pos) = (&b.input_ids, &b.token_type_ids, &b.position_ids);
        ops::embed_layernorm(
            ids, tt, pos, &x[0], &x[1], &x[2], &x[3], &x[4], &mut out, h, EPS,
        );
        out
    };
    let rounded: Vec<Vec<f32>> = inputs.iter().map(|x| r16(x)).collect();
    let (reference, baseline) = (twin(&inputs), r16(&twin(&rounded)));
    let db = DeviceBatch::new(&gpu, &b, 1).unwrap();
    let d: Vec<CudaSlice<f16>> = inputs.iter().map(|x| up(&gpu, x)).collect();
    let mut out = zeros_f16(&gpu, t * h).unwrap();
    embed_layernorm(
        &gpu, &db, &d[0], &d[1], &d[2], &d[3], &d[4], &mut out, h, EPS,
    )
    .unwrap();
    check("embed_layernorm", &down(&gpu, &out), &reference, &baseline);
}

#[test]
#[ignore = "needs a CUDA GPU: scripts/gpu-check.sh runs them"]
fn attention_varlen_matches_cpu() {
    let Some(gpu) = gpu("attention_varlen_matches_cpu") else {
        return;
    };
    let mut rng = Rng::new(2);
    let b = ragged_batch(&mut rng, 100);
    let (t, n) = (b.num_tokens(), b.num_pairs());
    for (heads, d) in [(12, 32), (6, 64)] {
        let h = heads * d;
        let qkv = rng.vec(t * 3 * h, 1.5);
        let db = DeviceBatch::new(&gpu, &b, heads).unwrap();
        let dqkv = up(&gpu, &qkv);
        for (mode, rows) in [(Queries::All, t), (Queries::ClsOnly, n)] {
            let twin = |x: &[f32]| {
                let mut ctx = vec![0f32; rows * h];
                ops::attention_varlen(x, &mut ctx, &b.cu_seqlens, mode, heads, d);
                ctx
            };
            let (reference, baseline) = (twin(&qkv), r16(&twin(&r16(&qkv))));
            for kernel in [
                AttentionKernel::Simt,
                AttentionKernel::Mma,
                AttentionKernel::MmaV3,
                AttentionKernel::MmaS4,
            ] {
                let mut ctx = zeros_f16(&gpu, rows * h).unwrap();
                attention_varlen_with(&gpu, kernel, &db, &dqkv, &mut ctx, mode, heads, d).unwrap();
                let name =
                    format!("attention_varlen {kernel:?} hd{d} {mode:?} ({heads} heads, T={t})");
                check(&name, &down(&gpu, &ctx), &reference, &baseline);
            }
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU: scripts/gpu-check.sh runs them"]
fn bias_gelu_matches_cpu() {
    let Some(gpu) = gpu("bias_gelu_matches_cpu") else {
        return;
    };
    let mut rng = Rng::new(3);
    let (rows, n) = (LENGTHS.iter().sum::<usize>(), 1536);
    let (x, bias) = (rng.vec(rows * n, 4.0), rng.vec(n, 1.0));
    let twin = |x: &[f32], bias: &[f32]| {
        let mut y = x.to_vec();
        ops::bias_gelu(&mut y, bias, n);
        y
    };
    let (reference, baseline) = (twin(&x, &bias), r16(&twin(&r16(&x), &r16(&bias))));
    let mut dx = up(&gpu, &x);
    bias_gelu(&gpu, &mut dx, &up(&gpu, &bias), rows, n).unwrap();
    check("bias_gelu", &down(&gpu, &dx), &reference, &baseline);
}

#[test]
#[ignore = "needs a CUDA GPU: scripts/gpu-check.sh runs them"]
fn add_bias_residual_layernorm_matches_cpu() {
    let Some(gpu) = gpu("add_bias_residual_layernorm_matches_cpu") else {
        return;
    };
    let mut rng = Rng::new(4);
    let (rows, h) = (LENGTHS.iter().sum::<usize>(), 384);
    let gamma: Vec<f32> = rng.vec(h, 0.2).iter().map(|g| 1.0 + g).collect();
    let inputs = [
        rng.vec(rows * h, 2.0),
        rng.vec(h, 0.5),
        rng.vec(rows * h, 2.0),
        gamma,
        rng.vec(h, 0.1),
    ];
    let twin = |v: &[Vec<f32>]| {
        let mut residual = v[2].clone();
        ops::add_bias_residual_layernorm(&v[0], &v[1], &mut residual, &v[3], &v[4], h, EPS);
        residual
    };
    let rounded: Vec<Vec<f32>> = inputs.iter().map(|x| r16(x)).collect();
    let (reference, baseline) = (twin(&inputs), r16(&twin(&rounded)));
    let d: Vec<CudaSlice<f16>> = inputs.iter().map(|x| up(&gpu, x)).collect();
    let mut residual = up(&gpu, &inputs[2]);
    add_bias_residual_layernorm(
        &gpu,
        &d[0],
        &d[1],
        &mut residual,
        &d[3],
        &d[4],
        rows,
        h,
        EPS,
    )
    .unwrap();
    check(
        "add_bias_residual_layernorm",
        &down(&gpu, &residual),
        &reference,
        &baseline,
    );

    // layernorm (XENC_RESIDUAL=gemm): LayerNorm of one input in place, the CPU twin with zero bias and
    // zero residual.
    let alone = |v: &[Vec<f32>]| {
        let mut x = vec![0f32; rows * h];
        ops::add_bias_residual_layernorm(&v[0], &vec![0.0; h], &mut x, &v[3], &v[4], h, EPS);
        x
    };
    let (reference, baseline) = (alone(&inputs), r16(&alone(&rounded)));
    let mut x = up(&gpu, &inputs[0]);
    layernorm(&gpu, &mut x, &d[3], &d[4], rows, h, EPS).unwrap();
    check("layernorm", &down(&gpu, &x), &reference, &baseline);
}

#[test]
#[ignore = "needs a CUDA GPU: scripts/gpu-check.sh runs them"]
fn gather_rows_is_exact() {
    let Some(gpu) = gpu("gather_rows_is_exact") else {
        return;
    };
    let mut rng = Rng::new(5);
    let b = ragged_batch(&mut rng, 100);
    let (t, n, h) = (b.num_tokens(), b.num_pairs(), 384);
    let src = r16(&rng.vec(t * h, 3.0));
    let mut want = vec![0f32; n * h];
    ops::gather_rows(&src, b.cls_rows(), &mut want, h);
    let db = DeviceBatch::new(&gpu, &b, 1).unwrap();
    let mut dst = zeros_f16(&gpu, n * h).unwrap();
    gather_rows(&gpu, &db, &up(&gpu, &src), &mut dst, h).unwrap();
    assert_eq!(
        down(&gpu, &dst),
        want,
        "gather_rows must copy the [CLS] rows exactly"
    );
    note(&format!(
        "gather_rows: {n} rows of {h} copied exactly (budget 0)"
    ));
}

#[test]
#[ignore = "needs a CUDA GPU: scripts/gpu-check.sh runs them"]
fn pooler_classifier_matches_cpu() {
    let Some(gpu) = gpu("pooler_classifier_matches_cpu") else {
        return;
    };
    let mut rng = Rng::new(6);
    let (n, h) = (200, 384);
    for l in [1, 3] {
        let inputs = [
            rng.vec(n * h, 2.0),
            rng.vec(h * h, 0.1),
            rng.vec(h, 0.1),
            rng.vec(l * h, 0.2),
            rng.vec(l, 0.1),
        ];
        let twin = |v: &[Vec<f32>]| {
            let mut logits = vec![0f32; n * l];
            ops::pooler_classifier(&v[0], &v[1], &v[2], &v[3], &v[4], &mut logits, h, l);
            logits
        };
        let rounded: Vec<Vec<f32>> = inputs.iter().map(|x| r16(x)).collect();
        // fp32 output: the baseline is input rounding alone.
        let (reference, baseline) = (twin(&inputs), twin(&rounded));
        let d: Vec<CudaSlice<f16>> = inputs.iter().map(|x| up(&gpu, x)).collect();
        for pooler in [Pooler::V3, Pooler::V4] {
            let mut logits = zeros_f32(&gpu, n * l).unwrap();
            pooler_classifier_with(
                &gpu,
                pooler,
                &d[0],
                &d[1],
                &d[2],
                &d[3],
                &d[4],
                &mut logits,
                n,
                h,
                l,
            )
            .unwrap();
            let got = download_f32(&gpu, &logits.as_view()).unwrap();
            check(
                &format!("pooler_classifier {pooler:?} L={l}"),
                &got,
                &reference,
                &baseline,
            );
        }
    }
}

/// Both GEMMs against the CPU twin, on both paths (`XENC_GEMM`'s default cuBLASLt plans and the cuBLAS
/// reference path), for the model's four shapes at row counts from a few [CLS] rows (the last layer)
/// to a 1 x 50 rerank (5,417 tokens): without bias, and with two different biases in a row (the second
/// reuses the first one's cached plan with a new bias pointer). At the ragged batch's row count, every
/// algorithm the cuBLASLt heuristic offers is checked too.
/// The fused FFN-in kernel (`XENC_FFN_IN=fused`) against its CPU twins, `ops::linear` then
/// `ops::bias_gelu`: reference on the f32 inputs, baseline on fp16-rounded inputs with the GEMM's output
/// rounded to fp16 before the GELU (what the unfused GPU path does) and the result rounded again.
#[test]
#[ignore = "needs a CUDA GPU: scripts/gpu-check.sh runs them"]
fn gemm_bias_gelu_matches_cpu() {
    let Some(gpu) = gpu("gemm_bias_gelu_matches_cpu") else {
        return;
    };
    let mut rng = Rng::new(17);
    let ragged = LENGTHS.iter().sum::<usize>();
    for rows in [1, 127, 129, ragged, 5417] {
        for (k, n) in [(384, 1536), (96, 256)] {
            let (x, w, b) = (rng.vec(rows * k, 2.0), rng.vec(n * k, 0.1), rng.vec(n, 0.5));
            let twin = |x: &[f32], w: &[f32], b: &[f32], round: bool| {
                let mut out = vec![0f32; rows * n];
                ops::linear(x, w, None, &mut out, rows, k, n);
                if round {
                    out = r16(&out);
                }
                ops::bias_gelu(&mut out, b, n);
                out
            };
            let reference = twin(&x, &w, &b, false);
            let baseline = r16(&twin(&r16(&x), &r16(&w), &r16(&b), true));
            let (dx, dw, db) = (up(&gpu, &x), up(&gpu, &w), up(&gpu, &b));
            for warps in [GbgWarps::W32, GbgWarps::W64] {
                let mut y = zeros_f16(&gpu, rows * n).unwrap();
                linear_bias_gelu(&gpu, warps, &dx, &dw, &db, &mut y, rows, k, n).unwrap();
                let name = format!("gemm_bias_gelu {warps:?} {rows}x{k}x{n}");
                check(&name, &down(&gpu, &y), &reference, &baseline);
            }
        }
    }
}

#[test]
#[ignore = "needs a CUDA GPU: scripts/gpu-check.sh runs them"]
fn gemms_match_cpu() {
    let Some(mut gpu) = gpu("gemms_match_cpu") else {
        return;
    };
    let mut rng = Rng::new(7);
    let ragged = LENGTHS.iter().sum::<usize>();
    for rows in [1, 10, 50, ragged, 5417] {
        for (k, n) in [(384, 1152), (384, 384), (384, 1536), (1536, 384)] {
            let (x, w) = (rng.vec(rows * k, 2.0), rng.vec(n * k, 0.1));
            let biases = [rng.vec(n, 0.5), rng.vec(n, 0.5)];
            let twin = |x: &[f32], w: &[f32], b: Option<&[f32]>| {
                let mut out = vec![0f32; rows * n];
                ops::linear(x, w, b, &mut out, rows, k, n);
                out
            };
            // (fp32 reference, fp16 baseline) without bias and with each bias.
            let refs = |b: Option<&Vec<f32>>| {
                let base = twin(&r16(&x), &r16(&w), b.map(|b| r16(b)).as_deref());
                (twin(&x, &w, b.map(|b| b.as_slice())), r16(&base))
            };
            let plain = refs(None);
            let biased = [refs(Some(&biases[0])), refs(Some(&biases[1]))];
            let (dx, dw) = (up(&gpu, &x), up(&gpu, &w));
            let db = [up(&gpu, &biases[0]), up(&gpu, &biases[1])];
            let mut out = zeros_f16(&gpu, rows * n).unwrap();
            for path in [GemmPath::Lt, GemmPath::Cublas] {
                gpu.set_gemm_path(path);
                let shape = format!("{rows}x{k}x{n} ({path:?})");
                linear(
                    &gpu,
                    &dx.as_view(),
                    &dw.as_view(),
                    &mut out.as_view_mut(),
                    rows,
                    k,
                    n,
                )
                .unwrap();
                check(
                    &format!("linear {shape}"),
                    &down(&gpu, &out),
                    &plain.0,
                    &plain.1,
                );
                for (i, (db, (reference, base))) in db.iter().zip(&biased).enumerate() {
                    linear_bias(
                        &gpu,
                        &dx.as_view(),
                        &dw.as_view(),
                        &db.as_view(),
                        &mut out.as_view_mut(),
                        rows,
                        k,
                        n,
                    )
                    .unwrap();
                    let name = format!("linear_bias {shape}, bias {i}");
                    check(&name, &down(&gpu, &out), reference, base);
                }
                // linear_bias_add (XENC_RESIDUAL=gemm): out += x · wᵀ + bias, out holding the previous
                // result; the CPU twins add the same fp16 values (the baseline rounds once at the end).
                let before = down(&gpu, &out);
                linear_bias_add(
                    &gpu,
                    &dx.as_view(),
                    &dw.as_view(),
                    &db[0].as_view(),
                    &mut out.as_view_mut(),
                    rows,
                    k,
                    n,
                )
                .unwrap();
                let plus =
                    |v: &[f32]| -> Vec<f32> { v.iter().zip(&before).map(|(a, b)| a + b).collect() };
                let twin_base = twin(&r16(&x), &r16(&w), Some(&r16(&biases[0])));
                let (reference, base) = (plus(&biased[0].0), r16(&plus(&twin_base)));
                let name = format!("linear_bias_add {shape}");
                check(&name, &down(&gpu, &out), &reference, &base);
            }
            gpu.set_gemm_path(GemmPath::Lt);
            if rows != ragged {
                continue;
            }
            for (bias, (reference, base)) in [(None, &plain), (Some(&db[0]), &biased[0])] {
                let b = bias.map(|b| b.as_view());
                let (xv, wv) = (dx.as_view(), dw.as_view());
                let algos = lt_algorithms(
                    &gpu,
                    &xv,
                    &wv,
                    b.as_ref(),
                    &mut out.as_view_mut(),
                    rows,
                    k,
                    n,
                )
                .unwrap();
                assert!(
                    (1..=HEURISTIC_COUNT).contains(&algos.len()),
                    "{} algorithms",
                    algos.len()
                );
                for a in &algos {
                    linear_lt(
                        &gpu,
                        a.index,
                        &xv,
                        &wv,
                        b.as_ref(),
                        &mut out.as_view_mut(),
                        rows,
                        k,
                        n,
                    )
                    .unwrap();
                    let name = format!(
                        "linear_lt {rows}x{k}x{n} bias {} algorithm {} ({})",
                        bias.is_some(),
                        a.index,
                        a.describe()
                    );
                    check(&name, &down(&gpu, &out), reference, base);
                }
                // An algorithm the heuristic did not offer is an error naming the GEMM.
                let e = linear_lt(
                    &gpu,
                    algos.len(),
                    &xv,
                    &wv,
                    b.as_ref(),
                    &mut out.as_view_mut(),
                    rows,
                    k,
                    n,
                )
                .unwrap_err()
                .to_string();
                assert!(e.contains(&format!("{rows}x{k}x{n}")), "{e}");
            }
        }
    }
    gpu.synchronize().unwrap();
}

/// More distinct row counts than the plan cache holds: it is emptied (its cuBLASLt objects destroyed)
/// along the way, and GEMMs before and after stay right.
#[test]
#[ignore = "needs a CUDA GPU: scripts/gpu-check.sh runs them"]
fn gemm_plans_survive_the_cache_emptying() {
    let Some(mut gpu) = gpu("gemm_plans_survive_the_cache_emptying") else {
        return;
    };
    gpu.set_gemm_path(GemmPath::Lt);
    let mut rng = Rng::new(9);
    let (k, n) = (64, 32);
    let max_rows = PLAN_CACHE_CAP + 40;
    let (x, w) = (rng.vec(max_rows * k, 2.0), rng.vec(n * k, 0.1));
    let (dx, dw) = (up(&gpu, &x), up(&gpu, &w));
    let mut out = zeros_f16(&gpu, max_rows * n).unwrap();
    for rows in 1..=max_rows {
        let (xv, mut ov) = (dx.slice(..rows * k), out.slice_mut(..rows * n));
        linear(&gpu, &xv, &dw.as_view(), &mut ov, rows, k, n).unwrap();
        if rows % 97 == 0 || rows == max_rows {
            let xs = &x[..rows * k];
            let twin = |x: &[f32], w: &[f32]| {
                let mut o = vec![0f32; rows * n];
                ops::linear(x, w, None, &mut o, rows, k, n);
                o
            };
            let got = download_f16(&gpu, &out.slice(..rows * n)).unwrap();
            let base = r16(&twin(&r16(xs), &r16(&w)));
            check(
                &format!("linear {rows}x{k}x{n}"),
                &got,
                &twin(xs, &w),
                &base,
            );
        }
    }
    gpu.synchronize().unwrap();
}

#[test]
#[ignore = "needs a CUDA GPU: scripts/gpu-check.sh runs them"]
fn launchers_reject_bad_shapes_before_launching() {
    let Some(gpu) = gpu("launchers_reject_bad_shapes_before_launching") else {
        return;
    };
    let mut rng = Rng::new(8);
    let b = ragged_batch(&mut rng, 100);
    let db = DeviceBatch::new(&gpu, &b, 12).unwrap();
    let small = zeros_f16(&gpu, 10).unwrap();
    let mut out = zeros_f16(&gpu, 10).unwrap();
    let e = attention_varlen(&gpu, &db, &small, &mut out, Queries::All, 12, 32)
        .unwrap_err()
        .to_string();
    // The kernel the options pick is named: attention_mma_hd32_f16, attention_varlen_hd32_f16, ...
    assert!(
        e.contains("attention_") && e.contains("_hd32_f16") && e.contains("qkv"),
        "{e}"
    );
    let e = attention_varlen(&gpu, &db, &small, &mut out, Queries::All, 6, 64)
        .unwrap_err()
        .to_string();
    assert!(e.contains("heads"), "{e}");
    let e = bias_gelu(&gpu, &mut out, &small, 1, 3)
        .unwrap_err()
        .to_string();
    assert!(e.contains("bias_gelu_f16"), "{e}");
    // A table shorter than the largest id is refused: ids index it on the device.
    let word = zeros_f16(&gpu, 50 * 384).unwrap();
    let h = zeros_f16(&gpu, 384).unwrap();
    let mut big = zeros_f16(&gpu, b.num_tokens() * 384).unwrap();
    let e = embed_layernorm(&gpu, &db, &word, &word, &word, &h, &h, &mut big, 384, EPS)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("embed_layernorm_f16") && e.contains("word_emb"),
        "{e}"
    );
    gpu.synchronize().unwrap();
}

// ---- the whole model -------------------------------------------------------------------------------

fn load(dtype: &str) -> (ModelConfig, BertWeights) {
    let dir = common::test_model(dtype);
    let cfg = ModelConfig::from_file(&dir.join("config.json")).unwrap();
    let w = BertWeights::from_file(&dir.join("model.safetensors"), &cfg).unwrap();
    (cfg, w)
}

/// Logits of `pairs` in input order, planned into batches like `CrossEncoder` does.
fn run(backend: &CudaBackend, cfg: &ModelConfig, pairs: &[EncodedPair], budget: usize) -> Vec<f32> {
    let lengths: Vec<usize> = pairs.iter().map(EncodedPair::len).collect();
    let mut out = vec![f32::NAN; pairs.len()];
    for idx in plan_batches(&lengths, budget) {
        let b = RaggedBatch::from_pairs(idx.iter().map(|&i| &pairs[i]));
        b.validate(cfg).unwrap();
        for (&i, l) in idx.iter().zip(backend.forward(&b).unwrap()) {
            out[i] = l;
        }
    }
    out
}

fn golden_pairs(gold: &[common::Golden]) -> Vec<EncodedPair> {
    let pair = |g: &common::Golden| EncodedPair {
        input_ids: g.input_ids.clone(),
        token_type_ids: g.token_type_ids.clone(),
    };
    gold.iter().map(pair).collect()
}

const BUDGET: usize = xenc::DEFAULT_CUDA_TOKEN_BUDGET;

/// Target 3.6e-3 (fp16 PyTorch on CPU is off by 3.8e-3, tests/golden/meta.json); fails above 7.2e-3.
#[test]
#[ignore = "needs a CUDA GPU: scripts/gpu-check.sh runs them"]
fn model_matches_float64_goldens() {
    if skip_reason("model_matches_float64_goldens").is_some() {
        return;
    }
    let (cfg, w) = load("f16");
    let backend = CudaBackend::new(&cfg, &w, 0, BUDGET, &options()).unwrap();
    let gold = goldens();
    let logits = run(&backend, &cfg, &golden_pairs(&gold), BUDGET);
    let worst = |logits: &[f32]| {
        let errs = logits
            .iter()
            .zip(&gold)
            .map(|(&l, g)| (l as f64 - g.logit).abs());
        errs.enumerate().fold(
            (0f64, 0),
            |w, (i, e)| if e > w.0 || e.is_nan() { (e, i) } else { w },
        )
    };
    let (err, i) = worst(&logits);
    let (target, limit) = (3.6e-3, 7.2e-3);
    note(&format!(
        "{} on {}: worst |logit - float64 golden| = {err:.3e} ({:.0}% of the {target:.1e} target, limit {limit:.1e}) at {} (gpu {}, golden {:.6})",
        "fp16 model",
        backend.describe(),
        100.0 * err / target,
        common::label(&gold[i], i),
        logits[i],
        gold[i].logit
    ));
    if err > target {
        note(&format!(
            "model_matches_float64_goldens: WARNING: {err:.3e} is over the {target:.1e} target"
        ));
    }
    assert!(
        err <= limit,
        "{err:.3e} > {limit:.1e} at {}",
        common::label(&gold[i], i)
    );

    // Through the public API too.
    let model = xenc::CrossEncoder::builder(common::test_model("f16"))
        .cuda_options(options())
        .device(xenc::Device::Cuda(0))
        .build();
    match model {
        Ok(model) => {
            let texts: Vec<(&str, &str)> = gold
                .iter()
                .map(|g| (g.query.as_str(), g.document.as_str()))
                .collect();
            let (err, i) = worst(&model.logits(&texts).unwrap());
            note(&format!(
                "CrossEncoder on {}: worst {err:.3e} at {}",
                model.device_name(),
                common::label(&gold[i], i)
            ));
            assert!(
                err <= limit,
                "CrossEncoder: {err:.3e} > {limit:.1e} at {}",
                common::label(&gold[i], i)
            );
        }
        Err(e) => panic!("CrossEncoder with Device::Cuda(0): {e}"),
    }
}

#[test]
#[ignore = "needs a CUDA GPU: scripts/gpu-check.sh runs them"]
fn a_batch_scores_like_each_pair_alone() {
    if skip_reason("a_batch_scores_like_each_pair_alone").is_some() {
        return;
    }
    let (cfg, w) = load("f16");
    let backend = CudaBackend::new(&cfg, &w, 0, BUDGET, &options()).unwrap();
    let gold = goldens();
    // Every third pair: short, long, truncated and edge cases, batched together.
    let pairs: Vec<EncodedPair> = golden_pairs(&gold).into_iter().step_by(3).collect();
    let batched = run(&backend, &cfg, &pairs, BUDGET);
    let mut worst = (0f32, 0);
    for (k, p) in pairs.iter().enumerate() {
        let alone = backend.forward(&RaggedBatch::from_pairs([p])).unwrap()[0];
        let d = (alone - batched[k]).abs();
        if d > worst.0 || d.is_nan() {
            worst = (d, k);
        }
    }
    note(&format!(
        "batch vs alone: worst difference {:.2e} over {} pairs (limit 1e-3)",
        worst.0,
        pairs.len()
    ));
    assert!(worst.0 <= 1e-3, "pair {}: {:.3e}", 3 * worst.1, worst.0);
}

#[test]
#[ignore = "needs a CUDA GPU: scripts/gpu-check.sh runs them"]
fn same_input_twice_is_bit_identical() {
    if skip_reason("same_input_twice_is_bit_identical").is_some() {
        return;
    }
    let (cfg, w) = load("f16");
    let backend = CudaBackend::new(&cfg, &w, 0, BUDGET, &options()).unwrap();
    let pairs = golden_pairs(&goldens());
    let first = run(&backend, &cfg, &pairs, BUDGET);
    let second = run(&backend, &cfg, &pairs, BUDGET);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&first),
        bits(&second),
        "two runs of the same batches differ"
    );
    note(&format!(
        "determinism: {} logits bit-identical across two runs",
        first.len()
    ));
}

/// head_dim 64 end to end (the test checkpoint has 32): small random models, CUDA against the CPU
/// backend given the same fp16-rounded weights.
#[test]
#[ignore = "needs a CUDA GPU: scripts/gpu-check.sh runs them"]
fn small_random_models_match_the_cpu_backend() {
    if skip_reason("small_random_models_match_the_cpu_backend").is_some() {
        return;
    }
    for heads in [4, 2] {
        let cfg = ModelConfig::from_json_str(&format!(
            r#"{{"model_type":"bert","hidden_size":128,"num_attention_heads":{heads},"num_hidden_layers":2,
            "intermediate_size":256,"max_position_embeddings":512,"vocab_size":500,"num_labels":1}}"#
        ))
        .unwrap();
        let mut rng = Rng::new(100 + heads as u64);
        let (h, i) = (128, 256);
        let mut v = |n: usize, s: f32| r16(&rng.vec(n, s));
        let layer = |v: &mut dyn FnMut(usize, f32) -> Vec<f32>| xenc::weights::LayerWeights {
            qkv_weight: v(3 * h * h, 0.15),
            qkv_bias: v(3 * h, 0.1),
            attn_out_weight: v(h * h, 0.1),
            attn_out_bias: v(h, 0.1),
            attn_ln_weight: v(h, 0.1).iter().map(|x| r16(&[1.0 + x])[0]).collect(),
            attn_ln_bias: v(h, 0.1),
            ffn_in_weight: v(i * h, 0.1),
            ffn_in_bias: v(i, 0.1),
            ffn_out_weight: v(h * i, 0.1),
            ffn_out_bias: v(h, 0.1),
            ffn_ln_weight: v(h, 0.1).iter().map(|x| r16(&[1.0 + x])[0]).collect(),
            ffn_ln_bias: v(h, 0.1),
        };
        let w = BertWeights {
            word_embeddings: v(500 * h, 1.0),
            position_embeddings: v(512 * h, 0.3),
            token_type_embeddings: v(2 * h, 0.3),
            embeddings_ln_weight: v(h, 0.1).iter().map(|x| r16(&[1.0 + x])[0]).collect(),
            embeddings_ln_bias: v(h, 0.1),
            layers: vec![layer(&mut v), layer(&mut v)],
            pooler_weight: v(h * h, 0.2),
            pooler_bias: v(h, 0.1),
            classifier_weight: v(h, 0.5),
            classifier_bias: v(1, 0.1),
            stored_dtype: "f16".into(),
        };
        let gpu = CudaBackend::new(&cfg, &w, 0, 4096, &options()).unwrap();
        let cpu = xenc::cpu::CpuBackend::new(cfg.clone(), w, None);
        let b = ragged_batch(&mut Rng::new(7), 500);
        let (g, c) = (gpu.forward(&b).unwrap(), cpu.forward(&b));
        let (err, at) = max_err(&g, &c);
        note(&format!(
            "random model hd{}: worst |cuda - cpu| logit {err:.3e} at pair {at} (limit 5e-2)",
            h / heads
        ));
        assert!(err <= 5e-2, "hd{}: {err:.3e}", h / heads);
    }
}

/// A few pairs of very different lengths through the whole model on a small budget: the target that
/// scripts/gpu-check.sh runs under compute-sanitizer when the CLI cannot reach CUDA.
#[test]
#[ignore = "needs a CUDA GPU: scripts/gpu-check.sh runs them"]
fn small_forward_for_sanitizers() {
    if skip_reason("small_forward_for_sanitizers").is_some() {
        return;
    }
    let (cfg, w) = load("f16");
    let backend = CudaBackend::new(&cfg, &w, 0, 2048, &options()).unwrap();
    let gold = goldens();
    let mut picked: Vec<usize> = (0..gold.len()).step_by(gold.len() / 6).collect();
    let longest = (0..gold.len())
        .max_by_key(|&i| gold[i].input_ids.len())
        .unwrap();
    let shortest = (0..gold.len())
        .min_by_key(|&i| gold[i].input_ids.len())
        .unwrap();
    picked.extend([longest, shortest]);
    let sub: Vec<common::Golden> = picked.iter().map(|&i| gold[i].clone()).collect();
    let logits = run(&backend, &cfg, &golden_pairs(&sub), 2048);
    for (k, (&l, g)) in logits.iter().zip(&sub).enumerate() {
        let e = (l as f64 - g.logit).abs();
        assert!(e <= 7.2e-3, "{}: {e:.3e}", common::label(g, picked[k]));
    }
    note(&format!(
        "small forward: {} pairs on {} within 7.2e-3",
        sub.len(),
        backend.describe()
    ));
}

/// Not a test: the backend's throughput on the golden pairs (x10), for scripts/gpu-check.sh when the CLI
/// cannot reach CUDA. Run with `--ignored --exact throughput_of_the_backend`; asserts nothing on time.
#[test]
#[ignore = "a measurement, not a test: scripts/gpu-check.sh runs it where the CLI cannot reach CUDA"]
fn throughput_of_the_backend() {
    if skip_reason("throughput_of_the_backend").is_some() {
        return;
    }
    let (cfg, w) = load("f16");
    let backend = CudaBackend::new(&cfg, &w, 0, BUDGET, &options()).unwrap();
    let base = golden_pairs(&goldens());
    let pairs: Vec<EncodedPair> = base.iter().cycle().take(10 * base.len()).cloned().collect();
    let tokens: usize = pairs.iter().map(EncodedPair::len).sum();
    run(&backend, &cfg, &pairs, BUDGET);
    let mut times = Vec::new();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        run(&backend, &cfg, &pairs, BUDGET);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let s = times[1];
    note(&format!(
        "throughput on {}: {} pairs, {tokens} tokens, median {s:.3} s: {:.0} pairs/s, {:.0} tokens/s (budget {BUDGET})",
        backend.describe(),
        pairs.len(),
        pairs.len() as f64 / s,
        tokens as f64 / s
    ));
}

/// The pipelined path (`CrossEncoder::logits` on a GPU: tokenisation of chunk c + 1 overlapping chunk c,
/// batch k + 1 uploaded while batch k runs) keeps every score in its place: 15 shuffled copies of the
/// golden pairs (3,135, several chunks and ~20 batches) each within 1e-3 of the same pair scored in the
/// plain, one-batch-at-a-time loop.
#[test]
#[ignore = "needs a CUDA GPU: scripts/gpu-check.sh runs them"]
fn many_pairs_keep_their_order_through_the_pipeline() {
    if skip_reason("many_pairs_keep_their_order_through_the_pipeline").is_some() {
        return;
    }
    let (cfg, w) = load("f16");
    let backend = CudaBackend::new(&cfg, &w, 0, BUDGET, &options()).unwrap();
    let gold = goldens();
    let reference = run(&backend, &cfg, &golden_pairs(&gold), BUDGET);
    drop(backend);

    let mut rng = Rng::new(5);
    let mut order: Vec<usize> = (0..15 * gold.len()).map(|i| i % gold.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1) as usize);
    }
    let texts: Vec<(&str, &str)> = order
        .iter()
        .map(|&g| (gold[g].query.as_str(), gold[g].document.as_str()))
        .collect();
    let model = xenc::CrossEncoder::builder(common::test_model("f16"))
        .cuda_options(options())
        .device(xenc::Device::Cuda(0))
        .build()
        .unwrap();
    let logits = model.logits(&texts).unwrap();
    assert_eq!(logits.len(), texts.len());
    let (mut worst, mut at) = (0f32, 0);
    for (k, (&g, &l)) in order.iter().zip(&logits).enumerate() {
        let d = (l - reference[g]).abs();
        if d > worst || d.is_nan() {
            (worst, at) = (d, k);
        }
    }
    note(&format!(
        "pipeline: {} pairs, worst difference from one-batch-at-a-time {worst:.2e} at {at} (limit 1e-3)",
        texts.len()
    ));
    assert!(
        worst <= 1e-3,
        "pair {at} (golden {}): {worst:.3e}",
        order[at]
    );
}

/// The checkpoints no GPU run has verified yet, opted in (`CudaOptions::allow_unverified`), against
/// their float64 goldens: the RoBERTa / XLM-R family (tests/golden/families/, up to 8,192 tokens on the
/// 8,194-position shape) and a 3-label head (tests/golden/labels/). Budget as the issue states it: the
/// worst |logit - float64| within 3.6e-3 of each shape's logit range (fails above twice that); a pair
/// alone within 1e-3 of the same pair in the batch. scripts/gpu-check.sh builds the checkpoints on the
/// GPU machine (numpy) and runs this; a pass is what lets `supported()` admit them by default.
#[test]
#[ignore = "needs a CUDA GPU: scripts/gpu-check.sh runs them"]
fn unverified_families_and_label_heads_match_float64_goldens() {
    let test = "unverified_families_and_label_heads_match_float64_goldens";
    if skip_reason(test).is_some() {
        return;
    }
    let mut opts = options();
    opts.allow_unverified = true;
    // (checkpoint under the test-model root, goldens, the field of each pair's logits)
    let shapes = [
        (
            "families/xlmr-l2-h384-hd64",
            "families/xlmr-l2-h384-hd64.jsonl",
            "logit",
        ),
        (
            "families/xlmr-l2-h128-pos8194",
            "families/xlmr-l2-h128-pos8194.jsonl",
            "logit",
        ),
        (
            "families/roberta-l2-h128-hd32",
            "families/roberta-l2-h128-hd32.jsonl",
            "logit",
        ),
        (
            "shapes/l2-h128-3labels",
            "labels/l2-h128-3labels.jsonl",
            "logits",
        ),
    ];
    let mut failed = Vec::new();
    for (dir, golden, field) in shapes {
        let model = match xenc::CrossEncoder::builder(common::checkpoint(dir))
            .device(xenc::Device::Cuda(0))
            .cuda_options(opts)
            .build()
        {
            Ok(m) => m,
            Err(e) => panic!("{dir} on CUDA: {e}"),
        };
        let path = common::golden_dir().join(golden);
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let roberta = model.config().family != xenc::Family::Bert;
        let pairs: Vec<EncodedPair> = lines
            .iter()
            .map(|g| {
                let ids: Vec<u32> = serde_json::from_value(g["input_ids"].clone()).unwrap();
                let types = match roberta {
                    true => vec![0; ids.len()],
                    false => serde_json::from_value(g["token_type_ids"].clone()).unwrap(),
                };
                EncodedPair {
                    input_ids: ids,
                    token_type_ids: types,
                }
            })
            .collect();
        let want: Vec<f64> = lines
            .iter()
            .flat_map(|g| match &g[field] {
                serde_json::Value::Array(a) => a.iter().map(|x| x.as_f64().unwrap()).collect(),
                x => vec![x.as_f64().unwrap()],
            })
            .collect();
        let labels = model.num_labels();
        let got = model.logits_encoded(&pairs).unwrap();
        assert_eq!(got.len(), want.len(), "{dir}");
        let range = want.iter().copied().fold(f64::NEG_INFINITY, f64::max)
            - want.iter().copied().fold(f64::INFINITY, f64::min);
        let (err, at) = got
            .iter()
            .zip(&want)
            .enumerate()
            .fold((0f64, 0), |w, (i, (g, x))| {
                let e = (*g as f64 - x).abs();
                if e > w.0 || e.is_nan() {
                    (e, i)
                } else {
                    w
                }
            });
        let (target, limit) = (3.6e-3 * range, 7.2e-3 * range);
        let longest = pairs.iter().map(EncodedPair::len).max().unwrap_or(0);
        note(&format!(
            "{dir} on {}: {} pairs up to {longest} tokens, {labels} label(s): worst |logit - float64| = \
             {err:.3e} at pair {} ({:.1}% of the logit range {range:.3}; target 0.36%, limit 0.72%)",
            model.device_name(),
            pairs.len(),
            at / labels,
            100.0 * err / range
        ));
        if err > target {
            note(&format!(
                "{dir}: WARNING: {err:.3e} is over the target {target:.3e}"
            ));
        }
        if err > limit {
            failed.push(format!("{dir}: {err:.3e} > {limit:.3e}"));
        }
        let mut worst_alone = 0f32;
        for (k, p) in pairs.iter().enumerate().step_by(5) {
            let alone = model.logits_encoded(std::slice::from_ref(p)).unwrap();
            for (a, b) in alone.iter().zip(&got[k * labels..(k + 1) * labels]) {
                worst_alone = worst_alone.max((a - b).abs());
            }
        }
        note(&format!(
            "{dir}: batch vs alone: worst difference {worst_alone:.2e} (limit 1e-3)"
        ));
        if worst_alone > 1e-3 {
            failed.push(format!("{dir}: batch vs alone {worst_alone:.2e}"));
        }
    }
    assert!(failed.is_empty(), "{failed:?}");
}
