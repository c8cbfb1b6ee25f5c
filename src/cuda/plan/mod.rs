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

// The numbers the kernels and the launchers share (ATTN_Q_TILE, ATTN_THREADS, LN_*, BIAS_GELU_ROWS, GBG_*,
// POOLER_*, ...): kernels/constants.cuh, turned into Rust by build.rs.
include!(concat!(env!("OUT_DIR"), "/kernel_constants.rs"));

/// Threads per LayerNorm block: 4 warps, each one row at a time (half2 layout) or 32 / L rows (16-byte
/// layout, see [`layernorm_rows_per_warp`]).
pub const LN_THREADS: u32 = 128;
/// Resident [`LN_THREADS`]-blocks per SM of the LayerNorm kernels: their
/// `__launch_bounds__(ROWWISE_MAX_THREADS)` caps registers at 64, and 8 · 128 threads · 64 registers fill the
/// 64 K registers of an SM. A grid of this many blocks per SM is one full wave in which every warp loops
/// over rows, loading its next row early.
pub const LN_BLOCKS_PER_SM: u32 = 8;
/// Resident [`ELEMENTWISE_THREADS`]-blocks per SM of bias_gelu (64 registers at most, as above: 4 · 256).
pub const BIAS_GELU_BLOCKS_PER_SM: u32 = 4;
/// 16-byte vectors (or half2 pairs) per thread that bias_gelu's grid is sized for below one full wave
/// (e.g. the last layer's `[CLS]` rows). Not [`BIAS_GELU_ROWS`], the rows a thread loads per iteration: that
/// went from 2 to 4 in bias_gelu v5 (docs/gpu-perf-notes.md) while the grid kept this sizing, and every GPU
/// run since measured it so. A thread given 2 rows runs the kernel's one-row tail loop twice; sizing for
/// BIAS_GELU_ROWS would halve such grids and has not been measured (large launches are one full wave
/// either way).
pub const BIAS_GELU_GRID_VECTORS_PER_THREAD: usize = 2;
/// Alignment of every tensor in the one fp16 weight allocation.
pub const WEIGHT_ALIGN_BYTES: usize = 256;
/// Threads per block of the elementwise kernels (bias_gelu, gather_rows).
pub const ELEMENTWISE_THREADS: u32 = 256;
/// Grid-stride kernels get at most this many blocks per SM: enough to fill it, no more.
pub const BLOCKS_PER_SM: u32 = 8;
/// Shared memory a kernel may take without opting in: the pooler's dynamic `2 · POOLER_PAIRS · H` floats
/// must fit.
pub const MAX_DEFAULT_SHARED_BYTES: usize = 48 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel_sources() -> Vec<(String, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
        let mut v: Vec<(String, String)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "cu" || x == "cuh"))
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                (name, std::fs::read_to_string(&p).unwrap())
            })
            .collect();
        v.sort();
        v
    }

    /// kernels/constants.cuh is the one source of its numbers: no other kernel file defines one of its
    /// names again, every name is used by a kernel, and every kernel file sees it (through common.cuh).
    #[test]
    fn shared_constants_have_one_source() {
        let sources = kernel_sources();
        let constants = &sources
            .iter()
            .find(|(n, _)| n == "constants.cuh")
            .unwrap()
            .1;
        let names: Vec<&str> = constants
            .lines()
            .filter_map(|l| l.strip_prefix("#define "))
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert!(names.len() >= 15, "{names:?}");
        for name in &names {
            let mut used = false;
            for (file, text) in sources.iter().filter(|(n, _)| n != "constants.cuh") {
                let redefined = text.lines().any(|l| {
                    let mut w = l.split_whitespace();
                    w.next() == Some("#define") && w.next() == Some(name)
                });
                assert!(!redefined, "{file} defines {name} again");
                used |= text.contains(name);
            }
            assert!(used, "{name} is used by no kernel");
        }
        for (file, text) in &sources {
            if file.ends_with(".cu") {
                assert!(text.contains("#include \"common.cuh\""), "{file}");
            }
        }
        assert!(sources
            .iter()
            .any(|(n, t)| n == "common.cuh" && t.contains("#include \"constants.cuh\"")));
    }

    /// The one-wave grids assume the row-wise kernels' `__launch_bounds__(ROWWISE_MAX_THREADS)`: at most
    /// 64 registers per thread, so the planned blocks per SM are resident together on every SM with 64 K
    /// registers.
    #[test]
    fn one_wave_grids_fit_the_register_file() {
        let sources = kernel_sources();
        for f in [
            "add_bias_layernorm.cu",
            "embed_layernorm.cu",
            "bias_gelu.cu",
        ] {
            let text = &sources.iter().find(|(n, _)| n == f).unwrap().1;
            let entries = text.matches("extern \"C\" __global__ void").count();
            let bounded = text
                .matches("extern \"C\" __global__ void __launch_bounds__(ROWWISE_MAX_THREADS)\n")
                .count();
            assert_eq!(bounded, entries, "{f}");
        }
        let max_regs = 65536 / ROWWISE_MAX_THREADS;
        assert_eq!(max_regs, 64);
        assert!(LN_BLOCKS_PER_SM * LN_THREADS * max_regs <= 65536);
        assert!(BIAS_GELU_BLOCKS_PER_SM * ELEMENTWISE_THREADS * max_regs <= 65536);
    }
}
