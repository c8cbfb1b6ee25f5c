"""NVRTC -> PTX -> ptxas -v for every kernels/*.cu, and the PTX of each GPU-verified entry point held to
the hash recorded in KERNEL_DIR/VERIFIED.tsv; driven by scripts/check-kernels.sh.

usage: check_kernels.py KERNEL_DIR OUT_DIR
       check_kernels.py --ptx-hash KERNEL_DIR FILE.cu ENTRY   (the hash of one entry, for VERIFIED.tsv)
"""
import ctypes
import hashlib
import os
import re
import subprocess
import sys
import time

ARCHS = (80, 90)
# The PTX that VERIFIED.tsv's hashes are taken of: compute_90 from NVRTC 12.9 with the options below.
HASH_ARCH = 90
HASH_NVRTC = "12.9"


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


def compile_options(kernel_dir, include, arch):
    return [f"--gpu-architecture=compute_{arch}", "-default-device", "--std=c++17", "-lineinfo",
            f"-I{kernel_dir}", f"-I{include}"]


def entry_text(ptx, name):
    """The PTX of entry `name` with what does not change the code normalised away: comments, line info and
    debug sections; the entry's own name (parameters are named after it); label numbers (they count the
    module's functions); virtual register numbers (renumbered by first use); the names of the shared and
    global variables it uses (declared in the function or at module scope, depending on whether other
    entries use them), which are renamed in order of use and their declarations put first."""
    lines = []
    for line in ptx.split("\n"):
        line = line.split("//", 1)[0].strip()
        if line.startswith(".section"):
            break  # the debug sections close the module
        if line and not line.startswith((".loc", ".file")):
            lines.append(line)
    decl = re.compile(r"^\.(shared|global|const)\b.*?([A-Za-z_$][\w$]*)\s*(\[[^\]]*\])?\s*(=.*)?;$")
    module_vars, funcs, current, depth = {}, {}, None, 0
    for line in lines:
        if current is None:
            m = re.search(r"\.(entry|func)\s+(?:\(.*?\)\s*)?([A-Za-z_$][\w$]*)", line)
            if m:
                current = m.group(2)
                funcs[current] = []
            else:
                d = decl.match(line)
                if d:
                    module_vars[d.group(2)] = line
                continue
        funcs[current].append(line)
        depth += line.count("{") - line.count("}")
        if depth == 0 and "}" in line:
            current = None
    if name not in funcs:
        return None
    body, local_vars = [], {}
    for line in funcs[name]:
        d = decl.match(line)
        if d:
            local_vars[d.group(2)] = line
        else:
            body.append(line)
    declared = {**module_vars, **local_vars}
    used = []
    for tok in re.findall(r"[A-Za-z_$][\w$]*", "\n".join(body)):
        if tok in declared and tok not in used:
            used.append(tok)
    text = "\n".join([declared[v] for v in used] + body)
    for k, v in enumerate(used):
        text = re.sub(r"(?<![\w$])" + re.escape(v) + r"(?![\w$])", f"VAR{k}", text)
    text = re.sub(r"(?<![\w$])" + re.escape(name) + r"(?=_param_|\b)", "ENTRY", text)
    text = re.sub(r"\$L__BB\d+_", "$L__BB_", text)
    text = re.sub(r"(%[a-z]+)<\d+>", r"\1<N>", text)
    names, counts = {}, {}

    def renumber(m):
        if m.group(0) not in names:
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
            names[m.group(0)] = f"{m.group(1)}{counts[m.group(1)]}"
        return names[m.group(0)]

    return re.sub(r"(%[a-z]+)(\d+)\b", renumber, text)


def ptx_hash(ptx, name):
    """sha256 of entry_text, its first 16 hex digits; None if the PTX has no such entry."""
    text = entry_text(ptx, name)
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()[:16]


def read_verified(path):
    """VERIFIED.tsv rows as dicts (columns named by its header line); # lines are comments."""
    rows, header = [], None
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            cells = line.rstrip("\n").split("\t")
            if header is None:
                header = cells
            else:
                rows.append(dict(zip(header, cells)))
    return rows


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


def ptx_hash_mode(kernel_dir, src, entry):
    nvrtc = Nvrtc()
    include = os.path.join(pkg_dir("cuda_runtime"), "include")
    ptx, log = nvrtc.compile(os.path.join(kernel_dir, src), compile_options(kernel_dir, include, HASH_ARCH))
    if ptx is None:
        print(log, file=sys.stderr)
        return 1
    h = ptx_hash(ptx, entry)
    if h is None:
        print(f"{src} has no entry {entry}", file=sys.stderr)
        return 1
    print(f"{h}  {entry} in {src}, compute_{HASH_ARCH} PTX from NVRTC {nvrtc.version()}")
    return 0


def main():
    if sys.argv[1] == "--ptx-hash":
        return ptx_hash_mode(*sys.argv[2:5])
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
    rows, failures, hash_ptx = [], [], {}
    for src in sources:
        for arch in ARCHS:
            opts = compile_options(kernel_dir, include, arch)
            ptx, log = nvrtc.compile(os.path.join(kernel_dir, src), opts)
            if ptx is None:
                failures.append(f"{src} sm_{arch}: NVRTC error\n{log}")
                continue
            if "warning" in log:
                failures.append(f"{src} sm_{arch}: NVRTC warning\n{log}")
            if arch == HASH_ARCH:
                hash_ptx[src] = ptx
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
    failures += check_verified(kernel_dir, hash_ptx, nvrtc.version())
    for f in failures:
        print("FAIL: " + f, file=sys.stderr)
    return 1 if failures else 0


def check_verified(kernel_dir, hash_ptx, version):
    """Each entry of VERIFIED.tsv must compile to the PTX that was verified on a GPU (its recorded hash):
    a change to a default kernel's code fails here until it is verified again or made an A/B candidate."""
    path = os.path.join(kernel_dir, "VERIFIED.tsv")
    verified = read_verified(path)
    if version != HASH_NVRTC:
        return [f"{path}: its PTX hashes are NVRTC {HASH_NVRTC}'s; this is NVRTC {version}"]
    failures = []
    print(f"\nGPU-verified entry points ({path}): PTX compute_{HASH_ARCH}, normalised, sha256")
    for row in verified:
        entry, want = row["entry"], row["ptx_sha256"]
        have = [h for h in (ptx_hash(p, entry) for p in hash_ptx.values()) if h]
        got = have[0] if len(have) == 1 else None
        status = "ok" if got == want else "CHANGED" if got else "MISSING"
        print(f"{entry:<34} {want}  {got or '-':<16}  {status}  ({row['report']})")
        if status != "ok":
            failures.append(f"{entry}: PTX {got or 'not found'} is not the one verified on a GPU ({want}, "
                            f"{row['report']}): run scripts/gpu-check.sh on it and record the new hash, or "
                            f"restore the verified code and make the change an A/B candidate")
    return failures


if __name__ == "__main__":
    sys.exit(main())
