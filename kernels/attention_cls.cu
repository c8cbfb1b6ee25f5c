// attention_cls.cu — attention for each pair's [CLS] query only (the last layer), one warp per (pair, head).
//
// Same function as attention_varlen.cu / attention_mma.cu with Queries::ClsOnly: for pair p (rows
// cu_seqlens[p] .. cu_seqlens[p+1] of qkv, length L = 1..ATTN_CLS_MAX_LEN) and head h:
//   ctx[p, h*D : (h+1)*D] = softmax(scale * q . K^T) . V,   q = Q of the pair's first row ([CLS]).
// Layout: qkv [T, 3H] fp16 row-major, each row Q(H) | K(H) | V(H), head h at columns h*D of each part,
//   H = num_heads * D. ctx [n, H] fp16 row-major. cu_seqlens int32 [n+1] from 0.
// Math: q . k in fp32 from fp16 q and k, times scale * log2(e); the max, exp2 and the sum in fp32; P stays
//   fp32 (unlike the mma kernel, which rounds P to fp16 for its P.V product); O in fp32, divided by the sum
//   and rounded to fp16 once.
// Launch: blockDim.x = 32 * ATTN_CLS_WARPS exactly, grid.x = ceil(n * num_heads / ATTN_CLS_WARPS); warps
//   past the last (pair, head) return. Static shared memory: ATTN_CLS_WARPS * ATTN_CLS_MAX_LEN floats (8 KiB).
// Preconditions (checked by Rust): every pair's length <= ATTN_CLS_MAX_LEN (longer batches take the
//   general kernels; a longer pair would be cut to its first ATTN_CLS_MAX_LEN keys, never overrun); qkv and ctx 16-byte aligned (rows are then 16-byte aligned since H % 8 == 0).
// Ownership: warp w = (pair, head) with p = w / num_heads, h = w % num_heads. Every lane holds all of q
//   (fp16, D / 2 registers).
//   Scores: lane i computes keys i, i + 32, ..., a full D-long dot product each from 16-byte loads of its
//   K row, into the warp's row of shared memory; the max and the sum are warp reductions, and each lane
//   turns its own scores into probabilities in place. P.V: lane i owns output dims D/32 * i ..
//   D/32 * (i + 1) - 1; for each key j every lane reads p_j (a broadcast) and its dims of V row j (one
//   coalesced 64- or 128-byte row per key).
//
// v1: replaces the 64-query mma tiles (one live query of 64, 25 µs for 143 pairs x 12 heads on an H100,
//     2026-11-26) in the last layer.
#include "common.cuh"

#define ATTN_CLS_MAX_LEN 512
#define ATTN_CLS_WARPS 4  // warps per block: blockDim.x = 32 * ATTN_CLS_WARPS exactly
#define ATTN_CLS_LOG2E 1.44269504088896340736f

template <int D>
__device__ __forceinline__ void attention_cls(const __half* __restrict__ qkv, __half* __restrict__ ctx,
                                              const int* __restrict__ cu_seqlens, int n, int num_heads,
                                              float scale) {
    constexpr int DIMS_PER_LANE = D / 32;
    static_assert(D % 32 == 0 && D % 8 == 0, "head_dim a multiple of 32");
    const int lane = threadIdx.x & 31;
    const long long w = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (w >= (long long)n * num_heads) return;
    const int p = (int)(w / num_heads), h = (int)(w % num_heads);
    const int start = cu_seqlens[p];
    const int len = min(cu_seqlens[p + 1] - start, ATTN_CLS_MAX_LEN);
    const int H = num_heads * D;
    const size_t row = 3 * (size_t)H;
    const __half* q_ptr = qkv + (size_t)start * row + (size_t)h * D;
    const __half* k_ptr = q_ptr + H;
    const __half* v_ptr = q_ptr + 2 * (size_t)H;

    // q stays fp16 in registers (D / 2 of them); scores are scaled by c = scale * log2(e) after the dot.
    const float c = scale * ATTN_CLS_LOG2E;
    uint4 q[D / 8];
#pragma unroll
    for (int v = 0; v < D / 8; ++v) q[v] = *reinterpret_cast<const uint4*>(q_ptr + 8 * v);

    // Scores (in log2 units) of keys lane, lane + 32, ... into this warp's row of shared memory.
    __shared__ float scores[ATTN_CLS_WARPS][ATTN_CLS_MAX_LEN];
    float* sw = scores[threadIdx.x >> 5];
    float m = neg_inf_f32();
    for (int j = lane; j < len; j += 32) {
        const __half* k = k_ptr + (size_t)j * row;
        float acc = 0.0f;
#pragma unroll
        for (int v = 0; v < D / 8; ++v) {
            const uint4 u = *reinterpret_cast<const uint4*>(k + 8 * v);
            const __half2* kk = reinterpret_cast<const __half2*>(&u);
            const __half2* qq = reinterpret_cast<const __half2*>(&q[v]);
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const float2 a = __half22float2(qq[e]), b = __half22float2(kk[e]);
                acc = fmaf(a.x, b.x, acc);
                acc = fmaf(a.y, b.y, acc);
            }
        }
        sw[j] = acc * c;
        m = fmaxf(m, acc * c);
    }
    m = warp_max(m);
    float l = 0.0f;
    for (int j = lane; j < len; j += 32) {  // each lane rewrites only its own entries
        const float e = exp2f(sw[j] - m);
        sw[j] = e;
        l += e;
    }
    l = warp_sum(l);
    __syncwarp();  // every lane's probabilities are written before any lane reads them all

    // P.V: every lane walks all keys; lane i accumulates its DIMS_PER_LANE dims of V.
    float o[DIMS_PER_LANE];
#pragma unroll
    for (int d = 0; d < DIMS_PER_LANE; ++d) o[d] = 0.0f;
    const __half* v_lane = v_ptr + DIMS_PER_LANE * lane;
#pragma unroll 8
    for (int j = 0; j < len; ++j) {
        const float pj = sw[j];
        const __half* vr = v_lane + (size_t)j * row;
        if (DIMS_PER_LANE == 2) {
            const float2 f = load_half2(vr);
            o[0] = fmaf(pj, f.x, o[0]);
            o[DIMS_PER_LANE - 1] = fmaf(pj, f.y, o[DIMS_PER_LANE - 1]);
        } else {
#pragma unroll
            for (int d = 0; d < DIMS_PER_LANE; ++d) o[d] = fmaf(pj, __half2float(vr[d]), o[d]);
        }
    }
    const float inv = 1.0f / l;
    __half* out = ctx + (size_t)p * H + (size_t)h * D + DIMS_PER_LANE * lane;
#pragma unroll
    for (int d = 0; d < DIMS_PER_LANE; ++d) out[d] = __float2half(o[d] * inv);
}

extern "C" __global__ void __launch_bounds__(32 * ATTN_CLS_WARPS)
attention_cls_hd32_f16(const __half* qkv, __half* ctx, const int* cu_seqlens, int n, int num_heads, float scale) {
    attention_cls<32>(qkv, ctx, cu_seqlens, n, num_heads, scale);
}

extern "C" __global__ void __launch_bounds__(32 * ATTN_CLS_WARPS)
attention_cls_hd64_f16(const __half* qkv, __half* ctx, const int* cu_seqlens, int n, int num_heads, float scale) {
    attention_cls<64>(qkv, ctx, cu_seqlens, n, num_heads, scale);
}
