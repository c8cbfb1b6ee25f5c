//! The model's operations in plain fp32, one function per op. Each is the CPU twin of a CUDA kernel
//! in `kernels/` (same name, same arguments, same layout: row-major, ragged rows, no padding) and the
//! reference that kernel is tested against. Accumulations are fp32; LayerNorm is two-pass.

use rayon::prelude::*;

/// Which queries an attention call computes (defined with the batch both backends consume).
pub use crate::batch::Queries;

/// `out[t] = LayerNorm(word[ids[t]] + pos[position_ids[t]] + type[token_type_ids[t]])`; `out` is `[T, h]`.
/// Indices must have been validated (see `RaggedBatch::validate`).
#[allow(clippy::too_many_arguments)]
pub fn embed_layernorm(
    input_ids: &[u32],
    token_type_ids: &[u32],
    position_ids: &[u32],
    word_emb: &[f32],
    pos_emb: &[f32],
    type_emb: &[f32],
    gamma: &[f32],
    beta: &[f32],
    out: &mut [f32],
    h: usize,
    eps: f32,
) {
    out.par_chunks_mut(h).enumerate().for_each(|(t, row)| {
        let w = &word_emb[input_ids[t] as usize * h..][..h];
        let p = &pos_emb[position_ids[t] as usize * h..][..h];
        let ty = &type_emb[token_type_ids[t] as usize * h..][..h];
        for j in 0..h {
            row[j] = w[j] + p[j] + ty[j];
        }
        layernorm_row(row, gamma, beta, eps);
    });
}

/// Fewer rows than this are padded (see `linear`).
const MIN_GEMM_ROWS: usize = 8;

/// `out = x · wᵀ (+ bias)`: x `[rows, k]`, w `[n, k]` (PyTorch Linear layout), out `[rows, n]`.
#[allow(clippy::too_many_arguments)]
pub fn linear(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    rows: usize,
    k: usize,
    n: usize,
) {
    assert!(x.len() >= rows * k && w.len() == n * k && out.len() >= rows * n);
    if rows == 0 {
        return;
    }
    if rows < MIN_GEMM_ROWS {
        // gemm picks other kernels (matrix-vector, small-size blocking) for a few rows, and they sum in
        // another order; padding to MIN_GEMM_ROWS rows keeps one kernel, so a pair scores bit-identically
        // alone and in a batch (the last layer has one row per pair).
        let mut x_pad = vec![0f32; MIN_GEMM_ROWS * k];
        x_pad[..rows * k].copy_from_slice(&x[..rows * k]);
        let mut out_pad = vec![0f32; MIN_GEMM_ROWS * n];
        linear(&x_pad, w, bias, &mut out_pad, MIN_GEMM_ROWS, k, n);
        out[..rows * n].copy_from_slice(&out_pad[..rows * n]);
        return;
    }
    let threads = rayon::current_num_threads();
    let parallel = threads > 1 && rows * n * k >= 1 << 16;
    linear_with(x, w, bias, out, rows, k, n, parallel);
}

/// Most rows in one block of the QKV projection (`linear_blocked`). Measured on the CI-like 2-core machine
/// (2026-11-26, `xenc bench --device cpu --threads 2 --profile`, 296 prose pairs in batches of ~13.7k
/// tokens, 384 -> 1152): 49.1-50.7 ms per batch and layer as one parallel GEMM after a bias fill of the
/// whole 63 MB output, 49.1 ms in blocks of 128 rows, 44.8 / 44.2 / 44.0 ms in blocks of 256 / 512 / 1,024.
pub const QKV_MAX_BLOCK_ROWS: usize = 1024;

/// `linear` with bias on blocks of at most `max_block` rows, each block on one thread from the bias
/// fill to the GEMM's last write (the fill then stays in that core's cache instead of making a round
/// trip through memory). Same kernel and summation order as `linear` (bias first, then the products).
#[allow(clippy::too_many_arguments)]
pub fn linear_blocked(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    out: &mut [f32],
    rows: usize,
    k: usize,
    n: usize,
    max_block: usize,
) {
    assert!(x.len() >= rows * k && w.len() == n * k && out.len() >= rows * n && bias.len() == n);
    if rows == 0 {
        return;
    }
    let threads = rayon::current_num_threads().max(1);
    let blocks = rows.div_ceil(max_block).next_multiple_of(threads);
    let block = rows.div_ceil(blocks).max(MIN_GEMM_ROWS);
    out[..rows * n]
        .par_chunks_mut(block * n)
        .zip(x[..rows * k].par_chunks(block * k))
        .for_each(|(ob, xb)| {
            let r = xb.len() / k;
            if r < MIN_GEMM_ROWS {
                linear(xb, w, Some(bias), ob, r, k, n); // padded there, as for any call
            } else {
                linear_with(xb, w, Some(bias), ob, r, k, n, false);
            }
        });
}

/// `linear` on the calling thread only (`parallel` false) or on rayon's threads, without the padding of
/// small row counts: callers keep `rows >= MIN_GEMM_ROWS`.
#[allow(clippy::too_many_arguments)]
fn linear_with(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    rows: usize,
    k: usize,
    n: usize,
    parallel: bool,
) {
    assert!(x.len() >= rows * k && w.len() == n * k && out.len() >= rows * n);
    if let Some(b) = bias {
        for row in out[..rows * n].chunks_exact_mut(n) {
            row.copy_from_slice(b);
        }
    }
    let parallelism = if parallel {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the assert above bounds every access: dst is rows×n with row stride n, lhs rows×k with
    // row stride k, rhs is wᵀ viewed as k×n (element (i, j) at w[j·k + i]).
    unsafe {
        gemm::gemm(
            rows,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            bias.is_some(),
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `x = gelu(x + bias)` in place, the erf form (vectorised, see `vmath`); x is `[rows, n]`.
pub fn bias_gelu(x: &mut [f32], bias: &[f32], n: usize) {
    x.par_chunks_mut(n)
        .for_each(|row| super::vmath::bias_gelu_in_place(row, bias));
}

/// `residual = LayerNorm(x + bias + residual)` row by row; the kernel twin writes `out`, which may
/// alias `residual` — here it always does. x and residual are `[rows, h]`.
pub fn add_bias_residual_layernorm(
    x: &[f32],
    bias: &[f32],
    residual: &mut [f32],
    gamma: &[f32],
    beta: &[f32],
    h: usize,
    eps: f32,
) {
    residual
        .par_chunks_mut(h)
        .zip(x.par_chunks(h))
        .for_each(|(r, x)| {
            for j in 0..h {
                r[j] += x[j] + bias[j];
            }
            layernorm_row(r, gamma, beta, eps);
        });
}

/// Most rows in one block of [`ffn_residual_layernorm`]. Measured on the CI-like 2-core machine
/// (AVX-512, 2 MiB L2 per core; 4,096 rows, FFN 384 → 1536 → 384): blocks of 512–2,048 rows were 9% faster
/// than the unfused steps on 1 and on 2 threads, 256 rows about as fast, 64 rows 30% slower (the GEMM
/// repacks its weight operand per call).
const FFN_MAX_BLOCK_ROWS: usize = 1024;

/// The whole feed-forward half of a layer, `x = LayerNorm(x + gelu(x·w1ᵀ + b1)·w2ᵀ + b2)`, on blocks of
/// rows, each block on one thread from start to end: the block's intermediate activations stay in that
/// core's cache between the three steps instead of making a round trip through memory.
/// Per row the arithmetic is that of `linear`, `bias_gelu`, `linear` and `add_bias_residual_layernorm` in
/// turn (same GEMM kernel and summation order), so the result does not depend on the blocking.
#[allow(clippy::too_many_arguments)]
pub fn ffn_residual_layernorm(
    x: &mut [f32],
    w1: &[f32],
    b1: &[f32],
    w2: &[f32],
    b2: &[f32],
    gamma: &[f32],
    beta: &[f32],
    rows: usize,
    h: usize,
    inter: usize,
    eps: f32,
) {
    assert!(x.len() >= rows * h && b1.len() == inter && b2.len() == h);
    if rows == 0 {
        return;
    }
    // Equal blocks, as many as a multiple of the threads, so no thread idles at the end of the layer.
    let threads = rayon::current_num_threads().max(1);
    let blocks = rows.div_ceil(FFN_MAX_BLOCK_ROWS).next_multiple_of(threads);
    let block = rows.div_ceil(blocks);
    x[..rows * h].par_chunks_mut(block * h).for_each_init(
        || {
            let cap = block.max(MIN_GEMM_ROWS);
            (vec![0f32; cap * inter], vec![0f32; cap * h])
        },
        |(mid, out), xb| {
            let r = xb.len() / h;
            if r < MIN_GEMM_ROWS {
                // As `linear` does: pad, so the GEMM kernel (and its summation order) is that of any block.
                let mut pad = vec![0f32; MIN_GEMM_ROWS * h];
                pad[..r * h].copy_from_slice(xb);
                ffn_block(
                    &mut pad,
                    w1,
                    b1,
                    w2,
                    b2,
                    gamma,
                    beta,
                    mid,
                    out,
                    MIN_GEMM_ROWS,
                    h,
                    inter,
                    eps,
                );
                xb.copy_from_slice(&pad[..r * h]);
            } else {
                ffn_block(xb, w1, b1, w2, b2, gamma, beta, mid, out, r, h, inter, eps);
            }
        },
    );
}

#[allow(clippy::too_many_arguments)]
fn ffn_block(
    xb: &mut [f32],
    w1: &[f32],
    b1: &[f32],
    w2: &[f32],
    b2: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mid: &mut [f32],
    out: &mut [f32],
    r: usize,
    h: usize,
    inter: usize,
    eps: f32,
) {
    let (mid, out) = (&mut mid[..r * inter], &mut out[..r * h]);
    linear_with(xb, w1, None, mid, r, h, inter, false);
    for row in mid.chunks_exact_mut(inter) {
        super::vmath::bias_gelu_in_place(row, b1);
    }
    linear_with(mid, w2, None, out, r, inter, h, false);
    for (x, o) in xb.chunks_exact_mut(h).zip(out.chunks_exact(h)) {
        for j in 0..h {
            x[j] += o[j] + b2[j];
        }
        layernorm_row(x, gamma, beta, eps);
    }
}

fn layernorm_row(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mean = row.iter().sum::<f32>() / n;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
        *v = (*v - mean) * inv * g + b;
    }
}

/// Ragged self-attention. `qkv` is `[T, 3H]`, each row Q | K | V with head `h` at columns
/// `h·head_dim ..` of each part; pair p owns rows `cu_seqlens[p] .. cu_seqlens[p + 1]` and attends to
/// those rows only. `ctx` gets `softmax(q·Kᵀ/√d)·V` per head, at the rows `queries` says.
///
/// Work is one (pair, head) at a time, spread over threads (see `super::attention`): scores for that pair
/// and head only (never T×T), an exact row softmax in fp32, then `P·V` written straight into the head's
/// columns of `ctx`.
pub fn attention_varlen(
    qkv: &[f32],
    ctx: &mut [f32],
    cu_seqlens: &[u32],
    queries: Queries,
    num_heads: usize,
    head_dim: usize,
) {
    let hidden = num_heads * head_dim;
    let stride = 3 * hidden;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let n = cu_seqlens.len() - 1;
    let t = cu_seqlens[n] as usize;
    let out_rows = match queries {
        Queries::All => t,
        Queries::ClsOnly => n,
    };
    assert!(qkv.len() >= t * stride && ctx.len() >= out_rows * hidden);
    let ctx_ptr = SharedOut(ctx.as_mut_ptr());

    let items: Vec<(usize, usize)> = (0..n)
        .flat_map(|p| (0..num_heads).map(move |h| (p, h)))
        .collect();
    items
        .into_par_iter()
        .for_each_init(super::attention::Scratch::default, |scratch, (p, h)| {
            let start = cu_seqlens[p] as usize;
            let len = cu_seqlens[p + 1] as usize - start;
            let (queries, out_row) = match queries {
                Queries::All => (len, start),
                Queries::ClsOnly => (1, p),
            };
            let item = super::attention::Item {
                qkv: &qkv[start * stride..(start + len) * stride],
                stride,
                hidden,
                head: h,
                head_dim,
                len,
                queries,
                scale,
            };
            // SAFETY: the destination is rows out_row..out_row + queries, columns h·d..(h+1)·d of ctx
            // (inside it: checked above), which no other (pair, head) item writes.
            unsafe {
                super::attention::attend(
                    &item,
                    ctx_ptr.at(out_row * hidden + h * head_dim),
                    hidden,
                    scratch,
                )
            };
        });
}

/// The output of `attention_varlen`, written by many threads at disjoint (rows, head columns).
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: each work item writes only its own (pair rows, head columns) block; see attention_varlen.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// # Safety
    /// `offset` must lie inside the buffer.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        self.0.add(offset)
    }
}

/// `dst[i] = src[rows[i]]`, rows of width `h`.
pub fn gather_rows(src: &[f32], rows: &[u32], dst: &mut [f32], h: usize) {
    for (d, &r) in dst.chunks_exact_mut(h).zip(rows) {
        d.copy_from_slice(&src[r as usize * h..][..h]);
    }
}

/// The head: `pooled = tanh(wp·x + bp)` per pair, then `logits = wc·pooled + bc`.
/// x_cls `[n, h]`, wp `[h, h]`, wc `[l, h]`, logits `[n, l]`.
#[allow(clippy::too_many_arguments)]
pub fn pooler_classifier(
    x_cls: &[f32],
    wp: &[f32],
    bp: &[f32],
    wc: &[f32],
    bc: &[f32],
    logits: &mut [f32],
    h: usize,
    l: usize,
) {
    logits
        .par_chunks_mut(l)
        .zip(x_cls.par_chunks(h))
        .for_each(|(out, x)| {
            let pooled: Vec<f32> = (0..h)
                .map(|j| (bp[j] + dot(&wp[j * h..][..h], x)).tanh())
                .collect();
            for (i, o) in out.iter_mut().enumerate() {
                *o = bc[i] + dot(&wc[i * h..][..h], &pooled);
            }
        });
}

#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Naive triple loop in f64, to check the GEMM call's strides.
    #[test]
    fn linear_matches_naive() {
        let (rows, k, n) = (37, 19, 23);
        let x: Vec<f32> = (0..rows * k)
            .map(|i| ((i * 31 % 17) as f32 - 8.0) / 7.0)
            .collect();
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 13 % 11) as f32 - 5.0) / 3.0)
            .collect();
        let b: Vec<f32> = (0..n).map(|i| i as f32 * 0.25).collect();
        let mut out = vec![0f32; rows * n];
        linear(&x, &w, Some(&b), &mut out, rows, k, n);
        for r in 0..rows {
            for j in 0..n {
                let want: f64 = b[j] as f64
                    + (0..k)
                        .map(|i| x[r * k + i] as f64 * w[j * k + i] as f64)
                        .sum::<f64>();
                assert!((out[r * n + j] as f64 - want).abs() < 1e-4, "({r},{j})");
            }
        }
        let mut no_bias = vec![7f32; rows * n];
        linear(&x, &w, None, &mut no_bias, rows, k, n);
        assert!((no_bias[5] - (out[5] - b[5])).abs() < 1e-4);
    }

    /// A row's result must not depend on how many rows share the call: that is what makes a pair score
    /// the same alone and in a batch.
    #[test]
    fn linear_rows_do_not_depend_on_the_row_count() {
        let (k, n, max_rows) = (384, 384, 300);
        let x: Vec<f32> = (0..max_rows * k)
            .map(|i| ((i * 7919 % 1013) as f32 - 500.0) / 300.0)
            .collect();
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 104729 % 997) as f32 - 498.0) / 900.0)
            .collect();
        let mut all = vec![0f32; max_rows * n];
        linear(&x, &w, None, &mut all, max_rows, k, n);
        for rows in [1, 2, 3, 17, 64, 299] {
            let mut part = vec![0f32; rows * n];
            linear(&x[..rows * k], &w, None, &mut part, rows, k, n);
            assert!(
                part.iter()
                    .zip(&all)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{rows} rows"
            );
        }
    }

    /// `n` deterministic values in about [-0.72, 0.72], a different sequence per seed `s`.
    fn values(n: usize, s: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + s) % 1013) as f32 - 506.0) / 700.0)
            .collect()
    }

    /// The fused feed-forward half gives exactly what its four steps give one after another, whatever the
    /// row count (one block, several, a padded small block) and thread count.
    #[test]
    fn fused_ffn_equals_its_steps() {
        let (h, inter) = (48, 160);
        let r = values;
        let (w1, b1, w2, b2) = (r(inter * h, 2), r(inter, 3), r(h * inter, 4), r(h, 5));
        let (g, be) = (r(h, 6), r(h, 7));
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for rows in [1, 7, 8, 50, 1025, 2100] {
                let x0 = r(rows * h, rows);
                let mut want = x0.clone();
                let mut mid = vec![0f32; rows * inter];
                let mut out = vec![0f32; rows * h];
                linear(&want, &w1, None, &mut mid, rows, h, inter);
                bias_gelu(&mut mid, &b1, inter);
                linear(&mid, &w2, None, &mut out, rows, inter, h);
                add_bias_residual_layernorm(&out, &b2, &mut want, &g, &be, h, 1e-12);
                let mut got = x0.clone();
                pool.install(|| {
                    ffn_residual_layernorm(
                        &mut got, &w1, &b1, &w2, &b2, &g, &be, rows, h, inter, 1e-12,
                    )
                });
                assert!(
                    got.iter()
                        .zip(&want)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{rows} rows on {threads} threads"
                );
            }
        }
    }

    /// The blocked QKV projection gives exactly what one `linear` call gives, whatever the row count
    /// (one block, several, a padded small block), block size and thread count.
    #[test]
    fn blocked_linear_equals_linear() {
        let (k, n) = (384, 96);
        let r = values;
        let (w, b) = (r(n * k, 1), r(n, 2));
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for rows in [1, 7, 8, 50, 1025, 2100] {
                let x = r(rows * k, rows);
                let mut want = vec![0f32; rows * n];
                linear(&x, &w, Some(&b), &mut want, rows, k, n);
                for block in [16, 256, QKV_MAX_BLOCK_ROWS] {
                    let mut got = vec![0f32; rows * n];
                    pool.install(|| linear_blocked(&x, &w, &b, &mut got, rows, k, n, block));
                    assert!(
                        got.iter()
                            .zip(&want)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{rows} rows in blocks of {block} on {threads} threads"
                    );
                }
            }
        }
    }

    #[test]
    fn attention_of_one_token_returns_its_value() {
        // A length-1 pair attends only to itself: ctx = V.
        let (heads, d) = (2, 4);
        let hidden = heads * d;
        let qkv: Vec<f32> = (0..3 * hidden).map(|i| i as f32 * 0.1).collect();
        let mut ctx = vec![0f32; hidden];
        attention_varlen(&qkv, &mut ctx, &[0, 1], Queries::All, heads, d);
        assert_eq!(ctx, qkv[2 * hidden..].to_vec());
    }

    #[test]
    fn attention_cls_only_equals_first_rows_of_full() {
        let (heads, d) = (3, 8);
        let hidden = heads * d;
        let cu = [0u32, 5, 6, 13];
        let t = 13;
        let qkv: Vec<f32> = (0..t * 3 * hidden)
            .map(|i| ((i * 7919 % 101) as f32 - 50.0) / 40.0)
            .collect();
        let mut full = vec![0f32; t * hidden];
        attention_varlen(&qkv, &mut full, &cu, Queries::All, heads, d);
        let mut cls = vec![0f32; 3 * hidden];
        attention_varlen(&qkv, &mut cls, &cu, Queries::ClsOnly, heads, d);
        for p in 0..3 {
            let r = cu[p] as usize;
            for (a, b) in cls[p * hidden..][..hidden]
                .iter()
                .zip(&full[r * hidden..][..hidden])
            {
                assert!((a - b).abs() <= 1e-6, "pair {p}: {a} vs {b}");
            }
        }
        // Each ctx row is a convex combination of its own pair's V rows: within their range.
        for p in 0..3 {
            let (a, b) = (cu[p] as usize, cu[p + 1] as usize);
            for c in 0..hidden {
                let vs: Vec<f32> = (a..b)
                    .map(|j| qkv[j * 3 * hidden + 2 * hidden + c])
                    .collect();
                let lo = vs.iter().cloned().fold(f32::INFINITY, f32::min);
                let hi = vs.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                for r in a..b {
                    let v = full[r * hidden + c];
                    assert!(v >= lo - 1e-5 && v <= hi + 1e-5);
                }
            }
        }
    }

    #[test]
    fn layernorm_and_bias_gelu_match_their_definitions() {
        let h = 6;
        let x = vec![0.5f32, -1.0, 2.0, 0.0, 3.0, -0.5];
        let mut r = vec![1.0f32; h];
        let gamma = vec![2.0f32; h];
        let beta = vec![0.5f32; h];
        add_bias_residual_layernorm(&x, &[0.0; 6], &mut r, &gamma, &beta, h, 1e-12);
        let v: Vec<f64> = x.iter().map(|&a| a as f64 + 1.0).collect();
        let mean = v.iter().sum::<f64>() / 6.0;
        let var = v.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 6.0;
        for j in 0..h {
            let want = (v[j] - mean) / var.sqrt() * 2.0 + 0.5;
            assert!((r[j] as f64 - want).abs() < 1e-5);
        }
        // bias + erf-GELU row by row, against its definition in f64.
        let n = 4;
        let mut x = vec![-6.0f32, -1.0, 0.0, 2.5, 0.5, -0.1, 1.0, 8.0];
        let bias = [0.5f32, -0.5, 0.0, 1.0];
        let before = x.clone();
        bias_gelu(&mut x, &bias, n);
        for (i, (g, v)) in x.iter().zip(&before).enumerate() {
            let v = (*v + bias[i % n]) as f64;
            let want = 0.5 * v * (1.0 + libm::erf(v / std::f64::consts::SQRT_2));
            assert!((*g as f64 - want).abs() < 1e-6 * (1.0 + want.abs()), "{v}");
        }
    }
}
