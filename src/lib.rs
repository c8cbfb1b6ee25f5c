//! xenc: score (query, document) pairs with a BERT-family cross-encoder (e.g.
//! cross-encoder/ms-marco-MiniLM-L-6-v2), straight from a Hugging Face checkpoint directory.
//!
//! The data path, one module per step:
//! text → [`tokenize`] (ids) → [`batch`] (ragged batches, no padding) → backend layers ([`cpu`]) → scores.
//!
//! ```no_run
//! use xenc::{CrossEncoder, Device};
//! let model = CrossEncoder::builder("models/ms-marco-MiniLM-L-6-v2").device(Device::Auto).build()?;
//! let scores = model.score(&[("what is rust", "Rust is a systems programming language.")])?;
//! let best = model.rerank("what is rust", &["A fungus on plants.", "A programming language."], 1)?;
//! assert_eq!(best[0].index, 1);
//! # Ok::<(), xenc::Error>(())
//! ```

pub mod batch;
pub mod bench;
pub mod config;
pub mod cpu;
pub mod cuda;
pub mod error;
pub mod io;
pub mod tokenize;
pub mod weights;

use std::path::{Path, PathBuf};

pub use batch::RaggedBatch;
pub use config::{Activation, ConfiguredActivation, ModelConfig};
pub use error::{Error, Result};
pub use tokenize::EncodedPair;

use cpu::CpuBackend;
use cuda::CudaBackend;
use tokenize::PairTokenizer;
use weights::BertWeights;

/// Whether `Device::Auto` may pick the CUDA path. It stays false until the CUDA path has passed
/// `scripts/gpu-check.sh` on a GPU (see BENCHMARKS.md): by default nobody gets scores from kernels that
/// have never run. `Device::Cuda(n)` uses the CUDA path regardless.
pub const CUDA_PATH_VERIFIED: bool = false;

/// Default token budget of one batch: pairs are packed, sorted by length, up to this many tokens.
pub const DEFAULT_TOKEN_BUDGET: usize = 16_384;

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    Cpu,
    /// A CUDA device by ordinal.
    Cuda(usize),
    /// The GPU when one is usable, else the CPU (said once on stderr). Until the CUDA path has been
    /// verified on a GPU ([`CUDA_PATH_VERIFIED`]), always the CPU.
    #[default]
    Auto,
}

/// One document's place in a reranking: its index in the input and its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    pub index: usize,
    pub score: f32,
}

/// Options for loading a checkpoint; see [`CrossEncoder::builder`].
#[derive(Debug, Clone)]
pub struct CrossEncoderBuilder {
    dir: PathBuf,
    device: Device,
    max_length: Option<usize>,
    activation: Option<Activation>,
    token_budget: usize,
    threads: Option<usize>,
}

impl CrossEncoderBuilder {
    pub fn device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// Tokens per pair after truncation; default `min(512, max_position_embeddings)`.
    pub fn max_length(mut self, n: usize) -> Self {
        self.max_length = Some(n);
        self
    }

    /// Overrides the checkpoint's default activation.
    pub fn activation(mut self, a: Activation) -> Self {
        self.activation = Some(a);
        self
    }

    /// Tokens per batch (default [`DEFAULT_TOKEN_BUDGET`]); must be at least `max_length`.
    pub fn token_budget(mut self, tokens: usize) -> Self {
        self.token_budget = tokens;
        self
    }

    /// CPU threads (default: all cores, through rayon's global pool).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n);
        self
    }

    pub fn build(self) -> Result<CrossEncoder> {
        let dir = &self.dir;
        if !dir.is_dir() {
            return Err(Error::MissingFile {
                path: dir.clone(),
                what: "config.json, model.safetensors and tokenizer.json",
            });
        }
        let file = |name: &str, what: &'static str| -> Result<PathBuf> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(Error::MissingFile { path: p, what })
            }
        };
        let config_path = file("config.json", "config.json, the model's configuration")?;
        let weights_path = file("model.safetensors", "model.safetensors, the weights")?;
        let tokenizer_path = file(
            "tokenizer.json",
            "tokenizer.json, a Hugging Face fast tokenizer",
        )?;

        let config = ModelConfig::from_file(&config_path)?;
        let activation = match (self.activation, &config.activation) {
            (Some(a), _) => a,
            (None, ConfiguredActivation::Known(a)) => *a,
            (None, ConfiguredActivation::Unsupported { field, value }) => {
                return Err(Error::Config(format!(
                    "{field} is {value}; xenc applies Identity or Sigmoid: choose one explicitly"
                )))
            }
        };
        let max_length = self
            .max_length
            .unwrap_or(512.min(config.max_position_embeddings));
        if max_length > config.max_position_embeddings {
            return Err(Error::Option(format!(
                "max_length {max_length} exceeds the model's max_position_embeddings {}",
                config.max_position_embeddings
            )));
        }
        if self.token_budget < max_length {
            return Err(Error::Option(format!(
                "token budget {} is smaller than max_length {max_length}",
                self.token_budget
            )));
        }
        let tokenizer = PairTokenizer::from_file(&tokenizer_path, max_length)?;

        let weights = BertWeights::from_file(&weights_path, &config)?;
        let cuda = |n| CudaBackend::new(&config, &weights, n, self.token_budget).map(Backend::Cuda);
        let backend = match self.device {
            Device::Cpu => None,
            Device::Cuda(n) => Some(cuda(n)?),
            Device::Auto if !CUDA_PATH_VERIFIED => None,
            Device::Auto => match cuda::probe().and_then(|()| cuda(0).map_err(|e| e.to_string())) {
                Ok(b) => Some(b),
                Err(reason) => {
                    static SAID: std::sync::Once = std::sync::Once::new();
                    SAID.call_once(|| {
                        eprintln!("xenc: no usable GPU ({reason}); running on the CPU")
                    });
                    None
                }
            },
        };
        let backend = match backend {
            Some(b) => b,
            None => Backend::Cpu(CpuBackend::new(config.clone(), weights, self.threads)?),
        };

        Ok(CrossEncoder {
            config,
            tokenizer,
            backend,
            activation,
            token_budget: self.token_budget,
        })
    }
}

// One per loaded model: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Backend {
    Cpu(CpuBackend),
    Cuda(CudaBackend),
}

/// A loaded cross-encoder. Inference takes `&self`; the model is `Send + Sync` and can be shared.
pub struct CrossEncoder {
    config: ModelConfig,
    tokenizer: PairTokenizer,
    backend: Backend,
    activation: Activation,
    token_budget: usize,
}

impl CrossEncoder {
    /// Starts loading the checkpoint directory `dir` (config.json, model.safetensors, tokenizer.json).
    pub fn builder(dir: impl AsRef<Path>) -> CrossEncoderBuilder {
        CrossEncoderBuilder {
            dir: dir.as_ref().to_path_buf(),
            device: Device::Auto,
            max_length: None,
            activation: None,
            token_budget: DEFAULT_TOKEN_BUDGET,
            threads: None,
        }
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The activation `score` and `rerank` apply.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    pub fn max_length(&self) -> usize {
        self.tokenizer.max_length()
    }

    pub fn tokenizer(&self) -> &PairTokenizer {
        &self.tokenizer
    }

    /// What runs the model, e.g. "cpu (2 threads)".
    pub fn device_name(&self) -> String {
        match &self.backend {
            Backend::Cpu(b) => format!("cpu ({} threads)", b.threads()),
            Backend::Cuda(b) => b.describe(),
        }
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
        let encoded = self.tokenizer.encode_pairs(pairs)?;
        self.logits_encoded(&encoded)
    }

    /// Logits of already-encoded pairs, in input order: batches are planned by length under the token
    /// budget and the results put back where each pair came from.
    pub fn logits_encoded(&self, pairs: &[EncodedPair]) -> Result<Vec<f32>> {
        let lengths: Vec<usize> = pairs.iter().map(EncodedPair::len).collect();
        let mut out = vec![0f32; pairs.len()];
        for indices in batch::plan_batches(&lengths, self.token_budget) {
            let b = RaggedBatch::from_pairs(indices.iter().map(|&i| &pairs[i]));
            b.validate(&self.config)?;
            let logits = match &self.backend {
                Backend::Cpu(cpu) => cpu.forward(&b),
                Backend::Cuda(gpu) => gpu.forward(&b)?,
            };
            for (&i, l) in indices.iter().zip(logits) {
                out[i] = l;
            }
        }
        Ok(out)
    }

    /// Scores `documents` against one `query` (tokenised once) and returns the best `top_k`, best
    /// first; ties keep input order.
    pub fn rerank<D>(&self, query: &str, documents: &[D], top_k: usize) -> Result<Vec<Ranked>>
    where
        D: AsRef<str> + Sync,
    {
        use rayon::prelude::*;
        let q = self.tokenizer.encode_piece(query)?;
        let encoded = documents
            .par_iter()
            .enumerate()
            .map(|(i, d)| {
                let d = self.tokenizer.encode_piece(d.as_ref())?;
                self.tokenizer
                    .join(&q, &d)
                    .map_err(|e| Error::Tokenizer(format!("document {i}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let logits = self.logits_encoded(&encoded)?;
        let mut ranked: Vec<Ranked> = logits
            .into_iter()
            .enumerate()
            .map(|(index, l)| Ranked {
                index,
                score: self.activation.apply(l),
            })
            .collect();
        ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
        ranked.truncate(top_k);
        Ok(ranked)
    }
}

#[cfg(test)]
mod tests {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn cross_encoder_is_send_and_sync() {
        assert_send_sync::<super::CrossEncoder>();
    }
}
