//! The ground floor of the CUDA backend: whether CUDA is here at all (libcuda, a device, cuBLAS), where
//! its libraries and headers were found, what was opened, and the two conversions every other file uses:
//! a cudarc error into `Error::Cuda`, and a buffer into its device address. Every library is checked with
//! cudarc's presence test before its first call (cudarc panics on a missing library; xenc returns an
//! error). Nothing here imports the rest of `cuda/`.

use std::ffi::{c_void, CStr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaStream, DevicePtr};

use crate::error::Error;

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
pub(crate) fn require_blas() -> std::result::Result<(), String> {
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
pub(crate) fn loaded_file(addr: *const c_void) -> Option<String> {
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
            Ok(sym) => $crate::cuda::device::loaded_file(*sym as *const std::ffi::c_void).unwrap_or_else(|| "?".into()),
            Err(_) => "?".to_string(),
        }
    }};
}
pub(crate) use lib_file;

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

/// Maps a cudarc error to `Error::Cuda` with what was being done.
pub(crate) fn cuda_err<E: std::error::Error + Send + Sync + 'static>(
    what: &str,
) -> impl FnOnce(E) -> Error + '_ {
    move |e| Error::cuda(format!("{what}: {e}")).with_source(e)
}

/// The device address of a buffer. xenc orders its streams itself with event tracking off, so the guard
/// cudarc returns has nothing to record and is dropped at once.
pub(crate) fn addr<T>(stream: &Arc<CudaStream>, x: &impl DevicePtr<T>) -> u64 {
    let (p, _guard) = x.device_ptr(stream);
    p
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
