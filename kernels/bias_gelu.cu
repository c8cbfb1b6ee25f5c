// bias_gelu.cu — the FFN's first epilogue: x = gelu(x + bias), exact erf form, in place.
//
// Layout: x [rows,N] fp16 row-major (GEMM output, overwritten), bias [N] fp16.
// Math: v = x + b in fp32, 0.5 * v * (1 + erff(v / sqrt(2))) in fp32 (not the tanh approximation), one
//   rounding to fp16.
// Launch: elementwise, grid-stride over the rows * N / 2 half2 pairs; any grid.x >= 1, any blockDim.x <= 1024
//   (e.g. 256 threads, grid = min(ceil(pairs / 256), a few waves)). Dynamic shared memory: none.
// Preconditions (checked by Rust): N even, rows * N <= 2^31 - 1, pointers 4-byte aligned.
// Ownership: each thread owns whole half2 pairs; no two threads touch the same element.
//
// v1: grid-stride, half2 loads/stores, 32-bit index math.
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(1024)
bias_gelu_f16(__half* x, const __half* bias, int rows, int N) {
    if (rows <= 0 || N <= 0 || (N & 1) != 0) return;
    const unsigned int N2 = (unsigned int)N >> 1;
    const unsigned int pairs = (unsigned int)rows * N2;
    const unsigned int stride = gridDim.x * blockDim.x;
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < pairs; i += stride) {
        const unsigned int col = i % N2;
        const float2 v = load_half2(x + 2 * (size_t)i);
        const float2 b = load_half2(bias + 2 * col);
        store_half2(x + 2 * (size_t)i, gelu_erf(v.x + b.x), gelu_erf(v.y + b.y));
    }
}
