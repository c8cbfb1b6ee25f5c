// gemm_bias_gelu.cu — the FFN's first half in one kernel: y = gelu_erf(x . W^T + b), erf GELU, fp16 in and out.
//
// Layout: x [M, K] fp16 row-major (the hidden states), W [N, K] fp16 row-major (PyTorch Linear weight), b [N]
//   fp16, y [M, N] fp16 row-major.
// Math: products of fp16 on tensor cores (mma.sync m16n8k16) with fp32 accumulation over all of K; + b and
//   gelu_erf (common.cuh, the bias_gelu kernel's formula) in fp32; one rounding to fp16. Against linear +
//   bias_gelu, the only difference is that the GEMM's fp32 sum is not rounded to fp16 before the GELU.
// Launch: 1-D grid of (N / GBG_BN) * ceil(M / GBG_BM) blocks (block b: column block b % (N / GBG_BN), row
//   block b / (N / GBG_BN), so neighbouring blocks share x rows in L2), blockDim.x = GBG_THREADS exactly
//   (gemm_bias_gelu_w64_f16: GBG_W64_THREADS).
//   Static shared memory: GBG_STAGES * (GBG_BM + GBG_BN) * GBG_BK * 2 bytes = 48 KiB.
// Entries: gemm_bias_gelu_f16 (CudaOptions::ffn_in = fused) and gemm_bias_gelu_w64_f16 (fused-w64), both A/B
//   candidates not yet run on a GPU; the default runs cuBLASLt's GEMM and then bias_gelu.cu.
// Preconditions (checked by Rust): K % GBG_BK == 0, N % GBG_BN == 0, M >= 1; x, W, b, y 16-byte aligned.
// Ownership: a block computes the 128 x 128 tile of y at (row block, column block). Warp w (of 8) owns rows
//   64 * (w / 4) .. +63 and columns 32 * (w % 4) .. +31 of it: 4 x 4 mma tiles of 16 x 8, 64 fp32
//   accumulators per lane (the w64 entry: warp w of 4 owns rows 64 * (w / 2) .. +63, columns 64 * (w % 2)
//   .. +63, 4 x 8 tiles, 128 accumulators). K is walked in tiles of 32 through a GBG_STAGES-deep cp.async ring: the x tile
//   (128 rows x 32, rows past M zero-filled) and the W tile (128 rows x 32) of k-tile i land in stage
//   i % GBG_STAGES; at step i a thread waits for its own copies of tile i, the block meets (everyone's
//   copies visible, everyone done with step i - 1's stage), tile i + GBG_STAGES - 1 is issued into that
//   stage, then tile i is multiplied. Fragments as attention_mma.cu's: x rows as its Q rows (ldmatrix.x4),
//   W rows as its K rows (ldmatrix.x4 gives both 16-wide k-steps of one 8-column n-tile); tiles are
//   [rows][32] fp16 with swizzle<32> (mma_ptx.cuh). Epilogue in registers: lane (g, t) of the warp holds
//   rows g and g + 8, columns 2t and 2t + 1 of each 16 x 8 tile; it adds b, applies gelu_erf and stores
//   the fp16 pair (rows past M are not written).
#include "common.cuh"
#include "mma_ptx.cuh"

// The tile (GBG_BM x GBG_BN of y per block, GBG_BK of K per pipeline stage, GBG_STAGES stages) and the
// threads per block (GBG_THREADS: 8 warps, 2 (rows) x 4 (columns), each 64 x 32; GBG_W64_THREADS: 4 warps,
// 2 x 2, each 64 x 64): constants.cuh.

static_assert(GBG_BM == 128 && GBG_BN == 128 && GBG_BK == 32, "the warp layouts below");

// Issues this thread's cp.async copies of k-tile `kt` into stage buffers sa, sb (not committed).
template <int THREADS>
__device__ __forceinline__ void gbg_load_tile(__half* sa, __half* sb, const __half* x, const __half* w, int M,
                                              int K, int m0, int n0, int kt) {
    const int k0 = kt * GBG_BK;
#pragma unroll
    for (int i = 0; i < GBG_BM * 4 / THREADS; ++i) {  // 4 chunks of 16 bytes per 32-wide row
        const int idx = threadIdx.x + i * THREADS;
        const int r = idx >> 2, c = idx & 3;
        const bool ok = m0 + r < M;
        cp_async_16(sa + swizzle<32>(r, c), x + (size_t)(ok ? m0 + r : 0) * K + k0 + 8 * c, ok ? 16 : 0);
        cp_async_16(sb + swizzle<32>(r, c), w + (size_t)(n0 + r) * K + k0 + 8 * c, 16);
    }
}

// WN: columns per warp (32: 8 warps of 64 x 32; 64: 4 warps of 64 x 64). Warps are laid out 2 (rows) x
// GBG_BN / WN (columns); each holds 4 x WN/8 fp32 accumulator tiles of 16 x 8.
template <int WN>
__device__ __forceinline__ void gemm_bias_gelu_impl(const __half* x, const __half* w, const __half* bias,
                                                    __half* y, int M, int N, int K) {
    constexpr int WARPS_N = GBG_BN / WN, THREADS = 64 * WARPS_N, NT = WN / 8;
    static_assert(WN == 32 || WN == 64, "64 x 32 or 64 x 64 warp tiles");
    __shared__ __align__(16) __half sa[GBG_STAGES][GBG_BM * GBG_BK];
    __shared__ __align__(16) __half sb[GBG_STAGES][GBG_BN * GBG_BK];
    if (M <= 0 || N % GBG_BN != 0 || K % GBG_BK != 0) return;
    const int col_blocks = N / GBG_BN;
    const int m0 = (blockIdx.x / col_blocks) * GBG_BM, n0 = (blockIdx.x % col_blocks) * GBG_BN;
    if (m0 >= M) return;  // block-uniform
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;
    const int wm = 64 * (warp / WARPS_N), wn = WN * (warp % WARPS_N);  // the warp's rows and columns
    const int num_k = K / GBG_BK;

    float acc[4][NT][4];
#pragma unroll
    for (int mt = 0; mt < 4; ++mt)
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) acc[mt][nt][0] = acc[mt][nt][1] = acc[mt][nt][2] = acc[mt][nt][3] = 0.0f;

#pragma unroll
    for (int s = 0; s < GBG_STAGES - 1; ++s) {
        if (s < num_k) gbg_load_tile<THREADS>(sa[s], sb[s], x, w, M, K, m0, n0, s);
        cp_async_commit();  // empty groups keep the count: group i is k-tile i
    }
    for (int kt = 0; kt < num_k; ++kt) {
        cp_async_wait_group<GBG_STAGES - 2>();  // this thread's copies of k-tile kt have landed
        __syncthreads();  // everyone's copies are visible; everyone is done with step kt - 1's stage
        const int next = kt + GBG_STAGES - 1;
        if (next < num_k)
            gbg_load_tile<THREADS>(sa[next % GBG_STAGES], sb[next % GBG_STAGES], x, w, M, K, m0, n0, next);
        cp_async_commit();
        const __half* ta = sa[kt % GBG_STAGES];
        const __half* tb = sb[kt % GBG_STAGES];
        // W fragments of the warp's n-tiles: regs 0, 1 = k-step 0 (k 0..15), regs 2, 3 = k-step 1.
        unsigned bf[NT][4];
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) ldmatrix_x4(bf[nt], tb + swizzle<32>(wn + 8 * nt + (lane & 7), lane >> 3));
#pragma unroll
        for (int ks = 0; ks < 2; ++ks) {
#pragma unroll
            for (int mt = 0; mt < 4; ++mt) {
                unsigned af[4];
                ldmatrix_x4(af, ta + swizzle<32>(wm + 16 * mt + (lane & 7) + 8 * ((lane >> 3) & 1), 2 * ks + (lane >> 4)));
#pragma unroll
                for (int nt = 0; nt < NT; ++nt) mma_16816(acc[mt][nt], af, bf[nt][2 * ks], bf[nt][2 * ks + 1]);
            }
        }
    }
    cp_async_wait_all();  // no copy may still target shared memory when the block exits

#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
        const int col = n0 + wn + 8 * nt + 2 * t;
        const float2 b = load_half2(bias + col);
#pragma unroll
        for (int mt = 0; mt < 4; ++mt) {
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const int row = m0 + wm + 16 * mt + g + 8 * r;
                if (row < M) {
                    const __half2 v = __floats2half2_rn(gelu_erf(acc[mt][nt][2 * r] + b.x),
                                                        gelu_erf(acc[mt][nt][2 * r + 1] + b.y));
                    *reinterpret_cast<__half2*>(y + (size_t)row * N + col) = v;
                }
            }
        }
    }
}

extern "C" __global__ void __launch_bounds__(GBG_THREADS, 2)
gemm_bias_gelu_f16(const __half* x, const __half* w, const __half* bias, __half* y, int M, int N, int K) {
    gemm_bias_gelu_impl<32>(x, w, bias, y, M, N, K);
}

// The second A/B entry (CudaOptions::ffn_in = fused-w64): 4 warps of 64 x 64. Per 32-wide k-tile a warp
// issues 16 ldmatrix.x4 for 64 mma (the 64 x 32 layout: 12 for 32), so shared-memory reads per mma drop by a third, the usual
// CUTLASS sm80 shape; 128 accumulators per lane, 2 blocks per SM.
extern "C" __global__ void __launch_bounds__(GBG_W64_THREADS, 2)
gemm_bias_gelu_w64_f16(const __half* x, const __half* w, const __half* bias, __half* y, int M, int N, int K) {
    gemm_bias_gelu_impl<64>(x, w, bias, y, M, N, K);
}
