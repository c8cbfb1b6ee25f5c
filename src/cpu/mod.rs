//! The CPU backend: the whole model in fp32 over a ragged batch, one call per op (see `ops`). It is the
//! fallback where there is no GPU and the reference the GPU path is checked against.

pub mod ops;
mod vmath;

use crate::batch::RaggedBatch;
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::weights::BertWeights;
use ops::Queries;

pub struct CpuBackend {
    cfg: ModelConfig,
    w: BertWeights,
    /// Set when the caller asked for a thread count; otherwise rayon's global pool is used.
    pool: Option<rayon::ThreadPool>,
}

impl CpuBackend {
    pub fn new(cfg: ModelConfig, w: BertWeights, threads: Option<usize>) -> Result<Self> {
        let pool = match threads {
            None => None,
            Some(0) => return Err(Error::Option("threads must be at least 1".into())),
            Some(n) => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .map_err(|e| Error::Option(format!("cannot start {n} threads: {e}")))?,
            ),
        };
        Ok(CpuBackend { cfg, w, pool })
    }

    pub fn threads(&self) -> usize {
        self.pool
            .as_ref()
            .map_or_else(rayon::current_num_threads, |p| p.current_num_threads())
    }

    /// One logit per pair (the first label), in batch order. The batch must be validated.
    pub fn forward(&self, batch: &RaggedBatch) -> Vec<f32> {
        match &self.pool {
            Some(pool) => pool.install(|| self.forward_inner(batch)),
            None => self.forward_inner(batch),
        }
    }

    fn forward_inner(&self, batch: &RaggedBatch) -> Vec<f32> {
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

        let mut qkv = vec![0f32; t * 3 * h];
        let mut ctx = vec![0f32; t * h];
        let mut proj = vec![0f32; t * h];
        let mut ffn = vec![0f32; t * inter];
        let last = cfg.num_hidden_layers - 1;
        for (l, lw) in w.layers.iter().enumerate() {
            ops::linear(
                &x,
                &lw.qkv_weight,
                Some(&lw.qkv_bias),
                &mut qkv,
                t,
                h,
                3 * h,
            );
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
            let (x_rows, ctx_rows) = (&mut x[..rows * h], &ctx[..rows * h]);
            ops::linear(ctx_rows, &lw.attn_out_weight, None, &mut proj, rows, h, h);
            ops::add_bias_residual_layernorm(
                &proj[..rows * h],
                &lw.attn_out_bias,
                x_rows,
                &lw.attn_ln_weight,
                &lw.attn_ln_bias,
                h,
                eps,
            );
            ops::linear(x_rows, &lw.ffn_in_weight, None, &mut ffn, rows, h, inter);
            ops::bias_gelu(&mut ffn[..rows * inter], &lw.ffn_in_bias, inter);
            ops::linear(
                &ffn[..rows * inter],
                &lw.ffn_out_weight,
                None,
                &mut proj,
                rows,
                inter,
                h,
            );
            ops::add_bias_residual_layernorm(
                &proj[..rows * h],
                &lw.ffn_out_bias,
                x_rows,
                &lw.ffn_ln_weight,
                &lw.ffn_ln_bias,
                h,
                eps,
            );
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
        logits.chunks_exact(l).map(|c| c[0]).collect()
    }
}
