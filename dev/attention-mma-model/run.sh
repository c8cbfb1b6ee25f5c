#!/usr/bin/env bash
# Runs kernels/attention_mma.cu on the CPU with its PTX wrappers (the block between "// ---- PTX wrappers"
# and "// ---- end of PTX wrappers") replaced by CPU models of cp.async, ldmatrix(.trans) and mma.m16n8k16
# written from the PTX ISA's fragment tables, on the kernel emulator's thread-per-CUDA-thread runtime, and
# checks the results against a float64 reference (and, under AddressSanitizer, every global and shared
# index). Needs g++ (C++20). scripts/test.sh runs it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
mkdir -p "$out/gen"
src=$root/kernels/attention_mma.cu
begin=$(grep -c '^// ---- PTX wrappers' "$src" || true)
end=$(grep -c '^// ---- end of PTX wrappers' "$src" || true)
[[ $begin == 1 && $end == 1 ]] || { echo "attention-mma-model: PTX wrapper markers not found once in $src" >&2; exit 1; }
sed '/^\/\/ ---- PTX wrappers/,/^\/\/ ---- end of PTX wrappers/d' "$src" >"$out/gen/attention_mma.cu"
if grep -qE '\basm\b' "$out/gen/attention_mma.cu"; then
    echo "attention-mma-model: inline assembly outside the PTX wrapper block" >&2
    exit 1
fi
san=${XENC_MODEL_SANITIZE:--fsanitize=address,undefined}
g++ -std=c++20 -O1 -g -fno-strict-aliasing -pthread $san -I"$root/dev/kernel-emulator/shim" -I"$root/kernels" \
    -I"$out" -w "$here/model.cpp" -o "$out/model"
ASAN_OPTIONS=detect_leaks=0 "$out/model"
