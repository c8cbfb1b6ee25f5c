//! The handle every launcher takes: [`Gpu`] opens one device after the presence checks of `device`
//! (context, streams, the kernel modules, the GEMM state) and, on first use, logs once (`log::info!`) what
//! it loaded: driver, device, cuBLAS and the files they came from, and which GEMM path runs
//! ([`CudaOptions::gemm`], see `gemm`).

use std::sync::{Arc, Once};

use cudarc::driver::sys::CUdevice_attribute;
use cudarc::driver::{CudaContext, CudaStream, DevicePtr};

use super::device::{self, cuda_err, lib_file, probe, require_blas, DeviceInfo};
use super::gemm::{GemmChoice, GemmPath, Gemms};
use super::modules::{self, Functions};
use crate::error::{Error, Result};
use crate::options::CudaOptions;

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

/// One device with its streams, kernels and GEMM state: what every launcher takes.
/// Kernels, GEMMs and the logits' copy go to `stream`; batch uploads go to `copy_stream`, ordered against
/// `stream` by explicit events (see `buffers::DeviceBatch::upload`), so cudarc's per-buffer event tracking
/// is switched off.
pub struct Gpu {
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    pub(crate) copy_stream: Arc<CudaStream>,
    pub(crate) f: Functions,
    /// The GEMM path ([`CudaOptions::gemm`]) with its cuBLAS(Lt) handles, workspace and plan cache
    /// (`gemm::Gemms`; the cache sits behind a mutex, so `Gpu` stays `Send + Sync`).
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

    /// The device address of a buffer (see [`device::addr`]).
    pub(crate) fn addr<T>(&self, x: &impl DevicePtr<T>) -> u64 {
        device::addr(&self.stream, x)
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
