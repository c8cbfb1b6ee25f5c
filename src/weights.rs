//! model.safetensors → [`BertWeights`]: every tensor looked up by its Hugging Face name (with or without
//! the family's `bert.` / `roberta.` prefix; the head's names per [`crate::family`]), shape-checked
//! against the config, converted to f32 once (from f32, f16 or bf16). Every family loads into the same
//! struct: RoBERTa's `classifier.dense` is the pooler, its `classifier.out_proj` the classifier, and its
//! position table loses the rows before `pad_token_id + 1`.
//! Q, K and V are concatenated here, once, into one `[3H, H]` matrix so a layer does one QKV GEMM.
//!
//! Loading goes in three steps, each before anything the next one sizes:
//! 1. the header alone (the 8-byte length and the JSON after it) is read and checked against the
//!    file's length: every tensor's shape and dtype match its byte range, the ranges neither overlap
//!    nor leave a gap, and they end exactly at the end of the file. A truncated, padded or garbled
//!    file costs O(header), whatever its size.
//! 2. the config is checked against the header: the parameters its sizes imply fit in the file
//!    ([`ModelConfig::check_fits`]), and every tensor xenc needs is there with the config's shape.
//!    Only then is anything sized from the config allocated, and never more than the file holds.
//! 3. each tensor is read from the file straight into its f32 buffer (f16/bf16 through a small
//!    scratch buffer), a chunk at a time, and each chunk is checked for NaN and ±Inf while it is still
//!    in cache: a non-finite weight is an error naming the tensor and the first bad index.
//!
//! The file is read, never mapped: a map of a file that another process truncates (or rewrites in
//! place) while xenc reads it kills xenc with SIGBUS, which no check can prevent, and a private map
//! does not help (truncation drops its pages too); a read of such a file is an error naming the
//! tensor. Each tensor is read straight into its f32 buffer, so the read costs what the map did: on
//! the 90 MB f32 test checkpoint (2-core VM, 30 loads each, in process) 56.8 ms (min) / 58.9 ms
//! (median) read, 56.5 / 58.3 ms mapped and populated, 104 / 110 ms for one `std::fs::read` of the
//! whole file then a conversion (the "third of a one-pair `xenc score`" that the map once replaced);
//! the NaN/Inf check is ~2.5 ms of it. Peak memory of a one-pair `xenc score` fell from 197 MB to
//! 119 MB (the mapped file no longer counts).

use std::fs::File;
use std::path::Path;

use half::{bf16, f16};
use safetensors::tensor::TensorInfo;
use safetensors::Dtype;

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::family::TensorName;

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
    /// `embeddings.position_embeddings.weight` from row [`ModelConfig::position_offset`] on:
    /// `[ModelConfig::positions(), H]`.
    pub position_embeddings: Vec<f32>,
    /// `embeddings.token_type_embeddings.weight`: `[TV, H]`.
    pub token_type_embeddings: Vec<f32>,
    /// `embeddings.LayerNorm.{weight,bias}`: `[H]` each.
    pub embeddings_ln_weight: Vec<f32>,
    pub embeddings_ln_bias: Vec<f32>,
    pub layers: Vec<LayerWeights>,
    /// The head's dense layer (then tanh) on the first token: BERT's `pooler.dense.weight`, RoBERTa's
    /// `classifier.dense.weight`: `[H, H]`.
    pub pooler_weight: Vec<f32>,
    /// Its bias: `[H]`.
    pub pooler_bias: Vec<f32>,
    /// BERT's `classifier.weight`, RoBERTa's `classifier.out_proj.weight` (never prefixed): `[L, H]`.
    pub classifier_weight: Vec<f32>,
    /// Its bias: `[L]`.
    pub classifier_bias: Vec<f32>,
    /// The dtype the checkpoint stored (f32, f16 or bf16), for reporting.
    pub stored_dtype: String,
}

impl BertWeights {
    /// Reads and checks the file (see the module docs) and converts every tensor xenc needs.
    pub fn from_file(path: &Path, cfg: &ModelConfig) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        Self::load(&Source::File(&file), len, cfg)
    }

    /// [`Self::from_file`] for a file already in memory.
    pub fn from_bytes(bytes: &[u8], cfg: &ModelConfig) -> Result<Self> {
        Self::load(&Source::Bytes(bytes), bytes.len() as u64, cfg)
    }

    fn load(src: &Source, file_len: u64, cfg: &ModelConfig) -> Result<Self> {
        let header = Header::read(src, file_len)?;
        cfg.check_fits(header.data_len, header.tensors.len())?;
        let r = Reader::new(&header, src, cfg)?;
        // Every tensor present, with the config's shape and a dtype xenc converts, before any of them
        // is allocated.
        for (name, shape) in required_tensors(cfg) {
            r.check(&name, &shape)?;
        }
        let (h, i, l) = (cfg.hidden_size, cfg.intermediate_size, cfg.num_labels);

        let layers = (0..cfg.num_hidden_layers)
            .map(|n| {
                let p = format!("encoder.layer.{n}.");
                let mut qkv_weight = vec![0.0; 3 * h * h];
                let mut qkv_bias = vec![0.0; 3 * h];
                for (k, part) in ["query", "key", "value"].into_iter().enumerate() {
                    let w = &mut qkv_weight[k * h * h..(k + 1) * h * h];
                    r.get_into(&format!("{p}attention.self.{part}.weight"), &[h, h], w)?;
                    let b = &mut qkv_bias[k * h..(k + 1) * h];
                    r.get_into(&format!("{p}attention.self.{part}.bias"), &[h], b)?;
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

        let mut position_embeddings = r.get(
            "embeddings.position_embeddings.weight",
            &[cfg.max_position_embeddings, h],
        )?;
        position_embeddings.drain(..cfg.position_offset * h);
        let head = cfg.family.head();
        Ok(BertWeights {
            word_embeddings: r.get("embeddings.word_embeddings.weight", &[cfg.vocab_size, h])?,
            position_embeddings,
            token_type_embeddings: r.get(
                "embeddings.token_type_embeddings.weight",
                &[cfg.type_vocab_size, h],
            )?,
            embeddings_ln_weight: r.get("embeddings.LayerNorm.weight", &[h])?,
            embeddings_ln_bias: r.get("embeddings.LayerNorm.bias", &[h])?,
            layers,
            pooler_weight: r.get_named(head.dense, "weight", &[h, h])?,
            pooler_bias: r.get_named(head.dense, "bias", &[h])?,
            classifier_weight: r.get_named(head.out, "weight", &[l, h])?,
            classifier_bias: r.get_named(head.out, "bias", &[l])?,
            stored_dtype: r.dtype_name(),
        })
    }
}

/// Every tensor [`BertWeights::load`] reads, as (name without the encoder prefix, shape), in reading
/// order; names at the file's root (the classifier's) are marked by a leading `/`, which no tensor
/// name has.
fn required_tensors(cfg: &ModelConfig) -> impl Iterator<Item = (String, Vec<usize>)> {
    let (h, i, l) = (cfg.hidden_size, cfg.intermediate_size, cfg.num_labels);
    let layer = move |n: usize| {
        let p = format!("encoder.layer.{n}.");
        let mut t = Vec::with_capacity(16);
        for part in ["query", "key", "value"] {
            t.push((format!("{p}attention.self.{part}.weight"), vec![h, h]));
            t.push((format!("{p}attention.self.{part}.bias"), vec![h]));
        }
        t.push((format!("{p}attention.output.dense.weight"), vec![h, h]));
        for n in [
            "attention.output.dense.bias",
            "attention.output.LayerNorm.weight",
            "attention.output.LayerNorm.bias",
        ] {
            t.push((format!("{p}{n}"), vec![h]));
        }
        t.push((format!("{p}intermediate.dense.weight"), vec![i, h]));
        t.push((format!("{p}intermediate.dense.bias"), vec![i]));
        t.push((format!("{p}output.dense.weight"), vec![h, i]));
        for n in [
            "output.dense.bias",
            "output.LayerNorm.weight",
            "output.LayerNorm.bias",
        ] {
            t.push((format!("{p}{n}"), vec![h]));
        }
        t
    };
    let rest = vec![
        (
            "embeddings.word_embeddings.weight".to_string(),
            vec![cfg.vocab_size, h],
        ),
        (
            "embeddings.position_embeddings.weight".into(),
            vec![cfg.max_position_embeddings, h],
        ),
        (
            "embeddings.token_type_embeddings.weight".into(),
            vec![cfg.type_vocab_size, h],
        ),
        ("embeddings.LayerNorm.weight".into(), vec![h]),
        ("embeddings.LayerNorm.bias".into(), vec![h]),
    ];
    let head = cfg.family.head();
    let rest = rest.into_iter().chain([
        (head.dense.marked("weight"), vec![h, h]),
        (head.dense.marked("bias"), vec![h]),
        (head.out.marked("weight"), vec![l, h]),
        (head.out.marked("bias"), vec![l]),
    ]);
    (0..cfg.num_hidden_layers).flat_map(layer).chain(rest)
}

/// Safetensors' own limit on the header's length.
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Where the file's bytes come from: the file itself, read (never mapped) at each tensor's offset, or
/// a buffer.
enum Source<'a> {
    File(&'a File),
    Bytes(&'a [u8]),
}

impl Source<'_> {
    /// Fills `buf` from byte `offset` on; a file shorter than that is `UnexpectedEof`.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        match self {
            Source::Bytes(bytes) => {
                let part = usize::try_from(offset)
                    .ok()
                    .and_then(|start| bytes.get(start..start.checked_add(buf.len())?))
                    .ok_or(std::io::ErrorKind::UnexpectedEof)?;
                buf.copy_from_slice(part);
                Ok(())
            }
            #[cfg(unix)]
            Source::File(file) => std::os::unix::fs::FileExt::read_exact_at(*file, buf, offset),
            #[cfg(not(unix))]
            Source::File(file) => {
                use std::io::{Read, Seek};
                let mut file: &File = file;
                file.seek(std::io::SeekFrom::Start(offset))?;
                file.read_exact(buf)
            }
        }
    }

    /// `len` bytes from `offset`: borrowed from a buffer, or read from the file into `scratch`.
    fn bytes_at<'s>(
        &'s self,
        offset: u64,
        len: usize,
        scratch: &'s mut Vec<u8>,
    ) -> std::io::Result<&'s [u8]> {
        if let Source::Bytes(bytes) = self {
            return usize::try_from(offset)
                .ok()
                .and_then(|start| bytes.get(start..start.checked_add(len)?))
                .ok_or_else(|| std::io::ErrorKind::UnexpectedEof.into());
        }
        scratch.resize(len, 0);
        self.read_exact_at(offset, scratch)?;
        Ok(scratch)
    }
}

/// One tensor of the header, checked against the file: `start..start + len` are its bytes (offsets in
/// the file, header included).
#[derive(Debug)]
struct Entry {
    dtype: Dtype,
    shape: Vec<usize>,
    start: u64,
    len: u64,
}

/// The safetensors header, checked against the length of the file it came from.
#[derive(Debug)]
struct Header {
    tensors: std::collections::HashMap<String, Entry>,
    /// Bytes of tensor data after the header.
    data_len: u64,
}

/// What is wrong with a header: `model.safetensors: cannot parse the file: ...`.
fn bad_file(why: impl std::fmt::Display) -> Error {
    Error::weights(format!("cannot parse the file: {why}"))
}

impl Header {
    /// Reads the 8-byte length and the JSON header, and checks every tensor's byte range against the
    /// file's length: O(header) time and memory, whatever the file's size.
    fn read(src: &Source, file_len: u64) -> Result<Header> {
        const NOT_ST: &str = "it may be truncated or not a safetensors file";
        let mut n = [0u8; 8];
        if file_len < 8 || src.read_exact_at(0, &mut n).is_err() {
            return Err(bad_file(format!(
                "the file is {file_len} bytes, too short for the 8-byte header length; {NOT_ST}"
            )));
        }
        let n = u64::from_le_bytes(n);
        if n > MAX_HEADER_BYTES {
            return Err(bad_file(format!(
                "the header length is {n} bytes, over safetensors' limit of {MAX_HEADER_BYTES}; {NOT_ST}"
            )));
        }
        if n > file_len - 8 {
            return Err(bad_file(format!(
                "the header length is {n} bytes, but the file has {} after it; {NOT_ST}",
                file_len - 8
            )));
        }
        let mut json = vec![0u8; n as usize];
        src.read_exact_at(8, &mut json)
            .map_err(|e| bad_file(format!("cannot read the header ({e})")).with_source(e))?;
        let parsed: RawHeader = serde_json::from_slice(&json).map_err(|e| {
            bad_file(format!(
                "the header is not safetensors JSON ({e}); {NOT_ST}"
            ))
            .with_source(e)
        })?;
        Self::check(parsed.0, 8 + n, file_len - 8 - n)
    }

    /// Checks the tensors' byte ranges: each matches its shape and dtype, they follow each other
    /// without overlap or gap from the first byte of the data, and the last ends at its end.
    fn check(infos: Vec<(String, TensorInfo)>, data_start: u64, data_len: u64) -> Result<Header> {
        let mut infos = infos;
        infos.sort_by_key(|(_, t)| t.data_offsets);
        let mut tensors = std::collections::HashMap::with_capacity(infos.len());
        let mut end = 0u64; // where the previous tensor ended, in the data
        let mut previous: Option<String> = None;
        for (name, info) in infos {
            let (s, e) = (info.data_offsets.0 as u64, info.data_offsets.1 as u64);
            if e < s {
                return Err(bad_file(format!(
                    "tensor `{name}` has data_offsets [{s}, {e}], which end before they start"
                )));
            }
            let bits = info
                .shape
                .iter()
                .try_fold(info.dtype.bitsize() as u64, |a, &d| a.checked_mul(d as u64));
            let bytes = match bits {
                Some(b) if b % 8 == 0 => b / 8,
                _ => {
                    return Err(bad_file(format!(
                        "tensor `{name}` has shape {:?} of {:?}: not a whole number of bytes below 2^64",
                        info.shape, info.dtype
                    )))
                }
            };
            if e - s != bytes {
                return Err(bad_file(format!(
                    "tensor `{name}` has shape {:?} of {:?} ({bytes} bytes), but data_offsets [{s}, {e}] \
                     ({} bytes)",
                    info.shape,
                    info.dtype,
                    e - s
                )));
            }
            let after = |p: &Option<String>| match p {
                Some(p) => format!("tensor `{p}`, which ends at byte {end}"),
                None => "the start of the data".to_string(),
            };
            if s < end {
                return Err(bad_file(format!(
                    "tensor `{name}` starts at byte {s} of the data, inside {}: tensors overlap",
                    after(&previous)
                )));
            }
            if s > end {
                return Err(bad_file(format!(
                    "bytes {end}..{s} of the data belong to no tensor (after {}, before `{name}`)",
                    after(&previous)
                )));
            }
            if e > data_len {
                return Err(bad_file(format!(
                    "tensor `{name}` ends at byte {e} of the data, past the end of the file \
                     ({data_len} bytes of data after the header): the file is truncated"
                )));
            }
            end = e;
            let entry = Entry {
                dtype: info.dtype,
                shape: info.shape,
                start: data_start + s,
                len: bytes,
            };
            if tensors.insert(name.clone(), entry).is_some() {
                return Err(bad_file(format!(
                    "tensor `{name}` appears twice in the header"
                )));
            }
            previous = Some(name);
        }
        if end != data_len {
            return Err(bad_file(format!(
                "the tensors end at byte {end} of the data, but the file holds {data_len} bytes of data \
                 after the header: {} bytes belong to no tensor (the file is not fully covered)",
                data_len - end
            )));
        }
        Ok(Header { tensors, data_len })
    }
}

/// The header's JSON: tensor name → dtype, shape, data_offsets; `__metadata__` is skipped. Parsed
/// entry by entry (no intermediate `serde_json::Value`), so memory is a small multiple of the header.
struct RawHeader(Vec<(String, TensorInfo)>);

impl<'de> serde::Deserialize<'de> for RawHeader {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = RawHeader;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object of tensors")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<RawHeader, A::Error> {
                let mut out = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    if name == "__metadata__" {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    } else {
                        let info = map.next_value::<TensorInfo>().map_err(|e| {
                            serde::de::Error::custom(format_args!("tensor `{name}`: {e}"))
                        })?;
                        out.push((name, info));
                    }
                }
                Ok(RawHeader(out))
            }
        }
        d.deserialize_map(Visit)
    }
}

impl TensorName {
    /// `name.suffix` as [`required_tensors`] lists it (`/` first for a name at the root).
    fn marked(self, suffix: &str) -> String {
        match self {
            TensorName::Encoder(n) => format!("{n}.{suffix}"),
            TensorName::Root(n) => format!("/{n}.{suffix}"),
        }
    }
}

/// Looks tensors up under the encoder prefix the checkpoint uses (the family's, e.g. `bert.`, or none),
/// and reads them.
struct Reader<'a> {
    header: &'a Header,
    src: &'a Source<'a>,
    prefix: &'static str,
}

impl<'a> Reader<'a> {
    fn new(header: &'a Header, src: &'a Source<'a>, cfg: &ModelConfig) -> Result<Self> {
        const PROBE: &str = "embeddings.word_embeddings.weight";
        let prefixes = cfg.family.encoder_prefixes();
        for &prefix in prefixes {
            if header.tensors.contains_key(&format!("{prefix}{PROBE}")) {
                return Ok(Reader {
                    header,
                    src,
                    prefix,
                });
            }
        }
        Err(Error::weights(format!(
            "tensor `{}{PROBE}` (or `{PROBE}`) is missing; is this a {} checkpoint, as config.json's \
             model_type says?",
            prefixes[0],
            cfg.family.name()
        )))
    }

    /// The tensor `name.suffix` of a [`TensorName`].
    fn get_named(&self, name: TensorName, suffix: &str, shape: &[usize]) -> Result<Vec<f32>> {
        match name {
            TensorName::Encoder(n) => self.get(&format!("{n}.{suffix}"), shape),
            TensorName::Root(n) => self.get_root(&format!("{n}.{suffix}"), shape),
        }
    }

    /// A name from [`required_tensors`] as it is in the file.
    fn full_name(&self, name: &str) -> String {
        match name.strip_prefix('/') {
            Some(root) => root.to_string(),
            None => format!("{}{name}", self.prefix),
        }
    }

    /// The tensor `name` (under the prefix; `/name`: at the root), checked: present, with `shape`, and
    /// in a dtype xenc converts.
    fn check(&self, name: &str, shape: &[usize]) -> Result<(String, &'a Entry)> {
        let name = self.full_name(name);
        self.entry(name, shape)
    }

    fn entry(&self, name: String, shape: &[usize]) -> Result<(String, &'a Entry)> {
        let Some(e) = self.header.tensors.get(&name) else {
            return Err(Error::weights(format!("tensor `{name}` is missing")));
        };
        if e.shape != shape {
            return Err(Error::TensorShape {
                name,
                expected: shape.to_vec(),
                found: e.shape.clone(),
            });
        }
        if !matches!(e.dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16) {
            return Err(Error::weights(format!(
                "tensor `{name}` has dtype {:?}; xenc reads F32, F16 and BF16",
                e.dtype
            )));
        }
        Ok((name, e))
    }

    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        self.get_root(&format!("{}{name}", self.prefix), shape)
    }

    fn get_root(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (name, e) = self.entry(name.to_string(), shape)?;
        let mut out = vec![0.0; shape.iter().product()];
        read_f32(self.src, &name, e, &mut out)?;
        Ok(out)
    }

    /// Reads the tensor `name` (under the prefix) into `out`, which has its shape's size.
    fn get_into(&self, name: &str, shape: &[usize], out: &mut [f32]) -> Result<()> {
        let (name, e) = self.entry(format!("{}{name}", self.prefix), shape)?;
        read_f32(self.src, &name, e, out)
    }

    fn dtype_name(&self) -> String {
        let name = format!("{}embeddings.word_embeddings.weight", self.prefix);
        self.header
            .tensors
            .get(&name)
            .map(|e| format!("{:?}", e.dtype).to_lowercase())
            .unwrap_or_default()
    }
}

/// Elements converted per step: 64 Ki f32 (256 KiB) are still in cache when the step checks them for
/// NaN and ±Inf, so the check costs no second pass over memory.
const CHUNK: usize = 1 << 16;

/// Reads tensor `name` (little-endian f32, f16 or bf16; its dtype checked by [`Reader::entry`]) into
/// `out` as f32, refusing NaN and ±Inf.
fn read_f32(src: &Source, name: &str, e: &Entry, out: &mut [f32]) -> Result<()> {
    let width = if e.dtype == Dtype::F32 { 4 } else { 2 };
    debug_assert_eq!(e.len, (out.len() * width) as u64);
    let mut scratch = Vec::new();
    for (k, dst) in out.chunks_mut(CHUNK).enumerate() {
        let first = k * CHUNK;
        let offset = e.start + (first * width) as u64;
        let end = offset + (dst.len() * width) as u64;
        let read_err = |err: std::io::Error| {
            Error::weights(format!(
                "tensor `{name}`: cannot read bytes {offset}..{end} of the file ({err}); was it \
                 truncated or changed while xenc loaded it?"
            ))
            .with_source(err)
        };
        match e.dtype {
            Dtype::F32 => {
                // Straight into the f32 buffer: its bytes are the values on a little-endian CPU.
                src.read_exact_at(offset, bytemuck::cast_slice_mut(dst))
                    .map_err(read_err)?;
                #[cfg(target_endian = "big")]
                for x in dst.iter_mut() {
                    *x = f32::from_bits(u32::from_le(x.to_bits()));
                }
            }
            Dtype::F16 => {
                let bytes = src
                    .bytes_at(offset, dst.len() * 2, &mut scratch)
                    .map_err(read_err)?;
                for (d, b) in dst.iter_mut().zip(bytes.chunks_exact(2)) {
                    *d = f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
                }
            }
            _ => {
                let bytes = src
                    .bytes_at(offset, dst.len() * 2, &mut scratch)
                    .map_err(read_err)?;
                for (d, b) in dst.iter_mut().zip(bytes.chunks_exact(2)) {
                    *d = bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32();
                }
            }
        }
        if let Some(i) = first_non_finite(dst) {
            let index = first + i;
            return Err(Error::weights(format!(
                "tensor `{name}` holds {} at index {index} ({:?} in shape {:?}); xenc refuses \
                 non-finite weights",
                dst[i],
                unravel(index, &e.shape),
                e.shape
            )));
        }
    }
    Ok(())
}

/// The index of the first NaN or ±Inf in `xs`. The scan for any is branch-free (vectorised); only a
/// chunk that has one is searched again.
fn first_non_finite(xs: &[f32]) -> Option<usize> {
    // NaN and ±Inf are exactly the floats whose exponent bits are all ones.
    const EXP: u32 = 0x7f80_0000;
    let any = xs
        .iter()
        .fold(false, |any, x| any | (x.to_bits() & EXP == EXP));
    if any {
        xs.iter().position(|x| !x.is_finite())
    } else {
        None
    }
}

/// A flat row-major index as one index per dimension of `shape`.
fn unravel(mut index: usize, shape: &[usize]) -> Vec<usize> {
    let mut out = vec![0; shape.len()];
    for (o, &d) in out.iter_mut().zip(shape).rev() {
        if d > 0 {
            *o = index % d;
            index /= d;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A safetensors file of one tensor `t` of `dtype` holding `values` (converted from f32).
    fn file_of(dtype: Dtype, values: &[f32]) -> Vec<u8> {
        let data: Vec<u8> = match dtype {
            Dtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Dtype::F16 => values
                .iter()
                .flat_map(|&v| f16::from_f32(v).to_le_bytes())
                .collect(),
            _ => values
                .iter()
                .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
                .collect(),
        };
        let view = safetensors::tensor::TensorView::new(dtype, vec![values.len()], &data).unwrap();
        safetensors::tensor::serialize([("t", view)], None).unwrap()
    }

    fn read_all(src: &Source, len: u64) -> Result<Vec<f32>> {
        let header = Header::read(src, len)?;
        let e = &header.tensors["t"];
        let mut out = vec![0.0; e.shape[0]];
        read_f32(src, "t", e, &mut out)?;
        Ok(out)
    }

    #[test]
    fn every_dtype_converts_and_non_finite_values_are_found_in_any_chunk() {
        let n = 2 * CHUNK + 5;
        // Integers -64..63: exact in f16 and bf16.
        let values: Vec<f32> = (0..n).map(|i| (i % 128) as f32 - 64.0).collect();
        for dtype in [Dtype::F32, Dtype::F16, Dtype::BF16] {
            let file = file_of(dtype, &values);
            let got = read_all(&Source::Bytes(&file), file.len() as u64).unwrap();
            assert!(got == values, "{dtype:?}");
            // Misaligned in memory (safetensors pads the header; a buffer need not be aligned).
            let mut shifted = vec![0u8; file.len() + 1];
            shifted[1..].copy_from_slice(&file);
            let got = read_all(&Source::Bytes(&shifted[1..]), file.len() as u64).unwrap();
            assert!(got == values, "{dtype:?} misaligned");
            for (at, bad, shown) in [
                (0, f32::NAN, "NaN"),
                (CHUNK - 1, f32::INFINITY, "inf"),
                (CHUNK, f32::NEG_INFINITY, "-inf"),
                (n - 1, f32::NAN, "NaN"),
            ] {
                let mut v = values.clone();
                v[at] = bad;
                if at + 1 < n {
                    v[at + 1] = f32::NAN; // only the first is named
                }
                let file = file_of(dtype, &v);
                let err = read_all(&Source::Bytes(&file), file.len() as u64)
                    .unwrap_err()
                    .to_string();
                let needle =
                    format!("tensor `t` holds {shown} at index {at} ([{at}] in shape [{n}])");
                assert!(err.contains(&needle), "{dtype:?}: {err}");
            }
        }
    }

    #[test]
    fn a_file_truncated_after_its_header_was_checked_is_a_read_error() {
        // What a concurrent truncation does to the read path: the data ends early. (With a map, the
        // same truncation is SIGBUS.)
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let values: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        std::fs::write(&path, file_of(Dtype::F32, &values)).unwrap();
        let file = File::open(&path).unwrap();
        let src = Source::File(&file);
        let header = Header::read(&src, file.metadata().unwrap().len()).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(200)
            .unwrap();
        let e = &header.tensors["t"];
        let err = read_f32(&src, "t", e, &mut vec![0.0; 1000])
            .unwrap_err()
            .to_string();
        assert!(err.contains("tensor `t`: cannot read bytes"), "{err}");
        assert!(
            err.contains("truncated or changed while xenc loaded it"),
            "{err}"
        );
    }

    #[test]
    fn unravel_gives_one_index_per_dimension() {
        assert_eq!(unravel(0, &[3, 4]), vec![0, 0]);
        assert_eq!(unravel(7, &[3, 4]), vec![1, 3]);
        assert_eq!(unravel(23, &[2, 3, 4]), vec![1, 2, 3]);
        assert_eq!(unravel(5, &[6]), vec![5]);
    }

    /// The loader reads the checkpoint and never maps it: a map of a file another process truncates
    /// kills the reader with SIGBUS. While the test checkpoint (90 MB) loads on one thread, this one
    /// watches the process's mappings for the file.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_checkpoint_is_read_never_mapped() {
        let Some(dir) = crate::tests::f32_test_model() else {
            eprintln!("skipped: no test checkpoint");
            return;
        };
        let cfg = ModelConfig::from_file(&dir.join("config.json")).unwrap();
        let path = dir.join("model.safetensors");
        let canonical = path.canonicalize().unwrap();
        let needle = canonical.to_str().unwrap().to_string();
        let done = std::sync::atomic::AtomicBool::new(false);
        let (mut polls, mut mapped) = (0, false);
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..3 {
                    BertWeights::from_file(&path, &cfg).unwrap();
                }
                done.store(true, std::sync::atomic::Ordering::Release);
            });
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
                mapped |= maps.contains(&needle);
                polls += 1;
            }
        });
        assert!(polls > 0);
        assert!(!mapped, "{needle} was mapped while loading");
    }
}
