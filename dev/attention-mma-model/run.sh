#!/usr/bin/env bash
# Runs the tensor-core kernels (kernels/attention_mma.cu, kernels/gemm_bias_gelu.cu) on the CPU with the PTX
# wrappers of kernels/mma_ptx.cuh (the block between "// ---- PTX wrappers" and "// ---- end of PTX
# wrappers") replaced by CPU models of cp.async, ldmatrix(.trans) and mma.m16n8k16
# written from the PTX ISA's fragment tables, on the kernel emulator's thread-per-CUDA-thread runtime, and
# checks the results against a float64 reference (and, under AddressSanitizer, every global and shared
# index). Needs g++ (C++20). scripts/test.sh runs it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mkdir -p "$out/gen"
# The PTX wrappers live in kernels/mma_ptx.cuh between two markers; the generated copy keeps the rest of it.
hdr=$root/kernels/mma_ptx.cuh
begin=$(grep -c '^// ---- PTX wrappers' "$hdr" || true)
end=$(grep -c '^// ---- end of PTX wrappers' "$hdr" || true)
[[ $begin == 1 && $end == 1 ]] || { echo "attention-mma-model: PTX wrapper markers not found once in $hdr" >&2; exit 1; }
sed '/^\/\/ ---- PTX wrappers/,/^\/\/ ---- end of PTX wrappers/d' "$hdr" >"$out/gen/mma_ptx.cuh"
cp "$root/kernels/attention_mma.cu" "$root/kernels/gemm_bias_gelu.cu" "$out/gen/"
if grep -qE '\basm\b' "$out"/gen/*; then
    echo "attention-mma-model: inline assembly outside the PTX wrapper block of kernels/mma_ptx.cuh" >&2
    exit 1
fi
san=${XENC_MODEL_SANITIZE:--fsanitize=address,undefined}
g++ -std=c++20 -O1 -g -fno-strict-aliasing -pthread $san -I"$root/dev/kernel-emulator/shim" -I"$root/kernels" \
    -I"$out" -w "$here/model.cpp" -o "$out/model"
ASAN_OPTIONS=detect_leaks=0 "$out/model"
