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
pub mod options;
pub mod profile;
pub mod tokenize;
pub mod weights;

use std::path::{Path, PathBuf};

pub use batch::RaggedBatch;
pub use config::{Activation, ConfiguredActivation, ModelConfig};
pub use error::{Error, ErrorKind, Result};
pub use options::{
    AttentionKernel, CudaOptions, FfnIn, GbgWarps, GemmPath, Pooler, Residual, TokenizerEngine,
    TokenizerOptions,
};
pub use tokenize::EncodedPair;

use cpu::CpuBackend;
use cuda::CudaBackend;
use tokenize::PairTokenizer;
use weights::BertWeights;

/// Pairs of the first chunk tokenised before the GPU starts, when tokenisation overlaps the model.
const OVERLAP_FIRST_CHUNK: usize = 512;
/// Largest chunk of pairs tokenised while the GPU runs the previous one.
const OVERLAP_MAX_CHUNK: usize = 8192;

/// Consecutive ranges covering 0..n: OVERLAP_FIRST_CHUNK pairs, then each twice the last, up to
/// OVERLAP_MAX_CHUNK.
fn overlap_chunks(n: usize) -> Vec<std::ops::Range<usize>> {
    let (mut out, mut start, mut size) = (Vec::new(), 0, OVERLAP_FIRST_CHUNK);
    while start < n {
        let end = (start + size).min(n);
        out.push(start..end);
        start = end;
        size = (2 * size).min(OVERLAP_MAX_CHUNK);
    }
    out
}

/// Below this many bytes of documents `rerank` tokenises on the calling thread alone (~15 µs of work at
/// ~240 bytes/µs); from it on, helpers from rayon's pool join the calling thread as they wake
/// (`tokenize::share`). Helpers cost the calling thread one job injection and a copy of the text (a few
/// µs), and it never waits for one that has not started, so the threshold only keeps tiny reranks free
/// of that overhead. Measured (`benches/host_path.rs`, the 1 × 50 rerank's 38 KB right after 0.6 ms idle,
/// 16-core H100/H200 hosts, 2026-11-26 06:32–07:26 UTC): 134–166 µs with helpers, 148–215 µs with
/// `par_iter` (the caller asleep until the pool finishes), 205–273 µs on one thread; `xenc bench`'s
/// rerank tokenisation 0.09–0.11 ms (0.38–0.40 ms before, with `par_iter` and push-grown id vectors). On
/// the 2-core VM helpers were ~12% slower than one thread after idle and ~30% faster warm.
const SHARE_MIN_BYTES: usize = 4 * 1024;

/// How many helpers `rerank` asks for to tokenise `bytes` of documents on `cores` threads.
fn tokenize_helpers(bytes: usize, cores: usize) -> usize {
    if bytes < SHARE_MIN_BYTES {
        0
    } else {
        cores.saturating_sub(1)
    }
}

/// What helpers tokenising `rerank`'s documents own (they may outlive the call): the tokenizer, the
/// query's piece, and the documents' text end to end (`ends[i]` is where document i stops).
struct DocumentsToEncode {
    tokenizer: std::sync::Arc<PairTokenizer>,
    query: tokenize::Piece,
    text: String,
    ends: Vec<usize>,
}

impl DocumentsToEncode {
    fn encode(&self, i: usize) -> Result<EncodedPair> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        encode_document(
            &self.tokenizer,
            &self.query,
            &self.text[start..self.ends[i]],
            i,
        )
    }
}

/// Document `i` of a rerank joined to the query's piece; errors name the document.
fn encode_document(
    tok: &PairTokenizer,
    query: &tokenize::Piece,
    document: &str,
    i: usize,
) -> Result<EncodedPair> {
    let d = tok
        .encode_piece(document)
        .map_err(|e| e.at_item("document", i))?;
    tok.join(query, &d).map_err(|e| e.at_item("document", i))
}

/// Default token budget of one batch on the CPU: pairs are packed, sorted by length, up to this many
/// tokens.
pub const DEFAULT_TOKEN_BUDGET: usize = 16_384;

/// Default token budget of one batch on CUDA. Larger batches amortise each kernel's fixed cost
/// (`xenc bench --generate 2000`, model only, same run each): on an H100 (2026-11-26 06:33 UTC) 94,265
/// pairs/s at 8,192 tokens, 108,511 at 16,384, 116,530 at 32,768; on an H200 (06:56 UTC) 114,476 at
/// 16,384, 126,912 at 32,768, 131,352 at 65,536 (end to end 101,232 / 111,918 / 113,753). Device memory
/// in use grows with it: 823 / 983 / 1,271 MiB on that H200, CUDA context included.
pub const DEFAULT_CUDA_TOKEN_BUDGET: usize = 65_536;

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    Cpu,
    /// A CUDA device by ordinal.
    Cuda(usize),
    /// GPU 0 when it is usable (libcuda, cuBLAS, a device, a supported model shape), else the CPU, with
    /// the reason said once on stderr.
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
    token_budget: Option<usize>,
    threads: Option<usize>,
    profile: bool,
    cuda: CudaOptions,
    tokenizer: TokenizerOptions,
}

impl CrossEncoderBuilder {
    pub fn device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// Tokens per pair after truncation; default tokenizer_config.json's `model_max_length` when the
    /// model's positions cover it (what sentence-transformers' CrossEncoder truncates to), else
    /// `min(512, max_position_embeddings)`.
    pub fn max_length(mut self, n: usize) -> Self {
        self.max_length = Some(n);
        self
    }

    /// Overrides the checkpoint's default activation.
    pub fn activation(mut self, a: Activation) -> Self {
        self.activation = Some(a);
        self
    }

    /// Tokens per batch (default [`DEFAULT_CUDA_TOKEN_BUDGET`] on CUDA, [`DEFAULT_TOKEN_BUDGET`] on the
    /// CPU); must be at least `max_length`.
    pub fn token_budget(mut self, tokens: usize) -> Self {
        self.token_budget = Some(tokens);
        self
    }

    /// Threads for tokenisation and the CPU model (default: all cores, through rayon's global pool).
    /// Set, the model gets a pool of its own, so `threads(1)` keeps all of its work on one core.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n);
        self
    }

    /// Times every stage of every forward pass (GPU: CUDA events; CPU: the host clock); read with
    /// [`CrossEncoder::take_profile`]. Off by default: it adds an event record per stage on the GPU.
    pub fn profile(mut self, on: bool) -> Self {
        self.profile = on;
        self
    }

    /// Kernel and GEMM choices on CUDA (default: the GPU-verified set); ignored on the CPU.
    pub fn cuda_options(mut self, options: CudaOptions) -> Self {
        self.cuda = options;
        self
    }

    /// How pairs are tokenised (default: xenc's WordPiece engine where tokenizer.json fits it).
    pub fn tokenizer_options(mut self, options: TokenizerOptions) -> Self {
        self.tokenizer = options;
        self
    }

    pub fn build(self) -> Result<CrossEncoder> {
        let dir = &self.dir;
        if dir.exists() && !dir.is_dir() {
            return Err(Error::NotADirectory {
                path: dir.clone(),
                what: "config.json, model.safetensors and tokenizer.json",
            });
        }
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

        let pool = match self.threads {
            None => None,
            Some(0) => return Err(Error::Option("threads must be at least 1".into())),
            Some(n) => Some(std::sync::Arc::new(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .map_err(|e| Error::Option(format!("cannot start {n} threads: {e}")))?,
            )),
        };
        let config = ModelConfig::from_file(&config_path)?;
        let activation = match (self.activation, &config.activation) {
            (Some(a), _) => a,
            (None, ConfiguredActivation::Known(a)) => *a,
            (None, ConfiguredActivation::Unsupported { field, value }) => {
                return Err(Error::config(format!(
                    "{field} is {value}; xenc applies Identity or Sigmoid: choose one explicitly"
                )))
            }
        };
        let max_length = match self.max_length {
            Some(n) => n,
            None => tokenize::default_max_length(
                tokenize::model_max_length(&dir.join("tokenizer_config.json"))?,
                config.max_position_embeddings,
            ),
        };
        if max_length > config.max_position_embeddings {
            return Err(Error::Option(format!(
                "max_length {max_length} exceeds the model's max_position_embeddings {}",
                config.max_position_embeddings
            )));
        }
        if let Some(budget) = self.token_budget.filter(|&b| b > u32::MAX as usize) {
            return Err(Error::Option(format!(
                "token budget {budget} exceeds {} (batch offsets are 32-bit)",
                u32::MAX
            )));
        }
        if let Some(budget) = self.token_budget.filter(|&b| b < max_length) {
            return Err(Error::Option(format!(
                "token budget {budget} is smaller than max_length {max_length}"
            )));
        }
        // A default budget grows to hold the longest pair; an explicit one too small is an error (above).
        let cuda_budget = self
            .token_budget
            .unwrap_or(DEFAULT_CUDA_TOKEN_BUDGET.max(max_length));
        // The tokenizer (JSON parsing, ~15 ms) loads on another thread while the weights are mapped and
        // converted; its errors still come first.
        let (tokenizer, weights) = std::thread::scope(|s| {
            let engine = self.tokenizer.engine;
            let tokenizer =
                s.spawn(move || PairTokenizer::from_file_with(&tokenizer_path, max_length, engine));
            let weights = BertWeights::from_file(&weights_path, &config);
            let tokenizer = tokenizer
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            (tokenizer, weights)
        });
        // A default max_length from tokenizer_config.json that leaves no room for text is the
        // checkpoint's problem, not an option the caller gave.
        let tokenizer = tokenizer.map_err(|e| match e {
            Error::Option(m) if self.max_length.is_none() => Error::tokenizer(format!(
                "tokenizer_config.json: model_max_length: {m}; set max_length explicitly"
            )),
            other => other,
        });
        let (tokenizer, weights) = (tokenizer?.with_pool(pool.clone()), weights?);
        let cuda =
            |n| CudaBackend::new(&config, &weights, n, cuda_budget, &self.cuda).map(Backend::Cuda);
        let backend = match self.device {
            Device::Cpu => None,
            Device::Cuda(n) => Some(cuda(n)?),
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
            None => Backend::Cpu(CpuBackend::new(config.clone(), weights, pool)),
        };
        match &backend {
            Backend::Cpu(b) => b.set_profiling(self.profile),
            Backend::Cuda(b) => b.set_profiling(self.profile),
        }

        let token_budget = match &backend {
            Backend::Cuda(_) => cuda_budget,
            Backend::Cpu(_) => self
                .token_budget
                .unwrap_or(DEFAULT_TOKEN_BUDGET.max(max_length)),
        };
        Ok(CrossEncoder {
            config,
            tokenizer: std::sync::Arc::new(tokenizer),
            backend,
            activation,
            token_budget,
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
    tokenizer: std::sync::Arc<PairTokenizer>,
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
            token_budget: None,
            threads: None,
            profile: false,
            cuda: CudaOptions::default(),
            tokenizer: TokenizerOptions::default(),
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

    /// On a GPU, bytes of device memory in use (total − free: this process's weights, activations,
    /// library workspaces and CUDA context, plus other processes'); None on the CPU.
    pub fn device_memory_in_use(&self) -> Option<usize> {
        match &self.backend {
            Backend::Cpu(_) => None,
            Backend::Cuda(b) => b.device_memory_in_use().ok(),
        }
    }

    /// Whether the model runs on a GPU.
    pub fn on_gpu(&self) -> bool {
        matches!(self.backend, Backend::Cuda(_))
    }

    /// Most tokens in one batch (the builder's [`CrossEncoderBuilder::token_budget`], or the device's
    /// default: [`DEFAULT_CUDA_TOKEN_BUDGET`] on CUDA, [`DEFAULT_TOKEN_BUDGET`] on the CPU).
    pub fn token_budget(&self) -> usize {
        self.token_budget
    }

    /// What runs the model, e.g. "cpu (2 threads)".
    pub fn device_name(&self) -> String {
        match &self.backend {
            Backend::Cpu(b) => format!("cpu ({} threads)", b.threads()),
            Backend::Cuda(b) => b.describe(),
        }
    }

    /// Stage times of the forward passes since the last call (or since loading), then starts afresh;
    /// None unless the model was built with [`CrossEncoderBuilder::profile`].
    pub fn take_profile(&self) -> Option<profile::Profile> {
        match &self.backend {
            Backend::Cpu(b) => b.take_profile(),
            Backend::Cuda(b) => b.take_profile(),
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
        if matches!(self.backend, Backend::Cpu(_)) || pairs.len() <= OVERLAP_FIRST_CHUNK {
            let encoded = self.tokenizer.encode_pairs(pairs)?;
            return self.logits_encoded(&encoded);
        }
        // On the GPU, tokenising (all cores) overlaps the model: chunk c + 1 is tokenised on another
        // thread while chunk c runs. Chunks grow from OVERLAP_FIRST_CHUNK (little to wait for before the
        // GPU starts) to OVERLAP_MAX_CHUNK (batches packed from many lengths).
        self.logits_overlapped(pairs, &overlap_chunks(pairs.len()))
    }

    /// [`Self::logits`] chunk by chunk, each chunk tokenised while the one before runs; `chunks` cover
    /// `pairs` in order. Errors name the pair's index in `pairs`.
    fn logits_overlapped<Q, D>(
        &self,
        pairs: &[(Q, D)],
        chunks: &[std::ops::Range<usize>],
    ) -> Result<Vec<f32>>
    where
        Q: AsRef<str> + Sync,
        D: AsRef<str> + Sync,
    {
        let mut out = Vec::with_capacity(pairs.len());
        std::thread::scope(|s| -> Result<()> {
            let tokenise = |r: std::ops::Range<usize>| {
                s.spawn(move || self.tokenizer.encode_pairs_from(&pairs[r.clone()], r.start))
            };
            let mut next = Some(tokenise(chunks[0].clone()));
            for c in 0..chunks.len() {
                let encoded = next
                    .take()
                    .expect("a chunk is always being tokenised")
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))?;
                if let Some(r) = chunks.get(c + 1) {
                    next = Some(tokenise(r.clone()));
                }
                let start = chunks[c].start;
                out.extend(
                    self.logits_encoded(&encoded)
                        .map_err(|e| e.item_offset(start))?,
                );
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Logits of already-encoded pairs, in input order: batches are planned by length under the token
    /// budget and the results put back where each pair came from. If a pair cannot be taken by the model
    /// (see [`batch::check_pair`]), the error is an [`Error::Item`] naming the first such pair in `pairs`.
    pub fn logits_encoded(&self, pairs: &[EncodedPair]) -> Result<Vec<f32>> {
        let lengths: Vec<usize> = pairs.iter().map(EncodedPair::len).collect();
        let plan = batch::plan_batches(&lengths, self.token_budget);
        // Each batch's pairs are checked as it is built (on the GPU, while the previous batch runs); a
        // batch of checked pairs is valid by construction. Only when one fails are all pairs scanned, so
        // the error names the first bad one in input order, not the first in length order.
        let check = |p: &EncodedPair| batch::check_pair(p, &self.config);
        let make = |k: usize| -> Result<RaggedBatch> {
            if plan[k].iter().any(|&i| check(&pairs[i]).is_err()) {
                let (index, message) = (pairs.iter().enumerate())
                    .find_map(|(i, p)| check(p).err().map(|m| (i, m)))
                    .expect("a pair of this batch failed the check");
                return Err(Error::Item {
                    what: "pair",
                    index,
                    message,
                });
            }
            let b = RaggedBatch::from_pairs(plan[k].iter().map(|&i| &pairs[i]));
            debug_assert!(b.validate(&self.config).is_ok());
            Ok(b)
        };
        let mut out = vec![0f32; pairs.len()];
        let mut put = |k: usize, logits: Vec<f32>| {
            for (&i, l) in plan[k].iter().zip(logits) {
                out[i] = l;
            }
        };
        match &self.backend {
            Backend::Cpu(cpu) => {
                for k in 0..plan.len() {
                    put(k, cpu.forward(&make(k)?));
                }
            }
            // The GPU runs batch k while the host builds and uploads batch k + 1.
            Backend::Cuda(gpu) => gpu.forward_batches(plan.len(), make, put)?,
        }
        Ok(out)
    }

    /// `rerank`'s tokenisation: `query` encoded once and joined with each document, in input order (the
    /// same pairs as `encode_pair`). A few short documents are tokenised on the calling thread alone,
    /// more with helpers from rayon's pool joining it (see [`SHARE_MIN_BYTES`]).
    pub fn encode_documents<D>(&self, query: &str, documents: &[D]) -> Result<Vec<EncodedPair>>
    where
        D: AsRef<str>,
    {
        let bytes = documents.iter().map(|d| d.as_ref().len()).sum();
        let helpers = tokenize_helpers(bytes, self.tokenizer.threads());
        self.encode_documents_with(query, documents, helpers)
    }

    /// [`Self::encode_documents`] with up to `helpers` helpers (0: the calling thread alone).
    fn encode_documents_with<D>(
        &self,
        query: &str,
        documents: &[D],
        helpers: usize,
    ) -> Result<Vec<EncodedPair>>
    where
        D: AsRef<str>,
    {
        let q = self.tokenizer.encode_piece(query)?;
        if helpers == 0 || documents.len() < 2 {
            let encode = |(i, d): (usize, &D)| encode_document(&self.tokenizer, &q, d.as_ref(), i);
            return documents.iter().enumerate().map(encode).collect();
        }
        let mut text = String::with_capacity(documents.iter().map(|d| d.as_ref().len()).sum());
        let ends = documents
            .iter()
            .map(|d| {
                text.push_str(d.as_ref());
                text.len()
            })
            .collect();
        let ctx = DocumentsToEncode {
            tokenizer: self.tokenizer.clone(),
            query: q,
            text,
            ends,
        };
        let n = documents.len();
        let pool = self.tokenizer.pool();
        tokenize::share::map_with_helpers(pool, ctx, n, helpers, DocumentsToEncode::encode)
            .into_iter()
            .collect()
    }

    /// Scores `documents` against one `query` (tokenised once) and returns the best `top_k`, best
    /// first; ties keep input order.
    pub fn rerank<D>(&self, query: &str, documents: &[D], top_k: usize) -> Result<Vec<Ranked>>
    where
        D: AsRef<str> + Sync,
    {
        let encoded = self.encode_documents(query, documents)?;
        // Pair i is document i.
        let logits = self.logits_encoded(&encoded).map_err(|e| match e {
            Error::Item { index, message, .. } => Error::Item {
                what: "document",
                index,
                message,
            },
            other => other,
        })?;
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
pub(crate) mod tests {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn cross_encoder_is_send_and_sync() {
        assert_send_sync::<super::CrossEncoder>();
    }

    #[test]
    fn rerank_asks_for_helpers_from_a_few_kib_on() {
        use super::{tokenize_helpers as helpers, SHARE_MIN_BYTES as S};
        assert_eq!(helpers(usize::MAX, 1), 0);
        assert_eq!(helpers(usize::MAX, 0), 0);
        assert_eq!(helpers(S - 1, 16), 0);
        assert_eq!(helpers(S, 16), 15);
        // The 1 x 50 rerank of `xenc bench` (38,064 bytes).
        assert_eq!(helpers(38_064, 2), 1);
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

    /// Both ways of `encode_documents` give `encode_pair`'s pairs, in order (needs the test checkpoint,
    /// `bash scripts/fixtures.sh`; skipped without it).
    #[test]
    fn rerank_tokenisation_is_the_same_on_the_calling_thread_and_the_pool() {
        let Some(dir) = f32_test_model() else {
            eprintln!("skipped: no test checkpoint");
            return;
        };
        let model = super::CrossEncoder::builder(dir)
            .device(super::Device::Cpu)
            .build()
            .unwrap();
        let tok = model.tokenizer();
        let pairs = crate::bench::generate_with(tok, 60, 3);
        let query = pairs[0].0.as_str();
        let docs: Vec<&str> = pairs.iter().map(|(_, d)| d.as_str()).collect();
        let want: Vec<_> = docs
            .iter()
            .map(|d| tok.encode_pair(query, d).unwrap())
            .collect();
        for helpers in [0, 1, 3, 15] {
            let got = model.encode_documents_with(query, &docs, helpers).unwrap();
            assert_eq!(got, want, "helpers: {helpers}");
        }
        assert_eq!(model.encode_documents(query, &docs).unwrap(), want);
        assert!(model.encode_documents(query, &[""; 0]).unwrap().is_empty());
    }

    /// The token budget a CPU model gets by default and when set (needs the test checkpoint; skipped
    /// without it).
    #[test]
    fn token_budget_defaults_by_device_and_follows_the_builder() {
        let Some(dir) = f32_test_model() else {
            eprintln!("skipped: no test checkpoint");
            return;
        };
        let cpu = || super::CrossEncoder::builder(&dir).device(super::Device::Cpu);
        assert_eq!(
            cpu().build().unwrap().token_budget(),
            super::DEFAULT_TOKEN_BUDGET
        );
        assert_eq!(
            cpu().token_budget(3000).build().unwrap().token_budget(),
            3000
        );
        let err = cpu().token_budget(100).build().err().unwrap().to_string();
        assert!(err.contains("token budget 100"), "{err}");
    }

    /// The chunked path the GPU takes (run here on the CPU) names a pair the model rejects by its index
    /// in the whole input, as the one-call path does (needs the test checkpoint; skipped without it).
    #[test]
    fn chunked_scoring_names_a_bad_pair_by_its_input_index() {
        let Some(src) = f32_test_model() else {
            eprintln!("skipped: no test checkpoint");
            return;
        };
        // The tokenizer gains a token (id 30522) that the model's 30,522-row vocabulary lacks.
        let d = tempfile::tempdir().unwrap();
        for f in ["config.json", "model.safetensors", "tokenizer_config.json"] {
            let (from, to) = (src.join(f), d.path().join(f));
            std::fs::hard_link(&from, &to)
                .or_else(|_| std::fs::copy(&from, &to).map(drop))
                .unwrap();
        }
        let text = std::fs::read_to_string(src.join("tokenizer.json")).unwrap();
        let mut tok: serde_json::Value = serde_json::from_str(&text).unwrap();
        let added = tok["added_tokens"].as_array_mut().unwrap();
        let mut new = added[0].clone();
        new["id"] = 30522.into();
        new["content"] = "[NEW]".into();
        added.push(new);
        std::fs::write(d.path().join("tokenizer.json"), tok.to_string()).unwrap();
        let model = super::CrossEncoder::builder(d.path())
            .device(super::Device::Cpu)
            .build()
            .unwrap();
        let pairs: Vec<(&str, &str)> = (0..120)
            .map(|i| ("q", if i == 97 { "a [NEW] b" } else { "a b" }))
            .collect();
        let index = |r: crate::Result<Vec<f32>>| match r {
            Err(crate::Error::Item {
                what: "pair",
                index,
                message,
            }) => {
                assert!(message.contains("token id 30522"), "{message}");
                index
            }
            other => panic!("expected an item error, got {other:?}"),
        };
        assert_eq!(index(model.logits(&pairs)), 97);
        assert_eq!(
            index(model.logits_overlapped(&pairs, &[0..40, 40..80, 80..120])),
            97
        );
        assert_eq!(
            index(model.logits_overlapped(&pairs, &[0..100, 100..120])),
            97
        );
    }

    #[test]
    fn overlap_chunks_cover_the_input_in_order_and_grow() {
        for n in [0, 1, 511, 512, 513, 5000, 100_000] {
            let c = super::overlap_chunks(n);
            assert_eq!(c.first().map_or(0, |r| r.start), 0);
            assert_eq!(c.last().map_or(0, |r| r.end), n);
            assert!(c.windows(2).all(|w| w[0].end == w[1].start));
            assert!(c
                .iter()
                .all(|r| !r.is_empty() && r.len() <= super::OVERLAP_MAX_CHUNK));
        }
        let sizes: Vec<usize> = super::overlap_chunks(40_000)
            .iter()
            .map(|r| r.len())
            .collect();
        assert_eq!(sizes, [512, 1024, 2048, 4096, 8192, 8192, 8192, 7744]);
    }
}
