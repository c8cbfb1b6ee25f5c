//! The CLI's text formats: JSON Lines of `{"query": ..., "document": ...}` in, and plain lines of
//! documents for `rerank`. A bad line is an error naming its line number (1-based); nothing is skipped.
//! A UTF-8 byte order mark at the start of the input (as Windows tools write) is not part of line 1.

use std::io::BufRead;
use std::path::Path;

use serde_json::Value;

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
    let v: Value =
        serde_json::from_str(line).map_err(|e| format!("not valid JSON ({e}); {SHAPE}"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| format!("found {}; {SHAPE}", kind(&v)))?;
    let field = |name: &str| match obj.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!(
            "field \"{name}\" is {}, expected a string",
            kind(other)
        )),
        None => Err(format!("missing field \"{name}\"; {SHAPE}")),
    };
    Ok((field("query")?, field("document")?))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
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
