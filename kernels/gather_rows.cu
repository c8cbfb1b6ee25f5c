// gather_rows.cu — dst[i] = src[rows[i]] (takes each pair's [CLS] row out of the hidden states).
//
// Layout: src [*,H] fp16 row-major, rows int32 [n] (row indices into src), dst [n,H] fp16 row-major.
// Launch: elementwise, grid-stride over the n * H / 2 half2 pairs; any grid.x >= 1, any blockDim.x <= 1024.
//   Dynamic shared memory: none.
// Preconditions (checked by Rust): H even, n * H <= 2^31 - 1, every rows[i] a valid row of src, dst not
//   overlapping src, pointers 4-byte aligned.
// Ownership: each thread copies whole half2 pairs.
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(1024)
gather_rows_f16(const __half* src, const int* rows, __half* dst, int n, int H) {
    if (n <= 0 || H <= 0 || (H & 1) != 0) return;
    const unsigned int H2 = (unsigned int)H >> 1;
    const unsigned int pairs = (unsigned int)n * H2;
    const unsigned int stride = gridDim.x * blockDim.x;
    const __half2* src2 = reinterpret_cast<const __half2*>(src);
    __half2* dst2 = reinterpret_cast<__half2*>(dst);
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < pairs; i += stride) {
        const unsigned int r = i / H2;
        const unsigned int c = i - r * H2;
        dst2[i] = src2[(size_t)rows[r] * H2 + c];
    }
}
