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
        // Streaming: every line before the bad one is scored and printed, nothing after it.
        let printed = String::from_utf8(out.stdout).unwrap();
        assert_eq!(printed.lines().count(), 1, "{needle}: {printed}");
        assert!(printed.starts_with("{\"score\":"), "{printed}");
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
    // A file where the checkpoint directory should be.
    let file = format!("{}/config.json", model());
    let out = xenc(&["score", "--model", &file], b"");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.json: not a directory"), "{err}");
    // A tokenizer engine that does not exist is named as such, not as a tokenizer_config.json problem.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xenc"));
    cmd.env("XENC_TOKENIZER", "garbage");
    let out = cmd
        .args(["score", "--model", &model(), "--device", "cpu"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("XENC_TOKENIZER=\"garbage\""), "{err}");
    assert!(!err.contains("tokenizer_config.json"), "{err}");
    // So is a kernel option, given as a flag.
    let out = xenc(&["score", "--model", &model(), "--ffn-in", "fastest"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("fused-w64"), "{err}");
}

#[test]
fn score_streams_each_chunk_before_the_input_ends() {
    // A producer that writes one line and then waits: its score must come out while stdin is still open.
    let d = tiny_model();
    let mut child = spawn_score(d.path());
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"{\"query\":\"q\",\"document\":\"d\"}\n")
        .unwrap();
    stdin.flush().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        tx.send(lines.next()).unwrap();
        lines.count()
    });
    // Generous: this only keeps a broken build from hanging the suite; streaming answers in ms.
    let first = rx.recv_timeout(std::time::Duration::from_secs(120));
    drop(stdin); // end the input either way
    let first = first.expect("no score while the input was still open");
    assert!(first.unwrap().unwrap().starts_with("{\"score\":"));
    assert_eq!(reader.join().unwrap(), 0);
    assert!(child.wait().unwrap().success());
}

#[test]
fn a_closed_stdout_is_an_error_not_lost_scores() {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "exec '{}' score --model '{}' --device cpu >&-",
            env!("CARGO_BIN_EXE_xenc"),
            model()
        ))
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .unwrap()
                .write_all(b"{\"query\":\"q\",\"document\":\"d\"}\n")?;
            c.wait_with_output()
        })
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("stdout: closed"), "{err}");
    // /dev/null on purpose is fine: write-only (a shell's `>`) or read-write (`1<>`, as Python's
    // subprocess.DEVNULL opens it).
    for redirect in ["> /dev/null", "1<> /dev/null"] {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "echo '{{\"query\":\"q\",\"document\":\"d\"}}' | '{}' score --model '{}' --device cpu {redirect}",
                env!("CARGO_BIN_EXE_xenc"),
                model()
            ))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{redirect}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn threads_beyond_the_cores_are_lowered_with_a_warning() {
    // 100,000 threads would take minutes to start (1,000 took 8 s); the cores are what can run.
    let d = tiny_model();
    let out = xenc(
        &[
            "score",
            "--model",
            d.path().to_str().unwrap(),
            "--device",
            "cpu",
            "--threads",
            "100000",
        ],
        b"{\"query\":\"q\",\"document\":\"d\"}\n",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("threads 100000: this process may use"),
        "{err}"
    );
    assert_eq!(stdout_json(&out).len(), 1);
}

#[test]
fn bench_generate_is_bounded() {
    for n in ["18446744073709551615", "1000000000000"] {
        let out = xenc(
            &[
                "bench",
                "--model",
                &model(),
                "--device",
                "cpu",
                "--generate",
                n,
            ],
            b"",
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{n}: {err}");
        assert!(err.contains("at most 1000000 pairs"), "{n}: {err}");
    }
}

#[test]
fn a_tokenizer_without_its_unknown_token_is_the_checkpoints_fault() {
    let d = tiny_model();
    let path = d.path().join("tokenizer.json");
    let mut tok: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    tok["model"]["vocab"]
        .as_object_mut()
        .unwrap()
        .remove("[UNK]");
    tok["added_tokens"]
        .as_array_mut()
        .unwrap()
        .retain(|t| t["content"] != "[UNK]");
    std::fs::write(&path, tok.to_string()).unwrap();
    let out = xenc(
        &[
            "rerank",
            "--model",
            d.path().to_str().unwrap(),
            "--device",
            "cpu",
            "--query",
            "q",
        ],
        "ℵ⁂\n".as_bytes(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("unk_token \"[UNK]\" is not in the vocabulary"),
        "{err}"
    );
    assert!(!err.contains("line 1"), "{err}");
}

/// `xenc score` on the CPU with `model`, every stream piped.
fn spawn_score(model: &std::path::Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_xenc"))
        .args([
            "score",
            "--model",
            model.to_str().unwrap(),
            "--device",
            "cpu",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
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
    // The lines before it, in its chunk too, were scored and printed; none after it.
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1049);
    // rerank: the same token in the query is the query's fault, not the first document's.
    let out = xenc(
        &[
            "rerank",
            "--model",
            dir,
            "--device",
            "cpu",
            "--query",
            "a [NEW] b",
        ],
        b"hello world\n",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--query: token id 30522"), "{err}");
    assert!(!err.contains("line 1"), "{err}");
}

#[test]
fn a_reader_that_stops_early_ends_the_run_quietly() {
    // `xenc score ... | head -1`: more output than a pipe holds, the reader leaves after one line.
    let d = tiny_model();
    let input = "{\"query\":\"q\",\"document\":\"d\"}\n".repeat(20_000);
    let mut child = spawn_score(d.path());
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
    // xenc streams: once its reader is gone it stops reading too, so the producer may meet a broken
    // pipe (as `yes | head` does).
    if let Err(e) = writer.join().unwrap() {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(err.is_empty(), "{err}");
}
