//! One error type for the crate. Every message names the thing that was wrong (file, field, tensor,
//! input line) and, where it helps, what was expected. Errors that come from another library (I/O,
//! JSON, safetensors, tokenizers, the CUDA driver and cuBLAS) keep it as their `source()`
//! (std::error::Error::source), and [`Error::kind`] sorts every error into a few stable classes that a
//! server maps to an HTTP status and a binding to an exception type.
//!
//! ```
//! use xenc::{CrossEncoder, ErrorKind};
//! let err = CrossEncoder::builder("no/such/dir").build().err().unwrap();
//! assert_eq!(err.kind(), ErrorKind::NotFound);
//! assert!(err.to_string().contains("no/such/dir"));
//! ```

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error another library gave, kept as the source of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file the checkpoint needs is not there.
    #[error("{path}: not found (a checkpoint directory needs {what})")]
    MissingFile { path: PathBuf, what: &'static str },

    /// A path that should be a checkpoint directory is something else (a file, say).
    #[error("{path}: not a directory (a checkpoint directory holds {what})")]
    NotADirectory { path: PathBuf, what: &'static str },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// config.json is unreadable or describes a model xenc does not run. The message names the field.
    #[error("config.json: {message}")]
    Config {
        message: String,
        #[source]
        source: Option<BoxError>,
    },

    /// model.safetensors is unreadable, truncated, or lacks a tensor.
    #[error("model.safetensors: {message}")]
    Weights {
        message: String,
        #[source]
        source: Option<BoxError>,
    },

    #[error("model.safetensors: tensor `{name}` has shape {found:?}, expected {expected:?}")]
    TensorShape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    /// tokenizer.json (or tokenizer_config.json) is unusable, or tokenisation failed.
    #[error("tokenizer: {message}")]
    Tokenizer {
        message: String,
        #[source]
        source: Option<BoxError>,
    },

    /// A caller-supplied option is out of range.
    #[error("invalid option: {0}")]
    Option(String),

    /// The input to score is unusable as a whole (e.g. an empty pairs file).
    #[error("invalid input: {0}")]
    Input(String),

    /// One input item is unusable: `what` is "pair" or "document", `index` its 0-based place in the
    /// slice given to the call (the CLI turns it into a line number, a server into its request's own
    /// index: [`Error::map_item_index`]).
    #[error("invalid input: {what} {index}: {message}")]
    Item {
        what: &'static str,
        index: usize,
        message: String,
    },

    /// The CUDA backend could not be used (no libcuda, no device, a failed call).
    #[error("CUDA: {message}")]
    Cuda {
        message: String,
        #[source]
        source: Option<BoxError>,
    },
}

/// What kind of failure an [`Error`] is: stable across versions, for a caller to map to an HTTP status
/// or an exception type without reading messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A checkpoint file or directory is not there (Python: FileNotFoundError).
    NotFound,
    /// Reading or writing a file or stream failed (Python: OSError).
    Io,
    /// The checkpoint is there but unusable: config.json, model.safetensors or tokenizer.json
    /// (Python: ValueError).
    InvalidModel,
    /// An option the caller gave is out of range (Python: ValueError; HTTP 400).
    InvalidOption,
    /// The input to score, or one item of it, is unusable (Python: ValueError; HTTP 422).
    InvalidInput,
    /// The backend failed: a CUDA call, a device (Python: RuntimeError; HTTP 424).
    Backend,
}

impl Error {
    /// The stable class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::MissingFile { .. } | Error::NotADirectory { .. } => ErrorKind::NotFound,
            Error::Io { .. } => ErrorKind::Io,
            Error::Config { .. }
            | Error::Weights { .. }
            | Error::TensorShape { .. }
            | Error::Tokenizer { .. } => ErrorKind::InvalidModel,
            Error::Option(_) => ErrorKind::InvalidOption,
            Error::Input(_) | Error::Item { .. } => ErrorKind::InvalidInput,
            Error::Cuda { .. } => ErrorKind::Backend,
        }
    }

    /// The input item an [`Error::Item`] names, as `(what, index)`; None for other errors.
    pub fn item(&self) -> Option<(&'static str, usize)> {
        match self {
            Error::Item { what, index, .. } => Some((what, *index)),
            _ => None,
        }
    }

    /// An [`Error::Item`] with its index mapped by `f` (e.g. from a merged batch back to the caller's
    /// own request); other errors as they are.
    pub fn map_item_index(self, f: impl FnOnce(usize) -> usize) -> Error {
        match self {
            Error::Item {
                what,
                index,
                message,
            } => Error::Item {
                what,
                index: f(index),
                message,
            },
            other => other,
        }
    }

    /// config.json is unusable: `message` names the field.
    pub fn config(message: impl Into<String>) -> Error {
        Error::Config {
            message: message.into(),
            source: None,
        }
    }

    /// model.safetensors is unusable: `message` names the tensor.
    pub fn weights(message: impl Into<String>) -> Error {
        Error::Weights {
            message: message.into(),
            source: None,
        }
    }

    /// The tokenizer files are unusable, or tokenisation failed.
    pub fn tokenizer(message: impl Into<String>) -> Error {
        Error::Tokenizer {
            message: message.into(),
            source: None,
        }
    }

    /// A CUDA failure without a library error behind it (a missing library, a refused shape).
    pub fn cuda(message: impl Into<String>) -> Error {
        Error::Cuda {
            message: message.into(),
            source: None,
        }
    }

    /// This error with `source` as its cause, where its variant keeps one; others as they are.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Error {
        match &mut self {
            Error::Config { source: s, .. }
            | Error::Weights { source: s, .. }
            | Error::Tokenizer { source: s, .. }
            | Error::Cuda { source: s, .. } => *s = Some(source.into()),
            _ => {}
        }
        self
    }

    /// A tokenizer error while encoding input item `index` as that item's error; other errors as they
    /// are.
    pub(crate) fn at_item(self, what: &'static str, index: usize) -> Error {
        match self {
            Error::Tokenizer { message, .. } => Error::Item {
                what,
                index,
                message: format!("tokenizer: {message}"),
            },
            other => other,
        }
    }

    /// An item error of a call on `items[start..]` as one of a call on `items`.
    pub(crate) fn item_offset(self, start: usize) -> Error {
        self.map_item_index(|i| start + i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn library_errors_stay_reachable_as_the_source() {
        let json = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        let e = Error::config(format!("not valid JSON: {json}")).with_source(json);
        assert_eq!(e.kind(), ErrorKind::InvalidModel);
        let src = e.source().expect("a source");
        assert!(src.downcast_ref::<serde_json::Error>().is_some());
        assert!(e.to_string().starts_with("config.json: not valid JSON"));
        // Variants without a source slot are unchanged.
        let e = Error::Option("x".into()).with_source(json_err());
        assert!(e.source().is_none());
    }

    fn json_err() -> serde_json::Error {
        serde_json::from_str::<serde_json::Value>("[").unwrap_err()
    }

    #[test]
    fn item_indices_map_and_other_errors_pass() {
        let e = Error::Item {
            what: "pair",
            index: 3,
            message: "m".into(),
        };
        assert_eq!(e.item(), Some(("pair", 3)));
        let e = e.map_item_index(|i| i + 10).item_offset(5);
        assert_eq!(e.item(), Some(("pair", 18)));
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let c = Error::cuda("no").map_item_index(|_| unreachable!());
        assert_eq!(c.kind(), ErrorKind::Backend);
        assert!(c.item().is_none());
    }
}
