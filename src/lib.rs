//! xenc: score (query, document) pairs with a BERT-family cross-encoder (e.g.
//! cross-encoder/ms-marco-MiniLM-L-6-v2), straight from a Hugging Face checkpoint directory.
//!
//! The data path, one module per step, each importing only the ones before it:
//! text → [`tokenize`] (ids) → [`batch`] (ragged batches, no padding) → backend layers ([`cpu`],
//! [`cuda`]) → [`engine`] (scheduling: logits by index) → [`CrossEncoder`] (scores, reranking).
//!
//! ```no_run
//! use xenc::{CrossEncoder, Device};
//! let model = CrossEncoder::builder("models/ms-marco-MiniLM-L-6-v2").device(Device::Auto).build()?;
//! let scores = model.score(&[("what is rust", "Rust is a systems programming language.")])?;
//! let best = model.rerank("what is rust", &["A fungus on plants.", "A programming language."], 1)?;
//! assert_eq!(best[0].index, 1);
//! # Ok::<(), xenc::Error>(())
//! ```
//!
//! What the library has to say beyond its return values (the once-per-process reason `Device::Auto`
//! fell back to the CPU, the first GPU call's banner) goes through the [`log`](https://docs.rs/log)
//! crate; the `xenc` CLI installs a logger that prints it on stderr. Nothing in the library prints.

#[doc(hidden)]
pub mod batch;
#[doc(hidden)]
pub mod bench;
mod builder;
pub mod config;
#[doc(hidden)]
pub mod cpu;
mod cross_encoder;
#[doc(hidden)]
pub mod cuda;
pub mod engine;
pub mod error;
pub mod family;
pub mod options;
pub mod profile;
#[cfg(feature = "serve")]
pub mod serve;
pub mod tokenize;
#[doc(hidden)]
pub mod weights;

pub use builder::CrossEncoderBuilder;
pub use config::{Activation, ConfiguredActivation, ModelConfig};
pub use cross_encoder::{CrossEncoder, Ranked};
pub use engine::{Engine, DEFAULT_CUDA_TOKEN_BUDGET, DEFAULT_TOKEN_BUDGET};
pub use error::{Error, ErrorKind, Result};
pub use family::Family;
pub use options::{
    AttentionKernel, CudaOptions, Device, FfnIn, GbgWarps, GemmPath, Pooler, Residual,
    TokenizerEngine, TokenizerOptions,
};
pub use tokenize::{EncodedPair, PairTokenizer};

#[cfg(test)]
pub(crate) mod tests {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn cross_encoder_is_send_and_sync() {
        assert_send_sync::<super::CrossEncoder>();
    }

    /// The f32 test checkpoint (`XENC_TEST_MODEL_DIR`, else ~/.cache/xenc/test-model; built by
    /// `bash scripts/fixtures.sh`), if it is there.
    pub(crate) fn f32_test_model() -> Option<std::path::PathBuf> {
        let root = std::env::var_os("XENC_TEST_MODEL_DIR")
            .map(std::path::PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(|h| std::path::PathBuf::from(h).join(".cache/xenc/test-model"))
            });
        root.map(|r| r.join("f32")).filter(|d| d.is_dir())
    }
}
