//! The four GEMMs of a layer on cuBLASLt with cached plans, and the switch to the older path. Everything
//! here takes the GEMM state ([`Gemms`]: the handles, the workspace, the plan cache and the stream they
//! run on), not the whole GPU, which holds it.
//!
//! All four are `out[rows, n] = x[rows, k] · w[n, k]ᵀ (+ bias[n])`, fp16 in and out, fp32 accumulation
//! and fp32 alpha/beta. Row-major through column-major BLAS: outᵀ = w · xᵀ, i.e.
//! m = n, n = rows, A = w's buffer read as `[k, n]` (ld k) with op(A) = Aᵀ, B = x's buffer read as
//! `[k, rows]` (ld k), C = D = out read as `[n, rows]` (ld n); the bias (BIAS epilogue) is fp16, one
//! value per row of D, added in fp32 before the one rounding to fp16.
//!
//! cudarc's `CudaBlasLT::matmul` builds three layouts, a descriptor and a preference, runs the
//! heuristic and destroys them on every call (~10-17 µs of host time). Here a [`Plan`] (descriptor,
//! layouts and up to [`HEURISTIC_COUNT`] heuristic results) is made once per [`PlanKey`] — rows, k, n,
//! bias or not, and the pointers' alignment — and kept in a [`PlanCache`] of at most [`PLAN_CACHE_CAP`]
//! plans, emptied when full (token counts vary per batch, so keys do too). A call only sets the bias
//! pointer on the cached descriptor and calls `cublasLtMatmul`, under one mutex that also guards the
//! handle; the workspace is used only on the GPU's compute stream, so calls in a row are ordered. The
//! heuristic is told the pointers' alignment and allows split-K only with fp32 partial sums.
//!
//! [`GemmPath::Cublas`] (`CudaOptions::gemm`, `--gemm cublas`) selects the path xenc used before (cuBLAS
//! `cublasGemmEx` for `linear`, cudarc's `CudaBlasLT::matmul` for `linear_bias`), kept as the reference
//! and for A/B runs; `CudaOptions::gemm_algo` (`--gemm-algo i`) makes the cuBLASLt path use the
//! heuristic's i-th algorithm instead of its first.

use std::collections::HashMap;
use std::ffi::c_void;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::cublas::sys::cublasOperation_t::{self, CUBLAS_OP_N, CUBLAS_OP_T};
use cudarc::cublas::{CudaBlas, Gemm, GemmConfig};
use cudarc::cublaslt::sys::{
    self as lt, cublasComputeType_t, cublasLtEpilogue_t, cublasLtMatmulAlgoConfigAttributes_t,
    cublasLtMatmulDescAttributes_t as Desc, cublasLtMatmulHeuristicResult_t,
    cublasLtMatmulPreferenceAttributes_t as Pref, cublasLtReductionScheme_t, cublasStatus_t,
    cudaDataType_t,
};
use cudarc::cublaslt::{CudaBlasLT, Matmul, MatmulConfig};
use cudarc::driver::{CudaSlice, CudaStream, CudaView, CudaViewMut, DevicePtrMut};
use half::f16;

use super::device::addr;
use super::plan::{self, gemm_dims};
use crate::error::{Error, Result};
use crate::options::CudaOptions;
pub use crate::options::GemmPath;

/// How many algorithms the heuristic is asked for, per shape.
pub const HEURISTIC_COUNT: usize = 8;
/// Plans kept before the cache is emptied: a model's batch adds up to 7 keys (4 shapes at T rows, 3 at
/// the pairs' count for the last layer), so this holds the plans of a few dozen batch sizes.
pub const PLAN_CACHE_CAP: usize = 256;
/// The alignment cuBLASLt's heuristic assumes unless told otherwise, and the most it asks about.
const MAX_ALIGN: u32 = 256;

/// The GEMM path and the heuristic algorithm the cuBLASLt path uses (0 = cuBLASLt's first choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GemmChoice {
    pub path: GemmPath,
    pub algo: usize,
}

impl GemmChoice {
    /// The GEMM part of the CUDA options.
    pub fn from_options(o: &CudaOptions) -> Self {
        GemmChoice {
            path: o.gemm,
            algo: o.gemm_algo,
        }
    }

    /// For the first-use banner.
    pub fn describe(&self) -> String {
        match self.path {
            GemmPath::Lt => format!(
                "cuBLASLt, plans cached per shape, heuristic algorithm {}",
                self.algo
            ),
            GemmPath::Cublas => "cuBLAS GemmEx + cudarc cuBLASLt matmul (gemm=cublas)".to_string(),
        }
    }
}

/// Bytes of cuBLASLt workspace: 32 MiB on Hopper and later, 4 MiB before (NVIDIA's advice, as cudarc).
pub fn workspace_bytes(arch: u32) -> usize {
    if arch >= 90 {
        32 << 20
    } else {
        4 << 20
    }
}

/// The largest power of two, at most 256, that divides `addr` (256 for 0).
fn alignment(addr: u64) -> u32 {
    if addr == 0 {
        return MAX_ALIGN;
    }
    (1u64 << addr.trailing_zeros().min(8)) as u32
}

/// What a plan is made for. The layouts depend on rows, k and n; the descriptor on the epilogue; the
/// heuristic's answer also on how aligned the pointers are (the least aligned of A, B, C/D and bias).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PlanKey {
    pub rows: usize,
    pub k: usize,
    pub n: usize,
    pub bias: bool,
    pub align: u32,
}

/// The column-major layouts (rows, columns, leading dimension) of A (w), B (x) and C = D (out) for
/// `out[rows, n] = x[rows, k] · w[n, k]ᵀ`, with op(A) = Aᵀ and op(B) = B.
pub(crate) fn layouts(rows: usize, k: usize, n: usize) -> [(u64, u64, i64); 3] {
    let (r, k, n) = (rows as u64, k as u64, n as u64);
    [(k, n, k as i64), (k, r, k as i64), (n, r, n as i64)]
}

/// A bounded map from key to plan: a miss makes the plan, and when [`PlanCache::cap`] plans are kept
/// already, drops them all first (token counts change batch to batch; emptying the whole cache now and
/// then costs a heuristic per shape, and keeps no bookkeeping on the hot path).
pub(crate) struct PlanCache<K, P> {
    map: HashMap<K, P>,
    cap: usize,
    /// How many times the cache was emptied.
    pub clears: usize,
}

impl<K: Hash + Eq + Copy, P> PlanCache<K, P> {
    pub fn new(cap: usize) -> Self {
        PlanCache {
            map: HashMap::new(),
            cap: cap.max(1),
            clears: 0,
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The plan for `key`, made by `make` on a miss; a failed `make` leaves the cache as it was.
    pub fn get_or_try_insert(
        &mut self,
        key: K,
        make: impl FnOnce() -> Result<P>,
    ) -> Result<&mut P> {
        if !self.map.contains_key(&key) {
            let plan = make()?;
            if self.map.len() >= self.cap {
                self.map.clear();
                self.clears += 1;
            }
            self.map.insert(key, plan);
        }
        Ok(self.map.get_mut(&key).expect("present or just inserted"))
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }
}

/// The heuristic result to run: `want` if it exists, otherwise (`fallback`) result 0. Returns the index
/// and whether it fell back, or None if `want` does not exist and there is no fallback.
fn pick(count: usize, want: usize, fallback: bool) -> Option<(usize, bool)> {
    if want < count {
        Some((want, false))
    } else if fallback && count > 0 {
        Some((0, true))
    } else {
        None
    }
}

/// `Err(Error::Cuda)` naming the GEMM and the cuBLASLt call unless `status` is success.
fn check(status: cublasStatus_t, gemm: &str, call: &str) -> Result<()> {
    match status {
        cublasStatus_t::CUBLAS_STATUS_SUCCESS => Ok(()),
        s => Err(Error::cuda(format!("{gemm}: {call}: {s:?}"))),
    }
}

/// e.g. "cuBLASLt GEMM+bias 16343x384x1152": the error prefix of one GEMM.
fn gemm_name(bias: bool, rows: usize, k: usize, n: usize) -> String {
    let plus = if bias { "+bias" } else { "" };
    format!("cuBLASLt GEMM{plus} {rows}x{k}x{n}")
}

/// Hands `value` to a cuBLASLt attribute setter as (pointer, size); the caller picks T per cuBLASLt's table
/// of attribute types, so the setter reads exactly one live T.
fn set_attribute<A: std::fmt::Debug + Copy, T>(
    call: &str,
    attr: A,
    value: &T,
    gemm: &str,
    set: impl FnOnce(A, *const c_void, usize) -> cublasStatus_t,
) -> Result<()> {
    let s = set(
        attr,
        value as *const T as *const c_void,
        std::mem::size_of::<T>(),
    );
    check(s, gemm, &format!("{call}({attr:?})"))
}

/// A `cublasLtMatrixLayout_t`, destroyed on drop.
struct Layout(lt::cublasLtMatrixLayout_t);

impl Layout {
    fn new((rows, cols, ld): (u64, u64, i64), gemm: &str) -> Result<Self> {
        let mut h = std::ptr::null_mut();
        // SAFETY: cublasLtMatrixLayoutCreate writes one handle.
        let s = unsafe {
            lt::cublasLtMatrixLayoutCreate(&mut h, cudaDataType_t::CUDA_R_16F, rows, cols, ld)
        };
        check(s, gemm, "cublasLtMatrixLayoutCreate")?;
        Ok(Layout(h))
    }
}

impl Drop for Layout {
    fn drop(&mut self) {
        // SAFETY: created by cublasLtMatrixLayoutCreate, destroyed once; no call in flight uses it
        // (cuBLASLt reads descriptors when a matmul is enqueued, not when it runs).
        unsafe { lt::cublasLtMatrixLayoutDestroy(self.0) };
    }
}

/// A `cublasLtMatmulDesc_t`, destroyed on drop.
struct MatmulDesc(lt::cublasLtMatmulDesc_t);

impl MatmulDesc {
    /// Sets one attribute from a value of the type cuBLASLt documents for it.
    fn set<T>(&self, attr: Desc, value: &T, gemm: &str) -> Result<()> {
        set_attribute(
            "cublasLtMatmulDescSetAttribute",
            attr,
            value,
            gemm,
            |a, p, n| {
                // SAFETY: see set_attribute; the descriptor is live.
                unsafe { lt::cublasLtMatmulDescSetAttribute(self.0, a, p, n) }
            },
        )
    }

    fn set_bias(&self, bias: u64, gemm: &str) -> Result<()> {
        // BIAS_POINTER: `const void*`, a device address.
        let p = bias as usize as *const c_void;
        self.set(Desc::CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p, gemm)
    }
}

impl Drop for MatmulDesc {
    fn drop(&mut self) {
        // SAFETY: as for Layout.
        unsafe { lt::cublasLtMatmulDescDestroy(self.0) };
    }
}

/// A `cublasLtMatmulPreference_t`, destroyed on drop (needed only while the heuristic runs).
struct Preference(lt::cublasLtMatmulPreference_t);

impl Preference {
    fn set<T>(&self, attr: Pref, value: &T, gemm: &str) -> Result<()> {
        set_attribute(
            "cublasLtMatmulPreferenceSetAttribute",
            attr,
            value,
            gemm,
            |a, p, n| {
                // SAFETY: see set_attribute; the preference is live.
                unsafe { lt::cublasLtMatmulPreferenceSetAttribute(self.0, a, p, n) }
            },
        )
    }
}

impl Drop for Preference {
    fn drop(&mut self) {
        // SAFETY: created by cublasLtMatmulPreferenceCreate, destroyed once.
        unsafe { lt::cublasLtMatmulPreferenceDestroy(self.0) };
    }
}

/// One shape's descriptor, layouts and heuristic results (best first, at least one).
pub(crate) struct Plan {
    desc: MatmulDesc,
    a: Layout,
    b: Layout,
    c: Layout,
    algos: Vec<cublasLtMatmulHeuristicResult_t>,
}

// SAFETY: the plan's handles are plain cuBLASLt host objects that are not tied to a thread; a plan is
// only reached through the mutex in `LtGemm`.
unsafe impl Send for Plan {}

impl Plan {
    /// Descriptor and layouts for `key`, and the heuristic's answer for them with `bias` (the bias
    /// pointer of the call that makes the plan) and a workspace of `workspace` bytes.
    fn new(
        handle: lt::cublasLtHandle_t,
        key: PlanKey,
        bias: Option<u64>,
        workspace: usize,
    ) -> Result<Self> {
        let gemm = &gemm_name(key.bias, key.rows, key.k, key.n);
        let mut h = std::ptr::null_mut();
        // SAFETY: cublasLtMatmulDescCreate writes one handle. Compute fp32, alpha/beta fp32.
        let s = unsafe {
            lt::cublasLtMatmulDescCreate(
                &mut h,
                cublasComputeType_t::CUBLAS_COMPUTE_32F,
                cudaDataType_t::CUDA_R_32F,
            )
        };
        check(s, gemm, "cublasLtMatmulDescCreate")?;
        let desc = MatmulDesc(h);
        // TRANSA/TRANSB: int32_t (cublasOperation_t). EPILOGUE: uint32_t (cublasLtEpilogue_t).
        // BIAS_DATA_TYPE: int32_t (cudaDataType_t); fp16 as D is (also its default, -1 = D's type).
        let (t, n) = (
            cublasOperation_t::CUBLAS_OP_T as i32,
            cublasOperation_t::CUBLAS_OP_N as i32,
        );
        desc.set(Desc::CUBLASLT_MATMUL_DESC_TRANSA, &t, gemm)?;
        desc.set(Desc::CUBLASLT_MATMUL_DESC_TRANSB, &n, gemm)?;
        let epilogue = match key.bias {
            true => cublasLtEpilogue_t::CUBLASLT_EPILOGUE_BIAS,
            false => cublasLtEpilogue_t::CUBLASLT_EPILOGUE_DEFAULT,
        };
        desc.set(
            Desc::CUBLASLT_MATMUL_DESC_EPILOGUE,
            &(epilogue as u32),
            gemm,
        )?;
        if key.bias {
            let dtype = cudaDataType_t::CUDA_R_16F as i32;
            desc.set(Desc::CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &dtype, gemm)?;
            if let Some(p) = bias {
                desc.set_bias(p, gemm)?;
            }
        }
        let [la, lb, lc] = layouts(key.rows, key.k, key.n);
        let (a, b, c) = (
            Layout::new(la, gemm)?,
            Layout::new(lb, gemm)?,
            Layout::new(lc, gemm)?,
        );

        let mut p = std::ptr::null_mut();
        // SAFETY: cublasLtMatmulPreferenceCreate writes one handle.
        let s = unsafe { lt::cublasLtMatmulPreferenceCreate(&mut p) };
        check(s, gemm, "cublasLtMatmulPreferenceCreate")?;
        let pref = Preference(p);
        // MAX_WORKSPACE_BYTES: uint64_t. REDUCTION_SCHEME_MASK, MIN_ALIGNMENT_*_BYTES: uint32_t.
        pref.set(
            Pref::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
            &(workspace as u64),
            gemm,
        )?;
        // Split-K partial sums stay fp32 (in the workspace): the in-place and output-type schemes would
        // add them up in fp16, more than the one rounding to fp16 that the GEMMs promise.
        let reduction = cublasLtReductionScheme_t::CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE as u32;
        pref.set(
            Pref::CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
            &reduction,
            gemm,
        )?;
        for attr in [
            Pref::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
            Pref::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
            Pref::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
            Pref::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
        ] {
            pref.set(attr, &key.align, gemm)?;
        }

        // SAFETY: cublasLtMatmulHeuristicResult_t is plain data; all zeros is a valid value (state 0 is
        // CUBLAS_STATUS_SUCCESS).
        let mut results: [cublasLtMatmulHeuristicResult_t; HEURISTIC_COUNT] =
            unsafe { std::mem::zeroed() };
        let mut count = 0;
        // SAFETY: every handle is live; `results` has room for the HEURISTIC_COUNT results asked for.
        let s = unsafe {
            lt::cublasLtMatmulAlgoGetHeuristic(
                handle,
                desc.0,
                a.0,
                b.0,
                c.0,
                c.0,
                pref.0,
                HEURISTIC_COUNT as i32,
                results.as_mut_ptr(),
                &mut count,
            )
        };
        check(s, gemm, "cublasLtMatmulAlgoGetHeuristic")?;
        let count = (count.max(0) as usize).min(HEURISTIC_COUNT);
        let algos: Vec<_> = results[..count]
            .iter()
            .filter(|r| r.state == cublasStatus_t::CUBLAS_STATUS_SUCCESS)
            .copied()
            .collect();
        if algos.is_empty() {
            return Err(Error::cuda(format!(
                "{gemm}: cublasLtMatmulAlgoGetHeuristic found no algorithm (alignment {} bytes, \
                 workspace {workspace} bytes, split-K reduction in fp32 only)",
                key.align
            )));
        }
        Ok(Plan {
            desc,
            a,
            b,
            c,
            algos,
        })
    }
}

/// The cuBLASLt handle and plan cache behind one mutex. Plans are dropped before the handle.
struct LtInner {
    plans: PlanCache<PlanKey, Plan>,
    handle: lt::cublasLtHandle_t,
}

// SAFETY: a cuBLASLt handle is not tied to the thread that created it; it is only used under the mutex.
unsafe impl Send for LtInner {}

impl Drop for LtInner {
    fn drop(&mut self) {
        self.plans.clear();
        // SAFETY: created by cublasLtCreate, destroyed once, after every plan made with it.
        unsafe { lt::cublasLtDestroy(self.handle) };
    }
}

/// xenc's own cuBLASLt state: handle, plan cache and workspace (cudarc's `CudaBlasLT` keeps its
/// workspace private, so the path that caches plans cannot share it).
pub(crate) struct LtGemm {
    inner: Mutex<LtInner>,
    workspace: CudaSlice<u8>,
}

impl LtGemm {
    fn new(stream: &Arc<CudaStream>, arch: u32) -> Result<Self> {
        let mut handle = std::ptr::null_mut();
        // SAFETY: cublasLtCreate writes one handle; the caller checked that libcublasLt is present.
        check(
            unsafe { lt::cublasLtCreate(&mut handle) },
            "cuBLASLt handle",
            "cublasLtCreate",
        )?;
        let inner = LtInner {
            plans: PlanCache::new(PLAN_CACHE_CAP),
            handle,
        };
        let workspace = stream
            .alloc_zeros::<u8>(workspace_bytes(arch))
            .map_err(|e| Error::cuda(format!("cuBLASLt workspace: {e}")).with_source(e))?;
        Ok(LtGemm {
            inner: Mutex::new(inner),
            workspace,
        })
    }
}

/// What a GPU holds for its GEMMs: the choice made at creation (changeable for A/B runs in one
/// process), the compute stream they run on, the cuBLAS handle, and the state of each cuBLASLt path,
/// made when the path is first needed.
pub(crate) struct Gemms {
    pub choice: GemmChoice,
    stream: Arc<CudaStream>,
    arch: u32,
    blas: CudaBlas,
    lt: OnceLock<LtGemm>,
    cudarc_lt: OnceLock<CudaBlasLT>,
}

impl Gemms {
    /// Makes the state of `choice.path` now, so that a failure shows when the GPU is opened.
    pub fn new(stream: &Arc<CudaStream>, arch: u32, choice: GemmChoice) -> Result<Self> {
        let blas = CudaBlas::new(stream.clone())
            .map_err(|e| Error::cuda(format!("cuBLAS handle: {e}")).with_source(e))?;
        let g = Gemms {
            choice,
            stream: stream.clone(),
            arch,
            blas,
            lt: OnceLock::new(),
            cudarc_lt: OnceLock::new(),
        };
        match choice.path {
            GemmPath::Lt => g.lt().map(drop)?,
            GemmPath::Cublas => g.cudarc_lt().map(drop)?,
        }
        Ok(g)
    }

    fn lt(&self) -> Result<&LtGemm> {
        if let Some(l) = self.lt.get() {
            return Ok(l);
        }
        let l = LtGemm::new(&self.stream, self.arch)?;
        Ok(self.lt.get_or_init(|| l))
    }

    /// cudarc's cuBLASLt handle for the cuBLAS path's `linear_bias`.
    fn cudarc_lt(&self) -> Result<&CudaBlasLT> {
        if let Some(b) = self.cudarc_lt.get() {
            return Ok(b);
        }
        // CudaBlasLT::new panics if its workspace (up to 32 MiB) cannot be allocated: an error first.
        let (free, _) = self
            .stream
            .context()
            .mem_get_info()
            .map_err(|e| Error::cuda(format!("free memory: {e}")).with_source(e))?;
        if free < 64 << 20 {
            return Err(Error::cuda(format!(
                "cuBLASLt handle: only {} MiB free",
                free >> 20
            )));
        }
        let b = CudaBlasLT::new(self.stream.clone())
            .map_err(|e| Error::cuda(format!("cuBLASLt handle: {e}")).with_source(e))?;
        Ok(self.cudarc_lt.get_or_init(|| b))
    }
}

/// One of the heuristic's algorithms for a GEMM, as `launch::lt_algorithms` lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct LtAlgo {
    /// Position in the heuristic's answer (0 = its first choice).
    pub index: usize,
    /// CUBLASLT_ALGO_CONFIG_ID, _TILE_ID, _STAGES_ID, _SPLITK_NUM (None if cuBLASLt would not say).
    pub id: Option<u32>,
    pub tile: Option<u32>,
    pub stages: Option<u32>,
    pub split_k: Option<u32>,
    pub workspace_bytes: usize,
    pub waves: f32,
}

impl LtAlgo {
    fn from_result(index: usize, r: &cublasLtMatmulHeuristicResult_t) -> Self {
        use cublasLtMatmulAlgoConfigAttributes_t as C;
        // ID is int32_t, TILE_ID, STAGES_ID and SPLITK_NUM uint32_t: four bytes each.
        let get = |attr: C| {
            let (mut v, mut written) = (0u32, 0usize);
            // SAFETY: `v` has room for the 4 bytes offered; the algo is a live plain-data struct.
            let s = unsafe {
                lt::cublasLtMatmulAlgoConfigGetAttribute(
                    &r.algo,
                    attr,
                    &mut v as *mut u32 as *mut c_void,
                    std::mem::size_of::<u32>(),
                    &mut written,
                )
            };
            (s == cublasStatus_t::CUBLAS_STATUS_SUCCESS && written == 4).then_some(v)
        };
        LtAlgo {
            index,
            id: get(C::CUBLASLT_ALGO_CONFIG_ID),
            tile: get(C::CUBLASLT_ALGO_CONFIG_TILE_ID),
            stages: get(C::CUBLASLT_ALGO_CONFIG_STAGES_ID),
            split_k: get(C::CUBLASLT_ALGO_CONFIG_SPLITK_NUM),
            workspace_bytes: r.workspaceSize,
            waves: r.wavesCount,
        }
    }

    /// e.g. "id 21 tile 18 stages 20 splitK 1 ws 0 KiB waves 1.35".
    pub fn describe(&self) -> String {
        let o = |v: Option<u32>| v.map_or("?".to_string(), |v| v.to_string());
        format!(
            "id {} tile {} stages {} splitK {} ws {} KiB waves {:.2}",
            o(self.id),
            o(self.tile),
            o(self.stages),
            o(self.split_k),
            self.workspace_bytes >> 10,
            self.waves
        )
    }
}

/// Which heuristic result a call runs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Algo {
    /// This one if the heuristic offered it, else its first (noted once on stderr).
    Preferred(usize),
    /// Exactly this one, or an error.
    Exact(usize),
}

static FELL_BACK: AtomicBool = AtomicBool::new(false);

/// Device addresses of one call: A (w), B (x), C = D (out), and the workspace.
#[derive(Clone, Copy)]
struct Addresses {
    a: u64,
    b: u64,
    d: u64,
    workspace: u64,
    workspace_bytes: usize,
}

/// Checks the GEMM's extents, finds (or makes) the plan for this call's shape and pointers, sets the
/// bias pointer on it and runs `f(handle, plan, addresses, name)` with the mutex held. None (and
/// nothing run) for zero rows.
#[allow(clippy::too_many_arguments)]
fn with_plan<R>(
    g: &Gemms,
    x: &CudaView<'_, f16>,
    w: &CudaView<'_, f16>,
    bias: Option<&CudaView<'_, f16>>,
    out: &mut CudaViewMut<'_, f16>,
    rows: usize,
    k: usize,
    n: usize,
    f: impl FnOnce(lt::cublasLtHandle_t, &Plan, Addresses, &str) -> Result<R>,
) -> Result<Option<R>> {
    let gemm = &gemm_name(bias.is_some(), rows, k, n);
    dims(gemm, x.len(), w.len(), out.len(), rows, k, n)?;
    if let Some(b) = bias {
        plan::check_len("bias", b.len(), n).map_err(|m| Error::cuda(format!("{gemm}: {m}")))?;
    }
    if rows == 0 {
        return Ok(None);
    }
    let state = g.lt()?;
    let (pa, pb) = (addr(&g.stream, w), addr(&g.stream, x));
    let pbias = bias.map(|b| addr(&g.stream, b));
    // The guard records nothing (event tracking is off) but is kept until the matmul is enqueued.
    let (pd, _guard) = out.device_ptr_mut(&g.stream);
    let align = [pa, pb, pd, pbias.unwrap_or(0)]
        .into_iter()
        .map(alignment)
        .min()
        .unwrap_or(MAX_ALIGN);
    let key = PlanKey {
        rows,
        k,
        n,
        bias: bias.is_some(),
        align,
    };
    let ws = state.workspace.len();
    let at = Addresses {
        a: pa,
        b: pb,
        d: pd,
        workspace: addr(&g.stream, &state.workspace),
        workspace_bytes: ws,
    };
    let mut inner = state.inner.lock().unwrap_or_else(|p| p.into_inner());
    let inner = &mut *inner;
    let handle = inner.handle;
    let plan = inner
        .plans
        .get_or_try_insert(key, || Plan::new(handle, key, pbias, ws))?;
    if let Some(p) = pbias {
        plan.desc.set_bias(p, gemm)?;
    }
    f(handle, plan, at, gemm).map(Some)
}

/// [`plan::gemm_dims`] as an error naming the GEMM.
fn dims(
    gemm: &str,
    x: usize,
    w: usize,
    out: usize,
    rows: usize,
    k: usize,
    n: usize,
) -> Result<(i32, i32, i32)> {
    gemm_dims(x, w, out, rows, k, n).map_err(|m| Error::cuda(format!("{gemm}: {m}")))
}

impl Gemms {
    /// `out[rows, n] = x[rows, k] · w[n, k]ᵀ (+ bias[n]) + beta · out` on cuBLASLt with a cached plan and
    /// heuristic result `algo` (beta 0: out is only written; 1: accumulated into, C = D in place).
    #[allow(clippy::too_many_arguments)]
    fn matmul(
        &self,
        algo: Algo,
        x: &CudaView<'_, f16>,
        w: &CudaView<'_, f16>,
        bias: Option<&CudaView<'_, f16>>,
        out: &mut CudaViewMut<'_, f16>,
        beta: f32,
        rows: usize,
        k: usize,
        n: usize,
    ) -> Result<()> {
        let stream = self.stream.cu_stream() as lt::cudaStream_t;
        let run = |handle, plan: &Plan, at: Addresses, gemm: &str| {
            let count = plan.algos.len();
            let (want, fallback) = match algo {
                Algo::Preferred(i) => (i, true),
                Algo::Exact(i) => (i, false),
            };
            let Some((i, fell_back)) = pick(count, want, fallback) else {
                return Err(Error::cuda(format!(
                    "{gemm}: algorithm {want} asked for, the heuristic offers {count}"
                )));
            };
            if fell_back && !FELL_BACK.swap(true, Ordering::Relaxed) {
                log::warn!(
                    "gemm-algo {want}, but cuBLASLt offers {count} algorithm(s) for {gemm}: using its \
                     first there (said once)"
                );
            }
            let alpha = 1f32;
            let ptr = |p: u64| p as usize as *const c_void;
            // SAFETY: dims checked x, w and out against the extents the layouts describe (and the bias
            // against n); every handle is live under the mutex; alpha and beta are host fp32 (the
            // descriptor's scale type, default host pointer mode); C = D = out with one layout and one
            // pointer (cuBLASLt's in-place case); the workspace is the allocation of the size the
            // heuristic was told.
            let s = unsafe {
                lt::cublasLtMatmul(
                    handle,
                    plan.desc.0,
                    &alpha as *const f32 as *const c_void,
                    ptr(at.a),
                    plan.a.0,
                    ptr(at.b),
                    plan.b.0,
                    &beta as *const f32 as *const c_void,
                    ptr(at.d),
                    plan.c.0,
                    ptr(at.d) as *mut c_void,
                    plan.c.0,
                    &plan.algos[i].algo,
                    ptr(at.workspace) as *mut c_void,
                    at.workspace_bytes,
                    stream,
                )
            };
            check(s, gemm, &format!("cublasLtMatmul (algorithm {i})"))
        };
        with_plan(self, x, w, bias, out, rows, k, n, run).map(drop)
    }

    /// `out[rows, n] = x[rows, k] · w[n, k]ᵀ`: fp16 in and out, fp32 accumulation, on the chosen path:
    /// cuBLASLt with a plan cached per shape, or cuBLAS `cublasGemmEx`.
    #[allow(clippy::too_many_arguments)]
    pub fn linear(
        &self,
        x: &CudaView<'_, f16>,
        w: &CudaView<'_, f16>,
        out: &mut CudaViewMut<'_, f16>,
        rows: usize,
        k: usize,
        n: usize,
    ) -> Result<()> {
        if self.choice.path == GemmPath::Lt {
            let algo = Algo::Preferred(self.choice.algo);
            return self.matmul(algo, x, w, None, out, 0.0, rows, k, n);
        }
        let (r, k, n) = dims("cuBLAS GEMM", x.len(), w.len(), out.len(), rows, k, n)?;
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
        unsafe { self.blas.gemm(cfg, w, x, out) }
            .map_err(|e| Error::cuda(format!("cuBLAS GEMM {rows}x{k}x{n}: {e}")).with_source(e))
    }

    /// `out[rows, n] = x[rows, k] · w[n, k]ᵀ + bias[n] + beta · out` with cuBLASLt's BIAS epilogue (fp32
    /// accumulation, one rounding to fp16): a cached plan, or on the cuBLAS path cudarc's
    /// `CudaBlasLT::matmul`.
    #[allow(clippy::too_many_arguments)]
    pub fn linear_bias(
        &self,
        x: &CudaView<'_, f16>,
        w: &CudaView<'_, f16>,
        bias: &CudaView<'_, f16>,
        out: &mut CudaViewMut<'_, f16>,
        beta: f32,
        rows: usize,
        k: usize,
        n: usize,
    ) -> Result<()> {
        if self.choice.path == GemmPath::Lt {
            let algo = Algo::Preferred(self.choice.algo);
            return self.matmul(algo, x, w, Some(bias), out, beta, rows, k, n);
        }
        let gemm = "cuBLASLt GEMM";
        let (r, _, _) = dims(gemm, x.len(), w.len(), out.len(), rows, k, n)?;
        plan::check_len("bias", bias.len(), n).map_err(|m| Error::cuda(format!("{gemm}: {m}")))?;
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
        unsafe { self.cudarc_lt()?.matmul(cfg, w, x, out, Some(bias), None) }.map_err(|e| {
            Error::cuda(format!("cuBLASLt GEMM+bias {rows}x{k}x{n}: {e}")).with_source(e)
        })
    }

    /// The algorithms cuBLASLt's heuristic offers for this GEMM (at most [`HEURISTIC_COUNT`], best guess
    /// first), from the cached plan (made now if needed). Empty for zero rows.
    #[allow(clippy::too_many_arguments)]
    pub fn lt_algorithms(
        &self,
        x: &CudaView<'_, f16>,
        w: &CudaView<'_, f16>,
        bias: Option<&CudaView<'_, f16>>,
        out: &mut CudaViewMut<'_, f16>,
        rows: usize,
        k: usize,
        n: usize,
    ) -> Result<Vec<LtAlgo>> {
        let list = |_, plan: &Plan, _, _: &str| {
            Ok(plan
                .algos
                .iter()
                .enumerate()
                .map(|(i, r)| LtAlgo::from_result(i, r))
                .collect())
        };
        Ok(with_plan(self, x, w, bias, out, rows, k, n, list)?.unwrap_or_default())
    }

    /// `out[rows, n] = x[rows, k] · w[n, k]ᵀ (+ bias[n])` on cuBLASLt with the heuristic's `algo`-th
    /// algorithm, whatever the chosen path: for benchmarks and tests of each algorithm. An `algo` the
    /// heuristic did not offer is an error.
    #[allow(clippy::too_many_arguments)]
    pub fn linear_lt(
        &self,
        algo: usize,
        x: &CudaView<'_, f16>,
        w: &CudaView<'_, f16>,
        bias: Option<&CudaView<'_, f16>>,
        out: &mut CudaViewMut<'_, f16>,
        rows: usize,
        k: usize,
        n: usize,
    ) -> Result<()> {
        self.matmul(Algo::Exact(algo), x, w, bias, out, 0.0, rows, k, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[test]
    fn the_wanted_algorithm_or_the_first() {
        assert_eq!(pick(8, 0, true), Some((0, false)));
        assert_eq!(pick(8, 7, false), Some((7, false)));
        assert_eq!(pick(3, 5, true), Some((0, true)));
        assert_eq!(pick(3, 5, false), None);
        assert_eq!(pick(0, 0, true), None);
    }

    #[test]
    fn workspace_follows_the_architecture() {
        assert_eq!(workspace_bytes(80), 4 << 20);
        assert_eq!(workspace_bytes(89), 4 << 20);
        assert_eq!(workspace_bytes(90), 32 << 20);
        assert_eq!(workspace_bytes(100), 32 << 20);
    }

    #[test]
    fn alignment_is_the_largest_power_of_two_up_to_256() {
        assert_eq!(alignment(0), 256);
        assert_eq!(alignment(0x7f00_0000_0000), 256);
        assert_eq!(alignment(0x7f00_0000_0080), 128);
        assert_eq!(alignment(0x7f00_0000_0302), 2);
        assert_eq!(alignment(0x7f00_0000_0010), 16);
        assert_eq!(alignment(1), 1);
    }

    /// outᵀ = w · xᵀ in column-major terms: A = w as [k, n] (op T gives [n, k] = m x k), B = x as
    /// [k, rows], D = out as [n, rows]; each leading dimension is the row-major row length.
    #[test]
    fn layouts_are_the_transposed_row_major_buffers() {
        let [a, b, d] = layouts(16343, 384, 1152);
        assert_eq!(a, (384, 1152, 384));
        assert_eq!(b, (384, 16343, 384));
        assert_eq!(d, (1152, 16343, 1152));
        // Each layout covers exactly its buffer: rows x cols = elements, ld = rows (packed).
        for ((r, c, ld), len) in [(a, 384 * 1152), (b, 16343 * 384), (d, 16343 * 1152)] {
            assert_eq!(r * c, len as u64);
            assert_eq!(ld as u64, r);
        }
    }

    fn key(rows: usize) -> PlanKey {
        PlanKey {
            rows,
            k: 384,
            n: 1152,
            bias: true,
            align: 256,
        }
    }

    /// A plan that counts how many plans were made and how many are still alive.
    struct Counted(Rc<Cell<usize>>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.set(self.0.get() - 1);
        }
    }

    #[test]
    fn a_hit_makes_nothing_and_a_miss_makes_one_plan() {
        let alive = Rc::new(Cell::new(0));
        let made = Cell::new(0);
        let make = || {
            made.set(made.get() + 1);
            alive.set(alive.get() + 1);
            Ok(Counted(alive.clone()))
        };
        let mut c = PlanCache::new(4);
        c.get_or_try_insert(key(10), make).unwrap();
        c.get_or_try_insert(key(10), make).unwrap();
        assert_eq!((made.get(), c.len(), alive.get()), (1, 1, 1));
        // Any field of the key makes a different plan.
        for k in [
            PlanKey {
                bias: false,
                ..key(10)
            },
            PlanKey {
                align: 16,
                ..key(10)
            },
            PlanKey { k: 1536, ..key(10) },
            PlanKey { n: 384, ..key(10) },
        ] {
            let mut c = PlanCache::new(4);
            c.get_or_try_insert(key(10), make).unwrap();
            c.get_or_try_insert(k, make).unwrap();
            assert_eq!(c.len(), 2, "{k:?}");
        }
    }

    #[test]
    fn a_full_cache_is_emptied_and_its_plans_dropped() {
        let alive = Rc::new(Cell::new(0));
        let make = || {
            alive.set(alive.get() + 1);
            Ok(Counted(alive.clone()))
        };
        let mut c = PlanCache::new(PLAN_CACHE_CAP);
        for rows in 1..=PLAN_CACHE_CAP {
            c.get_or_try_insert(key(rows), make).unwrap();
        }
        assert_eq!(
            (c.len(), alive.get(), c.clears),
            (PLAN_CACHE_CAP, PLAN_CACHE_CAP, 0)
        );
        // A hit on a full cache keeps everything.
        c.get_or_try_insert(key(1), make).unwrap();
        assert_eq!((c.len(), c.clears), (PLAN_CACHE_CAP, 0));
        // The next new key empties it first: every old plan is dropped (destroyed), one remains.
        c.get_or_try_insert(key(PLAN_CACHE_CAP + 1), make).unwrap();
        assert_eq!((c.len(), alive.get(), c.clears), (1, 1, 1));
        // Bounded over many batch sizes.
        for rows in 0..10 * PLAN_CACHE_CAP {
            c.get_or_try_insert(key(rows), make).unwrap();
            assert!(c.len() <= PLAN_CACHE_CAP);
        }
        assert_eq!(alive.get(), c.len());
        c.clear();
        assert_eq!(alive.get(), 0);
    }

    #[test]
    fn a_failed_plan_leaves_the_cache_as_it_was() {
        let mut c: PlanCache<PlanKey, u32> = PlanCache::new(2);
        c.get_or_try_insert(key(1), || Ok(1)).unwrap();
        c.get_or_try_insert(key(2), || Ok(2)).unwrap();
        let e = c
            .get_or_try_insert(key(3), || Err(Error::cuda("no algorithm")))
            .err()
            .unwrap();
        assert!(e.to_string().contains("no algorithm"));
        assert_eq!((c.len(), c.clears), (2, 0));
        assert_eq!(*c.get_or_try_insert(key(1), || Ok(9)).unwrap(), 1);
    }

    #[test]
    fn error_names_name_the_shape() {
        assert_eq!(
            gemm_name(true, 16343, 384, 1152),
            "cuBLASLt GEMM+bias 16343x384x1152"
        );
        let e = check(
            cublasStatus_t::CUBLAS_STATUS_NOT_SUPPORTED,
            &gemm_name(false, 5, 1536, 384),
            "cublasLtMatmul",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("cuBLASLt GEMM 5x1536x384: cublasLtMatmul: CUBLAS_STATUS_NOT_SUPPORTED"),
            "{e}"
        );
    }
}
