//! Loading a checkpoint: [`CrossEncoderBuilder`] checks the directory, reads config.json, the weights and
//! the tokenizer (in parallel), picks the device and the defaults (max_length, token budget, activation)
//! and hands an [`Engine`] to the [`CrossEncoder`].

use std::path::PathBuf;

use crate::config::{Activation, ConfiguredActivation, ModelConfig};
use crate::cpu::CpuBackend;
use crate::cuda::{self, CudaBackend};
use crate::engine::{Backend, Engine, DEFAULT_CUDA_TOKEN_BUDGET, DEFAULT_TOKEN_BUDGET};
use crate::error::{Error, Result};
use crate::options::{CudaOptions, Device, TokenizerOptions};
use crate::tokenize::{self, PairTokenizer};
use crate::weights::BertWeights;

/// Options for loading a checkpoint; see [`CrossEncoder::builder`](crate::CrossEncoder::builder). Every
/// option has a default that serves most users; the checkpoint's files decide the rest.
///
/// ```no_run
/// use xenc::{Activation, CrossEncoder, CudaOptions, Device, TokenizerEngine, TokenizerOptions};
/// let mut tokenizer = TokenizerOptions::default();
/// tokenizer.engine = TokenizerEngine::Hf; // Hugging Face tokenizers instead of xenc's WordPiece
/// let model = CrossEncoder::builder("models/ms-marco-MiniLM-L-6-v2")
///     .device(Device::Cuda(0))
///     .max_length(256)
///     .token_budget(32_768)
///     .activation(Activation::Sigmoid)
///     .tokenizer_options(tokenizer)
///     .cuda_options(CudaOptions::default())
///     .build()?;
/// # Ok::<(), xenc::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct CrossEncoderBuilder {
    dir: PathBuf,
    device: Device,
    max_length: Option<usize>,
    activation: Option<Activation>,
    label: Option<String>,
    token_budget: Option<usize>,
    threads: Option<usize>,
    profile: bool,
    cuda: CudaOptions,
    tokenizer: TokenizerOptions,
}

impl CrossEncoderBuilder {
    pub(crate) fn new(dir: PathBuf) -> Self {
        CrossEncoderBuilder {
            dir,
            device: Device::Auto,
            max_length: None,
            activation: None,
            label: None,
            token_budget: None,
            threads: None,
            profile: false,
            cuda: CudaOptions::default(),
            tokenizer: TokenizerOptions::default(),
        }
    }

    pub fn device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// Tokens per pair after truncation; default tokenizer_config.json's `model_max_length` when the
    /// model's positions cover it (what sentence-transformers' CrossEncoder truncates to), else
    /// `min(512, positions)` (positions: `max_position_embeddings`, less `pad_token_id + 1` for RoBERTa).
    pub fn max_length(mut self, n: usize) -> Self {
        self.max_length = Some(n);
        self
    }

    /// Overrides the checkpoint's default activation.
    pub fn activation(mut self, a: Activation) -> Self {
        self.activation = Some(a);
        self
    }

    /// The label whose score [`CrossEncoder::rerank`](crate::CrossEncoder::rerank) ranks by, for a
    /// model with several labels: its name in config.json's `id2label`, or its index ("1"). A one-label
    /// model ranks by its only label; a model with several refuses to rerank without this.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Tokens per batch (default [`DEFAULT_CUDA_TOKEN_BUDGET`] on CUDA, [`DEFAULT_TOKEN_BUDGET`] on the
    /// CPU); must be at least `max_length`.
    pub fn token_budget(mut self, tokens: usize) -> Self {
        self.token_budget = Some(tokens);
        self
    }

    /// Threads for tokenisation and the CPU model (default: all cores, through rayon's global pool).
    /// Set, the model gets a pool of its own, so `threads(1)` keeps all of its work on one core. At most
    /// the cores this process may use (`std::thread::available_parallelism`, which honours CPU affinity
    /// and cgroup quotas): a larger value is lowered to it, with a warning through `log`.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n);
        self
    }

    /// Times every stage of every forward pass (GPU: CUDA events; CPU: the host clock); read with
    /// [`CrossEncoder::take_profile`](crate::CrossEncoder::take_profile). Off by default: it adds an event record per stage on the GPU.
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

    /// Loads the checkpoint: the engine, the activation its scores get, and the label a ranking sorts
    /// by (None: a model with several labels and no [`Self::label`]) ([`Self::build`] wraps them).
    pub(crate) fn load(self) -> Result<(Engine, Activation, Option<usize>)> {
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

        let threads = self.threads.map(|n| {
            let cores = available_cores();
            if n > cores {
                log::warn!(
                    "threads {n}: this process may use {cores} cores; using {cores} (more threads than \
                     cores only contend, and thousands take seconds to start)"
                );
            }
            n.min(cores)
        });
        let pool = match threads {
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
        if activation == Activation::Softmax && config.num_labels == 1 {
            return Err(Error::Option(
                "softmax across a one-label model's labels is always 1; choose sigmoid or raw"
                    .into(),
            ));
        }
        let label = match (&self.label, config.num_labels) {
            (Some(l), _) => Some(config.label_index(l)?),
            (None, 1) => Some(0),
            (None, _) => None,
        };
        let max_length = match self.max_length {
            Some(n) => n,
            None => tokenize::default_max_length(
                tokenize::model_max_length(&dir.join("tokenizer_config.json"))?,
                config.positions(),
            ),
        };
        if max_length > config.positions() {
            return Err(Error::Option(format!(
                "max_length {max_length} exceeds the {} positions a pair may use (config.json's \
                 max_position_embeddings {}{})",
                config.positions(),
                config.max_position_embeddings,
                match config.position_offset {
                    0 => String::new(),
                    o => format!(" less the {o} before the first position id, pad_token_id + 1"),
                }
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
        // The tokenizer (JSON parsing, ~15 ms) loads on another thread while the weights are read and
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
        let tokenizer = tokenizer?
            .with_pool(pool.clone())
            .with_token_types(config.family.uses_token_types());
        let (tokenizer, weights) = (tokenizer, weights?);
        let cuda =
            |n| CudaBackend::new(&config, &weights, n, cuda_budget, &self.cuda).map(Backend::Cuda);
        let backend = match self.device {
            Device::Cpu => None,
            Device::Cuda(n) => Some(cuda(n)?),
            Device::Auto => match cuda::probe().and_then(|()| cuda(0).map_err(|e| e.to_string())) {
                Ok(b) => Some(b),
                Err(reason) => {
                    static SAID: std::sync::Once = std::sync::Once::new();
                    SAID.call_once(|| log::warn!("no usable GPU ({reason}); running on the CPU"));
                    None
                }
            },
        };
        let backend = match backend {
            Some(b) => b,
            None => Backend::Cpu(CpuBackend::new(config.clone(), weights, pool)),
        };
        let token_budget = match &backend {
            Backend::Cuda(_) => cuda_budget,
            Backend::Cpu(_) => self
                .token_budget
                .unwrap_or(DEFAULT_TOKEN_BUDGET.max(max_length)),
        };
        let engine = Engine::new(config, tokenizer, backend, token_budget);
        engine.set_profiling(self.profile);
        Ok((engine, activation, label))
    }
}

/// Cores this process may use; [`MAX_THREADS_UNKNOWN_CORES`] where the system does not say.
fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(MAX_THREADS_UNKNOWN_CORES, |n| n.get())
}

/// The thread limit where the number of cores is unknown: beyond any machine xenc is likely to meet, and
/// still quick to start.
const MAX_THREADS_UNKNOWN_CORES: usize = 256;
