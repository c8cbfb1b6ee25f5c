//! The engine: what every caller of the model shares. It takes pairs (as text, or already encoded) and
//! returns each pair's logits (one per label: [`Engine::num_labels`]) **by index**, whatever order it ran them in: it tokenises (on the GPU,
//! chunk by chunk, overlapped with the model), plans length-sorted batches under the token budget
//! ([`crate::batch`]), checks every pair as its batch is built, runs the backend and puts each logit back
//! where its pair came from. [`CrossEncoder`](crate::CrossEncoder), the HTTP server's batcher and the
//! Python binding all call it; none plans batches of its own.
//!
//! An error about one pair is an [`Error::Item`] naming its index in the slice given to the call; a
//! caller that merged several requests maps it back with [`Error::map_item_index`].
//!
//! ```no_run
//! use xenc::{CrossEncoder, Device};
//! let model = CrossEncoder::builder("models/ms-marco-MiniLM-L-6-v2").device(Device::Cpu).build()?;
//! let engine = model.engine();
//! let pairs = engine.tokenizer().encode_pairs(&[("what is rust", "A language."), ("q", "d")])?;
//! let logits = engine.logits_encoded(&pairs)?; // logits[i] belongs to pairs[i] (one label)
//! assert_eq!(logits.len(), 2 * engine.num_labels());
//! # Ok::<(), xenc::Error>(())
//! ```

use std::sync::Arc;

use crate::batch::{self, RaggedBatch};
use crate::config::ModelConfig;
use crate::cpu::CpuBackend;
use crate::cuda::CudaBackend;
use crate::error::{Error, Result};
use crate::profile::Profile;
use crate::tokenize::{self, EncodedPair, PairTokenizer};

/// Pairs of the first chunk tokenised before the GPU starts, when tokenisation overlaps the model.
const OVERLAP_FIRST_CHUNK: usize = 512;
/// Largest chunk of pairs tokenised while the GPU runs the previous one.
const OVERLAP_MAX_CHUNK: usize = 8192;

/// Consecutive ranges covering 0..n: OVERLAP_FIRST_CHUNK pairs, then each twice the last, up to
/// OVERLAP_MAX_CHUNK.
fn overlap_chunks(n: usize) -> Vec<std::ops::Range<usize>> {
    let (mut out, mut start, mut size) = (Vec::new(), 0, OVERLAP_FIRST_CHUNK);
    while start < n {
        let end = (start + size).min(n);
        out.push(start..end);
        start = end;
        size = (2 * size).min(OVERLAP_MAX_CHUNK);
    }
    out
}

/// Below this many bytes of documents `rerank` tokenises on the calling thread alone (~15 µs of work at
/// ~240 bytes/µs); from it on, helpers from rayon's pool join the calling thread as they wake
/// (`tokenize::share`). Helpers cost the calling thread one job injection and a copy of the text (a few
/// µs), and it never waits for one that has not started, so the threshold only keeps tiny reranks free
/// of that overhead. Measured (`benches/host_path.rs`, the 1 × 50 rerank's 38 KB right after 0.6 ms idle,
/// 16-core H100/H200 hosts, 2026-11-26 06:32–07:26 UTC): 134–166 µs with helpers, 148–215 µs with
/// `par_iter` (the caller asleep until the pool finishes), 205–273 µs on one thread; `xenc bench`'s
/// rerank tokenisation 0.09–0.11 ms (0.38–0.40 ms before, with `par_iter` and push-grown id vectors). On
/// the 2-core VM helpers were ~12% slower than one thread after idle and ~30% faster warm.
const SHARE_MIN_BYTES: usize = 4 * 1024;

/// How many helpers `rerank` asks for to tokenise `bytes` of documents on `cores` threads.
fn tokenize_helpers(bytes: usize, cores: usize) -> usize {
    if bytes < SHARE_MIN_BYTES {
        0
    } else {
        cores.saturating_sub(1)
    }
}

/// What helpers tokenising `rerank`'s documents own (they may outlive the call): the tokenizer, the
/// query's piece, and the documents' text end to end (`ends[i]` is where document i stops).
struct DocumentsToEncode {
    tokenizer: std::sync::Arc<PairTokenizer>,
    query: tokenize::Piece,
    text: String,
    ends: Vec<usize>,
}

impl DocumentsToEncode {
    fn encode(&self, i: usize) -> Result<EncodedPair> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        encode_document(
            &self.tokenizer,
            &self.query,
            &self.text[start..self.ends[i]],
            i,
        )
    }
}

/// Document `i` of a rerank joined to the query's piece; errors name the document.
fn encode_document(
    tok: &PairTokenizer,
    query: &tokenize::Piece,
    document: &str,
    i: usize,
) -> Result<EncodedPair> {
    let d = tok
        .encode_piece(document)
        .map_err(|e| e.at_item("document", i))?;
    tok.join(query, &d).map_err(|e| e.at_item("document", i))
}

/// Default token budget of one batch on the CPU: pairs are packed, sorted by length, up to this many
/// tokens.
pub const DEFAULT_TOKEN_BUDGET: usize = 16_384;

/// Default token budget of one batch on CUDA. Larger batches amortise each kernel's fixed cost
/// (`xenc bench --generate 2000`, model only, same run each): on an H100 (2026-11-26 06:33 UTC) 94,265
/// pairs/s at 8,192 tokens, 108,511 at 16,384, 116,530 at 32,768; on an H200 (06:56 UTC) 114,476 at
/// 16,384, 126,912 at 32,768, 131,352 at 65,536 (end to end 101,232 / 111,918 / 113,753). Device memory
/// in use grows with it: 823 / 983 / 1,271 MiB on that H200, CUDA context included.
pub const DEFAULT_CUDA_TOKEN_BUDGET: usize = 65_536;

/// What runs the model.
// One per loaded model: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Backend {
    Cpu(CpuBackend),
    Cuda(CudaBackend),
}

/// A loaded model: configuration, tokenizer and backend, and the scheduling between them. Inference takes
/// `&self`; an `Engine` is `Send + Sync` (batches from several threads run one after another on the GPU
/// and share the CPU pool).
pub struct Engine {
    config: ModelConfig,
    tokenizer: Arc<PairTokenizer>,
    backend: Backend,
    token_budget: usize,
}

impl Engine {
    pub(crate) fn new(
        config: ModelConfig,
        tokenizer: PairTokenizer,
        backend: Backend,
        token_budget: usize,
    ) -> Self {
        Engine {
            config,
            tokenizer: Arc::new(tokenizer),
            backend,
            token_budget,
        }
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn tokenizer(&self) -> &PairTokenizer {
        &self.tokenizer
    }

    /// Tokens per pair after truncation.
    pub fn max_length(&self) -> usize {
        self.tokenizer.max_length()
    }

    /// Logits per pair: the classifier's labels (1 for a reranker). Every `logits*` call returns
    /// `num_labels` logits per pair, pair after pair: pair i's are `[i * num_labels..(i + 1) * num_labels]`.
    pub fn num_labels(&self) -> usize {
        self.config.num_labels
    }

    /// Most tokens in one batch.
    pub fn token_budget(&self) -> usize {
        self.token_budget
    }

    /// Whether the model runs on a GPU.
    pub fn on_gpu(&self) -> bool {
        matches!(self.backend, Backend::Cuda(_))
    }

    /// What runs the model, e.g. "cpu (2 threads)" or "cuda:0 NVIDIA H100 80GB HBM3 (sm_90)".
    pub fn device_name(&self) -> String {
        match &self.backend {
            Backend::Cpu(b) => format!("cpu ({} threads)", b.threads()),
            Backend::Cuda(b) => b.describe(),
        }
    }

    /// On a GPU, bytes of device memory in use (total − free); None on the CPU.
    pub fn device_memory_in_use(&self) -> Option<usize> {
        match &self.backend {
            Backend::Cpu(_) => None,
            Backend::Cuda(b) => b.device_memory_in_use().ok(),
        }
    }

    /// Stage times of the forward passes since the last call; None unless built with profiling.
    pub fn take_profile(&self) -> Option<Profile> {
        match &self.backend {
            Backend::Cpu(b) => b.take_profile(),
            Backend::Cuda(b) => b.take_profile(),
        }
    }

    pub(crate) fn set_profiling(&self, on: bool) {
        match &self.backend {
            Backend::Cpu(b) => b.set_profiling(on),
            Backend::Cuda(b) => b.set_profiling(on),
        }
    }

    /// Raw logits of each pair of text ([`Self::num_labels`] a pair), in input order (tokenised here; on the GPU chunk by chunk, each
    /// tokenised while the one before runs). Errors name the pair's index in `pairs`.
    pub fn logits<Q, D>(&self, pairs: &[(Q, D)]) -> Result<Vec<f32>>
    where
        Q: AsRef<str> + Sync,
        D: AsRef<str> + Sync,
    {
        if matches!(self.backend, Backend::Cpu(_)) || pairs.len() <= OVERLAP_FIRST_CHUNK {
            let encoded = self.tokenizer.encode_pairs(pairs)?;
            return self.logits_encoded(&encoded);
        }
        // On the GPU, tokenising (all cores) overlaps the model: chunk c + 1 is tokenised on another
        // thread while chunk c runs. Chunks grow from OVERLAP_FIRST_CHUNK (little to wait for before the
        // GPU starts) to OVERLAP_MAX_CHUNK (batches packed from many lengths).
        self.logits_overlapped(pairs, &overlap_chunks(pairs.len()))
    }

    /// [`Self::logits`] chunk by chunk, each chunk tokenised while the one before runs; `chunks` cover
    /// `pairs` in order. Errors name the pair's index in `pairs`.
    fn logits_overlapped<Q, D>(
        &self,
        pairs: &[(Q, D)],
        chunks: &[std::ops::Range<usize>],
    ) -> Result<Vec<f32>>
    where
        Q: AsRef<str> + Sync,
        D: AsRef<str> + Sync,
    {
        let mut out = Vec::with_capacity(pairs.len() * self.config.num_labels);
        std::thread::scope(|s| -> Result<()> {
            let tokenise = |r: std::ops::Range<usize>| {
                s.spawn(move || self.tokenizer.encode_pairs_from(&pairs[r.clone()], r.start))
            };
            let mut next = Some(tokenise(chunks[0].clone()));
            for c in 0..chunks.len() {
                let encoded = next
                    .take()
                    .expect("a chunk is always being tokenised")
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))?;
                if let Some(r) = chunks.get(c + 1) {
                    next = Some(tokenise(r.clone()));
                }
                let start = chunks[c].start;
                out.extend(
                    self.logits_encoded(&encoded)
                        .map_err(|e| e.item_offset(start))?,
                );
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Logits of already-encoded pairs ([`Self::num_labels`] a pair), in input order: batches are planned
    /// by length under the token budget and the results put back where each pair came from. If a pair
    /// cannot be taken by the model (see [`batch::check_pair`]), or a logit of it is not finite, the
    /// error is an [`Error::Item`] naming the first such pair in `pairs`.
    pub fn logits_encoded(&self, pairs: &[EncodedPair]) -> Result<Vec<f32>> {
        let lengths: Vec<usize> = pairs.iter().map(EncodedPair::len).collect();
        let plan = batch::plan_batches(&lengths, self.token_budget);
        // Each batch's pairs are checked as it is built (on the GPU, while the previous batch runs); a
        // batch of checked pairs is valid by construction. Only when one fails are all pairs scanned, so
        // the error names the first bad one in input order, not the first in length order.
        let check = |p: &EncodedPair| batch::check_pair(p, &self.config);
        let make = |k: usize| -> Result<RaggedBatch> {
            if plan[k].iter().any(|&i| check(&pairs[i]).is_err()) {
                let (index, message) = (pairs.iter().enumerate())
                    .find_map(|(i, p)| check(p).err().map(|m| (i, m)))
                    .expect("a pair of this batch failed the check");
                return Err(Error::Item {
                    what: "pair",
                    index,
                    message,
                });
            }
            let b = RaggedBatch::from_pairs(plan[k].iter().map(|&i| &pairs[i]));
            debug_assert!(b.validate(&self.config).is_ok());
            Ok(b)
        };
        let labels = self.config.num_labels;
        let mut out = vec![0f32; pairs.len() * labels];
        let mut put = |k: usize, logits: Vec<f32>| {
            for (&i, l) in plan[k].iter().zip(logits.chunks_exact(labels)) {
                out[i * labels..(i + 1) * labels].copy_from_slice(l);
            }
        };
        match &self.backend {
            Backend::Cpu(cpu) => {
                for k in 0..plan.len() {
                    put(k, cpu.forward(&make(k)?));
                }
            }
            // The GPU runs batch k while the host builds and uploads batch k + 1.
            Backend::Cuda(gpu) => gpu.forward_batches(plan.len(), make, put)?,
        }
        // A NaN or an infinity is not a score: never hand one on (weights are checked for non-finite
        // values at load, so this is an overflow inside the model).
        if let Some(at) = out.iter().position(|x| !x.is_finite()) {
            return Err(Error::Item {
                what: "pair",
                index: at / labels,
                message: format!(
                    "the model's logit is {} (not finite: the activations overflowed)",
                    out[at]
                ),
            });
        }
        Ok(out)
    }

    /// `rerank`'s tokenisation: `query` encoded once and joined with each document, in input order (the
    /// same pairs as `encode_pair`). A query the tokenizer or the model cannot take is an
    /// [`Error::Item`] with `what` "query"; a document's, one with "document" and its index. A few short documents are tokenised on the calling thread alone,
    /// more with helpers from rayon's pool joining it (from a few KiB of text on).
    pub fn encode_documents<D>(&self, query: &str, documents: &[D]) -> Result<Vec<EncodedPair>>
    where
        D: AsRef<str>,
    {
        let bytes = documents.iter().map(|d| d.as_ref().len()).sum();
        let helpers = tokenize_helpers(bytes, self.tokenizer.threads());
        self.encode_documents_with(query, documents, helpers)
    }

    /// [`Self::encode_documents`] with up to `helpers` helpers (0: the calling thread alone).
    fn encode_documents_with<D>(
        &self,
        query: &str,
        documents: &[D],
        helpers: usize,
    ) -> Result<Vec<EncodedPair>>
    where
        D: AsRef<str>,
    {
        // The query's own errors name it, not the first document it would be joined with.
        let q = self
            .tokenizer
            .encode_piece(query)
            .map_err(|e| e.at_item("query", 0))?;
        if let Some(message) = batch::check_ids("token id", q.ids(), self.config.vocab_size) {
            return Err(Error::Item {
                what: "query",
                index: 0,
                message,
            });
        }
        if helpers == 0 || documents.len() < 2 {
            let encode = |(i, d): (usize, &D)| encode_document(&self.tokenizer, &q, d.as_ref(), i);
            return documents.iter().enumerate().map(encode).collect();
        }
        let mut text = String::with_capacity(documents.iter().map(|d| d.as_ref().len()).sum());
        let ends = documents
            .iter()
            .map(|d| {
                text.push_str(d.as_ref());
                text.len()
            })
            .collect();
        let ctx = DocumentsToEncode {
            tokenizer: self.tokenizer.clone(),
            query: q,
            text,
            ends,
        };
        let n = documents.len();
        let pool = self.tokenizer.pool();
        tokenize::share::map_with_helpers(pool, ctx, n, helpers, DocumentsToEncode::encode)
            .into_iter()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::tests::f32_test_model;

    #[test]
    fn rerank_asks_for_helpers_from_a_few_kib_on() {
        use super::{tokenize_helpers as helpers, SHARE_MIN_BYTES as S};
        assert_eq!(helpers(usize::MAX, 1), 0);
        assert_eq!(helpers(usize::MAX, 0), 0);
        assert_eq!(helpers(S - 1, 16), 0);
        assert_eq!(helpers(S, 16), 15);
        // The 1 x 50 rerank of `xenc bench` (38,064 bytes).
        assert_eq!(helpers(38_064, 2), 1);
    }

    /// Both ways of `encode_documents` give `encode_pair`'s pairs, in order (needs the test checkpoint,
    /// `bash scripts/fixtures.sh`; skipped without it).
    #[test]
    fn rerank_tokenisation_is_the_same_on_the_calling_thread_and_the_pool() {
        let Some(dir) = f32_test_model() else {
            eprintln!("skipped: no test checkpoint");
            return;
        };
        let model = crate::CrossEncoder::builder(dir)
            .device(crate::Device::Cpu)
            .build()
            .unwrap();
        let tok = model.tokenizer();
        let pairs = crate::bench::generate_with(tok, 60, 3);
        let query = pairs[0].0.as_str();
        let docs: Vec<&str> = pairs.iter().map(|(_, d)| d.as_str()).collect();
        let want: Vec<_> = docs
            .iter()
            .map(|d| tok.encode_pair(query, d).unwrap())
            .collect();
        for helpers in [0, 1, 3, 15] {
            let got = model
                .engine()
                .encode_documents_with(query, &docs, helpers)
                .unwrap();
            assert_eq!(got, want, "helpers: {helpers}");
        }
        assert_eq!(model.encode_documents(query, &docs).unwrap(), want);
        assert!(model.encode_documents(query, &[""; 0]).unwrap().is_empty());
    }

    /// The token budget a CPU model gets by default and when set (needs the test checkpoint; skipped
    /// without it).
    #[test]
    fn token_budget_defaults_by_device_and_follows_the_builder() {
        let Some(dir) = f32_test_model() else {
            eprintln!("skipped: no test checkpoint");
            return;
        };
        let cpu = || crate::CrossEncoder::builder(&dir).device(crate::Device::Cpu);
        assert_eq!(
            cpu().build().unwrap().token_budget(),
            super::DEFAULT_TOKEN_BUDGET
        );
        assert_eq!(
            cpu().token_budget(3000).build().unwrap().token_budget(),
            3000
        );
        let err = cpu().token_budget(100).build().err().unwrap().to_string();
        assert!(err.contains("token budget 100"), "{err}");
    }

    /// The chunked path the GPU takes (run here on the CPU) names a pair the model rejects by its index
    /// in the whole input, as the one-call path does (needs the test checkpoint; skipped without it).
    #[test]
    fn chunked_scoring_names_a_bad_pair_by_its_input_index() {
        let Some(src) = f32_test_model() else {
            eprintln!("skipped: no test checkpoint");
            return;
        };
        // The tokenizer gains a token (id 30522) that the model's 30,522-row vocabulary lacks.
        let d = tempfile::tempdir().unwrap();
        for f in ["config.json", "model.safetensors", "tokenizer_config.json"] {
            let (from, to) = (src.join(f), d.path().join(f));
            std::fs::hard_link(&from, &to)
                .or_else(|_| std::fs::copy(&from, &to).map(drop))
                .unwrap();
        }
        let text = std::fs::read_to_string(src.join("tokenizer.json")).unwrap();
        let mut tok: serde_json::Value = serde_json::from_str(&text).unwrap();
        let added = tok["added_tokens"].as_array_mut().unwrap();
        let mut new = added[0].clone();
        new["id"] = 30522.into();
        new["content"] = "[NEW]".into();
        added.push(new);
        std::fs::write(d.path().join("tokenizer.json"), tok.to_string()).unwrap();
        let model = crate::CrossEncoder::builder(d.path())
            .device(crate::Device::Cpu)
            .build()
            .unwrap();
        let pairs: Vec<(&str, &str)> = (0..120)
            .map(|i| ("q", if i == 97 { "a [NEW] b" } else { "a b" }))
            .collect();
        let index = |r: crate::Result<Vec<f32>>| match r {
            Err(crate::Error::Item {
                what: "pair",
                index,
                message,
            }) => {
                assert!(message.contains("token id 30522"), "{message}");
                index
            }
            other => panic!("expected an item error, got {other:?}"),
        };
        assert_eq!(index(model.logits(&pairs)), 97);
        assert_eq!(
            index(
                model
                    .engine()
                    .logits_overlapped(&pairs, &[0..40, 40..80, 80..120])
            ),
            97
        );
        assert_eq!(
            index(
                model
                    .engine()
                    .logits_overlapped(&pairs, &[0..100, 100..120])
            ),
            97
        );
    }

    #[test]
    fn overlap_chunks_cover_the_input_in_order_and_grow() {
        for n in [0, 1, 511, 512, 513, 5000, 100_000] {
            let c = super::overlap_chunks(n);
            assert_eq!(c.first().map_or(0, |r| r.start), 0);
            assert_eq!(c.last().map_or(0, |r| r.end), n);
            assert!(c.windows(2).all(|w| w[0].end == w[1].start));
            assert!(c
                .iter()
                .all(|r| !r.is_empty() && r.len() <= super::OVERLAP_MAX_CHUNK));
        }
        let sizes: Vec<usize> = super::overlap_chunks(40_000)
            .iter()
            .map(|r| r.len())
            .collect();
        assert_eq!(sizes, [512, 1024, 2048, 4096, 8192, 8192, 8192, 7744]);
    }
}
