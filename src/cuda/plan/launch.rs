//! Launch shapes: grid, block and shared memory of each kernel, with the preconditions the kernels rely
//! on, and the length and alignment checks the launchers make.

use super::*;

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
/// n % 8 != 0) that it walks down; a grid sized for [`BIAS_GELU_GRID_VECTORS_PER_THREAD`] vectors per
/// thread, at most one full wave of [`BIAS_GELU_BLOCKS_PER_SM`] blocks per SM. n even, rows · n ≤ 2^31 - 1.
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
    let per_block = ELEMENTWISE_THREADS as usize * BIAS_GELU_GRID_VECTORS_PER_THREAD;
    let cap = (sm_count.max(1) * BIAS_GELU_BLOCKS_PER_SM) as usize;
    Ok(Launch {
        grid: vectors.div_ceil(per_block).min(cap) as u32,
        block: ELEMENTWISE_THREADS,
        shared_mem_bytes: 0,
    })
}

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

/// pooler_classifier: one block per [`POOLER_PAIRS`] pairs, `2 · POOLER_PAIRS · H` fp32 of dynamic shared
/// memory (the group's `[CLS]` rows and pooled vectors): H ≤ 1536 within the default 48 KiB (BERT-large's
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

/// `out[rows, n] = x[rows, k] · w[n, k]ᵀ`: `Err` unless x, w and out (element counts) hold those extents;
/// the extents as the `int`s BLAS takes, or `Err` if one does not fit.
pub fn gemm_dims(
    x: usize,
    w: usize,
    out: usize,
    rows: usize,
    k: usize,
    n: usize,
) -> Result<(i32, i32, i32), String> {
    check_len("x", x, rows * k)
        .and(check_len("w", w, n * k))
        .and(check_len("out", out, rows * n))?;
    let fit = |v: usize| i32::try_from(v).map_err(|_| format!("dimension {v} does not fit an int"));
    Ok((fit(rows)?, fit(k)?, fit(n)?))
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

#[cfg(test)]
mod tests {
    use super::*;

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
    /// (same query tile and block: ATTN_Q_TILE and ATTN_THREADS of constants.cuh, static shared memory
    /// only, within the default 48 KiB), so [`attention_launch`] serves both kernels.
    #[test]
    fn mma_attention_shares_the_launch_shape() {
        assert_eq!(ATTN_THREADS as usize, 2 * ATTN_Q_TILE);
        for (d, k_tile) in [(32, ATTN_MMA_HD32_K_TILE), (64, ATTN_MMA_HD64_K_TILE)] {
            assert!(k_tile == 32 || k_tile == 64, "hd{d}: K tile {k_tile}");
            // The Q tile and STAGES K and STAGES V tiles, fp16: the kernel's __shared__ arrays (2 stages
            // for the default entries and v3's, 4 for v3's 4-stage entry at head_dim 32 only).
            let mut stages = vec![2, ATTN_MMA_STAGES];
            if d == 32 {
                stages.push(ATTN_MMA_S4_STAGES);
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
        // The stages of both tiles are the kernel's static shared memory: within 48 KiB.
        const { assert!(GBG_STAGES * (GBG_BM + GBG_BN) * GBG_BK * 2 <= MAX_DEFAULT_SHARED_BYTES) };
        assert!(pooler_launch(5, 1536).is_ok() && pooler_launch(5, 1538).is_err());
        assert!(pooler_launch(5, 13000).is_err());
        assert!(pooler_launch(5, 7).is_err());

        assert!(check_len("x", 9, 10).is_err() && check_len("x", 10, 10).is_ok());
        assert!(check_aligned("x", 0x1010, 16).is_ok() && check_aligned("x", 0x1004, 16).is_err());
    }
}
