//! Encoded pairs → ragged batches. Pairs are concatenated without padding: a batch is flat token arrays
//! plus `cu_seqlens` (n + 1 offsets from 0). Both backends consume this one struct.
//!
//! Planning sorts pairs by length and packs them into batches under a token budget, so a batch's pairs
//! have similar lengths; scores are put back in input order by the caller through the plan's indices.

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::tokenize::EncodedPair;

/// Queries an attention call computes over a batch: all of them, or only each pair's `[CLS]` (the last
/// layer needs nothing else once K and V are formed). Both backends' attention takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queries {
    /// Output row of query q of pair p: `cu_seqlens[p] + q` (T rows).
    All,
    /// Output row of pair p's `[CLS]` query: `p` (n rows).
    ClsOnly,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaggedBatch {
    /// `[T]` token ids of all pairs, concatenated.
    pub input_ids: Vec<u32>,
    /// `[T]` 0 for the query segment, 1 for the document segment.
    pub token_type_ids: Vec<u32>,
    /// `[T]` positions, restarting at 0 for every pair.
    pub position_ids: Vec<u32>,
    /// `[n + 1]` pair i is tokens `cu_seqlens[i] .. cu_seqlens[i + 1]`.
    pub cu_seqlens: Vec<u32>,
    /// The longest pair, in tokens.
    pub max_seqlen: usize,
}

impl RaggedBatch {
    /// Concatenates `pairs` in order. The iterator is walked twice: once to size every array exactly
    /// (growing them pair by pair reallocated and copied each ~13 times for a 5k-token batch), once to
    /// fill them.
    pub fn from_pairs<'a, I>(pairs: I) -> Self
    where
        I: IntoIterator<Item = &'a EncodedPair>,
        I::IntoIter: Clone,
    {
        let pairs = pairs.into_iter();
        let (n, t) = pairs.clone().fold((0, 0), |(n, t), p| (n + 1, t + p.len()));
        let mut b = RaggedBatch {
            input_ids: Vec::with_capacity(t),
            token_type_ids: Vec::with_capacity(t),
            position_ids: Vec::with_capacity(t),
            cu_seqlens: Vec::with_capacity(n + 1),
            max_seqlen: 0,
        };
        b.cu_seqlens.push(0);
        for p in pairs {
            b.input_ids.extend_from_slice(&p.input_ids);
            b.token_type_ids.extend_from_slice(&p.token_type_ids);
            b.position_ids.extend(0..p.len() as u32);
            b.cu_seqlens.push(b.input_ids.len() as u32);
            b.max_seqlen = b.max_seqlen.max(p.len());
        }
        b
    }

    pub fn num_pairs(&self) -> usize {
        self.cu_seqlens.len() - 1
    }

    pub fn num_tokens(&self) -> usize {
        self.input_ids.len()
    }

    /// Rows of each pair's first token (`[CLS]`): `cu_seqlens[..n]`.
    pub fn cls_rows(&self) -> &[u32] {
        &self.cu_seqlens[..self.num_pairs()]
    }

    /// Checks everything a forward pass indexes with, so no backend can read out of bounds.
    pub fn validate(&self, cfg: &ModelConfig) -> Result<()> {
        let t = self.num_tokens();
        if self.token_type_ids.len() != t || self.position_ids.len() != t {
            return Err(Error::Input("ragged batch arrays differ in length".into()));
        }
        if self.cu_seqlens.first() != Some(&0) || *self.cu_seqlens.last().unwrap() as usize != t {
            return Err(Error::Input(
                "cu_seqlens must run from 0 to the token count".into(),
            ));
        }
        for (i, w) in self.cu_seqlens.windows(2).enumerate() {
            let len = w[1].saturating_sub(w[0]) as usize;
            if w[1] <= w[0] || len > cfg.positions() {
                return Err(Error::Input(format!(
                    "pair {i} has {} tokens; each pair needs 1 to {} (the model's positions)",
                    w[1] as i64 - w[0] as i64,
                    cfg.positions()
                )));
            }
        }
        let check = |what: &str, ids: &[u32], limit: usize| match check_ids(what, ids, limit) {
            Some(m) => Err(Error::Input(m)),
            None => Ok(()),
        };
        check("token id", &self.input_ids, cfg.vocab_size)?;
        check("token type", &self.token_type_ids, cfg.type_vocab_size)?;
        check("position", &self.position_ids, cfg.positions())
    }
}

/// What is wrong with the first of `ids` (token ids, types or positions: `what`) that is `>= limit`, if
/// one is. A fold without early exit vectorises (~4x faster than `position` on a 5k-token batch); only
/// a slice that fails looks for where.
pub fn check_ids(what: &str, ids: &[u32], limit: usize) -> Option<String> {
    let lim = u32::try_from(limit).ok()?;
    if !ids.iter().fold(false, |bad, &x| bad | (x >= lim)) {
        return None;
    }
    let k = ids.iter().position(|&x| x >= lim)?;
    Some(format!(
        "{what} {} at token {k} is out of range for the model (limit {limit}); do the tokenizer and the model match?",
        ids[k]
    ))
}

/// Checks one encoded pair against the model: as many token types as ids, 1 to
/// `max_position_embeddings` tokens, ids and types inside their vocabularies. A batch that
/// [`RaggedBatch::from_pairs`] builds from checked pairs passes [`RaggedBatch::validate`]. The error
/// says what is wrong, not which pair (the caller knows that).
pub fn check_pair(p: &EncodedPair, cfg: &ModelConfig) -> std::result::Result<(), String> {
    let (n, types) = (p.input_ids.len(), p.token_type_ids.len());
    if types != n {
        return Err(format!("{n} token ids but {types} token types"));
    }
    if n == 0 || n > cfg.positions() {
        return Err(format!(
            "{n} tokens; a pair needs 1 to {} (the model's positions)",
            cfg.positions()
        ));
    }
    let check = |what: &str, ids: &[u32], limit: usize| match check_ids(what, ids, limit) {
        Some(m) => Err(m),
        None => Ok(()),
    };
    check("token id", &p.input_ids, cfg.vocab_size)?;
    check("token type", &p.token_type_ids, cfg.type_vocab_size)
}

/// Sorts pair indices by length and packs them greedily into batches of at most `token_budget` tokens
/// (a pair longer than the budget gets a batch of its own). Every index appears exactly once.
pub fn plan_batches(lengths: &[usize], token_budget: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| lengths[i]);
    let mut batches = Vec::new();
    let mut current = Vec::new();
    let mut tokens = 0;
    for i in order {
        if !current.is_empty() && tokens + lengths[i] > token_budget {
            batches.push(std::mem::take(&mut current));
            tokens = 0;
        }
        current.push(i);
        tokens += lengths[i];
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(len: usize, q: usize) -> EncodedPair {
        EncodedPair {
            input_ids: (0..len as u32).map(|i| 100 + i).collect(),
            token_type_ids: (0..len).map(|i| (i >= q) as u32).collect(),
        }
    }

    #[test]
    fn ragged_layout_has_no_padding_and_restarting_positions() {
        let ps = [pair(3, 2), pair(1, 1), pair(5, 3)];
        let b = RaggedBatch::from_pairs(&ps);
        assert_eq!(b.cu_seqlens, vec![0, 3, 4, 9]);
        assert_eq!(b.position_ids, vec![0, 1, 2, 0, 0, 1, 2, 3, 4]);
        assert_eq!(b.token_type_ids, vec![0, 0, 1, 0, 0, 0, 0, 1, 1]);
        assert_eq!((b.num_pairs(), b.num_tokens(), b.max_seqlen), (3, 9, 5));
        assert_eq!(b.cls_rows(), &[0, 3, 4]);
    }

    #[test]
    fn plan_covers_every_index_once_within_budget() {
        let lengths: Vec<usize> = (0..1000).map(|i| 1 + (i * 7919) % 512).collect();
        for budget in [512, 1000, 4096, 16384] {
            let plan = plan_batches(&lengths, budget);
            let mut seen: Vec<usize> = plan.iter().flatten().copied().collect();
            seen.sort();
            assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
            for b in &plan {
                let tokens: usize = b.iter().map(|&i| lengths[i]).sum();
                assert!(
                    tokens <= budget || b.len() == 1,
                    "budget {budget}: {tokens}"
                );
                assert!(b.windows(2).all(|w| lengths[w[0]] <= lengths[w[1]]));
            }
        }
        assert!(plan_batches(&[], 100).is_empty());
        assert_eq!(plan_batches(&[700, 3], 512), vec![vec![1], vec![0]]);
    }

    /// 4 positions, 200 token ids, 2 token types.
    fn tiny_config() -> ModelConfig {
        ModelConfig::from_json_str(
            r#"{"model_type":"bert","hidden_size":8,"num_attention_heads":2,"num_hidden_layers":1,
            "intermediate_size":16,"max_position_embeddings":4,"vocab_size":200,"num_labels":1}"#,
        )
        .unwrap()
    }

    #[test]
    fn validate_rejects_out_of_range_ids() {
        let cfg = tiny_config();
        assert!(RaggedBatch::from_pairs(&[pair(4, 2)])
            .validate(&cfg)
            .is_ok());
        let too_long = RaggedBatch::from_pairs(&[pair(5, 2)])
            .validate(&cfg)
            .unwrap_err();
        assert!(
            too_long.to_string().contains("pair 0 has 5 tokens"),
            "{too_long}"
        );
        let mut b = RaggedBatch::from_pairs(&[pair(2, 1)]);
        b.input_ids[1] = 200;
        assert!(b
            .validate(&cfg)
            .unwrap_err()
            .to_string()
            .contains("token id 200"));
        let mut b = RaggedBatch::from_pairs(&[pair(2, 1)]);
        b.token_type_ids[1] = 2;
        assert!(b
            .validate(&cfg)
            .unwrap_err()
            .to_string()
            .contains("token type 2"));
        let b = RaggedBatch::from_pairs(&[pair(2, 1), pair(0, 0)]);
        assert!(b.validate(&cfg).is_err());
    }

    #[test]
    fn check_pair_rejects_what_validate_would_and_mismatched_lengths() {
        let cfg = tiny_config();
        let err = |p: &EncodedPair| check_pair(p, &cfg).unwrap_err();
        assert_eq!(check_pair(&pair(4, 2), &cfg), Ok(()));
        assert!(err(&pair(5, 2)).contains("5 tokens"));
        assert!(err(&pair(0, 0)).contains("0 tokens"));
        let mut p = pair(3, 1);
        p.input_ids[2] = 200;
        assert!(err(&p).contains("token id 200 at token 2"));
        let mut p = pair(3, 1);
        p.token_type_ids[0] = 2;
        assert!(err(&p).contains("token type 2 at token 0"));
        // Two pairs whose length errors cancel in a batch's totals are each rejected.
        let (mut a, mut b) = (pair(3, 1), pair(2, 1));
        let moved = a.token_type_ids.pop().unwrap();
        b.token_type_ids.push(moved);
        assert!(err(&a).contains("3 token ids but 2 token types"));
        assert!(err(&b).contains("2 token ids but 3 token types"));
        // Every pair that passes makes a batch that validates.
        let ok = [pair(1, 1), pair(4, 3), pair(2, 1)];
        assert!(ok.iter().all(|p| check_pair(p, &cfg).is_ok()));
        assert!(RaggedBatch::from_pairs(&ok).validate(&cfg).is_ok());
    }
}
