//! Typed launchers, one per kernel, plus the GEMMs. Each checks what the kernel's header contract asks
//! (shapes, lengths, alignment, index ranges through [`DeviceBatch`]) and returns `Error::Cuda` naming
//! the kernel before anything is launched. The entry point comes from the selection functions of
//! [`plan`] (`attention_entry`, ...); arguments are passed as a list tagged with their C types and
//! compared with the entry's parameter list ([`plan::ENTRIES`], itself tested against the .cu files), so
//! an argument out of order is an error rather than a wild pointer.

use cudarc::driver::{CudaView, CudaViewMut, DevicePtr, DevicePtrMut, LaunchConfig, PushKernelArg};
use half::f16;

use super::buffers::DeviceBatch;
use super::context::Gpu;
use super::gemm::LtAlgo;
use super::plan::{self, Launch};
use crate::batch::Queries;
use crate::error::{Error, Result};
pub use crate::options::{AttentionKernel, FfnIn, GbgWarps, Pooler, Residual};

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
    let want = plan::find_entry(kernel).map_or("?", |e| e.params);
    let have = args.iter().map(Arg::c_type).collect::<Vec<_>>().join(", ");
    if have != want {
        return Err(fail(
            kernel,
            format!("launcher passes ({have}) but the kernel takes ({want})"),
        ));
    }
    Ok(())
}

/// Launches entry point `kernel` with `args` (checked against its parameter list) on the GPU's stream.
fn launch(gpu: &Gpu, kernel: &str, l: Launch, args: &[Arg]) -> Result<()> {
    check_signature(kernel, args)?;
    if l.grid == 0 {
        return Ok(());
    }
    let f = gpu.f.get(kernel)?;
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
    let a = gpu.addr(x);
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
    const K: &str = plan::EMBED_LAYERNORM;
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
    launch(gpu, K, l, &args)
}

/// Ragged attention over the batch: `qkv` `[T, 3H]` (Q | K | V), `ctx` gets `[T, H]` (`All`) or `[n, H]`
/// (`ClsOnly`, row p = pair p's `[CLS]` query). head_dim 32 or 64; qkv and ctx 16-byte aligned. Runs the
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
    let k = plan::attention_entry(kernel, head_dim).ok_or_else(|| {
        fail(
            "attention_varlen",
            format!(
                "head_dim {head_dim} has no kernel (supported: {:?})",
                plan::ATTN_HEAD_DIMS
            ),
        )
    })?;
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
    launch(gpu, k, l, &args)
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
    const K: &str = plan::BIAS_GELU;
    let l = plan::bias_gelu_launch(rows, n, gpu.info.sm_count).map_err(|m| fail(K, m))?;
    let args = [
        half_out(gpu, K, "x", x, rows * n)?,
        half_in(gpu, K, "bias", bias, n)?,
        int(K, "rows", rows)?,
        int(K, "N", n)?,
    ];
    launch(gpu, K, l, &args)
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
    const K: &str = plan::ADD_BIAS_RESIDUAL_LAYERNORM;
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
    launch(gpu, K, l, &args)
}

/// `x = LayerNorm(x)` in place; x `[rows, h]` (the kernel's `out` is `x`). With
/// [`Residual::InGemm`] the GEMM before it has already added bias and residual ([`linear_bias_add`]).
pub fn layernorm(
    gpu: &Gpu,
    x: &mut impl DevicePtrMut<f16>,
    gamma: &impl DevicePtr<f16>,
    beta: &impl DevicePtr<f16>,
    rows: usize,
    h: usize,
    eps: f32,
) -> Result<()> {
    const K: &str = plan::LAYERNORM;
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
    launch(gpu, K, l, &args)
}

/// `dst[p] = src[cu_seqlens[p]]`: each pair's `[CLS]` row; src `[T, h]`, dst `[n, h]`, not overlapping.
pub fn gather_rows(
    gpu: &Gpu,
    batch: &DeviceBatch,
    src: &impl DevicePtr<f16>,
    dst: &mut impl DevicePtrMut<f16>,
    h: usize,
) -> Result<()> {
    const K: &str = plan::GATHER_ROWS;
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
    launch(gpu, K, l, &args)
}

/// The head: `logits[p] = wc · tanh(wp · x_cls[p] + bp) + bc`; x_cls `[n, h]`, wp `[h, h]`, wc `[l, h]`,
/// logits `[n, l]` fp32. Runs the version the GPU's options name ([`crate::CudaOptions::pooler`]).
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
    let pooler = gpu.options.pooler;
    pooler_classifier_with(gpu, pooler, x_cls, wp, bp, wc, bc, logits, n, h, l)
}

/// [`pooler_classifier`] with the version chosen by the caller.
#[allow(clippy::too_many_arguments)]
pub fn pooler_classifier_with(
    gpu: &Gpu,
    pooler: Pooler,
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
    let k = plan::pooler_entry(pooler);
    let launch_shape = plan::pooler_launch(n, h).map_err(|m| fail(k, m))?;
    let len = logits.len();
    let (out, _guard) = logits.device_ptr_mut(&gpu.stream);
    check(
        k,
        plan::check_len("logits", len, n * l).and(plan::check_aligned("logits", out, 4)),
    )?;
    let args = [
        half_in(gpu, k, "x_cls", x_cls, n * h)?,
        half_in(gpu, k, "wp", wp, h * h)?,
        half_in(gpu, k, "bp", bp, h)?,
        half_in(gpu, k, "wc", wc, l * h)?,
        half_in(gpu, k, "bc", bc, l)?,
        Arg::Ptr(out, "float*"),
        int(k, "n", n)?,
        int(k, "H", h)?,
        int(k, "L", l)?,
    ];
    launch(gpu, k, launch_shape, &args)
}

/// `out[rows, n] = x[rows, k] · w[n, k]ᵀ`: fp16 in and out, fp32 accumulation. Row-major through
/// column-major BLAS: outᵀ = w · xᵀ. On the GEMM path of the GPU's options ([`crate::CudaOptions::gemm`]):
/// cuBLASLt with a plan cached per shape, or cuBLAS `cublasGemmEx`.
pub fn linear(
    gpu: &Gpu,
    x: &CudaView<'_, f16>,
    w: &CudaView<'_, f16>,
    out: &mut CudaViewMut<'_, f16>,
    rows: usize,
    k: usize,
    n: usize,
) -> Result<()> {
    gpu.gemm.linear(x, w, out, rows, k, n)
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
    let (kname, threads) = plan::gemm_bias_gelu_entry(warps);
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
    launch(gpu, kname, l, &args)
}

/// `out[rows, n] = x[rows, k] · w[n, k]ᵀ + bias[n]` with cuBLASLt's BIAS epilogue (fp32 accumulation,
/// the bias added before the one rounding to fp16), so the QKV bias costs no extra pass over the output.
/// A plan cached per shape, or on the cuBLAS path cudarc's `CudaBlasLT::matmul`.
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
    gpu.gemm.linear_bias(x, w, bias, out, 0.0, rows, k, n)
}

/// `out[rows, n] += x[rows, k] · w[n, k]ᵀ + bias[n]`: [`linear_bias`] accumulating into `out` (cuBLASLt's
/// beta = 1 with C = D = out, in place; one fp32 sum of product, bias and the old out, one rounding to
/// fp16). For [`Residual::InGemm`]: the residual connection added by the GEMM instead of the LayerNorm.
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
    gpu.gemm.linear_bias(x, w, bias, out, 1.0, rows, k, n)
}

/// The algorithms cuBLASLt's heuristic offers for this GEMM (at most
/// [`HEURISTIC_COUNT`](super::gemm::HEURISTIC_COUNT), best guess first), from the cached plan (made now
/// if needed). Empty for zero rows.
#[allow(clippy::too_many_arguments)]
pub fn lt_algorithms(
    gpu: &Gpu,
    x: &CudaView<'_, f16>,
    w: &CudaView<'_, f16>,
    bias: Option<&CudaView<'_, f16>>,
    out: &mut CudaViewMut<'_, f16>,
    rows: usize,
    k: usize,
    n: usize,
) -> Result<Vec<LtAlgo>> {
    gpu.gemm.lt_algorithms(x, w, bias, out, rows, k, n)
}

/// `out[rows, n] = x[rows, k] · w[n, k]ᵀ (+ bias[n])` on cuBLASLt with the heuristic's `algo`-th
/// algorithm, whatever the GPU's GEMM path: for benchmarks and tests of each algorithm. An `algo` the
/// heuristic did not offer is an error.
#[allow(clippy::too_many_arguments)]
pub fn linear_lt(
    gpu: &Gpu,
    algo: usize,
    x: &CudaView<'_, f16>,
    w: &CudaView<'_, f16>,
    bias: Option<&CudaView<'_, f16>>,
    out: &mut CudaViewMut<'_, f16>,
    rows: usize,
    k: usize,
    n: usize,
) -> Result<()> {
    gpu.gemm.linear_lt(algo, x, w, bias, out, rows, k, n)
}

#[cfg(test)]
mod tests {
    use super::{check_signature, plan, Arg};

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

    /// [`plan::ENTRIES`] is exactly the entry points of kernels/*.cu: each in its file, with its parameters.
    #[test]
    fn signatures_match_the_kernel_sources() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
        let mut found = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "cu") {
                let file = p.file_stem().unwrap().to_string_lossy().to_string();
                let text = std::fs::read_to_string(&p).unwrap();
                found.extend(
                    declared_kernels(&text)
                        .into_iter()
                        .map(|(name, params)| (file.clone(), name, params)),
                );
            }
        }
        found.sort();
        let mut want: Vec<(String, String, Vec<String>)> = plan::ENTRIES
            .iter()
            .map(|e| {
                let params = e.params.split(", ").map(String::from).collect();
                (e.file.to_string(), e.name.to_string(), params)
            })
            .collect();
        want.sort();
        assert_eq!(found, want);
    }
}
