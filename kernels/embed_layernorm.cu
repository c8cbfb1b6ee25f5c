// embed_layernorm.cu — BERT embeddings fused with their LayerNorm.
//
//   out[t] = LayerNorm(word_emb[input_ids[t]] + pos_emb[position_ids[t]] + type_emb[token_type_ids[t]])
//
// Layout: all matrices row-major fp16. input_ids, token_type_ids, position_ids: int32 [T] (a ragged batch,
//   no padding; position ids restart at 0 for every pair). word_emb [V,H], pos_emb [P,H], type_emb [TV,H],
//   gamma/beta [H], out [T,H].
// Math: the three rows are summed in fp32, mean and variance two-pass in fp32 over the held values, eps from
//   the argument, result rounded once to fp16.
// Launch: one block per row, grid-stride over rows (any grid.x >= 1; grid.x = T is natural);
//   blockDim.x a multiple of 32, <= 1024 (e.g. 128). Dynamic shared memory: none.
// Preconditions (checked by the Rust launcher, not here): H even, H <= 32 * blockDim.x (so H <= 1024 works
//   at any legal block size), every id inside its table (0 <= id < V, P, TV), pointers 4-byte aligned.
//   A block whose shape does not fit returns without writing.
// Ownership: thread i holds pairs (2 values) c = i, i + blockDim.x, ... of the row in registers.
//
// v1: fp32 sum of the three embeddings, register-held row, two-pass block LayerNorm.
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(1024)
embed_layernorm_f16(const int* input_ids, const int* token_type_ids, const int* position_ids,
                    const __half* word_emb, const __half* pos_emb, const __half* type_emb,
                    const __half* gamma, const __half* beta, __half* out, int T, int H, float eps) {
    __shared__ float scratch[32];
    if (!layernorm_shape_ok(H)) return;
    const int H2 = H >> 1;

    for (int row = blockIdx.x; row < T; row += gridDim.x) {
        float2 v[LN_MAX_PAIRS_PER_THREAD];
        load_sum3_pairs(v, word_emb + (size_t)input_ids[row] * H, pos_emb + (size_t)position_ids[row] * H,
                        type_emb + (size_t)token_type_ids[row] * H, H2);
        layernorm_pairs_store(v, gamma, beta, out + (size_t)row * H, H, eps, scratch);
    }
}
