#!/usr/bin/env bash
# Compile every kernels/*.cu with NVRTC for sm_80 and sm_90, assemble the PTX with ptxas -v, and print
# registers / static shared memory / spills per entry point. Exits 1 on any compile or ptxas error, NVRTC
# warning, or spill; 2 when the CUDA compiler packages are missing. Needs no GPU and no CUDA toolkit.
#
# Python interpreter: $XENC_CUDA_PY if set, else python3. It needs (tested with these versions):
#   nvidia-cuda-nvrtc-cu12==12.9.86 nvidia-cuda-nvcc-cu12==12.9.86 nvidia-cuda-runtime-cu12==12.9.79
# (libnvrtc, ptxas, and cuda_fp16.h — NVRTC 12.9 has no built-in cuda_fp16.h).
# PTX and ptxas logs go to target/kernels-check/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${XENC_CUDA_PY:-python3}"
PKGS="nvidia-cuda-nvrtc-cu12==12.9.86 nvidia-cuda-nvcc-cu12==12.9.86 nvidia-cuda-runtime-cu12==12.9.79"
if ! "$PY" -c 'import nvidia.cuda_nvrtc, nvidia.cuda_nvcc, nvidia.cuda_runtime' >/dev/null 2>&1; then
    echo "check-kernels: $PY lacks the CUDA compiler packages; install them with:" >&2
    echo "  $PY -m pip install $PKGS" >&2
    echo "(or point XENC_CUDA_PY at a python that has them)" >&2
    exit 2
fi
exec "$PY" scripts/check_kernels.py kernels target/kernels-check
