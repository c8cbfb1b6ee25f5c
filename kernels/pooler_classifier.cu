// pooler_classifier.cu — BERT pooler (dense + tanh on the [CLS] row) and the classification head.
//
//   pooled[j]    = tanh(sum_k wp[j,k] * x_cls[p,k] + bp[j])        j < H
//   logits[p,l] = sum_j wc[l,j] * pooled[j] + bc[l]                  l < L
//
// Layout: x_cls [n,H] fp16 (final hidden state of each pair's [CLS] row), wp [H,H] and wc [L,H] fp16
//   PyTorch Linear weights (out_features x in_features, row-major), bp [H] and bc [L] fp16, logits [n,L] fp32.
// Math: dot products, tanh and the logits in fp32; pooled never leaves shared memory.
// Launch: POOLER_PAIRS pairs per block, grid-stride over groups of pairs (any grid.x >= 1; grid.x =
//   ceil(n / POOLER_PAIRS) is natural); blockDim.x a multiple of 32, <= 1024 (1024: the H pooler outputs
//   spread over 32 warps). Dynamic shared memory: 2 * POOLER_PAIRS * H * sizeof(float) bytes (the group's
//   [CLS] rows as fp32, then its pooled vectors).
// Preconditions (checked by Rust): H even, fp16 pointers 4-byte aligned.
// Entries: pooler_classifier_f16 (the default, the code that passed scripts/gpu-check.sh, kernels/VERIFIED.tsv)
//   and pooler_classifier_v4_f16 (an A/B candidate, CudaOptions::pooler = v4; not yet run on a GPU): the
//   same contract and launch; v4 has each warp compute POOLER_OUTPUTS of its outputs at once, so a lane has
//   POOLER_OUTPUTS x 3 independent weight loads in flight instead of 2, with the same sums in the same order
//   per (pair, output).
// Ownership: warp w computes outputs j = w, w + num_warps, ... for every pair of the group: its lanes split
//   the H-long dot products (half2 stride 32), each weight pair loaded once for the group, and reduce with
//   shuffles. Warps then compute the group's logits one (pair, label) each. A pair's arithmetic (the
//   order of every sum) does not depend on the other pairs of its group or on where the group starts.
#include "common.cuh"

#define POOLER_OUTPUTS 4  // pooler outputs a warp of the v4 entry computes at once

// V4: the candidate's pooled loop (POOLER_OUTPUTS outputs per warp at once) instead of the default's.
template <bool V4>
__device__ __forceinline__ void pooler_classifier_impl(const __half* x_cls, const __half* wp, const __half* bp,
                                                       const __half* wc, const __half* bc, float* logits, int n,
                                                       int H, int L) {
    extern __shared__ float pooler_smem[];  // [POOLER_PAIRS][H] x as fp32, then [POOLER_PAIRS][H] pooled
    if (H <= 0 || (H & 1) != 0 || (blockDim.x & 31) != 0) return;
    float* xs = pooler_smem;
    float* pooled = pooler_smem + POOLER_PAIRS * H;
    const int H2 = H >> 1;
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int num_warps = blockDim.x >> 5;

    for (int p0 = blockIdx.x * POOLER_PAIRS; p0 < n; p0 += gridDim.x * POOLER_PAIRS) {
        const int np = min(POOLER_PAIRS, n - p0);
        // The group's [CLS] rows as fp32 (rows past n as zeros: computed, never written out).
        for (int i = threadIdx.x; i < POOLER_PAIRS * H2; i += blockDim.x) {
            const int q = i / H2, k = i - q * H2;
            const float2 v = q < np ? load_half2(x_cls + (size_t)(p0 + q) * H + 2 * k) : make_float2(0.f, 0.f);
            xs[q * H + 2 * k] = v.x;
            xs[q * H + 2 * k + 1] = v.y;
        }
        __syncthreads();

        if constexpr (!V4) {
            for (int j = warp; j < H; j += num_warps) {
                const __half* w = wp + (size_t)j * H;
                float acc[POOLER_PAIRS];
#pragma unroll
                for (int q = 0; q < POOLER_PAIRS; ++q) acc[q] = 0.0f;
#pragma unroll 2
                for (int k = lane; k < H2; k += 32) {
                    const float2 a = load_half2(w + 2 * k);
#pragma unroll
                    for (int q = 0; q < POOLER_PAIRS; ++q) {
                        const float2 b = *reinterpret_cast<const float2*>(xs + q * H + 2 * k);
                        acc[q] += a.x * b.x + a.y * b.y;
                    }
                }
                const float b = __half2float(bp[j]);
#pragma unroll
                for (int q = 0; q < POOLER_PAIRS; ++q) {
                    const float sum = warp_sum(acc[q]);
                    if (lane == 0) pooled[q * H + j] = tanhf(sum + b);
                }
            }
        } else {
            // Warp w's outputs j = w + i * num_warps, POOLER_OUTPUTS at a time: their weight loads are independent
            // (POOLER_OUTPUTS x 3 per lane in flight), where v3 walked one output's 6 loads at a time.
            for (int j0 = warp; j0 < H; j0 += POOLER_OUTPUTS * num_warps) {
                float acc[POOLER_OUTPUTS][POOLER_PAIRS];
#pragma unroll
                for (int o = 0; o < POOLER_OUTPUTS; ++o)
#pragma unroll
                    for (int q = 0; q < POOLER_PAIRS; ++q) acc[o][q] = 0.0f;
#pragma unroll 3
                for (int k = lane; k < H2; k += 32) {
                    float2 a[POOLER_OUTPUTS];
#pragma unroll
                    for (int o = 0; o < POOLER_OUTPUTS; ++o) {
                        const int j = j0 + o * num_warps;  // warp-uniform
                        a[o] = j < H ? load_half2(wp + (size_t)j * H + 2 * k) : make_float2(0.f, 0.f);
                    }
#pragma unroll
                    for (int q = 0; q < POOLER_PAIRS; ++q) {
                        const float2 b = *reinterpret_cast<const float2*>(xs + q * H + 2 * k);
#pragma unroll
                        for (int o = 0; o < POOLER_OUTPUTS; ++o) acc[o][q] += a[o].x * b.x + a[o].y * b.y;
                    }
                }
#pragma unroll
                for (int o = 0; o < POOLER_OUTPUTS; ++o) {
                    const int j = j0 + o * num_warps;
                    if (j >= H) break;  // warp-uniform
                    const float b = __half2float(bp[j]);
#pragma unroll
                    for (int q = 0; q < POOLER_PAIRS; ++q) {
                        const float sum = warp_sum(acc[o][q]);
                        if (lane == 0) pooled[q * H + j] = tanhf(sum + b);
                    }
                }
            }
        }
        __syncthreads();

        for (int t = warp; t < np * L; t += num_warps) {
            const int q = t / L, l = t - q * L;
            const __half* w = wc + (size_t)l * H;
            const float* pq = pooled + q * H;
            float acc = 0.0f;
            for (int k = lane; k < H2; k += 32) {
                const float2 a = load_half2(w + 2 * k);
                acc += a.x * pq[2 * k] + a.y * pq[2 * k + 1];
            }
            acc = warp_sum(acc);
            if (lane == 0) logits[(size_t)(p0 + q) * L + l] = acc + __half2float(bc[l]);
        }
        __syncthreads();  // xs and pooled are rewritten by the next group
    }
}

extern "C" __global__ void __launch_bounds__(POOLER_THREADS)
pooler_classifier_f16(const __half* x_cls, const __half* wp, const __half* bp, const __half* wc,
                      const __half* bc, float* logits, int n, int H, int L) {
    pooler_classifier_impl<false>(x_cls, wp, bp, wc, bc, logits, n, H, L);
}

extern "C" __global__ void __launch_bounds__(POOLER_THREADS)
pooler_classifier_v4_f16(const __half* x_cls, const __half* wp, const __half* bp, const __half* wc,
                         const __half* bc, float* logits, int n, int H, int L) {
    pooler_classifier_impl<true>(x_cls, wp, bp, wc, bc, logits, n, H, L);
}
