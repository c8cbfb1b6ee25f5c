//! The xenc binary as a user runs it: JSON Lines in, JSON Lines out, clear errors with line numbers.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::{goldens, test_model, write_tiny, TINY};

fn xenc(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xenc"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn model() -> String {
    test_model("f32").to_string_lossy().into_owned()
}

fn stdout_json(out: &Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn score_prints_one_line_per_input_in_order() {
    let gold = goldens();
    // Long and short pairs interleaved, from the golden file itself (its extra "note" field is ignored).
    let picks: Vec<usize> = vec![120, 0, 200, 5, 163, 1, 130, 160];
    let mut input = Vec::new();
    for &i in &picks {
        let line =
            serde_json::json!({"query": gold[i].query, "document": gold[i].document, "note": "x"});
        writeln!(input, "{line}").unwrap();
    }
    let out = stdout_json(&xenc(
        &["score", "--model", &model(), "--device", "cpu", "--raw"],
        &input,
    ));
    assert_eq!(out.len(), picks.len());
    for (v, &i) in out.iter().zip(&picks) {
        let s = v["score"].as_f64().unwrap();
        assert!(
            (s - gold[i].logit).abs() <= 1e-5,
            "pair {i}: {s} vs {}",
            gold[i].logit
        );
    }
    // Default activation: the checkpoint's (sigmoid), read from a file this time.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pairs.jsonl");
    std::fs::write(&path, &input).unwrap();
    let out = stdout_json(&xenc(
        &[
            "score",
            "--model",
            &model(),
            "--device",
            "cpu",
            "--input",
            path.to_str().unwrap(),
        ],
        b"",
    ));
    for (v, &i) in out.iter().zip(&picks) {
        let s = v["score"].as_f64().unwrap();
        assert!((s - gold[i].st_score).abs() <= 1e-5, "pair {i}");
    }
}

#[test]
fn empty_input_prints_nothing() {
    let out = xenc(&["score", "--model", &model(), "--device", "cpu"], b"");
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
}

#[test]
fn rerank_prints_best_first() {
    let docs = "Rust is a systems programming language.\nA cat.\nThe weather is sunny.\nCargo builds Rust code.\n";
    let out = stdout_json(&xenc(
        &[
            "rerank",
            "--model",
            &model(),
            "--device",
            "cpu",
            "--query",
            "what is rust",
            "--top-k",
            "3",
        ],
        docs.as_bytes(),
    ));
    assert_eq!(out.len(), 3);
    let scores: Vec<f64> = out.iter().map(|v| v["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]));
    let mut idx: Vec<u64> = out.iter().map(|v| v["index"].as_u64().unwrap()).collect();
    idx.sort();
    idx.dedup();
    assert_eq!(idx.len(), 3);
    assert!(idx.iter().all(|&i| i < 4));
}

#[test]
fn every_bad_line_stops_with_its_line_number() {
    let ok = "{\"query\":\"q\",\"document\":\"d\"}\n";
    let cases: [(&[u8], &str); 6] = [
        (b"not json\n", "line 2: not valid JSON"),
        (b"{\"query\":\"q\"}\n", "line 2: missing field \"document\""),
        (
            b"{\"query\":[],\"document\":\"d\"}\n",
            "line 2: field \"query\" is an array",
        ),
        (
            b"{\"query\":\"q\",\"document\":7}\n",
            "line 2: field \"document\" is a number",
        ),
        (b"\"just a string\"\n", "line 2: found a string"),
        (
            b"{\"query\":\"\xc3\x28\",\"document\":\"d\"}\n",
            "line 2: invalid UTF-8",
        ),
    ];
    for (bad, needle) in cases {
        let mut input = ok.as_bytes().to_vec();
        input.extend_from_slice(bad);
        input.extend_from_slice(ok.as_bytes());
        let out = xenc(&["score", "--model", &model(), "--device", "cpu"], &input);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{needle}: exit status {:?}",
            out.status
        );
        assert!(err.contains(needle), "{needle:?} not in {err:?}");
        assert!(
            out.stdout.is_empty(),
            "nothing is printed when the input is bad"
        );
    }
    let out = xenc(
        &["rerank", "--model", &model(), "--query", "q"],
        b"ok\n\xff\xfe\n",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2: invalid UTF-8"));
}

#[test]
fn bad_model_and_device_are_clear_errors() {
    let out = xenc(&["score", "--model", "/nonexistent/model"], b"");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/model: not found"));
    let out = xenc(&["score", "--model", &model(), "--device", "tpu"], b"");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown device"));
}

/// The synthetic checkpoint of tests/common (fast to run) in a temporary directory.
fn tiny_model() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    write_tiny(d.path(), TINY, |_| {});
    d
}

#[test]
fn rerank_reads_a_file_takes_any_query_and_names_a_blank_line() {
    let m = model();
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs.txt");
    std::fs::write(&docs, "Rust is a language.\nA cat.\n").unwrap();
    let base = [
        "rerank",
        "--model",
        &m,
        "--device",
        "cpu",
        "--input",
        docs.to_str().unwrap(),
    ];
    // A query may start with '-' (a user's text, not an option).
    let out = stdout_json(&xenc(
        &[&base[..], &["--query", "-5 degrees"]].concat(),
        b"",
    ));
    assert_eq!(out.len(), 2);
    let from_file: Vec<f64> = out.iter().map(|v| v["score"].as_f64().unwrap()).collect();
    // The same documents on stdin rank the same.
    let out = stdout_json(&xenc(
        &[
            "rerank",
            "--model",
            &m,
            "--device",
            "cpu",
            "--query",
            "-5 degrees",
        ],
        b"Rust is a language.\nA cat.\n",
    ));
    let from_stdin: Vec<f64> = out.iter().map(|v| v["score"].as_f64().unwrap()).collect();
    assert_eq!(from_file, from_stdin);
    // A blank line (here a trailing one) would be an empty document with a rank of its own: an error.
    std::fs::write(&docs, "Rust is a language.\nA cat.\n\n").unwrap();
    let out = xenc(&[&base[..], &["--query", "rust"]].concat(), b"");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("docs.txt: line 3: empty line"), "{err}");
}

#[test]
fn a_byte_order_mark_before_the_first_line_is_ignored() {
    let line = "{\"query\":\"q\",\"document\":\"d\"}\n";
    let args = ["score", "--model", &model(), "--device", "cpu"];
    let plain = stdout_json(&xenc(&args, line.as_bytes()));
    let bom = stdout_json(&xenc(&args, format!("\u{feff}{line}").as_bytes()));
    assert_eq!(plain, bom);
}

#[test]
fn a_token_id_the_model_lacks_is_named_by_its_line() {
    // The tokenizer gains a token (id 30522) the model's vocabulary (30522 rows) has no row for; the
    // pair using it is line 1,050 of 1,100, in the CLI's second chunk of pairs.
    let d = tiny_model();
    let path = d.path().join("tokenizer.json");
    let mut tok: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let added = tok["added_tokens"].as_array_mut().unwrap();
    let mut new = added[0].clone();
    new["id"] = 30522.into();
    new["content"] = "[NEW]".into();
    added.push(new);
    std::fs::write(&path, tok.to_string()).unwrap();
    let mut input = String::new();
    for i in 1..=1100 {
        let doc = if i == 1050 {
            "hello [NEW] world"
        } else {
            "hello world"
        };
        input += &format!("{{\"query\":\"q\",\"document\":\"{doc}\"}}\n");
    }
    let dir = d.path().to_str().unwrap();
    let out = xenc(
        &["score", "--model", dir, "--device", "cpu"],
        input.as_bytes(),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stdin: line 1050: token id 30522"), "{err}");
}

#[test]
fn a_reader_that_stops_early_ends_the_run_quietly() {
    // `xenc score ... | head -1`: more output than a pipe holds, the reader leaves after one line.
    let d = tiny_model();
    let input = "{\"query\":\"q\",\"document\":\"d\"}\n".repeat(20_000);
    let mut child = Command::new(env!("CARGO_BIN_EXE_xenc"))
        .args([
            "score",
            "--model",
            d.path().to_str().unwrap(),
            "--device",
            "cpu",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    assert!(first.starts_with("{\"score\":"), "{first}");
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(err.is_empty(), "{err}");
}
