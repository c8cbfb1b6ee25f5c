// add_bias_layernorm.cu — the post-GEMM epilogue of BERT's attention output and FFN output.
//
//   out[r] = LayerNorm(x[r] + bias + residual[r])
//
// Layout: x [rows,H] (GEMM output without bias), residual [rows,H], out [rows,H], bias/gamma/beta [H];
//   all fp16 row-major.
// Math: the three terms are summed in fp32, mean and variance two-pass in fp32, eps from the argument.
// Aliasing: `out` may be the same buffer as `residual` (in place). Each lane writes only the elements it
//   read itself, after the warp's two reductions, so no pointer here is __restrict__ and the row is fully
//   read before it is written.
// Launch: one warp per row, blockDim.x / 32 rows per block, grid-stride over rows (any grid.x >= 1;
//   ceil(rows / warps per block) is natural); blockDim.x a multiple of 32, <= 1024 (e.g. 128).
//   No shared memory, no block barrier.
// Preconditions (checked by Rust): H even, H <= 64 * LN_MAX_PAIRS_PER_LANE (1024), pointers 4-byte aligned.
//   A block whose shape does not fit returns without writing.
// Ownership: lane i of the row's warp holds half2 pairs c = i, i + 32, ... of the row in registers.
//
// v1: fp32 sum, register-held row, two-pass block LayerNorm, in-place safe (one block per row: 50 µs for
//     16,343 rows of 384 on an H200, latency-bound on its block barriers).
// v2: one warp per row, shuffles only.
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(1024)
add_bias_residual_layernorm_f16(const __half* x, const __half* bias, const __half* residual,
                                const __half* gamma, const __half* beta, __half* out,
                                int rows, int H, float eps) {
    if (!layernorm_shape_ok(H)) return;
    const int H2 = H >> 1;
    const int lane = threadIdx.x & 31;
    const int warps = blockDim.x >> 5;

    for (int row = blockIdx.x * warps + (threadIdx.x >> 5); row < rows; row += gridDim.x * warps) {
        float2 v[LN_MAX_PAIRS_PER_LANE];
        load_sum3_pairs(v, x + (size_t)row * H, bias, residual + (size_t)row * H, H2, lane);
        layernorm_pairs_store(v, gamma, beta, out + (size_t)row * H, H, eps, lane);
    }
}
