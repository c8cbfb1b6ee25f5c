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

    /// The input to score is unusable as a whole (e.g. an empty pairs file).
    #[error("invalid input: {0}")]
    Input(String),

    /// One input item is unusable: `what` is "pair" or "document", `index` its 0-based place in the
    /// slice given to the call (the CLI turns it into a line number).
    #[error("invalid input: {what} {index}: {message}")]
    Item {
        what: &'static str,
        index: usize,
        message: String,
    },

    /// The CUDA backend could not be used (no libcuda, no device, a failed call).
    #[error("CUDA: {0}")]
    Cuda(String),
}

impl Error {
    /// A tokenizer error while encoding input item `index` as that item's error; other errors as they
    /// are.
    pub(crate) fn at_item(self, what: &'static str, index: usize) -> Error {
        match self {
            Error::Tokenizer(m) => Error::Item {
                what,
                index,
                message: format!("tokenizer: {m}"),
            },
            other => other,
        }
    }

    /// An item error of a call on `items[start..]` as one of a call on `items`.
    pub(crate) fn item_offset(self, start: usize) -> Error {
        match self {
            Error::Item {
                what,
                index,
                message,
            } => Error::Item {
                what,
                index: start + index,
                message,
            },
            other => other,
        }
    }
}
