//! Text → token ids, exactly as transformers' fast tokenizer does it for a cross-encoder:
//! `[CLS] query [SEP] document [SEP]`, token types 0 then 1, truncated `longest_first` to `max_length`.
//!
//! The padding and truncation stored in tokenizer.json are switched off: checkpoints ship with things
//! like "truncate to 128, pad to 128" that are not what a reranker wants.
//!
//! Two engines give the same ids:
//! - `xenc-wordpiece` (`wordpiece.rs`): xenc's own BERT WordPiece tokenizer, some 12-40x faster. It is
//!   used whenever tokenizer.json has exactly the shape it implements (`BertNormalizer`,
//!   `BertPreTokenizer`, `WordPiece`, a `[CLS] $A [SEP] $B [SEP]` template, added tokens without
//!   `single_word`); tests/tokenizer_parity.rs checks it against the other engine.
//! - `hf-tokenizers`: Hugging Face `tokenizers`, for every other tokenizer.json, and the reference.
//!
//! [`PairTokenizer::engine`] says which one runs and [`PairTokenizer::fallback_reason`] why the fast
//! one was not used. [`Engine`] chooses ([`crate::TokenizerOptions`]; the CLI's `--tokenizer` or
//! `XENC_TOKENIZER`): `auto` (the fast engine where it fits), `hf` (always Hugging Face `tokenizers`),
//! `xenc` (the fast engine or an error saying why not).

pub(crate) mod share;
mod wordpiece;

use std::path::Path;

use rayon::prelude::*;
use tokenizers::{
    Encoding, PostProcessor, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy,
};

use crate::error::{Error, Result};
use wordpiece::WordPiece;

/// One encoded (query, document) pair, unpadded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedPair {
    pub input_ids: Vec<u32>,
    pub token_type_ids: Vec<u32>,
}

impl EncodedPair {
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }

    fn from_encoding(e: Encoding) -> Self {
        EncodedPair {
            input_ids: e.get_ids().to_vec(),
            token_type_ids: e.get_type_ids().to_vec(),
        }
    }
}

/// A piece of text (a query or a document) encoded alone, without special tokens or truncation, ready
/// to be joined into pairs; lets `rerank` tokenise its query once.
#[derive(Debug, Clone)]
pub struct Piece(PieceRepr);

#[derive(Debug, Clone)]
enum PieceRepr {
    Ids(Vec<u32>),
    Hf(Box<Encoding>),
}

impl Piece {
    /// The token ids of the text.
    pub fn ids(&self) -> &[u32] {
        match &self.0 {
            PieceRepr::Ids(ids) => ids,
            PieceRepr::Hf(e) => e.get_ids(),
        }
    }

    pub fn len(&self) -> usize {
        self.ids().len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids().is_empty()
    }
}

pub use crate::options::TokenizerEngine as Engine;

/// The `model_max_length` of a checkpoint's tokenizer_config.json (the truncation length transformers
/// and sentence-transformers apply by default), or None when the file or the field is absent or the
/// field is not a whole number that fits (transformers writes 1e30 for "no limit").
pub fn model_max_length(tokenizer_config: &Path) -> Result<Option<usize>> {
    let text = match std::fs::read_to_string(tokenizer_config) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::tokenizer(format!(
                "{}: cannot read ({e})",
                tokenizer_config.display()
            ))
            .with_source(e))
        }
    };
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Error::tokenizer(format!(
            "{}: not valid JSON ({e})",
            tokenizer_config.display()
        ))
        .with_source(e)
    })?;
    Ok(json
        .get("model_max_length")
        .and_then(serde_json::Value::as_u64)
        .and_then(|n| usize::try_from(n).ok()))
}

/// The default tokens per pair: tokenizer_config.json's `model_max_length` where the model's positions
/// cover it (as sentence-transformers' CrossEncoder truncates), else `min(512, positions)`, where
/// `positions` is what a pair may hold ([`crate::ModelConfig::positions`]: `max_position_embeddings`
/// less RoBERTa's offset).
pub fn default_max_length(model_max_length: Option<usize>, positions: usize) -> usize {
    match model_max_length {
        Some(n) if (1..=positions).contains(&n) => n,
        _ => 512.min(positions),
    }
}

pub struct PairTokenizer {
    /// Truncation `longest_first` to `max_length`, no padding: encodes whole pairs (HF engine), gives
    /// the vocabulary (both).
    pairs: Tokenizer,
    /// No truncation, no padding: encodes pieces that `pairs.post_process` later joins and truncates
    /// (HF engine only).
    pieces: Option<Tokenizer>,
    /// The fast engine, when tokenizer.json fits it.
    fast: Option<WordPiece>,
    /// Why `fast` is None.
    fallback: Option<String>,
    max_length: usize,
    /// The threads `encode_pairs` (and `rerank`'s helpers) run on: the model's pool when the caller
    /// asked for a thread count ([`Self::with_pool`]), else the caller's current pool (rayon's global
    /// one outside any).
    pool: Option<std::sync::Arc<rayon::ThreadPool>>,
    /// Special tokens the pair template adds (3 for BERT's [CLS] A [SEP] B [SEP]).
    specials: usize,
    /// False: every token type is 0 ([`Self::with_token_types`]).
    token_types: bool,
}

impl PairTokenizer {
    /// Loads tokenizer.json with the [`Engine::Auto`] engine (see the module docs).
    pub fn from_file(path: &Path, max_length: usize) -> Result<Self> {
        Self::from_file_with(path, max_length, Engine::Auto)
    }

    /// Loads tokenizer.json with the given engine choice (the environment is not read).
    pub fn from_file_with(path: &Path, max_length: usize, engine: Engine) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::tokenizer(format!("{}: cannot load ({e})", path.display())).with_source(e)
        })?;
        let mut pairs: Tokenizer = text.parse().map_err(|e| {
            Error::tokenizer(format!("{}: cannot load ({e})", path.display())).with_source(e)
        })?;
        if let tokenizers::ModelWrapper::WordPiece(wp) = pairs.get_model() {
            // Without it every word outside the vocabulary fails to encode, which would be reported
            // as a bad input line rather than the checkpoint's fault.
            if tokenizers::Model::token_to_id(wp, &wp.unk_token).is_none() {
                return Err(Error::tokenizer(format!(
                    "{}: the WordPiece unk_token {:?} is not in the vocabulary",
                    path.display(),
                    wp.unk_token
                )));
            }
        }
        pairs.with_padding(None);
        pairs
            .with_truncation(Some(TruncationParams {
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| Error::tokenizer(e.to_string()).with_source(e))?;
        let added = pairs
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(true));
        if max_length <= added {
            return Err(Error::Option(format!(
                "max_length {max_length} leaves no room for text: a pair already takes {added} special tokens"
            )));
        }

        let (fast, fallback) = match engine {
            Engine::Hf => (None, Some("the hf engine was asked for".to_string())),
            Engine::Auto | Engine::Xenc => {
                let built = serde_json::from_str(&text)
                    .map_err(|e| e.to_string())
                    .and_then(|json| WordPiece::from_json(&json, &pairs))
                    .and_then(|wp| {
                        if wp.added_pair() == added {
                            Ok(wp)
                        } else {
                            Err(format!(
                                "the template adds {} tokens, tokenizers counts {added}",
                                wp.added_pair()
                            ))
                        }
                    });
                match built {
                    Ok(wp) => (Some(wp), None),
                    Err(why) if engine == Engine::Xenc => {
                        return Err(Error::tokenizer(format!(
                            "{}: the xenc tokenizer engine was asked for, but xenc's WordPiece engine does not support it: {why}",
                            path.display()
                        )))
                    }
                    Err(why) => (None, Some(why)),
                }
            }
        };
        let pieces = if fast.is_some() {
            None
        } else {
            let mut pieces = pairs.clone();
            pieces
                .with_truncation(None)
                .map_err(|e| Error::tokenizer(e.to_string()).with_source(e))?;
            Some(pieces)
        };
        Ok(PairTokenizer {
            pairs,
            pieces,
            fast,
            fallback,
            max_length,
            pool: None,
            specials: added,
            token_types: true,
        })
    }

    /// Whether pairs keep the tokenizer's token type ids (true, BERT) or have every type 0 (a RoBERTa
    /// model, whose tokenizer gives transformers no `token_type_ids`; see [`crate::Family`]).
    pub fn with_token_types(mut self, keep: bool) -> Self {
        self.token_types = keep;
        self
    }

    /// The pair as the model reads it: type ids zeroed when the model has no token types.
    fn typed(&self, mut pair: EncodedPair) -> EncodedPair {
        if !self.token_types {
            pair.token_type_ids.fill(0);
        }
        pair
    }

    /// Runs parallel encoding on `pool` (None: the caller's current pool, rayon's global one outside
    /// any).
    pub fn with_pool(mut self, pool: Option<std::sync::Arc<rayon::ThreadPool>>) -> Self {
        self.pool = pool;
        self
    }

    /// The pool parallel encoding runs on, when not rayon's global one.
    pub fn pool(&self) -> Option<&rayon::ThreadPool> {
        self.pool.as_deref()
    }

    /// Threads parallel encoding uses.
    pub fn threads(&self) -> usize {
        self.pool
            .as_ref()
            .map_or_else(rayon::current_num_threads, |p| p.current_num_threads())
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Special tokens a pair's template adds around the two texts: 3 for BERT's
    /// `[CLS] A [SEP] B [SEP]`, 4 for RoBERTa's `<s> A </s></s> B </s>`.
    pub fn special_tokens_per_pair(&self) -> usize {
        self.specials
    }

    /// The engine that encodes: `"xenc-wordpiece"` or `"hf-tokenizers"`.
    pub fn engine(&self) -> &'static str {
        if self.fast.is_some() {
            "xenc-wordpiece"
        } else {
            "hf-tokenizers"
        }
    }

    /// Why xenc's WordPiece engine is not used (None when it is).
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// The vocabulary, token → id (added tokens included).
    pub fn vocab(&self) -> std::collections::HashMap<String, u32> {
        self.pairs.get_vocab(true)
    }

    /// Encodes one pair.
    pub fn encode_pair(&self, query: &str, document: &str) -> Result<EncodedPair> {
        if let Some(wp) = &self.fast {
            return Ok(self.typed(wp.encode_pair(query, document, self.max_length)));
        }
        self.pairs
            .encode_fast((query, document), true)
            .map(|e| self.typed(EncodedPair::from_encoding(e)))
            .map_err(|e| Error::tokenizer(e.to_string()).with_source(e))
    }

    /// Encodes many pairs in parallel, in input order; an error names the pair's index.
    pub fn encode_pairs<Q, D>(&self, pairs: &[(Q, D)]) -> Result<Vec<EncodedPair>>
    where
        Q: AsRef<str> + Sync,
        D: AsRef<str> + Sync,
    {
        self.encode_pairs_from(pairs, 0)
    }

    /// [`Self::encode_pairs`] for a slice that starts at pair `first` of a longer input: errors name the
    /// pair's index in that input.
    pub fn encode_pairs_from<Q, D>(
        &self,
        pairs: &[(Q, D)],
        first: usize,
    ) -> Result<Vec<EncodedPair>>
    where
        Q: AsRef<str> + Sync,
        D: AsRef<str> + Sync,
    {
        // Every pair's result, then the first error in input order (rayon's own collect into a
        // Result stops at whichever error a thread meets first).
        let encode = || -> Vec<Result<EncodedPair>> {
            pairs
                .par_iter()
                .enumerate()
                .map(|(i, (q, d))| {
                    self.encode_pair(q.as_ref(), d.as_ref())
                        .map_err(|e| e.at_item("pair", first + i))
                })
                .collect()
        };
        self.in_pool(encode).into_iter().collect()
    }

    /// Runs `f` on the tokenizer's pool (see [`Self::with_pool`]); without one, on the calling thread
    /// (rayon work inside `f` then goes to the caller's current pool: the global one outside any).
    pub fn in_pool<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    /// Encodes a query or a document alone (no special tokens, no truncation).
    pub fn encode_piece(&self, text: &str) -> Result<Piece> {
        if let Some(wp) = &self.fast {
            return Ok(Piece(PieceRepr::Ids(wp.encode_piece(text))));
        }
        self.pieces
            .as_ref()
            .expect("the HF engine keeps a pieces tokenizer")
            .encode_fast(text, false)
            .map(|e| Piece(PieceRepr::Hf(Box::new(e))))
            .map_err(|e| Error::tokenizer(e.to_string()).with_source(e))
    }

    /// Joins two pieces into a pair: the same truncation and template as [`Self::encode_pair`] applied to
    /// already-tokenised text (the golden tests check the two agree).
    pub fn join(&self, query: &Piece, document: &Piece) -> Result<EncodedPair> {
        if let Some(wp) = &self.fast {
            return Ok(self.typed(wp.join(query.ids(), document.ids(), self.max_length)));
        }
        let (PieceRepr::Hf(q), PieceRepr::Hf(d)) = (&query.0, &document.0) else {
            return Err(Error::tokenizer(
                "join: pieces encoded by another tokenizer engine",
            ));
        };
        let mut doc = Encoding::clone(d);
        // `encode_pair` encodes the document as the second sequence (type id 1); a piece was encoded as
        // a first one. The pair template overwrites type ids anyway, but a tokenizer without one would not.
        doc.set_type_ids(vec![1; doc.len()]);
        self.pairs
            .post_process(Encoding::clone(q), Some(doc), true)
            .map(|e| self.typed(EncodedPair::from_encoding(e)))
            .map_err(|e| Error::tokenizer(e.to_string()).with_source(e))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn in_pool_runs_on_the_tokenizers_pool() {
        let Some(dir) = crate::tests::f32_test_model() else {
            eprintln!("skipped: no test checkpoint");
            return;
        };
        let tok = super::PairTokenizer::from_file(&dir.join("tokenizer.json"), 64).unwrap();
        assert_eq!(tok.in_pool(rayon::current_thread_index), None);
        let pool = std::sync::Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap(),
        );
        let tok = tok.with_pool(Some(pool.clone()));
        assert_eq!(tok.threads(), 1);
        assert!(tok.in_pool(|| pool.current_thread_index()).is_some());
    }

    #[test]
    fn default_max_length_follows_model_max_length_within_the_positions() {
        use super::default_max_length as d;
        assert_eq!(d(None, 512), 512);
        assert_eq!(d(None, 2048), 512);
        assert_eq!(d(None, 128), 128);
        assert_eq!(d(Some(128), 512), 128);
        assert_eq!(d(Some(512), 512), 512);
        assert_eq!(d(Some(1024), 2048), 1024);
        assert_eq!(d(Some(1024), 512), 512); // beyond the positions: the positions' limit
        assert_eq!(d(Some(0), 512), 512);
    }

    #[test]
    fn model_max_length_reads_tokenizer_config() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokenizer_config.json");
        let read = |text: &str| {
            std::fs::write(&p, text).unwrap();
            super::model_max_length(&p)
        };
        assert_eq!(read(r#"{"model_max_length": 256}"#).unwrap(), Some(256));
        // transformers' "no limit" (int(1e30)) and a missing field: none.
        let huge = r#"{"model_max_length": 1000000000000000019884624838656}"#;
        assert_eq!(read(huge).unwrap(), None);
        assert_eq!(read(r#"{"do_lower_case": true}"#).unwrap(), None);
        let err = read("{not json").unwrap_err().to_string();
        assert!(
            err.contains("tokenizer_config.json: not valid JSON"),
            "{err}"
        );
        std::fs::remove_file(&p).unwrap();
        assert_eq!(super::model_max_length(&p).unwrap(), None);
    }
}
