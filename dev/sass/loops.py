"""Instruction counts of a kernel's loops, from its SASS: the static measure the kernels' v-notes quote.

usage: python3 dev/sass/loops.py CUBIN [KERNEL...]
CUBIN comes from scripts/check-kernels.sh (target/kernels-check/NAME.sm_90.cubin). Needs cuobjdump on
PATH or in $CUOBJDUMP (no GPU: PyPI's nvidia-cuda-cuobjdump wheel has one, under nvidia/cu13/bin).
For every backward branch (a loop's back edge) prints the span it closes: first and last address, the
number of instructions in it, and how many of them are HMMA, MUFU, LDSM, LDGSTS and BAR.
"""
import os
import re
import subprocess
import sys

LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")


def sass(cubin, kernel):
    tool = os.environ.get("CUOBJDUMP", "cuobjdump")
    out = subprocess.run([tool, "-sass", "-fun", kernel, cubin], capture_output=True, text=True, check=True)
    return [(int(a, 16), ins) for a, ins in LINE.findall(out.stdout)]


def kernels(cubin):
    tool = os.environ.get("CUOBJDUMP", "cuobjdump")
    out = subprocess.run([tool, "-sass", cubin], capture_output=True, text=True, check=True).stdout
    return re.findall(r"Function : (\w+)", out)


def main():
    cubin, names = sys.argv[1], sys.argv[2:] or kernels(sys.argv[1])
    for name in names:
        code = sass(cubin, name)
        print(f"{name}: {len(code)} instructions")
        for addr, ins in code:
            m = re.search(r"\bBRA\s+(?:\S+,\s*)?0x([0-9a-f]+)", ins)
            if not m or int(m.group(1), 16) >= addr:
                continue
            lo = int(m.group(1), 16)
            body = [i for a, i in code if lo <= a <= addr]
            counts = ", ".join(f"{op} {sum(1 for i in body if op in i.split()[0] + ' ' + i)}"
                               for op in ("HMMA", "MUFU", "LDSM", "LDGSTS", "BAR."))
            print(f"  loop 0x{lo:04x}-0x{addr:04x}: {len(body)} instructions; {counts}")


if __name__ == "__main__":
    main()
