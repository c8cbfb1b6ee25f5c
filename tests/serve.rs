//! `xenc serve` against a real server on 127.0.0.1 (an ephemeral port) with a real HTTP client: every
//! route, every error class, scores bit-identical to the library's, many concurrent clients, overload
//! and shutdown. Needs the test checkpoint (`bash scripts/fixtures.sh`). Nothing here asserts a time.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};
use xenc::serve::{self, ServeOptions, Server};
use xenc::{Activation, CrossEncoder, Device};

fn model() -> CrossEncoder {
    CrossEncoder::builder(common::test_model("f32"))
        .device(Device::Cpu)
        .build()
        .unwrap()
}

fn start(edit: impl FnOnce(&mut ServeOptions)) -> (Server, String) {
    start_with(model(), edit)
}

/// A server of `model` on 127.0.0.1, any free port.
fn start_with(model: CrossEncoder, edit: impl FnOnce(&mut ServeOptions)) -> (Server, String) {
    let mut o = ServeOptions {
        port: 0,
        model_id: "test-model".into(),
        ..ServeOptions::default()
    };
    edit(&mut o);
    let server = serve::start(model, o).unwrap();
    let url = format!("http://{}", server.addr());
    (server, url)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// POSTs `body` (JSON, or raw text) and returns the status and the parsed answer.
fn post_raw(url: &str, body: String, key: Option<&str>) -> (u16, Value) {
    let mut req = agent().post(url).header("Content-Type", "application/json");
    if let Some(k) = key {
        req = req.header("Authorization", format!("Bearer {k}"));
    }
    let mut resp = req.send(body).unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text}"))
    };
    (status, v)
}

fn post(url: &str, body: &Value) -> (u16, Value) {
    post_raw(url, body.to_string(), None)
}

fn get(url: &str, key: Option<&str>) -> (u16, String) {
    let mut req = agent().get(url);
    if let Some(k) = key {
        req = req.header("Authorization", format!("Bearer {k}"));
    }
    let mut resp = req.call().unwrap();
    let status = resp.status().as_u16();
    (status, resp.body_mut().read_to_string().unwrap())
}

fn f32_of(v: &Value) -> f32 {
    v.as_f64().unwrap() as f32
}

/// Documents of several lengths for a few queries, from the test checkpoint's vocabulary.
fn corpus(model: &CrossEncoder, n: usize, seed: u64) -> Vec<(String, String)> {
    xenc::bench::generate_with(model.tokenizer(), n, seed)
}

/// An error answer: status and error_type.
fn assert_error(r: (u16, Value), status: u16, error_type: &str) {
    assert_eq!(r.0, status, "{}", r.1);
    assert_eq!(r.1["error_type"], error_type, "{}", r.1);
    assert!(
        r.1["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{}",
        r.1
    );
}

/// A metric's value in /metrics' text.
fn metric(url: &str, name: &str) -> f64 {
    let (status, text) = get(&format!("{url}/metrics"), None);
    assert_eq!(status, 200);
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
        .parse()
        .unwrap()
}

/// Waits (without a time limit of its own: the test harness's is the bound) until `f` holds.
fn wait_until(mut f: impl FnMut() -> bool) {
    while !f() {
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn rerank_scores_equal_the_librarys_bit_for_bit() {
    let lib = model();
    let (server, url) = start(|_| {});
    let pairs = corpus(&lib, 40, 7);
    let query = pairs[0].0.clone();
    let docs: Vec<String> = pairs.iter().map(|(_, d)| d.clone()).collect();

    let want = lib.rerank(&query, &docs, docs.len()).unwrap();
    let (status, got) = post(
        &format!("{url}/rerank"),
        &json!({"query": query, "texts": docs, "return_text": true}),
    );
    assert_eq!(status, 200, "{got}");
    let got = got.as_array().unwrap();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g["index"].as_u64().unwrap() as usize, w.index);
        assert_eq!(f32_of(&g["score"]).to_bits(), w.score.to_bits());
        assert_eq!(g["text"], docs[w.index].as_str());
    }

    // raw_scores: the logits, ranked.
    let logits = lib.logits(
        &docs
            .iter()
            .map(|d| (query.as_str(), d.as_str()))
            .collect::<Vec<_>>(),
    );
    let want = lib
        .rank_logits(logits.unwrap(), Activation::Raw, docs.len())
        .unwrap();
    let (status, got) = post(
        &format!("{url}/rerank"),
        &json!({"query": query, "texts": docs, "raw_scores": true, "truncate": true,
                "truncation_direction": "Right"}),
    );
    assert_eq!(status, 200, "{got}");
    for (g, w) in got.as_array().unwrap().iter().zip(&want) {
        assert_eq!(g["index"].as_u64().unwrap() as usize, w.index);
        assert_eq!(f32_of(&g["score"]).to_bits(), w.score.to_bits());
        assert!(g.get("text").is_none());
    }
    server.shutdown().unwrap();
}

#[test]
fn v1_rerank_takes_strings_and_objects_and_returns_the_top_n() {
    let lib = model();
    let (server, url) = start(|_| {});
    let pairs = corpus(&lib, 12, 11);
    let query = pairs[3].0.clone();
    let docs: Vec<String> = pairs.iter().map(|(_, d)| d.clone()).collect();
    let want = lib.rerank(&query, &docs, 5).unwrap();
    let tokens: usize = lib
        .encode_documents(&query, &docs)
        .unwrap()
        .iter()
        .map(|p| p.len())
        .sum();
    // Half the documents as {text}, half as strings.
    let documents: Vec<Value> = (docs.iter().enumerate())
        .map(|(i, d)| {
            if i % 2 == 0 {
                json!(d)
            } else {
                json!({"text": d})
            }
        })
        .collect();
    let (status, got) = post(
        &format!("{url}/v1/rerank"),
        &json!({"model": "m", "query": query, "documents": documents, "top_n": 5,
                "return_documents": true}),
    );
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["model"], "m");
    assert!(got["id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(got["usage"]["total_tokens"].as_u64(), Some(tokens as u64));
    assert_eq!(
        got["meta"]["tokens"]["input_tokens"].as_u64(),
        Some(tokens as u64)
    );
    let results = got["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    for (g, w) in results.iter().zip(&want) {
        assert_eq!(g["index"].as_u64().unwrap() as usize, w.index);
        assert_eq!(f32_of(&g["relevance_score"]).to_bits(), w.score.to_bits());
        assert_eq!(g["document"]["text"], docs[w.index].as_str());
    }
    // Without top_n and return_documents: every document, no text.
    let (status, got) = post(
        &format!("{url}/v1/rerank"),
        &json!({"query": query, "documents": docs}),
    );
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["model"], "test-model");
    let results = got["results"].as_array().unwrap();
    assert_eq!(results.len(), docs.len());
    assert!(results.iter().all(|r| r.get("document").is_none()));
    server.shutdown().unwrap();
}

#[test]
fn predict_scores_equal_the_librarys_bit_for_bit() {
    let lib = model();
    let (server, url) = start(|_| {});
    let pairs = corpus(&lib, 30, 5);
    let want = lib.score(&pairs).unwrap();
    let inputs: Vec<[&str; 2]> = pairs
        .iter()
        .map(|(q, d)| [q.as_str(), d.as_str()])
        .collect();
    let (status, got) = post(&format!("{url}/predict"), &json!({"inputs": inputs}));
    assert_eq!(status, 200, "{got}");
    let got = got.as_array().unwrap();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(f32_of(&g[0]["score"]).to_bits(), w.to_bits());
        assert_eq!(g[0]["label"], "LABEL_0");
    }
    // One pair: one list of predictions; raw_scores: the logit.
    let logit = lib.logits(&pairs[..1]).unwrap()[0];
    let (status, got) = post(
        &format!("{url}/predict"),
        &json!({"inputs": inputs[0], "raw_scores": true}),
    );
    assert_eq!(status, 200, "{got}");
    assert_eq!(f32_of(&got[0]["score"]).to_bits(), logit.to_bits());
    server.shutdown().unwrap();
}

/// A model with three labels (contradiction / entailment / neutral): /predict answers every label, best
/// first, as TEI does for a classifier; the reranking routes answer 422 unless the server was started
/// with a label to rank by (scripts/build_shape_models.py's LABEL_SHAPES).
#[test]
fn several_labels_predict_all_and_rerank_only_by_a_chosen_label() {
    let three = |label: Option<&str>| {
        let b =
            CrossEncoder::builder(common::checkpoint("shapes/l2-h128-3labels")).device(Device::Cpu);
        match label {
            Some(l) => b.label(l),
            None => b,
        }
        .build()
        .unwrap()
    };
    let lib = three(None);
    let pairs = corpus(&lib, 12, 9);
    let want = lib.score(&pairs).unwrap();
    let (server, url) = start_with(three(None), |_| {});
    let inputs: Vec<[&str; 2]> = pairs
        .iter()
        .map(|(q, d)| [q.as_str(), d.as_str()])
        .collect();
    let (status, got) = post(&format!("{url}/predict"), &json!({"inputs": inputs}));
    assert_eq!(status, 200, "{got}");
    let names = ["contradiction", "entailment", "neutral"];
    for (g, w) in got.as_array().unwrap().iter().zip(want.chunks_exact(3)) {
        let g = g.as_array().unwrap();
        assert_eq!(g.len(), 3, "{g:?}");
        for e in g {
            let i = names.iter().position(|n| e["label"] == *n).unwrap();
            assert_eq!(f32_of(&e["score"]).to_bits(), w[i].to_bits());
        }
        assert!(g
            .windows(2)
            .all(|p| f32_of(&p[0]["score"]) >= f32_of(&p[1]["score"])));
    }
    let (_, info) = get(&format!("{url}/info"), None);
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["model_type"]["classifier"]["id2label"]["2"], "neutral");
    let rerank = json!({"query": pairs[0].0, "texts": [pairs[0].1, pairs[1].1]});
    let r = post(&format!("{url}/rerank"), &rerank);
    assert!(
        r.1["error"].as_str().unwrap().contains("--label"),
        "{}",
        r.1
    );
    assert_error(r, 422, "validation");
    let v1 = json!({"query": pairs[0].0, "documents": [pairs[0].1]});
    assert_error(post(&format!("{url}/v1/rerank"), &v1), 422, "validation");
    server.shutdown().unwrap();

    let (server, url) = start_with(three(Some("entailment")), |_| {});
    let (status, got) = post(&format!("{url}/rerank"), &rerank);
    assert_eq!(status, 200, "{got}");
    let docs = [pairs[0].1.as_str(), pairs[1].1.as_str()];
    let lib = three(Some("entailment"));
    let ranked = lib.rerank(&pairs[0].0, &docs, 2).unwrap();
    for (g, r) in got.as_array().unwrap().iter().zip(&ranked) {
        assert_eq!(g["index"].as_u64(), Some(r.index as u64));
        assert_eq!(f32_of(&g["score"]).to_bits(), r.score.to_bits());
    }
    server.shutdown().unwrap();
}

#[test]
fn health_info_and_metrics_answer() {
    let (server, url) = start(|o| o.max_client_batch_size = 77);
    assert_eq!(get(&format!("{url}/health"), None).0, 200);
    let (status, info) = get(&format!("{url}/info"), None);
    assert_eq!(status, 200);
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["model_id"], "test-model");
    assert_eq!(info["model_dtype"], "float32");
    assert_eq!(info["max_client_batch_size"], 77);
    assert_eq!(info["max_concurrent_requests"], 512);
    assert_eq!(info["auto_truncate"], true);
    assert!(info["max_input_length"].as_u64().unwrap() > 0);
    assert!(info["device"].as_str().unwrap().starts_with("cpu"));
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));

    let (status, _) = post(
        &format!("{url}/rerank"),
        &json!({"query": "q", "texts": ["a", "b", "c"]}),
    );
    assert_eq!(status, 200);
    let (status, text) = get(&format!("{url}/metrics"), None);
    assert_eq!(status, 200);
    for name in [
        "xenc_requests_total{route=\"/rerank\",status=\"200\",outcome=\"success\"} 1",
        "xenc_requests_in_flight 0",
        "xenc_queue_requests 0",
        "xenc_tokenization_duration_seconds_count 1",
        "xenc_queue_duration_seconds_count 1",
        "xenc_inference_duration_seconds_count 1",
        "xenc_batch_pairs_sum 3",
        "# TYPE xenc_batch_tokens histogram",
    ] {
        assert!(text.contains(name), "{name} not in\n{text}");
    }
    server.shutdown().unwrap();
}

#[test]
fn each_error_class_has_its_status_and_type() {
    let (server, url) = start(|o| {
        o.max_client_batch_size = 4;
        o.payload_limit = 4096;
    });
    let rerank = format!("{url}/rerank");
    assert_error(
        post(&rerank, &json!({"query": "q", "texts": []})),
        400,
        "empty",
    );
    assert_error(
        post(
            &rerank,
            &json!({"query": "q", "texts": ["a", "b", "c", "d", "e"]}),
        ),
        422,
        "validation",
    );
    // Over-long with truncation off: 422 naming the document; with it on (the default), scored.
    let long = "word ".repeat(600);
    let texts = json!(["short", long]);
    let r = post(
        &rerank,
        &json!({"query": "q", "texts": texts, "truncate": false}),
    );
    assert!(
        r.1["error"].as_str().unwrap().contains("document 1"),
        "{}",
        r.1
    );
    assert_error(r, 422, "validation");
    assert_eq!(post(&rerank, &json!({"query": "q", "texts": texts})).0, 200);
    assert_error(
        post(
            &format!("{url}/predict"),
            &json!({"inputs": [["q", long]], "truncate": false}),
        ),
        422,
        "validation",
    );
    assert_error(
        post(
            &rerank,
            &json!({"query": "q", "texts": ["a"], "truncation_direction": "Left"}),
        ),
        422,
        "validation",
    );
    // Not JSON, or not the route's shape.
    assert_error(post_raw(&rerank, "{".into(), None), 422, "validation");
    assert_error(post(&rerank, &json!({"texts": ["a"]})), 422, "validation");
    assert_error(
        post(&format!("{url}/predict"), &json!({"inputs": "one text"})),
        422,
        "validation",
    );
    assert_error(
        post(
            &format!("{url}/v1/rerank"),
            &json!({"query": "q", "documents": []}),
        ),
        400,
        "empty",
    );
    // Over the payload limit.
    let big = "x".repeat(5000);
    assert_error(
        post(&rerank, &json!({"query": "q", "texts": [big]})),
        413,
        "validation",
    );
    // An unknown route.
    assert_error(post(&format!("{url}/nope"), &json!({})), 404, "not_found");
    server.shutdown().unwrap();
}

#[test]
fn the_api_key_guards_every_route_but_health() {
    let (server, url) = start(|o| o.api_key = Some("s3cret".into()));
    let body = json!({"query": "q", "texts": ["a"]}).to_string();
    for key in [None, Some("wrong"), Some("s3cre"), Some("s3cret2")] {
        assert_error(
            post_raw(&format!("{url}/rerank"), body.clone(), key),
            401,
            "unauthorized",
        );
        assert_eq!(get(&format!("{url}/info"), key).0, 401);
        assert_eq!(get(&format!("{url}/metrics"), key).0, 401);
    }
    assert_eq!(
        post_raw(&format!("{url}/rerank"), body, Some("s3cret")).0,
        200
    );
    assert_eq!(get(&format!("{url}/info"), Some("s3cret")).0, 200);
    assert_eq!(get(&format!("{url}/health"), None).0, 200);
    server.shutdown().unwrap();
}

#[test]
fn a_failed_backend_makes_health_and_requests_503() {
    let (server, url) = start(|_| {});
    server.mark_unhealthy();
    let (status, body) = get(&format!("{url}/health"), None);
    assert_eq!(status, 503);
    assert!(body.contains("unhealthy"), "{body}");
    assert_error(
        post(
            &format!("{url}/rerank"),
            &json!({"query": "q", "texts": ["a"]}),
        ),
        503,
        "unhealthy",
    );
    server.shutdown().unwrap();
}

/// 64 clients at once, each with its own query and documents (1 to 40 of them), three times each:
/// every answer is what the library gives for that request alone.
#[test]
fn concurrent_clients_each_get_their_own_answer() {
    let lib = model();
    let (server, url) = start(|_| {});
    let pool = corpus(&lib, 400, 3);
    let requests: Vec<(String, Vec<String>)> = (0..64)
        .map(|c| {
            let n = 1 + (c * 7) % 40;
            // Short documents (the first 24 words) keep the run brief on two cores.
            let short = |d: &str| d.split(' ').take(24).collect::<Vec<_>>().join(" ");
            let docs = (0..n).map(|k| short(&pool[(c * 13 + k * 5) % pool.len()].1));
            (pool[c].0.clone(), docs.collect())
        })
        .collect();
    let want: Vec<Vec<(usize, u32)>> = requests
        .iter()
        .map(|(q, d)| {
            let r = lib.rerank(q, d, d.len()).unwrap();
            r.iter().map(|r| (r.index, r.score.to_bits())).collect()
        })
        .collect();
    std::thread::scope(|s| {
        for (c, (q, d)) in requests.iter().enumerate() {
            let (url, want) = (&url, &want[c]);
            s.spawn(move || {
                for _ in 0..3 {
                    let (status, got) =
                        post(&format!("{url}/rerank"), &json!({"query": q, "texts": d}));
                    assert_eq!(status, 200, "client {c}: {got}");
                    let got: Vec<(usize, u32)> = (got.as_array().unwrap().iter())
                        .map(|g| {
                            (
                                g["index"].as_u64().unwrap() as usize,
                                f32_of(&g["score"]).to_bits(),
                            )
                        })
                        .collect();
                    assert_eq!(&got, want, "client {c}");
                }
            });
        }
    });
    // Requests were merged: fewer batches than requests (not asserted: it depends on timing), and the
    // queue is empty again.
    assert_eq!(metric(&url, "xenc_queue_requests"), 0.0);
    assert_eq!(metric(&url, "xenc_requests_in_flight"), 0.0);
    server.shutdown().unwrap();
}

/// With the batcher held and room for 4 requests, 16 clients: 12 are answered 429 at once, the 4
/// admitted ones are all answered correctly once the batcher runs.
#[test]
fn overload_is_429_at_once_and_loses_no_admitted_request() {
    let lib = model();
    let (server, url) = start(|o| o.max_concurrent_requests = 4);
    let pool = corpus(&lib, 64, 9);
    let gate = server.batch_gate();
    let held = gate.lock().unwrap();
    let (tx, rx) = mpsc::channel();
    let clients: Vec<_> = (0..16)
        .map(|c| {
            let (url, tx) = (url.clone(), tx.clone());
            let (q, docs) = (
                pool[c].0.clone(),
                vec![pool[c].1.clone(), pool[c + 16].1.clone()],
            );
            std::thread::spawn(move || {
                let r = post(
                    &format!("{url}/rerank"),
                    &json!({"query": q, "texts": docs}),
                );
                tx.send(r.0).unwrap();
                (q, docs, r)
            })
        })
        .collect();
    // The 12 refused ones answer while the batcher is still held.
    let refused: Vec<u16> = (0..12).map(|_| rx.recv().unwrap()).collect();
    assert!(refused.iter().all(|&s| s == 429), "{refused:?}");
    assert_eq!(metric(&url, "xenc_requests_in_flight"), 4.0);
    drop(held);
    let mut ok = 0;
    for c in clients {
        let (q, docs, (status, got)) = c.join().unwrap();
        if status == 429 {
            assert_error((status, got), 429, "overloaded");
            continue;
        }
        assert_eq!(status, 200, "{got}");
        let want = lib.rerank(&q, &docs, docs.len()).unwrap();
        for (g, w) in got.as_array().unwrap().iter().zip(&want) {
            assert_eq!(g["index"].as_u64().unwrap() as usize, w.index);
            assert_eq!(f32_of(&g["score"]).to_bits(), w.score.to_bits());
        }
        ok += 1;
    }
    assert_eq!(ok, 4);
    server.shutdown().unwrap();
}

/// Shutdown with 8 requests in flight (the batcher held): the server stops accepting, then answers
/// all 8, then stops.
#[test]
fn shutdown_finishes_requests_in_flight() {
    let lib = model();
    let (server, url) = start(|_| {});
    let addr = server.addr();
    let pool = corpus(&lib, 32, 13);
    let gate = server.batch_gate();
    let held = gate.lock().unwrap();
    let clients: Vec<_> = (0..8)
        .map(|c| {
            let url = url.clone();
            let (q, d) = pool[c].clone();
            std::thread::spawn(move || {
                let r = post(&format!("{url}/predict"), &json!({"inputs": [q, d]}));
                ((q, d), r)
            })
        })
        .collect();
    wait_until(|| metric(&url, "xenc_requests_in_flight") == 8.0);
    let stopping = std::thread::spawn(move || server.shutdown());
    // Stopped accepting: a new connection is refused.
    wait_until(|| std::net::TcpStream::connect(addr).is_err());
    drop(held);
    for c in clients {
        let (pair, (status, got)) = c.join().unwrap();
        assert_eq!(status, 200, "{got}");
        let want = lib.score(&[pair]).unwrap()[0];
        assert_eq!(f32_of(&got[0]["score"]).to_bits(), want.to_bits());
    }
    stopping.join().unwrap().unwrap();
}

/// The binary: `xenc serve --port 0` prints its address, answers, and exits 0 on SIGTERM.
#[cfg(unix)]
#[test]
fn the_binary_serves_and_exits_0_on_sigterm() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_xenc"))
        .args(["serve", "--device", "cpu", "--port", "0", "--model"])
        .arg(common::test_model("f32"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let url = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "xenc serve exited"
        );
        if let Some(at) = line.find("http://") {
            break line[at..].trim().to_string();
        }
    };
    let (status, got) = post(
        &format!("{url}/rerank"),
        &json!({"query": "q", "texts": ["a"]}),
    );
    assert_eq!(status, 200, "{got}");
    // SAFETY: kill sends a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
