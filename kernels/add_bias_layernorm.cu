// add_bias_layernorm.cu — the post-GEMM epilogue of BERT's attention output and FFN output.
//
//   out[r] = LayerNorm(x[r] + bias + residual[r])      add_bias_residual_layernorm_f16
//   out[r] = LayerNorm(x[r])                           layernorm_f16 (an A/B candidate, CudaOptions::residual
//                                                      = gemm: the GEMM has already added bias and residual
//                                                      into x, in place)
//
// Layout: x [rows,H] (GEMM output without bias), residual [rows,H], out [rows,H], bias/gamma/beta [H];
//   all fp16 row-major.
// Math: the three terms are summed in fp32 in that order, mean and variance two-pass in fp32, eps from the
//   argument, one rounding to fp16. In the half2 path a lane's fp32 partial sums cover its pairs c = lane +
//   32 j; the 16-byte path gives each lane different elements of the row, so its partial sums of the mean
//   and variance add the same values in another order (then the same xor-butterfly shuffles): the two
//   paths' results may differ by that fp32 summation order only, nothing else.
// Aliasing: `out` may be the same buffer as `residual` (in place). Each lane writes only the elements it
//   read itself, after the row's two reductions, so no pointer here is __restrict__ and the row is fully
//   read before it is written.
// Launch: blockDim.x a multiple of 32, <= 1024 (e.g. 128); any grid.x >= 1 with gridDim.x * blockDim.x
//   < 2^30; rows grid-stride. Fastest as one full wave: `layernorm_launch_on` in src/cuda/plan/launch.rs
//   gives min(rows / rows per block, 8 blocks of 128 per SM) (__launch_bounds__(ROWWISE_MAX_THREADS = 1024)
//   caps registers at 64, so 8 such blocks are resident), so each warp loops over rows and prefetches. No
//   shared memory, no block barrier.
// Preconditions (checked by Rust): H even, H <= 64 * LN_MAX_PAIRS_PER_LANE (1024), pointers 4-byte aligned.
//   A block whose shape does not fit returns without writing.
// Ownership: H % 8 == 0, H <= 512 and all six pointers 16-byte aligned (MiniLM's 384 with the crate's
//   buffers): the 16-byte layout of common.cuh — L = ln_wide_lanes(H / 8) lanes per row (H = 384: 32, lanes
//   0-15 holding 2 vectors of 8, lanes 16-31 one), 32 / L rows per warp; the warp loads x and residual of its
//   next row while it reduces and writes the current one, the bias (L1-resident) when used. Otherwise the
//   half2 layout: one warp per row, lane i holding pairs c = i, i + 32, ... in registers.
#include "common.cuh"

// The rows of row r for the wide layout, summed x + bias + residual: x[r] and residual[r] streamed, the
// bias (b) cache-resident.
struct AddBiasRows {
    const __half *x, *bias, *residual;
    size_t H;
    typedef unsigned Ref;
    enum { LATE = 1 };
    __device__ __forceinline__ Ref ref(unsigned r) const { return r; }
    __device__ __forceinline__ const __half* first(Ref r) const { return x + r * H; }
    __device__ __forceinline__ const __half* second(Ref r) const { return residual + r * H; }
    __device__ __forceinline__ const __half* late(Ref) const { return bias; }
};

extern "C" __global__ void __launch_bounds__(ROWWISE_MAX_THREADS)
add_bias_residual_layernorm_f16(const __half* x, const __half* bias, const __half* residual,
                                const __half* gamma, const __half* beta, __half* out,
                                int rows, int H, float eps) {
    if (!layernorm_shape_ok(H) || rows <= 0) return;
    if (ln_wide_shape_ok(H) && aligned16(x) && aligned16(bias) && aligned16(residual) && aligned16(gamma) &&
        aligned16(beta) && aligned16(out)) {
        const AddBiasRows R = {x, bias, residual, (size_t)H};
        layernorm3_rows_wide(R, rows, H, gamma, beta, out, eps);
        return;
    }
    const int H2 = H >> 1;
    const int lane = threadIdx.x & 31;
    const int warps = blockDim.x >> 5;
    for (int row = blockIdx.x * warps + (threadIdx.x >> 5); row < rows; row += gridDim.x * warps) {
        float2 v[LN_MAX_PAIRS_PER_LANE];
        load_sum3_pairs(v, x + (size_t)row * H, bias, residual + (size_t)row * H, H2, lane);
        layernorm_pairs_store(v, gamma, beta, out + (size_t)row * H, H, eps, lane);
    }
}

// The one row of row r for layernorm_f16 (LATE == 0: second and late are never read).
struct OneRow {
    const __half* x;
    size_t H;
    typedef unsigned Ref;
    enum { LATE = 0 };
    __device__ __forceinline__ Ref ref(unsigned r) const { return r; }
    __device__ __forceinline__ const __half* first(Ref r) const { return x + r * H; }
    __device__ __forceinline__ const __half* second(Ref) const { return nullptr; }
    __device__ __forceinline__ const __half* late(Ref) const { return nullptr; }
};

extern "C" __global__ void __launch_bounds__(ROWWISE_MAX_THREADS)
layernorm_f16(const __half* x, const __half* gamma, const __half* beta, __half* out, int rows, int H, float eps) {
    if (!layernorm_shape_ok(H) || rows <= 0) return;
    if (ln_wide_shape_ok(H) && aligned16(x) && aligned16(gamma) && aligned16(beta) && aligned16(out)) {
        const OneRow R = {x, (size_t)H};
        layernorm3_rows_wide(R, rows, H, gamma, beta, out, eps);
        return;
    }
    const int H2 = H >> 1;
    const int lane = threadIdx.x & 31;
    const int warps = blockDim.x >> 5;
    for (int row = blockIdx.x * warps + (threadIdx.x >> 5); row < rows; row += gridDim.x * warps) {
        float2 v[LN_MAX_PAIRS_PER_LANE];
        load_pairs(v, x + (size_t)row * H, H2, lane);
        layernorm_pairs_store(v, gamma, beta, out + (size_t)row * H, H, eps, lane);
    }
}
