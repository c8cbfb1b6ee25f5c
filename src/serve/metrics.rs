//! The server's Prometheus metrics, kept in atomics and a few mutexes and written out by hand in the
//! text exposition format (no metrics crate: a handful of counters, gauges and fixed-bucket histograms).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

/// Latency buckets in seconds: 100 µs to 10 s.
const SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Size buckets (pairs or tokens per batch): powers of two up to 2^20.
const SIZES: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0,
    16384.0, 32768.0, 65536.0, 131072.0, 262144.0, 524288.0, 1048576.0,
];

/// A cumulative histogram over fixed bucket bounds.
pub(crate) struct Histogram {
    bounds: &'static [f64],
    inner: Mutex<HistogramState>,
}

#[derive(Default)]
struct HistogramState {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            inner: Mutex::new(HistogramState {
                counts: vec![0; bounds.len()],
                ..Default::default()
            }),
        }
    }

    pub(crate) fn observe(&self, x: f64) {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = self.bounds.iter().position(|&b| x <= b) {
            s.counts[b] += 1;
        }
        s.sum += x;
        s.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&s.counts) {
            cumulative += c;
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", s.count);
        let _ = writeln!(out, "{name}_sum {}\n{name}_count {}", s.sum, s.count);
    }
}

/// Everything /metrics reports.
pub(crate) struct Metrics {
    /// Requests answered, by route and status code.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// Requests admitted and not yet answered.
    pub(crate) in_flight: AtomicI64,
    /// Requests tokenised and waiting for the batcher, and their pairs.
    pub(crate) queue_requests: AtomicI64,
    pub(crate) queue_pairs: AtomicI64,
    pub(crate) request_seconds: Histogram,
    pub(crate) tokenization_seconds: Histogram,
    pub(crate) queue_seconds: Histogram,
    pub(crate) inference_seconds: Histogram,
    pub(crate) batch_pairs: Histogram,
    pub(crate) batch_tokens: Histogram,
    pub(crate) batch_requests: Histogram,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        Metrics {
            requests: Mutex::new(BTreeMap::new()),
            in_flight: AtomicI64::new(0),
            queue_requests: AtomicI64::new(0),
            queue_pairs: AtomicI64::new(0),
            request_seconds: Histogram::new(SECONDS),
            tokenization_seconds: Histogram::new(SECONDS),
            queue_seconds: Histogram::new(SECONDS),
            inference_seconds: Histogram::new(SECONDS),
            batch_pairs: Histogram::new(SIZES),
            batch_tokens: Histogram::new(SIZES),
            batch_requests: Histogram::new(SIZES),
        }
    }

    pub(crate) fn count_request(&self, route: &'static str, status: u16) {
        let mut m = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((route, status)).or_insert(0) += 1;
    }

    /// The Prometheus text exposition of every metric.
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        out.push_str(
            "# HELP xenc_requests_total Requests answered, by route and HTTP status.\n\
             # TYPE xenc_requests_total counter\n",
        );
        for ((route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let outcome = if *status < 400 { "success" } else { "error" };
            let _ = writeln!(
                out,
                "xenc_requests_total{{route=\"{route}\",status=\"{status}\",outcome=\"{outcome}\"}} {n}"
            );
        }
        let gauge = |out: &mut String, name: &str, help: &str, v: &AtomicI64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        };
        gauge(
            &mut out,
            "xenc_requests_in_flight",
            "Scoring requests admitted and not yet answered (at most --max-concurrent-requests).",
            &self.in_flight,
        );
        gauge(
            &mut out,
            "xenc_queue_requests",
            "Tokenised requests waiting for the batcher.",
            &self.queue_requests,
        );
        gauge(
            &mut out,
            "xenc_queue_pairs",
            "Pairs of the requests waiting for the batcher.",
            &self.queue_pairs,
        );
        self.request_seconds.write(
            &mut out,
            "xenc_request_duration_seconds",
            "Scoring requests from admission to answer.",
        );
        self.tokenization_seconds.write(
            &mut out,
            "xenc_tokenization_duration_seconds",
            "Tokenisation of one request.",
        );
        self.queue_seconds.write(
            &mut out,
            "xenc_queue_duration_seconds",
            "From a request's pairs entering the queue to its batch starting.",
        );
        self.inference_seconds.write(
            &mut out,
            "xenc_inference_duration_seconds",
            "One merged batch through the model (a batch run again without a failed request counts twice).",
        );
        self.batch_pairs
            .write(&mut out, "xenc_batch_pairs", "Pairs per merged batch.");
        self.batch_tokens
            .write(&mut out, "xenc_batch_tokens", "Tokens per merged batch.");
        self.batch_requests.write(
            &mut out,
            "xenc_batch_requests",
            "Requests merged into one batch.",
        );
        out
    }
}
