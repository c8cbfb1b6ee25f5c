// attention_varlen.cu — fused multi-head self-attention over a ragged batch (no padding, no mask).
//
// For pair p (rows cu_seqlens[p] .. cu_seqlens[p+1] of qkv, length L = 1..512), head h and each query q of
// the work item:  ctx[out_offsets[p] + q, h*D : (h+1)*D] = softmax(scale * q . K^T) . V  over the L keys
// of pair p only. Scores exist only in registers; nothing of size L x L is ever written.
//
// Layout: qkv [T, 3H] fp16 row-major, each row Q(H) | K(H) | V(H), head h at columns h*D of each part
//   (PyTorch BERT layout), H = num_heads * D. ctx [*, H] fp16 row-major. cu_seqlens int32 [n+1], starting
//   at 0. out_offsets int32 [n]: output row of query q of pair p is out_offsets[p] + q (pass cu_seqlens for a
//   full layer; pass out_offsets[p] = p with work items {p, h, 0, 1} for the [CLS] query only).
//   work int4 [num_work] = {pair, head, q_begin, q_end}, q offsets relative to the pair's start,
//   0 <= q_begin < q_end <= L, q_end - q_begin <= ATTN_Q_TILE.
// Math: q is pre-scaled by scale * log2(e) in fp32; dot products, the online softmax (running max m and
//   running sum l, base 2) and the P.V accumulation are fp32; the output is rounded once to fp16.
// Launch: grid.x = num_work (blocks past num_work return), blockDim.x = ATTN_THREADS exactly, no dynamic
//   shared memory; static shared memory = 2 * ATTN_K_TILE * D * 2 bytes (8 KiB at D = 32, 16 KiB at D = 64).
// Preconditions (checked by Rust): qkv 16-byte aligned (rows are then 16-byte aligned since H % 8 == 0),
//   ctx 16-byte aligned, work items valid as above. Out-of-range heads or queries are skipped, not written.
// Ownership: one block = one work item (one pair, one head, <= ATTN_Q_TILE queries). Threads 2i and 2i+1
//   (partners, same warp) own query q_begin + i: thread 2i holds dims [0, D/2), thread 2i+1 dims [D/2, D)
//   of q and of the output accumulator. Per key, each partner computes half the dot product and one
//   shfl_xor(1) completes it, so both partners hold the identical score and identical m and l.
//   K and V stream through shared memory in tiles of ATTN_K_TILE keys (all 128 threads load, uint4 copies);
//   within a tile, keys are scored a chunk (ATTN_HDxx_K_CHUNK keys) at a time into registers, so the running
//   max is updated and the accumulator rescaled once per chunk rather than once per key.
//   Threads whose query is past q_end compute on q = 0 (they must reach every barrier and shuffle) and do
//   not write.
//
// Why SIMT: it is the version whose indexing can be checked by reading; the tensor-core version
//   (attention_mma.cu) is tested against this one.
#include "common.cuh"

// ATTN_Q_TILE queries per work item (per block), ATTN_THREADS threads per block: constants.cuh.
#define ATTN_K_TILE 64    // keys per shared-memory tile of K and of V

// Per head_dim: keys scored per register chunk (one max update and accumulator rescale per chunk), and the
// minimum resident blocks per SM handed to __launch_bounds__, which caps registers at
// 65536 / (ATTN_THREADS * min_blocks): 102 at hd32, 128 at hd64 (both compile without spills).
#define ATTN_HD32_K_CHUNK 16
#define ATTN_HD32_MIN_BLOCKS 5
#define ATTN_HD64_K_CHUNK 8
#define ATTN_HD64_MIN_BLOCKS 4

static_assert(ATTN_THREADS == 2 * ATTN_Q_TILE, "two threads per query");

#define LOG2E_F 1.44269504088896340736f

// Unpack 8 halves (one uint4) to fp32.
__device__ __forceinline__ void unpack8(const uint4& u, float (&f)[8]) {
    const __half2* h = reinterpret_cast<const __half2*>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        const float2 t = __half22float2(h[i]);
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}

template <int D, int KC>
__device__ __forceinline__ void attention_varlen_impl(const __half* __restrict__ qkv, __half* __restrict__ ctx,
                                                      const int* __restrict__ cu_seqlens,
                                                      const int* __restrict__ out_offsets,
                                                      const int4* __restrict__ work, int num_work,
                                                      int num_heads, float scale) {
    static_assert(D % 16 == 0, "each partner holds whole uint4 (8-half) groups");
    static_assert(ATTN_K_TILE % KC == 0, "chunks tile the key tile");
    constexpr int DH = D / 2;    // dims per thread
    constexpr int G = DH / 8;    // uint4 groups per thread per row
    constexpr int RG = D / 8;    // uint4 groups per K or V row of one head

    __shared__ __align__(16) __half sk[ATTN_K_TILE * D];
    __shared__ __align__(16) __half sv[ATTN_K_TILE * D];

    if (blockIdx.x >= num_work) return;  // block-uniform
    const int4 item = work[blockIdx.x];
    const int pair = item.x, head = item.y, q_begin = item.z, q_end = item.w;
    if (head < 0 || head >= num_heads) return;  // block-uniform
    const int seq_begin = cu_seqlens[pair];
    const int L = cu_seqlens[pair + 1] - seq_begin;
    const int H = num_heads * D;
    const size_t row_stride = 3 * (size_t)H;

    const int part = threadIdx.x & 1;           // which half of head_dim this thread holds
    const int q = q_begin + (threadIdx.x >> 1);  // query offset within the pair
    const bool active = q >= 0 && q < q_end && q < L;
    // Row 0 of this pair's K for this head (its V is H further on), and this thread's output slice.
    const __half* kv_base = qkv + (size_t)seq_begin * row_stride + H + head * D;
    __half* out = ctx + ((size_t)out_offsets[pair] + q) * H + head * D + part * DH;

    // q (this thread's half), pre-scaled into the base-2 softmax domain.
    float qf[DH];
    {
        const float qscale = scale * LOG2E_F;
#pragma unroll
        for (int i = 0; i < DH; ++i) qf[i] = 0.0f;
        if (active) {
            const uint4* src = reinterpret_cast<const uint4*>(qkv + (size_t)(seq_begin + q) * row_stride +
                                                              head * D + part * DH);
#pragma unroll
            for (int g = 0; g < G; ++g) {
                float f[8];
                unpack8(src[g], f);
#pragma unroll
                for (int i = 0; i < 8; ++i) qf[8 * g + i] = f[i] * qscale;
            }
        }
    }

    float acc[DH];
#pragma unroll
    for (int i = 0; i < DH; ++i) acc[i] = 0.0f;
    float m = neg_inf_f32();  // running max of the scores seen (base-2 domain)
    float l = 0.0f;           // running sum of exp2(score - m)

    for (int k0 = 0; k0 < L; k0 += ATTN_K_TILE) {
        const int nk = min(ATTN_K_TILE, L - k0);  // valid keys in this tile, >= 1; block-uniform

        __syncthreads();  // the previous tile is no longer being read
        const __half* kbase = kv_base + (size_t)k0 * row_stride;
        for (int idx = threadIdx.x; idx < nk * RG; idx += ATTN_THREADS) {
            const int r = idx / RG;
            const int g = idx - r * RG;
            const __half* src = kbase + (size_t)r * row_stride + 8 * g;
            *reinterpret_cast<uint4*>(sk + r * D + 8 * g) = *reinterpret_cast<const uint4*>(src);
            *reinterpret_cast<uint4*>(sv + r * D + 8 * g) = *reinterpret_cast<const uint4*>(src + H);
        }
        __syncthreads();

        for (int c0 = 0; c0 < nk; c0 += KC) {  // every chunk holds >= 1 valid key
            float s[KC];
            float chunk_max = neg_inf_f32();
#pragma unroll
            for (int j = 0; j < KC; ++j) {
                const int k = c0 + j;
                float d = 0.0f;
                if (k < nk) {  // block-uniform
                    const uint4* krow = reinterpret_cast<const uint4*>(sk + k * D + part * DH);
#pragma unroll
                    for (int g = 0; g < G; ++g) {
                        float f[8];
                        unpack8(krow[g], f);
#pragma unroll
                        for (int i = 0; i < 8; ++i) d = fmaf(qf[8 * g + i], f[i], d);
                    }
                }
                d += __shfl_xor_sync(XENC_FULL_MASK, d, 1);  // partner's half: identical sum in both
                s[j] = (k < nk) ? d : neg_inf_f32();
                chunk_max = fmaxf(chunk_max, s[j]);
            }

            const float m_new = fmaxf(m, chunk_max);  // finite: the chunk has a valid key
            const float correction = exp2f(m - m_new);  // 0 on the first chunk (m = -inf)
            l *= correction;
#pragma unroll
            for (int i = 0; i < DH; ++i) acc[i] *= correction;

#pragma unroll
            for (int j = 0; j < KC; ++j) {
                const int k = c0 + j;
                if (k < nk) {  // block-uniform; stale shared memory past nk is never read
                    const float p = exp2f(s[j] - m_new);
                    l += p;
                    const uint4* vrow = reinterpret_cast<const uint4*>(sv + k * D + part * DH);
#pragma unroll
                    for (int g = 0; g < G; ++g) {
                        float f[8];
                        unpack8(vrow[g], f);
#pragma unroll
                        for (int i = 0; i < 8; ++i) acc[8 * g + i] = fmaf(p, f[i], acc[8 * g + i]);
                    }
                }
            }
            m = m_new;
        }
    }

    if (active) {
        const float inv_l = 1.0f / l;  // l >= 1: the maximal key contributes exp2(0)
        uint4* dst = reinterpret_cast<uint4*>(out);
#pragma unroll
        for (int g = 0; g < G; ++g) {
            uint4 u;
            __half2* h = reinterpret_cast<__half2*>(&u);
#pragma unroll
            for (int i = 0; i < 4; ++i)
                h[i] = __floats2half2_rn(acc[8 * g + 2 * i] * inv_l, acc[8 * g + 2 * i + 1] * inv_l);
            dst[g] = u;
        }
    }
}

extern "C" __global__ void __launch_bounds__(ATTN_THREADS, ATTN_HD32_MIN_BLOCKS)
attention_varlen_hd32_f16(const __half* qkv, __half* ctx, const int* cu_seqlens, const int* out_offsets,
                          const int4* work, int num_work, int num_heads, float scale) {
    attention_varlen_impl<32, ATTN_HD32_K_CHUNK>(qkv, ctx, cu_seqlens, out_offsets, work, num_work, num_heads, scale);
}

extern "C" __global__ void __launch_bounds__(ATTN_THREADS, ATTN_HD64_MIN_BLOCKS)
attention_varlen_hd64_f16(const __half* qkv, __half* ctx, const int* cu_seqlens, const int* out_offsets,
                          const int4* work, int num_work, int num_heads, float scale) {
    attention_varlen_impl<64, ATTN_HD64_K_CHUNK>(qkv, ctx, cu_seqlens, out_offsets, work, num_work, num_heads, scale);
}
