//! Typed options: where the model runs ([`Device`]), which kernels and GEMM path the CUDA backend runs, which tokenizer engine encodes.
//!
//! The library never reads the environment for these. A caller sets them on the builder
//! ([`crate::CrossEncoderBuilder::cuda_options`], [`crate::CrossEncoderBuilder::tokenizer_options`]);
//! the CLI exposes each as a flag that also reads the conventional variable (`--attention` /
//! `XENC_ATTENTION`, ...), so `scripts/gpu-check.sh` keeps working. A value that names nothing is an
//! [`Error::Option`](crate::Error) naming the value and what is accepted, never a silent fallback.
//!
//! ```
//! use xenc::{AttentionKernel, CudaOptions};
//! let mut opts = CudaOptions::default(); // the GPU-verified kernels
//! opts.attention = "simt".parse()?;
//! assert_eq!(opts.attention, AttentionKernel::Simt);
//! assert!("fast".parse::<AttentionKernel>().is_err());
//! # Ok::<(), xenc::Error>(())
//! ```

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Where the model runs.
///
/// ```no_run
/// use xenc::{CrossEncoder, Device};
/// let model = CrossEncoder::builder("models/ms-marco-MiniLM-L-6-v2").device(Device::Auto).build()?;
/// println!("running on {}", model.device_name()); // "cpu (16 threads)" or "cuda:0 NVIDIA H100 ..."
/// # Ok::<(), xenc::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    Cpu,
    /// A CUDA device by ordinal.
    Cuda(usize),
    /// GPU 0 when it is usable (libcuda, cuBLAS, a device, a supported model shape), else the CPU, with
    /// the reason logged once per process (`log::warn!`).
    #[default]
    Auto,
}

/// `cpu`, `cuda` (device 0), `cuda:N` or `auto`, as the CLI, the server and the Python package spell it.
///
/// ```
/// use xenc::Device;
/// assert_eq!("cuda:1".parse::<Device>().unwrap(), Device::Cuda(1));
/// assert!("tpu".parse::<Device>().is_err());
/// ```
impl std::str::FromStr for Device {
    type Err = Error;

    fn from_str(s: &str) -> Result<Device> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "auto" => Ok(Device::Auto),
            "cuda" => Ok(Device::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| {
                    Error::Option(format!(
                        "unknown device {s:?}: expected cpu, cuda, cuda:N or auto"
                    ))
                }),
        }
    }
}

/// An option enum's names: each value's spelling on the command line and in its variable.
trait Named: Sized + Copy + 'static {
    /// The variable the CLI reads this option from, for error messages.
    const VAR: &'static str;
    const ALL: &'static [(&'static str, Self)];
}

fn parse_named<T: Named + PartialEq>(value: &str) -> Result<T> {
    let v = value.trim().to_ascii_lowercase();
    T::ALL
        .iter()
        .find(|(name, _)| *name == v)
        .map(|&(_, x)| x)
        .ok_or_else(|| {
            let names: Vec<&str> = T::ALL.iter().map(|(n, _)| *n).collect();
            Error::Option(format!(
                "{}={value:?}: expected one of {}",
                T::VAR,
                names.join(", ")
            ))
        })
}

fn name_of<T: Named + PartialEq>(x: &T) -> &'static str {
    T::ALL
        .iter()
        .find(|(_, v)| v == x)
        .map(|(n, _)| *n)
        .expect("every value has a name")
}

macro_rules! named {
    ($t:ty, $var:literal, [$(($name:literal, $value:expr)),+ $(,)?]) => {
        impl Named for $t {
            const VAR: &'static str = $var;
            const ALL: &'static [(&'static str, Self)] = &[$(($name, $value)),+];
        }
        impl FromStr for $t {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                parse_named(s)
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(name_of(self))
            }
        }
        impl $t {
            /// Every accepted spelling, the default first.
            pub fn names() -> impl Iterator<Item = &'static str> {
                <Self as Named>::ALL.iter().map(|(n, _)| *n)
            }
        }
    };
}

/// Which kernel computes attention. All have the same contract and work items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AttentionKernel {
    /// kernels/attention_mma.cu: tensor cores (mma.sync m16n8k16), FlashAttention-2 style; the version
    /// (v2, `attention_mma_hd32_f16` / `_hd64_f16`) that passed `scripts/gpu-check.sh`.
    #[default]
    Mma,
    /// kernels/attention_varlen.cu: SIMT, two threads per query (the readable reference).
    Simt,
    /// The tensor-core kernel's v3 (`attention_mma_v3_*`: ~40% fewer instructions per K/V tile), an A/B
    /// candidate not yet run on a GPU.
    MmaV3,
    /// v3 with a 4-stage K/V cp.async ring instead of 2 (`attention_mma_v3_s4_hd32_f16`), an A/B
    /// candidate not yet run on a GPU. head_dim 32 only; other head dims run [`Self::MmaV3`].
    MmaS4,
}
named!(
    AttentionKernel,
    "XENC_ATTENTION",
    [
        ("mma", AttentionKernel::Mma),
        ("simt", AttentionKernel::Simt),
        ("mma-v3", AttentionKernel::MmaV3),
        ("mma-s4", AttentionKernel::MmaS4)
    ]
);

/// Which version of kernels/pooler_classifier.cu computes the pooler and the classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Pooler {
    /// `pooler_classifier_f16`: four pairs per block, each warp one pooler output at a time (passed
    /// `scripts/gpu-check.sh`).
    #[default]
    V3,
    /// `pooler_classifier_v4_f16`: each warp four outputs at once (more weight loads in flight; the same
    /// sums in the same order), an A/B candidate not yet run on a GPU.
    V4,
}
named!(
    Pooler,
    "XENC_POOLER",
    [("v3", Pooler::V3), ("v4", Pooler::V4)]
);

/// The warp layout of kernels/gemm_bias_gelu.cu's 128 x 128 block tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GbgWarps {
    /// `gemm_bias_gelu_f16`: 8 warps of 64 x 32.
    W32,
    /// `gemm_bias_gelu_w64_f16`: 4 warps of 64 x 64 (a third fewer shared-memory reads per mma).
    W64,
}

/// How the FFN's first half runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum FfnIn {
    /// The GEMM (cuBLASLt) into the FFN buffer, then the bias + erf GELU kernel over it.
    #[default]
    GemmThenGelu,
    /// kernels/gemm_bias_gelu.cu: one kernel, the erf GELU in the GEMM's epilogue (A/B candidates not
    /// yet measured on a GPU). Where the FFN's shape does not fit the kernel, the unfused path runs.
    Fused(GbgWarps),
}
named!(
    FfnIn,
    "XENC_FFN_IN",
    [
        ("gemm", FfnIn::GemmThenGelu),
        ("fused", FfnIn::Fused(GbgWarps::W32)),
        ("fused-w64", FfnIn::Fused(GbgWarps::W64))
    ]
);

/// Where each layer's residual connection is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Residual {
    /// out-proj / FFN-out GEMM into a scratch buffer, then `add_bias_residual_layernorm` reads it and the
    /// residual stream (two rows read, one written per LayerNorm).
    #[default]
    InLayerNorm,
    /// The GEMM adds bias and product into the residual stream itself, then `layernorm` reads one row
    /// and writes one (an A/B candidate not yet measured on a GPU).
    InGemm,
}
named!(
    Residual,
    "XENC_RESIDUAL",
    [
        ("layernorm", Residual::InLayerNorm),
        ("gemm", Residual::InGemm)
    ]
);

/// Which library runs the GEMMs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum GemmPath {
    /// cuBLASLt for all four GEMMs, plans cached per shape.
    #[default]
    Lt,
    /// The earlier path: cuBLAS `cublasGemmEx` for `linear`, cudarc's `CudaBlasLT::matmul` (a new
    /// descriptor and heuristic on every call) for `linear_bias`.
    Cublas,
}
named!(
    GemmPath,
    "XENC_GEMM",
    [("lt", GemmPath::Lt), ("cublas", GemmPath::Cublas)]
);

/// Which tokenizer engine encodes pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TokenizerEngine {
    /// xenc's WordPiece engine when tokenizer.json fits it, else Hugging Face `tokenizers`.
    #[default]
    Auto,
    /// Hugging Face `tokenizers`.
    Hf,
    /// xenc's WordPiece engine; an error when tokenizer.json does not fit it.
    Xenc,
}
named!(
    TokenizerEngine,
    "XENC_TOKENIZER",
    [
        ("auto", TokenizerEngine::Auto),
        ("hf", TokenizerEngine::Hf),
        ("xenc", TokenizerEngine::Xenc)
    ]
);

/// The CUDA backend's kernel and GEMM choices. The default is the set that last passed
/// `scripts/gpu-check.sh` on a GPU; the others are A/B candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CudaOptions {
    /// `--attention` / `XENC_ATTENTION`.
    pub attention: AttentionKernel,
    /// `--ffn-in` / `XENC_FFN_IN`.
    pub ffn_in: FfnIn,
    /// `--residual` / `XENC_RESIDUAL`.
    pub residual: Residual,
    /// `--pooler` / `XENC_POOLER`.
    pub pooler: Pooler,
    /// `--gemm` / `XENC_GEMM`.
    pub gemm: GemmPath,
    /// `--gemm-algo` / `XENC_GEMM_ALGO`: the i-th of cuBLASLt's heuristic algorithms (0: its first
    /// choice; where a shape has fewer, the first, said once).
    pub gemm_algo: usize,
    /// `--cuda-unverified` / `XENC_CUDA_UNVERIFIED=1`: run on the GPU what no GPU run has verified yet
    /// (the RoBERTa / XLM-R family, heads with several labels), with a warning. For
    /// `scripts/gpu-check.sh`, which checks them against their goldens so they can become defaults;
    /// off by default, so that a user's GPU runs only what a GPU has executed.
    pub allow_unverified: bool,
}

impl CudaOptions {
    /// The variable of [`Self::allow_unverified`].
    pub const UNVERIFIED_VAR: &'static str = "XENC_CUDA_UNVERIFIED";

    /// Options from named values, as the conventional variables spell them: `lookup("XENC_ATTENTION")`
    /// and so on (`XENC_ATTENTION`, `XENC_FFN_IN`, `XENC_RESIDUAL`, `XENC_POOLER`, `XENC_GEMM`,
    /// `XENC_GEMM_ALGO`); an
    /// absent or empty value keeps the default. The library never calls this with the environment
    /// itself: a test or a tool passes `|k| std::env::var(k).ok()`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let mut o = CudaOptions::default();
        if let Some(v) = get(AttentionKernel::VAR) {
            o.attention = v.parse()?;
        }
        if let Some(v) = get(FfnIn::VAR) {
            o.ffn_in = v.parse()?;
        }
        if let Some(v) = get(Residual::VAR) {
            o.residual = v.parse()?;
        }
        if let Some(v) = get(Pooler::VAR) {
            o.pooler = v.parse()?;
        }
        if let Some(v) = get(GemmPath::VAR) {
            o.gemm = v.parse()?;
        }
        if let Some(v) = get("XENC_GEMM_ALGO") {
            o.gemm_algo = parse_gemm_algo(&v)?;
        }
        if let Some(v) = get(Self::UNVERIFIED_VAR) {
            o.allow_unverified = match v.trim() {
                "1" | "true" => true,
                "0" | "false" => false,
                other => {
                    return Err(Error::Option(format!(
                        "{}={other:?}: expected 1, true, 0 or false",
                        Self::UNVERIFIED_VAR
                    )))
                }
            };
        }
        Ok(o)
    }

    /// The choices that differ from the default, as `name=value` (for banners and reports).
    pub fn describe(&self) -> String {
        let d = CudaOptions::default();
        let mut parts = Vec::new();
        if self.attention != d.attention {
            parts.push(format!("attention={}", self.attention));
        }
        if self.ffn_in != d.ffn_in {
            parts.push(format!("ffn-in={}", self.ffn_in));
        }
        if self.residual != d.residual {
            parts.push(format!("residual={}", self.residual));
        }
        if self.pooler != d.pooler {
            parts.push(format!("pooler={}", self.pooler));
        }
        if self.gemm != d.gemm {
            parts.push(format!("gemm={}", self.gemm));
        }
        if self.allow_unverified {
            parts.push("unverified models allowed".into());
        }
        if self.gemm_algo != d.gemm_algo {
            parts.push(format!("gemm-algo={}", self.gemm_algo));
        }
        if parts.is_empty() {
            "default kernels".into()
        } else {
            parts.join(" ")
        }
    }
}

/// `XENC_GEMM_ALGO` / `--gemm-algo`: a non-negative integer.
pub fn parse_gemm_algo(value: &str) -> Result<usize> {
    value.trim().parse().map_err(|_| {
        Error::Option(format!(
            "XENC_GEMM_ALGO={value:?}: expected a non-negative integer (an index into cuBLASLt's heuristic)"
        ))
    })
}

/// How pairs are tokenised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TokenizerOptions {
    /// `--tokenizer` / `XENC_TOKENIZER`.
    pub engine: TokenizerEngine,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_to_its_value_and_prints_as_itself() {
        fn round_trip<T: Named + PartialEq + fmt::Debug + FromStr<Err = Error> + fmt::Display>() {
            for &(name, value) in T::ALL {
                assert_eq!(name.parse::<T>().unwrap(), value);
                assert_eq!(
                    format!(" {} ", name.to_uppercase()).parse::<T>().unwrap(),
                    value
                );
                assert_eq!(value.to_string(), name);
            }
        }
        round_trip::<AttentionKernel>();
        round_trip::<FfnIn>();
        round_trip::<Residual>();
        round_trip::<Pooler>();
        round_trip::<GemmPath>();
        round_trip::<TokenizerEngine>();
    }

    #[test]
    fn a_bad_value_is_an_error_naming_it_and_the_choices() {
        let e = "garbage"
            .parse::<TokenizerEngine>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("XENC_TOKENIZER=\"garbage\""), "{e}");
        assert!(e.contains("auto, hf, xenc"), "{e}");
        let e = "mma-s9".parse::<AttentionKernel>().unwrap_err().to_string();
        assert!(e.contains("XENC_ATTENTION") && e.contains("mma-s4"), "{e}");
        assert!("".parse::<FfnIn>().is_err());
        assert!(parse_gemm_algo("-1").is_err());
        assert_eq!(parse_gemm_algo(" 7 ").unwrap(), 7);
    }

    #[test]
    fn from_lookup_reads_each_variable_and_refuses_bad_values() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            CudaOptions::from_lookup(vars(&[])).unwrap(),
            CudaOptions::default()
        );
        let o = CudaOptions::from_lookup(vars(&[
            ("XENC_ATTENTION", "simt"),
            ("XENC_FFN_IN", "fused-w64"),
            ("XENC_RESIDUAL", "gemm"),
            ("XENC_POOLER", "v4"),
            ("XENC_GEMM", "cublas"),
            ("XENC_GEMM_ALGO", "3"),
            ("XENC_TOKENIZER", "nonsense"), // not a CUDA option: ignored here
        ]))
        .unwrap();
        assert_eq!(o.attention, AttentionKernel::Simt);
        assert_eq!(o.ffn_in, FfnIn::Fused(GbgWarps::W64));
        assert_eq!(o.residual, Residual::InGemm);
        assert_eq!(o.pooler, Pooler::V4);
        assert_eq!((o.gemm, o.gemm_algo), (GemmPath::Cublas, 3));
        assert_eq!(
            o.describe(),
            "attention=simt ffn-in=fused-w64 residual=gemm pooler=v4 gemm=cublas gemm-algo=3"
        );
        assert_eq!(
            CudaOptions::from_lookup(vars(&[("XENC_FFN_IN", " ")])).unwrap(),
            CudaOptions::default()
        );
        let e = CudaOptions::from_lookup(vars(&[("XENC_RESIDUAL", "gem")])).unwrap_err();
        assert!(e.to_string().contains("XENC_RESIDUAL=\"gem\""), "{e}");
    }
}
