//! Sizes of the activation buffers and the layout of the one fp16 weight allocation.

use super::{IndexLayout, WEIGHT_ALIGN_BYTES};
use crate::config::ModelConfig;

/// Element counts of the activation buffers, sized once from the token budget and reused by every batch
/// (fp16 unless noted). The last layer's `[CLS]` rows (n ≤ T) get their own buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivationSizes {
    /// `[T, H]` hidden states.
    pub hidden: usize,
    /// `[T, 3H]` Q | K | V.
    pub qkv: usize,
    /// `[T, H]` attention output.
    pub ctx: usize,
    /// `[T, H]` output of the out-projection and FFN-out GEMMs (before bias + residual + LayerNorm).
    pub proj: usize,
    /// `[T, I]` FFN intermediate.
    pub ffn: usize,
    /// `[n, H]` hidden states of the `[CLS]` rows in the last layer.
    pub cls: usize,
    /// `[n, L]` fp32 logits.
    pub logits: usize,
    /// `i32` index buffer (see [`IndexLayout::capacity`]).
    pub index: usize,
}

impl ActivationSizes {
    pub fn new(cfg: &ModelConfig, token_budget: usize) -> Self {
        let (t, h) = (token_budget, cfg.hidden_size);
        ActivationSizes {
            hidden: t * h,
            qkv: t * 3 * h,
            ctx: t * h,
            proj: t * h,
            ffn: t * cfg.intermediate_size,
            cls: t * h,
            logits: t * cfg.num_labels,
            index: IndexLayout::capacity(t, cfg.num_attention_heads).total,
        }
    }

    pub fn total_bytes(&self) -> usize {
        2 * (self.hidden + self.qkv + self.ctx + self.proj + self.ffn + self.cls)
            + 4 * (self.logits + self.index)
    }
}

/// One tensor's place in the fp16 weight allocation, in elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub offset: usize,
    pub len: usize,
}

impl Span {
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len
    }
}

/// One encoder layer's tensors, as in [`crate::weights::LayerWeights`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LayerSpans {
    pub qkv_weight: Span,
    pub qkv_bias: Span,
    pub attn_out_weight: Span,
    pub attn_out_bias: Span,
    pub attn_ln_weight: Span,
    pub attn_ln_bias: Span,
    pub ffn_in_weight: Span,
    pub ffn_in_bias: Span,
    pub ffn_out_weight: Span,
    pub ffn_out_bias: Span,
    pub ffn_ln_weight: Span,
    pub ffn_ln_bias: Span,
}

/// Every tensor of [`crate::weights::BertWeights`] in one fp16 allocation, each starting on a
/// [`WEIGHT_ALIGN_BYTES`] boundary, in the order of [`WeightLayout::entries`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightLayout {
    pub word_embeddings: Span,
    pub position_embeddings: Span,
    pub token_type_embeddings: Span,
    pub embeddings_ln_weight: Span,
    pub embeddings_ln_bias: Span,
    pub layers: Vec<LayerSpans>,
    pub pooler_weight: Span,
    pub pooler_bias: Span,
    pub classifier_weight: Span,
    pub classifier_bias: Span,
    /// Elements in the allocation, padding included.
    pub total: usize,
}

impl WeightLayout {
    pub fn new(cfg: &ModelConfig) -> Self {
        let (h, i, l) = (cfg.hidden_size, cfg.intermediate_size, cfg.num_labels);
        let align = WEIGHT_ALIGN_BYTES / 2;
        let mut at = 0;
        let mut span = |len: usize| {
            let s = Span { offset: at, len };
            at = (at + len).next_multiple_of(align);
            s
        };
        let word_embeddings = span(cfg.vocab_size * h);
        let position_embeddings = span(cfg.positions() * h);
        let token_type_embeddings = span(cfg.type_vocab_size * h);
        let (embeddings_ln_weight, embeddings_ln_bias) = (span(h), span(h));
        let layers = (0..cfg.num_hidden_layers)
            .map(|_| LayerSpans {
                qkv_weight: span(3 * h * h),
                qkv_bias: span(3 * h),
                attn_out_weight: span(h * h),
                attn_out_bias: span(h),
                attn_ln_weight: span(h),
                attn_ln_bias: span(h),
                ffn_in_weight: span(i * h),
                ffn_in_bias: span(i),
                ffn_out_weight: span(h * i),
                ffn_out_bias: span(h),
                ffn_ln_weight: span(h),
                ffn_ln_bias: span(h),
            })
            .collect();
        let (pooler_weight, pooler_bias) = (span(h * h), span(h));
        let (classifier_weight, classifier_bias) = (span(l * h), span(l));
        WeightLayout {
            word_embeddings,
            position_embeddings,
            token_type_embeddings,
            embeddings_ln_weight,
            embeddings_ln_bias,
            layers,
            pooler_weight,
            pooler_bias,
            classifier_weight,
            classifier_bias,
            total: at,
        }
    }

    /// Every span with its checkpoint name (Q, K and V stacked under `attention.self.qkv`), in order.
    pub fn entries(&self) -> Vec<(String, Span)> {
        let mut v = vec![
            (
                "embeddings.word_embeddings.weight".to_string(),
                self.word_embeddings,
            ),
            (
                "embeddings.position_embeddings.weight".into(),
                self.position_embeddings,
            ),
            (
                "embeddings.token_type_embeddings.weight".into(),
                self.token_type_embeddings,
            ),
            (
                "embeddings.LayerNorm.weight".into(),
                self.embeddings_ln_weight,
            ),
            ("embeddings.LayerNorm.bias".into(), self.embeddings_ln_bias),
        ];
        for (n, l) in self.layers.iter().enumerate() {
            let p = format!("encoder.layer.{n}.");
            v.extend([
                (format!("{p}attention.self.qkv.weight"), l.qkv_weight),
                (format!("{p}attention.self.qkv.bias"), l.qkv_bias),
                (
                    format!("{p}attention.output.dense.weight"),
                    l.attn_out_weight,
                ),
                (format!("{p}attention.output.dense.bias"), l.attn_out_bias),
                (
                    format!("{p}attention.output.LayerNorm.weight"),
                    l.attn_ln_weight,
                ),
                (
                    format!("{p}attention.output.LayerNorm.bias"),
                    l.attn_ln_bias,
                ),
                (format!("{p}intermediate.dense.weight"), l.ffn_in_weight),
                (format!("{p}intermediate.dense.bias"), l.ffn_in_bias),
                (format!("{p}output.dense.weight"), l.ffn_out_weight),
                (format!("{p}output.dense.bias"), l.ffn_out_bias),
                (format!("{p}output.LayerNorm.weight"), l.ffn_ln_weight),
                (format!("{p}output.LayerNorm.bias"), l.ffn_ln_bias),
            ]);
        }
        v.extend([
            ("pooler.dense.weight".to_string(), self.pooler_weight),
            ("pooler.dense.bias".into(), self.pooler_bias),
            ("classifier.weight".into(), self.classifier_weight),
            ("classifier.bias".into(), self.classifier_bias),
        ]);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minilm() -> ModelConfig {
        ModelConfig::from_json_str(
            r#"{"model_type":"bert","hidden_size":384,"num_attention_heads":12,"num_hidden_layers":6,
            "intermediate_size":1536,"max_position_embeddings":512,"type_vocab_size":2,"vocab_size":30522,
            "num_labels":1}"#,
        )
        .unwrap()
    }

    #[test]
    fn activation_sizes_follow_the_budget() {
        let s = ActivationSizes::new(&minilm(), 16384);
        assert_eq!(
            (s.hidden, s.qkv, s.ffn, s.cls, s.logits),
            (16384 * 384, 16384 * 1152, 16384 * 1536, 16384 * 384, 16384)
        );
        assert_eq!(s.index, IndexLayout::capacity(16384, 12).total);
        // About 8.4 KiB per token of fp16 activations for MiniLM-L6, plus the index buffer.
        assert_eq!(
            2 * (s.hidden + s.qkv + s.ctx + s.proj + s.ffn + s.cls),
            16384 * 2 * (7 * 384 + 1536)
        );
        assert!(s.total_bytes() < 200 << 20);
    }

    #[test]
    fn weight_layout_is_aligned_disjoint_and_complete() {
        let cfg = minilm();
        let lay = WeightLayout::new(&cfg);
        let entries = lay.entries();
        assert_eq!(entries.len(), 5 + 12 * 6 + 4);
        let mut end = 0;
        for (name, s) in &entries {
            assert_eq!((s.offset * 2) % WEIGHT_ALIGN_BYTES, 0, "{name}");
            assert!(s.offset >= end, "{name} overlaps its predecessor");
            end = s.offset + s.len;
        }
        assert!(end <= lay.total && lay.total - end < WEIGHT_ALIGN_BYTES / 2 + 1);
        let params: usize = entries.iter().map(|e| e.1.len).sum();
        // MiniLM-L6 cross-encoder: 22.7 M parameters.
        assert_eq!(
            params,
            30522 * 384
                + 512 * 384
                + 2 * 384
                + 2 * 384
                + 6 * (4 * 384 * 384 + 2 * 384 * 1536 + 9 * 384 + 1536)
                + 384 * 384
                + 384
                + 384
                + 1
        );
        assert_eq!(entries[5].0, "encoder.layer.0.attention.self.qkv.weight");
        assert_eq!(entries[5].1.len, 3 * 384 * 384);
    }
}
