// bias_gelu.cu — the FFN's first epilogue: x = gelu(x + bias), exact erf form, in place.
//
// Layout: x [rows,N] fp16 row-major (GEMM output, overwritten), bias [N] fp16.
// Math: v = x + b in fp32, 0.5 * v * (1 + erf(v / sqrt(2))) in fp32 (gelu_erf in common.cuh: erf to
//   1.5e-7, not the tanh approximation), one rounding to fp16.
// Launch: 1-D, any grid.x >= 1 and blockDim.x <= 1024 with gridDim.x * blockDim.x < 2^32. Fastest as one
//   full wave that loops: `bias_gelu_launch` in src/cuda/plan/launch.rs gives min(work / 512 vectors, 4
//   blocks of 256 per SM) (__launch_bounds__(ROWWISE_MAX_THREADS = 1024) caps registers at 64, so 4 such
//   blocks are resident). No shared
//   memory.
// Preconditions (checked by Rust): N even, rows * N <= 2^31 - 1, pointers 4-byte aligned.
// Ownership: the matrix is read as vectors of N / 8 x 16 bytes per row when N % 8 == 0 and x, bias are
//   16-byte aligned (every real FFN width), else of N / 2 half2 pairs. With P = gridDim.x * blockDim.x
//   threads and NV vectors per row, thread t owns column t % NV of rows t / NV, t / NV + R, t / NV + 2R, ...
//   where R = P / NV (threads t >= R * NV idle); if P < NV, thread t owns columns t, t + P, ... of every
//   row. So a warp's accesses are consecutive vectors, the column's bias is read once into fp32 registers,
//   there is no division per element, and the thread handles BIAS_GELU_ROWS (constants.cuh) rows per
//   iteration, all loads issued before any is used. No two threads touch the same element.
#include "common.cuh"

template <int P>
__device__ __forceinline__ void bias_gelu_one(typename half_vec<P>::raw& v, const float2 (&b)[P]) {
#pragma unroll
    for (int k = 0; k < P; ++k) {
        const float2 f = pair_at<P>(v, k);
        set_pair<P>(v, k, gelu_erf(f.x + b[k].x), gelu_erf(f.y + b[k].y));
    }
}

// The [rows, NV] matrix of P-pair vectors, owned as the header says.
template <int P>
__device__ __forceinline__ void bias_gelu_columns(__half* x, const __half* bias, unsigned int rows,
                                                  unsigned int NV) {
    typedef typename half_vec<P>::raw V;
    const unsigned int threads = gridDim.x * blockDim.x;
    const unsigned int t = blockIdx.x * blockDim.x + threadIdx.x;
    unsigned int col = t, row = 0, row_step = 1, col_step = threads;
    if (threads >= NV) {
        col_step = NV;  // one column per thread
        row_step = threads / NV;
        row = t / NV;
        col = t - row * NV;
        if (row >= row_step) return;  // past the last whole set of NV threads
    }
    if (row >= rows) return;
    const unsigned int n = (rows - 1 - row) / row_step + 1;  // rows this thread visits in each of its columns
    const size_t step = (size_t)row_step * NV;
    for (; col < NV; col += col_step) {
        const V braw = reinterpret_cast<const V*>(bias)[col];
        float2 b[P];
#pragma unroll
        for (int k = 0; k < P; ++k) b[k] = pair_at<P>(braw, k);
        // BIAS_GELU_ROWS rows of the column per iteration, all loads issued before any math (separate
        // pointers, not p[u * step]: ptxas then keeps the loads back to back).
        V* ptr[BIAS_GELU_ROWS];
#pragma unroll
        for (int u = 0; u < BIAS_GELU_ROWS; ++u)
            ptr[u] = reinterpret_cast<V*>(x) + (size_t)(row + u * row_step) * NV + col;
        unsigned int left = n;
        for (; left >= BIAS_GELU_ROWS; left -= BIAS_GELU_ROWS) {
            V v[BIAS_GELU_ROWS];
#pragma unroll
            for (int u = 0; u < BIAS_GELU_ROWS; ++u) v[u] = *ptr[u];
#pragma unroll
            for (int u = 0; u < BIAS_GELU_ROWS; ++u) bias_gelu_one<P>(v[u], b);
#pragma unroll
            for (int u = 0; u < BIAS_GELU_ROWS; ++u) {
                *ptr[u] = v[u];
                ptr[u] += BIAS_GELU_ROWS * step;
            }
        }
        for (; left; --left, ptr[0] += step) {  // ptr[0] is at the next row not yet done
            V v0 = *ptr[0];
            bias_gelu_one<P>(v0, b);
            *ptr[0] = v0;
        }
    }
}

extern "C" __global__ void __launch_bounds__(ROWWISE_MAX_THREADS)
bias_gelu_f16(__half* x, const __half* bias, int rows, int N) {
    if (rows <= 0 || N <= 0 || (N & 1) != 0) return;
    if ((N & 7) == 0 && aligned16(x) && aligned16(bias)) {
        bias_gelu_columns<4>(x, bias, (unsigned int)rows, (unsigned int)N >> 3);
    } else {
        bias_gelu_columns<1>(x, bias, (unsigned int)rows, (unsigned int)N >> 1);
    }
}
