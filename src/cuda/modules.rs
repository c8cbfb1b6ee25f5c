//! The kernel modules: built by build.rs (fatbin from nvcc, or cubins + PTX from NVRTC) and always also
//! embedded as source. Each module is loaded once per backend: the cubin for the device's arch, else the
//! PTX (driver JIT), else the source compiled here with NVRTC for the device. Errors name the module.

use std::sync::Arc;

use cudarc::driver::{CudaContext, CudaFunction, CudaModule};
use cudarc::nvrtc::Ptx;

use super::device::cuda_include_dir;
use super::plan::ENTRIES;
use crate::error::{Error, Result};

// Which variants a build constructs depends on the compiler build.rs found.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImageKind {
    /// nvcc's fat binary: SASS for several archs plus PTX; the driver picks.
    Fatbin,
    /// SASS for `sm_XY` (the number is `10 * X + Y`).
    Cubin(u32),
    /// PTX for `compute_XY`, NUL-terminated; JIT-compiled by the driver on `XY` and newer.
    Ptx(u32),
}

pub(crate) struct Image {
    pub kind: ImageKind,
    pub bytes: &'static [u8],
}

/// One kernels/*.cu file: its source (common.cuh inlined) and whatever build.rs compiled from it.
pub(crate) struct KernelFile {
    pub name: &'static str,
    pub source: &'static str,
    pub images: &'static [Image],
}

include!(concat!(env!("OUT_DIR"), "/xenc_kernels.rs"));

/// How the kernels reached this binary, e.g. "NVRTC 12.9 at build time" or "sources only".
pub fn build_summary() -> String {
    match BUILD_COMPILER {
        Some(c) => format!("{c} at build time"),
        None => "sources only (NVRTC at first use)".to_string(),
    }
}

/// What build.rs did with the kernels, one line each: the compiler and archs, then ptxas's stack, spills,
/// registers and shared memory per entry point at sm_90 (or why nothing was compiled). build.rs prints it
/// only with XENC_BUILD_VERBOSE=1; the build output itself warns only of problems (no compiler, spills).
pub fn build_status() -> &'static str {
    include_str!(concat!(env!("OUT_DIR"), "/kernel_build.txt"))
}

/// Names of the kernel files compiled into this binary.
pub fn kernel_file_names() -> Vec<&'static str> {
    KERNEL_FILES.iter().map(|f| f.name).collect()
}

pub(crate) fn file(name: &str) -> Result<&'static KernelFile> {
    KERNEL_FILES
        .iter()
        .find(|f| f.name == name)
        .ok_or_else(|| Error::cuda(format!("kernel module {name}: not built into this binary")))
}

/// The image to try for a device of compute capability `arch` (10·major + minor): the cubin of the
/// highest arch with the same major version and a minor version not above the device's (SASS runs
/// there), else PTX for an arch not above the device's. A fatbin is always tried (the driver picks).
pub(crate) fn pick_image(images: &[Image], arch: u32) -> Option<&Image> {
    images
        .iter()
        .find(|i| i.kind == ImageKind::Fatbin)
        .or_else(|| {
            let cubin = |i: &&Image| matches!(i.kind, ImageKind::Cubin(a) if a / 10 == arch / 10 && a <= arch);
            images.iter().filter(cubin).max_by_key(|i| match i.kind {
                ImageKind::Cubin(a) => a,
                _ => 0,
            })
        })
        .or_else(|| images.iter().find(|i| matches!(i.kind, ImageKind::Ptx(a) if a <= arch)))
}

/// Loads module `name` into `ctx` for a device of arch `arch`; returns the module and how it was made.
pub(crate) fn load(
    ctx: &Arc<CudaContext>,
    name: &str,
    arch: u32,
) -> Result<(Arc<CudaModule>, String)> {
    let f = file(name)?;
    let mut tried = Vec::new();
    if let Some(img) = pick_image(f.images, arch) {
        match ctx.load_module(Ptx::from_binary(img.bytes.to_vec())) {
            Ok(m) => return Ok((m, format!("{:?}", img.kind))),
            Err(e) => tried.push(format!("{:?}: {e}", img.kind)),
        }
    }
    let cubin = nvrtc_cubin(f, arch).map_err(|e| {
        tried.push(format!("NVRTC: {e}"));
        Error::cuda(format!(
            "kernel module {name} cannot be loaded on sm_{arch}: {}",
            tried.join("; ")
        ))
    })?;
    let m = ctx.load_module(Ptx::from_binary(cubin)).map_err(|e| {
        Error::cuda(format!(
            "kernel module {name}: loading the NVRTC cubin for sm_{arch}: {e}"
        ))
    })?;
    Ok((m, format!("NVRTC {} at first use", super::nvrtc::version())))
}

/// Compiles the embedded source to a cubin for `sm_{arch}` with the NVRTC found at run time.
fn nvrtc_cubin(f: &KernelFile, arch: u32) -> std::result::Result<Vec<u8>, String> {
    // SAFETY: a presence check only dlopens candidate names.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err("libnvrtc not found (CUDA toolkit, or pip nvidia-cuda-nvrtc-cu12/-cu13, on LD_LIBRARY_PATH)".into());
    }
    let include = cuda_include_dir();
    let opts = super::nvrtc::options(&format!("sm_{arch}"), include.as_deref());
    super::nvrtc::compile(f.source, &format!("{}.cu", f.name), &opts).map(|(cubin, _log)| cubin)
}

/// Every kernel entry point of [`ENTRIES`], loaded once, found by name.
pub(crate) struct Functions {
    by_name: Vec<(&'static str, CudaFunction)>,
    /// How each module was obtained, e.g. "attention_varlen: Cubin(90)".
    pub how: Vec<String>,
}

impl Functions {
    pub fn load(ctx: &Arc<CudaContext>, arch: u32) -> Result<Self> {
        let mut how = Vec::new();
        let mut by_name = Vec::with_capacity(ENTRIES.len());
        let mut loaded: Vec<(&str, Arc<CudaModule>)> = Vec::new();
        for e in ENTRIES {
            let m = match loaded.iter().find(|(file, _)| *file == e.file) {
                Some((_, m)) => m.clone(),
                None => {
                    let (m, h) = load(ctx, e.file, arch)?;
                    how.push(format!("{}: {h}", e.file));
                    loaded.push((e.file, m.clone()));
                    m
                }
            };
            let f = m.load_function(e.name).map_err(|err| {
                Error::cuda(format!(
                    "kernel module {}: function {}: {err}",
                    e.file, e.name
                ))
                .with_source(err)
            })?;
            by_name.push((e.name, f));
        }
        Ok(Functions { by_name, how })
    }

    /// The entry point `name` (one of [`ENTRIES`]).
    pub fn get(&self, name: &str) -> Result<&CudaFunction> {
        self.by_name
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| f)
            .ok_or_else(|| Error::cuda(format!("{name}: no such kernel entry point")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_file_is_embedded_with_its_header_inlined() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| {
                e.unwrap()
                    .file_name()
                    .to_str()?
                    .strip_suffix(".cu")
                    .map(String::from)
            })
            .collect();
        on_disk.sort();
        assert_eq!(kernel_file_names(), on_disk);
        for f in KERNEL_FILES {
            for header in ["common.cuh", "constants.cuh", "mma_ptx.cuh"] {
                let include = format!("#include \"{header}\"");
                assert!(!f.source.contains(&include), "{}: {include}", f.name);
            }
            // Each header once, though common.cuh and the .cu file may both include it.
            assert_eq!(
                f.source.matches("#define ATTN_Q_TILE").count(),
                1,
                "{}",
                f.name
            );
            assert!(
                f.source.contains("layernorm_shape_ok")
                    && f.source.contains("#include <cuda_fp16.h>")
            );
            for img in f.images {
                assert!(!img.bytes.is_empty(), "{}: {:?}", f.name, img.kind);
            }
        }
        println!("kernels: {}\n{}", build_summary(), build_status());
        assert!(
            build_status().starts_with("kernels: "),
            "{}",
            build_status()
        );
    }

    #[test]
    fn image_choice_prefers_matching_sass_then_ptx() {
        static B: [u8; 1] = [1];
        let imgs = [
            Image {
                kind: ImageKind::Cubin(80),
                bytes: &B,
            },
            Image {
                kind: ImageKind::Cubin(86),
                bytes: &B,
            },
            Image {
                kind: ImageKind::Cubin(89),
                bytes: &B,
            },
            Image {
                kind: ImageKind::Cubin(90),
                bytes: &B,
            },
            Image {
                kind: ImageKind::Ptx(90),
                bytes: &B,
            },
        ];
        let pick = |arch| pick_image(&imgs, arch).map(|i| i.kind);
        assert_eq!(pick(90), Some(ImageKind::Cubin(90)));
        assert_eq!(pick(89), Some(ImageKind::Cubin(89)));
        assert_eq!(pick(87), Some(ImageKind::Cubin(86)));
        assert_eq!(pick(80), Some(ImageKind::Cubin(80)));
        assert_eq!(pick(100), Some(ImageKind::Ptx(90)));
        assert_eq!(pick(120), Some(ImageKind::Ptx(90)));
        assert_eq!(pick(75), None);
        let fat = [Image {
            kind: ImageKind::Fatbin,
            bytes: &B,
        }];
        assert_eq!(
            pick_image(&fat, 75).map(|i| i.kind),
            Some(ImageKind::Fatbin)
        );
        assert!(pick_image(&[], 90).is_none());
    }

    /// Build path (c): the embedded sources compile with the NVRTC found at run time. Runs where libnvrtc
    /// is on the library path (e.g. LD_LIBRARY_PATH at pip's nvidia/cuda_nvrtc/lib, XENC_CUDA_INCLUDE at
    /// nvidia/cuda_runtime/include); says so where it is not.
    #[test]
    fn embedded_sources_compile_with_the_runtime_nvrtc() {
        // SAFETY: a presence check only dlopens candidate names.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            println!("skipped: no libnvrtc on the library path");
            return;
        }
        for f in KERNEL_FILES {
            let cubin = nvrtc_cubin(f, 80).unwrap_or_else(|e| panic!("{}: {e}", f.name));
            assert_eq!(&cubin[..4], b"\x7fELF", "{}", f.name);
        }
    }
}
