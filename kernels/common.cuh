// common.cuh — helpers shared by the xenc kernels (device code only; NVRTC-clean: no standard headers).
//
// Contract for callers:
//   * warp_* reductions must be reached by all 32 lanes of the warp (full mask).
//   * block_sum must be reached by every thread of the block, blockDim.x a multiple of 32 and <= 1024;
//     `scratch` is a __shared__ float[32] owned by the caller and may be reused by consecutive calls.
//   * half2 helpers need 4-byte aligned pointers (even element offsets from a 4-byte aligned base).
//   * layernorm_pairs_store holds a row as float2 pairs in registers: pair c = threadIdx.x + i * blockDim.x
//     lives in v[i]; it needs H even and H / 2 <= LN_MAX_PAIRS_PER_THREAD * blockDim.x.
//
// v1: warp/block sums, half2 <-> float2, erf-GELU, two-pass register LayerNorm.
#pragma once
#include <cuda_fp16.h>

#define XENC_FULL_MASK 0xffffffffu

// Register budget of the LayerNorm kernels: 16 pairs (32 values) per thread covers H = 1024 at blockDim.x = 32.
#define LN_MAX_PAIRS_PER_LANE 16  // half2 pairs per lane: H <= 1024

__device__ __forceinline__ float neg_inf_f32() { return -__int_as_float(0x7f800000); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(XENC_FULL_MASK, v, offset);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(XENC_FULL_MASK, v, offset));
    return v;
}

// Sum over the whole block, returned to every thread. Each warp reduces the per-warp partials itself,
// so one broadcast barrier suffices; the leading barrier protects `scratch` from a previous call's reads.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int num_warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = (lane < num_warps) ? scratch[lane] : 0.0f;
    return warp_sum(v);
}

__device__ __forceinline__ float2 load_half2(const __half* p) {
    return __half22float2(*reinterpret_cast<const __half2*>(p));
}

__device__ __forceinline__ void store_half2(__half* p, float a, float b) {
    *reinterpret_cast<__half2*>(p) = __floats2half2_rn(a, b);
}

// Exact GELU (BERT's "gelu"): 0.5 * v * (1 + erf(v / sqrt(2))), in fp32.
__device__ __forceinline__ float gelu_erf(float v) {
    return 0.5f * v * (1.0f + erff(v * 0.70710678118654752440f));
}

// a + b + c of three fp16 rows of length 2 * H2, summed in fp32 in that order, as float2 pairs in the
// layout layernorm_pairs_store expects; pairs past H2 are zero.
// LayerNorm rows are owned by one warp each: lane i holds half2 pairs c = i, i + 32, ... of the row in
// registers (at most LN_MAX_PAIRS_PER_LANE), sums with shuffles, no shared memory and no block barrier.

// v[i] = a[c] + b[c] + c_[c] in fp32 for this lane's pairs c = lane + 32 i < H2; 0 elsewhere.
__device__ __forceinline__ void load_sum3_pairs(float2 (&v)[LN_MAX_PAIRS_PER_LANE], const __half* a,
                                                const __half* b, const __half* c, int H2, int lane) {
#pragma unroll
    for (int i = 0; i < LN_MAX_PAIRS_PER_LANE; ++i) {
        const int k = lane + 32 * i;
        v[i] = make_float2(0.0f, 0.0f);
        if (k < H2) {
            const float2 x = load_half2(a + 2 * k);
            const float2 y = load_half2(b + 2 * k);
            const float2 z = load_half2(c + 2 * k);
            v[i] = make_float2(x.x + y.x + z.x, x.y + y.y + z.y);
        }
    }
}

// Two-pass LayerNorm of the row the warp holds in v (see load_sum3_pairs), written to out_row.
__device__ __forceinline__ void layernorm_pairs_store(const float2 (&v)[LN_MAX_PAIRS_PER_LANE],
                                                      const __half* gamma, const __half* beta,
                                                      __half* out_row, int H, float eps, int lane) {
    const int H2 = H >> 1;
    float sum = 0.0f;
#pragma unroll
    for (int i = 0; i < LN_MAX_PAIRS_PER_LANE; ++i) {
        if (lane + 32 * i < H2) sum += v[i].x + v[i].y;
    }
    const float mean = warp_sum(sum) / (float)H;

    float sq = 0.0f;
#pragma unroll
    for (int i = 0; i < LN_MAX_PAIRS_PER_LANE; ++i) {
        if (lane + 32 * i < H2) {
            const float dx = v[i].x - mean;
            const float dy = v[i].y - mean;
            sq += dx * dx + dy * dy;
        }
    }
    const float rstd = rsqrtf(warp_sum(sq) / (float)H + eps);

#pragma unroll
    for (int i = 0; i < LN_MAX_PAIRS_PER_LANE; ++i) {
        const int c = lane + 32 * i;
        if (c < H2) {
            const float2 g = load_half2(gamma + 2 * c);
            const float2 b = load_half2(beta + 2 * c);
            store_half2(out_row + 2 * c, (v[i].x - mean) * rstd * g.x + b.x, (v[i].y - mean) * rstd * g.y + b.y);
        }
    }
}

// Shapes a warp-per-row LayerNorm kernel can run: H even, at most 32 * LN_MAX_PAIRS_PER_LANE pairs, whole
// warps.
__device__ __forceinline__ bool layernorm_shape_ok(int H) {
    return H > 0 && (H & 1) == 0 && (H >> 1) <= 32 * LN_MAX_PAIRS_PER_LANE && (blockDim.x & 31) == 0;
}
