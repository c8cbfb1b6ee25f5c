//! `xenc serve`: an HTTP reranking server (TEI's `/rerank` and `/predict`, a Cohere/Jina-style
//! `/v1/rerank`, `/health`, `/info`, `/metrics`) on tokio + axum, behind the `serve` feature.
//!
//! Request handlers parse and validate, take one of `max_concurrent_requests` permits (none left: 429 at
//! once), tokenise on tokio's blocking pool and queue the encoded pairs for the [batcher](batcher), the
//! one thread that owns the model and merges whatever is queued into token-budget batches. Errors map
//! once, from [`Error`](crate::Error) to a status and `{error, error_type}` ([`ApiError::from`]).
//!
//! ```no_run
//! use xenc::{serve, CrossEncoder, Device};
//! let model = CrossEncoder::builder("models/ms-marco-MiniLM-L-6-v2").device(Device::Cpu).build()?;
//! let mut options = serve::ServeOptions::default();
//! options.port = 0; // any free port
//! let server = serve::start(model, options)?;
//! println!("listening on http://{}", server.addr());
//! server.shutdown()?; // or server.wait() to run until SIGTERM / SIGINT
//! # Ok::<(), xenc::Error>(())
//! ```

mod batcher;
mod metrics;
mod routes;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;

use crate::error::{Error, ErrorKind, Result};
use crate::CrossEncoder;

/// Defaults follow TEI where it has one; README "Serving" says why each is what it is.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on (default 127.0.0.1: reachable from this machine only; 0.0.0.0 to serve
    /// others).
    pub host: String,
    /// Port (default 3000, as TEI; 0 picks a free one, see [`Server::addr`]).
    pub port: u16,
    /// Most texts (documents or pairs) in one request (default 1024: a retriever's top few hundred in
    /// one rerank; TEI's 32 turns a top-100 rerank into 422s).
    pub max_client_batch_size: usize,
    /// Most scoring requests admitted at once, tokenising, queued or running (default 512, as TEI);
    /// beyond it requests are answered 429 at once. With `max_client_batch_size` and `payload_limit`
    /// it bounds the server's memory.
    pub max_concurrent_requests: usize,
    /// Truncate over-long pairs to the model's max length when a request does not say (default true,
    /// as sentence-transformers and TEI's `--auto-truncate`); false: such a request is a 422.
    pub auto_truncate: bool,
    /// If set, every route but /health needs `Authorization: Bearer KEY` (else 401).
    pub api_key: Option<String>,
    /// Largest request body in bytes (default 2,000,000, as TEI); a larger one is a 413.
    pub payload_limit: usize,
    /// The model's name in /info and /v1/rerank responses.
    pub model_id: String,
    /// Also stop on SIGTERM and SIGINT (the CLI sets it; tests stop with [`Server::shutdown`]).
    pub stop_on_signals: bool,
    /// After a stop was asked for, how long in-flight requests may take to finish before the server
    /// closes anyway (default 30 s).
    pub shutdown_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            host: "127.0.0.1".into(),
            port: 3000,
            max_client_batch_size: 1024,
            max_concurrent_requests: 512,
            auto_truncate: true,
            api_key: None,
            payload_limit: 2_000_000,
            model_id: "xenc".into(),
            stop_on_signals: false,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// An HTTP error: status, message and TEI's `error_type`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub error_type: &'static str,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        error_type: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            error_type,
            message: message.into(),
        }
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", message)
    }

    pub(crate) fn empty(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "empty", message)
    }

    pub(crate) fn backend(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FAILED_DEPENDENCY, "backend", message)
    }

    pub(crate) fn overloaded(limit: usize) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "overloaded",
            format!(
                "the model is overloaded: {limit} requests in flight (--max-concurrent-requests)"
            ),
        )
    }

    pub(crate) fn unhealthy() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unhealthy",
            "the backend has failed; restart the server",
        )
    }
}

/// The one mapping from the library's errors to HTTP: unusable input 422 (TEI's validation or, where
/// the tokenizer failed, tokenizer), an out-of-range option 400, everything else (the backend, the
/// model) 424. The message is the library's own.
impl From<&Error> for ApiError {
    fn from(e: &Error) -> Self {
        let (status, error_type) = match (e, e.kind()) {
            (Error::Item { message, .. }, _) if message.starts_with("tokenizer:") => {
                (StatusCode::UNPROCESSABLE_ENTITY, "tokenizer")
            }
            (Error::Tokenizer { .. }, _) => (StatusCode::UNPROCESSABLE_ENTITY, "tokenizer"),
            (_, ErrorKind::InvalidInput) => (StatusCode::UNPROCESSABLE_ENTITY, "validation"),
            (_, ErrorKind::InvalidOption) => (StatusCode::BAD_REQUEST, "validation"),
            _ => (StatusCode::FAILED_DEPENDENCY, "backend"),
        };
        ApiError::new(status, error_type, e.to_string())
    }
}

/// A running server: its address, and how to stop it.
pub struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
    shared: Arc<batcher::Shared>,
}

impl Server {
    /// The address the server listens on (with the port it got, if asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections, lets in-flight requests finish (up to the shutdown timeout) and
    /// returns once the server and its batcher are gone.
    pub fn shutdown(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.wait()
    }

    /// Runs until the server stops (SIGTERM or SIGINT with `stop_on_signals`).
    pub fn wait(self) -> Result<()> {
        let _keep_stop_open = self.stop;
        self.thread
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
            .map_err(|source| Error::Io {
                path: "http server".into(),
                source,
            })
    }

    /// The lock the batcher holds while a batch runs: a test holds it to keep requests in flight.
    #[doc(hidden)]
    pub fn batch_gate(&self) -> Arc<Mutex<()>> {
        self.shared.gate.clone()
    }

    /// Marks the backend failed, as a backend error or a panic in the batcher does: a test's way to
    /// see /health and new requests answer 503.
    #[doc(hidden)]
    pub fn mark_unhealthy(&self) {
        self.shared
            .healthy
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Binds `options.host:options.port`, starts the batcher (which owns `model`) and the HTTP server on
/// threads of their own, and returns once the server accepts connections.
pub fn start(model: CrossEncoder, options: ServeOptions) -> Result<Server> {
    let io = |source| Error::Io {
        path: format!("{}:{}", options.host, options.port).into(),
        source,
    };
    if options.max_concurrent_requests == 0 || options.max_client_batch_size == 0 {
        return Err(Error::Option(
            "--max-concurrent-requests and --max-client-batch-size must be at least 1".into(),
        ));
    }
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("xenc-http")
        .enable_all()
        .build()
        .map_err(io)?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind((
            options.host.as_str(),
            options.port,
        )))
        .map_err(io)?;
    let addr = listener.local_addr().map_err(io)?;

    let shared = Arc::new(batcher::Shared {
        model: Arc::new(model),
        metrics: Arc::new(metrics::Metrics::new()),
        healthy: AtomicBool::new(true),
        gate: Arc::new(Mutex::new(())),
    });
    let (jobs, queue) = mpsc::channel();
    let batcher = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("xenc-batcher".into())
            .spawn(move || batcher::run(shared, queue))
            .map_err(io)?
    };
    let app = routes::router(routes::State::new(shared.clone(), jobs, &options));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (signals, timeout) = (options.stop_on_signals, options.shutdown_timeout);
    let thread = std::thread::Builder::new()
        .name("xenc-server".into())
        .spawn(move || -> std::io::Result<()> {
            let (asked_tx, asked_rx) = tokio::sync::watch::channel(false);
            let stop_asked = async move {
                tokio::select! {
                    _ = stopped => {}
                    _ = signal(signals) => {}
                }
                let _ = asked_tx.send(true);
            };
            let served = runtime.block_on(async move {
                let serve = axum::serve(listener, app).with_graceful_shutdown(stop_asked);
                let mut asked = asked_rx;
                let deadline = async move {
                    // Only once a stop was asked for does the timeout start.
                    let _ = asked.wait_for(|a| *a).await;
                    tokio::time::sleep(timeout).await;
                };
                tokio::select! {
                    r = serve => r,
                    _ = deadline => {
                        log::warn!(target: "xenc::serve", "requests still in flight after {timeout:?}: closing anyway");
                        Ok(())
                    }
                }
            });
            // The router (and with it the last sender of the queue) is gone: the batcher finishes
            // what it has and stops.
            runtime.shutdown_timeout(Duration::from_secs(1));
            let _ = batcher.join();
            served
        })
        .map_err(io)?;
    Ok(Server {
        addr,
        stop: Some(stop),
        thread,
        shared,
    })
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C) when `enabled`; never otherwise.
async fn signal(enabled: bool) {
    if !enabled {
        return std::future::pending().await;
    }
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::{ApiError, StatusCode};
    use crate::Error;

    /// Each class of library error has its status and TEI's error_type; the message is the library's.
    #[test]
    fn library_errors_map_to_teis_status_codes() {
        let cases = [
            (Error::cuda("launch failed"), 424, "backend"),
            (Error::Input("no pairs".into()), 422, "validation"),
            (
                Error::Item {
                    what: "document",
                    index: 3,
                    message: "token id 99999 is past the vocabulary".into(),
                },
                422,
                "validation",
            ),
            (
                Error::Item {
                    what: "pair",
                    index: 0,
                    message: "tokenizer: bad input".into(),
                },
                422,
                "tokenizer",
            ),
            (Error::tokenizer("bad input"), 422, "tokenizer"),
            (Error::Option("x".into()), 400, "validation"),
            (Error::weights("bad tensor"), 424, "backend"),
        ];
        for (e, status, error_type) in cases {
            let a = ApiError::from(&e);
            assert_eq!(a.status, StatusCode::from_u16(status).unwrap(), "{e}");
            assert_eq!(a.error_type, error_type, "{e}");
            assert_eq!(a.message, e.to_string());
        }
    }
}
