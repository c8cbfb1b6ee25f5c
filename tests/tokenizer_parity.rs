//! xenc's WordPiece engine against Hugging Face `tokenizers` (the reference): identical input_ids and
//! token_type_ids for whole pairs, for pieces and for pieces joined, on the golden pairs, on the
//! seeded `xenc bench` workload and on a seeded fuzz corpus of Unicode edge cases, at several
//! max_length values; the same on edited copies of tokenizer.json covering the other settings the
//! engine supports; and a fallback to `tokenizers` for the shapes it does not.

mod common;

use std::path::{Path, PathBuf};

use common::{goldens, test_model};
use xenc::bench::Rng;
use xenc::tokenize::{Engine, PairTokenizer};

fn tokenizer_json() -> PathBuf {
    test_model("f32").join("tokenizer.json")
}

/// The same tokenizer.json loaded by both engines.
struct Engines {
    hf: PairTokenizer,
    fast: PairTokenizer,
    max_length: usize,
}

fn engines(path: &Path, max_length: usize) -> Engines {
    let hf = PairTokenizer::from_file_with(path, max_length, Engine::Hf).unwrap();
    let fast = PairTokenizer::from_file_with(path, max_length, Engine::Xenc)
        .unwrap_or_else(|e| panic!("xenc's engine should take {}: {e}", path.display()));
    assert_eq!(hf.engine(), "hf-tokenizers");
    assert_eq!(fast.engine(), "xenc-wordpiece");
    Engines {
        hf,
        fast,
        max_length,
    }
}

/// What was compared, for the report at the end of a test.
#[derive(Default, Debug)]
struct Tally {
    pairs: usize,
    pieces: usize,
    truncated: usize,
    unk: usize,
    failures: usize,
    first_failure: Option<String>,
}

impl Tally {
    fn assert_clean(&self, what: &str) {
        eprintln!(
            "{what}: {} pairs ({} truncated, {} with [UNK]), {} pieces, {} differences",
            self.pairs, self.truncated, self.unk, self.pieces, self.failures
        );
        assert!(self.pairs > 0, "{what}: nothing compared");
        if let Some(f) = &self.first_failure {
            panic!(
                "{what}: {} of {} pairs differ between hf-tokenizers and xenc-wordpiece; the first:\n{f}",
                self.failures, self.pairs
            );
        }
    }
}

/// Compares one pair on both engines: encode_pair, encode_piece of each side, and join of the pieces
/// (which must equal encode_pair on each engine). Err describes the first difference.
fn compare(e: &Engines, q: &str, d: &str, t: &mut Tally) -> Result<(), String> {
    t.pairs += 1;
    let input = format!(
        "  max_length: {}\n  query:    {q:?}\n  document: {d:?}",
        e.max_length
    );
    let hf = e.hf.encode_pair(q, d);
    let fast = e.fast.encode_pair(q, d);
    let same = match (&hf, &fast) {
        (Ok(a), Ok(b)) => a == b,
        (Err(a), Err(b)) => a.to_string() == b.to_string(),
        _ => false,
    };
    if !same {
        return Err(format!(
            "encode_pair differs\n{input}\n  hf:   {hf:?}\n  xenc: {fast:?}"
        ));
    }
    let Ok(pair) = hf else { return Ok(()) };
    if pair.input_ids.contains(&100) {
        t.unk += 1;
    }
    let mut piece_lens = 0;
    for (side, text) in [("query", q), ("document", d)] {
        t.pieces += 1;
        let a = e.hf.encode_piece(text).map(|p| p.ids().to_vec());
        let b = e.fast.encode_piece(text).map(|p| p.ids().to_vec());
        match (&a, &b) {
            (Ok(x), Ok(y)) if x == y => piece_lens += x.len(),
            _ => {
                return Err(format!(
                    "encode_piece({side}) differs\n{input}\n  hf:   {a:?}\n  xenc: {b:?}"
                ))
            }
        }
    }
    if piece_lens + 3 > e.max_length {
        t.truncated += 1;
    }
    for tok in [&e.hf, &e.fast] {
        let joined = tok
            .join(&tok.encode_piece(q).unwrap(), &tok.encode_piece(d).unwrap())
            .map_err(|x| format!("{}: join failed: {x}\n{input}", tok.engine()))?;
        if joined != pair {
            return Err(format!(
                "{}: join(pieces) differs from encode_pair\n{input}\n  encode_pair: {:?}\n  join:        {:?}",
                tok.engine(),
                pair.input_ids,
                joined.input_ids
            ));
        }
    }
    Ok(())
}

fn compare_all<'a>(
    e: &Engines,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    t: &mut Tally,
) {
    for (q, d) in pairs {
        if let Err(msg) = compare(e, q, d, t) {
            t.failures += 1;
            t.first_failure.get_or_insert(msg);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The fuzz corpus.

/// Strings that exercise one rule each (or several).
const EDGE: &[&str] = &[
    // Accented Latin, composed and decomposed; marks in non-canonical order; stacked marks.
    "café",
    "cafe\u{301}",
    "naïve",
    "nai\u{308}ve",
    "Ångström",
    "A\u{30a}ngstro\u{308}m",
    "São",
    "Straße",
    "ẞ",
    "ﬁancé",
    "Ǆemal",
    "ǅ",
    "ø",
    "Łódź",
    "ı",
    "İstanbul",
    "I\u{307}",
    "q\u{323}\u{307}",
    "q\u{307}\u{323}",
    "a\u{301}\u{316}\u{302}",
    "e\u{334}\u{301}",
    "\u{301}leading",
    "x\u{20dd}",
    "\u{212b}",
    "\u{212a}elvin",
    "\u{2126}",
    "ǰ",
    "Ǳ",
    "ŉ",
    // Greek and Cyrillic.
    "Ωμέγα",
    "ΟΔΥΣΣΕΥΣ",
    "ς",
    "ΐ",
    "\u{390}",
    "Ἄθηνα",
    "Привет",
    "ЁЛКА",
    "й",
    "и\u{306}",
    "Ґ",
    // CJK, compatibility ideographs, extension B, kana (full and half width), Korean.
    "中文字符",
    "我爱北京天安门",
    "\u{f900}\u{f91d}\u{fa10}",
    "\u{2f800}",
    "\u{20000}\u{2a6d6}",
    "\u{3400}",
    "漢字かな交じり文",
    "ひらがな",
    "カタカナ",
    "ｶﾀｶﾅ",
    "ﾊﾟ",
    "ガ",
    "カ\u{3099}",
    "ー",
    "한국어",
    "\u{1100}\u{1161}\u{11a8}",
    "안녕하세요",
    "\u{3131}",
    "、。「」・",
    // Other scripts.
    "مرحبا",
    "\u{64a}\u{64e}\u{651}",
    "שָׁלוֹם",
    "नमस्ते",
    "क़",
    "\u{915}\u{93c}",
    "ภาษาไทย",
    "\u{e01}\u{e49}\u{e33}",
    "ሰላም",
    "ᏣᎳᎩ",
    "\u{13a0}\u{ab70}",
    "ꭰ",
    "𝐀𝐁𝐂",
    "𝔘𝔫𝔦",
    "ℌ",
    // Emoji: plain, skin tones, ZWJ sequences, flags, keycaps, variation selectors.
    "👍",
    "👍🏽",
    "👨‍👩‍👧‍👦",
    "🧑🏿‍🚀",
    "🇫🇷🇯🇵",
    "🏴\u{e0067}\u{e0062}\u{e0065}\u{e006e}\u{e0067}\u{e007f}",
    "1\u{fe0f}\u{20e3}",
    "❤\u{fe0f}",
    "☺",
    "🙂🙃",
    "\u{1f600}x",
    // Controls, NUL, U+FFFD, zero-width and format characters, private use, noncharacters.
    "\0",
    "a\0b",
    "\u{7}",
    "\u{1b}[31m",
    "\u{7f}",
    "\u{80}\u{9f}",
    "\u{85}",
    "\u{fffd}",
    "a\u{fffd}b",
    "zero\u{200b}width",
    "join\u{200d}er",
    "non\u{200c}join",
    "\u{2060}",
    "\u{feff}bom",
    "soft\u{ad}hyphen",
    "\u{200e}\u{200f}\u{202e}rtl\u{202c}",
    "\u{e000}\u{f8ff}",
    "\u{f0000}",
    "\u{ffff}",
    "\u{fffe}",
    "\u{378}",
    "\u{e0001}",
    "\u{180e}",
    "\u{61c}",
    "a\u{b}b",
    "a\u{c}b",
    "a\u{1c}b\u{1f}c",
    // Punctuation and symbols, ASCII and not.
    "“quoted”",
    "«guillemets»",
    "¿Qué?",
    "¡Hola!",
    "em—dash",
    "en–dash",
    "a‐b",
    "…",
    "‰",
    "§¶",
    "€100",
    "$5",
    "50%",
    "°C",
    "©®™",
    "½",
    "x²",
    "ＡＢＣ！",
    "１２３",
    "a_b",
    "x^y",
    "~tilde",
    "`tick`",
    "<tag>",
    "{brace}",
    "|pipe|",
    "back\\slash",
    "'quote'",
    "\"dq\"",
    "#hash",
    "##ing",
    "@user",
    "e-mail",
    "U.S.A.",
    "o'clock",
    "#1",
    "...",
    "!!!",
    "?!",
    "a/b/c",
    "k=v&x=y",
    // Literal special tokens and near misses.
    "[SEP]",
    "[CLS]",
    "[MASK]",
    "[PAD]",
    "[UNK]",
    "[unused1]",
    "[unused99]",
    "[sep]",
    "[Sep]",
    "[SEP",
    "SEP]",
    "[[SEP]]",
    "x[SEP]y",
    "[CLS][SEP]",
    "[MASK]ed",
    "un[MASK]",
    "[ SEP ]",
    "[SEP]\u{301}",
    "[MA[MASK]",
    "\u{200b}[SEP]",
    "[\u{200b}SEP]",
    // Numbers.
    "3.14159",
    "1,000,000",
    "2024-01-01",
    "10:30",
    "0x1F",
    "1e-9",
    "v1.2.3",
];

/// Every White_Space character, and characters that look like whitespace but are not.
const SPACES: &[&str] = &[
    " ", " ", " ", "  ", "\t", "\n", "\r\n", "\r", "\u{b}", "\u{c}", "\u{85}", "\u{a0}",
    "\u{1680}", "\u{2000}", "\u{2001}", "\u{2002}", "\u{2003}", "\u{2004}", "\u{2005}", "\u{2006}",
    "\u{2007}", "\u{2008}", "\u{2009}", "\u{200a}", "\u{2028}", "\u{2029}", "\u{202f}", "\u{205f}",
    "\u{3000}", "\u{180e}", "\u{200b}", "\u{1c}", "\u{1d}", "\u{1e}", "\u{1f}", "",
];

/// Combining marks of several classes (ccc 1..240, Mn, Mc, Me), for canonical reordering.
const MARKS: &[char] = &[
    '\u{300}',
    '\u{301}',
    '\u{302}',
    '\u{303}',
    '\u{308}',
    '\u{30a}',
    '\u{316}',
    '\u{323}',
    '\u{327}',
    '\u{328}',
    '\u{334}',
    '\u{345}',
    '\u{35c}',
    '\u{362}',
    '\u{591}',
    '\u{5b0}',
    '\u{64b}',
    '\u{93c}',
    '\u{94d}',
    '\u{93e}',
    '\u{903}',
    '\u{e48}',
    '\u{e38}',
    '\u{302a}',
    '\u{302b}',
    '\u{3099}',
    '\u{1dc0}',
    '\u{20d0}',
    '\u{20dd}',
    '\u{fe20}',
    '\u{1d165}',
    '\u{1d16d}',
    '\u{e0100}',
    '\u{fe0f}',
    '\u{200d}',
];

struct Fuzz {
    rng: Rng,
    words: Vec<String>,
    extra: Vec<String>,
}

impl Fuzz {
    fn new(seed: u64, words: Vec<String>, extra: &[&str]) -> Self {
        Fuzz {
            rng: Rng::new(seed),
            words,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn pick<'a, T>(&mut self, list: &'a [T]) -> &'a T {
        &list[self.rng.range(0, list.len() - 1)]
    }

    /// A random scalar value, mostly from the blocks that matter.
    fn code_point(&mut self) -> char {
        loop {
            let (lo, hi) = *self.pick(&[
                (0x20u32, 0x7f),
                (0x80, 0x250),
                (0x250, 0x800),
                (0x800, 0x3000),
                (0x3000, 0xa000),
                (0xa000, 0xd800),
                (0xe000, 0x10000),
                (0x10000, 0x30000),
                (0x0, 0x110000),
            ]);
            if let Some(c) = char::from_u32(self.rng.range(lo as usize, hi as usize - 1) as u32) {
                return c;
            }
        }
    }

    fn ascii_word(&mut self) -> String {
        let n = self.rng.range(1, 12);
        (0..n)
            .map(|_| {
                let r = self.rng.range(0, 99);
                if r < 70 {
                    (b'a' + self.rng.range(0, 25) as u8) as char
                } else if r < 90 {
                    (b'A' + self.rng.range(0, 25) as u8) as char
                } else {
                    (b'0' + self.rng.range(0, 9) as u8) as char
                }
            })
            .collect()
    }

    fn fragment(&mut self) -> String {
        match self.rng.range(0, 19) {
            0..=4 => {
                // A vocabulary word, sometimes capitalised or shouted.
                let w = self.words[self.rng.range(0, self.words.len() - 1)].clone();
                match self.rng.range(0, 5) {
                    0 => w.to_uppercase(),
                    1 => {
                        let mut c = w.chars();
                        c.next()
                            .map(|f| f.to_uppercase().chain(c).collect())
                            .unwrap_or_default()
                    }
                    _ => w,
                }
            }
            5 | 6 => self.ascii_word(),
            7 => {
                let n = self.rng.range(1, 4);
                (0..n)
                    .map(|_| (*self.pick(b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")) as char)
                    .collect()
            }
            8..=11 => self.pick(EDGE).to_string(),
            12 | 13 => {
                let n = self.rng.range(1, 6);
                (0..n).map(|_| self.code_point()).collect()
            }
            14 => {
                // A base letter with marks in random order.
                let mut s =
                    String::from(*self.pick(&['a', 'e', 'o', 'A', 'n', 'क', 'ก', 'α', 'и', 'か']));
                for _ in 0..self.rng.range(1, 4) {
                    s.push(*self.pick(MARKS));
                }
                s
            }
            15 => {
                // Very long words, around max_input_chars_per_word (100).
                let unit = self
                    .pick(&[
                        "a",
                        "ab",
                        "é",
                        "e\u{301}",
                        "İ",
                        "中",
                        "x\u{200b}",
                        "ß",
                        "🙂",
                        "[SEP]",
                    ])
                    .to_string();
                let n = *self.pick(&[50, 99, 100, 101, 150, 300]);
                unit.repeat(n / unit.chars().count().max(1))
            }
            16 => self.pick(SPACES).to_string(),
            17 if !self.extra.is_empty() => {
                self.extra[self.rng.range(0, self.extra.len() - 1)].clone()
            }
            _ => {
                let c = self.code_point();
                format!("{}{c}{}", self.ascii_word(), self.ascii_word())
            }
        }
    }

    fn text(&mut self, fragments: usize) -> String {
        let mut s = String::new();
        for i in 0..fragments {
            if i > 0 {
                let sep = match self.rng.range(0, 9) {
                    0..=5 => " ",
                    6 => "",
                    7 => self.pick(SPACES),
                    _ => self.pick(&[",", ". ", " - ", "\n\n", "/", "  "]),
                };
                s.push_str(sep);
            }
            let f = self.fragment();
            s.push_str(&f);
        }
        if self.rng.range(0, 9) == 0 {
            s = format!("{}{s}{}", self.pick(SPACES), self.pick(SPACES));
        }
        s
    }

    /// A pair whose lengths suit `max_length`: mostly around it, some far beyond it (tokenizers'
    /// reference truncation builds every overflowing window of both sides, so tiny limits on very
    /// long texts would only make the test slow), some empty.
    fn pair(&mut self, max_length: usize) -> (String, String) {
        let (q_long, d_long) = match max_length {
            0..=16 => ((10, 30), (20, 40)),
            17..=64 => ((30, 100), (60, 200)),
            _ => ((100, 400), (200, 700)),
        };
        let q = match self.rng.range(0, 19) {
            0 => 0,
            1 => self.rng.range(q_long.0, q_long.1),
            _ => self.rng.range(1, 20.min(q_long.0)),
        };
        let d = match self.rng.range(0, 24) {
            0 => 0,
            1 => self.rng.range(d_long.0, d_long.1),
            _ => self.rng.range(1, 60.min(d_long.0)),
        };
        (self.text(q), self.text(d))
    }

    fn pairs(&mut self, n: usize, max_length: usize) -> Vec<(String, String)> {
        (0..n).map(|_| self.pair(max_length)).collect()
    }
}

fn vocab_words(tok: &PairTokenizer) -> Vec<String> {
    let vocab = tok.vocab();
    let mut words: Vec<String> =
        xenc::bench::words_from_vocab(vocab.iter().map(|(w, &i)| (w.as_str(), i)));
    // Some pieces and non-ASCII entries too.
    let mut others: Vec<(&String, &u32)> = vocab
        .iter()
        .filter(|(w, _)| !w.is_ascii() || w.starts_with("##"))
        .collect();
    others.sort_by_key(|(_, &i)| i);
    words.extend(others.into_iter().step_by(7).map(|(w, _)| w.clone()));
    words
}

fn as_strs(pairs: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> {
    pairs.iter().map(|(q, d)| (q.as_str(), d.as_str()))
}

// ---------------------------------------------------------------------------------------------
// The test checkpoint's tokenizer.json.

#[test]
fn the_test_checkpoint_gets_the_fast_engine_by_default() {
    let tok = PairTokenizer::from_file_with(&tokenizer_json(), 512, Engine::Auto).unwrap();
    assert_eq!(
        tok.engine(),
        "xenc-wordpiece",
        "{:?}",
        tok.fallback_reason()
    );
    assert_eq!(tok.fallback_reason(), None);
}

#[test]
fn golden_pairs_match_at_every_max_length() {
    let gold = goldens();
    for max_length in [8, 32, 128, 512] {
        let e = engines(&tokenizer_json(), max_length);
        let mut t = Tally::default();
        compare_all(
            &e,
            gold.iter().map(|g| (g.query.as_str(), g.document.as_str())),
            &mut t,
        );
        t.assert_clean(&format!("golden pairs, max_length {max_length}"));
        assert_eq!(t.pairs, gold.len());
    }
    // And the goldens themselves (transformers' ids) on the fast engine.
    let fast = PairTokenizer::from_file_with(&tokenizer_json(), 512, Engine::Xenc).unwrap();
    for (i, g) in gold.iter().enumerate() {
        let e = fast.encode_pair(&g.query, &g.document).unwrap();
        assert_eq!(e.input_ids, g.input_ids, "{}", common::label(g, i));
        assert_eq!(
            e.token_type_ids,
            g.token_type_ids,
            "{}",
            common::label(g, i)
        );
    }
}

#[test]
fn bench_workload_matches() {
    for max_length in [128, 512] {
        let e = engines(&tokenizer_json(), max_length);
        let pairs = xenc::bench::generate_with(&e.fast, 2000, 42);
        let mut t = Tally::default();
        compare_all(&e, as_strs(&pairs), &mut t);
        t.assert_clean(&format!(
            "xenc::bench::generate_with(2000, 42), max_length {max_length}"
        ));
        assert_eq!(t.pairs, 2000);
        // encode_pairs (parallel) agrees too.
        assert_eq!(
            e.hf.encode_pairs(&pairs).unwrap(),
            e.fast.encode_pairs(&pairs).unwrap()
        );
    }
}

/// 5,000 fuzz pairs (10,000 pieces) at one max_length; four tests make the 20,000.
fn fuzz_at(max_length: usize, seed: u64) {
    let e = engines(&tokenizer_json(), max_length);
    let pairs = Fuzz::new(seed, vocab_words(&e.fast), &[]).pairs(5000, max_length);
    let mut t = Tally::default();
    compare_all(&e, as_strs(&pairs), &mut t);
    t.assert_clean(&format!("fuzz seed {seed}, max_length {max_length}"));
    assert!(t.truncated > 100, "too few truncated pairs: {t:?}");
    assert!(t.unk > 100, "too few [UNK]s: {t:?}");
}

#[test]
fn fuzz_max_length_8() {
    fuzz_at(8, 1);
}

#[test]
fn fuzz_max_length_32() {
    fuzz_at(32, 2);
}

#[test]
fn fuzz_max_length_128() {
    fuzz_at(128, 3);
}

#[test]
fn fuzz_max_length_512() {
    fuzz_at(512, 4);
}

#[test]
fn max_length_without_room_for_text_is_the_same_error() {
    for engine in [Engine::Hf, Engine::Xenc, Engine::Auto] {
        for max_length in [0, 1, 3] {
            let e = PairTokenizer::from_file_with(&tokenizer_json(), max_length, engine)
                .err()
                .unwrap_or_else(|| panic!("max_length {max_length} should be refused"));
            assert!(e.to_string().contains("leaves no room"), "{e}");
        }
        assert!(PairTokenizer::from_file_with(&tokenizer_json(), 4, engine).is_ok());
    }
}

#[test]
fn pieces_of_one_engine_join_only_on_that_engine() {
    let e = engines(&tokenizer_json(), 64);
    let q = e.fast.encode_piece("what is rust").unwrap();
    let d = e.fast.encode_piece("a language").unwrap();
    assert!(e.hf.join(&q, &d).is_err());
    let (hq, hd) = (
        e.hf.encode_piece("what is rust").unwrap(),
        e.hf.encode_piece("a language").unwrap(),
    );
    assert_eq!(e.fast.join(&hq, &hd).unwrap(), e.hf.join(&hq, &hd).unwrap());
}

// ---------------------------------------------------------------------------------------------
// Edited copies of tokenizer.json.

fn edited(edit: impl FnOnce(&mut serde_json::Value)) -> (tempfile::TempDir, PathBuf) {
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tokenizer_json()).unwrap()).unwrap();
    edit(&mut json);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, serde_json::to_string(&json).unwrap()).unwrap();
    (dir, path)
}

fn normalizer(
    clean_text: bool,
    chinese: bool,
    strip: serde_json::Value,
    lowercase: bool,
) -> serde_json::Value {
    serde_json::json!({
        "type": "BertNormalizer", "clean_text": clean_text, "handle_chinese_chars": chinese,
        "strip_accents": strip, "lowercase": lowercase
    })
}

fn added(
    content: &str,
    id: u32,
    lstrip: bool,
    rstrip: bool,
    normalized: bool,
    special: bool,
) -> serde_json::Value {
    serde_json::json!({
        "id": id, "content": content, "single_word": false, "lstrip": lstrip, "rstrip": rstrip,
        "normalized": normalized, "special": special
    })
}

/// Every supported variation of the shape, each on 1,500 fuzz pairs (with its own added tokens in
/// the text) at max_length 128 and on the golden pairs at 512.
#[test]
fn supported_variants_match() {
    use serde_json::{json, Value};
    type Edit = Box<dyn Fn(&mut Value)>;
    let set_normalizer =
        |n: Value| -> Edit { Box::new(move |j: &mut Value| j["normalizer"] = n.clone()) };
    let variants: Vec<(&str, Edit, Vec<&str>)> = vec![
        (
            "cased (lowercase false, strip_accents null)",
            set_normalizer(normalizer(true, true, Value::Null, false)),
            vec![],
        ),
        (
            "strip_accents true, lowercase false",
            set_normalizer(normalizer(true, true, json!(true), false)),
            vec![],
        ),
        (
            "strip_accents false, lowercase true",
            set_normalizer(normalizer(true, true, json!(false), true)),
            vec![],
        ),
        (
            "clean_text false",
            set_normalizer(normalizer(false, true, Value::Null, true)),
            vec![],
        ),
        (
            "handle_chinese_chars false",
            set_normalizer(normalizer(true, false, Value::Null, true)),
            vec![],
        ),
        (
            "everything off",
            set_normalizer(normalizer(false, false, json!(false), false)),
            vec![],
        ),
        (
            "added tokens: lstrip, rstrip, normalized, new ids, overlapping",
            Box::new(|j: &mut Value| {
                let list = j["added_tokens"].as_array_mut().unwrap();
                for t in list.iter_mut() {
                    match t["content"].as_str().unwrap() {
                        "[MASK]" => {
                            t["lstrip"] = json!(true);
                            t["rstrip"] = json!(true);
                        }
                        "[SEP]" => t["rstrip"] = json!(true),
                        "[CLS]" => t["lstrip"] = json!(true),
                        _ => {}
                    }
                }
                list.push(added("[MA", 30522, false, false, false, false));
                list.push(added("<new token>", 30523, false, false, false, true));
                list.push(added("Hello World", 30524, false, false, true, false));
                list.push(added("naïve", 30525, false, true, true, false));
                list.push(added("中国", 30526, true, false, true, false));
                list.push(added("running", 2770, false, false, true, false));
                list.push(added("[Foo]", 30527, true, true, true, false));
            }),
            vec![
                "[MASK]",
                " [MASK] ",
                "x [MASK]  y",
                "[MA",
                "[MASK",
                "<new token>",
                "<new  token>",
                "hello world",
                "HELLO WORLD",
                "Hello\u{a0}World",
                "hello  world",
                "naïve",
                "NAI\u{308}VE  x",
                "中国",
                "中国人",
                " 中国",
                "running",
                "Running",
                "[foo]",
                " [FOO] ",
                "[Foo]",
                "[SEP] ",
                " [CLS]",
            ],
        ),
        (
            "BertProcessing",
            Box::new(|j: &mut Value| {
                j["post_processor"] =
                    json!({"type": "BertProcessing", "sep": ["[SEP]", 102], "cls": ["[CLS]", 101]})
            }),
            vec![],
        ),
        (
            "max_input_chars_per_word 5",
            Box::new(|j: &mut Value| j["model"]["max_input_chars_per_word"] = json!(5)),
            vec![],
        ),
        (
            "no added tokens",
            Box::new(|j: &mut Value| j["added_tokens"] = json!([])),
            vec![],
        ),
    ];
    let gold = goldens();
    for (seed, (name, edit, extra)) in variants.into_iter().enumerate() {
        let (_dir, path) = edited(edit);
        let e = engines(&path, 128);
        let pairs = Fuzz::new(100 + seed as u64, vocab_words(&e.fast), &extra).pairs(1500, 128);
        let mut t = Tally::default();
        compare_all(&e, as_strs(&pairs), &mut t);
        let e = engines(&path, 512);
        compare_all(
            &e,
            gold.iter().map(|g| (g.query.as_str(), g.document.as_str())),
            &mut t,
        );
        t.assert_clean(&format!("variant {name:?}"));
    }
}

/// An `unk_token` missing from the vocabulary is the checkpoint's fault, not a shape to fall back
/// on: every engine refuses it at load and names the token (before, the first unknown word failed
/// to encode and was reported as a bad input line).
#[test]
fn unk_token_outside_the_vocabulary_is_refused_by_every_engine() {
    use serde_json::{json, Value};
    let (_dir, path) = edited(|j: &mut Value| j["model"]["unk_token"] = json!("<unk>"));
    for engine in [Engine::Auto, Engine::Xenc, Engine::Hf] {
        let err = PairTokenizer::from_file_with(&path, 128, engine)
            .err()
            .unwrap_or_else(|| panic!("{engine:?}: should refuse"));
        assert!(
            err.to_string()
                .contains("unk_token \"<unk>\" is not in the vocabulary"),
            "{engine:?}: {err}"
        );
    }
}

/// Shapes the engine does not implement go to `tokenizers`, with the reason; `Engine::Xenc` refuses
/// them; both engines of the fallback still agree with plain `tokenizers`.
#[test]
fn unsupported_shapes_fall_back_to_tokenizers() {
    use serde_json::{json, Value};
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "normalizer",
            Box::new(|j: &mut Value| {
                j["normalizer"] = json!({"type": "Sequence", "normalizers": [
                    {"type": "NFD"}, {"type": "Lowercase"}, {"type": "StripAccents"}]})
            }),
        ),
        (
            "normalizer",
            Box::new(|j: &mut Value| j["normalizer"] = Value::Null),
        ),
        (
            "pre_tokenizer",
            Box::new(|j: &mut Value| j["pre_tokenizer"] = json!({"type": "Whitespace"})),
        ),
        (
            "post_processor",
            Box::new(|j: &mut Value| {
                j["post_processor"] = json!({"type": "RobertaProcessing", "sep": ["[SEP]", 102], "cls": ["[CLS]", 101],
                           "trim_offsets": true, "add_prefix_space": false})
            }),
        ),
        (
            "single_word",
            Box::new(|j: &mut Value| j["added_tokens"][3]["single_word"] = json!(true)),
        ),
        (
            "normalizer: unsupported field",
            Box::new(|j: &mut Value| j["normalizer"]["extra"] = json!(1)),
        ),
    ];
    let gold = goldens();
    for (why, edit) in cases {
        let (_dir, path) = edited(edit);
        let auto = PairTokenizer::from_file_with(&path, 128, Engine::Auto).unwrap();
        assert_eq!(auto.engine(), "hf-tokenizers", "{why}");
        let reason = auto.fallback_reason().unwrap();
        assert!(
            reason.contains(why.split(':').next().unwrap()),
            "{why}: reason {reason:?}"
        );
        let refused = PairTokenizer::from_file_with(&path, 128, Engine::Xenc)
            .err()
            .unwrap_or_else(|| panic!("{why}: Engine::Xenc should refuse"));
        assert!(
            refused.to_string().contains("does not support"),
            "{refused}"
        );
        let hf = PairTokenizer::from_file_with(&path, 128, Engine::Hf).unwrap();
        for g in gold.iter().take(20) {
            assert_eq!(
                format!("{:?}", auto.encode_pair(&g.query, &g.document)),
                format!("{:?}", hf.encode_pair(&g.query, &g.document)),
                "{why}"
            );
        }
    }
}
