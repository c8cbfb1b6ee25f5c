//! config.json → [`ModelConfig`], validated. Sizes always come from here, never from constants, so the
//! same code runs MiniLM-L2/L4/L6/L12, TinyBERT and base-size BERT cross-encoders.

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::family::Family;

/// What a score means by default, as sentence-transformers' CrossEncoder decides it: the checkpoint's
/// `sentence_transformers.activation_fn` (or the older `sbert_ce_default_activation_function`), else
/// sigmoid for a one-label model and the raw logits for a model with several labels.
/// [`crate::CrossEncoderBuilder::activation`] overrides it.
///
/// An activation applies to one pair's logits, one per label ([`Activation::apply_row`]): `Raw` and
/// `Sigmoid` to each logit, `Softmax` across the labels (sentence-transformers' `apply_softmax`).
///
/// ```
/// use xenc::Activation;
/// assert_eq!(Activation::Raw.apply(2.0), 2.0);
/// assert!((Activation::Sigmoid.apply(0.0) - 0.5).abs() < 1e-7);
/// let mut row = [1.0f32, 1.0];
/// Activation::Softmax.apply_row(&mut row);
/// assert_eq!(row, [0.5, 0.5]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// The classifier's logits as they are.
    Raw,
    /// `1 / (1 + exp(-logit))`, each label on its own.
    Sigmoid,
    /// `exp(logit) / Σ exp(logits of the pair)` across a pair's labels (a model with several labels).
    Softmax,
}

impl Activation {
    /// The activated score of a one-label model's logit (`Softmax` of a single logit is 1).
    #[inline]
    pub fn apply(self, logit: f32) -> f32 {
        let mut row = [logit];
        self.apply_row(&mut row);
        row[0]
    }

    /// Activates one pair's logits (one per label) in place.
    pub fn apply_row(self, row: &mut [f32]) {
        match self {
            Activation::Raw => {}
            Activation::Sigmoid => row.iter_mut().for_each(|x| *x = 1.0 / (1.0 + (-*x).exp())),
            Activation::Softmax => {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0f32;
                for x in row.iter_mut() {
                    *x = (*x - max).exp();
                    sum += *x;
                }
                row.iter_mut().for_each(|x| *x /= sum);
            }
        }
    }

    /// Activates `logits`, `labels` per pair (row-major), in place.
    pub fn apply_rows(self, logits: &mut [f32], labels: usize) {
        if self != Activation::Raw {
            logits
                .chunks_exact_mut(labels)
                .for_each(|r| self.apply_row(r));
        }
    }

    /// The name the CLI, the server and the Python package use: "raw", "sigmoid", "softmax".
    pub fn name(self) -> &'static str {
        match self {
            Activation::Raw => "raw",
            Activation::Sigmoid => "sigmoid",
            Activation::Softmax => "softmax",
        }
    }
}

/// The default activation the checkpoint asks for; an unsupported one is only an error if the caller
/// does not choose an activation explicitly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfiguredActivation {
    Known(Activation),
    Unsupported { field: &'static str, value: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f32,
    pub num_labels: usize,
    /// Each label's name, by label index: config.json's `id2label`, else transformers' `LABEL_i`.
    pub labels: Vec<String>,
    pub activation: ConfiguredActivation,
    /// The checkpoint family (`model_type`): tensor names, position numbering, token types.
    pub family: Family,
    /// The position id of a sequence's first token: 0 for BERT, `pad_token_id + 1` for RoBERTa. The
    /// loader drops that many rows of the position table, so the model numbers positions from 0.
    pub position_offset: usize,
}

impl ModelConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// The most tokens a pair may hold: the position table's rows a sequence can use,
    /// `max_position_embeddings - position_offset` (512 for MiniLM; 512 for XLM-R's 514 positions).
    pub fn positions(&self) -> usize {
        self.max_position_embeddings - self.position_offset
    }

    /// The index of a label given by its name in `id2label` or by its index ("2").
    ///
    /// ```
    /// let c = xenc::ModelConfig::from_json_str(r#"{"model_type":"bert","hidden_size":8,
    ///     "num_attention_heads":2,"num_hidden_layers":1,"intermediate_size":8,
    ///     "max_position_embeddings":8,"vocab_size":8,"id2label":{"0":"no","1":"yes"}}"#)?;
    /// assert_eq!((c.label_index("yes")?, c.label_index("0")?), (1, 0));
    /// assert!(c.label_index("maybe").is_err());
    /// # Ok::<(), xenc::Error>(())
    /// ```
    pub fn label_index(&self, label: &str) -> Result<usize> {
        let mut named = self.labels.iter().enumerate().filter(|(_, n)| *n == label);
        match (named.next(), named.next(), label.parse::<usize>()) {
            (Some((i, _)), None, _) => Ok(i),
            (Some(_), Some(_), _) => Err(Error::Option(format!(
                "label {label:?} names more than one of the model's labels; give its index"
            ))),
            (None, _, Ok(i)) if i < self.num_labels => Ok(i),
            _ => Err(Error::Option(format!(
                "label {label:?} is not one of the model's labels: {}",
                self.labels_listed()
            ))),
        }
    }

    /// The labels as "0 contradiction, 1 entailment, 2 neutral", for messages.
    pub fn labels_listed(&self) -> String {
        let listed: Vec<String> = (self.labels.iter().enumerate())
            .map(|(i, n)| format!("{i} {n}"))
            .collect();
        listed.join(", ")
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json_str(&text)
    }

    pub fn from_json_str(text: &str) -> Result<Self> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| Error::config(format!("not valid JSON: {e}")).with_source(e))?;
        let obj = v
            .as_object()
            .ok_or_else(|| Error::config("expected a JSON object at the top level"))?;

        let model_type = obj.get("model_type").and_then(Value::as_str).unwrap_or("");
        let Some(family) = Family::from_model_type(model_type) else {
            return Err(Error::config(format!(
                "model_type {} is not supported (xenc runs BERT and RoBERTa / XLM-RoBERTa \
                 cross-encoders: model_type {})",
                obj.get("model_type").unwrap_or(&Value::Null),
                Family::MODEL_TYPES
            )));
        };
        if let Some(act) = obj.get("hidden_act") {
            if act.as_str() != Some("gelu") {
                return Err(Error::config(format!(
                    "hidden_act {act} is not supported (xenc implements \"gelu\", the exact erf form)"
                )));
            }
        }
        if let Some(p) = obj.get("position_embedding_type") {
            if p.as_str() != Some("absolute") {
                return Err(Error::config(format!(
                    "position_embedding_type {p} is not supported (only \"absolute\")"
                )));
            }
        }

        let size = |field: &'static str, default: Option<usize>| -> Result<usize> {
            match obj.get(field) {
                None => default.ok_or_else(|| Error::config(format!("missing field `{field}`"))),
                Some(x) => match x.as_u64() {
                    Some(n) if n > 0 && n <= (1 << 24) => Ok(n as usize),
                    _ => Err(Error::config(format!(
                        "field `{field}` is {x}, expected a positive integer"
                    ))),
                },
            }
        };

        // RoBERTa numbers positions from pad_token_id + 1 (transformers' padding_idx).
        let position_offset = match family {
            Family::Bert => 0,
            Family::Roberta => match obj.get("pad_token_id") {
                None => 2,
                Some(x) => match x.as_u64() {
                    Some(n) if n < (1 << 24) => n as usize + 1,
                    _ => {
                        return Err(Error::config(format!(
                            "field `pad_token_id` is {x}, expected a non-negative integer"
                        )))
                    }
                },
            },
        };
        let labels = labels(obj)?;
        let num_labels = labels.len();
        let hidden_size = size("hidden_size", None)?;
        let num_attention_heads = size("num_attention_heads", None)?;
        let cfg = ModelConfig {
            vocab_size: size("vocab_size", None)?,
            hidden_size,
            num_hidden_layers: size("num_hidden_layers", None)?,
            num_attention_heads,
            intermediate_size: size("intermediate_size", None)?,
            max_position_embeddings: size("max_position_embeddings", None)?,
            type_vocab_size: size("type_vocab_size", Some(2))?,
            layer_norm_eps: match obj.get("layer_norm_eps") {
                None => 1e-12,
                Some(x) => match x.as_f64() {
                    Some(e) if e > 0.0 && e < 1.0 => e as f32,
                    _ => {
                        return Err(Error::config(format!(
                            "field `layer_norm_eps` is {x}, expected a number in (0, 1)"
                        )))
                    }
                },
            },
            num_labels: labels.len(),
            labels,
            activation: configured_activation(obj, num_labels),
            family,
            position_offset,
        };
        if cfg.max_position_embeddings <= position_offset {
            return Err(Error::config(format!(
                "max_position_embeddings {} leaves no position for a token: {} numbers positions \
                 from pad_token_id + 1 = {position_offset}",
                cfg.max_position_embeddings, model_type
            )));
        }
        if hidden_size % num_attention_heads != 0 {
            return Err(Error::config(format!(
                "hidden_size {hidden_size} is not a multiple of num_attention_heads {num_attention_heads}"
            )));
        }
        cfg.parameter_count()?;
        Ok(cfg)
    }

    /// The parameters the sizes imply, one entry per part of the model: what it is, which fields size
    /// it (with their values), and how many parameters it holds (None: more than 64 bits count).
    fn parameter_parts(&self) -> [(&'static str, String, Option<u64>); 5] {
        let u = |n: usize| n as u64;
        let (v, h, l) = (
            u(self.vocab_size),
            u(self.hidden_size),
            u(self.num_hidden_layers),
        );
        let (i, p, t) = (
            u(self.intermediate_size),
            u(self.max_position_embeddings),
            u(self.type_vocab_size),
        );
        let labels = u(self.num_labels);
        // One layer: Q, K, V and the attention output (4·H² + 4·H), two LayerNorms (4·H), the FFN
        // (2·H·I + I + H).
        let layer = (|| {
            let hh = h.checked_mul(h)?.checked_mul(4)?;
            let hi = h.checked_mul(i)?.checked_mul(2)?;
            hh.checked_add(hi)?
                .checked_add(h.checked_mul(9)?)?
                .checked_add(i)
        })();
        let head = (|| {
            // Embedding LayerNorm (2·H), pooler (H² + H), classifier (L·H + L).
            h.checked_mul(h)?
                .checked_add(h.checked_mul(3)?)?
                .checked_add(labels.checked_mul(h)?)?
                .checked_add(labels)
        })();
        [
            (
                "the word embeddings",
                format!("vocab_size {v} × hidden_size {h}"),
                v.checked_mul(h),
            ),
            (
                "the position embeddings",
                format!("max_position_embeddings {p} × hidden_size {h}"),
                p.checked_mul(h),
            ),
            (
                "the token type embeddings",
                format!("type_vocab_size {t} × hidden_size {h}"),
                t.checked_mul(h),
            ),
            (
                "the encoder layers",
                format!(
                    "num_hidden_layers {l} × (4·hidden_size² + 2·hidden_size·intermediate_size + …) \
                     with hidden_size {h}, intermediate_size {i}"
                ),
                layer.and_then(|n| n.checked_mul(l)),
            ),
            (
                "the pooler and classifier",
                format!("hidden_size {h}² + num_labels {labels} × hidden_size {h}"),
                head,
            ),
        ]
    }

    /// How many parameters the model has, from the sizes alone. An error names the fields whose
    /// product overflows, or that imply more f32 weights than a process can address.
    pub fn parameter_count(&self) -> Result<u64> {
        let mut total = 0u64;
        for (what, fields, n) in self.parameter_parts() {
            total = match n.and_then(|n| total.checked_add(n)) {
                Some(t) => t,
                None => {
                    return Err(Error::config(format!(
                        "{fields}: the parameters of {what} overflow a 64-bit count"
                    )))
                }
            };
        }
        if total > isize::MAX as u64 / 4 {
            let (what, fields, _) = self.largest_part();
            return Err(Error::config(format!(
                "the sizes imply {total} parameters, more f32 weights than a process can address \
                 (the most in {what}: {fields})"
            )));
        }
        Ok(total)
    }

    fn largest_part(&self) -> (&'static str, String, Option<u64>) {
        self.parameter_parts()
            .into_iter()
            .max_by_key(|(_, _, n)| n.unwrap_or(u64::MAX))
            .expect("five parts")
    }

    /// Checks the sizes against a weights file before anything is allocated from them: the file must
    /// be able to hold every parameter (at least 2 bytes each: f16/bf16) in `data_bytes` bytes of
    /// tensor data, and one tensor per weight in `tensors` entries. An error names the fields.
    pub fn check_fits(&self, data_bytes: u64, tensors: usize) -> Result<()> {
        let total = self.parameter_count()?;
        if total.saturating_mul(2) > data_bytes {
            let (what, fields, _) = self.largest_part();
            return Err(Error::config(format!(
                "the sizes imply {total} parameters (the most in {what}: {fields}), but \
                 model.safetensors holds {data_bytes} bytes of tensor data, room for at most {} at 2 \
                 bytes each: does config.json belong to this checkpoint?",
                data_bytes / 2
            )));
        }
        // 16 tensors per layer, 9 outside the layers.
        let needed = (self.num_hidden_layers as u64)
            .saturating_mul(16)
            .saturating_add(9);
        if needed > tensors as u64 {
            return Err(Error::config(format!(
                "num_hidden_layers {} needs {needed} tensors, but model.safetensors holds {tensors}",
                self.num_hidden_layers
            )));
        }
        Ok(())
    }
}

/// The labels' names by index: `id2label` (keys "0".."n-1"), checked against `num_labels` where both
/// are given; `num_labels` alone names them `LABEL_i`, as transformers does; neither: transformers'
/// PretrainedConfig default of 2 labels.
fn labels(obj: &serde_json::Map<String, Value>) -> Result<Vec<String>> {
    const MAX_LABELS: u64 = 1 << 16;
    let count = match obj.get("num_labels") {
        None => None,
        Some(x) => Some(
            x.as_u64()
                .filter(|&n| n > 0 && n <= MAX_LABELS)
                .map(|n| n as usize)
                .ok_or_else(|| {
                    Error::config(format!(
                        "field `num_labels` is {x}, expected a positive integer up to {MAX_LABELS}"
                    ))
                })?,
        ),
    };
    let names = match obj.get("id2label") {
        None => None,
        Some(Value::Object(m)) if !m.is_empty() && m.len() as u64 <= MAX_LABELS => {
            let mut names = vec![None; m.len()];
            for (k, v) in m {
                // "0" and "00" name the same index: the second finds its slot taken.
                let slot = (k.parse::<usize>().ok())
                    .and_then(|i| names.get_mut(i))
                    .filter(|s| s.is_none());
                let (Some(slot), Some(name)) = (slot, v.as_str()) else {
                    return Err(Error::config(format!(
                        "field `id2label` has the entry {k:?}: {v}; expected label indices 0..{} \
                         mapped to names",
                        m.len()
                    )));
                };
                *slot = Some(name.to_owned());
            }
            Some(
                names
                    .into_iter()
                    .map(|n| n.expect("each index seen once"))
                    .collect::<Vec<_>>(),
            )
        }
        Some(x) => {
            return Err(Error::config(format!(
                "field `id2label` is {x}, expected a non-empty object of up to {MAX_LABELS} labels"
            )))
        }
    };
    match (count, names) {
        (Some(n), Some(names)) if n != names.len() => Err(Error::config(format!(
            "field `num_labels` is {n} but `id2label` names {} label{}",
            names.len(),
            if names.len() == 1 { "" } else { "s" }
        ))),
        (_, Some(names)) => Ok(names),
        (n, None) => Ok((0..n.unwrap_or(2)).map(|i| format!("LABEL_{i}")).collect()),
    }
}

/// sentence-transformers' rule: `sentence_transformers.activation_fn` (v4+), else
/// `sbert_ce_default_activation_function` (older), else sigmoid for a single label and the raw logits
/// (`Identity`) for several.
fn configured_activation(
    obj: &serde_json::Map<String, Value>,
    num_labels: usize,
) -> ConfiguredActivation {
    let found = obj
        .get("sentence_transformers")
        .and_then(|st| st.get("activation_fn"))
        .map(|v| ("sentence_transformers.activation_fn", v))
        .or_else(|| {
            obj.get("sbert_ce_default_activation_function")
                .map(|v| ("sbert_ce_default_activation_function", v))
        });
    match found {
        None | Some((_, Value::Null)) if num_labels == 1 => {
            ConfiguredActivation::Known(Activation::Sigmoid)
        }
        None | Some((_, Value::Null)) => ConfiguredActivation::Known(Activation::Raw),
        Some((field, v)) => {
            let name = v.as_str().unwrap_or("");
            let last = name.rsplit('.').next().unwrap_or("");
            match last {
                "Identity" => ConfiguredActivation::Known(Activation::Raw),
                "Sigmoid" => ConfiguredActivation::Known(Activation::Sigmoid),
                _ => ConfiguredActivation::Unsupported {
                    field,
                    value: v.to_string(),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINILM: &str = r#"{"model_type":"bert","hidden_act":"gelu","hidden_size":384,
        "num_attention_heads":12,"num_hidden_layers":6,"intermediate_size":1536,
        "max_position_embeddings":512,"type_vocab_size":2,"vocab_size":30522,
        "layer_norm_eps":1e-12,"id2label":{"0":"LABEL_0"}}"#;

    fn with(field: &str, value: &str) -> String {
        let mut v: Value = serde_json::from_str(MINILM).unwrap();
        v[field] = serde_json::from_str(value).unwrap();
        v.to_string()
    }

    #[test]
    fn roberta_families_number_positions_after_the_padding_index() {
        let bert = ModelConfig::from_json_str(MINILM).unwrap();
        assert_eq!(
            (bert.family, bert.position_offset, bert.positions()),
            (Family::Bert, 0, 512)
        );
        for t in ["\"roberta\"", "\"xlm-roberta\""] {
            let mut v: Value = serde_json::from_str(&with("model_type", t)).unwrap();
            v["max_position_embeddings"] = 514.into();
            let c = ModelConfig::from_json_str(&v.to_string()).unwrap();
            // pad_token_id absent: transformers' RobertaConfig default, 1.
            assert_eq!(
                (c.family, c.position_offset, c.positions()),
                (Family::Roberta, 2, 512)
            );
            v["pad_token_id"] = 0.into();
            let c = ModelConfig::from_json_str(&v.to_string()).unwrap();
            assert_eq!((c.position_offset, c.positions()), (1, 513));
            v["pad_token_id"] = (-1).into();
            let err = ModelConfig::from_json_str(&v.to_string())
                .unwrap_err()
                .to_string();
            assert!(err.contains("pad_token_id"), "{err}");
            v["pad_token_id"] = 1.into();
            v["max_position_embeddings"] = 2.into();
            let err = ModelConfig::from_json_str(&v.to_string())
                .unwrap_err()
                .to_string();
            assert!(err.contains("leaves no position"), "{err}");
        }
        let err = ModelConfig::from_json_str(&with("model_type", "\"distilbert\""))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"distilbert\"") && err.contains("xlm-roberta"),
            "{err}"
        );
    }

    #[test]
    fn labels_come_from_id2label_or_num_labels_and_several_default_to_raw_logits() {
        let nli = r#"{"0":"contradiction","2":"neutral","1":"entailment"}"#;
        let c = ModelConfig::from_json_str(&with("id2label", nli)).unwrap();
        assert_eq!(c.num_labels, 3);
        assert_eq!(c.labels, ["contradiction", "entailment", "neutral"]);
        assert_eq!(c.activation, ConfiguredActivation::Known(Activation::Raw));
        let mut v: Value = serde_json::from_str(MINILM).unwrap();
        v.as_object_mut().unwrap().remove("id2label");
        let c = ModelConfig::from_json_str(&v.to_string()).unwrap();
        assert_eq!(c.labels, ["LABEL_0", "LABEL_1"]); // transformers' default: 2 labels
        v["num_labels"] = 1.into();
        let c = ModelConfig::from_json_str(&v.to_string()).unwrap();
        assert_eq!(c.labels, ["LABEL_0"]);
        assert_eq!(
            c.activation,
            ConfiguredActivation::Known(Activation::Sigmoid)
        );
        v["num_labels"] = 3.into();
        v["sentence_transformers"] =
            serde_json::json!({"activation_fn": "torch.nn.modules.activation.Sigmoid"});
        let c = ModelConfig::from_json_str(&v.to_string()).unwrap();
        assert_eq!(c.num_labels, 3);
        assert_eq!(
            c.activation,
            ConfiguredActivation::Known(Activation::Sigmoid)
        );
    }

    #[test]
    fn activations_apply_to_a_pairs_labels() {
        let mut rows = [0.0f32, 1.0, 2.0, -1000.0, 0.0, 1000.0];
        Activation::Softmax.apply_rows(&mut rows, 3);
        let e = [1.0f64, 1f64.exp(), 2f64.exp()];
        let sum: f64 = e.iter().sum();
        for (got, want) in rows[..3].iter().zip(e.iter().map(|x| x / sum)) {
            assert!((*got as f64 - want).abs() < 1e-7, "{got} vs {want}");
        }
        assert_eq!(&rows[3..], [0.0, 0.0, 1.0]); // no overflow for large logits
        let mut rows = [0.0f32, 2.0];
        Activation::Sigmoid.apply_rows(&mut rows, 2);
        assert_eq!(rows[0], 0.5);
        assert_eq!(Activation::Softmax.apply(-3.0), 1.0);
        assert_eq!(Activation::Raw.name(), "raw");
    }

    #[test]
    fn minilm_parses_with_sigmoid_default() {
        let c = ModelConfig::from_json_str(MINILM).unwrap();
        assert_eq!(
            (c.hidden_size, c.num_attention_heads, c.head_dim()),
            (384, 12, 32)
        );
        assert_eq!(c.num_labels, 1);
        assert_eq!(
            c.activation,
            ConfiguredActivation::Known(Activation::Sigmoid)
        );
    }

    #[test]
    fn activation_fields_follow_sentence_transformers() {
        let c = ModelConfig::from_json_str(&with(
            "sbert_ce_default_activation_function",
            r#""torch.nn.modules.linear.Identity""#,
        ))
        .unwrap();
        assert_eq!(c.activation, ConfiguredActivation::Known(Activation::Raw));
        let c = ModelConfig::from_json_str(&with(
            "sentence_transformers",
            r#"{"activation_fn":"torch.nn.modules.activation.Sigmoid"}"#,
        ))
        .unwrap();
        assert_eq!(
            c.activation,
            ConfiguredActivation::Known(Activation::Sigmoid)
        );
        let c = ModelConfig::from_json_str(&with(
            "sentence_transformers",
            r#"{"activation_fn":"torch.nn.modules.activation.Tanh"}"#,
        ))
        .unwrap();
        assert!(matches!(
            c.activation,
            ConfiguredActivation::Unsupported { .. }
        ));
    }

    #[test]
    fn unsupported_fields_are_named() {
        for (field, value, needle) in [
            ("hidden_act", r#""gelu_new""#, "hidden_act \"gelu_new\""),
            ("model_type", r#""distilbert""#, "model_type \"distilbert\""),
            ("hidden_size", "-3", "`hidden_size` is -3"),
            (
                "num_attention_heads",
                "7",
                "not a multiple of num_attention_heads 7",
            ),
            ("num_labels", "0", "`num_labels` is 0"),
            (
                "num_labels",
                "3",
                "`num_labels` is 3 but `id2label` names 1 label",
            ),
            ("id2label", r#"{"1":"a"}"#, "entry \"1\""),
            ("id2label", r#"{"0":7}"#, "entry \"0\": 7"),
            ("id2label", r#"{"0":"a","00":"b"}"#, "entry \"00\""),
            ("id2label", "{}", "`id2label` is {}"),
            (
                "position_embedding_type",
                r#""relative_key""#,
                "position_embedding_type",
            ),
            ("layer_norm_eps", r#""x""#, "layer_norm_eps"),
        ] {
            let err = ModelConfig::from_json_str(&with(field, value))
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{field}: {err}");
        }
        let mut v: Value = serde_json::from_str(MINILM).unwrap();
        v.as_object_mut().unwrap().remove("vocab_size");
        let err = ModelConfig::from_json_str(&v.to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `vocab_size`"), "{err}");
        assert!(ModelConfig::from_json_str("{")
            .unwrap_err()
            .to_string()
            .contains("JSON"));
    }

    #[test]
    fn sizes_whose_products_overflow_are_named() {
        let mut v: Value = serde_json::from_str(MINILM).unwrap();
        for f in ["hidden_size", "intermediate_size", "num_hidden_layers"] {
            v[f] = (1u64 << 24).into();
        }
        v["num_attention_heads"] = 1.into();
        let err = ModelConfig::from_json_str(&v.to_string())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("config.json: num_hidden_layers 16777216"),
            "{err}"
        );
        assert!(
            err.contains("hidden_size 16777216, intermediate_size 16777216"),
            "{err}"
        );
        assert!(err.contains("overflow"), "{err}");
        // Large but countable: parses; the weights file decides (check_fits).
        let c = ModelConfig::from_json_str(&with("vocab_size", "16777216")).unwrap();
        assert_eq!(
            c.parameter_count().unwrap(),
            22_713_601 + (16_777_216 - 30_522) * 384
        );
    }

    #[test]
    fn check_fits_names_the_largest_part() {
        let c = ModelConfig::from_json_str(MINILM).unwrap();
        let n = c.parameter_count().unwrap();
        assert_eq!(n, 22_713_601); // all-MiniLM-L6-v2 (22,713,216) and a one-label classifier
        c.check_fits(2 * n, 105).unwrap();
        let err = c.check_fits(2 * n - 1, 105).unwrap_err().to_string();
        assert!(err.starts_with("config.json: the sizes imply"), "{err}");
        assert!(
            err.contains("the most in the word embeddings: vocab_size 30522 × hidden_size 384"),
            "{err}"
        );
        let err = c.check_fits(2 * n, 104).unwrap_err().to_string();
        assert!(
            err.contains("num_hidden_layers 6 needs 105 tensors"),
            "{err}"
        );
    }
}
