//! The fp16 forward pass over a ragged batch, op for op the CPU backend's (`crate::cpu`):
//!
//! embed_layernorm → per layer: QKV GEMM (+bias, cuBLASLt epilogue) → attention_varlen → out-proj GEMM
//! → add_bias_residual_layernorm → FFN-in GEMM → bias_gelu (or both in gemm_bias_gelu with
//! [`CudaOptions::ffn_in`](crate::CudaOptions::ffn_in) = fused) → FFN-out GEMM →
//! add_bias_residual_layernorm. With [`CudaOptions::residual`](crate::CudaOptions::residual) = gemm the
//! out-proj and FFN-out GEMMs add bias and residual into the hidden rows and layernorm normalises them.
//! Which entry point each kernel launch runs is `plan`'s choice (`forward_entries` lists them).
//! In the last layer, once Q, K, V exist for all T rows, only the n [CLS] rows go on (gather_rows,
//! attention in ClsOnly mode). Then pooler_classifier → fp32 logits. Every buffer comes from
//! [`Activations`], allocated once for the token budget.

use cudarc::driver::{CudaSlice, CudaView, CudaViewMut};
use half::f16;

use super::buffers::Activations;
use super::context::Gpu;
use super::launch;
use super::plan;
use super::profile::{lap, EventClock};
use super::weights::DeviceWeights;
use crate::batch::Queries;
use crate::batch::RaggedBatch;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::profile::layer_stage;

/// Queues the whole forward pass of `batch` on the stream with index buffer and host logits of `slot`:
/// the upload, every kernel and GEMM, and the copy of the logits to page-locked memory. Returns at once;
/// [`finish`] waits for the logits. While the GPU runs it, the host may prepare and queue the next batch in
/// the other slot.
pub(crate) fn enqueue(
    gpu: &Gpu,
    cfg: &ModelConfig,
    w: &DeviceWeights,
    a: &mut Activations,
    slot: usize,
    clock: &mut Option<EventClock>,
    batch: &RaggedBatch,
) -> Result<()> {
    let (h, inter, eps) = (cfg.hidden_size, cfg.intermediate_size, cfg.layer_norm_eps);
    let (heads, head_dim, labels) = (cfg.num_attention_heads, cfg.head_dim(), cfg.num_labels);
    let (t, n) = (batch.num_tokens(), batch.num_pairs());
    let lay = &w.layout;

    if let Some(c) = clock.as_mut() {
        c.begin(gpu)?;
    }
    a.index[slot].upload(gpu, batch)?;
    let index = &a.index[slot];
    lap(clock, gpu, "upload_batch")?;
    launch::embed_layernorm(
        gpu,
        index,
        &w.view(lay.word_embeddings),
        &w.view(lay.position_embeddings),
        &w.view(lay.token_type_embeddings),
        &w.view(lay.embeddings_ln_weight),
        &w.view(lay.embeddings_ln_bias),
        &mut a.hidden.slice_mut(..t * h),
        h,
        eps,
    )?;
    lap(clock, gpu, "embed_layernorm")?;

    let last = lay.layers.len() - 1;
    // The fused FFN-in kernel where asked for and it takes the FFN's shape.
    let ffn_in = plan::ffn_in_path(gpu.options.ffn_in, h, inter);
    let residual = gpu.options.residual;
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
        lap(clock, gpu, layer_stage(l == last, 0))?;
        // The last layer goes on with the [CLS] rows only: n instead of T rows from here.
        let (rows, x): (usize, &mut CudaSlice<f16>) = if l == last {
            launch::attention_varlen(
                gpu,
                index,
                &a.qkv,
                &mut a.ctx.slice_mut(..n * h),
                Queries::ClsOnly,
                heads,
                head_dim,
            )?;
            launch::gather_rows(
                gpu,
                index,
                &a.hidden.slice(..t * h),
                &mut a.cls.slice_mut(..n * h),
                h,
            )?;
            (n, &mut a.cls)
        } else {
            launch::attention_varlen(
                gpu,
                index,
                &a.qkv,
                &mut a.ctx.slice_mut(..t * h),
                Queries::All,
                heads,
                head_dim,
            )?;
            (t, &mut a.hidden)
        };
        lap(clock, gpu, layer_stage(l == last, 1))?;
        let (rh, ri) = (rows * h, rows * inter);
        project_add_norm(
            gpu,
            clock,
            (layer_stage(l == last, 2), layer_stage(l == last, 3)),
            residual,
            &a.ctx.slice(..rh),
            [
                &w.view(ls.attn_out_weight),
                &w.view(ls.attn_out_bias),
                &w.view(ls.attn_ln_weight),
                &w.view(ls.attn_ln_bias),
            ],
            &mut x.slice_mut(..rh),
            &mut a.proj.slice_mut(..rh),
            (rows, h, h),
            eps,
        )?;
        if let launch::FfnIn::Fused(warps) = ffn_in {
            // One kernel; its time is the ffn_in_gemm stage and bias_gelu's stays empty.
            launch::linear_bias_gelu(
                gpu,
                warps,
                &x.slice(..rh),
                &w.view(ls.ffn_in_weight),
                &w.view(ls.ffn_in_bias),
                &mut a.ffn.slice_mut(..ri),
                rows,
                h,
                inter,
            )?;
            lap(clock, gpu, layer_stage(l == last, 4))?;
        } else {
            launch::linear(
                gpu,
                &x.slice(..rh),
                &w.view(ls.ffn_in_weight),
                &mut a.ffn.slice_mut(..ri),
                rows,
                h,
                inter,
            )?;
            lap(clock, gpu, layer_stage(l == last, 4))?;
            launch::bias_gelu(
                gpu,
                &mut a.ffn.slice_mut(..ri),
                &w.view(ls.ffn_in_bias),
                rows,
                inter,
            )?;
        }
        lap(clock, gpu, layer_stage(l == last, 5))?;
        project_add_norm(
            gpu,
            clock,
            (layer_stage(l == last, 6), layer_stage(l == last, 7)),
            residual,
            &a.ffn.slice(..ri),
            [
                &w.view(ls.ffn_out_weight),
                &w.view(ls.ffn_out_bias),
                &w.view(ls.ffn_ln_weight),
                &w.view(ls.ffn_ln_bias),
            ],
            &mut x.slice_mut(..rh),
            &mut a.proj.slice_mut(..rh),
            (rows, inter, h),
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
    lap(clock, gpu, "pooler_classifier")?;
    a.index[slot].release(gpu)?;
    let len = n * labels;
    // SAFETY: the logits buffer holds at least n * labels floats, written by pooler_classifier above on
    // this stream; the slot's host memory holds as many (both sized from the token budget).
    unsafe { a.logits_host[slot].download(gpu, gpu.addr(&a.logits), len)? };
    lap(clock, gpu, "logits_to_host")?;
    Ok(())
}

/// The end of a sub-layer: `x = LayerNorm(input · weightᵀ + bias + x)` over `rows` rows, input `[rows, k]`,
/// x `[rows, h]`; `wbgb` = weight `[h, k]`, bias, LayerNorm gamma and beta. Where the residual is added is
/// `residual` ([`CudaOptions::residual`](crate::CudaOptions::residual)): by the LayerNorm, reading the GEMM's output from the `proj` scratch rows,
/// or by the GEMM itself into x. Laps `stages.0` after the GEMM and `stages.1` after the LayerNorm.
#[allow(clippy::too_many_arguments)]
fn project_add_norm(
    gpu: &Gpu,
    clock: &mut Option<EventClock>,
    stages: (&'static str, &'static str),
    residual: launch::Residual,
    input: &CudaView<'_, f16>,
    wbgb: [&CudaView<'_, f16>; 4],
    x: &mut CudaViewMut<'_, f16>,
    proj: &mut CudaViewMut<'_, f16>,
    (rows, k, h): (usize, usize, usize),
    eps: f32,
) -> Result<()> {
    let [weight, bias, gamma, beta] = wbgb;
    match residual {
        launch::Residual::InLayerNorm => {
            launch::linear(gpu, input, weight, proj, rows, k, h)?;
            lap(clock, gpu, stages.0)?;
            launch::add_bias_residual_layernorm(gpu, proj, bias, x, gamma, beta, rows, h, eps)?;
        }
        launch::Residual::InGemm => {
            launch::linear_bias_add(gpu, input, weight, bias, x, rows, k, h)?;
            lap(clock, gpu, stages.0)?;
            launch::layernorm(gpu, x, gamma, beta, rows, h, eps)?;
        }
    }
    lap(clock, gpu, stages.1)
}

/// Waits for the logits that [`enqueue`] queued in `slot` for a batch of `n` pairs: `labels` logits per
/// pair, in batch order.
pub(crate) fn finish(
    a: &Activations,
    slot: usize,
    n: usize,
    labels: usize,
    clock: &mut Option<EventClock>,
) -> Result<Vec<f32>> {
    let host = &a.logits_host[slot].host()?[..n * labels];
    if let Some(c) = clock.as_mut() {
        c.end()?;
    }
    Ok(host.to_vec())
}
