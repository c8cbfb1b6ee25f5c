"""Prints shell exports that point build.rs at the CUDA compiler packages from PyPI in this python:
XENC_NVRTC_LIB (libnvrtc) and XENC_CUDA_INCLUDE (cuda_fp16.h). Prints nothing if they are absent."""
import glob
import os

try:
    import nvidia.cuda_nvrtc as nvrtc
    import nvidia.cuda_runtime as runtime
except ImportError:
    raise SystemExit(0)

libs = sorted(glob.glob(os.path.join(list(nvrtc.__path__)[0], "lib", "libnvrtc.so.1*")))
include = os.path.join(list(runtime.__path__)[0], "include")
if libs and os.path.isfile(os.path.join(include, "cuda_fp16.h")):
    print(f"export XENC_NVRTC_LIB='{libs[0]}'")
    print(f"export XENC_CUDA_INCLUDE='{include}'")
