// common.cuh — helpers shared by the xenc kernels (device code only; NVRTC-clean: no standard headers).
//
// Contract for callers:
//   * warp_* reductions must be reached by all 32 lanes of the warp (full mask); so must lanes_sum, with the
//     same L in every lane.
//   * block_sum must be reached by every thread of the block, blockDim.x a multiple of 32 and <= 1024;
//     `scratch` is a __shared__ float[32] owned by the caller and may be reused by consecutive calls.
//   * half2 helpers need 4-byte aligned pointers (even element offsets from a 4-byte aligned base);
//     half_vec<4> accesses (uint4) need 16-byte aligned ones.
//   * LayerNorm rows, half2 layout (load_sum3_pairs, layernorm_pairs_store): one warp per row, lane i holds
//     pairs c = i + 32 j in v[j]; H even, H / 2 <= 32 * LN_MAX_PAIRS_PER_LANE.
//   * LayerNorm rows, 16-byte layout (layernorm3_rows_wide): H % 8 == 0, H <= 512 (ln_wide_shape_ok), every
//     pointer 16-byte aligned, gridDim.x * blockDim.x < 2^30; see that section.
//   * Each LayerNorm kernel picks the layout itself and writes out the half2 layout's row loop (a shared
//     dispatcher, tried on 2026-12-02, changed the PTX of the GPU-verified entries: kernels/VERIFIED.tsv).
#pragma once
#include <cuda_fp16.h>

#include "constants.cuh"

#define XENC_FULL_MASK 0xffffffffu


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

// Vectors of P fp16 pairs moved by one memory access: P = 4 is 16 bytes (a uint4; the address must be
// 16-byte aligned), P = 1 is 4 bytes (a __half2). pair_at / set_pair convert pair k of a held vector.
template <int P> struct half_vec;
template <> struct half_vec<4> { typedef uint4 raw; };
template <> struct half_vec<1> { typedef __half2 raw; };

template <int P>
__device__ __forceinline__ float2 pair_at(const typename half_vec<P>::raw& r, int k) {
    return __half22float2(reinterpret_cast<const __half2*>(&r)[k]);
}

template <int P>
__device__ __forceinline__ void set_pair(typename half_vec<P>::raw& r, int k, float a, float b) {
    reinterpret_cast<__half2*>(&r)[k] = __floats2half2_rn(a, b);
}

// GELU in its erf form (BERT's "gelu", not the tanh approximation): 0.5 * v * (1 + erf(v / sqrt(2))), in
// fp32. erf(z) for z = |v|/sqrt(2) by Abramowitz & Stegun 7.1.26, 1 - (a1 t + ... + a5 t^5) exp(-z^2) with
// t = 1 / (1 + p z), |error| <= 1.5e-7 (2^-22.7; the fp16 result has 2^-11 relative steps), sign restored:
// the formula of the CPU path (src/cpu/vmath.rs), branch-free, one reciprocal and one exp2 on the SFU.
// erff took ~26 instructions per value with both of its branches taken across a warp (~208 of bias_gelu's
// ~254 per 8 values, sm_90).
__device__ __forceinline__ float gelu_erf(float v) {
    const float z = fabsf(v) * 0.70710678118654752440f;
    const float t = __fdividef(1.0f, fmaf(0.3275911f, z, 1.0f));
    float p = 1.061405429f;
    p = fmaf(p, t, -1.453152027f);
    p = fmaf(p, t, 1.421413741f);
    p = fmaf(p, t, -0.284496736f);
    p = fmaf(p, t, 0.254829592f);
    const float e = exp2f(-1.44269504088896340736f * z * z);  // exp(-z^2); 0 once z^2 > ~104
    const float erf_abs = fmaf(-p * t, e, 1.0f);
    return 0.5f * v * (1.0f + copysignf(erf_abs, v));
}

// ---- LayerNorm, wide layout: 16-byte accesses, next row prefetched -------------------------------------
// For H % 8 == 0, H <= 8 * 32 * LN_WIDE_VECS_PER_LANE (512) and every pointer 16-byte aligned. A row is owned
// by L consecutive lanes (L = ln_wide_lanes(H / 8), a power of two; a warp holds 32 / L rows at a time):
// lane s of them holds the 16-byte vectors g = s + L k (k < LN_WIDE_VECS_PER_LANE, g < H / 8), so each load
// of the warp reads whole runs of 16 L bytes. A warp walks its rows grid-stride and loads the two streamed
// rows of its next row (x and residual, or the word and position rows) while it reduces and writes the
// current one; the third row (bias, or the token-type row: small, cache-resident) is loaded when used.
// Math as in the half2 layout below: a + b + c in fp32, two-pass mean and variance over the held values,
// shuffles among the row's lanes only; each lane writes only the elements it read itself.

// LN_WIDE_VECS_PER_LANE (constants.cuh) 16-byte vectors (8 values) per lane: H <= 512; H = 384 is L = 32,
// one row per warp.

// Lanes per row of the wide layout: the fewest (a power of two) holding HV vectors at LN_WIDE_VECS_PER_LANE
// each. `layernorm_rows_per_warp` in src/cuda/plan/launch.rs mirrors it.
__device__ __forceinline__ int ln_wide_lanes(int HV) {
    int L = 1;
    while (L < 32 && L * LN_WIDE_VECS_PER_LANE < HV) L <<= 1;
    return L;
}

__device__ __forceinline__ bool ln_wide_shape_ok(int H) {
    return H > 0 && (H & 7) == 0 && (H >> 3) <= 32 * LN_WIDE_VECS_PER_LANE;
}

__device__ __forceinline__ bool aligned16(const void* p) { return (reinterpret_cast<size_t>(p) & 15) == 0; }

// Sum over aligned groups of L lanes: xor butterfly with offsets L/2 ... 1 (for L = 32 the order of
// warp_sum). Every lane shuffles at every offset, so all 32 lanes must call it, with the same L.
__device__ __forceinline__ float lanes_sum(float v, int L) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) {
        const float other = __shfl_xor_sync(XENC_FULL_MASK, v, offset);
        if (offset < L) v += other;
    }
    return v;
}

// Slot k of lane s: vector s + L k of the row, or (past the row) vector s again, a valid address whose
// values count as zero. All loads are unconditional, so they issue together.
__device__ __forceinline__ int ln_wide_vec(int s, int L, int HV, int k) { return s + L * k < HV ? s + L * k : s; }

// Loads the streamed rows: p0 and, when TWO, p1 (otherwise r1 is left alone and p1 never read).
template <bool TWO>
__device__ __forceinline__ void ln_wide_load2(uint4 (&r0)[LN_WIDE_VECS_PER_LANE], uint4 (&r1)[LN_WIDE_VECS_PER_LANE],
                                              const __half* p0, const __half* p1, int s, int L, int HV) {
#pragma unroll
    for (int k = 0; k < LN_WIDE_VECS_PER_LANE; ++k) {
        const int g = ln_wide_vec(s, L, HV, k);
        r0[k] = reinterpret_cast<const uint4*>(p0)[g];
        if (TWO) r1[k] = reinterpret_cast<const uint4*>(p1)[g];
    }
}

// v = a + b + c in fp32 in that order (zero past the row); returns the lane's sum of v. Two of the three
// rows were loaded ahead into r0 (a) and r1; the third, `late`, is read here: it is b when LATE == 1 and c
// when LATE == 2. LATE == 0: one row only, v = a (r1 and `late` are not touched).
template <int LATE>
__device__ __forceinline__ float ln_wide_sum3(const uint4 (&r0)[LN_WIDE_VECS_PER_LANE],
                                              const uint4 (&r1)[LN_WIDE_VECS_PER_LANE], const __half* late,
                                              float2 (&v)[LN_WIDE_VECS_PER_LANE][4], int s, int L, int HV) {
    float sum = 0.0f;
#pragma unroll
    for (int k = 0; k < LN_WIDE_VECS_PER_LANE; ++k) {
        const bool in = s + L * k < HV;
        if (LATE == 0) {
#pragma unroll
            for (int p = 0; p < 4; ++p) {
                v[k][p] = in ? pair_at<4>(r0[k], p) : make_float2(0.0f, 0.0f);
                sum += v[k][p].x + v[k][p].y;
            }
            continue;
        }
        const uint4 rl = reinterpret_cast<const uint4*>(late)[ln_wide_vec(s, L, HV, k)];
#pragma unroll
        for (int p = 0; p < 4; ++p) {
            const float2 x = pair_at<4>(r0[k], p);
            const float2 y = LATE == 1 ? pair_at<4>(rl, p) : pair_at<4>(r1[k], p);
            const float2 z = LATE == 1 ? pair_at<4>(r1[k], p) : pair_at<4>(rl, p);
            v[k][p] = in ? make_float2(x.x + y.x + z.x, x.y + y.y + z.y) : make_float2(0.0f, 0.0f);
            sum += v[k][p].x + v[k][p].y;  // + 0 past the row: no change
        }
    }
    return sum;
}

// Two-pass LayerNorm of the row held in v (lane sum `sum`), written to out_row when store is set.
__device__ __forceinline__ void ln_wide_normalize_store(const float2 (&v)[LN_WIDE_VECS_PER_LANE][4], float sum,
                                                        const __half* gamma, const __half* beta, __half* out_row,
                                                        int H, float eps, int s, int L, bool store) {
    const int HV = H >> 3;
    const float mean = lanes_sum(sum, L) / (float)H;
    float sq = 0.0f;
#pragma unroll
    for (int k = 0; k < LN_WIDE_VECS_PER_LANE; ++k) {
        const bool in = s + L * k < HV;
#pragma unroll
        for (int p = 0; p < 4; ++p) {
            const float dx = v[k][p].x - mean;
            const float dy = v[k][p].y - mean;
            sq += in ? dx * dx + dy * dy : 0.0f;
        }
    }
    const float rstd = rsqrtf(lanes_sum(sq, L) / (float)H + eps);
#pragma unroll
    for (int k = 0; k < LN_WIDE_VECS_PER_LANE; ++k) {
        const int g = s + L * k;
        if (store && g < HV) {
            const uint4 rg = reinterpret_cast<const uint4*>(gamma)[g];
            const uint4 rbeta = reinterpret_cast<const uint4*>(beta)[g];
            uint4 o;
#pragma unroll
            for (int p = 0; p < 4; ++p) {
                const float2 gg = pair_at<4>(rg, p);
                const float2 bb = pair_at<4>(rbeta, p);
                set_pair<4>(o, p, (v[k][p].x - mean) * rstd * gg.x + bb.x, (v[k][p].y - mean) * rstd * gg.y + bb.y);
            }
            reinterpret_cast<uint4*>(out_row)[g] = o;
        }
    }
}

// The row a lane works on: `row` when it exists, else `stand_in` (the first row of the warp's group, which
// only this warp reads and writes), else the last row (only for reading ids, which nobody writes).
__device__ __forceinline__ unsigned ln_row_or(unsigned row, unsigned stand_in, unsigned rows) {
    return row < rows ? row : stand_in < rows ? stand_in : rows - 1;
}

// out[r] = LayerNorm(a + b + c) of rows r < rows in the wide layout. `Rows` names the three rows of r:
// Rows::Ref ref(r) locates them (fetched two rows ahead: for the embeddings, the token's ids); first(ref) is
// a, second(ref) the other streamed row, late(ref) the cache-resident one, which is b when Rows::LATE == 1
// and c when Rows::LATE == 2. Rows::LATE == 0: LayerNorm(a) of the one row first(ref) (what second and
// late return is never read). The loop bound is warp-uniform, so all 32 lanes reach every shuffle. A lane
// past the last row stands in on its warp's first row of the group and stores nothing, so no lane reads a
// row that another warp may be writing in place. Needs gridDim.x * blockDim.x < 2^30 (row indices stay
// below 2^32).
template <typename Rows>
__device__ __forceinline__ void layernorm3_rows_wide(const Rows& R, int rows_, int H, const __half* gamma,
                                                     const __half* beta, __half* out, float eps) {
    const unsigned rows = (unsigned)rows_;
    const int HV = H >> 3;
    const int L = ln_wide_lanes(HV);
    const int lane = threadIdx.x & 31;
    const int s = lane & (L - 1);
    const unsigned rows_per_warp = 32 / L;
    const unsigned warps = blockDim.x >> 5;
    const unsigned stride = gridDim.x * warps * rows_per_warp;
    unsigned base = (blockIdx.x * warps + (threadIdx.x >> 5)) * rows_per_warp;  // the warp's first row
    if (base >= rows) return;
    unsigned row = base + lane / L;  // this lane's row
    typename Rows::Ref ref = R.ref(ln_row_or(row, base, rows));
    typename Rows::Ref next = R.ref(ln_row_or(row + stride, base + stride, rows));
    uint4 r0[LN_WIDE_VECS_PER_LANE], r1[LN_WIDE_VECS_PER_LANE];
    constexpr bool TWO = Rows::LATE != 0;
    ln_wide_load2<TWO>(r0, r1, R.first(ref), R.second(ref), s, L, HV);
    for (; base < rows; base += stride, row += stride) {
        float2 v[LN_WIDE_VECS_PER_LANE][4];
        const float sum = ln_wide_sum3<Rows::LATE>(r0, r1, R.late(ref), v, s, L, HV);
        if (base + stride < rows) {  // the next row's loads fly while this row is reduced and written
            ln_wide_load2<TWO>(r0, r1, R.first(next), R.second(next), s, L, HV);
            ref = next;
            next = R.ref(ln_row_or(row + 2 * stride, base + 2 * stride, rows));
        }
        ln_wide_normalize_store(v, sum, gamma, beta, out + (size_t)ln_row_or(row, base, rows) * H, H, eps, s, L,
                                row < rows);
    }
}

// ---- LayerNorm, half2 layout (v2; any even H <= 1024) -------------------------------------------------------
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

// v[i] = a[c] in fp32 for this lane's pairs c = lane + 32 i < H2; 0 elsewhere (load_sum3_pairs of one row).
__device__ __forceinline__ void load_pairs(float2 (&v)[LN_MAX_PAIRS_PER_LANE], const __half* a, int H2, int lane) {
#pragma unroll
    for (int i = 0; i < LN_MAX_PAIRS_PER_LANE; ++i) {
        const int k = lane + 32 * i;
        v[i] = k < H2 ? load_half2(a + 2 * k) : make_float2(0.0f, 0.0f);
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
