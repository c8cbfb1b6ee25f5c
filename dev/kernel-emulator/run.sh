#!/usr/bin/env bash
# Runs every kernel of kernels/ on the CPU (one OS thread per CUDA thread, real block barriers and warp
# shuffles, fp16 as _Float16) against float64 references, on ragged lengths 1..512 (and, at head_dim 64, 2,100 in full and 8,192 [CLS]-only), both head_dims,
# [CLS]-only attention, in-place LayerNorm and grids smaller or larger than the work. Needs g++ (C++20).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mkdir -p "$out/gen"
for f in "$root"/kernels/*.cu; do
    if grep -q '#include "mma_ptx.cuh"' "$f"; then
        echo "kernel-emulator: skipping $(basename "$f"): its inline PTX (mma.sync, ldmatrix, cp.async) cannot" \
            "run on the CPU; tests/gpu.rs checks it on a GPU, dev/attention-mma-model models its fragments"
        continue
    fi
    # Dynamic shared memory becomes a static buffer of the emulator.
    sed 's/extern __shared__ float \([a-z_]*\)\[\];/float* \1 = dyn_smem;/' "$f" >"$out/gen/$(basename "$f")"
done
g++ -std=c++20 -O2 -fno-strict-aliasing -pthread -I"$here/shim" -I"$root/kernels" -I"$out" -w \
    "$here/emu.cpp" -o "$out/emu"
"$out/emu"
