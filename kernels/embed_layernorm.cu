// embed_layernorm.cu — BERT embeddings fused with their LayerNorm.
//
//   out[t] = LayerNorm(word_emb[input_ids[t]] + pos_emb[position_ids[t]] + type_emb[token_type_ids[t]])
//
// Layout: all matrices row-major fp16. input_ids, token_type_ids, position_ids: int32 [T] (a ragged batch,
//   no padding; position ids restart at 0 for every pair). word_emb [V,H], pos_emb [P,H], type_emb [TV,H],
//   gamma/beta [H], out [T,H].
// Math: the three rows are summed in fp32 in that order (word + position + type), mean and variance two-pass
//   in fp32 over the held values, eps from the argument, result rounded once to fp16. The 16-byte path gives
//   each lane different elements of the row than the half2 path (lane i: pairs c = i + 32 j), so the
//   per-lane fp32 partial sums of the mean and variance add the same values in another order (then the
//   same xor-butterfly shuffles): the two paths may differ by that fp32 summation order only.
// Launch: blockDim.x a multiple of 32, <= 1024 (e.g. 128); any grid.x >= 1 with gridDim.x * blockDim.x
//   < 2^30; tokens grid-stride. Fastest as one full wave: `layernorm_launch_on` in
//   src/cuda/plan/launch.rs (see add_bias_layernorm.cu). No shared memory, no block barrier.
// Preconditions (checked by the Rust launcher, not here): H even, H <= 64 * LN_MAX_PAIRS_PER_LANE (1024),
//   every id inside its table (0 <= id < V, P, TV), pointers 4-byte aligned. A block whose shape does not
//   fit returns without writing.
// Ownership: H % 8 == 0, H <= 512 and the five fp16 pointers 16-byte aligned: the 16-byte layout of
//   common.cuh (L = ln_wide_lanes(H / 8) lanes per row, 32 / L rows per warp); the warp reads the ids of
//   the token two rows ahead and the word and position rows of the next one while it reduces and writes the
//   current one; the token-type row (a 2-row table, cache-resident) is read when used. Otherwise the half2
//   layout: one warp per row, lane i holding pairs c = i, i + 32, ... in registers.
#include "common.cuh"

// The rows of token t for the wide layout, summed word + position + token type (the half2 path's order): the word and
// position rows streamed, the token-type row (c; a 2-row table) cache-resident. ref(t) reads the ids.
struct EmbedRows {
    const int *input_ids, *token_type_ids, *position_ids;
    const __half *word_emb, *pos_emb, *type_emb;
    size_t H;
    struct Ref {
        int word, pos, type;
    };
    enum { LATE = 2 };
    __device__ __forceinline__ Ref ref(unsigned t) const {
        Ref r;
        r.word = input_ids[t];
        r.pos = position_ids[t];
        r.type = token_type_ids[t];
        return r;
    }
    __device__ __forceinline__ const __half* first(const Ref& r) const { return word_emb + (size_t)r.word * H; }
    __device__ __forceinline__ const __half* second(const Ref& r) const { return pos_emb + (size_t)r.pos * H; }
    __device__ __forceinline__ const __half* late(const Ref& r) const { return type_emb + (size_t)r.type * H; }
};

extern "C" __global__ void __launch_bounds__(ROWWISE_MAX_THREADS)
embed_layernorm_f16(const int* input_ids, const int* token_type_ids, const int* position_ids,
                    const __half* word_emb, const __half* pos_emb, const __half* type_emb,
                    const __half* gamma, const __half* beta, __half* out, int T, int H, float eps) {
    if (!layernorm_shape_ok(H) || T <= 0) return;
    if (ln_wide_shape_ok(H) && aligned16(word_emb) && aligned16(pos_emb) && aligned16(type_emb) &&
        aligned16(gamma) && aligned16(beta) && aligned16(out)) {
        const EmbedRows R = {input_ids, token_type_ids, position_ids, word_emb, pos_emb, type_emb, (size_t)H};
        layernorm3_rows_wide(R, T, H, gamma, beta, out, eps);
        return;
    }
    const int H2 = H >> 1;
    const int lane = threadIdx.x & 31;
    const int warps = blockDim.x >> 5;
    for (int row = blockIdx.x * warps + (threadIdx.x >> 5); row < T; row += gridDim.x * warps) {
        float2 v[LN_MAX_PAIRS_PER_LANE];
        load_sum3_pairs(v, word_emb + (size_t)input_ids[row] * H, pos_emb + (size_t)position_ids[row] * H,
                        type_emb + (size_t)token_type_ids[row] * H, H2, lane);
        layernorm_pairs_store(v, gamma, beta, out + (size_t)row * H, H, eps, lane);
    }
}
