//! The fp16 forward pass over a ragged batch, op for op the CPU backend's (`crate::cpu`):
//!
//! embed_layernorm → per layer: QKV GEMM (+bias, cuBLASLt epilogue) → attention_varlen → out-proj GEMM
//! → add_bias_residual_layernorm → FFN-in GEMM → bias_gelu → FFN-out GEMM → add_bias_residual_layernorm.
//! In the last layer, once Q, K, V exist for all T rows, only the n [CLS] rows go on (gather_rows,
//! attention in ClsOnly mode). Then pooler_classifier → fp32 logits. Every buffer comes from
//! [`Activations`], allocated once for the token budget.

use cudarc::driver::CudaSlice;
use half::f16;

use super::buffers::Activations;
use super::context::{cuda_err, Gpu};
use super::launch;
use super::weights::DeviceWeights;
use crate::batch::RaggedBatch;
use crate::config::ModelConfig;
use crate::cpu::ops::Queries;
use crate::error::Result;

/// One logit (label 0) per pair, in batch order.
pub(crate) fn forward(
    gpu: &Gpu,
    cfg: &ModelConfig,
    w: &DeviceWeights,
    a: &mut Activations,
    batch: &RaggedBatch,
) -> Result<Vec<f32>> {
    let (h, inter, eps) = (cfg.hidden_size, cfg.intermediate_size, cfg.layer_norm_eps);
    let (heads, head_dim, labels) = (cfg.num_attention_heads, cfg.head_dim(), cfg.num_labels);
    let (t, n) = (batch.num_tokens(), batch.num_pairs());
    let lay = &w.layout;

    a.index.upload(gpu, batch)?;
    launch::embed_layernorm(
        gpu,
        &a.index,
        &w.view(lay.word_embeddings),
        &w.view(lay.position_embeddings),
        &w.view(lay.token_type_embeddings),
        &w.view(lay.embeddings_ln_weight),
        &w.view(lay.embeddings_ln_bias),
        &mut a.hidden.slice_mut(..t * h),
        h,
        eps,
    )?;

    let last = lay.layers.len() - 1;
    for (l, ls) in lay.layers.iter().enumerate() {
        let qkv = &mut a.qkv.slice_mut(..t * 3 * h);
        launch::linear_bias(
            gpu,
            &a.hidden.slice(..t * h),
            &w.view(ls.qkv_weight),
            &w.view(ls.qkv_bias),
            qkv,
            t,
            h,
            3 * h,
        )?;
        // The last layer goes on with the [CLS] rows only: n instead of T rows from here.
        let (rows, x): (usize, &mut CudaSlice<f16>) = if l == last {
            launch::attention_varlen(
                gpu,
                &a.index,
                &a.qkv,
                &mut a.ctx.slice_mut(..n * h),
                Queries::ClsOnly,
                heads,
                head_dim,
            )?;
            launch::gather_rows(
                gpu,
                &a.index,
                &a.hidden.slice(..t * h),
                &mut a.cls.slice_mut(..n * h),
                h,
            )?;
            (n, &mut a.cls)
        } else {
            launch::attention_varlen(
                gpu,
                &a.index,
                &a.qkv,
                &mut a.ctx.slice_mut(..t * h),
                Queries::All,
                heads,
                head_dim,
            )?;
            (t, &mut a.hidden)
        };
        let (rh, ri) = (rows * h, rows * inter);
        launch::linear(
            gpu,
            &a.ctx.slice(..rh),
            &w.view(ls.attn_out_weight),
            &mut a.proj.slice_mut(..rh),
            rows,
            h,
            h,
        )?;
        launch::add_bias_residual_layernorm(
            gpu,
            &a.proj.slice(..rh),
            &w.view(ls.attn_out_bias),
            &mut x.slice_mut(..rh),
            &w.view(ls.attn_ln_weight),
            &w.view(ls.attn_ln_bias),
            rows,
            h,
            eps,
        )?;
        launch::linear(
            gpu,
            &x.slice(..rh),
            &w.view(ls.ffn_in_weight),
            &mut a.ffn.slice_mut(..ri),
            rows,
            h,
            inter,
        )?;
        launch::bias_gelu(
            gpu,
            &mut a.ffn.slice_mut(..ri),
            &w.view(ls.ffn_in_bias),
            rows,
            inter,
        )?;
        launch::linear(
            gpu,
            &a.ffn.slice(..ri),
            &w.view(ls.ffn_out_weight),
            &mut a.proj.slice_mut(..rh),
            rows,
            inter,
            h,
        )?;
        launch::add_bias_residual_layernorm(
            gpu,
            &a.proj.slice(..rh),
            &w.view(ls.ffn_out_bias),
            &mut x.slice_mut(..rh),
            &w.view(ls.ffn_ln_weight),
            &w.view(ls.ffn_ln_bias),
            rows,
            h,
            eps,
        )?;
    }

    launch::pooler_classifier(
        gpu,
        &a.cls.slice(..n * h),
        &w.view(lay.pooler_weight),
        &w.view(lay.pooler_bias),
        &w.view(lay.classifier_weight),
        &w.view(lay.classifier_bias),
        &mut a.logits.slice_mut(..n * labels),
        n,
        h,
        labels,
    )?;
    let host = &mut a.logits_host[..n * labels];
    gpu.stream
        .memcpy_dtoh(&a.logits.slice(..n * labels), host)
        .map_err(cuda_err("copying the logits back"))?;
    gpu.synchronize()?;
    Ok(host.chunks_exact(labels).map(|c| c[0]).collect())
}
