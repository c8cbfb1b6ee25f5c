"""NVRTC -> PTX -> ptxas -v for every kernels/*.cu; driven by scripts/check-kernels.sh.

usage: check_kernels.py KERNEL_DIR OUT_DIR
"""
import ctypes
import os
import re
import subprocess
import sys
import time

ARCHS = (80, 90)


def pkg_dir(name):
    import importlib
    return list(importlib.import_module("nvidia." + name).__path__)[0]


class Nvrtc:
    def __init__(self):
        self.lib = ctypes.CDLL(os.path.join(pkg_dir("cuda_nvrtc"), "lib", "libnvrtc.so.12"))
        self.lib.nvrtcGetErrorString.restype = ctypes.c_char_p

    def version(self):
        major, minor = ctypes.c_int(), ctypes.c_int()
        self.lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
        return f"{major.value}.{minor.value}"

    def compile(self, path, options):
        """Returns (ptx or None, log)."""
        lib, prog = self.lib, ctypes.c_void_p()
        with open(path, "rb") as f:
            src = f.read()
        rc = lib.nvrtcCreateProgram(ctypes.byref(prog), src, os.path.basename(path).encode(), 0, None, None)
        if rc != 0:
            return None, lib.nvrtcGetErrorString(rc).decode()
        try:
            opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
            rc = lib.nvrtcCompileProgram(prog, len(options), opts)
            size = ctypes.c_size_t()
            lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
            buf = ctypes.create_string_buffer(size.value)
            lib.nvrtcGetProgramLog(prog, buf)
            log = buf.value.decode(errors="replace").strip()
            if rc != 0:
                return None, log or lib.nvrtcGetErrorString(rc).decode()
            lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
            buf = ctypes.create_string_buffer(size.value)
            lib.nvrtcGetPTX(prog, buf)
            return buf.value.decode(), log
        finally:
            lib.nvrtcDestroyProgram(ctypes.byref(prog))


def parse_ptxas(log):
    """Entry name -> {regs, smem, spill_st, spill_ld, stack}, from `ptxas -v` output."""
    out, current = {}, None
    for line in log.splitlines():
        m = re.search(r"Compiling entry function '(\w+)'", line)
        if m:
            current = out.setdefault(m.group(1), {"regs": 0, "smem": 0, "spill_st": 0, "spill_ld": 0, "stack": 0})
            continue
        if current is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            current["stack"], current["spill_st"], current["spill_ld"] = map(int, m.groups())
        m = re.search(r"Used (\d+) registers", line)
        if m:
            current["regs"] = int(m.group(1))
            s = re.search(r"(\d+) bytes smem", line)
            current["smem"] = int(s.group(1)) if s else 0
    return out


def main():
    kernel_dir, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    t0 = time.time()
    nvrtc = Nvrtc()
    include = os.path.join(pkg_dir("cuda_runtime"), "include")
    ptxas = os.path.join(pkg_dir("cuda_nvcc"), "bin", "ptxas")
    ptxas_version = subprocess.run([ptxas, "--version"], capture_output=True, text=True).stdout.split("\n")
    ptxas_version = [l for l in ptxas_version if l.strip()][-1]
    print(f"NVRTC {nvrtc.version()}; ptxas: {ptxas_version}")

    sources = sorted(f for f in os.listdir(kernel_dir) if f.endswith(".cu"))
    rows, failures = [], []
    for src in sources:
        for arch in ARCHS:
            opts = [f"--gpu-architecture=compute_{arch}", "-default-device", "--std=c++17", "-lineinfo",
                    f"-I{kernel_dir}", f"-I{include}"]
            ptx, log = nvrtc.compile(os.path.join(kernel_dir, src), opts)
            if ptx is None:
                failures.append(f"{src} sm_{arch}: NVRTC error\n{log}")
                continue
            if "warning" in log:
                failures.append(f"{src} sm_{arch}: NVRTC warning\n{log}")
            stem = os.path.join(out_dir, f"{src[:-3]}.sm_{arch}")
            with open(stem + ".ptx", "w") as f:
                f.write(ptx)
            r = subprocess.run([ptxas, f"-arch=sm_{arch}", "-v", stem + ".ptx", "-o", stem + ".cubin"],
                               capture_output=True, text=True)
            with open(stem + ".ptxas.log", "w") as f:
                f.write(r.stdout + r.stderr)
            if r.returncode != 0:
                failures.append(f"{src} sm_{arch}: ptxas error\n{r.stdout}{r.stderr}")
                continue
            entries = parse_ptxas(r.stdout + r.stderr)
            if not entries:
                failures.append(f"{src} sm_{arch}: no entry point found")
            for name, e in sorted(entries.items()):
                rows.append((name, f"sm_{arch}", e))
                if e["spill_st"] or e["spill_ld"]:
                    failures.append(f"{name} sm_{arch}: spills {e['spill_st']} B stores, {e['spill_ld']} B loads")

    header = (f"{'kernel':<34} {'arch':<6} {'regs':>5} {'smem B':>7} {'stack B':>8} "
              f"{'spill st B':>11} {'spill ld B':>11}")
    print(header)
    print("-" * len(header))
    for name, arch, e in rows:
        print(f"{name:<34} {arch:<6} {e['regs']:>5} {e['smem']:>7} {e['stack']:>8} "
              f"{e['spill_st']:>11} {e['spill_ld']:>11}")
    print(f"{len(sources)} sources, {len(rows)} entry points x arch, {time.time() - t0:.1f} s; output in {out_dir}")
    for f in failures:
        print("FAIL: " + f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
