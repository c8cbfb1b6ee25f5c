//! A small HTTP load client for `xenc serve` (scripts/bench-serve.sh runs it): `concurrency` threads,
//! each on one keep-alive HTTP/1.1 connection, send requests back to back for a fixed time and record
//! each request's latency. Plain std TCP, so the client costs little of the machine it shares with the
//! server. Every answer is checked: status 200 and one score per pair sent (a lost pair is an error).
//!
//! ```text
//! cargo bench --bench serve_load -- --url http://127.0.0.1:3000 --pairs pairs.jsonl \
//!     --mode predict|rerank --concurrency 8 --seconds 20 [--batch 50] [--warmup 3]
//! ```
//! `predict`: /predict with `--batch` consecutive pairs of the file per request, cycling through it.
//! `rerank`: /rerank of the file's first query against its first `--batch` documents (as `xenc bench`'s
//! 1 × 50 rerank). Prints one JSON line: requests, pairs, errors, pairs/s, p50/p90/p99 latency in ms.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    host: String,
    pairs: String,
    mode: String,
    concurrency: usize,
    seconds: f64,
    warmup: f64,
    batch: usize,
    path: Option<String>,
    model: String,
}

fn args() -> Args {
    let mut a = Args {
        host: "127.0.0.1:3000".into(),
        pairs: String::new(),
        mode: "predict".into(),
        concurrency: 1,
        seconds: 10.0,
        warmup: 2.0,
        batch: 50,
        path: None,
        model: "xenc".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--url" => {
                a.host = v()
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    .into()
            }
            "--pairs" => a.pairs = v(),
            "--mode" => a.mode = v(),
            "--concurrency" => a.concurrency = v().parse().unwrap(),
            "--seconds" => a.seconds = v().parse().unwrap(),
            "--warmup" => a.warmup = v().parse().unwrap(),
            "--batch" => a.batch = v().parse().unwrap(),
            "--path" => a.path = Some(v()),
            "--model" => a.model = v(),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(
        !a.pairs.is_empty(),
        "--pairs FILE (JSON Lines of query, document)"
    );
    a
}

/// One request on a keep-alive connection: the status and the body.
fn request(conn: &mut BufReader<TcpStream>, host: &str, path: &str, body: &str) -> (u16, String) {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let s = conn.get_mut();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut line = String::new();
    conn.read_line(&mut line).unwrap();
    let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut length = 0;
    loop {
        line.clear();
        conn.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap();
            }
        }
    }
    let mut buf = vec![0; length];
    conn.read_exact(&mut buf).unwrap();
    (status, String::from_utf8(buf).unwrap())
}

fn main() {
    // `cargo test --all-targets` runs every bench target without arguments: nothing to load then.
    if !std::env::args().any(|a| a == "--pairs") {
        eprintln!(
            "serve_load: a load client for scripts/bench-serve.sh; nothing to do without --pairs"
        );
        return;
    }
    let a = args();
    let pairs: Vec<(String, String)> = std::fs::read_to_string(&a.pairs)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["query"].as_str().unwrap().into(),
                v["document"].as_str().unwrap().into(),
            )
        })
        .collect();
    // The request bodies, built once: (path, body, pairs in it).
    let bodies: Vec<(&str, String, usize)> = match a.mode.as_str() {
        "predict" => pairs
            .chunks(a.batch)
            .map(|c| {
                let inputs: Vec<[&str; 2]> =
                    c.iter().map(|(q, d)| [q.as_str(), d.as_str()]).collect();
                let body = serde_json::json!({ "inputs": inputs }).to_string();
                ("/predict", body, c.len())
            })
            .collect(),
        "rerank" => {
            let docs: Vec<&str> = (pairs.iter().cycle().take(a.batch))
                .map(|(_, d)| d.as_str())
                .collect();
            let body = serde_json::json!({ "query": pairs[0].0, "texts": docs }).to_string();
            vec![("/rerank", body, docs.len())]
        }
        // Cohere-style, for xenc's /v1/rerank and peers that speak it (Infinity's /rerank).
        "v1rerank" => {
            let docs: Vec<&str> = (pairs.iter().cycle().take(a.batch))
                .map(|(_, d)| d.as_str())
                .collect();
            let body =
                serde_json::json!({ "model": a.model, "query": pairs[0].0, "documents": docs });
            vec![("/v1/rerank", body.to_string(), docs.len())]
        }
        m => panic!("--mode {m}: predict, rerank or v1rerank"),
    };
    let path = a.path.clone();
    let bodies: Vec<(String, String, usize)> = (bodies.into_iter())
        .map(|(p, b, n)| (path.clone().unwrap_or_else(|| p.into()), b, n))
        .collect();
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..a.concurrency)
        .map(|_| {
            let (bodies, next, measuring, stop) = (
                bodies.clone(),
                next.clone(),
                measuring.clone(),
                stop.clone(),
            );
            let host = a.host.clone();
            std::thread::spawn(move || {
                let mut conn = BufReader::new(TcpStream::connect(&host).unwrap());
                conn.get_ref().set_nodelay(true).unwrap();
                let (mut lat, mut done_pairs, mut errors) = (Vec::new(), 0usize, 0usize);
                while !stop.load(Ordering::Relaxed) {
                    let (path, body, n) =
                        &bodies[next.fetch_add(1, Ordering::Relaxed) % bodies.len()];
                    let t = Instant::now();
                    let (status, answer) = request(&mut conn, &host, path, body);
                    let secs = t.elapsed().as_secs_f64();
                    // One score per pair: the answer's array, or its "results".
                    let got = serde_json::from_str::<serde_json::Value>(&answer)
                        .ok()
                        .and_then(|v| {
                            let list = if v.is_array() { &v } else { &v["results"] };
                            list.as_array().map(Vec::len)
                        });
                    let ok = status == 200 && got == Some(*n);
                    if measuring.load(Ordering::Relaxed) {
                        if ok {
                            lat.push(secs);
                            done_pairs += n;
                        } else {
                            errors += 1;
                            eprintln!("error: {status} {}", &answer[..answer.len().min(200)]);
                        }
                    }
                }
                (lat, done_pairs, errors)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(a.warmup));
    measuring.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(a.seconds));
    // Requests that finish after this point are still counted (their workers stop after them), so the
    // elapsed time runs until the last one is in.
    stop.store(true, Ordering::SeqCst);
    let (mut lat, mut done_pairs, mut errors) = (Vec::new(), 0, 0);
    for w in workers {
        let (l, p, e) = w.join().unwrap();
        lat.extend(l);
        done_pairs += p;
        errors += e;
    }
    let secs = t0.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if lat.is_empty() {
            f64::NAN
        } else {
            lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1] * 1e3
        }
    };
    println!(
        "{}",
        serde_json::json!({
            "mode": a.mode, "concurrency": a.concurrency, "batch": a.batch, "seconds": secs,
            "requests": lat.len(), "pairs": done_pairs, "errors": errors,
            "pairs_per_s": done_pairs as f64 / secs,
            "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99),
        })
    );
}
