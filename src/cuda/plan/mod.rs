//! The arithmetic of every launch, in Rust: attention work lists and the packed index buffer of a batch
//! (`work`), which entry point each launch runs (`entry`), launch shapes with the kernels'
//! preconditions (`launch`), and buffer sizes and the fp16 weight layout (`layout`). No CUDA here, so
//! all of it is unit-tested on machines without a GPU.

mod entry;
mod launch;
mod layout;
mod work;

pub use entry::*;
pub use launch::*;
pub use layout::*;
pub use work::*;

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

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn kernel_define(file: &str, name: &str) -> usize {
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
}
