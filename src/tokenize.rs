//! Text → token ids, exactly as transformers' fast tokenizer does it for a cross-encoder:
//! `[CLS] query [SEP] document [SEP]`, token types 0 then 1, truncated `longest_first` to `max_length`.
//!
//! The padding and truncation stored in tokenizer.json are switched off: checkpoints ship with things
//! like "truncate to 128, pad to 128" that are not what a reranker wants.

use std::path::Path;

use rayon::prelude::*;
use tokenizers::{
    Encoding, PostProcessor, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy,
};

use crate::error::{Error, Result};

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
pub struct Piece(Encoding);

pub struct PairTokenizer {
    /// Truncation `longest_first` to `max_length`, no padding: encodes whole pairs.
    pairs: Tokenizer,
    /// No truncation, no padding: encodes pieces that `pairs.post_process` later joins and truncates.
    pieces: Tokenizer,
    max_length: usize,
}

impl PairTokenizer {
    pub fn from_file(path: &Path, max_length: usize) -> Result<Self> {
        let load = || {
            Tokenizer::from_file(path)
                .map_err(|e| Error::Tokenizer(format!("{}: cannot load ({e})", path.display())))
        };
        let mut pairs = load()?;
        let mut pieces = load()?;
        pairs.with_padding(None);
        pieces.with_padding(None);
        pieces
            .with_truncation(None)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        pairs
            .with_truncation(Some(TruncationParams {
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let added = pairs
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(true));
        if max_length <= added {
            return Err(Error::Option(format!(
                "max_length {max_length} leaves no room for text: a pair already takes {added} special tokens"
            )));
        }
        Ok(PairTokenizer {
            pairs,
            pieces,
            max_length,
        })
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The vocabulary, token → id (added tokens included).
    pub fn vocab(&self) -> std::collections::HashMap<String, u32> {
        self.pairs.get_vocab(true)
    }

    /// Encodes one pair.
    pub fn encode_pair(&self, query: &str, document: &str) -> Result<EncodedPair> {
        self.pairs
            .encode_fast((query, document), true)
            .map(EncodedPair::from_encoding)
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// Encodes many pairs in parallel, in input order; an error names the pair's index.
    pub fn encode_pairs<Q, D>(&self, pairs: &[(Q, D)]) -> Result<Vec<EncodedPair>>
    where
        Q: AsRef<str> + Sync,
        D: AsRef<str> + Sync,
    {
        pairs
            .par_iter()
            .enumerate()
            .map(|(i, (q, d))| {
                self.encode_pair(q.as_ref(), d.as_ref())
                    .map_err(|e| Error::Tokenizer(format!("pair {i}: {e}")))
            })
            .collect()
    }

    /// Encodes a query or a document alone (no special tokens, no truncation).
    pub fn encode_piece(&self, text: &str) -> Result<Piece> {
        self.pieces
            .encode_fast(text, false)
            .map(Piece)
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// Joins two pieces into a pair: the same truncation and template as [`Self::encode_pair`] applied to
    /// already-tokenised text (the golden tests check the two agree).
    pub fn join(&self, query: &Piece, document: &Piece) -> Result<EncodedPair> {
        let mut doc = document.0.clone();
        // `encode_pair` encodes the document as the second sequence (type id 1); a piece was encoded as
        // a first one. The pair template overwrites type ids anyway, but a tokenizer without one would not.
        doc.set_type_ids(vec![1; doc.len()]);
        self.pairs
            .post_process(query.0.clone(), Some(doc), true)
            .map(EncodedPair::from_encoding)
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }
}
