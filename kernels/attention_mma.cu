// attention_mma.cu — attention_varlen.cu's function on tensor cores (mma.sync m16n8k16, FlashAttention-2 style).
//
// Same function and contract as attention_varlen.cu: for pair p (rows cu_seqlens[p] .. cu_seqlens[p+1] of
// qkv, length L = 1..512), head h and each query q of the work item:
//   ctx[out_offsets[p] + q, h*D : (h+1)*D] = softmax(scale * q . K^T) . V   over the L keys of pair p only.
// Layout: qkv [T, 3H] fp16 row-major, each row Q(H) | K(H) | V(H), head h at columns h*D of each part,
//   H = num_heads * D. ctx [*, H] fp16 row-major. cu_seqlens int32 [n+1] from 0. out_offsets int32 [n]: the
//   output row of query q of pair p is out_offsets[p] + q (cu_seqlens for a full layer; p with work items
//   {p, h, 0, 1} for the [CLS] query only). work int4 [num_work] = {pair, head, q_begin, q_end}, query
//   offsets relative to the pair's start, 0 <= q_begin < q_end <= L, q_end - q_begin <= ATTN_Q_TILE.
// Math: S = Q.K^T on tensor cores from fp16 Q and K with fp32 accumulation; scale * log2(e) is applied to S
//   in fp32 inside the exponent (exp2(s * c - m * c), one FMA), the online softmax (running max m per row,
//   running sum l per row, base 2) is fp32; P is rounded to fp16 for the P.V mma (l sums the rounded P, so
//   the weights applied to V are normalised as used); O accumulates in fp32 and is divided by l and
//   rounded to fp16 once at the end.
// Launch: grid.x = num_work (blocks past num_work return), blockDim.x = ATTN_THREADS exactly, no dynamic
//   shared memory; static shared memory = (ATTN_Q_TILE + 4 * K tile) * D * 2 bytes (K tile =
//   ATTN_MMA_HD32_K_TILE = 32 at D = 32: 12 KiB; ATTN_MMA_HD64_K_TILE = 64 at D = 64: 40 KiB): the Q tile
//   plus two K and two V tiles (double buffer).
// Preconditions (checked by Rust): sm_80 or newer; qkv and ctx 16-byte aligned (rows are then 16-byte
//   aligned since H % 8 == 0); work items valid as above. Out-of-range heads or queries are skipped, not
//   written; queries at or past min(q_end, L) are never written.
// Entries: attention_mma_hd32_f16 and attention_mma_hd64_f16 (attention_mma_impl, the default: the code that
//   passed scripts/gpu-check.sh, kernels/VERIFIED.tsv) and, with the same contract and launch shape except
//   for shared memory, the A/B candidate attention_mma_v3_hd32_f16 / _v3_hd64_f16 / _v3_s4_hd32_f16
//   (attention_mma_v3_impl, the second half of this file, which says how it differs). Not yet run on a GPU.
//
// Ownership: one block = one work item (one pair, one head, <= 64 queries). Warp w (of 4) owns query rows
//   q_begin + 16w .. q_begin + 16w + 15 of the item: their Q fragments, S, P, the running max and sum, and
//   the O accumulator all live in that warp's registers. Warps whose 16 rows all lie at or past q_end do no
//   math and write nothing, but still load tiles and reach every __syncthreads. Within a live warp, rows at
//   or past q_end have Q zero-filled (uniform softmax over finite scores: harmless) and are not written.
//   All 128 threads copy tiles global -> shared with 16-byte cp.async: the Q tile (64 x D) once, then K and
//   V in tiles of KT keys (32 at D = 32, 64 at D = 64), double-buffered (tile i+1 is in flight while tile i
//   is used).
//   Rows of a tile past the pair's end (or past q_end for Q) are zero-filled by cp.async (src-size 0), so
//   the P.V mma multiplies P = 0 by V = 0, never by stale data; their scores are set to -inf before the max.
//   Per tile a live warp computes S (16 x KT) with KT/8 n-tiles x D/16 k-steps of mma, masks, updates m
//   and l, rescales O, converts P to fp16 A fragments in registers, and accumulates O (16 x D) with KT/16
//   k-steps x D/8 n-tiles of mma. 8-key n-tiles of S and 16-key k-steps of P.V that lie wholly past the pair's end
//   are skipped (warp-uniform). At the end the quad-reduced l divides O, the warp stages its 16 x D fp16
//   rows in its own 16 rows of the Q tile (no longer needed) and writes them with 16-byte stores.
//
// Shared-memory tiles: [64][D] (Q) and [KT][D] (K, V) fp16, row-major, each row D/8 16-byte chunks, chunk c of row r stored at
//   chunk c ^ ((r / (8 / (D/8))) % (D/8)) of that row (swizzle(): 8 consecutive rows at one logical chunk
//   hit 8 distinct 16-byte bank groups, so every ldmatrix phase and the output staging are conflict-free).
//
// Fragment layouts relied on (PTX ISA, mma.m16n8k16 .f16, g = lane / 4, t = lane % 4; each .b32 register
//   holds two fp16, the lower-indexed element in the low 16 bits):
//   A (16x16, row): reg0 = A[g][2t, 2t+1], reg1 = A[g+8][2t, 2t+1], reg2 = A[g][2t+8, 2t+9],
//                   reg3 = A[g+8][2t+8, 2t+9].
//   B (16x8, col):  reg0 = B[2t, 2t+1][g], reg1 = B[2t+8, 2t+9][g].
//   C/D (16x8 fp32): c0, c1 = C[g][2t, 2t+1], c2, c3 = C[g+8][2t, 2t+1].
//   ldmatrix.x4: lane i gives the address of row i % 8 of 8x8 matrix i / 8; register j receives matrix j's
//   M[g][2t, 2t+1] (plain) or M[2t, 2t+1][g] (.trans).
// How each operand is held:
//   qf[ks] (A of S = Q.K^T, k-step ks = dims 16ks..16ks+15): ldmatrix.x4 of the warp's Q rows, matrices
//     (rows 0-7, dims +0), (rows 8-15, dims +0), (rows 0-7, dims +8), (rows 8-15, dims +8) -> reg0..reg3.
//   B of S, n-tile j (keys 8j..8j+7): B[k][n] = K[key 8j+n][dim k], so K rows as stored are B's columns,
//     the layout .col wants; one ldmatrix.x4 over keys 8j..8j+7 and dims 32c..32c+31 gives (b0b1, b2b3)
//     of k-step 2c in regs 0, 1 and of k-step 2c+1 in regs 2, 3.
//   s[j][0..3] (C of n-tile j): s[j][0,1] = S[row g][keys 8j+2t, +1], s[j][2,3] = S[row g+8][same keys].
//   pf[kk] (A of O += P.V, k-step kk = keys 16kk..16kk+15) straight from the C layout of S:
//     pf[kk] = {pack(s[2kk][0,1]), pack(s[2kk][2,3]), pack(s[2kk+1][0,1]), pack(s[2kk+1][2,3])}.
//   B of P.V, dim n-tile d (dims 8d..8d+7): B[k][n] = V[key 16kk+k][dim 8d+n], so V rows as stored are
//     B's rows and need .trans: ldmatrix.x4.trans over matrices (keys +0-7, dims 8d), (keys +8-15, dims
//     8d), (keys +0-7, dims 8d+8), (keys +8-15, dims 8d+8) gives (b0b1, b2b3) of n-tile d in regs 0, 1 and
//     of n-tile d+1 in regs 2, 3.
//   o[d][0..3] (C of dim n-tile d): o[d][0,1] = O[row g][dims 8d+2t, +1], o[d][2,3] = O[row g+8][same].
//   m[0], l[0] belong to row g, m[1], l[1] to row g+8. m is the quad's row max (all 4 lanes of a quad hold
//   the same row, reduced with shfl_xor 1 and 2); l is this lane's partial sum over its own columns, reduced
//   over the quad once at the end (the rescale factor is quad-uniform, so partial sums rescale correctly).
#include "common.cuh"

// constants.cuh: ATTN_Q_TILE queries per work item (per block), ATTN_THREADS threads per block (4 warps of 16
// query rows), ATTN_MMA_HD32_K_TILE / ATTN_MMA_HD64_K_TILE keys per shared-memory tile of K and of V.

// Minimum resident blocks per SM handed to __launch_bounds__, which caps registers at 65536 / (128 * n):
// 73 at hd32 (ptxas 12.9 uses 72 without spills; 64 at 8 blocks ran no faster at model level), 128 at hd64
// (what it uses uncapped; 5 spills). Shared memory allows 18 (hd32) and 5 (hd64) blocks per SM on sm_90.
#define ATTN_MMA_HD32_MIN_BLOCKS 7
#define ATTN_MMA_HD64_MIN_BLOCKS 4

static_assert(ATTN_THREADS == 32 * (ATTN_Q_TILE / 16), "one warp per 16 query rows");

#define ATTN_MMA_LOG2E 1.44269504088896340736f

// cp.async, ldmatrix and mma.sync wrappers (dev/attention-mma-model swaps them for CPU models).
#include "mma_ptx.cuh"

// Two floats as one fp16x2 register (lo in the low 16 bits), round to nearest even.
__device__ __forceinline__ unsigned pack_half2(float lo, float hi) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<unsigned*>(&h);
}

__device__ __forceinline__ float2 unpack_half2(unsigned u) {
    return __half22float2(*reinterpret_cast<__half2*>(&u));
}


// Copies rows 0..ROWS-1 of a [ROWS][D] tile whose row r starts at src + r * row_stride into swizzled shared
// memory with cp.async (not committed); rows r >= valid are zero-filled, their source clamped to row 0
// (src-size 0: nothing is read). All ATTN_THREADS threads call it.
template <int D, int ROWS>
__device__ __forceinline__ void load_tile_async(__half* dst, const __half* src, size_t row_stride, int valid) {
    constexpr int CPR = D / 8;
    static_assert((ROWS * CPR) % ATTN_THREADS == 0, "whole chunks per thread");
#pragma unroll
    for (int i = 0; i < ROWS * CPR / ATTN_THREADS; ++i) {
        const int idx = threadIdx.x + i * ATTN_THREADS;
        const int r = idx / CPR, c = idx % CPR;
        const bool ok = r < valid;
        cp_async_16(dst + swizzle<D>(r, c), src + (ok ? (size_t)r * row_stride : 0) + 8 * c, ok ? 16 : 0);
    }
}

// KT: keys per K/V tile (ATTN_MMA_HD32_K_TILE or ATTN_MMA_HD64_K_TILE).
template <int D, int KT>
__device__ __forceinline__ void attention_mma_impl(const __half* __restrict__ qkv, __half* __restrict__ ctx,
                                                   const int* __restrict__ cu_seqlens,
                                                   const int* __restrict__ out_offsets,
                                                   const int4* __restrict__ work, int num_work, int num_heads,
                                                   float scale) {
    static_assert(D % 32 == 0, "K fragments are loaded 32 dims per ldmatrix.x4");
    static_assert(ATTN_Q_TILE == 64 && (KT == 64 || KT == 32), "64-query tiles, 32- or 64-key tiles");
    constexpr int CPR = D / 8;                     // 16-byte chunks per row
    constexpr int KS_QK = D / 16;                  // k-steps of S = Q.K^T (over head_dim)
    constexpr int NT_S = KT / 8;      // 8-key n-tiles of S per K tile
    constexpr int KS_PV = KT / 16;    // 16-key k-steps of P.V per V tile
    constexpr int NT_O = D / 8;                    // 8-dim n-tiles of O

    __shared__ __align__(16) __half sq[ATTN_Q_TILE * D];
    __shared__ __align__(16) __half sk[2][KT * D];
    __shared__ __align__(16) __half sv[2][KT * D];

    if (blockIdx.x >= num_work) return;  // block-uniform
    const int4 item = work[blockIdx.x];
    const int pair = item.x, head = item.y, q_begin = item.z;
    if (head < 0 || head >= num_heads) return;  // block-uniform
    const int seq_begin = cu_seqlens[pair];
    const int L = cu_seqlens[pair + 1] - seq_begin;
    const int q_stop = min(item.w, L);          // queries q_begin .. q_stop - 1 are computed and written
    if (q_begin < 0 || q_begin >= q_stop) return;  // block-uniform: nothing to do
    const int H = num_heads * D;
    const size_t row_stride = 3 * (size_t)H;

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;        // fragment row group and column pair
    const int warp_q0 = q_begin + 16 * warp;      // this warp's first query
    const bool warp_live = warp_q0 < q_stop;      // warp-uniform

    // Row 0 of this pair's Q for this head (K is H further on, V 2H).
    const __half* q_base = qkv + (size_t)seq_begin * row_stride + head * D;
    const __half* k_base = q_base + H;
    const __half* v_base = q_base + 2 * H;

    load_tile_async<D, ATTN_Q_TILE>(sq, q_base + (size_t)q_begin * row_stride, row_stride, q_stop - q_begin);
    load_tile_async<D, KT>(sk[0], k_base, row_stride, min(KT, L));
    load_tile_async<D, KT>(sv[0], v_base, row_stride, min(KT, L));
    cp_async_commit();

    const float c = scale * ATTN_MMA_LOG2E;  // score -> base-2 exponent
    unsigned qf[KS_QK][4];
    float o[NT_O][4];
#pragma unroll
    for (int d = 0; d < NT_O; ++d) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
    float m[2] = {neg_inf_f32(), neg_inf_f32()};  // running max of raw scores, rows g and g+8
    float l[2] = {0.0f, 0.0f};                    // this lane's share of the running sum of P

    const int num_tiles = (L + KT - 1) / KT;
    for (int tile = 0; tile < num_tiles; ++tile) {
        const int buf = tile & 1;
        const int k0 = tile * KT;
        cp_async_wait_all();  // this thread's copies of tile `tile` (and of Q on tile 0) have landed
        // Everyone's copies are visible, and everyone is done reading buffer buf ^ 1 (tile - 1).
        __syncthreads();
        if (tile + 1 < num_tiles) {  // block-uniform: prefetch the next tile while this one is used
            const int k1 = k0 + KT;
            const int valid = min(KT, L - k1);
            load_tile_async<D, KT>(sk[buf ^ 1], k_base + (size_t)k1 * row_stride, row_stride, valid);
            load_tile_async<D, KT>(sv[buf ^ 1], v_base + (size_t)k1 * row_stride, row_stride, valid);
            cp_async_commit();
        }
        if (!warp_live) continue;  // warp-uniform; the warp still reaches the next barrier

        if (tile == 0) {
#pragma unroll
            for (int ks = 0; ks < KS_QK; ++ks)
                ldmatrix_x4(qf[ks], sq + swizzle<D>(16 * warp + (lane & 7) + 8 * ((lane >> 3) & 1),
                                                    2 * ks + (lane >> 4)));
        }
        const __half* k_tile = sk[buf];
        const __half* v_tile = sv[buf];
        const int nk = min(KT, L - k0);  // valid keys in this tile, >= 1; warp-uniform

        // S = Q.K^T for the warp's 16 rows and the tile's keys, fp32.
        float s[NT_S][4];
#pragma unroll
        for (int j = 0; j < NT_S; ++j) {
            s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
            if (8 * j < nk) {  // warp-uniform: n-tiles wholly past the pair's end are masked below
#pragma unroll
                for (int cc = 0; cc < D / 32; ++cc) {
                    unsigned b[4];
                    ldmatrix_x4(b, k_tile + swizzle<D>(8 * j + (lane & 7), 4 * cc + (lane >> 3)));
                    mma_16816(s[j], qf[2 * cc], b[0], b[1]);
                    mma_16816(s[j], qf[2 * cc + 1], b[2], b[3]);
                }
            }
        }
        if (nk < KT) {  // warp-uniform: keys past the pair's end get -inf
#pragma unroll
            for (int j = 0; j < NT_S; ++j)
#pragma unroll
                for (int i = 0; i < 4; ++i)
                    if (8 * j + 2 * t + (i & 1) >= nk) s[j][i] = neg_inf_f32();
        }

        // Online softmax: new row max over the quad, rescale of l and O.
        float mx[2] = {m[0], m[1]};
#pragma unroll
        for (int j = 0; j < NT_S; ++j) {
            mx[0] = fmaxf(mx[0], fmaxf(s[j][0], s[j][1]));
            mx[1] = fmaxf(mx[1], fmaxf(s[j][2], s[j][3]));
        }
        float mc[2];  // the new max in the base-2 exponent domain
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(XENC_FULL_MASK, mx[r], 1));
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(XENC_FULL_MASK, mx[r], 2));
            // mx is finite: key 0 of the tile is valid. On tile 0, m = -inf and the correction is 0.
            const float correction = exp2f((m[r] - mx[r]) * c);
            m[r] = mx[r];
            mc[r] = mx[r] * c;
            l[r] *= correction;
#pragma unroll
            for (int d = 0; d < NT_O; ++d) {
                o[d][2 * r] *= correction;
                o[d][2 * r + 1] *= correction;
            }
        }

        // P = exp2(S * c - m * c), rounded to fp16 straight into A fragments; l sums the rounded values.
        unsigned pf[KS_PV][4];
#pragma unroll
        for (int j = 0; j < NT_S; ++j) {
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const unsigned p = pack_half2(exp2f(fmaf(s[j][2 * r], c, -mc[r])),
                                              exp2f(fmaf(s[j][2 * r + 1], c, -mc[r])));
                const float2 pr = unpack_half2(p);
                l[r] += pr.x + pr.y;
                pf[j >> 1][2 * (j & 1) + r] = p;
            }
        }

        // O += P.V over the tile's keys.
#pragma unroll
        for (int kk = 0; kk < KS_PV; ++kk) {
            if (16 * kk < nk) {  // warp-uniform: past the pair's end P = 0 (and V rows are zero)
#pragma unroll
                for (int d = 0; d < NT_O; d += 2) {
                    unsigned b[4];
                    ldmatrix_x4_trans(b, v_tile + swizzle<D>(16 * kk + 8 * ((lane >> 3) & 1) + (lane & 7),
                                                             d + (lane >> 4)));
                    mma_16816(o[d], pf[kk], b[0], b[1]);
                    mma_16816(o[d + 1], pf[kk], b[2], b[3]);
                }
            }
        }
    }
    if (!warp_live) return;  // no barrier follows

    // l over the quad; l >= 1 (the row's maximal key contributes exp2(~0) = 1).
    float inv_l[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        l[r] += __shfl_xor_sync(XENC_FULL_MASK, l[r], 1);
        l[r] += __shfl_xor_sync(XENC_FULL_MASK, l[r], 2);
        inv_l[r] = 1.0f / l[r];
    }

    // Stage the warp's 16 output rows in its own rows of the Q tile (read only by this warp, on tile 0),
    // then store whole 16-byte chunks of the rows this work item owns.
    __syncwarp();
#pragma unroll
    for (int d = 0; d < NT_O; ++d) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const unsigned h = pack_half2(o[d][2 * r] * inv_l[r], o[d][2 * r + 1] * inv_l[r]);
            *reinterpret_cast<unsigned*>(sq + swizzle<D>(16 * warp + g + 8 * r, d) + 2 * t) = h;
        }
    }
    __syncwarp();
    const size_t out_row0 = (size_t)out_offsets[pair] + warp_q0;
#pragma unroll
    for (int i = 0; i < 16 * CPR / 32; ++i) {
        const int idx = lane + 32 * i;
        const int rr = idx / CPR, cc = idx % CPR;
        if (warp_q0 + rr < q_stop)
            *reinterpret_cast<uint4*>(ctx + (out_row0 + rr) * H + head * D + 8 * cc) =
                *reinterpret_cast<const uint4*>(sq + swizzle<D>(16 * warp + rr, cc));
    }
}

extern "C" __global__ void __launch_bounds__(ATTN_THREADS, ATTN_MMA_HD32_MIN_BLOCKS)
attention_mma_hd32_f16(const __half* qkv, __half* ctx, const int* cu_seqlens, const int* out_offsets,
                       const int4* work, int num_work, int num_heads, float scale) {
    attention_mma_impl<32, ATTN_MMA_HD32_K_TILE>(qkv, ctx, cu_seqlens, out_offsets, work, num_work, num_heads, scale);
}

extern "C" __global__ void __launch_bounds__(ATTN_THREADS, ATTN_MMA_HD64_MIN_BLOCKS)
attention_mma_hd64_f16(const __half* qkv, __half* ctx, const int* cu_seqlens, const int* out_offsets,
                       const int4* work, int num_work, int num_heads, float scale) {
    attention_mma_impl<64, ATTN_MMA_HD64_K_TILE>(qkv, ctx, cu_seqlens, out_offsets, work, num_work, num_heads, scale);
}

// ---- v3: an A/B candidate (CudaOptions::attention = mma-v3, mma-s4), not yet run on a GPU --------------
// Same contract as above. What differs: K/V tiles through a ring of STAGES cp.async stages (tiles i+1 ..
// i+STAGES-1 in flight while tile i is used; commit group i holds tile i, group 0 also Q, groups past the
// last tile are empty, so cp.async.wait_group STAGES-2 at step i means tile i has landed; static shared
// memory (ATTN_Q_TILE + 2 * STAGES * K tile) * D * 2 bytes: 12 KiB at hd32 with 2 stages, 20 KiB with 4
// (attention_mma_v3_s4_hd32_f16), 40 KiB at hd64); all n-tiles of S and k-steps of P.V computed
// unconditionally (keys past the pair's end are zero K and V rows, P = 0), so no branch splits the mma
// chains; l is lsum, the C fragment of P times an all-ones B (fp16 1.0 pairs, no load): lsum[0] = lsum[1]
// = row g's sum, lsum[2] = lsum[3] = row g+8's, complete in every lane (no quad reduction); 2^x by
// ex2.approx.ftz; lane-constant ldmatrix and cp.async offsets computed once per block.

// ATTN_MMA_STAGES (2) K/V tiles in the cp.async ring of attention_mma_v3_hd32_f16 / _hd64_f16,
// ATTN_MMA_S4_STAGES (4) in that of attention_mma_v3_s4_hd32_f16: constants.cuh.

// This thread's share of copying one [KT][D] K or V tile, set up once per block: the thread copies chunk
// c = threadIdx.x % CPR of rows r0 + i * STEP (i < N, STEP = ATTN_THREADS / CPR). Because STEP is a
// multiple of 8, swizzle<D>(r0 + i * STEP, c) = swizzle<D>(r0, c) + i * STEP * D: one shared offset and
// one global pointer per thread, advanced by a tile per call (no per-chunk index arithmetic in the loop).
template <int D, int KT>
struct KvTileCopy {
    static constexpr int CPR = D / 8;
    static constexpr int STEP = ATTN_THREADS / CPR;  // rows between this thread's chunks
    static constexpr int N = KT / STEP;                  // chunks per thread per tile
    static_assert(ATTN_THREADS % CPR == 0 && KT % STEP == 0 && STEP % 8 == 0, "whole swizzle windows");
    int r0;        // this thread's first row within a tile
    int dst;       // its shared-memory element offset within a tile
    size_t src;    // its element offset from row 0 of the tile's source (r0 * row_stride + 8c)

    __device__ __forceinline__ KvTileCopy(size_t row_stride) {
        const int c = threadIdx.x % CPR;
        r0 = threadIdx.x / CPR;
        dst = swizzle<D>(r0, c);
        src = (size_t)r0 * row_stride + 8 * c;
    }
    // Copies rows 0..KT-1 of the tile whose row 0 is at base (rows >= valid zero-filled), not committed.
    __device__ __forceinline__ void issue(__half* tile, const __half* base, size_t row_stride, int valid) const {
#pragma unroll
        for (int i = 0; i < N; ++i) {
            const bool ok = r0 + i * STEP < valid;
            cp_async_16(tile + dst + i * STEP * D, base + (ok ? src + (size_t)(i * STEP) * row_stride : 0),
                        ok ? 16 : 0);
        }
    }
};

// KT: keys per K/V tile (ATTN_MMA_HD32_K_TILE or ATTN_MMA_HD64_K_TILE); STAGES: K/V tiles in the
// cp.async ring (2 or 4).
template <int D, int KT, int STAGES>
__device__ __forceinline__ void attention_mma_v3_impl(const __half* __restrict__ qkv, __half* __restrict__ ctx,
                                                   const int* __restrict__ cu_seqlens,
                                                   const int* __restrict__ out_offsets,
                                                   const int4* __restrict__ work, int num_work, int num_heads,
                                                   float scale) {
    static_assert(D % 32 == 0, "K fragments are loaded 32 dims per ldmatrix.x4");
    static_assert(ATTN_Q_TILE == 64 && (KT == 64 || KT == 32), "64-query tiles, 32- or 64-key tiles");
    static_assert(STAGES == 2 || STAGES == 4, "a power-of-two ring of at least two stages");
    constexpr int CPR = D / 8;                     // 16-byte chunks per row
    constexpr int KS_QK = D / 16;                  // k-steps of S = Q.K^T (over head_dim)
    constexpr int NT_S = KT / 8;      // 8-key n-tiles of S per K tile
    constexpr int KS_PV = KT / 16;    // 16-key k-steps of P.V per V tile
    constexpr int NT_O = D / 8;                    // 8-dim n-tiles of O

    __shared__ __align__(16) __half sq[ATTN_Q_TILE * D];
    __shared__ __align__(16) __half sk[STAGES][KT * D];
    __shared__ __align__(16) __half sv[STAGES][KT * D];

    if (blockIdx.x >= num_work) return;  // block-uniform
    const int4 item = work[blockIdx.x];
    const int pair = item.x, head = item.y, q_begin = item.z;
    if (head < 0 || head >= num_heads) return;  // block-uniform
    const int seq_begin = cu_seqlens[pair];
    const int L = cu_seqlens[pair + 1] - seq_begin;
    const int q_stop = min(item.w, L);          // queries q_begin .. q_stop - 1 are computed and written
    if (q_begin < 0 || q_begin >= q_stop) return;  // block-uniform: nothing to do
    const int H = num_heads * D;
    const size_t row_stride = 3 * (size_t)H;

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, t = lane & 3;        // fragment row group and column pair
    const int warp_q0 = q_begin + 16 * warp;      // this warp's first query
    const bool warp_live = warp_q0 < q_stop;      // warp-uniform

    // Row 0 of this pair's Q for this head (K is H further on, V 2H).
    const __half* q_base = qkv + (size_t)seq_begin * row_stride + head * D;
    const __half* k_base = q_base + H;  // row 0 of the pair's K (V: + H)

    const KvTileCopy<D, KT> kv(row_stride);
    load_tile_async<D, ATTN_Q_TILE>(sq, q_base + (size_t)q_begin * row_stride, row_stride, q_stop - q_begin);
#pragma unroll
    for (int st = 0; st < STAGES - 1; ++st) {  // tiles 0 .. STAGES-2 into stages 0 .. STAGES-2
        if (st == 0 || st * KT < L) {           // block-uniform (L >= 1: tile 0 exists)
            const __half* k = k_base + (size_t)(st * KT) * row_stride;
            kv.issue(sk[st], k, row_stride, L - st * KT);
            kv.issue(sv[st], k + H, row_stride, L - st * KT);
        }
        cp_async_commit();  // group st = tile st (empty past the last tile)
    }

    // Lane-constant ldmatrix offsets within a tile. Rows 8m apart share a swizzle pattern (see KvTileCopy),
    // so K n-tile j adds 8j rows and V k-step kk adds 16kk rows to these: compile-time offsets.
    //   k_off[cc]: row lane % 8, chunk 4cc + lane / 8 (dims 32cc..32cc+31 of 8 keys, one ldmatrix.x4).
    //   v_off[dd]: row 8 * ((lane / 8) % 2) + lane % 8, chunk 2dd + lane / 16 (16 keys x dims 16dd..+15).
    int k_off[D / 32], v_off[NT_O / 2];
#pragma unroll
    for (int cc = 0; cc < D / 32; ++cc) k_off[cc] = swizzle<D>(lane & 7, 4 * cc + (lane >> 3));
#pragma unroll
    for (int dd = 0; dd < NT_O / 2; ++dd)
        v_off[dd] = swizzle<D>(8 * ((lane >> 3) & 1) + (lane & 7), 2 * dd + (lane >> 4));

    const float c = scale * ATTN_MMA_LOG2E;  // score -> base-2 exponent
    unsigned qf[KS_QK][4];
    float o[NT_O][4];
#pragma unroll
    for (int d = 0; d < NT_O; ++d) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
    // Running row sums of the fp16-rounded P, accumulated by the tensor cores as P times a column of ones:
    // lsum[0] (= lsum[1]) is row g's, lsum[2] (= lsum[3]) row g+8's, complete in every lane (no shuffles).
    float lsum[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    constexpr unsigned ONES = 0x3C003C00u;        // two fp16 1.0
    float m[2] = {neg_inf_f32(), neg_inf_f32()};  // running max of raw scores, rows g and g+8

    const int num_tiles = (L + KT - 1) / KT;
    for (int tile = 0; tile < num_tiles; ++tile) {
        const int buf = tile & (STAGES - 1);
        const int k0 = tile * KT;
        cp_async_wait_group<STAGES - 2>();  // this thread's copies of tile `tile` (and of Q) have landed
        // Everyone's copies are visible, and everyone is done reading tile - 1's stage, refilled next.
        __syncthreads();
        const int next = tile + STAGES - 1;
        if (next < num_tiles) {  // block-uniform: keep STAGES - 1 tiles in flight
            const int st = next & (STAGES - 1);
            const __half* k = k_base + (size_t)(next * KT) * row_stride;
            kv.issue(sk[st], k, row_stride, L - next * KT);
            kv.issue(sv[st], k + H, row_stride, L - next * KT);
        }
        cp_async_commit();  // group tile + STAGES - 1 (empty past the last tile)
        if (!warp_live) continue;  // warp-uniform; the warp still reaches the next barrier

        if (tile == 0) {
#pragma unroll
            for (int ks = 0; ks < KS_QK; ++ks)
                ldmatrix_x4(qf[ks], sq + swizzle<D>(16 * warp + (lane & 7) + 8 * ((lane >> 3) & 1),
                                                    2 * ks + (lane >> 4)));
        }
        const __half* k_tile = sk[buf];
        const __half* v_tile = sv[buf];
        const int nk = min(KT, L - k0);  // valid keys in this tile, >= 1; warp-uniform

        // S = Q.K^T for the warp's 16 rows and all KT keys of the tile, fp32. Keys past the pair's end are
        // zero rows (scores 0, masked to -inf below); computing them unconditionally keeps the n-tiles'
        // mma chains independent, so they overlap instead of running one after another.
        float s[NT_S][4];
#pragma unroll
        for (int j = 0; j < NT_S; ++j) {
            s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
            for (int cc = 0; cc < D / 32; ++cc) {
                unsigned b[4];
                ldmatrix_x4(b, k_tile + k_off[cc] + 8 * j * D);
                mma_16816(s[j], qf[2 * cc], b[0], b[1]);
                mma_16816(s[j], qf[2 * cc + 1], b[2], b[3]);
            }
        }
        if (nk < KT) {  // warp-uniform (the pair's last tile only): keys past the pair's end get -inf
#pragma unroll
            for (int j = 0; j < NT_S; ++j)
#pragma unroll
                for (int i = 0; i < 4; ++i)
                    if (8 * j + 2 * t + (i & 1) >= nk) s[j][i] = neg_inf_f32();
        }

        // Online softmax: new row max over the quad, rescale of the row sums and O.
        float mx[2] = {m[0], m[1]};
#pragma unroll
        for (int j = 0; j < NT_S; ++j) {
            mx[0] = fmaxf(mx[0], fmaxf(s[j][0], s[j][1]));
            mx[1] = fmaxf(mx[1], fmaxf(s[j][2], s[j][3]));
        }
        float mc[2];  // the new max in the base-2 exponent domain
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(XENC_FULL_MASK, mx[r], 1));
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(XENC_FULL_MASK, mx[r], 2));
            // mx is finite: key 0 of the tile is valid. On tile 0, m = -inf and the correction is 0.
            const float correction = ex2_approx((m[r] - mx[r]) * c);
            m[r] = mx[r];
            mc[r] = mx[r] * c;
            lsum[2 * r] *= correction;
            lsum[2 * r + 1] *= correction;
#pragma unroll
            for (int d = 0; d < NT_O; ++d) {
                o[d][2 * r] *= correction;
                o[d][2 * r + 1] *= correction;
            }
        }

        // P = 2^(S * c - m * c), rounded to fp16 straight into A fragments.
        unsigned pf[KS_PV][4];
#pragma unroll
        for (int j = 0; j < NT_S; ++j) {
#pragma unroll
            for (int r = 0; r < 2; ++r)
                pf[j >> 1][2 * (j & 1) + r] = pack_half2(ex2_approx(fmaf(s[j][2 * r], c, -mc[r])),
                                                         ex2_approx(fmaf(s[j][2 * r + 1], c, -mc[r])));
        }

        // O += P.V and lsum += P.1 over all KT keys (past the pair's end P = 0 and the V rows are zero).
#pragma unroll
        for (int kk = 0; kk < KS_PV; ++kk) {
#pragma unroll
            for (int dd = 0; dd < NT_O / 2; ++dd) {
                unsigned b[4];
                ldmatrix_x4_trans(b, v_tile + v_off[dd] + 16 * kk * D);
                mma_16816(o[2 * dd], pf[kk], b[0], b[1]);
                mma_16816(o[2 * dd + 1], pf[kk], b[2], b[3]);
            }
            mma_16816(lsum, pf[kk], ONES, ONES);
        }
    }
    cp_async_wait_all();     // only empty groups can be pending here; no copy outlives the block
    if (!warp_live) return;  // no barrier follows

    // lsum >= 1 (the row's maximal key contributes 2^0 = 1).
    const float inv_l[2] = {1.0f / lsum[0], 1.0f / lsum[2]};

    // Stage the warp's 16 output rows in its own rows of the Q tile (read only by this warp, on tile 0),
    // then store whole 16-byte chunks of the rows this work item owns.
    __syncwarp();
#pragma unroll
    for (int d = 0; d < NT_O; ++d) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            const unsigned h = pack_half2(o[d][2 * r] * inv_l[r], o[d][2 * r + 1] * inv_l[r]);
            *reinterpret_cast<unsigned*>(sq + swizzle<D>(16 * warp + g + 8 * r, d) + 2 * t) = h;
        }
    }
    __syncwarp();
    const size_t out_row0 = (size_t)out_offsets[pair] + warp_q0;
#pragma unroll
    for (int i = 0; i < 16 * CPR / 32; ++i) {
        const int idx = lane + 32 * i;
        const int rr = idx / CPR, cc = idx % CPR;
        if (warp_q0 + rr < q_stop)
            *reinterpret_cast<uint4*>(ctx + (out_row0 + rr) * H + head * D + 8 * cc) =
                *reinterpret_cast<const uint4*>(sq + swizzle<D>(16 * warp + rr, cc));
    }
}

extern "C" __global__ void __launch_bounds__(ATTN_THREADS, ATTN_MMA_HD32_MIN_BLOCKS)
attention_mma_v3_hd32_f16(const __half* qkv, __half* ctx, const int* cu_seqlens, const int* out_offsets,
                       const int4* work, int num_work, int num_heads, float scale) {
    attention_mma_v3_impl<32, ATTN_MMA_HD32_K_TILE, ATTN_MMA_STAGES>(qkv, ctx, cu_seqlens, out_offsets, work,
                                                                 num_work, num_heads, scale);
}

// The hd32 kernel with a 4-stage K/V ring, so a ~114-token pair's four tiles are all requested before the
// first is used (2 stages: each tile's copy starts one tile earlier).
extern "C" __global__ void __launch_bounds__(ATTN_THREADS, ATTN_MMA_HD32_MIN_BLOCKS)
attention_mma_v3_s4_hd32_f16(const __half* qkv, __half* ctx, const int* cu_seqlens, const int* out_offsets,
                          const int4* work, int num_work, int num_heads, float scale) {
    attention_mma_v3_impl<32, ATTN_MMA_HD32_K_TILE, ATTN_MMA_S4_STAGES>(qkv, ctx, cu_seqlens, out_offsets, work,
                                                                    num_work, num_heads, scale);
}

extern "C" __global__ void __launch_bounds__(ATTN_THREADS, ATTN_MMA_HD64_MIN_BLOCKS)
attention_mma_v3_hd64_f16(const __half* qkv, __half* ctx, const int* cu_seqlens, const int* out_offsets,
                       const int4* work, int num_work, int num_heads, float scale) {
    attention_mma_v3_impl<64, ATTN_MMA_HD64_K_TILE, ATTN_MMA_STAGES>(qkv, ctx, cu_seqlens, out_offsets, work,
                                                                 num_work, num_heads, scale);
}
