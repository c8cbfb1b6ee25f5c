//! Finding CUDA. Every library is checked with cudarc's presence test before its first call (cudarc
//! panics on a missing library; xenc returns an error), then the device is opened, and on first use the
//! process logs once (`log::info!`) what it loaded: driver, device, cuBLAS and the files they came from, and
//! which GEMM path runs (`XENC_GEMM`, see `gemm`).

use std::ffi::{c_void, CStr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use cudarc::cublas::CudaBlas;
use cudarc::driver::sys::CUdevice_attribute;
use cudarc::driver::{CudaContext, CudaStream};

use super::gemm::{GemmChoice, GemmPath, Gemms};
use super::modules::{self, Functions};
use crate::error::{Error, Result};
use crate::options::CudaOptions;

/// Ok(device count) if libcuda loads and at least one device answers; otherwise why not. Never panics.
pub fn probe() -> std::result::Result<usize, String> {
    // SAFETY: presence checks only dlopen candidate library names.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(
            "libcuda was not found (no NVIDIA driver on this machine, or not on the library path)"
                .into(),
        );
    }
    match CudaContext::device_count() {
        Ok(n) if n > 0 => Ok(n as usize),
        Ok(_) => Err("the NVIDIA driver reports no CUDA device".into()),
        Err(e) => Err(format!(
            "the NVIDIA driver reports no usable CUDA device ({e})"
        )),
    }
}

/// cuBLAS and cuBLASLt must be loadable before the first cuBLAS call.
fn require_blas() -> std::result::Result<(), String> {
    // SAFETY: presence checks only dlopen candidate library names.
    let blas = unsafe { cudarc::cublas::sys::is_culib_present() };
    let lt = unsafe { cudarc::cublaslt::sys::is_culib_present() };
    if blas && lt {
        return Ok(());
    }
    Err(format!(
        "{} not found: install the CUDA toolkit or the pip package nvidia-cublas-cu12 (or -cu13) and put its \
         lib directory on LD_LIBRARY_PATH",
        if blas { "libcublasLt" } else { "libcublas" }
    ))
}

/// The file an already-loaded library came from, via dladdr on `addr`, one of its symbols.
fn loaded_file(addr: *const c_void) -> Option<String> {
    // SAFETY: Dl_info is plain data that dladdr fills in; dli_fname is a C string owned by the loader.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(addr, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        Some(
            CStr::from_ptr(info.dli_fname)
                .to_string_lossy()
                .into_owned(),
        )
    }
}

/// `loaded_file` of `symbol` in a library cudarc holds (its `culib()`); "?" if unknown.
macro_rules! lib_file {
    ($culib:expr, $symbol:literal) => {{
        // SAFETY: the caller checked the library's presence, so culib() cannot panic; the symbol is only
        // used as an address.
        let lib = unsafe { $culib };
        match unsafe { lib.get::<unsafe extern "C" fn()>($symbol) } {
            Ok(sym) => loaded_file(*sym as *const c_void).unwrap_or_else(|| "?".into()),
            Err(_) => "?".to_string(),
        }
    }};
}

/// The directory with cuda_fp16.h for run-time NVRTC: $XENC_CUDA_INCLUDE, $CUDA_HOME/include,
/// $CUDA_PATH/include, next to the loaded libnvrtc (toolkit or pip layout), /usr/local/cuda/include.
pub(crate) fn cuda_include_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("XENC_CUDA_INCLUDE")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    for v in ["CUDA_HOME", "CUDA_PATH"] {
        dirs.extend(std::env::var_os(v).map(|p| Path::new(&p).join("include")));
    }
    // SAFETY: presence check only dlopens candidate names.
    if unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        let lib = lib_file!(cudarc::nvrtc::sys::culib(), b"nvrtcVersion");
        if let Some(dir) = Path::new(&lib).parent() {
            dirs.extend(
                [
                    "../include",
                    "../../cuda_runtime/include",
                    "../../cu13/include",
                ]
                .map(|d| dir.join(d)),
            );
        }
    }
    dirs.push("/usr/local/cuda/include".into());
    dirs.into_iter().find(|d| d.join("cuda_fp16.h").is_file())
}

/// What was opened, for `describe` and the banner.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    pub ordinal: usize,
    pub name: String,
    /// Compute capability as 10 · major + minor (90 for an H100).
    pub arch: u32,
    pub sm_count: u32,
}

impl DeviceInfo {
    /// e.g. "cuda:0 NVIDIA H100 80GB HBM3 (sm_90)".
    pub fn describe(&self) -> String {
        format!("cuda:{} {} (sm_{})", self.ordinal, self.name, self.arch)
    }
}

fn banner(info: &DeviceInfo, functions: &Functions, gemm: &GemmChoice) -> String {
    use cudarc::cublas::sys::{self as bsys, libraryPropertyType};
    let mut driver = 0;
    // SAFETY: libcuda is loaded (probe passed); cuDriverGetVersion writes one int.
    unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut driver) };
    let prop = |p| {
        let mut v = -1;
        // SAFETY: libcublas passed its presence check; cublasGetProperty writes one int.
        unsafe { bsys::cublasGetProperty(p, &mut v) };
        v
    };
    let (major, minor, patch) = (
        prop(libraryPropertyType::MAJOR_VERSION),
        prop(libraryPropertyType::MINOR_VERSION),
        prop(libraryPropertyType::PATCH_LEVEL),
    );
    let mut how: Vec<&str> = functions
        .how
        .iter()
        .map(|h| h.split(": ").nth(1).unwrap_or("?"))
        .collect();
    how.sort();
    how.dedup();
    format!(
        "CUDA driver {}.{} from {}, {} (sm_{}, {} SMs), cuBLAS {major}.{minor}.{patch} from {}, \
         cuBLASLt from {}, kernels {} loaded as {}, GEMMs on {}",
        driver / 1000,
        (driver % 1000) / 10,
        lib_file!(cudarc::driver::sys::culib(), b"cuInit"),
        info.name,
        info.arch,
        info.sm_count,
        lib_file!(bsys::culib(), b"cublasCreate_v2"),
        lib_file!(cudarc::cublaslt::sys::culib(), b"cublasLtCreate"),
        modules::build_summary(),
        how.join("/"),
        gemm.describe(),
    )
}

/// Maps a cudarc error to `Error::Cuda` with what was being done.
pub(crate) fn cuda_err<E: std::error::Error + Send + Sync + 'static>(
    what: &str,
) -> impl FnOnce(E) -> Error + '_ {
    move |e| Error::cuda(format!("{what}: {e}")).with_source(e)
}

/// One device with its streams, kernels, cuBLAS handle and GEMM state: what every launcher takes.
/// Kernels, GEMMs and the logits' copy go to `stream`; batch uploads go to `copy_stream`, ordered against
/// `stream` by explicit events (see `buffers::DeviceBatch::upload`), so cudarc's per-buffer event tracking
/// is switched off.
pub struct Gpu {
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) copy_stream: Arc<CudaStream>,
    pub(crate) f: Functions,
    pub(crate) blas: CudaBlas,
    /// The GEMM path (`XENC_GEMM`, read when the GPU is opened) with its cuBLASLt handles, workspace and
    /// plan cache (`gemm::Gemms`; the cache sits behind a mutex, so `Gpu` stays `Send + Sync`).
    pub(crate) gemm: Gemms,
    pub(crate) info: DeviceInfo,
    /// The kernel choices the launchers and the forward pass follow.
    pub(crate) options: CudaOptions,
}

static BANNER: Once = Once::new();

impl Gpu {
    /// Opens device `ordinal`: presence checks, context, stream, cuBLAS(Lt), kernel modules; `options`
    /// choose the kernels and the GEMM path.
    pub fn new(ordinal: usize, options: &CudaOptions) -> Result<Self> {
        let count = probe().map_err(Error::cuda)?;
        if ordinal >= count {
            return Err(Error::cuda(format!(
                "device cuda:{ordinal} does not exist ({count} device(s) found)"
            )));
        }
        require_blas().map_err(Error::cuda)?;
        let ctx = CudaContext::new(ordinal).map_err(cuda_err("creating the context"))?;
        // SAFETY: xenc orders its two streams itself with events (uploads on the copy stream, everything
        // else on the compute stream), so cudarc's automatic cross-stream events are not needed.
        unsafe { ctx.disable_event_tracking() };
        let attr = |a, what| ctx.attribute(a).map_err(cuda_err(what));
        let major = attr(
            CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
            "compute capability",
        )?;
        let minor = attr(
            CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
            "compute capability",
        )?;
        let sms = attr(
            CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            "SM count",
        )?;
        let info = DeviceInfo {
            ordinal,
            name: ctx.name().map_err(cuda_err("device name"))?,
            arch: (10 * major + minor) as u32,
            sm_count: sms.max(1) as u32,
        };
        let stream = ctx.new_stream().map_err(cuda_err("creating a stream"))?;
        let copy_stream = ctx
            .new_stream()
            .map_err(cuda_err("creating the copy stream"))?;
        let blas = CudaBlas::new(stream.clone())
            .map_err(|e| Error::cuda(format!("cuBLAS handle: {e}")).with_source(e))?;
        // A cuBLASLt workspace is up to 32 MiB (and cudarc's CudaBlasLT::new panics if it cannot get
        // its own): say so plainly when the device is that full.
        let (free, _) = ctx.mem_get_info().map_err(cuda_err("free memory"))?;
        if free < 64 << 20 {
            return Err(Error::cuda(format!(
                "{}: only {} MiB free",
                info.describe(),
                free >> 20
            )));
        }
        let choice = GemmChoice::from_options(options);
        let gemm = Gemms::new(&stream, info.arch, choice)?;
        let f = Functions::load(&ctx, info.arch)?;
        BANNER.call_once(|| log::info!("{}", banner(&info, &f, &choice)));
        Ok(Gpu {
            ctx,
            stream,
            copy_stream,
            f,
            blas,
            gemm,
            info,
            options: *options,
        })
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Makes this device's context current on the calling thread (cuBLAS needs it).
    pub fn bind(&self) -> Result<()> {
        self.ctx
            .bind_to_thread()
            .map_err(cuda_err("binding the context"))
    }

    /// Waits for all queued work; surfaces asynchronous kernel errors.
    pub fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(cuda_err("synchronize"))
    }

    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// The GEMM path and heuristic algorithm `linear` and `linear_bias` use.
    pub fn gemm_choice(&self) -> GemmChoice {
        self.gemm.choice
    }

    /// Switches the GEMM path of this GPU, for A/B tests and benchmarks in one process (the state the
    /// other path needs is made on its first use).
    pub fn set_gemm_path(&mut self, path: GemmPath) {
        self.gemm.choice.path = path;
    }
}

#[cfg(test)]
mod tests {
    /// Wherever this runs, probe answers without panicking; without a driver it says so.
    #[test]
    fn probe_never_panics() {
        match super::probe() {
            Ok(n) => assert!(n > 0),
            Err(why) => assert!(why.contains("libcuda") || why.contains("device"), "{why}"),
        }
    }

    #[test]
    fn device_description_format() {
        let info = super::DeviceInfo {
            ordinal: 0,
            name: "NVIDIA H100 80GB HBM3".into(),
            arch: 90,
            sm_count: 132,
        };
        assert_eq!(info.describe(), "cuda:0 NVIDIA H100 80GB HBM3 (sm_90)");
    }
}
