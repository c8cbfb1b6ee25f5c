//! The batcher: one thread that owns the model. Request handlers tokenise their own pairs (so
//! tokenisation overlaps the running batch) and queue them as a [`Job`]; the batcher takes every job
//! already waiting, up to the token budget, merges their pairs into one slice, calls
//! [`Engine::logits_encoded`](crate::Engine::logits_encoded) once (the library's length-sorted,
//! token-budget planning forms the batches; a job larger than the budget is split there) and sends each
//! job its logits back by index.
//!
//! Waiting for company is bounded by one batch: the batcher never sleeps to let a batch fill. A job
//! that arrives while the model is idle runs at once, alone; jobs that arrive while a batch runs wait
//! for that batch only, and then run together.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::metrics::Metrics;
use super::ApiError;
use crate::error::ErrorKind;
use crate::tokenize::EncodedPair;
use crate::CrossEncoder;

/// One request's encoded pairs and where its logits go.
pub(crate) struct Job {
    pub(crate) pairs: Vec<EncodedPair>,
    pub(crate) reply: tokio::sync::oneshot::Sender<Result<Vec<f32>, ApiError>>,
    pub(crate) queued: Instant,
    /// The request's admission permit, released when the batcher is done with the job (not when the
    /// client goes away), so queued pairs always count against `max_concurrent_requests`.
    pub(crate) _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Job {
    fn tokens(&self) -> usize {
        self.pairs.iter().map(EncodedPair::len).sum()
    }
}

/// What the batcher shares with the request handlers.
pub(crate) struct Shared {
    pub(crate) model: Arc<CrossEncoder>,
    pub(crate) metrics: Arc<Metrics>,
    /// False once the backend has failed (a backend error or a panic): /health answers 503 and new
    /// requests are refused with 503.
    pub(crate) healthy: AtomicBool,
    /// Held by the batcher while a batch runs; a test holds it to keep requests in flight.
    pub(crate) gate: Arc<Mutex<()>>,
}

/// Runs the batcher until every sender of `jobs` is gone.
pub(crate) fn run(shared: Arc<Shared>, jobs: mpsc::Receiver<Job>) {
    let budget = shared.model.token_budget();
    let mut next: Option<Job> = None;
    loop {
        let first = match next.take() {
            Some(j) => j,
            None => match jobs.recv() {
                Ok(j) => j,
                Err(_) => return,
            },
        };
        // Everything already queued, up to the token budget (at least the first job, whatever its size).
        let mut tokens = first.tokens();
        let mut batch = vec![first];
        while tokens < budget {
            match jobs.try_recv() {
                Ok(j) => {
                    let t = j.tokens();
                    if tokens + t > budget {
                        next = Some(j);
                        break;
                    }
                    tokens += t;
                    batch.push(j);
                }
                Err(_) => break,
            }
        }
        let pairs: usize = batch.iter().map(|j| j.pairs.len()).sum();
        let m = &shared.metrics;
        m.queue_requests
            .fetch_sub(batch.len() as i64, Ordering::Relaxed);
        m.queue_pairs.fetch_sub(pairs as i64, Ordering::Relaxed);
        // A request whose client has gone is not scored.
        batch.retain(|j| !j.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let pairs: usize = batch.iter().map(|j| j.pairs.len()).sum();
        let tokens: usize = batch.iter().map(Job::tokens).sum();
        let _gate = shared.gate.lock().unwrap_or_else(|p| p.into_inner());
        let start = Instant::now();
        for j in &batch {
            m.queue_seconds
                .observe(start.duration_since(j.queued).as_secs_f64());
        }
        m.batch_requests.observe(batch.len() as f64);
        m.batch_pairs.observe(pairs as f64);
        m.batch_tokens.observe(tokens as f64);
        run_merged(&shared, batch);
    }
}

/// Scores the jobs' pairs in one call and answers each job. An error about one pair fails only the job
/// it belongs to (named by its own index); the other jobs are scored again without it.
fn run_merged(shared: &Shared, mut batch: Vec<Job>) {
    if batch.is_empty() {
        return;
    }
    let mut offsets = Vec::with_capacity(batch.len() + 1);
    offsets.push(0);
    let mut merged = Vec::with_capacity(batch.iter().map(|j| j.pairs.len()).sum());
    for j in &mut batch {
        merged.append(&mut j.pairs);
        offsets.push(merged.len());
    }
    let start = Instant::now();
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        shared.model.engine().logits_encoded(&merged)
    }));
    // Before any reply: a client that reads /metrics after its answer finds its batch counted.
    (shared.metrics.inference_seconds).observe(start.elapsed().as_secs_f64());
    match result {
        Ok(Ok(logits)) => {
            let labels = shared.model.num_labels();
            for (k, j) in batch.into_iter().enumerate() {
                let mine = &logits[offsets[k] * labels..offsets[k + 1] * labels];
                let _ = j.reply.send(Ok(mine.to_vec()));
            }
        }
        Ok(Err(e)) if e.item().is_some() => {
            let (_, index) = e.item().expect("an item error");
            let k = offsets.partition_point(|&o| o <= index) - 1;
            let start = offsets[k];
            // Give every job its pairs back, answer the failing one, rerun the others.
            let err = ApiError::from(&e.map_item_index(|i| i - start));
            let mut rest = Vec::with_capacity(batch.len() - 1);
            let mut pairs = merged.into_iter();
            for (i, mut j) in batch.into_iter().enumerate() {
                j.pairs = pairs.by_ref().take(offsets[i + 1] - offsets[i]).collect();
                if i == k {
                    let _ = j.reply.send(Err(err.clone()));
                } else {
                    rest.push(j);
                }
            }
            run_merged(shared, rest);
        }
        Ok(Err(e)) => {
            if e.kind() == ErrorKind::Backend {
                shared.healthy.store(false, Ordering::SeqCst);
                log::error!(target: "xenc::serve", "the backend failed: {e}");
            }
            let err = ApiError::from(&e);
            for j in batch {
                let _ = j.reply.send(Err(err.clone()));
            }
        }
        Err(panic) => {
            shared.healthy.store(false, Ordering::SeqCst);
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            log::error!(target: "xenc::serve", "the model panicked: {what}");
            let err = ApiError::backend(format!("the model failed: {what}"));
            for j in batch {
                let _ = j.reply.send(Err(err.clone()));
            }
        }
    }
}
