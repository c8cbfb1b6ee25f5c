//! The CPU backend: the whole model in fp32 over a ragged batch, one call per op (see `ops`). It is the
//! fallback where there is no GPU and the reference the GPU path is checked against.

mod attention;
pub mod ops;
mod vmath;

use crate::batch::{Queries, RaggedBatch};
use crate::config::ModelConfig;
use crate::profile::{fused_ffn_stage, layer_stage, Laps, Profile};
use crate::weights::BertWeights;
use std::sync::Mutex;

pub struct CpuBackend {
    cfg: ModelConfig,
    w: BertWeights,
    /// Set when the caller asked for a thread count (the model's pool, shared with its tokenizer);
    /// otherwise rayon's global pool is used.
    pool: Option<std::sync::Arc<rayon::ThreadPool>>,
    /// Stage times when profiling (host clock).
    profile: Mutex<Option<Profile>>,
}

impl CpuBackend {
    /// `pool`: the threads the forward pass runs on (None: rayon's global pool).
    pub fn new(
        cfg: ModelConfig,
        w: BertWeights,
        pool: Option<std::sync::Arc<rayon::ThreadPool>>,
    ) -> Self {
        CpuBackend {
            cfg,
            w,
            pool,
            profile: Mutex::new(None),
        }
    }

    pub fn threads(&self) -> usize {
        self.pool
            .as_ref()
            .map_or_else(rayon::current_num_threads, |p| p.current_num_threads())
    }

    /// Every label's logit of each pair, `num_labels` per pair, in batch order. The batch must be
    /// validated.
    pub fn forward(&self, batch: &RaggedBatch) -> Vec<f32> {
        match &self.pool {
            Some(pool) => pool.install(|| self.forward_inner(batch)),
            None => self.forward_inner(batch),
        }
    }

    /// Starts (or stops) timing each stage of every forward pass.
    pub fn set_profiling(&self, on: bool) {
        *self.profile.lock().unwrap_or_else(|p| p.into_inner()) = on.then(|| Profile::new(false));
    }

    /// The stage times gathered since profiling started or since the last call; None when not profiling.
    pub fn take_profile(&self) -> Option<Profile> {
        let mut p = self.profile.lock().unwrap_or_else(|p| p.into_inner());
        p.as_mut()
            .map(|p| std::mem::replace(p, Profile::new(false)))
    }

    fn forward_inner(&self, batch: &RaggedBatch) -> Vec<f32> {
        let profiling = self
            .profile
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        let mut laps = profiling.then(Laps::start);
        let mut lap = |name| {
            if let Some(l) = laps.as_mut() {
                l.lap(name)
            }
        };
        let cfg = &self.cfg;
        let w = &self.w;
        let (h, inter, eps) = (cfg.hidden_size, cfg.intermediate_size, cfg.layer_norm_eps);
        let (heads, head_dim) = (cfg.num_attention_heads, cfg.head_dim());
        let t = batch.num_tokens();
        let n = batch.num_pairs();

        let mut x = vec![0f32; t * h];
        ops::embed_layernorm(
            &batch.input_ids,
            &batch.token_type_ids,
            &batch.position_ids,
            &w.word_embeddings,
            &w.position_embeddings,
            &w.token_type_embeddings,
            &w.embeddings_ln_weight,
            &w.embeddings_ln_bias,
            &mut x,
            h,
            eps,
        );
        lap("embed_layernorm");

        let mut qkv = vec![0f32; t * 3 * h];
        let mut ctx = vec![0f32; t * h];
        let mut proj = vec![0f32; t * h];
        let last = cfg.num_hidden_layers - 1;
        for (l, lw) in w.layers.iter().enumerate() {
            ops::linear_blocked(
                &x,
                &lw.qkv_weight,
                &lw.qkv_bias,
                &mut qkv,
                t,
                h,
                3 * h,
                ops::QKV_MAX_BLOCK_ROWS,
            );
            lap(layer_stage(l == last, 0));
            // In the last layer only [CLS] rows reach the head: once K and V exist, the rest of the
            // layer runs on n rows instead of T.
            let rows = if l == last {
                ops::attention_varlen(
                    &qkv,
                    &mut ctx,
                    &batch.cu_seqlens,
                    Queries::ClsOnly,
                    heads,
                    head_dim,
                );
                let mut cls = vec![0f32; n * h];
                ops::gather_rows(&x, batch.cls_rows(), &mut cls, h);
                x = cls;
                n
            } else {
                ops::attention_varlen(
                    &qkv,
                    &mut ctx,
                    &batch.cu_seqlens,
                    Queries::All,
                    heads,
                    head_dim,
                );
                t
            };
            lap(layer_stage(l == last, 1));
            let (x_rows, ctx_rows) = (&mut x[..rows * h], &ctx[..rows * h]);
            ops::linear(ctx_rows, &lw.attn_out_weight, None, &mut proj, rows, h, h);
            lap(layer_stage(l == last, 2));
            ops::add_bias_residual_layernorm(
                &proj[..rows * h],
                &lw.attn_out_bias,
                x_rows,
                &lw.attn_ln_weight,
                &lw.attn_ln_bias,
                h,
                eps,
            );
            lap(layer_stage(l == last, 3));
            ops::ffn_residual_layernorm(
                x_rows,
                &lw.ffn_in_weight,
                &lw.ffn_in_bias,
                &lw.ffn_out_weight,
                &lw.ffn_out_bias,
                &lw.ffn_ln_weight,
                &lw.ffn_ln_bias,
                rows,
                h,
                inter,
                eps,
            );
            lap(fused_ffn_stage(l == last));
        }

        let l = cfg.num_labels;
        let mut logits = vec![0f32; n * l];
        ops::pooler_classifier(
            &x[..n * h],
            &w.pooler_weight,
            &w.pooler_bias,
            &w.classifier_weight,
            &w.classifier_bias,
            &mut logits,
            h,
            l,
        );
        lap("pooler_classifier");
        if let Some((laps, wall)) = laps.map(Laps::finish) {
            if let Some(p) = self
                .profile
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_mut()
            {
                for (name, s) in laps {
                    p.add(name, s, 0.0);
                }
                p.add_forward(wall);
            }
        }
        logits
    }
}
