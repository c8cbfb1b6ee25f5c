//! xenc's own BERT WordPiece tokenizer: the same ids as Hugging Face `tokenizers` for the one
//! tokenizer.json shape it supports, several times faster.
//!
//! The shape ([`WordPiece::from_json`] checks every field and says why it declines anything else):
//! normalizer `BertNormalizer`, pre-tokenizer `BertPreTokenizer`, model `WordPiece`, post-processor
//! `TemplateProcessing` (one `$A`, one `$B`) or `BertProcessing`, added tokens without `single_word`.
//!
//! What HF does, step by step, for one sequence (tokenizers 0.22: `added_vocabulary.rs`,
//! `normalizers/bert.rs`, `pre_tokenizers/bert.rs`, `models/wordpiece/mod.rs`):
//! 1. the raw text is split on the added tokens that are not `normalized` (leftmost-longest matches,
//!    `lstrip`/`rstrip` swallow the whitespace beside a match); each match is its token;
//! 2. every other part is normalised on its own: control characters, NUL and U+FFFD dropped and
//!    whitespace made a space (`clean_text`), spaces put around CJK ideographs
//!    (`handle_chinese_chars`), NFD then nonspacing marks (Mn) dropped (`strip_accents`, which
//!    follows `lowercase` when null), `char::to_lowercase` (`lowercase`);
//! 3. the normalised part is split on the added tokens that are `normalized` (their content
//!    normalised the same way);
//! 4. the rest is split on whitespace (dropped) and punctuation (each its own word);
//! 5. each word becomes greedy longest-match-first WordPiece tokens, or `unk_token` when a piece
//!    cannot be matched or the word has more than `max_input_chars_per_word` characters.
//!
//! This engine streams instead: it never builds the normalised text (unless `normalized` added
//! tokens exist), tracks no offsets, handles ASCII a byte at a time through two lookup tables,
//! normalises only the words that contain non-ASCII characters (NFD is only ever reordered between
//! starters, and ASCII characters, whitespace and the spaces HF inserts are all starters, so
//! normalising word by word is the same as normalising the whole text), looks words up without
//! copying them (the `##` pieces in a second map keyed without the prefix) and reuses its buffers.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Map, Value};
use unicode_categories::UnicodeCategories;
use unicode_normalization_alignments::UnicodeNormalization;

use super::EncodedPair;

type Vocab = HashMap<Box<str>, u32, foldhash::fast::FixedState>;

// ---------------------------------------------------------------------------------------------
// Character classes, exactly as tokenizers 0.22 defines them.

/// `is_other` (Cc, Cf, Co in unicode_categories' tables); `clean_text` drops these but \t \n \r.
const OTHER: u8 = 1;
/// `char::is_whitespace`.
const SPACE: u8 = 2;
/// `char::is_ascii_punctuation || is_punctuation` (Pc Pd Pe Pf Pi Po Ps).
const PUNCT: u8 = 4;
/// `is_mark_nonspacing` (Mn).
const MN: u8 = 8;
/// The CJK ranges of `BertNormalizer::is_chinese_char`.
const CJK: u8 = 16;

fn is_chinese_char(c: char) -> bool {
    matches!(
        c as u32,
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B920..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}

fn compute_class(c: char) -> u8 {
    let mut k = 0;
    if c.is_other() {
        k |= OTHER;
    }
    if c.is_whitespace() {
        k |= SPACE;
    }
    if c.is_ascii_punctuation() || c.is_punctuation() {
        k |= PUNCT;
    }
    if c.is_mark_nonspacing() {
        k |= MN;
    }
    if is_chinese_char(c) {
        k |= CJK;
    }
    k
}

/// The class bits of `c`: the Basic Multilingual Plane from a table built on first use (the
/// unicode_categories lookups are binary searches over several tables), the rest computed.
#[inline]
fn class(c: char) -> u8 {
    static BMP: OnceLock<Box<[u8]>> = OnceLock::new();
    let cp = c as u32;
    if cp < 0x10000 {
        let table = BMP.get_or_init(|| {
            (0..0x10000u32)
                .map(|cp| char::from_u32(cp).map_or(0, compute_class))
                .collect()
        });
        table[cp as usize]
    } else {
        compute_class(c)
    }
}

/// `BertNormalizer`'s `is_whitespace`: \t \n \r and `char::is_whitespace`.
fn bert_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || c.is_whitespace()
}

/// `BertNormalizer`'s `is_control`: `is_other` except \t \n \r.
fn bert_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r') && class(c) & OTHER != 0
}

// ---------------------------------------------------------------------------------------------
// The engine.

/// `BertNormalizer`'s settings (`strip_accents` already resolved against `lowercase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Normalizer {
    clean_text: bool,
    chinese: bool,
    strip_accents: bool,
    lowercase: bool,
}

/// What an ASCII byte does in the raw text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ascii {
    /// Part of a word (then `LOWER` gives the byte to use).
    Word,
    /// Ends a word and is dropped (whitespace).
    Space,
    /// Ends a word and is a word of its own (punctuation).
    Punct,
    /// Dropped without ending the word (a control character under `clean_text`).
    Drop,
}

#[derive(Debug, Clone)]
struct AddedToken {
    content: Box<str>,
    id: u32,
    lstrip: bool,
    rstrip: bool,
}

/// Added tokens matched like HF's Aho-Corasick automaton in `MatchKind::LeftmostLongest`: the match
/// that starts first, the longest of those, the search going on after its end.
#[derive(Debug, Clone)]
struct AddedTokens {
    /// Longest first.
    tokens: Vec<AddedToken>,
    /// Which bytes start a token.
    first: [bool; 256],
}

impl AddedTokens {
    fn new(mut tokens: Vec<AddedToken>) -> Self {
        tokens.sort_by_key(|t| std::cmp::Reverse(t.content.len()));
        let mut first = [false; 256];
        for t in &tokens {
            first[t.content.as_bytes()[0] as usize] = true;
        }
        AddedTokens { tokens, first }
    }

    fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// HF's `find_matches`: calls `f(Some(id), _)` for each token and `f(None, text)` for the text
    /// between them (possibly empty), in order.
    fn split<'t>(&self, text: &'t str, mut f: impl FnMut(Option<u32>, &'t str)) {
        let b = text.as_bytes();
        let (mut done, mut pos) = (0, 0);
        while pos < b.len() {
            if !self.first[b[pos] as usize] {
                pos += 1;
                continue;
            }
            let rest = &b[pos..];
            let Some(t) = self
                .tokens
                .iter()
                .find(|t| rest.starts_with(t.content.as_bytes()))
            else {
                pos += 1;
                continue;
            };
            let (mut start, mut stop) = (pos, pos + t.content.len());
            pos = stop;
            if t.lstrip {
                // `\s*$` on the text before the match, not before the end of the previous one.
                let before = text[..start].trim_end_matches(char::is_whitespace).len();
                start = before.max(done);
            }
            if t.rstrip {
                let after = &text[stop..];
                stop += after.len() - after.trim_start_matches(char::is_whitespace).len();
            }
            if done < start {
                f(None, &text[done..start]);
            }
            f(Some(t.id), "");
            done = stop;
        }
        if done < b.len() {
            f(None, &text[done..]);
        }
    }
}

/// One piece of the post-processor's pair template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Special { ids: Vec<u32>, type_id: u32 },
    A { type_id: u32 },
    B { type_id: u32 },
}

/// The fast engine; built by [`WordPiece::from_json`].
#[derive(Debug, Clone)]
pub(crate) struct WordPiece {
    norm: Normalizer,
    kind: [Ascii; 128],
    lower: [u8; 128],
    /// The whole vocabulary (the lookup for the first piece of a word).
    vocab: Vocab,
    /// The entries that start with the continuing-subword prefix, keyed without it.
    subwords: Vocab,
    /// Longest key of each map in bytes: no lookup needs to be longer.
    vocab_max: usize,
    subwords_max: usize,
    unk: u32,
    max_chars: usize,
    /// Added tokens matched in the raw text, and in the normalised text.
    raw_added: AddedTokens,
    normalized_added: AddedTokens,
    pair_template: Vec<Item>,
    /// Special token ids the pair template adds.
    added_pair: usize,
}

/// Per-thread buffers, reused from call to call.
#[derive(Default)]
struct Buffers {
    word: String,
    norm: String,
    staged: String,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers::default());
    static IDS: RefCell<(Vec<u32>, Vec<u32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    static PIECE: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// Ids a thread's `PIECE` buffer keeps room for between calls (256 KiB).
const PIECE_KEEP: usize = 1 << 16;

impl WordPiece {
    /// Appends the ids of `text` (one sequence: no special tokens, no truncation) to `out`.
    pub(crate) fn encode_into(&self, text: &str, out: &mut Vec<u32>) {
        BUFFERS.with(|b| match b.try_borrow_mut() {
            Ok(mut b) => self.encode_with(text, out, &mut b),
            Err(_) => self.encode_with(text, out, &mut Buffers::default()),
        })
    }

    /// The ids of `text` (as [`Self::encode_into`]) in a vector of exactly their length: built in a
    /// per-thread buffer, then copied once. A vector grown push by push reallocates ~7 times per
    /// document, and glibc's `realloc` always takes its arena's lock: two threads tokenising with one
    /// shared tokenizer ran 3x slower each than one alone (2-core VM, 2026-11-26; one malloc of the
    /// final size is served from the thread's own cache).
    pub(crate) fn encode_piece(&self, text: &str) -> Vec<u32> {
        PIECE.with(|b| match b.try_borrow_mut() {
            Ok(mut ids) => {
                ids.clear();
                self.encode_into(text, &mut ids);
                let piece = ids.as_slice().to_vec();
                // A huge document once must not pin its buffer in every thread for good.
                if ids.capacity() > PIECE_KEEP {
                    ids.clear();
                    ids.shrink_to(PIECE_KEEP);
                }
                piece
            }
            Err(_) => {
                let mut ids = Vec::new();
                self.encode_into(text, &mut ids);
                ids
            }
        })
    }

    fn encode_with(&self, text: &str, out: &mut Vec<u32>, buf: &mut Buffers) {
        if self.raw_added.is_empty() {
            self.encode_part(text, out, buf);
        } else {
            self.raw_added.split(text, |id, part| match id {
                Some(id) => out.push(id),
                None => self.encode_part(part, out, buf),
            });
        }
    }

    /// A part of the text between two raw-matched added tokens.
    fn encode_part(&self, text: &str, out: &mut Vec<u32>, buf: &mut Buffers) {
        if text.is_empty() {
            return;
        }
        if self.normalized_added.is_empty() {
            return self.stream(text, out, buf);
        }
        // Normalised added tokens are matched in the normalised text: build it, as HF does.
        let mut staged = std::mem::take(&mut buf.staged);
        self.normalize(text, &mut staged);
        self.normalized_added.split(&staged, |id, part| match id {
            Some(id) => out.push(id),
            None => self.pre_tokenize(part, out),
        });
        buf.staged = staged;
    }

    /// Normalisation, pre-tokenisation and WordPiece in one pass over `text`.
    fn stream(&self, text: &str, out: &mut Vec<u32>, buf: &mut Buffers) {
        let b = text.as_bytes();
        // The current word is text[start..i] while no byte of it needed changing; after that it is
        // built in `word` (copied == true).
        let (mut start, mut copied, mut ascii) = (0, false, true);
        let word = &mut buf.word;
        let norm = &mut buf.norm;
        macro_rules! emit {
            ($end:expr) => {{
                let w: &str = if copied { word } else { &text[start..$end] };
                if !w.is_empty() {
                    if ascii {
                        self.word_piece(w, out);
                    } else {
                        self.normalize_word(w, out, norm);
                    }
                }
            }};
        }
        macro_rules! flush {
            ($end:expr) => {{
                emit!($end);
                copied = false;
                ascii = true;
            }};
        }
        macro_rules! copy_from_now_on {
            ($end:expr) => {
                if !copied {
                    word.clear();
                    word.push_str(&text[start..$end]);
                    copied = true;
                }
            };
        }
        let mut i = 0;
        while i < b.len() {
            let x = b[i];
            if x < 0x80 {
                match self.kind[x as usize] {
                    Ascii::Word => {
                        let l = self.lower[x as usize];
                        if copied {
                            word.push(l as char);
                        } else if l != x {
                            copy_from_now_on!(i);
                            word.push(l as char);
                        }
                    }
                    Ascii::Space => {
                        flush!(i);
                        start = i + 1;
                    }
                    Ascii::Punct => {
                        flush!(i);
                        self.word_piece(&text[i..i + 1], out);
                        start = i + 1;
                    }
                    Ascii::Drop => copy_from_now_on!(i),
                }
                i += 1;
                continue;
            }
            let c = text[i..].chars().next().expect("i is on a char boundary");
            let n = c.len_utf8();
            let k = class(c);
            if self.norm.clean_text && (c == '\u{FFFD}' || k & OTHER != 0) {
                copy_from_now_on!(i);
            } else if k & SPACE != 0 {
                flush!(i);
                start = i + n;
            } else if self.norm.chinese && k & CJK != 0 {
                flush!(i);
                self.normalize_word(&text[i..i + n], out, norm);
                start = i + n;
            } else {
                if copied {
                    word.push(c);
                }
                ascii = false;
            }
            i += n;
        }
        emit!(b.len());
    }

    /// A raw word (no whitespace, no ASCII punctuation) with non-ASCII characters: NFD, marks,
    /// lowercase, then split on whatever became whitespace or punctuation.
    fn normalize_word(&self, w: &str, out: &mut Vec<u32>, norm: &mut String) {
        self.strip_and_lowercase(w, norm);
        self.pre_tokenize(norm, out);
    }

    /// `BertPreTokenizer` then WordPiece on normalised text.
    fn pre_tokenize(&self, s: &str, out: &mut Vec<u32>) {
        let mut start = 0;
        for (j, c) in s.char_indices() {
            let k = if c.is_ascii() {
                match c {
                    ' ' | '\t'..='\r' => SPACE,
                    _ if c.is_ascii_punctuation() => PUNCT,
                    _ => 0,
                }
            } else {
                class(c)
            };
            if k & (SPACE | PUNCT) != 0 {
                if start < j {
                    self.word_piece(&s[start..j], out);
                }
                let end = j + c.len_utf8();
                if k & SPACE == 0 {
                    self.word_piece(&s[j..end], out);
                }
                start = end;
            }
        }
        if start < s.len() {
            self.word_piece(&s[start..], out);
        }
    }

    /// The whole normalised text, exactly as `BertNormalizer` makes it.
    fn normalize(&self, text: &str, out: &mut String) {
        let n = self.norm;
        let mut cleaned = String::with_capacity(text.len() + 8);
        for c in text.chars() {
            let c = if n.clean_text {
                if c == '\0' || c == '\u{FFFD}' || bert_control(c) {
                    continue;
                }
                if bert_whitespace(c) {
                    ' '
                } else {
                    c
                }
            } else {
                c
            };
            if n.chinese && is_chinese_char(c) {
                cleaned.push(' ');
                cleaned.push(c);
                cleaned.push(' ');
            } else {
                cleaned.push(c);
            }
        }
        self.strip_and_lowercase(&cleaned, out);
    }

    /// `out` = `s` with accents stripped (NFD, nonspacing marks dropped) and lowercased, as the
    /// normalizer's flags say: the last two steps of `BertNormalizer`, in its order.
    fn strip_and_lowercase(&self, s: &str, out: &mut String) {
        out.clear();
        let n = self.norm;
        let mut push = |c: char| {
            if n.lowercase {
                out.extend(c.to_lowercase());
            } else {
                out.push(c);
            }
        };
        if n.strip_accents {
            s.chars()
                .nfd()
                .map(|(c, _)| c)
                .filter(|&c| class(c) & MN == 0)
                .for_each(&mut push);
        } else if n.lowercase {
            s.chars().for_each(&mut push);
        } else {
            out.push_str(s);
        }
    }

    /// Greedy longest-match-first WordPiece of one non-empty word.
    #[inline]
    fn word_piece(&self, word: &str, out: &mut Vec<u32>) {
        if word.len() > self.max_chars && word.chars().count() > self.max_chars {
            out.push(self.unk);
            return;
        }
        if let Some(&id) = self.vocab.get(word) {
            out.push(id);
            return;
        }
        let mark = out.len();
        let mut start = 0;
        while start < word.len() {
            let (map, longest) = if start == 0 {
                (&self.vocab, self.vocab_max)
            } else {
                (&self.subwords, self.subwords_max)
            };
            let mut end = word.len().min(start + longest);
            while !word.is_char_boundary(end) {
                end -= 1;
            }
            loop {
                if end <= start {
                    out.truncate(mark);
                    out.push(self.unk);
                    return;
                }
                if let Some(&id) = map.get(&word[start..end]) {
                    out.push(id);
                    break;
                }
                end -= 1;
                while !word.is_char_boundary(end) {
                    end -= 1;
                }
            }
            start = end;
        }
    }

    /// Special tokens the pair template adds.
    pub(crate) fn added_pair(&self) -> usize {
        self.added_pair
    }

    /// `[CLS] query [SEP] document [SEP]` (or whatever the template says) truncated `longest_first`
    /// to `max_length` in all.
    pub(crate) fn join(&self, q: &[u32], d: &[u32], max_length: usize) -> EncodedPair {
        let (nq, nd) = longest_first(q.len(), d.len(), max_length - self.added_pair);
        let len = nq + nd + self.added_pair;
        let mut input_ids = Vec::with_capacity(len);
        let mut token_type_ids = Vec::with_capacity(len);
        for item in &self.pair_template {
            let (ids, type_id) = match item {
                Item::Special { ids, type_id } => (&ids[..], *type_id),
                Item::A { type_id } => (&q[..nq], *type_id),
                Item::B { type_id } => (&d[..nd], *type_id),
            };
            input_ids.extend_from_slice(ids);
            token_type_ids.resize(input_ids.len(), type_id);
        }
        EncodedPair {
            input_ids,
            token_type_ids,
        }
    }

    /// Encodes and joins a pair, reusing per-thread id buffers.
    pub(crate) fn encode_pair(
        &self,
        query: &str,
        document: &str,
        max_length: usize,
    ) -> EncodedPair {
        IDS.with(|ids| {
            let mut fresh = (Vec::new(), Vec::new());
            let mut guard = ids.try_borrow_mut();
            let (q, d) = match guard.as_deref_mut() {
                Ok(b) => b,
                Err(_) => &mut fresh,
            };
            q.clear();
            d.clear();
            self.encode_into(query, q);
            self.encode_into(document, d);
            self.join(q, d, max_length)
        })
    }
}

/// The lengths tokenizers' `truncate_encodings` keeps of a pair under `TruncationStrategy::LongestFirst`
/// (`max` excludes the special tokens): a shorter sequence is kept whole when the longer one can
/// absorb the cut; otherwise the shorter gets `max / 2` and the longer `max / 2 + max % 2` (the
/// query counting as the shorter on a tie).
pub(crate) fn longest_first(n1: usize, n2: usize, max: usize) -> (usize, usize) {
    if n1 + n2 <= max {
        return (n1, n2);
    }
    let swap = n1 > n2;
    let mut short = n1.min(n2);
    let mut long = if short > max {
        short
    } else {
        short.max(max - short)
    };
    if short + long > max {
        short = max / 2;
        long = short + max % 2;
    }
    let (a, b) = if swap { (long, short) } else { (short, long) };
    (n1.min(a), n2.min(b))
}

// ---------------------------------------------------------------------------------------------
// tokenizer.json → engine, or the reason it does not fit.

type Why = String;

fn keys_within(o: &Map<String, Value>, what: &str, allowed: &[&str]) -> Result<(), Why> {
    match o.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("{what}: unsupported field `{k}`")),
        None => Ok(()),
    }
}

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, Why> {
    v.as_object()
        .ok_or_else(|| format!("{what}: not an object ({v})"))
}

fn field<'a>(o: &'a Map<String, Value>, what: &str, key: &str) -> Result<&'a Value, Why> {
    o.get(key).ok_or_else(|| format!("{what}: no `{key}`"))
}

fn boolean(o: &Map<String, Value>, what: &str, key: &str) -> Result<bool, Why> {
    field(o, what, key)?
        .as_bool()
        .ok_or_else(|| format!("{what}.{key}: not a boolean"))
}

fn string<'a>(o: &'a Map<String, Value>, what: &str, key: &str) -> Result<&'a str, Why> {
    field(o, what, key)?
        .as_str()
        .ok_or_else(|| format!("{what}.{key}: not a string"))
}

fn id(v: &Value, what: &str) -> Result<u32, Why> {
    v.as_u64()
        .and_then(|x| u32::try_from(x).ok())
        .ok_or_else(|| format!("{what}: not a token id ({v})"))
}

fn type_is(o: &Map<String, Value>, what: &str, expected: &str) -> Result<(), Why> {
    match o.get("type").and_then(Value::as_str) {
        Some(t) if t == expected => Ok(()),
        Some(t) => Err(format!("{what} is {t}, not {expected}")),
        None => Err(format!("{what} has no type")),
    }
}

impl WordPiece {
    /// The engine for a parsed tokenizer.json, or why it does not have the supported shape. `hf` is
    /// the same file loaded by tokenizers: it resolves added tokens to ids and normalises the
    /// `normalized` ones exactly as it will match them.
    pub(crate) fn from_json(json: &Value, hf: &tokenizers::Tokenizer) -> Result<Self, Why> {
        let top = object(json, "tokenizer.json")?;
        keys_within(
            top,
            "tokenizer.json",
            &[
                "version",
                "truncation",
                "padding",
                "added_tokens",
                "normalizer",
                "pre_tokenizer",
                "post_processor",
                "decoder",
                "model",
            ],
        )?;

        // normalizer
        let n = object(field(top, "tokenizer.json", "normalizer")?, "normalizer")?;
        type_is(n, "normalizer", "BertNormalizer")?;
        keys_within(
            n,
            "normalizer",
            &[
                "type",
                "clean_text",
                "handle_chinese_chars",
                "strip_accents",
                "lowercase",
            ],
        )?;
        let lowercase = boolean(n, "normalizer", "lowercase")?;
        let norm = Normalizer {
            clean_text: boolean(n, "normalizer", "clean_text")?,
            chinese: boolean(n, "normalizer", "handle_chinese_chars")?,
            strip_accents: match n.get("strip_accents") {
                None | Some(Value::Null) => lowercase,
                Some(Value::Bool(b)) => *b,
                Some(v) => return Err(format!("normalizer.strip_accents: {v}")),
            },
            lowercase,
        };

        // pre_tokenizer
        let p = object(
            field(top, "tokenizer.json", "pre_tokenizer")?,
            "pre_tokenizer",
        )?;
        type_is(p, "pre_tokenizer", "BertPreTokenizer")?;
        keys_within(p, "pre_tokenizer", &["type"])?;

        // model
        let m = object(field(top, "tokenizer.json", "model")?, "model")?;
        type_is(m, "model", "WordPiece")?;
        keys_within(
            m,
            "model",
            &[
                "type",
                "unk_token",
                "continuing_subword_prefix",
                "max_input_chars_per_word",
                "vocab",
            ],
        )?;
        let unk_token = string(m, "model", "unk_token")?;
        let prefix = string(m, "model", "continuing_subword_prefix")?;
        let max_chars = field(m, "model", "max_input_chars_per_word")?
            .as_u64()
            .and_then(|x| usize::try_from(x).ok())
            .ok_or("model.max_input_chars_per_word: not a count")?;
        let entries = object(field(m, "model", "vocab")?, "model.vocab")?;
        let mut vocab = Vocab::with_capacity_and_hasher(entries.len(), Default::default());
        let mut subwords = Vocab::with_hasher(Default::default());
        for (token, v) in entries {
            let i = id(v, "model.vocab")?;
            vocab.insert(token.as_str().into(), i);
            if let Some(rest) = token.strip_prefix(prefix) {
                subwords.insert(rest.into(), i);
            }
        }
        let unk = *vocab
            .get(unk_token)
            .ok_or_else(|| format!("model: unk_token {unk_token:?} is not in the vocabulary"))?;
        let longest = |v: &Vocab| v.keys().map(|k| k.len()).max().unwrap_or(0);

        // post_processor
        let pp = object(
            field(top, "tokenizer.json", "post_processor")?,
            "post_processor",
        )?;
        let pair_template = match pp.get("type").and_then(Value::as_str) {
            Some("TemplateProcessing") => template(pp)?,
            Some("BertProcessing") => {
                keys_within(pp, "post_processor", &["type", "sep", "cls"])?;
                let special = |key: &str| -> Result<u32, Why> {
                    match field(pp, "post_processor", key)?
                        .as_array()
                        .map(Vec::as_slice)
                    {
                        Some([Value::String(_), v]) => id(v, "post_processor"),
                        _ => Err(format!("post_processor.{key}: not [token, id]")),
                    }
                };
                let (cls, sep) = (special("cls")?, special("sep")?);
                vec![
                    Item::Special {
                        ids: vec![cls],
                        type_id: 0,
                    },
                    Item::A { type_id: 0 },
                    Item::Special {
                        ids: vec![sep],
                        type_id: 0,
                    },
                    Item::B { type_id: 1 },
                    Item::Special {
                        ids: vec![sep],
                        type_id: 1,
                    },
                ]
            }
            Some(t) => return Err(format!("post_processor is {t}")),
            None => return Err("post_processor has no type".into()),
        };
        let added_pair = pair_template
            .iter()
            .map(|i| match i {
                Item::Special { ids, .. } => ids.len(),
                _ => 0,
            })
            .sum();

        // added tokens
        let (raw_added, normalized_added) = added_tokens(top, hf)?;

        let mut kind = [Ascii::Word; 128];
        let mut lower = [0u8; 128];
        for x in 0..128u8 {
            let c = x as char;
            kind[x as usize] = if norm.clean_text && (x == 0 || bert_control(c)) {
                Ascii::Drop
            } else if c.is_whitespace() {
                Ascii::Space
            } else if c.is_ascii_punctuation() {
                Ascii::Punct
            } else {
                Ascii::Word
            };
            lower[x as usize] = if norm.lowercase {
                x.to_ascii_lowercase()
            } else {
                x
            };
        }

        Ok(WordPiece {
            norm,
            kind,
            lower,
            vocab_max: longest(&vocab),
            subwords_max: longest(&subwords),
            vocab,
            subwords,
            unk,
            max_chars,
            raw_added,
            normalized_added,
            pair_template,
            added_pair,
        })
    }
}

/// A `TemplateProcessing` post-processor's pair template, with one `$A` and one `$B`.
fn template(pp: &Map<String, Value>) -> Result<Vec<Item>, Why> {
    let what = "post_processor";
    keys_within(pp, what, &["type", "single", "pair", "special_tokens"])?;
    field(pp, what, "single")?;
    let specials = object(
        field(pp, what, "special_tokens")?,
        "post_processor.special_tokens",
    )?;
    let pair = field(pp, what, "pair")?
        .as_array()
        .ok_or("post_processor.pair: not a list")?;
    let mut items = Vec::with_capacity(pair.len());
    for piece in pair {
        let piece = object(piece, "post_processor.pair")?;
        let (kind, body) = match piece.iter().next() {
            Some((k, v)) if piece.len() == 1 => (k.as_str(), object(v, "post_processor.pair")?),
            _ => return Err(format!("post_processor.pair: {piece:?}")),
        };
        keys_within(body, "post_processor.pair", &["id", "type_id"])?;
        let name = string(body, "post_processor.pair", "id")?;
        let type_id = id(
            field(body, "post_processor.pair", "type_id")?,
            "post_processor.pair type_id",
        )?;
        items.push(match (kind, name) {
            ("Sequence", "A") => Item::A { type_id },
            ("Sequence", "B") => Item::B { type_id },
            ("SpecialToken", name) => {
                let s = object(
                    field(specials, "post_processor.special_tokens", name)?,
                    "post_processor.special_tokens",
                )?;
                let ids = field(s, "post_processor.special_tokens", "ids")?
                    .as_array()
                    .ok_or("post_processor.special_tokens: ids not a list")?
                    .iter()
                    .map(|v| id(v, "post_processor.special_tokens"))
                    .collect::<Result<Vec<_>, _>>()?;
                Item::Special { ids, type_id }
            }
            _ => return Err(format!("post_processor.pair: {kind} {name}")),
        });
    }
    let count = |f: fn(&Item) -> bool| items.iter().filter(|i| f(i)).count();
    if count(|i| matches!(i, Item::A { .. })) != 1 || count(|i| matches!(i, Item::B { .. })) != 1 {
        return Err("post_processor.pair: not one $A and one $B".into());
    }
    Ok(items)
}

/// The added tokens, (matched in the raw text, matched in the normalised text).
fn added_tokens(
    top: &Map<String, Value>,
    hf: &tokenizers::Tokenizer,
) -> Result<(AddedTokens, AddedTokens), Why> {
    use tokenizers::{NormalizedString, Normalizer as _};
    let what = "added_tokens";
    let list = match top.get(what) {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(a)) => &a[..],
        Some(v) => return Err(format!("{what}: not a list ({v})")),
    };
    let (mut raw, mut normalized) = (Vec::new(), Vec::new());
    let mut seen = std::collections::HashSet::new();
    for t in list {
        let t = object(t, what)?;
        keys_within(
            t,
            what,
            &[
                "id",
                "content",
                "single_word",
                "lstrip",
                "rstrip",
                "normalized",
                "special",
            ],
        )?;
        let content = string(t, what, "content")?;
        if content.is_empty() {
            continue; // tokenizers ignores these
        }
        if !seen.insert(content) {
            return Err(format!("{what}: {content:?} is listed twice"));
        }
        if boolean(t, what, "single_word")? {
            return Err(format!("{what}: {content:?} is single_word"));
        }
        let id = hf
            .token_to_id(content)
            .ok_or_else(|| format!("{what}: {content:?} has no id"))?;
        let (lstrip, rstrip) = (boolean(t, what, "lstrip")?, boolean(t, what, "rstrip")?);
        if boolean(t, what, "normalized")? {
            let mut n = NormalizedString::from(content);
            if let Some(normalizer) = hf.get_normalizer() {
                normalizer
                    .normalize(&mut n)
                    .map_err(|e| format!("{what}: {content:?}: {e}"))?;
            }
            if n.get().is_empty() {
                return Err(format!("{what}: {content:?} normalises to nothing"));
            }
            normalized.push(AddedToken {
                content: n.get().into(),
                id,
                lstrip,
                rstrip,
            });
        } else {
            raw.push(AddedToken {
                content: content.into(),
                id,
                lstrip,
                rstrip,
            });
        }
    }
    Ok((AddedTokens::new(raw), AddedTokens::new(normalized)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_first_matches_tokenizers_rules() {
        // No cut needed.
        assert_eq!(longest_first(3, 4, 7), (3, 4));
        // Only the longer one is cut.
        assert_eq!(longest_first(3, 100, 10), (3, 7));
        assert_eq!(longest_first(100, 3, 10), (7, 3));
        // Both cut: the shorter gets max / 2, the longer the rest; a tie counts the query shorter.
        assert_eq!(longest_first(6, 100, 9), (4, 5));
        assert_eq!(longest_first(100, 6, 9), (5, 4));
        assert_eq!(longest_first(50, 50, 9), (4, 5));
        assert_eq!(longest_first(6, 6, 10), (5, 5));
        assert_eq!(longest_first(20, 30, 1), (0, 1));
    }

    #[test]
    fn class_table_agrees_with_the_direct_lookups() {
        for cp in (0..0x11000u32)
            .step_by(7)
            .chain([0x85, 0xA0, 0x300, 0x3000, 0xFEFF])
        {
            if let Some(c) = char::from_u32(cp) {
                assert_eq!(class(c), compute_class(c), "U+{cp:04X}");
            }
        }
    }

    #[test]
    fn whitespace_and_ascii_are_nfd_starters() {
        // Streaming normalises word by word: that is exact only if the characters that end words
        // decompose to themselves (so canonical reordering never crosses them).
        use unicode_normalization_alignments::char::canonical_combining_class;
        for cp in 0..0x110000u32 {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            if c.is_ascii() || c.is_whitespace() || is_chinese_char(c) {
                let d: Vec<char> = std::iter::once(c).nfd().map(|(c, _)| c).collect();
                assert_eq!(d.len(), 1, "U+{cp:04X}");
                assert_eq!(canonical_combining_class(d[0]), 0, "U+{cp:04X}");
                assert_eq!(c.is_whitespace(), d[0].is_whitespace(), "U+{cp:04X}");
            }
        }
    }
}
