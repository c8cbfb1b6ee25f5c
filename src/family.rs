//! What differs between the checkpoint families xenc runs, in one place. config.json's `model_type`
//! picks the family; the loader ([`crate::weights`]), the tokenizer and the config read what they need
//! from it, and the forward passes (CPU and CUDA) never see it: every family becomes the same
//! [`crate::weights::BertWeights`] — embeddings, encoder layers, a dense + tanh head on the first token,
//! a linear classifier.
//!
//! | | BERT | RoBERTa / XLM-RoBERTa |
//! |---|---|---|
//! | `model_type` | `bert` | `roberta`, `xlm-roberta` |
//! | encoder tensors under | `bert.` (or no prefix) | `roberta.` (or no prefix) |
//! | head: dense (H×H) + tanh | `bert.pooler.dense` | `classifier.dense` |
//! | head: out (labels×H) | `classifier` | `classifier.out_proj` |
//! | first position id | 0 | `pad_token_id + 1` |
//! | token types | the tokenizer's (0 / 1) | all 0 (transformers passes none) |
//!
//! RoBERTa's position ids are `pad_token_id + 1 + i` for the i-th token of every sequence
//! (transformers' `create_position_ids_from_input_ids`): the loader drops the first
//! `pad_token_id + 1` rows of the position table, so positions start at 0 as for BERT and the kernels
//! are the same; a pair may hold `max_position_embeddings - pad_token_id - 1` tokens
//! ([`crate::ModelConfig::positions`]).

/// A checkpoint family: how its tensors are named and how its inputs differ from BERT's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Family {
    /// `BertForSequenceClassification` (MiniLM, TinyBERT, BERT-base cross-encoders).
    Bert,
    /// `RobertaForSequenceClassification` and `XLMRobertaForSequenceClassification` (the
    /// bge-reranker family).
    Roberta,
}

/// Where a family keeps the head's two linear layers: the tensor name without `.weight`/`.bias`, at the
/// file's root or under the encoder prefix.
pub(crate) struct HeadNames {
    /// The dense layer applied (then tanh) to the first token's hidden state.
    pub dense: TensorName,
    /// The classifier: labels × hidden.
    pub out: TensorName,
}

/// A tensor name without its `.weight`/`.bias` suffix.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TensorName {
    /// Under the encoder prefix (`bert.` / `roberta.` / none).
    Encoder(&'static str),
    /// At the file's root, never prefixed.
    Root(&'static str),
}

impl Family {
    /// The family of config.json's `model_type`, or None for one xenc does not run.
    pub fn from_model_type(model_type: &str) -> Option<Family> {
        match model_type {
            "bert" => Some(Family::Bert),
            "roberta" | "xlm-roberta" => Some(Family::Roberta),
            _ => None,
        }
    }

    /// The `model_type` values xenc runs, for error messages.
    pub const MODEL_TYPES: &'static str = "\"bert\", \"roberta\", \"xlm-roberta\"";

    /// A short name: `bert` or `roberta`.
    pub fn name(self) -> &'static str {
        match self {
            Family::Bert => "bert",
            Family::Roberta => "roberta",
        }
    }

    /// Prefixes the encoder's tensors may carry, tried in order.
    pub(crate) fn encoder_prefixes(self) -> &'static [&'static str] {
        match self {
            Family::Bert => &["bert.", ""],
            Family::Roberta => &["roberta.", ""],
        }
    }

    pub(crate) fn head(self) -> HeadNames {
        match self {
            Family::Bert => HeadNames {
                dense: TensorName::Encoder("pooler.dense"),
                out: TensorName::Root("classifier"),
            },
            Family::Roberta => HeadNames {
                dense: TensorName::Root("classifier.dense"),
                out: TensorName::Root("classifier.out_proj"),
            },
        }
    }

    /// Whether the model reads the tokenizer's token type ids; when not, every token has type 0, as
    /// transformers gives a model whose tokenizer returns no `token_type_ids`.
    pub fn uses_token_types(self) -> bool {
        match self {
            Family::Bert => true,
            Family::Roberta => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_types_map_to_families() {
        assert_eq!(Family::from_model_type("bert"), Some(Family::Bert));
        assert_eq!(Family::from_model_type("roberta"), Some(Family::Roberta));
        assert_eq!(
            Family::from_model_type("xlm-roberta"),
            Some(Family::Roberta)
        );
        assert_eq!(Family::from_model_type("distilbert"), None);
        for t in ["bert", "roberta", "xlm-roberta"] {
            assert!(Family::MODEL_TYPES.contains(&format!("\"{t}\"")));
        }
    }
}
