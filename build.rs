//! Compiles kernels/*.cu at build time, so the CUDA backend needs no compiler where it runs.
//!
//! First path that works: (a) nvcc (PATH, $CUDA_HOME/bin, $CUDA_PATH/bin): a fatbin per file with SASS
//! for sm_80/86/89/90 and compute_90 PTX; (b) NVRTC (libnvrtc from $XENC_NVRTC_LIB, $CUDA_HOME/lib64,
//! or a bare dlopen of libnvrtc.so.13/.12; cuda_fp16.h from $XENC_CUDA_INCLUDE, $CUDA_HOME/include or
//! next to the library): a cubin per arch plus compute_90 PTX; (c) neither: nothing is compiled here,
//! and the crate compiles the sources with NVRTC at first use. The sources (common.cuh inlined, #line
//! kept) are embedded in every case, as the run-time last resort. A compiler that cannot build a tiny
//! probe is "not working" (a warning, then the next path); a kernel that fails with a working compiler
//! fails the build. XENC_KERNEL_COMPILER=nvcc|nvrtc|none forces one path.
//! Output: $OUT_DIR/xenc_kernels.rs (included by src/cuda/modules.rs) and the files it embeds, and
//! $OUT_DIR/kernel_constants.rs: kernels/constants.cuh as Rust constants (included by src/cuda/plan/mod.rs),
//! so the kernels and the launchers take tile sizes and block sizes from one file.
//!
//! What it did is written down, not shouted: which compiler built which kernels for which archs, and
//! ptxas's registers, shared memory and spills per entry point, go to $OUT_DIR/kernel_build.txt, which the
//! crate embeds (`xenc::cuda::kernels::build_status()`; `scripts/check-kernels.sh` prints the same table)
//! and which XENC_BUILD_VERBOSE=1 also prints as cargo warnings. Plain `cargo:warning`s are kept for what
//! needs attention: no working compiler (the kernels will be compiled at first use), a compiler that fails
//! its probe, and spills.

#[path = "src/cuda/nvrtc.rs"]
mod nvrtc;

use std::path::{Path, PathBuf};
use std::{env, fs, process::Command};

const SASS_ARCHS: [u32; 4] = [80, 86, 89, 90];
const PTX_ARCH: u32 = 90;
const ENV_VARS: &str =
    "XENC_KERNEL_COMPILER XENC_NVRTC_LIB XENC_CUDA_INCLUDE XENC_BUILD_VERBOSE CUDA_HOME \
    CUDA_PATH PATH";
const PROBE: &str = "#include <cuda_fp16.h>\n\
    extern \"C\" __global__ void probe(__half* p) { p[0] = __float2half(1.0f); }\n";

/// A kernel file: its stem and its source with local includes inlined.
struct Kernel {
    stem: String,
    source: String,
}

/// What a compiler made: its name; per kernel file, each image as (`ImageKind` variant, bytes); and
/// the `ptxas -v` output.
struct Built {
    compiler: String,
    images: Vec<Vec<(String, Vec<u8>)>>,
    ptxas_log: String,
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=kernels");
    ENV_VARS
        .split(' ')
        .for_each(|v| println!("cargo:rerun-if-env-changed={v}"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let kernels = read_kernels(Path::new("kernels"));
    let forced = env::var("XENC_KERNEL_COMPILER").unwrap_or_default();
    let allow = |path: &str| forced.is_empty() || forced == path;
    let mut built = if allow("nvcc") {
        with_nvcc(&kernels, &out)
    } else {
        None
    };
    if built.is_none() && allow("nvrtc") {
        built = with_nvrtc(&kernels);
    }
    let names: Vec<&str> = kernels.iter().map(|k| k.stem.as_str()).collect();
    let names = names.join(", ");
    let mut status = Vec::new();
    match &built {
        Some(b) => {
            let archs: Vec<String> = SASS_ARCHS.iter().map(|a| format!("sm_{a}")).collect();
            let archs = archs.join(", ");
            status.push(format!(
                "kernels: {} built {names} for {archs} + compute_{PTX_ARCH} PTX",
                b.compiler
            ));
            for line in ptxas_summary(&b.ptxas_log) {
                if spills(&line) {
                    warn(&format!("kernels spill registers: {line}"));
                }
                status.push(line);
            }
        }
        None => {
            let why = match forced.as_str() {
                "" => "no working nvcc or NVRTC at build time (XENC_NVRTC_LIB may name a libnvrtc.so.*)",
                _ => "no compiler tried or working (XENC_KERNEL_COMPILER)",
            };
            let msg = format!(
                "kernels: {why}; embedding the sources of {names}: NVRTC compiles them at first use"
            );
            if forced.is_empty() {
                warn(&msg);
            }
            status.push(msg);
        }
    }
    if env::var("XENC_BUILD_VERBOSE").is_ok_and(|v| v == "1") {
        status.iter().for_each(|l| warn(l));
    }
    fs::write(out.join("kernel_build.txt"), status.join("\n") + "\n").expect("OUT_DIR is writable");
    write_generated(&out, &kernels, built.as_ref());
    let constants = constants_rs(Path::new("kernels/constants.cuh"));
    fs::write(out.join("kernel_constants.rs"), constants).expect("OUT_DIR is writable");
}

fn warn(msg: &str) {
    println!("cargo:warning=xenc {msg}");
}

fn not_working<T>(what: &str, why: &str) -> Option<T> {
    let why = why.lines().take(6).collect::<Vec<_>>().join(" | ");
    warn(&format!(
        "kernels: {what} does not compile a probe ({why}); trying the next path"
    ));
    None
}

/// `$CUDA_HOME/sub` and `$CUDA_PATH/sub`, for those that are set.
fn cuda_dirs(sub: &str) -> Vec<PathBuf> {
    let homes = ["CUDA_HOME", "CUDA_PATH"]
        .into_iter()
        .filter_map(env::var_os);
    homes.map(|h| Path::new(&h).join(sub)).collect()
}

/// kernels/*.cu, sorted, each with every `#include "x"` of a file in kernels/ inlined between #line markers,
/// recursively and each file once (what `#pragma once` does).
fn read_kernels(dir: &Path) -> Vec<Kernel> {
    let names = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let names = names.filter_map(|e| e.ok()?.file_name().into_string().ok());
    let mut stems: Vec<String> = names
        .filter_map(|n| Some(n.strip_suffix(".cu")?.to_string()))
        .collect();
    stems.sort();
    assert!(!stems.is_empty(), "no kernels/*.cu found");
    let kernel = |stem: String| {
        let mut source = String::new();
        inline_file(dir, &format!("{stem}.cu"), &mut Vec::new(), &mut source);
        Kernel { stem, source }
    };
    stems.into_iter().map(kernel).collect()
}

/// Appends `name` (a file in `dir`) to `out` with its local includes inlined; `seen` holds the headers
/// already inlined, which later includes skip.
fn inline_file(dir: &Path, name: &str, seen: &mut Vec<String>, out: &mut String) {
    let path = dir.join(name);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for (i, line) in text.lines().enumerate() {
        let local = line
            .trim()
            .strip_prefix("#include \"")
            .and_then(|r| r.strip_suffix('"'))
            .filter(|h| dir.join(h).is_file());
        match local {
            Some(h) if seen.iter().any(|s| s == h) => out.push('\n'),
            Some(h) => {
                seen.push(h.to_string());
                *out += &format!("#line 1 \"{h}\"\n");
                inline_file(dir, h, seen, out);
                *out += &format!("#line {} \"{name}\"\n", i + 2);
            }
            None if line.trim() == "#pragma once" => out.push('\n'),
            None => *out += &format!("{line}\n"),
        }
    }
}

/// kernels/constants.cuh as Rust: each `#define NAME INTEGER` a `pub const`, u32 for names ending in
/// `_THREADS` (block sizes) and usize otherwise, documented by the comment lines just above it and its
/// trailing comment. Anything but comments, blank lines, `#pragma once` and such defines stops the build:
/// the file is the one source of these numbers for the kernels and the launchers alike.
fn constants_rs(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rs = String::from("// @generated by build.rs from kernels/constants.cuh\n");
    let mut doc: Vec<&str> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        let bad = || {
            panic!(
                "kernels/constants.cuh:{}: expected `#define NAME INTEGER`: {line}",
                i + 1
            )
        };
        if let Some(c) = line.strip_prefix("//") {
            doc.push(c.trim());
            continue;
        }
        if line.is_empty() || line == "#pragma once" {
            doc.clear();
            continue;
        }
        let (def, trailing) = line.split_once("//").unwrap_or((line, ""));
        let words: Vec<&str> = def.split_whitespace().collect();
        let ["#define", name, value] = words[..] else {
            bad()
        };
        if value.parse::<u64>().is_err()
            || !name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            bad();
        }
        for d in doc
            .drain(..)
            .chain((!trailing.trim().is_empty()).then(|| trailing.trim()))
        {
            rs += &format!("/// {d}\n");
        }
        let ty = if name.ends_with("_THREADS") {
            "u32"
        } else {
            "usize"
        };
        rs += &format!("pub const {name}: {ty} = {value};\n");
    }
    rs
}

fn with_nvcc(kernels: &[Kernel], out: &Path) -> Option<Built> {
    let path = env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = env::split_paths(&path).collect();
    dirs.extend(cuda_dirs("bin"));
    let nvcc = dirs
        .into_iter()
        .map(|d| d.join("nvcc"))
        .find(|f| f.is_file())?;
    let sass = SASS_ARCHS.iter().filter(|&&a| a != PTX_ARCH);
    let mut gencode: Vec<String> = sass
        .map(|a| format!("-gencode=arch=compute_{a},code=sm_{a}"))
        .collect();
    gencode.push(format!(
        "-gencode=arch=compute_{PTX_ARCH},code=[sm_{PTX_ARCH},compute_{PTX_ARCH}]"
    ));
    let run = |src: &Path, dst: &Path| {
        let mut c = Command::new(&nvcc);
        c.args([
            "-fatbin",
            "--std=c++17",
            "-lineinfo",
            "--ptxas-options=-v",
            "-Ikernels",
        ]);
        c.args(&gencode).arg("-o").arg(dst).arg(src).output()
    };
    let what = nvcc.display().to_string();
    fs::write(out.join("xenc_probe.cu"), PROBE).ok()?;
    match run(&out.join("xenc_probe.cu"), &out.join("xenc_probe.fatbin")) {
        Ok(o) if o.status.success() => {}
        Ok(o) => return not_working(&what, &String::from_utf8_lossy(&o.stderr)),
        Err(e) => return not_working(&what, &e.to_string()),
    }
    let (mut images, mut ptxas_log) = (Vec::new(), String::new());
    for k in kernels {
        let dst = out.join(format!("{}.fatbin", k.stem));
        let o = run(&Path::new("kernels").join(format!("{}.cu", k.stem)), &dst).expect("nvcc runs");
        let log = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(
            o.status.success(),
            "kernels/{}.cu fails with nvcc:\n{log}",
            k.stem
        );
        ptxas_log += &log;
        images.push(vec![(
            "Fatbin".to_string(),
            fs::read(&dst).expect("nvcc wrote the fatbin"),
        )]);
    }
    let version = Command::new(&nvcc)
        .arg("--version")
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    let version = String::from_utf8_lossy(&version);
    let release = version
        .split("release ")
        .nth(1)
        .and_then(|r| r.split(',').next());
    let compiler = format!("nvcc {}", release.unwrap_or("?"));
    Some(Built {
        compiler,
        images,
        ptxas_log,
    })
}

/// Makes libnvrtc loadable for cudarc and says which one: $XENC_NVRTC_LIB, else $CUDA_HOME/lib64/
/// libnvrtc.so*, is dlopened by path first and kept loaded (cudarc's later dlopen by name finds it by
/// its SONAME); else cudarc's own search by name (libnvrtc.so.13, .so.12, ...).
fn load_nvrtc() -> Option<String> {
    let mut paths: Vec<PathBuf> = env::var_os("XENC_NVRTC_LIB")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    for lib64 in cuda_dirs("lib64") {
        paths.extend(["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"].map(|n| lib64.join(n)));
    }
    // SAFETY: loading libnvrtc runs only its own initialisers; the handle stays loaded for cudarc.
    let loads = |p: &PathBuf| {
        unsafe { libloading::Library::new(p) }
            .map(std::mem::forget)
            .is_ok()
    };
    let found = paths.into_iter().find(loads);
    // SAFETY: a presence check only dlopens candidate names.
    let present = unsafe { cudarc::nvrtc::sys::is_culib_present() };
    present.then(|| found.map_or("libnvrtc by name".into(), |p| p.display().to_string()))
}

/// Where cuda_fp16.h is: $XENC_CUDA_INCLUDE, $CUDA_HOME/include, or next to the library (toolkit
/// `lib64/../include`, pip `nvidia/cuda_nvrtc/lib/../../cuda_runtime/include`).
fn cuda_include(lib: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = env::var_os("XENC_CUDA_INCLUDE")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    dirs.extend(cuda_dirs("include"));
    let libdir = Path::new(lib).parent().unwrap_or(Path::new("."));
    dirs.extend(["../include", "../../cuda_runtime/include"].map(|d| libdir.join(d)));
    dirs.push("/usr/local/cuda/include".into());
    dirs.into_iter().find(|d| d.join("cuda_fp16.h").is_file())
}

fn with_nvrtc(kernels: &[Kernel]) -> Option<Built> {
    let lib = load_nvrtc()?;
    let (version, include) = (nvrtc::version(), cuda_include(&lib));
    let opts = |arch: &str| {
        let mut o = nvrtc::options(arch, include.as_deref());
        o.extend(
            arch.starts_with("sm_")
                .then(|| "--ptxas-options=-v".to_string()),
        );
        o
    };
    if let Err(log) = nvrtc::compile(PROBE, "probe.cu", &opts("sm_80")) {
        return not_working(&format!("NVRTC {version} ({lib})"), &log);
    }
    let mut targets: Vec<(String, String)> = SASS_ARCHS
        .iter()
        .map(|a| (format!("sm_{a}"), format!("Cubin({a})")))
        .collect();
    targets.push((format!("compute_{PTX_ARCH}"), format!("Ptx({PTX_ARCH})")));
    let compile_file = |k: &Kernel| {
        let (mut images, mut log) = (Vec::new(), String::new());
        for (arch, kind) in &targets {
            let fail = |l| {
                panic!(
                    "kernels/{}.cu fails with NVRTC {version} -arch={arch}:\n{l}",
                    k.stem
                )
            };
            let compiled = nvrtc::compile(&k.source, &format!("{}.cu", k.stem), &opts(arch));
            let (image, l) = compiled.unwrap_or_else(fail);
            images.push((kind.clone(), image));
            log += &format!("{l}\n");
        }
        (images, log)
    };
    let results: Vec<(Vec<_>, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = kernels
            .iter()
            .map(|k| s.spawn(|| compile_file(k)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let ptxas_log = results.iter().map(|r| r.1.as_str()).collect();
    let images = results.into_iter().map(|r| r.0).collect();
    Some(Built {
        compiler: format!("NVRTC {version}"),
        images,
        ptxas_log,
    })
}

/// Whether a line of [`ptxas_summary`] reports spill stores or loads ("N bytes spill ..." with N > 0).
fn spills(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .windows(3)
        .any(|w| w[1] == "bytes" && w[2] == "spill" && w[0] != "0")
}

/// One line per entry point at sm_90 from `ptxas -v` output: spills, registers, shared memory.
fn ptxas_summary(log: &str) -> Vec<String> {
    let (mut lines, mut current) = (Vec::new(), None::<String>);
    for l in log.lines() {
        if let Some(rest) = l.split("Compiling entry function '").nth(1) {
            let at_ptx_arch = rest.contains(&format!("'sm_{PTX_ARCH}'")) || !rest.contains("for '");
            current = at_ptx_arch.then(|| rest.split('\'').next().unwrap_or("?").to_string());
        } else if let Some(name) = current.as_ref().filter(|_| l.contains("spill stores")) {
            let numbers = l.trim_start_matches(|c: char| !c.is_ascii_digit());
            lines.push(format!("ptxas sm_{PTX_ARCH} {name}: {numbers}"));
        } else if let (Some(name), Some(used)) = (&current, l.split("Used ").nth(1)) {
            let (used, tag) = (used.trim(), format!(" {name}: "));
            match lines.last_mut().filter(|last| last.contains(&tag)) {
                Some(last) => *last = format!("{last}; {used}"),
                None => lines.push(format!("ptxas sm_{PTX_ARCH}{tag}{used}")),
            }
            current = None;
        }
    }
    lines.sort();
    lines.dedup();
    lines
}

fn write_generated(out: &Path, kernels: &[Kernel], built: Option<&Built>) {
    let dir = out.join("kernels");
    fs::create_dir_all(&dir).expect("OUT_DIR is writable");
    let embed = |file: &str, bytes: &[u8]| {
        fs::write(dir.join(file), bytes).expect("OUT_DIR is writable");
        format!("concat!(env!(\"OUT_DIR\"), \"/kernels/{file}\")")
    };
    let compiler = built.map_or("None".into(), |b| format!("Some({:?})", b.compiler));
    let mut rs = format!(
        "// @generated by build.rs\npub(crate) const BUILD_COMPILER: Option<&str> = {compiler};\n"
    );
    rs += "pub(crate) static KERNEL_FILES: &[KernelFile] = &[\n";
    for (i, k) in kernels.iter().enumerate() {
        let source = embed(&format!("{}.cu", k.stem), k.source.as_bytes());
        rs += &format!(
            "    KernelFile {{ name: {:?}, source: include_str!({source}), images: &[\n",
            k.stem
        );
        for (j, (kind, bytes)) in built
            .map_or(&[][..], |b| &b.images[i][..])
            .iter()
            .enumerate()
        {
            let bytes = embed(&format!("{}.{j}.bin", k.stem), bytes);
            rs += &format!(
                "        Image {{ kind: ImageKind::{kind}, bytes: include_bytes!({bytes}) }},\n"
            );
        }
        rs += "    ] },\n";
    }
    fs::write(out.join("xenc_kernels.rs"), rs + "];\n").expect("OUT_DIR is writable");
}
