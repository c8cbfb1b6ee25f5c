//! One NVRTC compile through cudarc, to a cubin or to PTX. Shared by build.rs (`#[path]`) and the
//! run-time fallback in `modules`, so the kernels are compiled the same way in both places. Callers
//! check `cudarc::nvrtc::sys::is_culib_present()` first (cudarc panics when libnvrtc is missing).

use std::ffi::CString;
use std::path::Path;

use cudarc::nvrtc::{result, sys};

/// NVRTC options: C++17, device code by default, line info (for compute-sanitizer), the directory with
/// cuda_fp16.h if known, and `-arch=sm_XY` (a cubin) or `-arch=compute_XY` (PTX).
pub fn options(arch: &str, include: Option<&Path>) -> Vec<String> {
    let mut o: Vec<String> = ["--std=c++17", "-default-device", "-lineinfo"]
        .map(String::from)
        .to_vec();
    o.extend(include.map(|d| format!("-I{}", d.display())));
    o.push(format!("-arch={arch}"));
    o
}

/// The library's version, e.g. "12.9".
pub fn version() -> String {
    let (mut major, mut minor) = (0, 0);
    // SAFETY: nvrtcVersion writes two ints; the caller checked that libnvrtc is present.
    unsafe { sys::nvrtcVersion(&mut major, &mut minor) };
    format!("{major}.{minor}")
}

/// Compiles `src` (`name` in diagnostics) with `opts`: Ok((image, log)) or Err(log). With a
/// `-arch=compute_XY` option the image is PTX (NUL-terminated, as cuModuleLoadData takes it), else a
/// cubin.
pub fn compile(src: &str, name: &str, opts: &[String]) -> Result<(Vec<u8>, String), String> {
    let ptx = opts.iter().any(|o| o.starts_with("-arch=compute_"));
    let src = CString::new(src).map_err(|e| e.to_string())?;
    let name = CString::new(name).map_err(|e| e.to_string())?;
    let prog = result::create_program(&src, Some(&name)).map_err(|e| e.to_string())?;
    // SAFETY: prog lives until destroy_program; every buffer has the size NVRTC reported for it.
    unsafe {
        let compiled = result::compile_program(prog, opts);
        let log = result::get_program_log(prog).unwrap_or_default();
        let log: Vec<u8> = log
            .into_iter()
            .map(|c| c as u8)
            .take_while(|&c| c != 0)
            .collect();
        let log = String::from_utf8_lossy(&log).trim().to_string();
        let image = compiled.is_ok().then(|| {
            let mut n = 0;
            let mut buf = Vec::new();
            if ptx {
                sys::nvrtcGetPTXSize(prog, &mut n);
                buf.resize(n, 0u8);
                sys::nvrtcGetPTX(prog, buf.as_mut_ptr().cast());
            } else {
                sys::nvrtcGetCUBINSize(prog, &mut n);
                buf.resize(n, 0u8);
                sys::nvrtcGetCUBIN(prog, buf.as_mut_ptr().cast());
            }
            buf
        });
        let _ = result::destroy_program(prog);
        match image {
            Some(i) if !i.is_empty() => Ok((i, log)),
            _ => Err(if log.is_empty() {
                format!("{compiled:?}")
            } else {
                log
            }),
        }
    }
}
