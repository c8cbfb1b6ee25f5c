#!/usr/bin/env bash
# The test command: fixtures (test checkpoint, compilers from PyPI), the kernel compile check, then
# every Rust test. Runs on a machine without a GPU or a CUDA toolkit; the GPU tests (tests/gpu.rs) show as
# ignored (scripts/gpu-check.sh runs them on a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${XENC_CACHE:-$HOME/.cache/xenc}
bash scripts/fixtures.sh --cuda-compilers

# The kernels must compile (NVRTC + ptxas, sm_80 and sm_90) with zero spills.
XENC_CUDA_PY=$CACHE/cuda-venv/bin/python bash scripts/check-kernels.sh
# ... and compute what they should: each kernel emulated on the CPU against a float64 reference.
bash dev/kernel-emulator/run.sh
# The tensor-core attention kernel with CPU models of mma.sync/ldmatrix/cp.async, under ASan and UBSan.
bash dev/attention-mma-model/run.sh

# Let build.rs compile the kernels to cubins with the same NVRTC.
eval "$("$CACHE/cuda-venv/bin/python" scripts/cuda_env.py)"

cargo test --release --all-targets "$@"
cargo test --release --doc
# The Python package (python/): its wheel built into a venv, then pytest.
bash scripts/python-test.sh
