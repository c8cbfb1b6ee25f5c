//! Typed launchers, one per kernel, plus the two GEMMs. Each checks what the kernel's header contract
//! asks (shapes, lengths, alignment, index ranges through [`DeviceBatch`]) and returns `Error::Cuda`
//! naming the kernel before anything is launched. Arguments are passed as a list tagged with their C
//! types and compared with the kernel's parameter list ([`SIGNATURES`], itself tested against the .cu
//! files), so an argument out of order is an error rather than a wild pointer.

use cudarc::cublas::sys::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
use cudarc::cublas::{Gemm, GemmConfig};
use cudarc::cublaslt::{Matmul, MatmulConfig};
use cudarc::driver::{
    CudaFunction, CudaView, CudaViewMut, DevicePtr, DevicePtrMut, LaunchConfig, PushKernelArg,
};
use half::f16;

use super::buffers::{addr, DeviceBatch};
use super::context::Gpu;
use super::plan::{self, Launch};
use crate::cpu::ops::Queries;
use crate::error::{Error, Result};
pub use crate::options::{AttentionKernel, FfnIn, GbgWarps, Residual};

/// Each kernel's C parameter types, in order, as declared in kernels/*.cu.
pub const SIGNATURES: &[(&str, &str)] = &[
    ("embed_layernorm_f16", "const int*, const int*, const int*, const __half*, const __half*, const __half*, const __half*, const __half*, __half*, int, int, float"),
    ("attention_varlen_hd32_f16", ATTENTION),
    ("attention_varlen_hd64_f16", ATTENTION),
    ("attention_mma_hd32_f16", ATTENTION),
    ("attention_mma_hd64_f16", ATTENTION),
    ("attention_mma_s4_hd32_f16", ATTENTION),
    ("bias_gelu_f16", "__half*, const __half*, int, int"),
    ("add_bias_residual_layernorm_f16", "const __half*, const __half*, const __half*, const __half*, const __half*, __half*, int, int, float"),
    ("layernorm_f16", "const __half*, const __half*, const __half*, __half*, int, int, float"),
    ("gather_rows_f16", "const __half*, const int*, __half*, int, int"),
    ("gemm_bias_gelu_f16", GEMM_BIAS_GELU),
    ("gemm_bias_gelu_w64_f16", GEMM_BIAS_GELU),
    ("pooler_classifier_f16", "const __half*, const __half*, const __half*, const __half*, const __half*, float*, int, int, int"),
];
const ATTENTION: &str =
    "const __half*, __half*, const int*, const int*, const int4*, int, int, float";
const GEMM_BIAS_GELU: &str = "const __half*, const __half*, const __half*, __half*, int, int, int";

/// One kernel argument and the C type it stands for.
enum Arg {
    Ptr(u64, &'static str),
    Int(i32),
    Float(f32),
}

impl Arg {
    fn c_type(&self) -> &'static str {
        match self {
            Arg::Ptr(_, t) => t,
            Arg::Int(_) => "int",
            Arg::Float(_) => "float",
        }
    }
}

fn fail(kernel: &str, msg: impl std::fmt::Display) -> Error {
    Error::cuda(format!("{kernel}: {msg}"))
}

/// Converts a plan-level check into the kernel's error.
fn check(kernel: &str, r: std::result::Result<(), String>) -> Result<()> {
    r.map_err(|m| fail(kernel, m))
}

fn int(kernel: &str, what: &str, v: usize) -> Result<Arg> {
    i32::try_from(v)
        .map(Arg::Int)
        .map_err(|_| fail(kernel, format!("{what} = {v} does not fit an int")))
}

/// `Err` unless `args` have the C types of `kernel`'s parameters, in order.
fn check_signature(kernel: &str, args: &[Arg]) -> Result<()> {
    let want = SIGNATURES
        .iter()
        .find(|s| s.0 == kernel)
        .map_or("?", |s| s.1);
    let have = args.iter().map(Arg::c_type).collect::<Vec<_>>().join(", ");
    if have != want {
        return Err(fail(
            kernel,
            format!("launcher passes ({have}) but the kernel takes ({want})"),
        ));
    }
    Ok(())
}

fn launch(gpu: &Gpu, f: &CudaFunction, kernel: &str, l: Launch, args: &[Arg]) -> Result<()> {
    check_signature(kernel, args)?;
    if l.grid == 0 {
        return Ok(());
    }
    let mut b = gpu.stream.launch_builder(f);
    for a in args {
        match a {
            Arg::Ptr(p, _) => b.arg(p),
            Arg::Int(v) => b.arg(v),
            Arg::Float(v) => b.arg(v),
        };
    }
    let cfg = LaunchConfig {
        grid_dim: (l.grid, 1, 1),
        block_dim: (l.block, 1, 1),
        shared_mem_bytes: l.shared_mem_bytes,
    };
    // SAFETY: the argument list matches the kernel's parameter types (checked above) and every pointer,
    // length and index was checked by the calling launcher against the kernel's contract.
    unsafe { b.launch(cfg) }.map_err(|e| fail(kernel, format!("launch {l:?}: {e}")))?;
    Ok(())
}

/// A read-only fp16 pointer argument, checked for length and 4-byte (half2) alignment.
fn half_in(gpu: &Gpu, k: &str, what: &str, x: &impl DevicePtr<f16>, need: usize) -> Result<Arg> {
    let a = addr(gpu, x);
    check(
        k,
        plan::check_len(what, x.len(), need).and(plan::check_aligned(what, a, 4)),
    )?;
    Ok(Arg::Ptr(a, "const __half*"))
}

fn half_out(
    gpu: &Gpu,
    k: &str,
    what: &str,
    x: &mut impl DevicePtrMut<f16>,
    need: usize,
) -> Result<Arg> {
    let len = x.len();
    let (a, _guard) = x.device_ptr_mut(&gpu.stream);
    check(
        k,
        plan::check_len(what, len, need).and(plan::check_aligned(what, a, 4)),
    )?;
    Ok(Arg::Ptr(a, "__half*"))
}

/// `out[t] = LayerNorm(word[ids[t]] + pos[pos_ids[t]] + type[type_ids[t]])` for the batch's T tokens;
/// tables are `[rows, h]`, out `[T, h]`. Every id must index its table (checked via the batch's facts).
#[allow(clippy::too_many_arguments)]
pub fn embed_layernorm(
    gpu: &Gpu,
    batch: &DeviceBatch,
    word: &impl DevicePtr<f16>,
    pos: &impl DevicePtr<f16>,
    token_type: &impl DevicePtr<f16>,
    gamma: &impl DevicePtr<f16>,
    beta: &impl DevicePtr<f16>,
    out: &mut impl DevicePtrMut<f16>,
    h: usize,
    eps: f32,
) -> Result<()> {
    const K: &str = "embed_layernorm_f16";
    let lay = batch.layout(K)?;
    let t = lay.tokens;
    let l = plan::layernorm_launch_on(t, h, gpu.info.sm_count).map_err(|m| fail(K, m))?;
    let facts = batch.facts();
    let rows = |id: u32| (id as usize + 1) * h;
    let args = [
        Arg::Ptr(batch.addr_of(gpu, lay.input_ids), "const int*"),
        Arg::Ptr(batch.addr_of(gpu, lay.token_type_ids), "const int*"),
        Arg::Ptr(batch.addr_of(gpu, lay.position_ids), "const int*"),
        half_in(
            gpu,
            K,
            "word_emb (rows up to the largest input id)",
            word,
            rows(facts.max_input_id),
        )?,
        half_in(
            gpu,
            K,
            "pos_emb (rows up to the largest position)",
            pos,
            rows(facts.max_position),
        )?,
        half_in(
            gpu,
            K,
            "type_emb (rows up to the largest token type)",
            token_type,
            rows(facts.max_token_type),
        )?,
        half_in(gpu, K, "gamma", gamma, h)?,
        half_in(gpu, K, "beta", beta, h)?,
        half_out(gpu, K, "out", out, t * h)?,
        int(K, "T", t)?,
        int(K, "H", h)?,
        Arg::Float(eps),
    ];
    launch(gpu, &gpu.f.embed_layernorm, K, l, &args)
}

/// Ragged attention over the batch: `qkv` `[T, 3H]` (Q | K | V), `ctx` gets `[T, H]` (`All`) or `[n, H]`
/// (`ClsOnly`, row p = pair p's [CLS] query). head_dim 32 or 64; qkv and ctx 16-byte aligned. Runs the
/// kernel the GPU's options name ([`crate::CudaOptions::attention`]).
pub fn attention_varlen(
    gpu: &Gpu,
    batch: &DeviceBatch,
    qkv: &impl DevicePtr<f16>,
    ctx: &mut impl DevicePtrMut<f16>,
    queries: Queries,
    num_heads: usize,
    head_dim: usize,
) -> Result<()> {
    let kernel = gpu.options.attention;
    attention_varlen_with(gpu, kernel, batch, qkv, ctx, queries, num_heads, head_dim)
}

/// [`attention_varlen`] with the kernel chosen by the caller.
#[allow(clippy::too_many_arguments)]
pub fn attention_varlen_with(
    gpu: &Gpu,
    kernel: AttentionKernel,
    batch: &DeviceBatch,
    qkv: &impl DevicePtr<f16>,
    ctx: &mut impl DevicePtrMut<f16>,
    queries: Queries,
    num_heads: usize,
    head_dim: usize,
) -> Result<()> {
    let (k, f) = match (kernel, head_dim) {
        (AttentionKernel::Simt, 32) => ("attention_varlen_hd32_f16", &gpu.f.attention_hd32),
        (AttentionKernel::Simt, _) => ("attention_varlen_hd64_f16", &gpu.f.attention_hd64),
        (AttentionKernel::Mma, 32) => ("attention_mma_hd32_f16", &gpu.f.attention_mma_hd32),
        (AttentionKernel::MmaS4, 32) => ("attention_mma_s4_hd32_f16", &gpu.f.attention_mma_s4_hd32),
        (AttentionKernel::Mma | AttentionKernel::MmaS4, _) => {
            ("attention_mma_hd64_f16", &gpu.f.attention_mma_hd64)
        }
    };
    let lay = batch.layout(k)?;
    if num_heads != batch.num_heads() {
        return Err(fail(
            k,
            format!(
                "{num_heads} heads, but the batch's work lists were planned for {}",
                batch.num_heads()
            ),
        ));
    }
    let (work, items, out_offsets, out_rows) = match queries {
        Queries::All => (lay.work_all, lay.work_all_items, lay.cu_seqlens, lay.tokens),
        Queries::ClsOnly => (lay.work_cls, lay.work_cls_items, lay.cls_offsets, lay.pairs),
    };
    let l = plan::attention_launch(items, head_dim).map_err(|m| fail(k, m))?;
    let h = num_heads * head_dim;
    let q = half_in(gpu, k, "qkv", qkv, lay.tokens * 3 * h)?;
    let c = half_out(gpu, k, "ctx", ctx, out_rows * h)?;
    for (what, arg) in [("qkv", &q), ("ctx", &c)] {
        if let Arg::Ptr(a, _) = arg {
            check(k, plan::check_aligned(what, *a, 16))?;
        }
    }
    let w = batch.addr_of(gpu, work);
    check(k, plan::check_aligned("work", w, 16))?;
    let args = [
        q,
        c,
        Arg::Ptr(batch.addr_of(gpu, lay.cu_seqlens), "const int*"),
        Arg::Ptr(batch.addr_of(gpu, out_offsets), "const int*"),
        Arg::Ptr(w, "const int4*"),
        int(k, "num_work", items)?,
        int(k, "num_heads", num_heads)?,
        Arg::Float(1.0 / (head_dim as f32).sqrt()),
    ];
    launch(gpu, f, k, l, &args)
}

/// `x = gelu_erf(x + bias)` in place; x `[rows, n]`, bias `[n]`, n even. 16-byte aligned x and bias with
/// n % 8 == 0 take the kernel's 16-byte path, anything else its half2 path (same results).
pub fn bias_gelu(
    gpu: &Gpu,
    x: &mut impl DevicePtrMut<f16>,
    bias: &impl DevicePtr<f16>,
    rows: usize,
    n: usize,
) -> Result<()> {
    const K: &str = "bias_gelu_f16";
    let l = plan::bias_gelu_launch(rows, n, gpu.info.sm_count).map_err(|m| fail(K, m))?;
    let args = [
        half_out(gpu, K, "x", x, rows * n)?,
        half_in(gpu, K, "bias", bias, n)?,
        int(K, "rows", rows)?,
        int(K, "N", n)?,
    ];
    launch(gpu, &gpu.f.bias_gelu, K, l, &args)
}

/// `residual = LayerNorm(x + bias + residual)` in place (the kernel's `out` is `residual`); x and
/// residual `[rows, h]`.
#[allow(clippy::too_many_arguments)]
pub fn add_bias_residual_layernorm(
    gpu: &Gpu,
    x: &impl DevicePtr<f16>,
    bias: &impl DevicePtr<f16>,
    residual: &mut impl DevicePtrMut<f16>,
    gamma: &impl DevicePtr<f16>,
    beta: &impl DevicePtr<f16>,
    rows: usize,
    h: usize,
    eps: f32,
) -> Result<()> {
    const K: &str = "add_bias_residual_layernorm_f16";
    let l = plan::layernorm_launch_on(rows, h, gpu.info.sm_count).map_err(|m| fail(K, m))?;
    let out = half_out(gpu, K, "residual", residual, rows * h)?;
    let Arg::Ptr(r, _) = out else { unreachable!() };
    let args = [
        half_in(gpu, K, "x", x, rows * h)?,
        half_in(gpu, K, "bias", bias, h)?,
        Arg::Ptr(r, "const __half*"),
        half_in(gpu, K, "gamma", gamma, h)?,
        half_in(gpu, K, "beta", beta, h)?,
        out,
        int(K, "rows", rows)?,
        int(K, "H", h)?,
        Arg::Float(eps),
    ];
    launch(gpu, &gpu.f.add_bias_residual_layernorm, K, l, &args)
}

/// `x = LayerNorm(x)` in place; x `[rows, h]` (the kernel's `out` is `x`). With `XENC_RESIDUAL=gemm` the
/// GEMM before it has already added bias and residual ([`linear_bias_add`]).
pub fn layernorm(
    gpu: &Gpu,
    x: &mut impl DevicePtrMut<f16>,
    gamma: &impl DevicePtr<f16>,
    beta: &impl DevicePtr<f16>,
    rows: usize,
    h: usize,
    eps: f32,
) -> Result<()> {
    const K: &str = "layernorm_f16";
    let l = plan::layernorm_launch_on(rows, h, gpu.info.sm_count).map_err(|m| fail(K, m))?;
    let out = half_out(gpu, K, "x", x, rows * h)?;
    let Arg::Ptr(p, _) = out else { unreachable!() };
    let args = [
        Arg::Ptr(p, "const __half*"),
        half_in(gpu, K, "gamma", gamma, h)?,
        half_in(gpu, K, "beta", beta, h)?,
        out,
        int(K, "rows", rows)?,
        int(K, "H", h)?,
        Arg::Float(eps),
    ];
    launch(gpu, &gpu.f.layernorm, K, l, &args)
}

/// `dst[p] = src[cu_seqlens[p]]`: each pair's [CLS] row; src `[T, h]`, dst `[n, h]`, not overlapping.
pub fn gather_rows(
    gpu: &Gpu,
    batch: &DeviceBatch,
    src: &impl DevicePtr<f16>,
    dst: &mut impl DevicePtrMut<f16>,
    h: usize,
) -> Result<()> {
    const K: &str = "gather_rows_f16";
    let lay = batch.layout(K)?;
    let (t, n) = (lay.tokens, lay.pairs);
    let l = plan::elementwise_launch(n, h, gpu.info.sm_count).map_err(|m| fail(K, m))?;
    let s = half_in(gpu, K, "src", src, t * h)?;
    let d = half_out(gpu, K, "dst", dst, n * h)?;
    if let (Arg::Ptr(a, _), Arg::Ptr(b, _)) = (&s, &d) {
        let (a_end, b_end) = (a + 2 * (t * h) as u64, b + 2 * (n * h) as u64);
        if *a < b_end && *b < a_end {
            return Err(fail(K, "dst overlaps src"));
        }
    }
    let args = [
        s,
        Arg::Ptr(batch.addr_of(gpu, lay.cu_seqlens), "const int*"),
        d,
        int(K, "n", n)?,
        int(K, "H", h)?,
    ];
    launch(gpu, &gpu.f.gather_rows, K, l, &args)
}

/// The head: `logits[p] = wc · tanh(wp · x_cls[p] + bp) + bc`; x_cls `[n, h]`, wp `[h, h]`, wc `[l, h]`,
/// logits `[n, l]` fp32.
#[allow(clippy::too_many_arguments)]
pub fn pooler_classifier(
    gpu: &Gpu,
    x_cls: &impl DevicePtr<f16>,
    wp: &impl DevicePtr<f16>,
    bp: &impl DevicePtr<f16>,
    wc: &impl DevicePtr<f16>,
    bc: &impl DevicePtr<f16>,
    logits: &mut impl DevicePtrMut<f32>,
    n: usize,
    h: usize,
    l: usize,
) -> Result<()> {
    const K: &str = "pooler_classifier_f16";
    let launch_shape = plan::pooler_launch(n, h).map_err(|m| fail(K, m))?;
    let len = logits.len();
    let (out, _guard) = logits.device_ptr_mut(&gpu.stream);
    check(
        K,
        plan::check_len("logits", len, n * l).and(plan::check_aligned("logits", out, 4)),
    )?;
    let args = [
        half_in(gpu, K, "x_cls", x_cls, n * h)?,
        half_in(gpu, K, "wp", wp, h * h)?,
        half_in(gpu, K, "bp", bp, h)?,
        half_in(gpu, K, "wc", wc, l * h)?,
        half_in(gpu, K, "bc", bc, l)?,
        Arg::Ptr(out, "float*"),
        int(K, "n", n)?,
        int(K, "H", h)?,
        int(K, "L", l)?,
    ];
    launch(gpu, &gpu.f.pooler_classifier, K, launch_shape, &args)
}

pub(crate) fn gemm_dims(
    what: &str,
    x: usize,
    w: usize,
    out: usize,
    rows: usize,
    k: usize,
    n: usize,
) -> Result<(i32, i32, i32)> {
    let e = |m: String| Error::cuda(format!("{what}: {m}"));
    plan::check_len("x", x, rows * k)
        .and(plan::check_len("w", w, n * k))
        .and(plan::check_len("out", out, rows * n))
        .map_err(e)?;
    let fit = |v: usize| {
        i32::try_from(v)
            .map_err(|_| Error::cuda(format!("{what}: dimension {v} does not fit an int")))
    };
    Ok((fit(rows)?, fit(k)?, fit(n)?))
}

/// `out[rows, n] = x[rows, k] · w[n, k]ᵀ`: fp16 in and out, fp32 accumulation. Row-major through
/// column-major BLAS: outᵀ = w · xᵀ, i.e. op(A) = Aᵀ on w's buffer read as `[k, n]`. On cuBLASLt with a
/// plan cached per shape (`gemm`), or with `XENC_GEMM=cublas` on cuBLAS (`cublasGemmEx`).
pub fn linear(
    gpu: &Gpu,
    x: &CudaView<'_, f16>,
    w: &CudaView<'_, f16>,
    out: &mut CudaViewMut<'_, f16>,
    rows: usize,
    k: usize,
    n: usize,
) -> Result<()> {
    let choice = gpu.gemm.choice;
    if choice.path == super::gemm::GemmPath::Lt {
        let algo = super::gemm::Algo::Preferred(choice.algo);
        return super::gemm::matmul(gpu, algo, x, w, None, out, 0.0, rows, k, n);
    }
    let (r, k, n) = gemm_dims("cuBLAS GEMM", x.len(), w.len(), out.len(), rows, k, n)?;
    if r == 0 {
        return Ok(());
    }
    let cfg = GemmConfig {
        transa: CUBLAS_OP_T,
        transb: CUBLAS_OP_N,
        m: n,
        n: r,
        k,
        alpha: f16::ONE,
        lda: k,
        ldb: k,
        beta: f16::ZERO,
        ldc: n,
    };
    // SAFETY: the lengths were checked against the GEMM's extents above.
    unsafe { gpu.blas.gemm(cfg, w, x, out) }
        .map_err(|e| Error::cuda(format!("cuBLAS GEMM {rows}x{k}x{n}: {e}")).with_source(e))
}

/// `y[rows, n] = gelu_erf(x[rows, k] · w[n, k]ᵀ + bias[n])` in one kernel (tensor cores, fp32 accumulation,
/// bias and erf GELU in the epilogue, one rounding to fp16), with the given warp layout. k % 32 == 0,
/// n % 128 == 0; every pointer 16-byte aligned.
#[allow(clippy::too_many_arguments)]
pub fn linear_bias_gelu(
    gpu: &Gpu,
    warps: GbgWarps,
    x: &impl DevicePtr<f16>,
    w: &impl DevicePtr<f16>,
    bias: &impl DevicePtr<f16>,
    y: &mut impl DevicePtrMut<f16>,
    rows: usize,
    k: usize,
    n: usize,
) -> Result<()> {
    let (kname, f, threads) = match warps {
        GbgWarps::W32 => (
            "gemm_bias_gelu_f16",
            &gpu.f.gemm_bias_gelu,
            plan::GBG_THREADS,
        ),
        GbgWarps::W64 => (
            "gemm_bias_gelu_w64_f16",
            &gpu.f.gemm_bias_gelu_w64,
            plan::GBG_W64_THREADS,
        ),
    };
    let l = plan::gemm_bias_gelu_launch(rows, k, n, threads).map_err(|m| fail(kname, m))?;
    let args = [
        half_in(gpu, kname, "x", x, rows * k)?,
        half_in(gpu, kname, "w", w, n * k)?,
        half_in(gpu, kname, "bias", bias, n)?,
        half_out(gpu, kname, "y", y, rows * n)?,
        int(kname, "M", rows)?,
        int(kname, "N", n)?,
        int(kname, "K", k)?,
    ];
    for (what, arg) in ["x", "w", "bias", "y"].iter().zip(&args) {
        if let Arg::Ptr(a, _) = arg {
            check(kname, plan::check_aligned(what, *a, 16))?;
        }
    }
    launch(gpu, f, kname, l, &args)
}

/// `out[rows, n] = x[rows, k] · w[n, k]ᵀ + bias[n]` with cuBLASLt's BIAS epilogue (fp32 accumulation,
/// the bias added before the one rounding to fp16), so the QKV bias costs no extra pass over the output.
/// A plan cached per shape (`gemm`), or with `XENC_GEMM=cublas` cudarc's `CudaBlasLT::matmul`.
#[allow(clippy::too_many_arguments)]
pub fn linear_bias(
    gpu: &Gpu,
    x: &CudaView<'_, f16>,
    w: &CudaView<'_, f16>,
    bias: &CudaView<'_, f16>,
    out: &mut CudaViewMut<'_, f16>,
    rows: usize,
    k: usize,
    n: usize,
) -> Result<()> {
    linear_bias_beta(gpu, x, w, bias, out, 0.0, rows, k, n)
}

/// `out[rows, n] += x[rows, k] · w[n, k]ᵀ + bias[n]`: [`linear_bias`] accumulating into `out` (cuBLASLt's
/// beta = 1 with C = D = out, in place; one fp32 sum of product, bias and the old out, one rounding to
/// fp16). For `XENC_RESIDUAL=gemm`: the residual connection added by the GEMM instead of the LayerNorm.
#[allow(clippy::too_many_arguments)]
pub fn linear_bias_add(
    gpu: &Gpu,
    x: &CudaView<'_, f16>,
    w: &CudaView<'_, f16>,
    bias: &CudaView<'_, f16>,
    out: &mut CudaViewMut<'_, f16>,
    rows: usize,
    k: usize,
    n: usize,
) -> Result<()> {
    linear_bias_beta(gpu, x, w, bias, out, 1.0, rows, k, n)
}

#[allow(clippy::too_many_arguments)]
fn linear_bias_beta(
    gpu: &Gpu,
    x: &CudaView<'_, f16>,
    w: &CudaView<'_, f16>,
    bias: &CudaView<'_, f16>,
    out: &mut CudaViewMut<'_, f16>,
    beta: f32,
    rows: usize,
    k: usize,
    n: usize,
) -> Result<()> {
    let choice = gpu.gemm.choice;
    if choice.path == super::gemm::GemmPath::Lt {
        let algo = super::gemm::Algo::Preferred(choice.algo);
        return super::gemm::matmul(gpu, algo, x, w, Some(bias), out, beta, rows, k, n);
    }
    let (r, _, _) = gemm_dims("cuBLASLt GEMM", x.len(), w.len(), out.len(), rows, k, n)?;
    check("cuBLASLt GEMM", plan::check_len("bias", bias.len(), n))?;
    if r == 0 {
        return Ok(());
    }
    let cfg = MatmulConfig {
        transa: true,
        transb: false,
        transc: false,
        m: n as u64,
        n: rows as u64,
        k: k as u64,
        alpha: 1.0,
        lda: k as i64,
        ldb: k as i64,
        beta,
        ldc: n as i64,
        stride_a: None,
        stride_b: None,
        stride_c: None,
        stride_bias: None,
        batch_size: None,
    };
    // SAFETY: the lengths were checked against the GEMM's extents above; bias has n (= m) entries.
    unsafe {
        gpu.gemm
            .cudarc_lt()?
            .matmul(cfg, w, x, out, Some(bias), None)
    }
    .map_err(|e| Error::cuda(format!("cuBLASLt GEMM+bias {rows}x{k}x{n}: {e}")).with_source(e))
}

#[cfg(test)]
mod tests {
    use super::{check_signature, Arg, SIGNATURES};

    #[test]
    fn arguments_out_of_order_are_refused() {
        let (x, b) = (Arg::Ptr(0x100, "__half*"), Arg::Ptr(0x200, "const __half*"));
        assert!(check_signature("bias_gelu_f16", &[x, b, Arg::Int(1), Arg::Int(2)]).is_ok());
        let (x, b) = (Arg::Ptr(0x100, "__half*"), Arg::Ptr(0x200, "const __half*"));
        let e = check_signature("bias_gelu_f16", &[b, x, Arg::Int(1), Arg::Int(2)]).unwrap_err();
        assert!(
            e.to_string()
                .contains("bias_gelu_f16: launcher passes (const __half*, __half*"),
            "{e}"
        );
        assert!(check_signature("bias_gelu_f16", &[Arg::Int(1), Arg::Float(2.0)]).is_err());
        assert!(check_signature("no_such_kernel", &[]).is_err());
    }

    /// `extern "C" __global__ void [__launch_bounds__(..)] name(params)` → (name, parameter types).
    fn declared_kernels(text: &str) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        for chunk in text.split("extern \"C\" __global__ void").skip(1) {
            let mut rest = chunk.trim_start();
            if let Some(r) = rest.strip_prefix("__launch_bounds__(") {
                rest = &r[r.find(')').unwrap() + 1..];
            }
            let open = rest.find('(').unwrap();
            let name = rest[..open].trim().to_string();
            let params = &rest[open + 1..open + rest[open..].find(')').unwrap()];
            let types = params
                .split(',')
                .map(|p| {
                    let p = p.replace("__restrict__", "");
                    let words: Vec<&str> = p.split_whitespace().collect();
                    words[..words.len() - 1].join(" ")
                })
                .collect();
            out.push((name, types));
        }
        out
    }

    #[test]
    fn signatures_match_the_kernel_sources() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
        let mut found = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "cu") {
                found.extend(declared_kernels(&std::fs::read_to_string(&p).unwrap()));
            }
        }
        found.sort();
        let mut want: Vec<(String, Vec<String>)> = SIGNATURES
            .iter()
            .map(|(n, t)| (n.to_string(), t.split(", ").map(String::from).collect()))
            .collect();
        want.sort();
        assert_eq!(found, want);
    }
}
