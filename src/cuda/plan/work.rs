//! A batch for the kernels: the attention work lists and the one `i32` index buffer it is uploaded in.

use super::ATTN_Q_TILE;
use crate::batch::{Queries, RaggedBatch};

/// One attention work item as the kernel reads it (an `int4`): pair, head, first query, one past the
/// last query; queries count from the pair's first token.
pub type WorkItem = [i32; 4];

/// The work list of one attention call. `All`: every pair's queries in tiles of [`ATTN_Q_TILE`], for
/// every head; `ClsOnly`: query 0 of every pair, for every head. Longest pairs come first, so the
/// heaviest blocks start first and the grid's tail is short.
pub fn attention_work(cu_seqlens: &[u32], num_heads: usize, queries: Queries) -> Vec<WorkItem> {
    let n = cu_seqlens.len().saturating_sub(1);
    let len = |p: usize| (cu_seqlens[p + 1] - cu_seqlens[p]) as usize;
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&p| std::cmp::Reverse(len(p)));
    let tiles: usize = match queries {
        Queries::All => (0..n).map(|p| len(p).div_ceil(ATTN_Q_TILE)).sum(),
        Queries::ClsOnly => n,
    };
    let mut work = Vec::with_capacity(tiles * num_heads);
    for p in order {
        let q_end = match queries {
            Queries::All => len(p),
            Queries::ClsOnly => 1,
        };
        for q0 in (0..q_end).step_by(ATTN_Q_TILE) {
            let q1 = (q0 + ATTN_Q_TILE).min(q_end);
            for h in 0..num_heads {
                work.push([p as i32, h as i32, q0 as i32, q1 as i32]);
            }
        }
    }
    work
}

/// An upper bound of `attention_work(..).len()` for any batch of at most `tokens` tokens: each pair has
/// at least one token and at most one tile per token.
pub fn max_work_items(tokens: usize, num_heads: usize) -> usize {
    tokens * num_heads
}

/// Output row of query 0 of each pair: the pair's first token row (`All`) or the pair's index (`ClsOnly`).
pub fn out_offsets(cu_seqlens: &[u32], queries: Queries) -> Vec<i32> {
    let n = cu_seqlens.len().saturating_sub(1);
    match queries {
        Queries::All => cu_seqlens[..n].iter().map(|&c| c as i32).collect(),
        Queries::ClsOnly => (0..n as i32).collect(),
    }
}

/// Where each index array of a batch sits in the one `i32` device buffer it is uploaded in. Offsets are
/// in elements, each a multiple of 4 so the `int4` work lists are 16-byte aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexLayout {
    pub tokens: usize,
    pub pairs: usize,
    pub work_all_items: usize,
    pub work_cls_items: usize,
    pub input_ids: usize,
    pub token_type_ids: usize,
    pub position_ids: usize,
    /// `[n + 1]`; its first n entries are also the `All` out_offsets and the `[CLS]` rows for gather_rows.
    pub cu_seqlens: usize,
    /// `[n]` = 0..n, the `ClsOnly` out_offsets.
    pub cls_offsets: usize,
    pub work_all: usize,
    pub work_cls: usize,
    pub total: usize,
}

impl IndexLayout {
    pub fn new(tokens: usize, pairs: usize, work_all_items: usize, work_cls_items: usize) -> Self {
        let mut at = 0;
        let mut next = |len: usize| {
            let start = at;
            at += len.next_multiple_of(4);
            start
        };
        let (input_ids, token_type_ids, position_ids) = (next(tokens), next(tokens), next(tokens));
        let (cu_seqlens, cls_offsets) = (next(pairs + 1), next(pairs));
        let (work_all, work_cls) = (next(4 * work_all_items), next(4 * work_cls_items));
        IndexLayout {
            tokens,
            pairs,
            work_all_items,
            work_cls_items,
            input_ids,
            token_type_ids,
            position_ids,
            cu_seqlens,
            cls_offsets,
            work_all,
            work_cls,
            total: at,
        }
    }

    /// The largest layout any batch within `token_budget` tokens can need.
    pub fn capacity(token_budget: usize, num_heads: usize) -> Self {
        let w = max_work_items(token_budget, num_heads);
        IndexLayout::new(token_budget, token_budget, w, token_budget * num_heads)
    }
}

/// A batch's indices as uploaded, with the facts the launchers check before trusting device data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackedBatch {
    pub data: Vec<i32>,
    pub max_input_id: u32,
    pub max_token_type: u32,
    pub max_position: u32,
    pub max_seqlen: usize,
}

/// Packs a batch for upload. Returns an error message if the batch is malformed (cu_seqlens not rising
/// from 0 to the token count, arrays of different lengths, or too large for `i32` indices).
///
/// Every array is written straight into `packed.data` (no intermediate work lists; one walk of
/// cu_seqlens checks it and counts the tiles); the contents are those of [`attention_work`] and
/// [`out_offsets`], which stay the reference (a test compares the two on ragged batches).
pub fn pack_batch(
    batch: &RaggedBatch,
    num_heads: usize,
    packed: &mut PackedBatch,
) -> Result<IndexLayout, String> {
    let (t, cu) = (batch.num_tokens(), &batch.cu_seqlens);
    if batch.token_type_ids.len() != t || batch.position_ids.len() != t {
        return Err("ragged batch arrays differ in length".into());
    }
    let bad_cu = || "cu_seqlens must rise strictly from 0 to the token count".to_string();
    if cu.first() != Some(&0) || cu.last().map(|&c| c as usize) != Some(t) {
        return Err(bad_cu());
    }
    let (mut max_seqlen, mut tiles) = (0, 0);
    for w in cu.windows(2) {
        if w[1] <= w[0] {
            return Err(bad_cu());
        }
        let len = (w[1] - w[0]) as usize;
        max_seqlen = max_seqlen.max(len);
        tiles += len.div_ceil(ATTN_Q_TILE);
    }
    if t > i32::MAX as usize / (4 * num_heads.max(1)) {
        return Err(format!("{t} tokens is too many for 32-bit indices"));
    }
    let n = batch.num_pairs();
    let layout = IndexLayout::new(t, n, tiles * num_heads, n * num_heads);
    let len = |p: usize| (cu[p + 1] - cu[p]) as usize;
    // As in `attention_work`, longest pair first, ties in index order; the index is part of the key,
    // so an unstable sort of plain integers gives that order (at half the stable sort's cost).
    let mut order: Vec<u64> = (0..n)
        .map(|p| (u64::from(u32::MAX - len(p) as u32) << 32) | p as u64)
        .collect();
    order.sort_unstable();
    let order = order.iter().map(|&k| k as u32 as usize);

    let data = &mut packed.data;
    data.clear();
    data.reserve(layout.total);
    // Moves to the start of a section; the gap (< 4 elements, see `IndexLayout::new`) is zeros.
    fn section(data: &mut Vec<i32>, at: usize) {
        debug_assert!(data.len() <= at && at - data.len() < 4);
        data.resize(at, 0);
    }
    // The u32 arrays are copied bit for bit, as `x as i32` would; ids are checked against the model by
    // the launchers through the maxima below.
    section(data, layout.input_ids);
    data.extend_from_slice(bytemuck::cast_slice(&batch.input_ids));
    section(data, layout.token_type_ids);
    data.extend_from_slice(bytemuck::cast_slice(&batch.token_type_ids));
    section(data, layout.position_ids);
    data.extend_from_slice(bytemuck::cast_slice(&batch.position_ids));
    section(data, layout.cu_seqlens);
    data.extend_from_slice(bytemuck::cast_slice(cu));
    section(data, layout.cls_offsets);
    data.extend(0..n as i32);
    // The work lists: sized (zeros) first, then each item written in place, with no capacity check
    // per item as a push has.
    section(data, layout.work_all);
    data.resize(layout.total, 0);
    let (all, cls) = data[layout.work_all..].split_at_mut(layout.work_cls - layout.work_all);
    let (mut all, mut cls) = (all.chunks_exact_mut(4), cls.chunks_exact_mut(4));
    for p in order {
        let q_end = len(p);
        for q0 in (0..q_end).step_by(ATTN_Q_TILE) {
            let q1 = (q0 + ATTN_Q_TILE).min(q_end);
            for (h, item) in all.by_ref().take(num_heads).enumerate() {
                item.copy_from_slice(&[p as i32, h as i32, q0 as i32, q1 as i32]);
            }
        }
        for (h, item) in cls.by_ref().take(num_heads).enumerate() {
            item.copy_from_slice(&[p as i32, h as i32, 0, 1]);
        }
    }

    let max = |v: &[u32]| v.iter().copied().max().unwrap_or(0);
    packed.max_input_id = max(&batch.input_ids);
    packed.max_token_type = max(&batch.token_type_ids);
    packed.max_position = max(&batch.position_ids);
    packed.max_seqlen = max_seqlen;
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LENGTHS: [u32; 12] = [1, 2, 31, 32, 33, 63, 64, 65, 127, 128, 129, 512];

    fn cu_of(lengths: &[u32]) -> Vec<u32> {
        std::iter::once(0)
            .chain(lengths.iter().scan(0, |s, &l| {
                *s += l;
                Some(*s)
            }))
            .collect()
    }

    /// Every (pair, head, query) appears in exactly one work item, every item is valid for the kernel.
    #[test]
    fn work_lists_cover_every_query_once() {
        let cu = cu_of(&LENGTHS);
        for heads in [1, 2, 12] {
            for mode in [Queries::All, Queries::ClsOnly] {
                let work = attention_work(&cu, heads, mode);
                let mut seen = std::collections::HashMap::new();
                for &[p, h, q0, q1] in &work {
                    let len = (cu[p as usize + 1] - cu[p as usize]) as i32;
                    assert!(0 <= q0 && q0 < q1 && q1 <= len && (q1 - q0) as usize <= ATTN_Q_TILE);
                    assert!(0 <= h && (h as usize) < heads);
                    for q in q0..q1 {
                        assert!(seen.insert((p, h, q), ()).is_none(), "({p},{h},{q}) twice");
                    }
                }
                let want: usize = match mode {
                    Queries::All => LENGTHS.iter().map(|&l| l as usize).sum::<usize>() * heads,
                    Queries::ClsOnly => LENGTHS.len() * heads,
                };
                assert_eq!(seen.len(), want);
                assert!(work.len() <= max_work_items(*cu.last().unwrap() as usize, heads));
                if mode == Queries::ClsOnly {
                    assert!(work.iter().all(|w| w[2] == 0 && w[3] == 1));
                }
            }
        }
        // Tiles: 512 tokens are 8 tiles of 64; 129 are 64 + 64 + 1.
        let w = attention_work(&[0, 129], 1, Queries::All);
        assert_eq!(w, vec![[0, 0, 0, 64], [0, 0, 64, 128], [0, 0, 128, 129]]);
        // The longest pair is scheduled first.
        assert_eq!(attention_work(&[0, 1, 101], 1, Queries::All)[0][0], 1);
        assert!(attention_work(&[0], 4, Queries::All).is_empty());
    }

    #[test]
    fn max_work_items_bounds_the_worst_batches() {
        for lengths in [vec![1u32; 300], vec![64; 5], vec![65; 5], vec![512; 3]] {
            let cu = cu_of(&lengths);
            let t = *cu.last().unwrap() as usize;
            assert!(attention_work(&cu, 12, Queries::All).len() <= max_work_items(t, 12));
        }
    }

    #[test]
    fn out_offsets_follow_the_mode() {
        let cu = [0, 3, 4, 9];
        assert_eq!(out_offsets(&cu, Queries::All), vec![0, 3, 4]);
        assert_eq!(out_offsets(&cu, Queries::ClsOnly), vec![0, 1, 2]);
    }

    fn batch_of(lengths: &[u32]) -> RaggedBatch {
        let pairs: Vec<crate::EncodedPair> = lengths
            .iter()
            .map(|&l| crate::EncodedPair {
                input_ids: (0..l).map(|i| 100 + i).collect(),
                token_type_ids: (0..l).map(|i| (i >= l / 2) as u32).collect(),
            })
            .collect();
        RaggedBatch::from_pairs(&pairs)
    }

    #[test]
    fn packed_batch_round_trips_and_is_aligned() {
        let b = batch_of(&LENGTHS);
        let mut packed = PackedBatch::default();
        let lay = pack_batch(&b, 3, &mut packed).unwrap();
        let d = &packed.data;
        assert_eq!(d.len(), lay.total);
        let t = b.num_tokens();
        let n = b.num_pairs();
        let get = |at: usize, len: usize| d[at..at + len].to_vec();
        let as_i32 = |v: &[u32]| v.iter().map(|&x| x as i32).collect::<Vec<_>>();
        assert_eq!(get(lay.input_ids, t), as_i32(&b.input_ids));
        assert_eq!(get(lay.token_type_ids, t), as_i32(&b.token_type_ids));
        assert_eq!(get(lay.position_ids, t), as_i32(&b.position_ids));
        assert_eq!(get(lay.cu_seqlens, n + 1), as_i32(&b.cu_seqlens));
        assert_eq!(get(lay.cls_offsets, n), (0..n as i32).collect::<Vec<_>>());
        let flat = |w: Vec<WorkItem>| w.into_iter().flatten().collect::<Vec<_>>();
        assert_eq!(
            get(lay.work_all, 4 * lay.work_all_items),
            flat(attention_work(&b.cu_seqlens, 3, Queries::All))
        );
        assert_eq!(
            get(lay.work_cls, 4 * lay.work_cls_items),
            flat(attention_work(&b.cu_seqlens, 3, Queries::ClsOnly))
        );
        let offsets = [
            lay.input_ids,
            lay.token_type_ids,
            lay.position_ids,
            lay.cu_seqlens,
            lay.cls_offsets,
        ];
        for at in offsets
            .into_iter()
            .chain([lay.work_all, lay.work_cls, lay.total])
        {
            assert_eq!(at % 4, 0, "{lay:?}");
        }
        assert_eq!(
            (
                packed.max_input_id,
                packed.max_token_type,
                packed.max_position
            ),
            (100 + 511, 1, 511)
        );
        assert_eq!(packed.max_seqlen, 512);
        assert!(lay.total <= IndexLayout::capacity(t, 3).total);

        let mut bad = b.clone();
        bad.cu_seqlens[2] = bad.cu_seqlens[1];
        assert!(pack_batch(&bad, 3, &mut packed).is_err());
        bad = b.clone();
        bad.position_ids.pop();
        assert!(pack_batch(&bad, 3, &mut packed).is_err());
    }

    /// The old `pack_batch`: work lists built by [`attention_work`] and [`out_offsets`], copied into a
    /// zeroed buffer.
    fn pack_reference(b: &RaggedBatch, heads: usize) -> (IndexLayout, PackedBatch) {
        let cu = &b.cu_seqlens;
        let work_all = attention_work(cu, heads, Queries::All);
        let work_cls = attention_work(cu, heads, Queries::ClsOnly);
        let n = b.num_pairs();
        let lay = IndexLayout::new(b.num_tokens(), n, work_all.len(), work_cls.len());
        let mut data = vec![0; lay.total];
        let mut put = |at: usize, v: Vec<i32>| data[at..at + v.len()].copy_from_slice(&v);
        let as_i32 = |v: &[u32]| v.iter().map(|&x| x as i32).collect::<Vec<_>>();
        put(lay.input_ids, as_i32(&b.input_ids));
        put(lay.token_type_ids, as_i32(&b.token_type_ids));
        put(lay.position_ids, as_i32(&b.position_ids));
        put(lay.cu_seqlens, as_i32(cu));
        put(lay.cls_offsets, out_offsets(cu, Queries::ClsOnly));
        put(lay.work_all, work_all.into_iter().flatten().collect());
        put(lay.work_cls, work_cls.into_iter().flatten().collect());
        let max = |v: &[u32]| v.iter().copied().max().unwrap_or(0);
        let packed = PackedBatch {
            data,
            max_input_id: max(&b.input_ids),
            max_token_type: max(&b.token_type_ids),
            max_position: max(&b.position_ids),
            max_seqlen: cu
                .windows(2)
                .map(|w| (w[1] - w[0]) as usize)
                .max()
                .unwrap_or(0),
        };
        (lay, packed)
    }

    /// Ragged batches of random lengths (1 to 512, ties, rising as `plan_batches` orders them, or in any
    /// order), packed one after another into one reused buffer: the same bytes and facts as the reference.
    #[test]
    fn packing_matches_the_reference_on_ragged_batches() {
        let mut rng = crate::bench::Rng::new(11);
        let mut packed = PackedBatch::default();
        for round in 0..60 {
            let n = [1, 2, 3, 7, 50, 143][round % 6];
            let mut lengths: Vec<u32> = (0..n)
                .map(|_| match rng.range(0, 9) {
                    0 => 1,
                    1 => 512,
                    2 => 64 * rng.range(1, 8) as u32,
                    _ => rng.range(1, 300) as u32,
                })
                .collect();
            if round % 2 == 0 {
                lengths.sort();
            }
            let mut b = batch_of(&lengths);
            b.input_ids
                .iter_mut()
                .for_each(|x| *x = rng.range(0, 30521) as u32);
            for heads in [1, 3, 12] {
                let lay = pack_batch(&b, heads, &mut packed).unwrap();
                let (want_lay, want) = pack_reference(&b, heads);
                assert_eq!(lay, want_lay, "{lengths:?}, {heads} heads");
                assert_eq!(packed, want, "{lengths:?}, {heads} heads");
            }
        }
        let empty = RaggedBatch::from_pairs(&[]);
        let lay = pack_batch(&empty, 12, &mut packed).unwrap();
        assert_eq!(
            (lay, &packed),
            (pack_reference(&empty, 12).0, &pack_reference(&empty, 12).1)
        );
    }

    /// The capacity layout is at least as large as the layout of any batch within the budget.
    #[test]
    fn capacity_layout_holds_every_batch() {
        let budget = 600;
        for lengths in [
            vec![1u32; 600],
            vec![600],
            vec![64; 9],
            vec![1, 599],
            vec![3; 200],
        ] {
            let b = batch_of(&lengths);
            let mut packed = PackedBatch::default();
            let lay = pack_batch(&b, 12, &mut packed).unwrap();
            assert!(
                lay.total <= IndexLayout::capacity(budget, 12).total,
                "{lengths:?}"
            );
        }
    }
}
