//! [`CrossEncoder`]: an [`Engine`] and the activation its scores get; scoring, reranking.

use std::path::Path;

use crate::builder::CrossEncoderBuilder;
use crate::config::{Activation, ModelConfig};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::tokenize::{EncodedPair, PairTokenizer};

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
    /// The label `rerank` ranks by: 0 for a one-label model; the builder's choice, else None, for one
    /// with several.
    label: Option<usize>,
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

    /// Logits (and scores) per pair: the classifier's labels, 1 for a reranker. `score` and `logits`
    /// return that many a pair, pair after pair; their names are `config().labels`.
    pub fn num_labels(&self) -> usize {
        self.engine.num_labels()
    }

    /// The label `rerank` ranks by: 0 for a one-label model; for one with several, the builder's
    /// [`CrossEncoderBuilder::label`], else None (and `rerank` refuses).
    pub fn label(&self) -> Option<usize> {
        self.label
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
    /// default: [`DEFAULT_CUDA_TOKEN_BUDGET`](crate::DEFAULT_CUDA_TOKEN_BUDGET) on CUDA, [`DEFAULT_TOKEN_BUDGET`](crate::DEFAULT_TOKEN_BUDGET) on the CPU).
    pub fn token_budget(&self) -> usize {
        self.engine.token_budget()
    }

    /// What runs the model, e.g. "cpu (2 threads)".
    pub fn device_name(&self) -> String {
        self.engine.device_name()
    }

    /// Stage times of the forward passes since the last call (or since loading), then starts afresh;
    /// None unless the model was built with [`CrossEncoderBuilder::profile`].
    pub fn take_profile(&self) -> Option<Profile> {
        self.engine.take_profile()
    }

    /// Scores each pair, in input order, with the model's activation: one score per pair for a
    /// reranker; for a model with several labels, [`Self::num_labels`] a pair, pair after pair.
    pub fn score<Q, D>(&self, pairs: &[(Q, D)]) -> Result<Vec<f32>>
    where
        Q: AsRef<str> + Sync,
        D: AsRef<str> + Sync,
    {
        let mut s = self.logits(pairs)?;
        self.activation.apply_rows(&mut s, self.num_labels());
        Ok(s)
    }

    /// Raw logits of each pair, in input order ([`Self::num_labels`] a pair, pair after pair).
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
    /// A model with several labels ranks by [`Self::label`], and without one refuses
    /// ([`Error::Option`]) before any work.
    pub fn rerank<D>(&self, query: &str, documents: &[D], top_k: usize) -> Result<Vec<Ranked>>
    where
        D: AsRef<str> + Sync,
    {
        self.ranking_label()?;
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
        self.rank_logits(logits, self.activation, top_k)
    }

    /// The label a ranking sorts by, or the error ([`Error::Option`]) that says how to choose one.
    pub fn ranking_label(&self) -> Result<usize> {
        self.label.ok_or_else(|| {
            Error::Option(format!(
                "the model has {} labels ({}); ranking needs one score per document: choose the \
                 label to rank by (the `label` option: CrossEncoderBuilder::label, --label, label=)",
                self.num_labels(),
                self.config().labels_listed()
            ))
        })
    }

    /// Logits of documents (from [`Self::logits_encoded`] of [`Self::encode_documents`]) to the best
    /// `top_k` (index, score), best first, ties in input order: each document's logits activated with
    /// `activation` (softmax across its labels, or each label alone), its score the one of
    /// [`Self::label`]. Refuses a model with several labels and no label chosen.
    pub fn rank_logits(
        &self,
        mut logits: Vec<f32>,
        activation: Activation,
        top_k: usize,
    ) -> Result<Vec<Ranked>> {
        let (labels, label) = (self.num_labels(), self.ranking_label()?);
        activation.apply_rows(&mut logits, labels);
        let scores = logits.chunks_exact(labels).map(|row| row[label]);
        Ok(rank(scores, top_k))
    }
}

/// Documents' scores to the best `top_k` (index, score), best first; ties keep input order.
fn rank(scores: impl Iterator<Item = f32>, top_k: usize) -> Vec<Ranked> {
    let mut ranked: Vec<Ranked> = scores
        .enumerate()
        .map(|(index, score)| Ranked { index, score })
        .collect();
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
    ranked.truncate(top_k);
    ranked
}

impl CrossEncoderBuilder {
    /// Loads the checkpoint (see [`CrossEncoder::builder`]).
    pub fn build(self) -> Result<CrossEncoder> {
        let (engine, activation, label) = self.load()?;
        Ok(CrossEncoder {
            engine,
            activation,
            label,
        })
    }
}
