//! The CLI's text formats: JSON Lines of `{"query": ..., "document": ...}` in, and plain lines of
//! documents for `rerank`. A bad line is an error naming its line number (1-based); nothing is skipped.
//! A UTF-8 byte order mark at the start of the input (as Windows tools write) is not part of line 1.

use std::io::BufRead;
use std::path::Path;

use xenc::{Error, Result};

/// Input lines, read as bytes so that invalid UTF-8 is reported with its line number. A final newline
/// does not start a line; `\r\n` endings are accepted; a leading byte order mark is dropped.
pub struct Lines<R> {
    input: R,
    source: String,
    /// Lines read so far.
    count: usize,
    buf: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    pub fn new(input: R, source: &str) -> Self {
        Lines {
            input,
            source: source.into(),
            count: 0,
            buf: Vec::new(),
        }
    }
}

impl<R: BufRead> Iterator for Lines<R> {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Result<String>> {
        let buf = &mut self.buf;
        buf.clear();
        let n = match self.input.read_until(b'\n', buf) {
            Ok(n) => n,
            Err(e) => {
                return Some(Err(Error::Io {
                    path: self.source.clone().into(),
                    source: e,
                }))
            }
        };
        if n == 0 {
            return None;
        }
        let mut bom = 0; // bytes of a byte order mark dropped from line 1, for byte offsets in errors
        if self.count == 0 && buf.starts_with(b"\xEF\xBB\xBF") {
            buf.drain(..3);
            bom = 3;
            if buf.is_empty() {
                return None; // the input is a byte order mark alone: no lines
            }
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        self.count += 1;
        let number = self.count;
        Some(String::from_utf8(std::mem::take(buf)).map_err(|e| {
            Error::Input(format!(
                "{}: line {number}: invalid UTF-8 (byte {})",
                self.source,
                e.utf8_error().valid_up_to() + bom
            ))
        }))
    }
}

/// Where input lines come from: opened at once (so a missing file is an error before the model loads),
/// read later, possibly on another thread (stdin is locked there: a lock cannot move between threads).
pub enum Input {
    File(std::fs::File),
    Stdin,
}

impl Input {
    /// `path`, or stdin; with its name for errors.
    pub fn open(path: Option<&Path>) -> Result<(Input, String)> {
        match path {
            Some(p) => {
                let f = std::fs::File::open(p).map_err(|source| Error::Io {
                    path: p.to_path_buf(),
                    source,
                })?;
                Ok((Input::File(f), p.display().to_string()))
            }
            None => Ok((Input::Stdin, "stdin".into())),
        }
    }
}

/// Every line of `path` (or stdin), and its name for errors.
pub fn read_input(path: Option<&Path>) -> Result<(Vec<String>, String)> {
    let (input, source) = Input::open(path)?;
    let lines = match input {
        Input::File(f) => read_lines(std::io::BufReader::new(f), &source)?,
        Input::Stdin => read_lines(std::io::stdin().lock(), &source)?,
    };
    Ok((lines, source))
}

/// All of [`Lines`], or the first error.
pub fn read_lines(input: impl BufRead, source: &str) -> Result<Vec<String>> {
    Lines::new(input, source).collect()
}

/// `rerank`'s documents, one per line; a blank line is an error (an empty document would still get
/// a score and a rank).
pub fn parse_documents(lines: Vec<String>, source: &str) -> Result<Vec<String>> {
    if let Some(i) = lines.iter().position(|l| l.trim().is_empty()) {
        return Err(Error::Input(format!(
            "{source}: line {}: empty line; expected one document per line",
            i + 1
        )));
    }
    Ok(lines)
}

const SHAPE: &str = r#"expected a JSON object with string fields "query" and "document""#;

/// Parses JSON Lines of pairs; `source` names the input in errors ("stdin" or a path).
pub fn parse_pairs(lines: &[String], source: &str) -> Result<Vec<(String, String)>> {
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| parse_line(line, source, i + 1))
        .collect()
}

/// Line `number` of `source` as a pair, or an error naming the line.
pub fn parse_line(line: &str, source: &str, number: usize) -> Result<(String, String)> {
    parse_pair(line).map_err(|why| Error::Input(format!("{source}: line {number}: {why}")))
}

fn parse_pair(line: &str) -> std::result::Result<(String, String), String> {
    if line.trim().is_empty() {
        return Err(format!("empty line; {SHAPE}"));
    }
    let mut de = serde_json::Deserializer::from_str(line);
    let line_value = serde::Deserializer::deserialize_any(&mut de, LineVisitor)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| format!("not valid JSON ({e}); {SHAPE}"))?;
    let (query, document) = match line_value {
        Line::Object { query, document } => (query, document),
        Line::Other(kind) => return Err(format!("found {kind}; {SHAPE}")),
    };
    let field = |name: &str, value: Option<Field>| match value {
        Some(Field::String(s)) => Ok(s),
        Some(Field::Other(kind)) => Err(format!("field \"{name}\" is {kind}, expected a string")),
        None => Err(format!("missing field \"{name}\"; {SHAPE}")),
    };
    Ok((field("query", query)?, field("document", document)?))
}

/// One JSON line as the pair reader sees it: an object's "query" and "document" (the last of each,
/// as a JSON object keeps its last duplicate), or what else the line holds. Other fields are skipped
/// unparsed (`IgnoredAny`), so whatever they hold (a number past f64, deep nesting) cannot reject
/// the line.
enum Line {
    Object {
        query: Option<Field>,
        document: Option<Field>,
    },
    Other(&'static str),
}

/// A "query" or "document" value: its text, or what kind of JSON value it is instead.
enum Field {
    String(String),
    Other(&'static str),
}

/// Visits any JSON value and says what kind it is, skipping whatever it holds.
struct KindVisitor;

macro_rules! visit_kinds {
    ($out:expr) => {
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> std::result::Result<Self::Value, E> {
            Ok($out("a boolean"))
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> std::result::Result<Self::Value, E> {
            Ok($out("a number"))
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> std::result::Result<Self::Value, E> {
            Ok($out("a number"))
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> std::result::Result<Self::Value, E> {
            Ok($out("a number"))
        }
        fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<Self::Value, E> {
            Ok($out("null"))
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            Ok($out("an array"))
        }
    };
}

impl<'de> serde::de::Visitor<'de> for KindVisitor {
    type Value = Field;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    visit_kinds!(Field::Other);
    fn visit_str<E: serde::de::Error>(self, s: &str) -> std::result::Result<Field, E> {
        Ok(Field::String(s.to_owned()))
    }
    fn visit_string<E: serde::de::Error>(self, s: String) -> std::result::Result<Field, E> {
        Ok(Field::String(s))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Field, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Field::Other("an object"))
    }
}

impl<'de> serde::Deserialize<'de> for Field {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(KindVisitor)
    }
}

/// An object key: only "query" and "document" matter (compared after unescaping, as JSON does).
enum Key {
    Query,
    Document,
    Other,
}

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> std::result::Result<Key, E> {
                Ok(match s {
                    "query" => Key::Query,
                    "document" => Key::Document,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_str(V)
    }
}

struct LineVisitor;

impl<'de> serde::de::Visitor<'de> for LineVisitor {
    type Value = Line;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    visit_kinds!(Line::Other);
    fn visit_str<E: serde::de::Error>(self, _: &str) -> std::result::Result<Line, E> {
        Ok(Line::Other("a string"))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Line, A::Error> {
        let (mut query, mut document) = (None, None);
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Query => query = Some(map.next_value::<Field>()?),
                Key::Document => document = Some(map.next_value::<Field>()?),
                Key::Other => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(Line::Object { query, document })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(input: &[u8]) -> String {
        match read_lines(input, "stdin").and_then(|l| parse_pairs(&l, "stdin")) {
            Ok(p) => panic!("accepted {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn good_lines_parse_in_order() {
        let input = b"{\"query\":\"a\",\"document\":\"b\"}\r\n{\"document\":\"\",\"query\":\"\xc3\xa9\",\"x\":1}\n";
        let pairs = parse_pairs(&read_lines(&input[..], "stdin").unwrap(), "stdin").unwrap();
        assert_eq!(
            pairs,
            vec![("a".into(), "b".into()), ("é".into(), "".into())]
        );
    }

    #[test]
    fn every_bad_line_is_named() {
        let ok = "{\"query\":\"q\",\"document\":\"d\"}\n";
        let cases: [(&[u8], &str); 8] = [
            (b"not json\n", "line 2: not valid JSON"),
            (b"[1,2]\n", "line 2: found an array"),
            (b"{\"query\":\"q\"}\n", "line 2: missing field \"document\""),
            (b"{\"document\":\"d\"}\n", "line 2: missing field \"query\""),
            (
                b"{\"query\":1,\"document\":\"d\"}\n",
                "line 2: field \"query\" is a number",
            ),
            (
                b"{\"query\":\"q\",\"document\":null}\n",
                "line 2: field \"document\" is null",
            ),
            (b"\n", "line 2: empty line"),
            (
                b"{\"query\":\"\xff\",\"document\":\"d\"}\n",
                "line 2: invalid UTF-8",
            ),
        ];
        for (bad, needle) in cases {
            let mut input = ok.as_bytes().to_vec();
            input.extend_from_slice(bad);
            input.extend_from_slice(ok.as_bytes());
            let e = err(&input);
            assert!(e.contains(needle), "{needle:?} not in {e:?}");
            assert!(e.starts_with("invalid input: stdin: "), "{e}");
        }
    }

    #[test]
    fn other_fields_are_skipped_whatever_they_hold() {
        let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
        for extra in [
            "1e999999",
            "-1e999999",
            "123456789012345678901234567890",
            &deep,
            r#"{"query": 1, "document": [null]}"#,
            r#""\ud800""#, // a lone surrogate: valid JSON, not a valid string
        ] {
            let line =
                format!(r#"{{"id":{extra},"query":"q","x":{extra},"document":"d","y":{extra}}}"#);
            assert_eq!(
                parse_pairs(std::slice::from_ref(&line), "stdin").unwrap(),
                vec![("q".to_string(), "d".to_string())],
                "{line}"
            );
        }
        // Keys are compared unescaped; a repeated key keeps its last value, as a JSON object does.
        let line = r#"{"quer\u0079":"a\n","document":1,"document":"\u00e9"}"#.to_string();
        assert_eq!(
            parse_pairs(&[line], "stdin").unwrap(),
            vec![("a\n".to_string(), "é".to_string())]
        );
    }

    #[test]
    fn the_two_fields_and_the_line_keep_their_messages() {
        for (line, needle) in [
            (
                r#"{"query":{"a":[1e999999]},"document":"d"}"#,
                "field \"query\" is an object",
            ),
            (
                r#"{"query":"q","document":[1,[2]]}"#,
                "field \"document\" is an array",
            ),
            (
                r#"{"query":true,"document":"d"}"#,
                "field \"query\" is a boolean",
            ),
            (
                r#"{"query":-0.5,"document":"d"}"#,
                "field \"query\" is a number",
            ),
            (r#""text""#, "found a string"),
            ("12", "found a number"),
            ("null", "found null"),
            ("false", "found a boolean"),
            (
                r#"{"query":"q","document":"d"} x"#,
                "not valid JSON (trailing characters",
            ),
            (r#"{"query":"q","document":"d""#, "not valid JSON (EOF"),
            (r#"{"query":"q","x":1e999999"#, "not valid JSON"),
            (r#"{"query":"q"}"#, "missing field \"document\""),
        ] {
            let e = parse_pairs(&[line.to_string()], "f")
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{line}: {needle:?} not in {e:?}");
            assert!(e.starts_with("invalid input: f: line 1: "), "{e}");
        }
    }

    #[test]
    fn a_leading_byte_order_mark_is_dropped_once() {
        let input = b"\xEF\xBB\xBF{\"query\":\"a\",\"document\":\"b\"}\n\xEF\xBB\xBFx\n";
        let lines = read_lines(&input[..], "f").unwrap();
        assert_eq!(lines[1], "\u{feff}x"); // only the input's first bytes are a BOM
        assert_eq!(
            parse_pairs(&lines[..1], "f").unwrap(),
            vec![("a".into(), "b".into())]
        );
        // A mark alone is an empty input; byte offsets still count it.
        assert!(read_lines(&b"\xEF\xBB\xBF"[..], "f").unwrap().is_empty());
        let e = read_lines(&b"\xEF\xBB\xBFab\xff\n"[..], "f").unwrap_err();
        assert!(
            e.to_string().contains("line 1: invalid UTF-8 (byte 5)"),
            "{e}"
        );
    }

    #[test]
    fn documents_are_lines_and_a_blank_one_is_named() {
        let docs = |b: &[u8]| parse_documents(read_lines(b, "stdin").unwrap(), "stdin");
        assert_eq!(docs(b"a b\r\nc\n").unwrap(), vec!["a b", "c"]);
        assert!(docs(b"").unwrap().is_empty());
        let e = docs(b"a\n\nc\n").unwrap_err().to_string();
        assert!(e.contains("stdin: line 2: empty line"), "{e}");
        let e = docs(b"a\nb\n \n").unwrap_err().to_string();
        assert!(e.contains("line 3: empty line"), "{e}");
    }
}
