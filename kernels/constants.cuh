// constants.cuh — the numbers the kernels and the Rust launchers must agree on: tile sizes, threads per block,
// rows in flight. The one source of them: common.cuh includes this file, and build.rs turns it into
// $OUT_DIR/kernel_constants.rs, which src/cuda/plan/mod.rs includes. Every line is a comment, blank, or
// `#define NAME INTEGER` with an optional trailing comment (build.rs refuses anything else); the comment lines
// just above a define become its Rust doc. Names ending in _THREADS are u32 in Rust (block sizes), the rest
// usize.
#pragma once

// Queries per attention work item (one block): the query tile of attention_varlen.cu and attention_mma.cu.
#define ATTN_Q_TILE 64
// Threads per attention block, exactly: 2 per query (attention_varlen.cu), 4 warps of 16 query rows
// (attention_mma.cu).
#define ATTN_THREADS 128
// Keys per shared-memory K and V tile of attention_mma.cu at head_dim 32 and 64 (32 at hd32 halves the S
// accumulator: 72 registers instead of 93, 7 resident blocks per SM instead of 5).
#define ATTN_MMA_HD32_K_TILE 32
#define ATTN_MMA_HD64_K_TILE 64
// K/V tiles in the cp.async ring of attention_mma.cu's v3 entries: 2 (double buffering), 4 for
// attention_mma_v3_s4_hd32_f16.
#define ATTN_MMA_STAGES 2
#define ATTN_MMA_S4_STAGES 4

// Half2 pairs one lane of a LayerNorm kernel holds in the half2 layout (one warp per row): H <= 64 * 16 = 1024.
#define LN_MAX_PAIRS_PER_LANE 16
// 16-byte vectors one lane holds in the LayerNorm kernels' 16-byte layout: H % 8 == 0, H <= 8 * 32 * 2 = 512.
#define LN_WIDE_VECS_PER_LANE 2
// The `__launch_bounds__` of the row-wise kernels (the LayerNorms and bias_gelu): at most 64 registers per
// thread, which the one-wave grids of src/cuda/plan/launch.rs count on.
#define ROWWISE_MAX_THREADS 1024

// Rows of its column a bias_gelu thread loads before it computes any (16-byte loads in flight per thread).
#define BIAS_GELU_ROWS 4

// gemm_bias_gelu.cu's tile: rows and columns of y per block, K per pipeline stage, pipeline stages, and
// threads per block of gemm_bias_gelu_f16 (8 warps of 64 x 32) and gemm_bias_gelu_w64_f16 (4 warps of 64 x 64).
#define GBG_BM 128
#define GBG_BN 128
#define GBG_BK 32
#define GBG_STAGES 3
#define GBG_THREADS 256
#define GBG_W64_THREADS 128

// Pairs per block of pooler_classifier.cu.
#define POOLER_PAIRS 4
// Threads per pooler block: its H outputs spread over 32 warps (also its `__launch_bounds__`).
#define POOLER_THREADS 1024
