//! `xenc._xenc`: the native half of the Python package. A thin binding over the `xenc` crate: it turns
//! Python sequences of strings into Rust strings, calls [`xenc::CrossEncoder`] with the GIL released, and
//! maps [`xenc::Error`] to Python exceptions (once, by [`ErrorKind`], in [`to_py_err`]). Everything
//! sentence-transformers-shaped (singular pairs, generators, numpy, `rank`'s dicts) is in `xenc/__init__.py`.
//!
//! Long calls run in chunks of pairs; between chunks the calling thread takes the GIL back to run
//! Python's signal handlers (`Ctrl-C` raises `KeyboardInterrupt` there) and report progress.

use std::path::PathBuf;

use pyo3::exceptions::{PyFileNotFoundError, PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyDict, PySequence, PyString};
use xenc::{Activation, Device, Error, ErrorKind};

/// Pairs scored between two checks for signals on the CPU (~0.3–1 s of work on 2 cores for typical
/// pairs; each chunk is still packed into length-sorted batches under the token budget).
const CPU_CHUNK: usize = 1024;
/// Pairs scored between two checks on a GPU: enough for several full batches and the engine's
/// tokenise-while-the-GPU-runs overlap.
const GPU_CHUNK: usize = 16_384;

/// xenc's error as the Python exception of its kind, with xenc's message.
fn to_py_err(e: Error) -> PyErr {
    let msg = e.to_string();
    match e.kind() {
        ErrorKind::NotFound => PyFileNotFoundError::new_err(msg),
        ErrorKind::Io => PyOSError::new_err(msg),
        ErrorKind::InvalidModel | ErrorKind::InvalidOption | ErrorKind::InvalidInput => {
            PyValueError::new_err(msg)
        }
        ErrorKind::Backend => PyRuntimeError::new_err(msg),
        _ => PyRuntimeError::new_err(msg),
    }
}

/// An input item of the wrong Python type, in the form of xenc's item errors.
fn item_type_error(what: &str, index: usize, message: String) -> PyErr {
    PyTypeError::new_err(format!("invalid input: {what} {index}: {message}"))
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

fn parse_device(s: &str) -> PyResult<Device> {
    s.parse::<Device>().map_err(to_py_err)
}

fn parse_activation(s: Option<&str>) -> PyResult<Option<Activation>> {
    match s {
        None => Ok(None),
        Some("sigmoid") => Ok(Some(Activation::Sigmoid)),
        Some("identity") => Ok(Some(Activation::Raw)),
        Some("softmax") => Ok(Some(Activation::Softmax)),
        Some(other) => Err(to_py_err(Error::Option(format!(
            "activation {other:?}: xenc applies \"identity\", \"sigmoid\" or \"softmax\""
        )))),
    }
}

fn activation_name(a: Activation) -> &'static str {
    match a {
        Activation::Raw => "identity",
        Activation::Sigmoid => "sigmoid",
        Activation::Softmax => "softmax",
    }
}

/// A Python str as a Rust String; `what`, `index` and `part` name it in the error.
fn extract_text(
    obj: &Bound<'_, PyAny>,
    what: &'static str,
    index: usize,
    part: &str,
) -> PyResult<String> {
    let s = obj.cast::<PyString>().map_err(|_| {
        item_type_error(
            what,
            index,
            format!("the {part} is {}, expected str", type_name(obj)),
        )
    })?;
    s.to_cow().map(|c| c.into_owned()).map_err(|e| {
        to_py_err(Error::Item {
            what,
            index,
            message: format!("the {part} is not valid Unicode ({e})"),
        })
    })
}

/// A Python sequence of (query, document) pairs as Rust strings. Each pair must be a sequence of
/// exactly two str.
fn extract_pairs(pairs: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    let seq = pairs.cast::<PySequence>().map_err(|_| {
        PyTypeError::new_err(format!(
            "invalid input: pairs is {}, expected a list of (query, document) pairs",
            type_name(pairs)
        ))
    })?;
    let n = seq.len()?;
    let mut out = Vec::with_capacity(n);
    for index in 0..n {
        let item = seq.get_item(index)?;
        if item.is_instance_of::<PyString>() {
            return Err(item_type_error(
                "pair",
                index,
                "is a str, expected a (query, document) pair".into(),
            ));
        }
        let pair = item.cast::<PySequence>().map_err(|_| {
            item_type_error(
                "pair",
                index,
                format!("is {}, expected a (query, document) pair", type_name(&item)),
            )
        })?;
        let len = pair.len()?;
        if len != 2 {
            return Err(to_py_err(Error::Item {
                what: "pair",
                index,
                message: format!("has {len} items, expected 2 (query, document)"),
            }));
        }
        let q = extract_text(&pair.get_item(0)?, "pair", index, "query")?;
        let d = extract_text(&pair.get_item(1)?, "pair", index, "document")?;
        out.push((q, d));
    }
    Ok(out)
}

fn extract_documents(documents: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    let seq = documents.cast::<PySequence>().map_err(|_| {
        PyTypeError::new_err(format!(
            "invalid input: documents is {}, expected a list of str",
            type_name(documents)
        ))
    })?;
    if documents.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "invalid input: documents is a str, expected a list of str",
        ));
    }
    let n = seq.len()?;
    let mut out = Vec::with_capacity(n);
    for index in 0..n {
        out.push(extract_text(
            &seq.get_item(index)?,
            "document",
            index,
            "document",
        )?);
    }
    Ok(out)
}

/// An item error of the engine's ("pair") as one about `what`.
fn relabel(e: Error, what: &'static str) -> Error {
    match e {
        Error::Item { index, message, .. } => Error::Item {
            what,
            index,
            message,
        },
        other => other,
    }
}

/// A loaded cross-encoder (`xenc.CrossEncoder` wraps it). Immutable, `Send + Sync`: threads share it,
/// and every call releases the GIL while xenc tokenises and runs the model.
#[pyclass(frozen, module = "xenc._xenc", name = "Model")]
struct Model {
    inner: xenc::CrossEncoder,
    model_dir: String,
}

impl Model {
    fn chunk(&self) -> usize {
        if self.inner.on_gpu() {
            GPU_CHUNK
        } else {
            CPU_CHUNK
        }
    }

    fn activation_or_default(&self, activation: Option<&str>) -> PyResult<Activation> {
        Ok(parse_activation(activation)?.unwrap_or(self.inner.activation()))
    }

    /// Raw logits of encoded or text pairs, chunk by chunk with the GIL released for each; signals and
    /// `progress(done)` between chunks. `run(range)` scores one chunk; its item errors are relative to
    /// the chunk, and name `what` ("pair", or "document" when pair i is rank's document i).
    fn chunked<F>(
        &self,
        py: Python<'_>,
        n: usize,
        what: &'static str,
        progress: Option<&Bound<'_, PyAny>>,
        run: F,
    ) -> PyResult<Vec<f32>>
    where
        F: Fn(std::ops::Range<usize>) -> xenc::Result<Vec<f32>> + Sync,
    {
        let mut out = Vec::with_capacity(n);
        let chunk = self.chunk();
        let mut start = 0;
        while start < n {
            let end = (start + chunk).min(n);
            let logits = py
                .detach(|| run(start..end))
                .map_err(|e| to_py_err(relabel(e.map_item_index(|i| start + i), what)))?;
            out.extend(logits);
            py.check_signals()?;
            if let Some(p) = progress {
                p.call1((end,))?;
            }
            start = end;
        }
        Ok(out)
    }
}

#[pymethods]
impl Model {
    #[new]
    // One argument per Python keyword argument of the constructor.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (model_dir, device="auto", max_length=None, threads=None, token_budget=None, activation=None, label=None))]
    fn new(
        py: Python<'_>,
        model_dir: PathBuf,
        device: &str,
        max_length: Option<usize>,
        threads: Option<usize>,
        token_budget: Option<usize>,
        activation: Option<&str>,
        label: Option<&str>,
    ) -> PyResult<Self> {
        let mut builder = xenc::CrossEncoder::builder(&model_dir).device(parse_device(device)?);
        if let Some(n) = max_length {
            builder = builder.max_length(n);
        }
        if let Some(n) = threads {
            builder = builder.threads(n);
        }
        if let Some(n) = token_budget {
            builder = builder.token_budget(n);
        }
        if let Some(a) = parse_activation(activation)? {
            builder = builder.activation(a);
        }
        if let Some(l) = label {
            builder = builder.label(l);
        }
        let inner = py.detach(|| builder.build()).map_err(to_py_err)?;
        Ok(Model {
            inner,
            model_dir: model_dir.to_string_lossy().into_owned(),
        })
    }

    /// Scores of `pairs` (a sequence of (query, document) sequences of str) in input order, `num_labels`
    /// a pair, as the bytes of native-endian float32 values. `activation`: "identity", "sigmoid", or None for the
    /// checkpoint's default. `progress(done)` is called after each chunk.
    #[pyo3(signature = (pairs, activation=None, progress=None))]
    fn predict<'py>(
        &self,
        py: Python<'py>,
        pairs: &Bound<'py, PyAny>,
        activation: Option<&str>,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyByteArray>> {
        let act = self.activation_or_default(activation)?;
        let pairs = extract_pairs(pairs)?;
        if pairs.is_empty() {
            return Err(to_py_err(Error::Input("no pairs to score".into())));
        }
        let logits = self.chunked(py, pairs.len(), "pair", progress, |r| {
            self.inner.logits(&pairs[r])
        })?;
        let mut scores = logits;
        act.apply_rows(&mut scores, self.inner.num_labels());
        let bytes: Vec<u8> = scores.into_iter().flat_map(f32::to_ne_bytes).collect();
        Ok(PyByteArray::new(py, &bytes))
    }

    /// `documents` scored against `query` (tokenised once), best first, as (index, score) tuples; ties
    /// keep input order. At most `top_k` (None: all).
    #[pyo3(signature = (query, documents, top_k=None, activation=None, progress=None))]
    fn rank<'py>(
        &self,
        py: Python<'py>,
        query: &Bound<'py, PyAny>,
        documents: &Bound<'py, PyAny>,
        top_k: Option<usize>,
        activation: Option<&str>,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Vec<(usize, f32)>> {
        let act = self.activation_or_default(activation)?;
        // A model with several labels ranks only by a chosen one: say so before any work.
        self.inner.ranking_label().map_err(to_py_err)?;
        let query = query.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err(format!(
                "invalid input: the query is {}, expected str",
                type_name(query)
            ))
        })?;
        let query = query.to_cow().map(|c| c.into_owned()).map_err(|e| {
            to_py_err(Error::Input(format!(
                "the query is not valid Unicode ({e})"
            )))
        })?;
        let documents = extract_documents(documents)?;
        if documents.is_empty() {
            return Err(to_py_err(Error::Input("no documents to rank".into())));
        }
        let encoded = py
            .detach(|| self.inner.encode_documents(&query, &documents))
            .map_err(to_py_err)?;
        // Pair i is document i: the engine's "pair" errors name the document.
        let logits = self.chunked(py, encoded.len(), "document", progress, |r| {
            self.inner.logits_encoded(&encoded[r])
        })?;
        let n = encoded.len();
        let ranked =
            (self.inner.rank_logits(logits, act, top_k.unwrap_or(n))).map_err(to_py_err)?;
        Ok(ranked.into_iter().map(|r| (r.index, r.score)).collect())
    }

    /// "cpu" or "cuda:N".
    #[getter]
    fn device(&self) -> String {
        if self.inner.on_gpu() {
            let name = self.inner.device_name();
            name.split_whitespace().next().unwrap_or("cuda").to_owned()
        } else {
            "cpu".into()
        }
    }

    /// What runs the model, e.g. "cpu (2 threads)" or "cuda:0 NVIDIA H100 80GB HBM3 (sm_90)".
    #[getter]
    fn device_name(&self) -> String {
        self.inner.device_name()
    }

    /// "float32" on the CPU, "float16" on a GPU (xenc's CUDA kernels compute in fp16).
    #[getter]
    fn dtype(&self) -> &'static str {
        if self.inner.on_gpu() {
            "float16"
        } else {
            "float32"
        }
    }

    #[getter]
    fn max_length(&self) -> usize {
        self.inner.max_length()
    }

    #[getter]
    fn token_budget(&self) -> usize {
        self.inner.token_budget()
    }

    #[getter]
    fn model_dir(&self) -> &str {
        &self.model_dir
    }

    /// The label `rank` ranks by (its index), or None for a model with several labels and no `label`.
    #[getter]
    fn label(&self) -> Option<usize> {
        self.inner.label()
    }

    /// Raises the ValueError `rank` raises for a model with several labels and no `label`.
    fn check_rankable(&self) -> PyResult<()> {
        self.inner.ranking_label().map(drop).map_err(to_py_err)
    }

    /// Scores per pair: the classifier's labels (1 for a reranker).
    #[getter]
    fn num_labels(&self) -> usize {
        self.inner.num_labels()
    }

    /// The default activation: "identity", "sigmoid" or "softmax".
    #[getter]
    fn activation(&self) -> &'static str {
        activation_name(self.inner.activation())
    }

    /// config.json as xenc read it (a new dict on each call).
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = self.inner.config();
        let d = PyDict::new(py);
        // The family xenc runs it as: "bert", or "roberta" for RoBERTa and XLM-RoBERTa.
        d.set_item("model_type", c.family.name())?;
        d.set_item("vocab_size", c.vocab_size)?;
        d.set_item("hidden_size", c.hidden_size)?;
        d.set_item("num_hidden_layers", c.num_hidden_layers)?;
        d.set_item("num_attention_heads", c.num_attention_heads)?;
        d.set_item("intermediate_size", c.intermediate_size)?;
        d.set_item("max_position_embeddings", c.max_position_embeddings)?;
        d.set_item("type_vocab_size", c.type_vocab_size)?;
        // The f32 as written (1e-12), not its f64 widening (9.99...e-13).
        let eps: f64 = c
            .layer_norm_eps
            .to_string()
            .parse()
            .unwrap_or(c.layer_norm_eps as f64);
        d.set_item("layer_norm_eps", eps)?;
        d.set_item("num_labels", c.num_labels)?;
        let id2label = PyDict::new(py);
        for (i, name) in c.labels.iter().enumerate() {
            id2label.set_item(i, name)?;
        }
        d.set_item("id2label", id2label)?;
        let configured = match &c.activation {
            xenc::ConfiguredActivation::Known(a) => activation_name(*a).to_owned(),
            xenc::ConfiguredActivation::Unsupported { value, .. } => value.clone(),
        };
        d.set_item("activation_fn", configured)?;
        Ok(d)
    }
}

#[pymodule]
fn _xenc(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Model>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
