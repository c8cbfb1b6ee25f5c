//! The CLI's input reader on arbitrary bytes: read_lines, then parse_pairs and parse_documents. Never
//! a panic; and each line against serde_json as the oracle: a line serde_json parses into an object
//! with string "query" and "document" gives exactly that pair, any other line serde_json parses is an
//! error, and a line xenc accepts is valid JSON (other fields are only skipped, not trusted). The
//! whole input gives every pair, or the error of its first bad line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
// The reader is the CLI's (src/bin/xenc/input.rs), compiled here as a module of the target.
#[path = "../../src/bin/xenc/input.rs"]
#[allow(dead_code)]
mod input;

use input::{parse_documents, parse_pairs, read_lines};

fuzz_target!(|data: &[u8]| {
    let Ok(lines) = read_lines(data, "fuzz") else {
        return;
    };
    let _ = parse_documents(lines.clone(), "fuzz");
    let mut pairs = Vec::new();
    let mut first_bad = None;
    for (i, line) in lines.iter().enumerate() {
        let one = parse_pairs(std::slice::from_ref(line), "fuzz");
        match serde_json::from_str::<Value>(line) {
            Ok(v) => {
                let q = v.get("query").and_then(Value::as_str);
                let d = v.get("document").and_then(Value::as_str);
                match (v.is_object(), q, d) {
                    (true, Some(q), Some(d)) => {
                        let got = one.as_ref().unwrap_or_else(|e| panic!("{line:?}: {e}"));
                        assert_eq!(got, &[(q.to_string(), d.to_string())], "{line:?}");
                    }
                    _ => assert!(one.is_err(), "{line:?} accepted: {one:?}"),
                }
            }
            Err(_) => {
                if one.is_ok() {
                    serde_json::from_str::<serde::de::IgnoredAny>(line)
                        .unwrap_or_else(|e| panic!("{line:?} accepted but not JSON: {e}"));
                }
            }
        }
        match one {
            Ok(p) => pairs.extend(p),
            Err(_) => {
                first_bad.get_or_insert(i);
            }
        }
    }
    match (parse_pairs(&lines, "fuzz"), first_bad) {
        (Ok(all), None) => assert_eq!(all, pairs),
        (Err(e), Some(i)) => {
            let e = e.to_string();
            assert!(
                e.starts_with(&format!("invalid input: fuzz: line {}: ", i + 1)),
                "{e}"
            );
        }
        (all, bad) => panic!("whole input {all:?}, first bad line {bad:?}"),
    }
});
