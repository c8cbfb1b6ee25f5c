//! What `xenc bench` needs besides the model: a seeded generator of realistic pairs and order
//! statistics. Timings themselves are taken by the CLI; tests here only check shapes and determinism.

/// SplitMix64: a tiny, stable, seeded generator (the workload must be the same on every machine).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in lo..=hi.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.unit().max(f64::MIN_POSITIVE);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// Whole words of a WordPiece vocabulary usable as text (lowercase ASCII letters, 2+ chars), sorted
/// so the generated text does not depend on hash order.
pub fn words_from_vocab<'a>(vocab: impl IntoIterator<Item = (&'a str, u32)>) -> Vec<String> {
    let mut words: Vec<(u32, &str)> = vocab
        .into_iter()
        .filter(|(w, _)| w.len() >= 2 && w.bytes().all(|b| b.is_ascii_lowercase()))
        .map(|(w, id)| (id, w))
        .collect();
    words.sort();
    words.into_iter().map(|(_, w)| w.to_string()).collect()
}

/// [`generate_pairs`] from the words of `tokenizer`'s vocabulary.
pub fn generate_with(
    tokenizer: &crate::tokenize::PairTokenizer,
    n: usize,
    seed: u64,
) -> Vec<(String, String)> {
    let vocab = tokenizer.vocab();
    let words = words_from_vocab(vocab.iter().map(|(w, &id)| (w.as_str(), id)));
    generate_pairs(&words, n, seed)
}

/// `n` pairs shaped like reranking traffic: queries of 5–20 words; documents around 80 words
/// (log-normal) with a long tail to ~500 (1 in 20 is 200–500 words). Most vocabulary words are one
/// token, so word counts approximate token counts.
pub fn generate_pairs(words: &[String], n: usize, seed: u64) -> Vec<(String, String)> {
    assert!(!words.is_empty(), "no words to generate text from");
    let mut rng = Rng::new(seed);
    let text = |rng: &mut Rng, len: usize| -> String {
        let mut s = String::new();
        for i in 0..len {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(&words[rng.range(0, words.len() - 1)]);
        }
        s
    };
    (0..n)
        .map(|_| {
            let q_len = rng.range(5, 20);
            let d_len = if rng.unit() < 0.05 {
                rng.range(200, 500)
            } else {
                (80.0 * (0.35 * rng.normal()).exp())
                    .round()
                    .clamp(10.0, 400.0) as usize
            };
            (text(&mut rng, q_len), text(&mut rng, d_len))
        })
        .collect()
}

/// The `p`-th percentile (0..=100) by nearest rank; `None` for no samples.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    Some(s[rank.min(s.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_is_seeded_and_shaped_like_traffic() {
        let words: Vec<String> = ["alpha", "beta", "gamma", "delta"]
            .map(String::from)
            .to_vec();
        let a = generate_pairs(&words, 2000, 7);
        assert_eq!(a, generate_pairs(&words, 2000, 7));
        assert_ne!(a, generate_pairs(&words, 2000, 8));
        let q: Vec<usize> = a.iter().map(|(q, _)| q.split(' ').count()).collect();
        let d: Vec<usize> = a.iter().map(|(_, d)| d.split(' ').count()).collect();
        assert!(q.iter().all(|&l| (5..=20).contains(&l)));
        let median = percentile(&d.iter().map(|&x| x as f64).collect::<Vec<_>>(), 50.0).unwrap();
        assert!(
            (65.0..=95.0).contains(&median),
            "median document length {median}"
        );
        assert!(d.iter().any(|&l| l >= 300) && d.iter().all(|&l| (10..=500).contains(&l)));
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&s, 50.0), Some(50.0));
        assert_eq!(percentile(&s, 99.0), Some(99.0));
        assert_eq!(percentile(&s, 100.0), Some(100.0));
        assert_eq!(percentile(&[3.0], 99.0), Some(3.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn vocab_words_are_plain_and_ordered_by_id() {
        let v = [
            ("##ing", 5),
            ("the", 3),
            ("[CLS]", 1),
            ("a", 2),
            ("cat", 4),
            ("Über", 6),
        ];
        assert_eq!(
            words_from_vocab(v.iter().map(|&(w, i)| (w, i))),
            vec!["the", "cat"]
        );
    }
}
