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

pub mod batch;
#[doc(hidden)]
pub mod bench;
mod builder;
pub mod config;
#[doc(hidden)]
pub mod cpu;
#[doc(hidden)]
pub mod cuda;
pub mod engine;
pub mod error;
pub mod options;
pub mod profile;
pub mod tokenize;
#[doc(hidden)]
pub mod weights;

use std::path::Path;

pub use batch::RaggedBatch;
pub use builder::CrossEncoderBuilder;
pub use config::{Activation, ConfiguredActivation, ModelConfig};
pub use engine::{Engine, DEFAULT_CUDA_TOKEN_BUDGET, DEFAULT_TOKEN_BUDGET};
pub use error::{Error, ErrorKind, Result};
pub use options::{
    AttentionKernel, CudaOptions, FfnIn, GbgWarps, GemmPath, Residual, TokenizerEngine,
    TokenizerOptions,
};
pub use tokenize::{EncodedPair, PairTokenizer};

/// Where the model runs.
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

/// One document's place in a reranking: its index in the input and its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    pub index: usize,
    pub score: f32,
}

/// A loaded cross-encoder: an [`Engine`] and the activation its scores get. Inference takes `&self`;
/// the model is `Send + Sync` and can be shared.
///
/// ```no_run
/// use xenc::{Activation, CrossEncoder, Device};
/// let model = CrossEncoder::builder("models/ms-marco-MiniLM-L-6-v2")
///     .device(Device::Cpu)
///     .activation(Activation::Raw)
///     .threads(4)
///     .build()?;
/// let logits = model.score(&[("q", "d")])?;
/// # Ok::<(), xenc::Error>(())
/// ```
pub struct CrossEncoder {
    engine: Engine,
    activation: Activation,
}

impl CrossEncoder {
    /// Starts loading the checkpoint directory `dir` (config.json, model.safetensors, tokenizer.json).
    pub fn builder(dir: impl AsRef<Path>) -> CrossEncoderBuilder {
        CrossEncoderBuilder::new(dir.as_ref().to_path_buf())
    }

    /// The engine underneath: encoded pairs in, logits by index out (for servers and bindings that
    /// schedule their own requests).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn config(&self) -> &ModelConfig {
        self.engine.config()
    }

    /// The activation `score` and `rerank` apply.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// Tokens per pair after truncation.
    pub fn max_length(&self) -> usize {
        self.engine.max_length()
    }

    pub fn tokenizer(&self) -> &PairTokenizer {
        self.engine.tokenizer()
    }

    /// On a GPU, bytes of device memory in use (total − free: this process's weights, activations,
    /// library workspaces and CUDA context, plus other processes'); None on the CPU.
    pub fn device_memory_in_use(&self) -> Option<usize> {
        self.engine.device_memory_in_use()
    }

    /// Whether the model runs on a GPU.
    pub fn on_gpu(&self) -> bool {
        self.engine.on_gpu()
    }

    /// Most tokens in one batch (the builder's [`CrossEncoderBuilder::token_budget`], or the device's
    /// default: [`DEFAULT_CUDA_TOKEN_BUDGET`] on CUDA, [`DEFAULT_TOKEN_BUDGET`] on the CPU).
    pub fn token_budget(&self) -> usize {
        self.engine.token_budget()
    }

    /// What runs the model, e.g. "cpu (2 threads)".
    pub fn device_name(&self) -> String {
        self.engine.device_name()
    }

    /// Stage times of the forward passes since the last call (or since loading), then starts afresh;
    /// None unless the model was built with [`CrossEncoderBuilder::profile`].
    pub fn take_profile(&self) -> Option<profile::Profile> {
        self.engine.take_profile()
    }

    /// Scores each pair, in input order, with the model's activation.
    pub fn score<Q, D>(&self, pairs: &[(Q, D)]) -> Result<Vec<f32>>
    where
        Q: AsRef<str> + Sync,
        D: AsRef<str> + Sync,
    {
        let mut s = self.logits(pairs)?;
        s.iter_mut().for_each(|x| *x = self.activation.apply(*x));
        Ok(s)
    }

    /// Raw logits of each pair, in input order.
    pub fn logits<Q, D>(&self, pairs: &[(Q, D)]) -> Result<Vec<f32>>
    where
        Q: AsRef<str> + Sync,
        D: AsRef<str> + Sync,
    {
        self.engine.logits(pairs)
    }

    /// Logits of already-encoded pairs, in input order ([`Engine::logits_encoded`]).
    pub fn logits_encoded(&self, pairs: &[EncodedPair]) -> Result<Vec<f32>> {
        self.engine.logits_encoded(pairs)
    }

    /// `rerank`'s tokenisation ([`Engine::encode_documents`]).
    pub fn encode_documents<D>(&self, query: &str, documents: &[D]) -> Result<Vec<EncodedPair>>
    where
        D: AsRef<str>,
    {
        self.engine.encode_documents(query, documents)
    }

    /// Scores `documents` against one `query` (tokenised once) and returns the best `top_k`, best
    /// first; ties keep input order. Errors about one document name it (`Error::Item`, "document").
    pub fn rerank<D>(&self, query: &str, documents: &[D], top_k: usize) -> Result<Vec<Ranked>>
    where
        D: AsRef<str> + Sync,
    {
        let encoded = self.engine.encode_documents(query, documents)?;
        // Pair i is document i.
        let logits = self.engine.logits_encoded(&encoded).map_err(|e| match e {
            Error::Item { index, message, .. } => Error::Item {
                what: "document",
                index,
                message,
            },
            other => other,
        })?;
        Ok(rank(logits, self.activation, top_k))
    }
}

/// Logits to the best `top_k` (index, activated score), best first; ties keep input order.
pub fn rank(logits: Vec<f32>, activation: Activation, top_k: usize) -> Vec<Ranked> {
    let mut ranked: Vec<Ranked> = logits
        .into_iter()
        .enumerate()
        .map(|(index, l)| Ranked {
            index,
            score: activation.apply(l),
        })
        .collect();
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
    ranked.truncate(top_k);
    ranked
}

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
