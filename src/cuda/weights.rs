//! The model's weights on the device: [`BertWeights`] (f32, Q|K|V already stacked) rounded to fp16 once
//! and copied into ONE allocation laid out by [`WeightLayout`] (every tensor 256-byte aligned).

use cudarc::driver::{CudaSlice, CudaView};
use half::f16;

use super::context::Gpu;
use super::device::cuda_err;
use super::plan::{Span, WeightLayout};
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::weights::BertWeights;

/// Every tensor of `w` with its name, in the order of [`WeightLayout::entries`].
fn named_tensors(w: &BertWeights) -> Vec<(String, &[f32])> {
    let mut v: Vec<(String, &[f32])> = vec![
        (
            "embeddings.word_embeddings.weight".into(),
            &w.word_embeddings,
        ),
        (
            "embeddings.position_embeddings.weight".into(),
            &w.position_embeddings,
        ),
        (
            "embeddings.token_type_embeddings.weight".into(),
            &w.token_type_embeddings,
        ),
        (
            "embeddings.LayerNorm.weight".into(),
            &w.embeddings_ln_weight,
        ),
        ("embeddings.LayerNorm.bias".into(), &w.embeddings_ln_bias),
    ];
    for (n, l) in w.layers.iter().enumerate() {
        let p = format!("encoder.layer.{n}.");
        v.extend([
            (format!("{p}attention.self.qkv.weight"), &l.qkv_weight[..]),
            (format!("{p}attention.self.qkv.bias"), &l.qkv_bias[..]),
            (
                format!("{p}attention.output.dense.weight"),
                &l.attn_out_weight[..],
            ),
            (
                format!("{p}attention.output.dense.bias"),
                &l.attn_out_bias[..],
            ),
            (
                format!("{p}attention.output.LayerNorm.weight"),
                &l.attn_ln_weight[..],
            ),
            (
                format!("{p}attention.output.LayerNorm.bias"),
                &l.attn_ln_bias[..],
            ),
            (
                format!("{p}intermediate.dense.weight"),
                &l.ffn_in_weight[..],
            ),
            (format!("{p}intermediate.dense.bias"), &l.ffn_in_bias[..]),
            (format!("{p}output.dense.weight"), &l.ffn_out_weight[..]),
            (format!("{p}output.dense.bias"), &l.ffn_out_bias[..]),
            (format!("{p}output.LayerNorm.weight"), &l.ffn_ln_weight[..]),
            (format!("{p}output.LayerNorm.bias"), &l.ffn_ln_bias[..]),
        ]);
    }
    v.extend([
        ("pooler.dense.weight".to_string(), &w.pooler_weight[..]),
        ("pooler.dense.bias".into(), &w.pooler_bias[..]),
        ("classifier.weight".into(), &w.classifier_weight[..]),
        ("classifier.bias".into(), &w.classifier_bias[..]),
    ]);
    v
}

/// The host image of the device allocation: each tensor rounded to fp16 at its span, zeros between.
pub fn fp16_image(w: &BertWeights, layout: &WeightLayout) -> Result<Vec<f16>> {
    let mut image = vec![f16::ZERO; layout.total];
    let entries = layout.entries();
    let tensors = named_tensors(w);
    if entries.len() != tensors.len() {
        return Err(Error::weights(format!(
            "{} tensors, but the config describes {} (num_hidden_layers mismatch?)",
            tensors.len(),
            entries.len()
        )));
    }
    for ((name, span), (tname, data)) in entries.iter().zip(&tensors) {
        if name != tname || span.len != data.len() {
            return Err(Error::weights(format!(
                "tensor `{tname}` has {} values, the GPU layout expects `{name}` with {}",
                data.len(),
                span.len
            )));
        }
        for (d, &s) in image[span.range()].iter_mut().zip(data.iter()) {
            *d = f16::from_f32(s);
        }
    }
    Ok(image)
}

/// The fp16 weights in one device allocation.
pub struct DeviceWeights {
    buf: CudaSlice<f16>,
    pub layout: WeightLayout,
}

impl DeviceWeights {
    pub fn upload(gpu: &Gpu, cfg: &ModelConfig, w: &BertWeights) -> Result<Self> {
        let layout = WeightLayout::new(cfg);
        let image = fp16_image(w, &layout)?;
        let what = format!("uploading {} MiB of fp16 weights", (2 * layout.total) >> 20);
        let buf = gpu.stream.clone_htod(&image).map_err(cuda_err(&what))?;
        Ok(DeviceWeights { buf, layout })
    }

    /// One tensor, by its span in [`Self::layout`].
    pub fn view(&self, s: Span) -> CudaView<'_, f16> {
        self.buf.slice(s.range())
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use crate::weights::LayerWeights;

    /// A tiny model whose every value encodes where it came from, so a misplaced tensor shows.
    pub fn tiny(cfg: &ModelConfig) -> BertWeights {
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        let mut k = 0;
        let mut t = |n: usize| {
            k += 1;
            (0..n)
                .map(|j| k as f32 + j as f32 / 1024.0)
                .collect::<Vec<f32>>()
        };
        BertWeights {
            word_embeddings: t(cfg.vocab_size * h),
            position_embeddings: t(cfg.positions() * h),
            token_type_embeddings: t(cfg.type_vocab_size * h),
            embeddings_ln_weight: t(h),
            embeddings_ln_bias: t(h),
            layers: (0..cfg.num_hidden_layers)
                .map(|_| LayerWeights {
                    qkv_weight: t(3 * h * h),
                    qkv_bias: t(3 * h),
                    attn_out_weight: t(h * h),
                    attn_out_bias: t(h),
                    attn_ln_weight: t(h),
                    attn_ln_bias: t(h),
                    ffn_in_weight: t(i * h),
                    ffn_in_bias: t(i),
                    ffn_out_weight: t(h * i),
                    ffn_out_bias: t(h),
                    ffn_ln_weight: t(h),
                    ffn_ln_bias: t(h),
                })
                .collect(),
            pooler_weight: t(h * h),
            pooler_bias: t(h),
            classifier_weight: t(h),
            classifier_bias: t(1),
            stored_dtype: "f32".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::tiny;
    use super::*;

    fn cfg() -> ModelConfig {
        ModelConfig::from_json_str(
            r#"{"model_type":"bert","hidden_size":8,"num_attention_heads":2,"num_hidden_layers":2,
            "intermediate_size":12,"max_position_embeddings":5,"vocab_size":7,"num_labels":1}"#,
        )
        .unwrap()
    }

    #[test]
    fn image_puts_every_tensor_at_its_span() {
        let cfg = cfg();
        let w = tiny(&cfg);
        let layout = WeightLayout::new(&cfg);
        let image = fp16_image(&w, &layout).unwrap();
        assert_eq!(image.len(), layout.total);
        let tensors = named_tensors(&w);
        for ((name, span), (_, data)) in layout.entries().iter().zip(&tensors) {
            let got: Vec<f32> = image[span.range()].iter().map(|x| x.to_f32()).collect();
            let want: Vec<f32> = data.iter().map(|&x| f16::from_f32(x).to_f32()).collect();
            assert_eq!(got, want, "{name}");
        }
        // Spot check: layer 1's FFN-in bias is the 5 + 12 + 8th tensor created.
        let s = layout.layers[1].ffn_in_bias;
        assert_eq!(image[s.offset].to_f32(), (5 + 12 + 8) as f32);
        // Padding stays zero.
        let covered: usize = layout.entries().iter().map(|e| e.1.len).sum();
        assert_eq!(image.iter().filter(|x| x.to_f32() != 0.0).count(), covered);
    }

    #[test]
    fn image_rejects_a_model_that_does_not_match_the_config() {
        let cfg = cfg();
        let mut w = tiny(&cfg);
        w.layers.pop();
        assert!(fp16_image(&w, &WeightLayout::new(&cfg)).is_err());
        let mut w = tiny(&cfg);
        w.pooler_bias.push(1.0);
        let err = fp16_image(&w, &WeightLayout::new(&cfg))
            .unwrap_err()
            .to_string();
        assert!(err.contains("pooler.dense.bias"), "{err}");
    }
}
