//! The routes: request and response shapes (TEI's `/rerank` and `/predict`, Cohere/Jina's
//! `/v1/rerank`), validation, admission, tokenisation and the answer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State as Extract};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::batcher::{Job, Shared};
use super::{ApiError, ServeOptions};
use crate::config::Activation;
use crate::tokenize::EncodedPair;
use crate::CrossEncoder;

/// What every handler shares.
pub(crate) struct State {
    shared: Arc<Shared>,
    jobs: mpsc::Sender<Job>,
    permits: Arc<tokio::sync::Semaphore>,
    options: ServeOptions,
    next_id: AtomicU64,
    started: u64,
}

type S = Arc<State>;

impl State {
    pub(crate) fn new(shared: Arc<Shared>, jobs: mpsc::Sender<Job>, options: &ServeOptions) -> S {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Arc::new(State {
            shared,
            jobs,
            permits: Arc::new(tokio::sync::Semaphore::new(options.max_concurrent_requests)),
            options: options.clone(),
            next_id: AtomicU64::new(0),
            started,
        })
    }
}

pub(crate) fn router(state: S) -> Router {
    let limit = state.options.payload_limit;
    Router::new()
        .route("/rerank", post(rerank))
        .route("/v1/rerank", post(v1_rerank))
        .route("/predict", post(predict))
        .route("/health", get(health))
        .route("/info", get(info))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.message, "error_type": self.error_type});
        with_json(self.status, &body)
    }
}

fn json_response(v: Value) -> Response {
    with_json(StatusCode::OK, &v)
}

fn with_json(status: StatusCode, v: &Value) -> Response {
    let headers = [(header::CONTENT_TYPE, "application/json")];
    (status, headers, v.to_string()).into_response()
}

/// 401 unless the request carries the API key (when one is set).
fn authorize(s: &State, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = &s.options.api_key else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // Compared in constant time: the time taken says nothing about how much of the key matched.
    let same = given.is_some_and(|g| {
        g.len() == key.len()
            && g.bytes()
                .zip(key.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if same {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong API key: send `Authorization: Bearer KEY`",
        ))
    }
}

/// A JSON body of type `T`: over the payload limit 413, not JSON or not `T` 422.
fn parse<T: serde::de::DeserializeOwned>(
    s: &State,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "validation",
                format!(
                    "the request body is larger than {} bytes (--payload-limit)",
                    s.options.payload_limit
                ),
            )
        } else {
            ApiError::validation(format!("unreadable request body: {}", r.body_text()))
        }
    })?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::validation(format!("invalid request JSON: {e}")))
}

/// Counts and times a scoring route's answer.
async fn answer(
    s: &S,
    route: &'static str,
    f: impl std::future::Future<Output = Result<Response, ApiError>>,
) -> Response {
    let start = Instant::now();
    let r = f.await.unwrap_or_else(IntoResponse::into_response);
    let m = &s.shared.metrics;
    m.count_request(route, r.status().as_u16());
    if r.status().is_success() {
        m.request_seconds.observe(start.elapsed().as_secs_f64());
    }
    r
}

/// Decrements the in-flight gauge when a request ends, however it ends.
struct InFlight<'a>(&'a State);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0
            .shared
            .metrics
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Logits of one request's pairs: admission (429 when `max_concurrent_requests` are in flight, 503
/// once the backend has failed), tokenisation by `encode` on tokio's blocking pool, then the batcher.
/// Returns the logits by index and the request's token count.
async fn score(
    s: &S,
    encode: impl FnOnce(&CrossEncoder) -> Result<Vec<EncodedPair>, ApiError> + Send + 'static,
) -> Result<(Vec<f32>, usize), ApiError> {
    if !s.shared.healthy.load(Ordering::SeqCst) {
        return Err(ApiError::unhealthy());
    }
    let permit = s
        .permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::overloaded(s.options.max_concurrent_requests))?;
    let m = &s.shared.metrics;
    m.in_flight.fetch_add(1, Ordering::Relaxed);
    let _in_flight = InFlight(s);
    let start = Instant::now();
    let model = s.shared.model.clone();
    let pairs = tokio::task::spawn_blocking(move || encode(&model))
        .await
        .map_err(|e| ApiError::backend(format!("tokenisation failed: {e}")))??;
    m.tokenization_seconds
        .observe(start.elapsed().as_secs_f64());
    let tokens = pairs.iter().map(EncodedPair::len).sum();
    let n = pairs.len();
    let (reply, answer) = tokio::sync::oneshot::channel();
    m.queue_requests.fetch_add(1, Ordering::Relaxed);
    m.queue_pairs.fetch_add(n as i64, Ordering::Relaxed);
    let job = Job {
        pairs,
        reply,
        queued: Instant::now(),
        _permit: permit,
    };
    if s.jobs.send(job).is_err() {
        m.queue_requests.fetch_sub(1, Ordering::Relaxed);
        m.queue_pairs.fetch_sub(n as i64, Ordering::Relaxed);
        return Err(ApiError::unhealthy());
    }
    let logits = answer
        .await
        .map_err(|_| ApiError::backend("the batcher stopped before answering"))??;
    Ok((logits, tokens))
}

/// TEI's `truncate` and `truncation_direction`: whether to truncate (the server's default if absent).
fn truncation(
    s: &State,
    truncate: Option<bool>,
    direction: Option<&str>,
) -> Result<bool, ApiError> {
    if let Some(d) = direction {
        if !d.eq_ignore_ascii_case("right") {
            return Err(ApiError::validation(format!(
                "truncation_direction {d:?} is not supported: xenc truncates pairs longest-first \
                 from the right, as sentence-transformers"
            )));
        }
    }
    Ok(truncate.unwrap_or(s.options.auto_truncate))
}

fn check_count(s: &State, n: usize, what: &str) -> Result<(), ApiError> {
    if n == 0 {
        return Err(ApiError::empty(format!("`{what}` is empty")));
    }
    let max = s.options.max_client_batch_size;
    if n > max {
        return Err(ApiError::validation(format!(
            "`{what}` has {n} items, more than {max} (--max-client-batch-size)"
        )));
    }
    Ok(())
}

/// `query` with each of `documents`, as `rerank` encodes them. Without truncation a pair longer than
/// the model's max length is a 422 naming the document.
fn encode_documents(
    model: &CrossEncoder,
    query: &str,
    documents: &[String],
    truncate: bool,
) -> Result<Vec<EncodedPair>, ApiError> {
    if truncate {
        return model
            .encode_documents(query, documents)
            .map_err(|e| ApiError::from(&e));
    }
    let tok = model.tokenizer();
    let q = tok
        .encode_piece(query)
        .map_err(|e| ApiError::from(&e.at_item("query", 0)))?;
    documents
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let d = tok
                .encode_piece(d)
                .map_err(|e| ApiError::from(&e.at_item("document", i)))?;
            check_length(model, q.len() + d.len(), "document", i)?;
            tok.join(&q, &d).map_err(|e| ApiError::from(&e))
        })
        .collect()
}

/// Without truncation, 422 if a pair of `content` tokens plus the special tokens exceeds the max length.
fn check_length(
    model: &CrossEncoder,
    content: usize,
    what: &str,
    i: usize,
) -> Result<(), ApiError> {
    let specials = model.tokenizer().special_tokens_per_pair();
    let (n, max) = (content + specials, model.max_length());
    if n > max {
        return Err(ApiError::validation(format!(
            "invalid input: {what} {i}: {n} tokens, more than the model's max input length {max} \
             (send \"truncate\": true, or start the server with --auto-truncate true)"
        )));
    }
    Ok(())
}

/// A model with several labels ranks only by the label chosen with `--label`: otherwise the reranking
/// routes answer 422 before any work.
fn check_rankable(s: &State) -> Result<(), ApiError> {
    let m = &s.shared.model;
    if m.label().is_some() {
        return Ok(());
    }
    Err(ApiError::validation(format!(
        "the model has {} labels ({}); reranking needs one score per document: start the server \
         with --label NAME to rank by that label, or score pairs with /predict",
        m.num_labels(),
        m.config().labels_listed()
    )))
}

/// Documents scored: `logits` holds one row of labels each.
fn texts_len(logits: &[f32], s: &State) -> usize {
    logits.len() / s.shared.model.num_labels()
}

fn activation(s: &State, raw_scores: bool) -> Activation {
    if raw_scores {
        Activation::Raw
    } else {
        s.shared.model.activation()
    }
}

#[derive(Deserialize)]
struct RerankRequest {
    query: String,
    texts: Vec<String>,
    truncate: Option<bool>,
    truncation_direction: Option<String>,
    #[serde(default)]
    raw_scores: bool,
    #[serde(default)]
    return_text: bool,
}

/// TEI's `/rerank`: `[{index, score, text?}]`, best first.
async fn rerank(
    Extract(s): Extract<S>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(&s, "/rerank", async {
        authorize(&s, &headers)?;
        let r: RerankRequest = parse(&s, body)?;
        check_rankable(&s)?;
        check_count(&s, r.texts.len(), "texts")?;
        let truncate = truncation(&s, r.truncate, r.truncation_direction.as_deref())?;
        let act = activation(&s, r.raw_scores);
        let RerankRequest {
            query,
            texts,
            return_text,
            ..
        } = r;
        let (texts, (logits, _)) = keep_texts(return_text, texts, |texts| {
            score(&s, move |m| encode_documents(m, &query, &texts, truncate))
        })
        .await?;
        let n = texts_len(&logits, &s);
        let ranked =
            (s.shared.model.rank_logits(logits, act, n)).map_err(|e| ApiError::from(&e))?;
        let ranked: Vec<Value> = ranked
            .into_iter()
            .map(|r| {
                let mut v = json!({"index": r.index, "score": r.score});
                if let Some(t) = &texts {
                    v["text"] = t[r.index].clone().into();
                }
                v
            })
            .collect();
        Ok(json_response(Value::Array(ranked)))
    })
    .await
}

/// Runs `f` on `texts`, keeping a copy of them when the answer returns them.
async fn keep_texts<F, Fut, T>(
    keep: bool,
    texts: Vec<String>,
    f: F,
) -> Result<(Option<Vec<String>>, T), ApiError>
where
    F: FnOnce(Vec<String>) -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    let kept = keep.then(|| texts.clone());
    Ok((kept, f(texts).await?))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Document {
    Text(String),
    Object { text: String },
}

#[derive(Deserialize)]
struct V1RerankRequest {
    model: Option<String>,
    query: String,
    documents: Vec<Document>,
    top_n: Option<usize>,
    #[serde(default)]
    return_documents: bool,
}

/// Cohere/Jina's `/v1/rerank`: `{id, model, results: [{index, relevance_score, document?}], meta,
/// usage}`, best first, the best `top_n`.
async fn v1_rerank(
    Extract(s): Extract<S>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(&s, "/v1/rerank", async {
        authorize(&s, &headers)?;
        let r: V1RerankRequest = parse(&s, body)?;
        check_rankable(&s)?;
        check_count(&s, r.documents.len(), "documents")?;
        let truncate = s.options.auto_truncate;
        let texts: Vec<String> = (r.documents.into_iter())
            .map(|d| match d {
                Document::Text(t) | Document::Object { text: t } => t,
            })
            .collect();
        let query = r.query;
        let (texts, (logits, tokens)) = keep_texts(r.return_documents, texts, |texts| {
            score(&s, move |m| encode_documents(m, &query, &texts, truncate))
        })
        .await?;
        let top_n = r.top_n.unwrap_or(texts_len(&logits, &s));
        let act = s.shared.model.activation();
        let ranked =
            (s.shared.model.rank_logits(logits, act, top_n)).map_err(|e| ApiError::from(&e))?;
        let results: Vec<Value> = ranked
            .into_iter()
            .map(|r| {
                let mut v = json!({"index": r.index, "relevance_score": r.score});
                if let Some(t) = &texts {
                    v["document"] = json!({"text": t[r.index]});
                }
                v
            })
            .collect();
        let n = s.next_id.fetch_add(1, Ordering::Relaxed);
        Ok(json_response(json!({
            "id": format!("{:016x}-{n:016x}", s.started),
            "model": r.model.unwrap_or_else(|| s.options.model_id.clone()),
            "results": results,
            "meta": {
                "api_version": {"version": "2"},
                "billed_units": {"search_units": 1},
                "tokens": {"input_tokens": tokens, "output_tokens": 0},
            },
            "usage": {"total_tokens": tokens},
        })))
    })
    .await
}

#[derive(Deserialize)]
struct PredictRequest {
    inputs: Value,
    truncate: Option<bool>,
    truncation_direction: Option<String>,
    #[serde(default)]
    raw_scores: bool,
}

/// TEI's `inputs`: one pair `[query, document]` (answered `[{score, label}]`, one entry per label,
/// best first) or a list of pairs (answered `[[{score, label}], ...]`). A cross-encoder scores pairs: a lone text is a 422.
fn predict_inputs(inputs: Value) -> Result<(bool, Vec<(String, String)>), ApiError> {
    let pair = |v: &Value| -> Option<(String, String)> {
        match v.as_array().map(Vec::as_slice) {
            Some([Value::String(q), Value::String(d)]) => Some((q.clone(), d.clone())),
            _ => None,
        }
    };
    let not_pairs = || {
        ApiError::validation(
            "`inputs` must be a pair [query, document] or a list of pairs: a cross-encoder scores pairs",
        )
    };
    if let Some(p) = pair(&inputs) {
        return Ok((true, vec![p]));
    }
    let Value::Array(items) = inputs else {
        return Err(not_pairs());
    };
    let pairs = items.iter().map(pair).collect::<Option<Vec<_>>>();
    pairs.map(|p| (false, p)).ok_or_else(not_pairs)
}

/// TEI's `/predict` for pairs.
async fn predict(
    Extract(s): Extract<S>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    answer(&s, "/predict", async {
        authorize(&s, &headers)?;
        let r: PredictRequest = parse(&s, body)?;
        let (single, pairs) = predict_inputs(r.inputs)?;
        check_count(&s, pairs.len(), "inputs")?;
        let truncate = truncation(&s, r.truncate, r.truncation_direction.as_deref())?;
        let act = activation(&s, r.raw_scores);
        let (mut logits, _) = score(&s, move |m| encode_pairs(m, &pairs, truncate)).await?;
        let names = &s.shared.model.config().labels;
        act.apply_rows(&mut logits, names.len());
        // As TEI: every label of a pair, best first (ties in label order).
        let labelled = |row: &[f32]| {
            let mut order: Vec<usize> = (0..row.len()).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            let entries = order
                .into_iter()
                .map(|i| json!({"score": row[i], "label": names[i]}));
            Value::Array(entries.collect())
        };
        let mut rows = logits.chunks_exact(names.len()).map(labelled);
        if single {
            return Ok(json_response(rows.next().expect("one pair")));
        }
        Ok(json_response(Value::Array(rows.collect())))
    })
    .await
}

/// Pairs as `score` encodes them; without truncation an over-long pair is a 422 naming it.
fn encode_pairs(
    model: &CrossEncoder,
    pairs: &[(String, String)],
    truncate: bool,
) -> Result<Vec<EncodedPair>, ApiError> {
    if truncate {
        return model
            .tokenizer()
            .encode_pairs(pairs)
            .map_err(|e| ApiError::from(&e));
    }
    let tok = model.tokenizer();
    pairs
        .iter()
        .enumerate()
        .map(|(i, (q, d))| {
            let piece = |t: &str| {
                tok.encode_piece(t)
                    .map_err(|e| ApiError::from(&e.at_item("pair", i)))
            };
            let (q, d) = (piece(q)?, piece(d)?);
            check_length(model, q.len() + d.len(), "pair", i)?;
            tok.join(&q, &d).map_err(|e| ApiError::from(&e))
        })
        .collect()
}

/// 200 while the backend works, 503 once it has failed (a load balancer's readiness check).
async fn health(Extract(s): Extract<S>) -> Response {
    let r = if s.shared.healthy.load(Ordering::SeqCst) {
        StatusCode::OK.into_response()
    } else {
        ApiError::unhealthy().into_response()
    };
    s.shared
        .metrics
        .count_request("/health", r.status().as_u16());
    r
}

/// The model, the device and the server's limits (TEI's field names where it has them).
async fn info(Extract(s): Extract<S>, headers: HeaderMap) -> Response {
    let r = match authorize(&s, &headers) {
        Err(e) => e.into_response(),
        Ok(()) => {
            let m = &s.shared.model;
            let o = &s.options;
            let labels = &m.config().labels;
            let id2label: serde_json::Map<String, Value> = (labels.iter().enumerate())
                .map(|(i, n)| (i.to_string(), n.clone().into()))
                .collect();
            let label2id: serde_json::Map<String, Value> = (labels.iter().enumerate())
                .map(|(i, n)| (n.clone(), i.into()))
                .collect();
            json_response(json!({
                "model_id": o.model_id,
                "model_dtype": if m.on_gpu() { "float16" } else { "float32" },
                "model_type": {"classifier": {
                    "id2label": id2label, "label2id": label2id}},
                "activation": m.activation().name(),
                "rank_label": m.label().map(|i| labels[i].clone()),
                "device": m.device_name(),
                "max_input_length": m.max_length(),
                "max_batch_tokens": m.token_budget(),
                "max_client_batch_size": o.max_client_batch_size,
                "max_concurrent_requests": o.max_concurrent_requests,
                "auto_truncate": o.auto_truncate,
                "payload_limit": o.payload_limit,
                "version": env!("CARGO_PKG_VERSION"),
                "router": "xenc",
            }))
        }
    };
    s.shared.metrics.count_request("/info", r.status().as_u16());
    r
}

async fn metrics(Extract(s): Extract<S>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&s, &headers) {
        s.shared
            .metrics
            .count_request("/metrics", e.status.as_u16());
        return e.into_response();
    }
    s.shared.metrics.count_request("/metrics", 200);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.shared.metrics.render(),
    )
        .into_response()
}

async fn not_found() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route: POST /rerank, /v1/rerank, /predict; GET /health, /info, /metrics",
    )
    .into_response()
}
