//! One (pair, head) of attention on the CPU: the work item of `ops::attention_varlen`. Scores for the
//! pair's queries against its keys only (never T×T), an exact fp32 softmax per row, then P·V written
//! straight into the head's columns of the output.
//!
//! Two implementations of the same item, picked per CPU:
//! - `avx512::attend`, register-tiled: Kᵀ (gathered, `[d][L↑16]`) and V (`[L][d↑16]`) of the head are copied
//!   into zero-padded scratch, then queries go `QR` at a time. The scores of `QR` queries against 16 keys
//!   sit in `QR` registers while the loop runs over the head dimension, so each K load serves `QR` queries
//!   (Q elements are broadcast straight from the QKV rows); the softmax runs in 16 lanes with its own exp;
//!   P·V accumulates `QR` rows × 16 output columns while the loop runs over the keys, so each V load serves
//!   `QR` rows, and 1/Σ scales the output. At head_dim 32 it is ~2.4× the GEMM form on one core.
//! - `portable`, for CPUs without AVX-512: both products as small GEMMs (the gemm crate's kernels, which
//!   have AVX2 and NEON forms) reading Q, K and V in place through strides, the softmax in between.
//!
//! Each item's arithmetic depends on that pair alone, so a pair scores the same alone and in a batch.

/// Queries per register tile.
const QR: usize = 8;
/// Queries per block of the portable form: its scores take `QUERY_BLOCK × len` floats.
const QUERY_BLOCK: usize = 128;
/// Lanes of one AVX-512 register.
const LANES: usize = 16;

fn round_up(x: usize, m: usize) -> usize {
    x.div_ceil(m) * m
}

/// Buffers one thread reuses from one work item to the next.
#[derive(Default)]
pub struct Scratch {
    kt: Vec<f32>,
    v: Vec<f32>,
    s: Vec<f32>,
}

/// Where one work item reads.
pub struct Item<'a> {
    /// The pair's QKV rows (Q | K | V, each `hidden` wide), head `head` at columns `head·head_dim`.
    pub qkv: &'a [f32],
    /// Elements between consecutive QKV rows (3·hidden).
    pub stride: usize,
    pub hidden: usize,
    pub head: usize,
    pub head_dim: usize,
    /// Keys (and rows) of the pair, at least 1.
    pub len: usize,
    /// Queries 0..queries of the pair are computed (len, or 1 for [CLS] only).
    pub queries: usize,
    /// 1/√head_dim.
    pub scale: f32,
}

impl Item<'_> {
    fn check(&self) {
        assert!(self.len > 0 && self.queries <= self.len);
        assert!((self.head + 1) * self.head_dim <= self.hidden && self.stride >= 3 * self.hidden);
        assert!(self.qkv.len() >= (self.len - 1) * self.stride + 3 * self.hidden);
    }
}

/// Computes the item: output row q (of `queries`) goes to `out + q·out_stride`, `head_dim` floats.
///
/// # Safety
/// `out` must point at `queries` rows of at least `head_dim` writable floats spaced `out_stride` apart,
/// which nothing else reads or writes meanwhile.
pub unsafe fn attend(item: &Item<'_>, out: *mut f32, out_stride: usize, scratch: &mut Scratch) {
    item.check();
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        return avx512::attend(item, out, out_stride, scratch);
    }
    portable::attend(item, out, out_stride, scratch)
}

mod portable {
    use super::{Item, Scratch, QUERY_BLOCK};

    /// # Safety
    /// As `super::attend`.
    pub unsafe fn attend(it: &Item<'_>, out: *mut f32, out_stride: usize, sc: &mut Scratch) {
        let (len, d, stride) = (it.len, it.head_dim, it.stride);
        let q = &it.qkv[it.head * d..];
        let (k, v) = (&q[it.hidden..], &q[2 * it.hidden..]);
        let scores = &mut sc.s;
        // Queries go QUERY_BLOCK at a time, so the scores never take more than QUERY_BLOCK × len
        // floats (4 MiB at 8,192 tokens, where the whole matrix would be 256 MiB per head).
        for q0 in (0..it.queries).step_by(QUERY_BLOCK) {
            let rows = QUERY_BLOCK.min(it.queries - q0);
            scores.clear();
            scores.resize(rows * len, 0.0);
            // S = scale · Q·Kᵀ: lhs Q [rows, d] (row stride 3H), rhs Kᵀ [d, len] (column stride 3H).
            gemm::gemm(
                rows,
                len,
                d,
                scores.as_mut_ptr(),
                1,
                len as isize,
                false,
                q[q0 * stride..].as_ptr(),
                1,
                stride as isize,
                k.as_ptr(),
                stride as isize,
                1,
                0.0,
                it.scale,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
            for row in scores.chunks_exact_mut(len) {
                let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                row.iter_mut().for_each(|s| *s -= max);
                crate::cpu::vmath::exp_in_place(row);
                let inv = 1.0 / row.iter().sum::<f32>();
                row.iter_mut().for_each(|s| *s *= inv);
            }
            // out rows = P·V: lhs P [rows, len], rhs V [len, d] (row stride 3H).
            gemm::gemm(
                rows,
                d,
                len,
                out.add(q0 * out_stride),
                1,
                out_stride as isize,
                false,
                scores.as_ptr(),
                1,
                len as isize,
                v.as_ptr(),
                1,
                stride as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
}

/// The register-tiled form (see the module's notes).
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{round_up, Item, Scratch, LANES, QR};
    use std::arch::x86_64::*;

    /// exp(x) for the softmax (x ≤ 0 once the max is subtracted; anything ≥ −87 keeps full precision), as
    /// `vmath`'s scalar exp: x = n·ln2 + r with a Cody–Waite split of ln2 (|r| ≤ ln2/2), e^r by its
    /// Taylor series to degree 7, then ·2ⁿ with scalef (which also flushes underflow to 0).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn exp_ps(x: __m512) -> __m512 {
        const LN2_HI: f32 = 0.693_145_75;
        const LN2_LO: f32 = 1.428_606_8e-6;
        let x = _mm512_max_ps(x, _mm512_set1_ps(-104.0));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
        let mut p = _mm512_set1_ps(1.0 / 5040.0);
        for c in [
            1.0 / 720.0,
            1.0 / 120.0,
            1.0 / 24.0,
            1.0 / 6.0,
            0.5,
            1.0,
            1.0,
        ] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        _mm512_scalef_ps(p, n)
    }

    /// Mask of the first `n` (≤ 16) lanes.
    #[inline]
    fn lanes(n: usize) -> __mmask16 {
        if n >= LANES {
            0xffff
        } else {
            ((1u32 << n) - 1) as __mmask16
        }
    }

    /// # Safety
    /// As `super::attend` (the item checked); the CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn attend(it: &Item<'_>, out: *mut f32, out_stride: usize, sc: &mut Scratch) {
        let (len, d) = (it.len, it.head_dim);
        let (lp, dp) = (round_up(len, LANES), round_up(d, LANES));
        let col = it.head * d;
        let base = it.qkv.as_ptr();
        assert!(
            it.stride * LANES <= i32::MAX as usize,
            "gather offsets must fit i32"
        );
        let q_row = |j: usize| base.add(j * it.stride + col);
        let k_row = |j: usize| base.add(j * it.stride + it.hidden + col);
        let v_row = |j: usize| base.add(j * it.stride + 2 * it.hidden + col);

        // Kᵀ [d][lp] (keys past len zero) and V [len][dp] (columns past d zero).
        sc.kt.clear();
        sc.kt.resize(d * lp, 0.0);
        sc.v.clear();
        sc.v.resize(len * dp, 0.0);
        let (kt, v) = (sc.kt.as_mut_ptr(), sc.v.as_mut_ptr());
        // Kᵀ by gathers: element c of 16 consecutive keys in one instruction (a scalar transpose costs
        // more than the products it feeds at head_dim 32).
        let rows = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(it.stride as i32),
        );
        for j0 in (0..len).step_by(LANES) {
            let m = lanes(len - j0);
            let k = k_row(j0);
            for c in 0..d {
                let zero = _mm512_setzero_ps();
                let g = _mm512_mask_i32gather_ps::<4>(zero, m, rows, k.add(c));
                _mm512_storeu_ps(kt.add(c * lp + j0), g);
            }
        }
        for j in 0..len {
            for c0 in (0..d).step_by(LANES) {
                let m = lanes(d - c0);
                let x = _mm512_maskz_loadu_ps(m, v_row(j).add(c0));
                _mm512_mask_storeu_ps(v.add(j * dp + c0), m, x);
            }
        }
        sc.s.clear();
        sc.s.resize(QR * lp, 0.0);
        let s = sc.s.as_mut_ptr();
        let scale = _mm512_set1_ps(it.scale);

        for q0 in (0..it.queries).step_by(QR) {
            let nq = QR.min(it.queries - q0);
            // Rows past the last query repeat it: computed, never written.
            let qr: [*const f32; QR] = std::array::from_fn(|i| q_row(q0 + i.min(nq - 1)));

            // S = scale · Q·Kᵀ
            for j0 in (0..lp).step_by(LANES) {
                let mut acc = [_mm512_setzero_ps(); QR];
                for c in 0..d {
                    let kv = _mm512_loadu_ps(kt.add(c * lp + j0));
                    for i in 0..QR {
                        acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(*qr[i].add(c)), kv, acc[i]);
                    }
                }
                for (i, a) in acc.iter().enumerate() {
                    _mm512_storeu_ps(s.add(i * lp + j0), _mm512_mul_ps(*a, scale));
                }
            }

            // Softmax of each real row over its len keys; 1/Σ kept for the output.
            let mut inv = [0f32; QR];
            for (i, inv) in inv.iter_mut().enumerate().take(nq) {
                let row = s.add(i * lp);
                let mut m = _mm512_set1_ps(f32::NEG_INFINITY);
                for j0 in (0..len).step_by(LANES) {
                    let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
                    m = _mm512_max_ps(m, _mm512_mask_loadu_ps(ninf, lanes(len - j0), row.add(j0)));
                }
                let max = _mm512_set1_ps(_mm512_reduce_max_ps(m));
                let mut sum = _mm512_setzero_ps();
                for j0 in (0..len).step_by(LANES) {
                    let k = lanes(len - j0);
                    let e = exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, row.add(j0)), max));
                    let e = _mm512_maskz_mov_ps(k, e);
                    _mm512_storeu_ps(row.add(j0), e);
                    sum = _mm512_add_ps(sum, e);
                }
                *inv = 1.0 / _mm512_reduce_add_ps(sum);
            }

            // O = P·V / Σ
            for c0 in (0..dp).step_by(LANES) {
                let mut acc = [_mm512_setzero_ps(); QR];
                for j in 0..len {
                    let vv = _mm512_loadu_ps(v.add(j * dp + c0));
                    for (i, a) in acc.iter_mut().enumerate() {
                        *a = _mm512_fmadd_ps(_mm512_set1_ps(*s.add(i * lp + j)), vv, *a);
                    }
                }
                let m = lanes(d - c0);
                for i in 0..nq {
                    let o = out.add((q0 + i) * out_stride + c0);
                    _mm512_mask_storeu_ps(o, m, _mm512_mul_ps(acc[i], _mm512_set1_ps(inv[i])));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A float64 reference of one item.
    fn reference(it: &Item<'_>) -> Vec<f64> {
        let (d, col) = (it.head_dim, it.head * it.head_dim);
        let at = |j: usize, part: usize, c: usize| {
            it.qkv[j * it.stride + part * it.hidden + col + c] as f64
        };
        let mut out = vec![0f64; it.queries * d];
        for q in 0..it.queries {
            let s: Vec<f64> = (0..it.len)
                .map(|j| (0..d).map(|c| at(q, 0, c) * at(j, 1, c)).sum::<f64>() * it.scale as f64)
                .collect();
            let max = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            for c in 0..d {
                out[q * d + c] = (0..it.len).map(|j| e[j] * at(j, 2, c)).sum::<f64>() / sum;
            }
        }
        out
    }

    /// Both forms against float64 on ragged lengths (tile and lane tails), head_dims 26, 32, 64, all
    /// queries and the [CLS] query only.
    #[test]
    fn both_forms_match_float64() {
        for (heads, d) in [(3usize, 26usize), (2, 32), (2, 64)] {
            let hidden = heads * d;
            let stride = 3 * hidden;
            for len in [1usize, 2, 7, 8, 9, 15, 16, 17, 33, 93, 130] {
                let qkv: Vec<f32> = (0..len * stride)
                    .map(|i| (((i * 7919 + len) % 1013) as f32 - 506.0) / 400.0)
                    .collect();
                for queries in [len, 1] {
                    for head in 0..heads {
                        let it = Item {
                            qkv: &qkv,
                            stride,
                            hidden,
                            head,
                            head_dim: d,
                            len,
                            queries,
                            scale: 1.0 / (d as f32).sqrt(),
                        };
                        let want = reference(&it);
                        let mut forms: Vec<(&str, Vec<f32>)> = Vec::new();
                        let mut out = vec![f32::NAN; queries * d];
                        let mut sc = Scratch::default();
                        // SAFETY: out holds `queries` rows of d.
                        unsafe { portable::attend(&it, out.as_mut_ptr(), d, &mut sc) };
                        forms.push(("portable", out));
                        #[cfg(target_arch = "x86_64")]
                        if std::arch::is_x86_feature_detected!("avx512f") {
                            let mut out = vec![f32::NAN; queries * d];
                            // SAFETY: as above; the CPU has AVX-512F.
                            unsafe { avx512::attend(&it, out.as_mut_ptr(), d, &mut sc) };
                            forms.push(("avx512", out));
                        }
                        for (name, got) in forms {
                            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                                assert!(
                                    (*g as f64 - w).abs() <= 2e-6 * (1.0 + w.abs()),
                                    "{name} d={d} len={len} queries={queries} head={head} [{i}]: {g} vs {w}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn exp_ps_is_within_a_few_ulp() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            eprintln!("exp_ps: skipped: this CPU has no AVX-512F");
            return;
        }
        use std::arch::x86_64::*;
        for i in 0..100_000 {
            let x0 = -87.0 + i as f32 * 87.0 / 100_000.0;
            let xs: [f32; 16] = std::array::from_fn(|l| x0 + l as f32 * 87.0 / 1_600_000.0);
            let mut got = [0f32; 16];
            // SAFETY: the CPU has AVX-512F; both arrays hold 16 floats.
            unsafe {
                _mm512_storeu_ps(
                    got.as_mut_ptr(),
                    avx512::exp_ps(_mm512_loadu_ps(xs.as_ptr())),
                )
            };
            for (x, g) in xs.iter().zip(got) {
                let want = (*x as f64).exp();
                assert!(
                    ((g as f64 - want) / want).abs() < 3e-7,
                    "exp({x}) = {g}, want {want}"
                );
            }
        }
        let mut got = [1f32; 16];
        // SAFETY: as above.
        unsafe {
            let x = _mm512_set1_ps(f32::NEG_INFINITY);
            _mm512_storeu_ps(got.as_mut_ptr(), avx512::exp_ps(x));
        }
        assert!(got.iter().all(|&g| g == 0.0 || g < 1e-30));
    }
}
