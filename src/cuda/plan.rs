//! The arithmetic of every launch, in Rust: attention work lists, output offsets, the packed index buffer
//! of a batch, launch shapes with the kernels' preconditions, buffer sizes from the token budget, and the
//! fp16 weight layout. No CUDA here, so all of it is unit-tested on machines without a GPU.

use crate::batch::RaggedBatch;
use crate::config::ModelConfig;
use crate::cpu::ops::Queries;

/// Queries per attention work item: `ATTN_Q_TILE` in kernels/attention_varlen.cu (a test parses it).
pub const ATTN_Q_TILE: usize = 64;
/// Threads per attention block, exactly: `ATTN_THREADS` in kernels/attention_varlen.cu.
pub const ATTN_THREADS: u32 = 128;
/// Half2 pairs one lane of a LayerNorm kernel holds: `LN_MAX_PAIRS_PER_LANE` in kernels/common.cuh.
/// One warp owns a row, so H ≤ 64 · LN_MAX_PAIRS_PER_LANE = 1024.
pub const LN_MAX_PAIRS_PER_LANE: usize = 16;
/// Threads per LayerNorm block: 4 warps, each one row at a time (half2 layout) or 32 / L rows (16-byte
/// layout, see [`layernorm_rows_per_warp`]).
pub const LN_THREADS: u32 = 128;
/// 16-byte vectors one lane of a LayerNorm kernel holds in the 16-byte layout: `LN_WIDE_VECS_PER_LANE` in
/// kernels/common.cuh. That layout serves H % 8 == 0, H ≤ 8 · 32 · LN_WIDE_VECS_PER_LANE = 512.
pub const LN_WIDE_VECS_PER_LANE: usize = 2;
/// Resident [`LN_THREADS`]-blocks per SM of the LayerNorm kernels: their `__launch_bounds__(1024)` caps
/// registers at 64, and 8 · 128 threads · 64 registers fill the 64 K registers of an SM. A grid of this many
/// blocks per SM is one full wave in which every warp loops over rows, loading its next row early.
pub const LN_BLOCKS_PER_SM: u32 = 8;
/// Resident [`ELEMENTWISE_THREADS`]-blocks per SM of bias_gelu (64 registers at most, as above: 4 · 256).
pub const BIAS_GELU_BLOCKS_PER_SM: u32 = 4;
/// 16-byte groups a bias_gelu thread has in flight per iteration (two rows of its column).
pub const BIAS_GELU_GROUPS_PER_THREAD: usize = 2;
/// Head dims that have an attention kernel (`attention_varlen_hd32_f16`, `attention_varlen_hd64_f16`).
pub const ATTN_HEAD_DIMS: [usize; 2] = [32, 64];
/// Alignment of every tensor in the one fp16 weight allocation.
pub const WEIGHT_ALIGN_BYTES: usize = 256;
/// Threads per block of the elementwise kernels (bias_gelu, gather_rows) and of the pooler.
pub const ELEMENTWISE_THREADS: u32 = 256;
pub const POOLER_THREADS: u32 = 1024;
/// Grid-stride kernels get at most this many blocks per SM: enough to fill it, no more.
pub const BLOCKS_PER_SM: u32 = 8;
/// Shared memory a kernel may take without opting in: the pooler's dynamic `2 · POOLER_PAIRS · H` floats
/// must fit.
pub const MAX_DEFAULT_SHARED_BYTES: usize = 48 * 1024;

/// One attention work item as the kernel reads it (an `int4`): pair, head, first query, one past the
/// last query; queries count from the pair's first token.
pub type WorkItem = [i32; 4];

/// The work list of one attention call. `All`: every pair's queries in tiles of [`ATTN_Q_TILE`], for
/// every head; `ClsOnly`: query 0 of every pair, for every head. Longest pairs come first, so the
/// heaviest blocks start first and the grid's tail is short.
pub fn attention_work(cu_seqlens: &[u32], num_heads: usize, queries: Queries) -> Vec<WorkItem> {
    let n = cu_seqlens.len().saturating_sub(1);
    let len = |p: usize| (cu_seqlens[p + 1] - cu_seqlens[p]) as usize;
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&p| std::cmp::Reverse(len(p)));
    let tiles: usize = match queries {
        Queries::All => (0..n).map(|p| len(p).div_ceil(ATTN_Q_TILE)).sum(),
        Queries::ClsOnly => n,
    };
    let mut work = Vec::with_capacity(tiles * num_heads);
    for p in order {
        let q_end = match queries {
            Queries::All => len(p),
            Queries::ClsOnly => 1,
        };
        for q0 in (0..q_end).step_by(ATTN_Q_TILE) {
            let q1 = (q0 + ATTN_Q_TILE).min(q_end);
            for h in 0..num_heads {
                work.push([p as i32, h as i32, q0 as i32, q1 as i32]);
            }
        }
    }
    work
}

/// An upper bound of `attention_work(..).len()` for any batch of at most `tokens` tokens: each pair has
/// at least one token and at most one tile per token.
pub fn max_work_items(tokens: usize, num_heads: usize) -> usize {
    tokens * num_heads
}

/// Output row of query 0 of each pair: the pair's first token row (`All`) or the pair's index (`ClsOnly`).
pub fn out_offsets(cu_seqlens: &[u32], queries: Queries) -> Vec<i32> {
    let n = cu_seqlens.len().saturating_sub(1);
    match queries {
        Queries::All => cu_seqlens[..n].iter().map(|&c| c as i32).collect(),
        Queries::ClsOnly => (0..n as i32).collect(),
    }
}

/// Where each index array of a batch sits in the one `i32` device buffer it is uploaded in. Offsets are
/// in elements, each a multiple of 4 so the `int4` work lists are 16-byte aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexLayout {
    pub tokens: usize,
    pub pairs: usize,
    pub work_all_items: usize,
    pub work_cls_items: usize,
    pub input_ids: usize,
    pub token_type_ids: usize,
    pub position_ids: usize,
    /// `[n + 1]`; its first n entries are also the `All` out_offsets and the [CLS] rows for gather_rows.
    pub cu_seqlens: usize,
    /// `[n]` = 0..n, the `ClsOnly` out_offsets.
    pub cls_offsets: usize,
    pub work_all: usize,
    pub work_cls: usize,
    pub total: usize,
}

impl IndexLayout {
    pub fn new(tokens: usize, pairs: usize, work_all_items: usize, work_cls_items: usize) -> Self {
        let mut at = 0;
        let mut next = |len: usize| {
            let start = at;
            at += len.next_multiple_of(4);
            start
        };
        let (input_ids, token_type_ids, position_ids) = (next(tokens), next(tokens), next(tokens));
        let (cu_seqlens, cls_offsets) = (next(pairs + 1), next(pairs));
        let (work_all, work_cls) = (next(4 * work_all_items), next(4 * work_cls_items));
        IndexLayout {
            tokens,
            pairs,
            work_all_items,
            work_cls_items,
            input_ids,
            token_type_ids,
            position_ids,
            cu_seqlens,
            cls_offsets,
            work_all,
            work_cls,
            total: at,
        }
    }

    /// The largest layout any batch within `token_budget` tokens can need.
    pub fn capacity(token_budget: usize, num_heads: usize) -> Self {
        let w = max_work_items(token_budget, num_heads);
        IndexLayout::new(token_budget, token_budget, w, token_budget * num_heads)
    }
}

/// A batch's indices as uploaded, with the facts the launchers check before trusting device data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackedBatch {
    pub data: Vec<i32>,
    pub max_input_id: u32,
    pub max_token_type: u32,
    pub max_position: u32,
    pub max_seqlen: usize,
}

/// Packs a batch for upload. Returns an error message if the batch is malformed (cu_seqlens not rising
/// from 0 to the token count, arrays of different lengths, or too large for `i32` indices).
///
/// Every array is written straight into `packed.data` (no intermediate work lists; one walk of
/// cu_seqlens checks it and counts the tiles); the contents are those of [`attention_work`] and
/// [`out_offsets`], which stay the reference (a test compares the two on ragged batches).
pub fn pack_batch(
    batch: &RaggedBatch,
    num_heads: usize,
    packed: &mut PackedBatch,
) -> Result<IndexLayout, String> {
    let (t, cu) = (batch.num_tokens(), &batch.cu_seqlens);
    if batch.token_type_ids.len() != t || batch.position_ids.len() != t {
        return Err("ragged batch arrays differ in length".into());
    }
    let bad_cu = || "cu_seqlens must rise strictly from 0 to the token count".to_string();
    if cu.first() != Some(&0) || cu.last().map(|&c| c as usize) != Some(t) {
        return Err(bad_cu());
    }
    let (mut max_seqlen, mut tiles) = (0, 0);
    for w in cu.windows(2) {
        if w[1] <= w[0] {
            return Err(bad_cu());
        }
        let len = (w[1] - w[0]) as usize;
        max_seqlen = max_seqlen.max(len);
        tiles += len.div_ceil(ATTN_Q_TILE);
    }
    if t > i32::MAX as usize / (4 * num_heads.max(1)) {
        return Err(format!("{t} tokens is too many for 32-bit indices"));
    }
    let n = batch.num_pairs();
    let layout = IndexLayout::new(t, n, tiles * num_heads, n * num_heads);
    let len = |p: usize| (cu[p + 1] - cu[p]) as usize;
    // As in `attention_work`, longest pair first, ties in index order; the index is part of the key,
    // so an unstable sort of plain integers gives that order (at half the stable sort's cost).
    let mut order: Vec<u64> = (0..n)
        .map(|p| (u64::from(u32::MAX - len(p) as u32) << 32) | p as u64)
        .collect();
    order.sort_unstable();
    let order = order.iter().map(|&k| k as u32 as usize);

    let data = &mut packed.data;
    data.clear();
    data.reserve(layout.total);
    // Moves to the start of a section; the gap (< 4 elements, see `IndexLayout::new`) is zeros.
    fn section(data: &mut Vec<i32>, at: usize) {
        debug_assert!(data.len() <= at && at - data.len() < 4);
        data.resize(at, 0);
    }
    // The u32 arrays are copied bit for bit, as `x as i32` would; ids are checked against the model by
    // the launchers through the maxima below.
    section(data, layout.input_ids);
    data.extend_from_slice(bytemuck::cast_slice(&batch.input_ids));
    section(data, layout.token_type_ids);
    data.extend_from_slice(bytemuck::cast_slice(&batch.token_type_ids));
    section(data, layout.position_ids);
    data.extend_from_slice(bytemuck::cast_slice(&batch.position_ids));
    section(data, layout.cu_seqlens);
    data.extend_from_slice(bytemuck::cast_slice(cu));
    section(data, layout.cls_offsets);
    data.extend(0..n as i32);
    // The work lists: sized (zeros) first, then each item written in place, with no capacity check
    // per item as a push has.
    section(data, layout.work_all);
    data.resize(layout.total, 0);
    let (all, cls) = data[layout.work_all..].split_at_mut(layout.work_cls - layout.work_all);
    let (mut all, mut cls) = (all.chunks_exact_mut(4), cls.chunks_exact_mut(4));
    for p in order {
        let q_end = len(p);
        for q0 in (0..q_end).step_by(ATTN_Q_TILE) {
            let q1 = (q0 + ATTN_Q_TILE).min(q_end);
            for (h, item) in all.by_ref().take(num_heads).enumerate() {
                item.copy_from_slice(&[p as i32, h as i32, q0 as i32, q1 as i32]);
            }
        }
        for (h, item) in cls.by_ref().take(num_heads).enumerate() {
            item.copy_from_slice(&[p as i32, h as i32, 0, 1]);
        }
    }

    let max = |v: &[u32]| v.iter().copied().max().unwrap_or(0);
    packed.max_input_id = max(&batch.input_ids);
    packed.max_token_type = max(&batch.token_type_ids);
    packed.max_position = max(&batch.position_ids);
    packed.max_seqlen = max_seqlen;
    Ok(layout)
}

/// Grid, block and dynamic shared memory of one launch. `grid == 0` means there is nothing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    pub grid: u32,
    pub block: u32,
    pub shared_mem_bytes: u32,
}

fn grid_of(blocks: usize, what: &str) -> Result<u32, String> {
    u32::try_from(blocks)
        .ok()
        .filter(|&g| g <= i32::MAX as u32)
        .ok_or_else(|| format!("{blocks} {what} exceed the grid limit"))
}

/// Rows one warp of embed_layernorm / add_bias_residual_layernorm holds at a time: 32 / L in the 16-byte
/// layout (H % 8 == 0, H ≤ 512 and 16-byte aligned pointers, which the crate's buffers are), where L is
/// the fewest lanes, a power of two, that hold the row's H / 8 vectors at [`LN_WIDE_VECS_PER_LANE`] each
/// (`ln_wide_lanes` in kernels/common.cuh); 1 in the half2 layout.
pub fn layernorm_rows_per_warp(h: usize) -> usize {
    let hv = h / 8;
    if h == 0 || !h.is_multiple_of(8) || hv > 32 * LN_WIDE_VECS_PER_LANE {
        return 1;
    }
    let mut lanes = 1;
    while lanes < 32 && lanes * LN_WIDE_VECS_PER_LANE < hv {
        lanes *= 2;
    }
    32 / lanes
}

/// The most blocks a looping LayerNorm grid gets: gridDim.x · blockDim.x must stay below 2^30.
const LN_MAX_GRID: usize = (1 << 30) / LN_THREADS as usize - 1;

/// embed_layernorm and add_bias_residual_layernorm: [`LN_THREADS`] threads, every row in one pass (each
/// warp its [`layernorm_rows_per_warp`] rows); the row must fit the registers of one warp (H ≤ 1024, even).
pub fn layernorm_launch(rows: usize, h: usize) -> Result<Launch, String> {
    if h == 0 || !h.is_multiple_of(2) {
        return Err(format!("hidden size {h} must be even and positive"));
    }
    let max = 64 * LN_MAX_PAIRS_PER_LANE;
    if h > max {
        return Err(format!(
            "hidden size {h} exceeds {max} (one warp per LayerNorm row)"
        ));
    }
    let rows_per_block = (LN_THREADS / 32) as usize * layernorm_rows_per_warp(h);
    Ok(Launch {
        grid: grid_of(rows.div_ceil(rows_per_block).min(LN_MAX_GRID), "row groups")?,
        block: LN_THREADS,
        shared_mem_bytes: 0,
    })
}

/// [`layernorm_launch`] capped at one full wave, [`LN_BLOCKS_PER_SM`] blocks per SM: the warps then loop
/// over rows and the 16-byte layout has the next row's loads in flight while it reduces the current one.
pub fn layernorm_launch_on(rows: usize, h: usize, sm_count: u32) -> Result<Launch, String> {
    let mut l = layernorm_launch(rows, h)?;
    l.grid = l.grid.min(sm_count.max(1) * LN_BLOCKS_PER_SM);
    Ok(l)
}

/// bias_gelu: [`ELEMENTWISE_THREADS`] threads, each owning one column of 16-byte groups (or half2 pairs when
/// n % 8 != 0) and [`BIAS_GELU_GROUPS_PER_THREAD`] rows of it per iteration; at most one full wave,
/// [`BIAS_GELU_BLOCKS_PER_SM`] blocks per SM, that loops down the rows. n even, rows · n ≤ 2^31 - 1.
pub fn bias_gelu_launch(rows: usize, n: usize, sm_count: u32) -> Result<Launch, String> {
    if n == 0 || !n.is_multiple_of(2) {
        return Err(format!("row width {n} must be even and positive"));
    }
    let elems = rows.checked_mul(n).filter(|&e| e <= i32::MAX as usize);
    let elems = elems.ok_or_else(|| format!("{rows} x {n} elements exceed 2^31 - 1"))?;
    let vectors = if n.is_multiple_of(8) {
        elems / 8
    } else {
        elems / 2
    };
    let per_block = ELEMENTWISE_THREADS as usize * BIAS_GELU_GROUPS_PER_THREAD;
    let cap = (sm_count.max(1) * BIAS_GELU_BLOCKS_PER_SM) as usize;
    Ok(Launch {
        grid: vectors.div_ceil(per_block).min(cap) as u32,
        block: ELEMENTWISE_THREADS,
        shared_mem_bytes: 0,
    })
}

/// gemm_bias_gelu's tile: rows and columns of y per block, K per pipeline stage, threads (`GBG_*` in
/// kernels/gemm_bias_gelu.cu).
pub const GBG_BM: usize = 128;
pub const GBG_BN: usize = 128;
pub const GBG_BK: usize = 32;
pub const GBG_THREADS: u32 = 256;
/// Threads of the 64 x 64-warp entry (`GBG_W64_THREADS`).
pub const GBG_W64_THREADS: u32 = 128;

/// gemm_bias_gelu (`y[rows, n] = gelu_erf(x[rows, k] · w[n, k]ᵀ + b)`): one block per 128 x 128 tile of y,
/// 1-D, `threads` per block ([`GBG_THREADS`] or [`GBG_W64_THREADS`], the entry's warp layout). Needs
/// k % 32 == 0, n % 128 == 0 (MiniLM's FFN: k 384, n 1536).
pub fn gemm_bias_gelu_launch(
    rows: usize,
    k: usize,
    n: usize,
    threads: u32,
) -> Result<Launch, String> {
    if k == 0 || !k.is_multiple_of(GBG_BK) {
        return Err(format!("K = {k} is not a positive multiple of {GBG_BK}"));
    }
    if n == 0 || !n.is_multiple_of(GBG_BN) {
        return Err(format!("N = {n} is not a positive multiple of {GBG_BN}"));
    }
    let elems = rows
        .checked_mul(n.max(k))
        .filter(|&e| e <= i32::MAX as usize);
    elems.ok_or_else(|| format!("{rows} rows x {} exceed 2^31 - 1", n.max(k)))?;
    let blocks = rows.div_ceil(GBG_BM) * (n / GBG_BN);
    Ok(Launch {
        grid: grid_of(blocks, "blocks")?,
        block: threads,
        shared_mem_bytes: 0,
    })
}

/// gather_rows: grid-stride over `rows * width / 2` half2 pairs with 32-bit indices.
pub fn elementwise_launch(rows: usize, width: usize, sm_count: u32) -> Result<Launch, String> {
    if width == 0 || !width.is_multiple_of(2) {
        return Err(format!("row width {width} must be even and positive"));
    }
    let elems = rows.checked_mul(width).filter(|&e| e <= i32::MAX as usize);
    let elems = elems.ok_or_else(|| format!("{rows} x {width} elements exceed 2^31 - 1"))?;
    let blocks = (elems / 2).div_ceil(ELEMENTWISE_THREADS as usize);
    let cap = (sm_count.max(1) * BLOCKS_PER_SM) as usize;
    Ok(Launch {
        grid: blocks.min(cap) as u32,
        block: ELEMENTWISE_THREADS,
        shared_mem_bytes: 0,
    })
}

/// attention_varlen: one block of exactly [`ATTN_THREADS`] per work item.
pub fn attention_launch(num_work: usize, head_dim: usize) -> Result<Launch, String> {
    if !ATTN_HEAD_DIMS.contains(&head_dim) {
        return Err(format!(
            "head_dim {head_dim} has no kernel (supported: {ATTN_HEAD_DIMS:?})"
        ));
    }
    Ok(Launch {
        grid: grid_of(num_work, "work items")?,
        block: ATTN_THREADS,
        shared_mem_bytes: 0,
    })
}

/// Pairs per block of pooler_classifier (`POOLER_PAIRS` in kernels/pooler_classifier.cu).
pub const POOLER_PAIRS: usize = 4;

/// pooler_classifier: one block per [`POOLER_PAIRS`] pairs, `2 · POOLER_PAIRS · H` fp32 of dynamic shared
/// memory (the group's [CLS] rows and pooled vectors): H ≤ 1536 within the default 48 KiB (BERT-large's
/// 1024 included; wider models run on the CPU).
pub fn pooler_launch(pairs: usize, h: usize) -> Result<Launch, String> {
    if h == 0 || !h.is_multiple_of(2) {
        return Err(format!("hidden size {h} must be even and positive"));
    }
    let shared = 2 * POOLER_PAIRS * h * 4;
    if shared > MAX_DEFAULT_SHARED_BYTES {
        return Err(format!(
            "hidden size {h} needs {shared} B of shared memory in the pooler (> 48 KiB)"
        ));
    }
    Ok(Launch {
        grid: grid_of(pairs.div_ceil(POOLER_PAIRS), "pairs")?,
        block: POOLER_THREADS,
        shared_mem_bytes: shared as u32,
    })
}

/// `Err` unless a buffer of `have` elements holds `need`.
pub fn check_len(what: &str, have: usize, need: usize) -> Result<(), String> {
    if have < need {
        return Err(format!("{what} has {have} elements, needs {need}"));
    }
    Ok(())
}

/// `Err` unless the device address is a multiple of `align` bytes.
pub fn check_aligned(what: &str, addr: u64, align: u64) -> Result<(), String> {
    if !addr.is_multiple_of(align) {
        return Err(format!("{what} at {addr:#x} is not {align}-byte aligned"));
    }
    Ok(())
}

/// Element counts of the activation buffers, sized once from the token budget and reused by every batch
/// (fp16 unless noted). The last layer's [CLS] rows (n ≤ T) get their own buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivationSizes {
    /// `[T, H]` hidden states.
    pub hidden: usize,
    /// `[T, 3H]` Q | K | V.
    pub qkv: usize,
    /// `[T, H]` attention output.
    pub ctx: usize,
    /// `[T, H]` output of the out-projection and FFN-out GEMMs (before bias + residual + LayerNorm).
    pub proj: usize,
    /// `[T, I]` FFN intermediate.
    pub ffn: usize,
    /// `[n, H]` hidden states of the [CLS] rows in the last layer.
    pub cls: usize,
    /// `[n, L]` fp32 logits.
    pub logits: usize,
    /// `i32` index buffer (see [`IndexLayout::capacity`]).
    pub index: usize,
}

impl ActivationSizes {
    pub fn new(cfg: &ModelConfig, token_budget: usize) -> Self {
        let (t, h) = (token_budget, cfg.hidden_size);
        ActivationSizes {
            hidden: t * h,
            qkv: t * 3 * h,
            ctx: t * h,
            proj: t * h,
            ffn: t * cfg.intermediate_size,
            cls: t * h,
            logits: t * cfg.num_labels,
            index: IndexLayout::capacity(t, cfg.num_attention_heads).total,
        }
    }

    pub fn total_bytes(&self) -> usize {
        2 * (self.hidden + self.qkv + self.ctx + self.proj + self.ffn + self.cls)
            + 4 * (self.logits + self.index)
    }
}

/// One tensor's place in the fp16 weight allocation, in elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub offset: usize,
    pub len: usize,
}

impl Span {
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len
    }
}

/// One encoder layer's tensors, as in [`crate::weights::LayerWeights`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LayerSpans {
    pub qkv_weight: Span,
    pub qkv_bias: Span,
    pub attn_out_weight: Span,
    pub attn_out_bias: Span,
    pub attn_ln_weight: Span,
    pub attn_ln_bias: Span,
    pub ffn_in_weight: Span,
    pub ffn_in_bias: Span,
    pub ffn_out_weight: Span,
    pub ffn_out_bias: Span,
    pub ffn_ln_weight: Span,
    pub ffn_ln_bias: Span,
}

/// Every tensor of [`crate::weights::BertWeights`] in one fp16 allocation, each starting on a
/// [`WEIGHT_ALIGN_BYTES`] boundary, in the order of [`WeightLayout::entries`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightLayout {
    pub word_embeddings: Span,
    pub position_embeddings: Span,
    pub token_type_embeddings: Span,
    pub embeddings_ln_weight: Span,
    pub embeddings_ln_bias: Span,
    pub layers: Vec<LayerSpans>,
    pub pooler_weight: Span,
    pub pooler_bias: Span,
    pub classifier_weight: Span,
    pub classifier_bias: Span,
    /// Elements in the allocation, padding included.
    pub total: usize,
}

impl WeightLayout {
    pub fn new(cfg: &ModelConfig) -> Self {
        let (h, i, l) = (cfg.hidden_size, cfg.intermediate_size, cfg.num_labels);
        let align = WEIGHT_ALIGN_BYTES / 2;
        let mut at = 0;
        let mut span = |len: usize| {
            let s = Span { offset: at, len };
            at = (at + len).next_multiple_of(align);
            s
        };
        let word_embeddings = span(cfg.vocab_size * h);
        let position_embeddings = span(cfg.max_position_embeddings * h);
        let token_type_embeddings = span(cfg.type_vocab_size * h);
        let (embeddings_ln_weight, embeddings_ln_bias) = (span(h), span(h));
        let layers = (0..cfg.num_hidden_layers)
            .map(|_| LayerSpans {
                qkv_weight: span(3 * h * h),
                qkv_bias: span(3 * h),
                attn_out_weight: span(h * h),
                attn_out_bias: span(h),
                attn_ln_weight: span(h),
                attn_ln_bias: span(h),
                ffn_in_weight: span(i * h),
                ffn_in_bias: span(i),
                ffn_out_weight: span(h * i),
                ffn_out_bias: span(h),
                ffn_ln_weight: span(h),
                ffn_ln_bias: span(h),
            })
            .collect();
        let (pooler_weight, pooler_bias) = (span(h * h), span(h));
        let (classifier_weight, classifier_bias) = (span(l * h), span(l));
        WeightLayout {
            word_embeddings,
            position_embeddings,
            token_type_embeddings,
            embeddings_ln_weight,
            embeddings_ln_bias,
            layers,
            pooler_weight,
            pooler_bias,
            classifier_weight,
            classifier_bias,
            total: at,
        }
    }

    /// Every span with its checkpoint name (Q, K and V stacked under `attention.self.qkv`), in order.
    pub fn entries(&self) -> Vec<(String, Span)> {
        let mut v = vec![
            (
                "embeddings.word_embeddings.weight".to_string(),
                self.word_embeddings,
            ),
            (
                "embeddings.position_embeddings.weight".into(),
                self.position_embeddings,
            ),
            (
                "embeddings.token_type_embeddings.weight".into(),
                self.token_type_embeddings,
            ),
            (
                "embeddings.LayerNorm.weight".into(),
                self.embeddings_ln_weight,
            ),
            ("embeddings.LayerNorm.bias".into(), self.embeddings_ln_bias),
        ];
        for (n, l) in self.layers.iter().enumerate() {
            let p = format!("encoder.layer.{n}.");
            v.extend([
                (format!("{p}attention.self.qkv.weight"), l.qkv_weight),
                (format!("{p}attention.self.qkv.bias"), l.qkv_bias),
                (
                    format!("{p}attention.output.dense.weight"),
                    l.attn_out_weight,
                ),
                (format!("{p}attention.output.dense.bias"), l.attn_out_bias),
                (
                    format!("{p}attention.output.LayerNorm.weight"),
                    l.attn_ln_weight,
                ),
                (
                    format!("{p}attention.output.LayerNorm.bias"),
                    l.attn_ln_bias,
                ),
                (format!("{p}intermediate.dense.weight"), l.ffn_in_weight),
                (format!("{p}intermediate.dense.bias"), l.ffn_in_bias),
                (format!("{p}output.dense.weight"), l.ffn_out_weight),
                (format!("{p}output.dense.bias"), l.ffn_out_bias),
                (format!("{p}output.LayerNorm.weight"), l.ffn_ln_weight),
                (format!("{p}output.LayerNorm.bias"), l.ffn_ln_bias),
            ]);
        }
        v.extend([
            ("pooler.dense.weight".to_string(), self.pooler_weight),
            ("pooler.dense.bias".into(), self.pooler_bias),
            ("classifier.weight".into(), self.classifier_weight),
            ("classifier.bias".into(), self.classifier_bias),
        ]);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel_define(file: &str, name: &str) -> usize {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("kernels")
            .join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        text.lines()
            .find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some("#define") && w.next() == Some(name))
                    .then(|| w.next().unwrap().parse().unwrap())
            })
            .unwrap_or_else(|| panic!("#define {name} not found in {}", path.display()))
    }

    #[test]
    fn constants_match_the_kernel_sources() {
        assert_eq!(
            kernel_define("attention_varlen.cu", "ATTN_Q_TILE"),
            ATTN_Q_TILE
        );
        assert_eq!(
            kernel_define("attention_varlen.cu", "ATTN_THREADS"),
            ATTN_THREADS as usize
        );
        assert_eq!(
            kernel_define("common.cuh", "LN_MAX_PAIRS_PER_LANE"),
            LN_MAX_PAIRS_PER_LANE
        );
        assert_eq!(
            kernel_define("common.cuh", "LN_WIDE_VECS_PER_LANE"),
            LN_WIDE_VECS_PER_LANE
        );
    }

    /// The one-wave grids assume the kernels' `__launch_bounds__(1024)`: at most 64 registers per thread,
    /// so the planned blocks per SM are resident together on every SM with 64 K registers.
    #[test]
    fn one_wave_grids_fit_the_register_file() {
        for f in [
            "add_bias_layernorm.cu",
            "embed_layernorm.cu",
            "bias_gelu.cu",
        ] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("kernels")
                .join(f);
            let text = std::fs::read_to_string(path).unwrap();
            assert!(
                text.contains("extern \"C\" __global__ void __launch_bounds__(1024)\n"),
                "{f}"
            );
        }
        let max_regs = 65536 / 1024;
        assert!(LN_BLOCKS_PER_SM * LN_THREADS * max_regs <= 65536);
        assert!(BIAS_GELU_BLOCKS_PER_SM * ELEMENTWISE_THREADS * max_regs <= 65536);
    }

    /// `layernorm_rows_per_warp` mirrors `ln_wide_lanes` of kernels/common.cuh: 32 / L rows, L the fewest
    /// lanes (a power of two) that hold H / 8 vectors at LN_WIDE_VECS_PER_LANE each; 1 for the half2 layout.
    #[test]
    fn layernorm_rows_per_warp_follows_the_layout() {
        let cases = [
            (384, 1),  // 48 vectors: 32 lanes, 2 or 1 each
            (512, 1),  // 64 vectors: 32 lanes, 2 each
            (256, 2),  // 32 vectors: 16 lanes
            (312, 1),  // 39 vectors: 32 lanes
            (128, 4),  // 16 vectors: 8 lanes
            (24, 16),  // 3 vectors: 2 lanes
            (16, 32),  // 2 vectors: 1 lane
            (8, 32),   // 1 vector
            (520, 1),  // past 512: half2 layout
            (768, 1),  // half2 layout
            (1024, 1), // half2 layout
            (770, 1),  // H % 8 != 0: half2 layout
            (2, 1),
        ];
        for (h, want) in cases {
            assert_eq!(layernorm_rows_per_warp(h), want, "H = {h}");
        }
        for h in (8..=512).step_by(8) {
            let lanes = 32 / layernorm_rows_per_warp(h);
            assert!(lanes * LN_WIDE_VECS_PER_LANE >= h / 8, "H = {h}");
            assert!(
                lanes == 1 || lanes / 2 * LN_WIDE_VECS_PER_LANE < h / 8,
                "H = {h}"
            );
        }
    }

    /// kernels/attention_mma.cu runs on the same work items and launch shape as attention_varlen.cu
    /// (same query tile, same block, static shared memory only, within the default 48 KiB), so
    /// [`attention_launch`] serves both kernels.
    #[test]
    fn mma_attention_shares_the_launch_shape() {
        let f = "attention_mma.cu";
        assert_eq!(kernel_define(f, "ATTN_MMA_Q_TILE"), ATTN_Q_TILE);
        assert_eq!(kernel_define(f, "ATTN_MMA_THREADS"), ATTN_THREADS as usize);
        for d in ATTN_HEAD_DIMS {
            let k_tile = kernel_define(f, &format!("ATTN_MMA_HD{d}_K_TILE"));
            assert!(k_tile == 32 || k_tile == 64, "hd{d}: K tile {k_tile}");
            // The Q tile and STAGES K and STAGES V tiles, fp16: the kernel's __shared__ arrays (the
            // 4-stage A/B entry exists at head_dim 32 only).
            let mut stages = vec![kernel_define(f, "ATTN_MMA_STAGES")];
            if d == 32 {
                stages.push(kernel_define(f, "ATTN_MMA_S4_STAGES"));
            }
            for s in stages {
                let smem = (ATTN_Q_TILE + 2 * s * k_tile) * d * 2;
                assert!(
                    smem <= MAX_DEFAULT_SHARED_BYTES,
                    "hd{d}, {s} stages: {smem} B of shared memory"
                );
            }
        }
        let a = attention_launch(5, 64).unwrap();
        assert_eq!((a.grid, a.block, a.shared_mem_bytes), (5, ATTN_THREADS, 0));
    }

    const LENGTHS: [u32; 12] = [1, 2, 31, 32, 33, 63, 64, 65, 127, 128, 129, 512];

    fn cu_of(lengths: &[u32]) -> Vec<u32> {
        std::iter::once(0)
            .chain(lengths.iter().scan(0, |s, &l| {
                *s += l;
                Some(*s)
            }))
            .collect()
    }

    /// Every (pair, head, query) appears in exactly one work item, every item is valid for the kernel.
    #[test]
    fn work_lists_cover_every_query_once() {
        let cu = cu_of(&LENGTHS);
        for heads in [1, 2, 12] {
            for mode in [Queries::All, Queries::ClsOnly] {
                let work = attention_work(&cu, heads, mode);
                let mut seen = std::collections::HashMap::new();
                for &[p, h, q0, q1] in &work {
                    let len = (cu[p as usize + 1] - cu[p as usize]) as i32;
                    assert!(0 <= q0 && q0 < q1 && q1 <= len && (q1 - q0) as usize <= ATTN_Q_TILE);
                    assert!(0 <= h && (h as usize) < heads);
                    for q in q0..q1 {
                        assert!(seen.insert((p, h, q), ()).is_none(), "({p},{h},{q}) twice");
                    }
                }
                let want: usize = match mode {
                    Queries::All => LENGTHS.iter().map(|&l| l as usize).sum::<usize>() * heads,
                    Queries::ClsOnly => LENGTHS.len() * heads,
                };
                assert_eq!(seen.len(), want);
                assert!(work.len() <= max_work_items(*cu.last().unwrap() as usize, heads));
                if mode == Queries::ClsOnly {
                    assert!(work.iter().all(|w| w[2] == 0 && w[3] == 1));
                }
            }
        }
        // Tiles: 512 tokens are 8 tiles of 64; 129 are 64 + 64 + 1.
        let w = attention_work(&[0, 129], 1, Queries::All);
        assert_eq!(w, vec![[0, 0, 0, 64], [0, 0, 64, 128], [0, 0, 128, 129]]);
        // The longest pair is scheduled first.
        assert_eq!(attention_work(&[0, 1, 101], 1, Queries::All)[0][0], 1);
        assert!(attention_work(&[0], 4, Queries::All).is_empty());
    }

    #[test]
    fn max_work_items_bounds_the_worst_batches() {
        for lengths in [vec![1u32; 300], vec![64; 5], vec![65; 5], vec![512; 3]] {
            let cu = cu_of(&lengths);
            let t = *cu.last().unwrap() as usize;
            assert!(attention_work(&cu, 12, Queries::All).len() <= max_work_items(t, 12));
        }
    }

    #[test]
    fn out_offsets_follow_the_mode() {
        let cu = [0, 3, 4, 9];
        assert_eq!(out_offsets(&cu, Queries::All), vec![0, 3, 4]);
        assert_eq!(out_offsets(&cu, Queries::ClsOnly), vec![0, 1, 2]);
    }

    fn batch_of(lengths: &[u32]) -> RaggedBatch {
        let pairs: Vec<crate::EncodedPair> = lengths
            .iter()
            .map(|&l| crate::EncodedPair {
                input_ids: (0..l).map(|i| 100 + i).collect(),
                token_type_ids: (0..l).map(|i| (i >= l / 2) as u32).collect(),
            })
            .collect();
        RaggedBatch::from_pairs(&pairs)
    }

    #[test]
    fn packed_batch_round_trips_and_is_aligned() {
        let b = batch_of(&LENGTHS);
        let mut packed = PackedBatch::default();
        let lay = pack_batch(&b, 3, &mut packed).unwrap();
        let d = &packed.data;
        assert_eq!(d.len(), lay.total);
        let t = b.num_tokens();
        let n = b.num_pairs();
        let get = |at: usize, len: usize| d[at..at + len].to_vec();
        let as_i32 = |v: &[u32]| v.iter().map(|&x| x as i32).collect::<Vec<_>>();
        assert_eq!(get(lay.input_ids, t), as_i32(&b.input_ids));
        assert_eq!(get(lay.token_type_ids, t), as_i32(&b.token_type_ids));
        assert_eq!(get(lay.position_ids, t), as_i32(&b.position_ids));
        assert_eq!(get(lay.cu_seqlens, n + 1), as_i32(&b.cu_seqlens));
        assert_eq!(get(lay.cls_offsets, n), (0..n as i32).collect::<Vec<_>>());
        let flat = |w: Vec<WorkItem>| w.into_iter().flatten().collect::<Vec<_>>();
        assert_eq!(
            get(lay.work_all, 4 * lay.work_all_items),
            flat(attention_work(&b.cu_seqlens, 3, Queries::All))
        );
        assert_eq!(
            get(lay.work_cls, 4 * lay.work_cls_items),
            flat(attention_work(&b.cu_seqlens, 3, Queries::ClsOnly))
        );
        let offsets = [
            lay.input_ids,
            lay.token_type_ids,
            lay.position_ids,
            lay.cu_seqlens,
            lay.cls_offsets,
        ];
        for at in offsets
            .into_iter()
            .chain([lay.work_all, lay.work_cls, lay.total])
        {
            assert_eq!(at % 4, 0, "{lay:?}");
        }
        assert_eq!(
            (
                packed.max_input_id,
                packed.max_token_type,
                packed.max_position
            ),
            (100 + 511, 1, 511)
        );
        assert_eq!(packed.max_seqlen, 512);
        assert!(lay.total <= IndexLayout::capacity(t, 3).total);

        let mut bad = b.clone();
        bad.cu_seqlens[2] = bad.cu_seqlens[1];
        assert!(pack_batch(&bad, 3, &mut packed).is_err());
        bad = b.clone();
        bad.position_ids.pop();
        assert!(pack_batch(&bad, 3, &mut packed).is_err());
    }

    /// The old `pack_batch`: work lists built by [`attention_work`] and [`out_offsets`], copied into a
    /// zeroed buffer.
    fn pack_reference(b: &RaggedBatch, heads: usize) -> (IndexLayout, PackedBatch) {
        let cu = &b.cu_seqlens;
        let work_all = attention_work(cu, heads, Queries::All);
        let work_cls = attention_work(cu, heads, Queries::ClsOnly);
        let n = b.num_pairs();
        let lay = IndexLayout::new(b.num_tokens(), n, work_all.len(), work_cls.len());
        let mut data = vec![0; lay.total];
        let mut put = |at: usize, v: Vec<i32>| data[at..at + v.len()].copy_from_slice(&v);
        let as_i32 = |v: &[u32]| v.iter().map(|&x| x as i32).collect::<Vec<_>>();
        put(lay.input_ids, as_i32(&b.input_ids));
        put(lay.token_type_ids, as_i32(&b.token_type_ids));
        put(lay.position_ids, as_i32(&b.position_ids));
        put(lay.cu_seqlens, as_i32(cu));
        put(lay.cls_offsets, out_offsets(cu, Queries::ClsOnly));
        put(lay.work_all, work_all.into_iter().flatten().collect());
        put(lay.work_cls, work_cls.into_iter().flatten().collect());
        let max = |v: &[u32]| v.iter().copied().max().unwrap_or(0);
        let packed = PackedBatch {
            data,
            max_input_id: max(&b.input_ids),
            max_token_type: max(&b.token_type_ids),
            max_position: max(&b.position_ids),
            max_seqlen: cu
                .windows(2)
                .map(|w| (w[1] - w[0]) as usize)
                .max()
                .unwrap_or(0),
        };
        (lay, packed)
    }

    /// Ragged batches of random lengths (1 to 512, ties, rising as `plan_batches` orders them, or in any
    /// order), packed one after another into one reused buffer: the same bytes and facts as the reference.
    #[test]
    fn packing_matches_the_reference_on_ragged_batches() {
        let mut rng = crate::bench::Rng::new(11);
        let mut packed = PackedBatch::default();
        for round in 0..60 {
            let n = [1, 2, 3, 7, 50, 143][round % 6];
            let mut lengths: Vec<u32> = (0..n)
                .map(|_| match rng.range(0, 9) {
                    0 => 1,
                    1 => 512,
                    2 => 64 * rng.range(1, 8) as u32,
                    _ => rng.range(1, 300) as u32,
                })
                .collect();
            if round % 2 == 0 {
                lengths.sort();
            }
            let mut b = batch_of(&lengths);
            b.input_ids
                .iter_mut()
                .for_each(|x| *x = rng.range(0, 30521) as u32);
            for heads in [1, 3, 12] {
                let lay = pack_batch(&b, heads, &mut packed).unwrap();
                let (want_lay, want) = pack_reference(&b, heads);
                assert_eq!(lay, want_lay, "{lengths:?}, {heads} heads");
                assert_eq!(packed, want, "{lengths:?}, {heads} heads");
            }
        }
        let empty = RaggedBatch::from_pairs(&[]);
        let lay = pack_batch(&empty, 12, &mut packed).unwrap();
        assert_eq!(
            (lay, &packed),
            (pack_reference(&empty, 12).0, &pack_reference(&empty, 12).1)
        );
    }

    /// The capacity layout is at least as large as the layout of any batch within the budget.
    #[test]
    fn capacity_layout_holds_every_batch() {
        let budget = 600;
        for lengths in [
            vec![1u32; 600],
            vec![600],
            vec![64; 9],
            vec![1, 599],
            vec![3; 200],
        ] {
            let b = batch_of(&lengths);
            let mut packed = PackedBatch::default();
            let lay = pack_batch(&b, 12, &mut packed).unwrap();
            assert!(
                lay.total <= IndexLayout::capacity(budget, 12).total,
                "{lengths:?}"
            );
        }
    }

    #[test]
    fn launch_shapes_and_preconditions() {
        let ln = layernorm_launch(1000, 384).unwrap();
        assert_eq!((ln.grid, ln.block), (250, 128));
        assert_eq!(layernorm_launch(1001, 384).unwrap().grid, 251);
        assert_eq!(layernorm_launch(3, 1024).unwrap().grid, 1);
        assert!(layernorm_launch(3, 1026).is_err());
        assert!(layernorm_launch(3, 383).is_err());
        assert_eq!(layernorm_launch(0, 384).unwrap().grid, 0);
        // 16-byte layout with several rows per warp: H = 128 is 4 rows per warp, 16 per block.
        assert_eq!(layernorm_launch(1000, 128).unwrap().grid, 63);
        assert_eq!(layernorm_launch(1000, 768).unwrap().grid, 250);
        // One full wave: 8 blocks of 128 per SM, the warps loop over the rest.
        let on = layernorm_launch_on(16343, 384, 132).unwrap();
        assert_eq!((on.grid, on.block), (132 * 8, 128));
        assert_eq!(layernorm_launch_on(1000, 384, 132).unwrap().grid, 250);
        assert_eq!(layernorm_launch_on(0, 384, 132).unwrap().grid, 0);
        assert!(layernorm_launch_on(3, 1026, 132).is_err());
        let big = layernorm_launch(i32::MAX as usize, 2).unwrap();
        assert!(big.grid as u64 * big.block as u64 <= 1 << 30);

        // bias_gelu: two 16-byte groups per thread, at most 4 blocks of 256 per SM.
        let g = bias_gelu_launch(16343, 1536, 132).unwrap();
        assert_eq!((g.grid, g.block), (132 * 4, 256));
        assert_eq!(bias_gelu_launch(10, 1536, 132).unwrap().grid, 4); // 1920 groups
        assert_eq!(bias_gelu_launch(10, 1530, 132).unwrap().grid, 15); // 7650 half2 pairs
        assert_eq!(bias_gelu_launch(1, 2, 132).unwrap().grid, 1);
        assert_eq!(bias_gelu_launch(0, 1536, 132).unwrap().grid, 0);
        assert!(bias_gelu_launch(1, 3, 132).is_err());
        assert!(bias_gelu_launch(1 << 21, 1 << 10, 132).is_err());

        let e = elementwise_launch(1000, 1536, 132).unwrap();
        assert_eq!(
            (e.grid, e.block),
            ((1000 * 768usize).div_ceil(256).min(132 * 8) as u32, 256)
        );
        assert_eq!(elementwise_launch(1, 2, 132).unwrap().grid, 1);
        assert_eq!(elementwise_launch(0, 2, 132).unwrap().grid, 0);
        assert!(elementwise_launch(1, 3, 132).is_err());
        assert!(elementwise_launch(1 << 21, 1 << 10, 132).is_err());

        let a = attention_launch(77, 32).unwrap();
        assert_eq!((a.grid, a.block, a.shared_mem_bytes), (77, ATTN_THREADS, 0));
        assert!(attention_launch(1, 48).is_err());
        assert!(attention_launch(1, 64).is_ok());

        let p = pooler_launch(5, 384).unwrap();
        assert_eq!(
            (p.grid, p.block, p.shared_mem_bytes),
            (2, POOLER_THREADS, 2 * 4 * 1536)
        );
        assert_eq!(pooler_launch(143, 384).unwrap().grid, 36);
        let g = gemm_bias_gelu_launch(16_343, 384, 1536, GBG_THREADS).unwrap();
        assert_eq!((g.grid, g.block, g.shared_mem_bytes), (128 * 12, 256, 0));
        let g = gemm_bias_gelu_launch(16_343, 384, 1536, GBG_W64_THREADS).unwrap();
        assert_eq!((g.grid, g.block), (128 * 12, 128));
        assert_eq!(gemm_bias_gelu_launch(1, 32, 128, 256).unwrap().grid, 1);
        assert_eq!(gemm_bias_gelu_launch(0, 384, 1536, 256).unwrap().grid, 0);
        assert!(
            gemm_bias_gelu_launch(5, 48, 128, 256).is_err()
                && gemm_bias_gelu_launch(5, 64, 100, 256).is_err()
        );
        let f = "gemm_bias_gelu.cu";
        assert_eq!(
            [
                kernel_define(f, "GBG_BM"),
                kernel_define(f, "GBG_BN"),
                kernel_define(f, "GBG_BK"),
                kernel_define(f, "GBG_THREADS"),
                kernel_define(f, "GBG_W64_THREADS"),
            ],
            [
                GBG_BM,
                GBG_BN,
                GBG_BK,
                GBG_THREADS as usize,
                GBG_W64_THREADS as usize
            ]
        );
        // The three stages of both tiles are the kernel's static shared memory: within 48 KiB.
        let stages = kernel_define(f, "GBG_STAGES");
        assert!(stages * (GBG_BM + GBG_BN) * GBG_BK * 2 <= MAX_DEFAULT_SHARED_BYTES);
        assert!(pooler_launch(5, 1536).is_ok() && pooler_launch(5, 1538).is_err());
        assert_eq!(
            kernel_define("pooler_classifier.cu", "POOLER_PAIRS"),
            POOLER_PAIRS
        );
        assert!(pooler_launch(5, 13000).is_err());
        assert!(pooler_launch(5, 7).is_err());

        assert!(check_len("x", 9, 10).is_err() && check_len("x", 10, 10).is_ok());
        assert!(check_aligned("x", 0x1010, 16).is_ok() && check_aligned("x", 0x1004, 16).is_err());
    }

    fn minilm() -> ModelConfig {
        ModelConfig::from_json_str(
            r#"{"model_type":"bert","hidden_size":384,"num_attention_heads":12,"num_hidden_layers":6,
            "intermediate_size":1536,"max_position_embeddings":512,"type_vocab_size":2,"vocab_size":30522,
            "num_labels":1}"#,
        )
        .unwrap()
    }

    #[test]
    fn activation_sizes_follow_the_budget() {
        let s = ActivationSizes::new(&minilm(), 16384);
        assert_eq!(
            (s.hidden, s.qkv, s.ffn, s.cls, s.logits),
            (16384 * 384, 16384 * 1152, 16384 * 1536, 16384 * 384, 16384)
        );
        assert_eq!(s.index, IndexLayout::capacity(16384, 12).total);
        // About 8.4 KiB per token of fp16 activations for MiniLM-L6, plus the index buffer.
        assert_eq!(
            2 * (s.hidden + s.qkv + s.ctx + s.proj + s.ffn + s.cls),
            16384 * 2 * (7 * 384 + 1536)
        );
        assert!(s.total_bytes() < 200 << 20);
    }

    #[test]
    fn weight_layout_is_aligned_disjoint_and_complete() {
        let cfg = minilm();
        let lay = WeightLayout::new(&cfg);
        let entries = lay.entries();
        assert_eq!(entries.len(), 5 + 12 * 6 + 4);
        let mut end = 0;
        for (name, s) in &entries {
            assert_eq!((s.offset * 2) % WEIGHT_ALIGN_BYTES, 0, "{name}");
            assert!(s.offset >= end, "{name} overlaps its predecessor");
            end = s.offset + s.len;
        }
        assert!(end <= lay.total && lay.total - end < WEIGHT_ALIGN_BYTES / 2 + 1);
        let params: usize = entries.iter().map(|e| e.1.len).sum();
        // MiniLM-L6 cross-encoder: 22.7 M parameters.
        assert_eq!(
            params,
            30522 * 384
                + 512 * 384
                + 2 * 384
                + 2 * 384
                + 6 * (4 * 384 * 384 + 2 * 384 * 1536 + 9 * 384 + 1536)
                + 384 * 384
                + 384
                + 384
                + 1
        );
        assert_eq!(entries[5].0, "encoder.layer.0.attention.self.qkv.weight");
        assert_eq!(entries[5].1.len, 3 * 384 * 384);
    }
}
