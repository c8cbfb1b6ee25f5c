//! One error type for the crate. Every message names the thing that was wrong (file, field, tensor,
//! input line) and, where it helps, what was expected.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file the checkpoint needs is not there.
    #[error("{path}: not found (a checkpoint directory needs {what})")]
    MissingFile { path: PathBuf, what: &'static str },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// config.json is unreadable or describes a model xenc does not run. The message names the field.
    #[error("config.json: {0}")]
    Config(String),

    /// model.safetensors is unreadable, truncated, or lacks a tensor.
    #[error("model.safetensors: {0}")]
    Weights(String),

    #[error("model.safetensors: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    TensorShape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// A caller-supplied option is out of range.
    #[error("invalid option: {0}")]
    Option(String),

    /// The input to score is unusable (e.g. a token id outside the vocabulary).
    #[error("invalid input: {0}")]
    Input(String),

    /// The CUDA backend could not be used (no libcuda, no device, a failed call).
    #[error("CUDA: {0}")]
    Cuda(String),
}
