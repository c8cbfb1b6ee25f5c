//! The CUDA fp16 backend (in progress).
