//! model.safetensors → [`BertWeights`]: every tensor looked up by its Hugging Face name (with or without
//! the `bert.` prefix), shape-checked against the config, converted to f32 once (from f32, f16 or bf16).
//! Q, K and V are concatenated here, once, into one `[3H, H]` matrix so a layer does one QKV GEMM.
//!
//! The file is read into memory and parsed by `safetensors`, which checks every offset against the
//! buffer, so a truncated or garbled file is an error, never a read past the end.

use std::path::Path;

use half::{bf16, f16};
use safetensors::{Dtype, SafeTensors};

use crate::config::ModelConfig;
use crate::error::{Error, Result};

/// One encoder layer. Shapes are PyTorch `nn.Linear` layouts: weight `[out, in]`, row-major.
#[derive(Debug, Clone)]
pub struct LayerWeights {
    /// `attention.self.{query,key,value}.weight` stacked: `[3H, H]`.
    pub qkv_weight: Vec<f32>,
    /// `attention.self.{query,key,value}.bias` stacked: `[3H]`.
    pub qkv_bias: Vec<f32>,
    /// `attention.output.dense.weight`: `[H, H]`.
    pub attn_out_weight: Vec<f32>,
    /// `attention.output.dense.bias`: `[H]`.
    pub attn_out_bias: Vec<f32>,
    /// `attention.output.LayerNorm.{weight,bias}`: `[H]` each.
    pub attn_ln_weight: Vec<f32>,
    pub attn_ln_bias: Vec<f32>,
    /// `intermediate.dense.weight`: `[I, H]`.
    pub ffn_in_weight: Vec<f32>,
    /// `intermediate.dense.bias`: `[I]`.
    pub ffn_in_bias: Vec<f32>,
    /// `output.dense.weight`: `[H, I]`.
    pub ffn_out_weight: Vec<f32>,
    /// `output.dense.bias`: `[H]`.
    pub ffn_out_bias: Vec<f32>,
    /// `output.LayerNorm.{weight,bias}`: `[H]` each.
    pub ffn_ln_weight: Vec<f32>,
    pub ffn_ln_bias: Vec<f32>,
}

#[derive(Debug, Clone)]
pub struct BertWeights {
    /// `embeddings.word_embeddings.weight`: `[V, H]`.
    pub word_embeddings: Vec<f32>,
    /// `embeddings.position_embeddings.weight`: `[P, H]`.
    pub position_embeddings: Vec<f32>,
    /// `embeddings.token_type_embeddings.weight`: `[TV, H]`.
    pub token_type_embeddings: Vec<f32>,
    /// `embeddings.LayerNorm.{weight,bias}`: `[H]` each.
    pub embeddings_ln_weight: Vec<f32>,
    pub embeddings_ln_bias: Vec<f32>,
    pub layers: Vec<LayerWeights>,
    /// `pooler.dense.weight`: `[H, H]`.
    pub pooler_weight: Vec<f32>,
    /// `pooler.dense.bias`: `[H]`.
    pub pooler_bias: Vec<f32>,
    /// `classifier.weight` (never prefixed): `[L, H]`.
    pub classifier_weight: Vec<f32>,
    /// `classifier.bias`: `[L]`.
    pub classifier_bias: Vec<f32>,
    /// The dtype the checkpoint stored (f32, f16 or bf16), for reporting.
    pub stored_dtype: String,
}

impl BertWeights {
    /// Maps the file (falling back to reading it where it cannot be mapped) and converts every tensor.
    pub fn from_file(path: &Path, cfg: &ModelConfig) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        // Mapped and populated (read ahead in one go), not read into a buffer: one copy less.
        // SAFETY: the map is only read, here, while the file is open; it is dropped before this returns.
        // Another process truncating the checkpoint meanwhile would fault the read (as it would corrupt
        // any reader); the bytes themselves are checked by safetensors.
        match unsafe { memmap2::MmapOptions::new().populate().map(&file) } {
            Ok(map) => Self::from_bytes(&map, cfg),
            Err(_) => Self::from_bytes(&std::fs::read(path).map_err(io)?, cfg),
        }
    }

    pub fn from_bytes(bytes: &[u8], cfg: &ModelConfig) -> Result<Self> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| {
            Error::weights(format!(
                "cannot parse the file ({e}); it may be truncated or not a safetensors file"
            ))
            .with_source(e)
        })?;
        let r = Reader::new(&st)?;
        let (h, i, l) = (cfg.hidden_size, cfg.intermediate_size, cfg.num_labels);

        let layers = (0..cfg.num_hidden_layers)
            .map(|n| {
                let p = format!("encoder.layer.{n}.");
                let mut qkv_weight = Vec::with_capacity(3 * h * h);
                let mut qkv_bias = Vec::with_capacity(3 * h);
                for part in ["query", "key", "value"] {
                    qkv_weight.extend(r.get(&format!("{p}attention.self.{part}.weight"), &[h, h])?);
                    qkv_bias.extend(r.get(&format!("{p}attention.self.{part}.bias"), &[h])?);
                }
                Ok(LayerWeights {
                    qkv_weight,
                    qkv_bias,
                    attn_out_weight: r
                        .get(&format!("{p}attention.output.dense.weight"), &[h, h])?,
                    attn_out_bias: r.get(&format!("{p}attention.output.dense.bias"), &[h])?,
                    attn_ln_weight: r
                        .get(&format!("{p}attention.output.LayerNorm.weight"), &[h])?,
                    attn_ln_bias: r.get(&format!("{p}attention.output.LayerNorm.bias"), &[h])?,
                    ffn_in_weight: r.get(&format!("{p}intermediate.dense.weight"), &[i, h])?,
                    ffn_in_bias: r.get(&format!("{p}intermediate.dense.bias"), &[i])?,
                    ffn_out_weight: r.get(&format!("{p}output.dense.weight"), &[h, i])?,
                    ffn_out_bias: r.get(&format!("{p}output.dense.bias"), &[h])?,
                    ffn_ln_weight: r.get(&format!("{p}output.LayerNorm.weight"), &[h])?,
                    ffn_ln_bias: r.get(&format!("{p}output.LayerNorm.bias"), &[h])?,
                })
            })
            .collect::<Result<Vec<_>>>()?;

        Ok(BertWeights {
            word_embeddings: r.get("embeddings.word_embeddings.weight", &[cfg.vocab_size, h])?,
            position_embeddings: r.get(
                "embeddings.position_embeddings.weight",
                &[cfg.max_position_embeddings, h],
            )?,
            token_type_embeddings: r.get(
                "embeddings.token_type_embeddings.weight",
                &[cfg.type_vocab_size, h],
            )?,
            embeddings_ln_weight: r.get("embeddings.LayerNorm.weight", &[h])?,
            embeddings_ln_bias: r.get("embeddings.LayerNorm.bias", &[h])?,
            layers,
            pooler_weight: r.get("pooler.dense.weight", &[h, h])?,
            pooler_bias: r.get("pooler.dense.bias", &[h])?,
            classifier_weight: r.get_root("classifier.weight", &[l, h])?,
            classifier_bias: r.get_root("classifier.bias", &[l])?,
            stored_dtype: r.dtype_name(),
        })
    }
}

/// Looks tensors up under the encoder prefix the checkpoint uses (`bert.` or none).
struct Reader<'a> {
    st: &'a SafeTensors<'a>,
    prefix: &'static str,
}

impl<'a> Reader<'a> {
    fn new(st: &'a SafeTensors<'a>) -> Result<Self> {
        const PROBE: &str = "embeddings.word_embeddings.weight";
        for prefix in ["bert.", ""] {
            if st.tensor(&format!("{prefix}{PROBE}")).is_ok() {
                return Ok(Reader { st, prefix });
            }
        }
        Err(Error::weights(format!(
            "tensor `bert.{PROBE}` (or `{PROBE}`) is missing; is this a BERT checkpoint?"
        )))
    }

    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        self.get_root(&format!("{}{name}", self.prefix), shape)
    }

    fn get_root(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let view = self
            .st
            .tensor(name)
            .map_err(|_| Error::weights(format!("tensor `{name}` is missing")))?;
        if view.shape() != shape {
            return Err(Error::TensorShape {
                name: name.to_string(),
                expected: shape.to_vec(),
                found: view.shape().to_vec(),
            });
        }
        to_f32(name, view.dtype(), view.data())
    }

    fn dtype_name(&self) -> String {
        let name = format!("{}embeddings.word_embeddings.weight", self.prefix);
        self.st
            .tensor(&name)
            .map(|v| format!("{:?}", v.dtype()).to_lowercase())
            .unwrap_or_default()
    }
}

/// Little-endian bytes of one tensor → f32, whatever the alignment of `data`.
fn to_f32(name: &str, dtype: Dtype, data: &[u8]) -> Result<Vec<f32>> {
    // f32 bytes at a 4-byte boundary on a little-endian CPU (the usual case: safetensors pads its header
    // to 8 bytes) are the values already: one copy. The per-element conversion below took ~10% of a
    // one-pair `xenc score` on the CPU.
    #[cfg(target_endian = "little")]
    if dtype == Dtype::F32 {
        if let Ok(values) = bytemuck::try_cast_slice::<u8, f32>(data) {
            return Ok(values.to_vec());
        }
    }
    Ok(match dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
            .collect(),
        other => {
            return Err(Error::weights(format!(
                "tensor `{name}` has dtype {other:?}; xenc reads F32, F16 and BF16"
            )))
        }
    })
}
