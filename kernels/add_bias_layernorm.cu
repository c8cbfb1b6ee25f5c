// add_bias_layernorm.cu — the post-GEMM epilogue of BERT's attention output and FFN output.
//
//   out[r] = LayerNorm(x[r] + bias + residual[r])
//
// Layout: x [rows,H] (GEMM output without bias), residual [rows,H], out [rows,H], bias/gamma/beta [H];
//   all fp16 row-major.
// Math: the three terms are summed in fp32, mean and variance two-pass in fp32, eps from the argument.
// Aliasing: `out` may be the same buffer as `residual` (in place). Each thread writes only the elements it
//   read itself, after two block barriers, so no pointer here is __restrict__ and the row is fully read
//   before it is written.
// Launch: one block per row, grid-stride over rows (any grid.x >= 1; grid.x = rows is natural);
//   blockDim.x a multiple of 32, <= 1024 (e.g. 128). Dynamic shared memory: none.
// Preconditions (checked by Rust): H even, H <= 32 * blockDim.x, pointers 4-byte aligned. A block whose
//   shape does not fit returns without writing.
// Ownership: thread i holds pairs c = i, i + blockDim.x, ... of the row in registers.
//
// v1: fp32 sum, register-held row, two-pass block LayerNorm, in-place safe.
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(1024)
add_bias_residual_layernorm_f16(const __half* x, const __half* bias, const __half* residual,
                                const __half* gamma, const __half* beta, __half* out,
                                int rows, int H, float eps) {
    __shared__ float scratch[32];
    if (!layernorm_shape_ok(H)) return;
    const int H2 = H >> 1;

    for (int row = blockIdx.x; row < rows; row += gridDim.x) {
        float2 v[LN_MAX_PAIRS_PER_THREAD];
        load_sum3_pairs(v, x + (size_t)row * H, bias, residual + (size_t)row * H, H2);
        layernorm_pairs_store(v, gamma, beta, out + (size_t)row * H, H, eps, scratch);
    }
}
