//! Which kernel entry point a launch runs: every entry of kernels/*.cu with its parameter types, and the
//! pure functions that pick one from the options and the shape. The launchers and the forward pass pick
//! through these and nothing else, so [`forward_entries`] is what a forward pass launches; a test holds
//! the default set against kernels/VERIFIED.tsv, the entry points that passed `scripts/gpu-check.sh`.

use super::gemm_bias_gelu_launch;
use crate::options::{AttentionKernel, CudaOptions, FfnIn, GbgWarps, Pooler, Residual};

/// One kernel entry point: the kernels/ file it is compiled from (without `.cu`), its name, and its C
/// parameter types in order, as declared in the file (a test compares them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub file: &'static str,
    pub name: &'static str,
    pub params: &'static str,
}

const fn entry(file: &'static str, name: &'static str, params: &'static str) -> Entry {
    Entry { file, name, params }
}

const ATTENTION: &str =
    "const __half*, __half*, const int*, const int*, const int4*, int, int, float";
const GEMM_BIAS_GELU: &str = "const __half*, const __half*, const __half*, __half*, int, int, int";
const POOLER: &str = "const __half*, const __half*, const __half*, const __half*, const __half*, float*, int, int, int";

/// Every entry point of kernels/*.cu, each loaded once when a GPU is opened.
pub const ENTRIES: &[Entry] = &[
    entry("embed_layernorm", "embed_layernorm_f16", "const int*, const int*, const int*, const __half*, const __half*, const __half*, const __half*, const __half*, __half*, int, int, float"),
    entry("attention_varlen", "attention_varlen_hd32_f16", ATTENTION),
    entry("attention_varlen", "attention_varlen_hd64_f16", ATTENTION),
    entry("attention_mma", "attention_mma_hd32_f16", ATTENTION),
    entry("attention_mma", "attention_mma_hd64_f16", ATTENTION),
    entry("attention_mma", "attention_mma_v3_hd32_f16", ATTENTION),
    entry("attention_mma", "attention_mma_v3_hd64_f16", ATTENTION),
    entry("attention_mma", "attention_mma_v3_s4_hd32_f16", ATTENTION),
    entry("bias_gelu", "bias_gelu_f16", "__half*, const __half*, int, int"),
    entry("add_bias_layernorm", "add_bias_residual_layernorm_f16", "const __half*, const __half*, const __half*, const __half*, const __half*, __half*, int, int, float"),
    entry("add_bias_layernorm", "layernorm_f16", "const __half*, const __half*, const __half*, __half*, int, int, float"),
    entry("gather_rows", "gather_rows_f16", "const __half*, const int*, __half*, int, int"),
    entry("gemm_bias_gelu", "gemm_bias_gelu_f16", GEMM_BIAS_GELU),
    entry("gemm_bias_gelu", "gemm_bias_gelu_w64_f16", GEMM_BIAS_GELU),
    entry("pooler_classifier", "pooler_classifier_f16", POOLER),
    entry("pooler_classifier", "pooler_classifier_v4_f16", POOLER),
];

/// The entry of `name`, if there is one.
pub fn find_entry(name: &str) -> Option<&'static Entry> {
    ENTRIES.iter().find(|e| e.name == name)
}

pub const EMBED_LAYERNORM: &str = "embed_layernorm_f16";
pub const BIAS_GELU: &str = "bias_gelu_f16";
pub const ADD_BIAS_RESIDUAL_LAYERNORM: &str = "add_bias_residual_layernorm_f16";
pub const LAYERNORM: &str = "layernorm_f16";
pub const GATHER_ROWS: &str = "gather_rows_f16";

/// Head dims that have an attention kernel.
pub const ATTN_HEAD_DIMS: [usize; 2] = [32, 64];

/// The attention entry of `kernel` at `head_dim`; None where there is none (head_dim not 32 or 64).
pub fn attention_entry(kernel: AttentionKernel, head_dim: usize) -> Option<&'static str> {
    use AttentionKernel::*;
    Some(match (kernel, head_dim) {
        (Simt, 32) => "attention_varlen_hd32_f16",
        (Simt, 64) => "attention_varlen_hd64_f16",
        (Mma, 32) => "attention_mma_hd32_f16",
        (Mma, 64) => "attention_mma_hd64_f16",
        (MmaV3, 32) => "attention_mma_v3_hd32_f16",
        (MmaS4, 32) => "attention_mma_v3_s4_hd32_f16",
        // The 4-stage ring exists at head_dim 32 only: v3's 2-stage entry elsewhere.
        (MmaV3 | MmaS4, 64) => "attention_mma_v3_hd64_f16",
        _ => return None,
    })
}

/// The pooler_classifier entry of `pooler`.
pub fn pooler_entry(pooler: Pooler) -> &'static str {
    match pooler {
        Pooler::V3 => "pooler_classifier_f16",
        Pooler::V4 => "pooler_classifier_v4_f16",
    }
}

/// The gemm_bias_gelu entry of a warp layout and its threads per block ([`super::GBG_THREADS`] or
/// [`super::GBG_W64_THREADS`]).
pub fn gemm_bias_gelu_entry(warps: GbgWarps) -> (&'static str, u32) {
    match warps {
        GbgWarps::W32 => ("gemm_bias_gelu_f16", super::GBG_THREADS),
        GbgWarps::W64 => ("gemm_bias_gelu_w64_f16", super::GBG_W64_THREADS),
    }
}

/// How the forward pass runs the FFN's first half for `ffn_in` at hidden size `h` and intermediate size
/// `inter`: the fused kernel where asked for and the FFN's shape fits it (h % 32 == 0, inter % 128 ==
/// 0), else the GEMM and then bias_gelu.
pub fn ffn_in_path(ffn_in: FfnIn, h: usize, inter: usize) -> FfnIn {
    match ffn_in {
        FfnIn::Fused(w)
            if gemm_bias_gelu_launch(1, h, inter, gemm_bias_gelu_entry(w).1).is_ok() =>
        {
            ffn_in
        }
        _ => FfnIn::GemmThenGelu,
    }
}

/// The LayerNorm entry that ends a sub-layer when the residual is added where `residual` says.
pub fn residual_layernorm_entry(residual: Residual) -> &'static str {
    match residual {
        Residual::InLayerNorm => ADD_BIAS_RESIDUAL_LAYERNORM,
        Residual::InGemm => LAYERNORM,
    }
}

/// The entry points a forward pass launches with `options` for a model of head dim `head_dim`, hidden
/// size `h` and intermediate size `inter`, in order of first launch (the GEMMs are cuBLAS's). None if
/// `head_dim` has no attention kernel.
pub fn forward_entries(
    options: &CudaOptions,
    head_dim: usize,
    h: usize,
    inter: usize,
) -> Option<Vec<&'static str>> {
    let mut v = vec![
        EMBED_LAYERNORM,
        attention_entry(options.attention, head_dim)?,
    ];
    v.push(residual_layernorm_entry(options.residual));
    match ffn_in_path(options.ffn_in, h, inter) {
        FfnIn::Fused(w) => v.push(gemm_bias_gelu_entry(w).0),
        _ => v.push(BIAS_GELU),
    }
    v.push(GATHER_ROWS);
    v.push(pooler_entry(options.pooler));
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every entry a selection function can return is in [`ENTRIES`].
    #[test]
    fn every_selected_entry_exists() {
        let kernels = AttentionKernel::names().map(|n| n.parse::<AttentionKernel>().unwrap());
        for k in kernels {
            for d in ATTN_HEAD_DIMS {
                let e = attention_entry(k, d).unwrap();
                assert!(find_entry(e).is_some(), "{k:?} hd{d}: {e}");
                assert!(e.contains(&format!("hd{d}")), "{k:?} hd{d}: {e}");
            }
            assert_eq!(attention_entry(k, 96), None);
        }
        for p in Pooler::names() {
            assert!(find_entry(pooler_entry(p.parse().unwrap())).is_some());
        }
        for w in [GbgWarps::W32, GbgWarps::W64] {
            assert!(find_entry(gemm_bias_gelu_entry(w).0).is_some());
        }
        for name in [
            EMBED_LAYERNORM,
            BIAS_GELU,
            ADD_BIAS_RESIDUAL_LAYERNORM,
            LAYERNORM,
            GATHER_ROWS,
        ] {
            assert!(find_entry(name).is_some(), "{name}");
        }
        let mut names: Vec<&str> = ENTRIES.iter().map(|e| e.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ENTRIES.len(), "an entry listed twice");
    }

    /// The entry points the default options launch, for every head_dim that has kernels, are exactly those
    /// of kernels/VERIFIED.tsv: the ones a gpu-check run verified (scripts/check_kernels.py holds each to
    /// the PTX that ran). A new default must be verified on a GPU first; until then it is an A/B candidate.
    #[test]
    fn the_default_kernels_are_the_gpu_verified_ones() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels/VERIFIED.tsv");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut rows = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty());
        let header: Vec<&str> = rows.next().unwrap().split('\t').collect();
        assert_eq!(header[0], "entry");
        let mut verified: Vec<&str> = rows
            .map(|l| {
                let cells: Vec<&str> = l.split('\t').collect();
                assert_eq!(cells.len(), header.len(), "{l}");
                cells[0]
            })
            .collect();
        verified.sort();
        let mut defaults: Vec<&str> = ATTN_HEAD_DIMS
            .iter()
            .flat_map(|&d| forward_entries(&CudaOptions::default(), d, 384, 1536).unwrap())
            .collect();
        defaults.sort();
        defaults.dedup();
        assert_eq!(
            defaults, verified,
            "the default kernels must be the GPU-verified ones of kernels/VERIFIED.tsv"
        );
    }

    #[test]
    fn the_fused_ffn_runs_only_where_the_shape_fits() {
        let fused = FfnIn::Fused(GbgWarps::W64);
        assert_eq!(ffn_in_path(fused, 384, 1536), fused);
        assert_eq!(ffn_in_path(fused, 312, 1200), FfnIn::GemmThenGelu);
        assert_eq!(
            ffn_in_path(FfnIn::GemmThenGelu, 384, 1536),
            FfnIn::GemmThenGelu
        );
    }

    #[test]
    fn a_forward_pass_launches_one_entry_per_step() {
        let d = CudaOptions::default();
        assert_eq!(
            forward_entries(&d, 32, 384, 1536).unwrap(),
            [
                "embed_layernorm_f16",
                "attention_mma_hd32_f16",
                "add_bias_residual_layernorm_f16",
                "bias_gelu_f16",
                "gather_rows_f16",
                "pooler_classifier_f16"
            ]
        );
        let mut o = d;
        o.attention = AttentionKernel::MmaS4;
        o.ffn_in = FfnIn::Fused(GbgWarps::W32);
        o.residual = Residual::InGemm;
        o.pooler = Pooler::V4;
        assert_eq!(
            forward_entries(&o, 64, 128, 256).unwrap(),
            [
                "embed_layernorm_f16",
                "attention_mma_v3_hd64_f16",
                "layernorm_f16",
                "gemm_bias_gelu_f16",
                "gather_rows_f16",
                "pooler_classifier_v4_f16"
            ]
        );
        assert!(forward_entries(&d, 48, 384, 1536).is_none());
    }
}
