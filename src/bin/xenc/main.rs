//! The xenc command line: `score` JSON Lines of pairs, `rerank` documents for one query.

mod bench;
mod input;
mod score;
mod serve;

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use xenc::{
    Activation, AttentionKernel, CrossEncoder, CrossEncoderBuilder, CudaOptions, Device, Error,
    FfnIn, GemmPath, Pooler, Residual, Result, TokenizerEngine, TokenizerOptions,
};

#[derive(Parser)]
#[command(
    name = "xenc",
    version,
    about = "Fast cross-encoder reranking (MiniLM / BERT)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score (query, document) pairs: JSON Lines {"query": ..., "document": ...} in, {"score": ...} out
    /// ({"scores": {"label": ..., ...}} for a model with several labels).
    Score {
        #[command(flatten)]
        model: ModelArgs,
        /// Read pairs from FILE instead of stdin.
        #[arg(long, value_name = "FILE")]
        input: Option<PathBuf>,
    },
    /// Rank documents (one per line) for one query; prints {"index": i, "score": s}, best first (i: the
    /// document's 0-based line). A model with several labels ranks by --label.
    Rerank {
        #[command(flatten)]
        model: ModelArgs,
        /// The query (may start with '-').
        #[arg(long, allow_hyphen_values = true)]
        query: String,
        /// Read documents from FILE instead of stdin.
        #[arg(long, value_name = "FILE")]
        input: Option<PathBuf>,
        /// Print only the best K documents (default: all).
        #[arg(long, value_name = "K")]
        top_k: Option<usize>,
    },
    /// Measure throughput (model-only and end-to-end), 1×50 rerank latency and peak memory.
    Bench(bench::BenchArgs),
    /// Serve the model over HTTP: TEI's /rerank and /predict, Cohere/Jina-style /v1/rerank, /health,
    /// /info, /metrics; requests are batched together. Stops on SIGTERM or SIGINT.
    Serve(serve::ServeArgs),
}

#[derive(Args)]
struct ModelArgs {
    /// Checkpoint directory: config.json, model.safetensors, tokenizer.json.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto", value_parser = parse_device)]
    device: Device,
    /// Print raw logits instead of the checkpoint's default activation.
    #[arg(long)]
    raw: bool,
    /// A model with several labels: softmax across each pair's labels (sentence-transformers'
    /// apply_softmax) instead of the checkpoint's default activation.
    #[arg(long, conflicts_with = "raw")]
    softmax: bool,
    /// A model with several labels: the label `rerank` (and the server's /rerank, /v1/rerank) ranks
    /// by, by its name in config.json's id2label or by its index.
    #[arg(long, value_name = "LABEL")]
    label: Option<String>,
    /// Tokens per pair after truncation (default: tokenizer_config.json's model_max_length, as
    /// sentence-transformers; without it min(512, the model's positions)).
    #[arg(long, value_name = "N")]
    max_length: Option<usize>,
    /// Threads for tokenisation and the CPU model (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Tokens per batch (default 65536 on CUDA, 16384 on the CPU; at least max_length). `xenc serve`
    /// merges concurrent requests up to it.
    #[arg(long, visible_alias = "max-batch-tokens", value_name = "N")]
    token_budget: Option<usize>,
    /// Tokenizer engine: auto (xenc's WordPiece where tokenizer.json fits it), hf or xenc.
    #[arg(long, env = "XENC_TOKENIZER", value_name = "ENGINE", value_parser = option::<TokenizerEngine>)]
    tokenizer: Option<TokenizerEngine>,
    #[command(flatten)]
    cuda: CudaArgs,
}

/// The CUDA backend's kernel choices (A/B candidates for scripts/gpu-check.sh; the defaults are the
/// kernels that last passed it on a GPU).
#[derive(Args)]
struct CudaArgs {
    /// Attention kernel on CUDA: mma, simt, or the A/B candidates mma-v3 and mma-s4.
    #[arg(long, env = "XENC_ATTENTION", value_name = "KERNEL", value_parser = option::<AttentionKernel>)]
    attention: Option<AttentionKernel>,
    /// The FFN's first half on CUDA: gemm (GEMM, then bias + GELU), fused or fused-w64.
    #[arg(long, env = "XENC_FFN_IN", value_name = "PATH", value_parser = option::<FfnIn>)]
    ffn_in: Option<FfnIn>,
    /// Where the residual is added on CUDA: layernorm or gemm.
    #[arg(long, env = "XENC_RESIDUAL", value_name = "WHERE", value_parser = option::<Residual>)]
    residual: Option<Residual>,
    /// Pooler and classifier kernel on CUDA: v3, or the A/B candidate v4.
    #[arg(long, env = "XENC_POOLER", value_name = "VERSION", value_parser = option::<Pooler>)]
    pooler: Option<Pooler>,
    /// GEMM library on CUDA: lt (cuBLASLt, plans cached) or cublas.
    #[arg(long, env = "XENC_GEMM", value_name = "PATH", value_parser = option::<GemmPath>)]
    gemm: Option<GemmPath>,
    /// The i-th of cuBLASLt's heuristic algorithms per GEMM shape (default 0).
    #[arg(long, env = "XENC_GEMM_ALGO", value_name = "I", value_parser = gemm_algo)]
    gemm_algo: Option<usize>,
    /// Run on CUDA what no GPU run has verified yet (the RoBERTa / XLM-R family, heads with several
    /// labels), for scripts/gpu-check.sh.
    #[arg(long, env = "XENC_CUDA_UNVERIFIED", value_name = "BOOL", value_parser = unverified,
          num_args = 0..=1, default_missing_value = "1", hide = true)]
    cuda_unverified: Option<bool>,
}

impl CudaArgs {
    fn options(&self) -> CudaOptions {
        let d = CudaOptions::default();
        let mut o = CudaOptions::default();
        o.attention = self.attention.unwrap_or(d.attention);
        o.ffn_in = self.ffn_in.unwrap_or(d.ffn_in);
        o.residual = self.residual.unwrap_or(d.residual);
        o.pooler = self.pooler.unwrap_or(d.pooler);
        o.gemm = self.gemm.unwrap_or(d.gemm);
        o.gemm_algo = self.gemm_algo.unwrap_or(d.gemm_algo);
        o.allow_unverified = self.cuda_unverified.unwrap_or(d.allow_unverified);
        o
    }
}

/// A typed option's value, or the library's message naming it and what is accepted. An empty value
/// (`XENC_ATTENTION=`) is the default, as an unset variable.
fn option<T: std::str::FromStr<Err = Error> + Default>(s: &str) -> std::result::Result<T, String> {
    if s.trim().is_empty() {
        return Ok(T::default());
    }
    s.parse().map_err(|e: Error| e.to_string())
}

fn gemm_algo(s: &str) -> std::result::Result<usize, String> {
    if s.trim().is_empty() {
        return Ok(0);
    }
    xenc::options::parse_gemm_algo(s).map_err(|e| e.to_string())
}

fn unverified(s: &str) -> std::result::Result<bool, String> {
    let var = CudaOptions::UNVERIFIED_VAR;
    CudaOptions::from_lookup(|k| (k == var).then(|| s.to_string()))
        .map(|o| o.allow_unverified)
        .map_err(|e| e.to_string())
}

fn parse_device(s: &str) -> std::result::Result<Device, String> {
    s.parse::<Device>().map_err(|e| match e {
        xenc::Error::Option(m) => m,
        other => other.to_string(),
    })
}

impl ModelArgs {
    fn load(&self) -> Result<CrossEncoder> {
        self.builder().build()
    }

    fn builder(&self) -> CrossEncoderBuilder {
        let mut b = CrossEncoder::builder(&self.model).device(self.device);
        if let Some(n) = self.max_length {
            b = b.max_length(n);
        }
        if let Some(n) = self.threads {
            b = b.threads(n);
        }
        if self.raw {
            b = b.activation(Activation::Raw);
        }
        if self.softmax {
            b = b.activation(Activation::Softmax);
        }
        if let Some(l) = &self.label {
            b = b.label(l);
        }
        if let Some(n) = self.token_budget {
            b = b.token_budget(n);
        }
        let mut tokenizer = TokenizerOptions::default();
        if let Some(engine) = self.tokenizer {
            tokenizer.engine = engine;
        }
        b.tokenizer_options(tokenizer)
            .cuda_options(self.cuda.options())
    }
}

/// Prints the library's log records on stderr as `xenc: ...` (the once-per-process reason
/// `--device auto` runs on the CPU, the first GPU call's banner): info and above from xenc itself.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::Level::Info && m.target().starts_with("xenc")
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            eprintln!("xenc: {}", record.args());
        }
    }

    fn flush(&self) {}
}

fn main() -> ExitCode {
    static LOGGER: StderrLog = StderrLog;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`xenc score ... | head`): stop quietly, as Unix filters do.
        Err(Error::Io { path, source })
            if path.as_os_str() == "stdout" && source.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xenc: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Whether fd 1 was closed when the process started, recorded by an ELF constructor: Rust's runtime
/// reopens a closed fd 1 on /dev/null in `main`'s prologue, after the constructors have run, so from
/// `main` on a closed stdout looks like `> /dev/null`.
#[cfg(target_os = "linux")]
static STDOUT_CLOSED_AT_START: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static RECORD_STDOUT_AT_START: extern "C" fn() = {
    extern "C" fn record() {
        // SAFETY: fcntl(F_GETFD) only asks whether the descriptor is open.
        if unsafe { libc::fcntl(1, libc::F_GETFD) } == -1 {
            STDOUT_CLOSED_AT_START.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    record
};

/// Whether xenc was started with stdout closed (`xenc score ... >&-`): the scores would vanish with
/// exit status 0. A /dev/null opened on purpose, write-only (`> /dev/null`) or read-write (`1<>
/// /dev/null`, Python's `subprocess.DEVNULL`), is not closed.
#[cfg(target_os = "linux")]
fn stdout_was_closed() -> bool {
    STDOUT_CLOSED_AT_START.load(std::sync::atomic::Ordering::Relaxed)
}

/// Elsewhere, without the constructor: the read-write /dev/null Rust's runtime reopens a closed fd 1
/// on (a shell's `> /dev/null` opens it write-only; a read-write one opened on purpose is taken for
/// closed here).
#[cfg(not(target_os = "linux"))]
fn stdout_was_closed() -> bool {
    // SAFETY: fstat fills a plain struct for an open descriptor; fcntl(F_GETFL) only reads its flags.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(1, &mut st) != 0 {
            return true;
        }
        let dev_null = (st.st_mode & libc::S_IFMT) == libc::S_IFCHR
            && libc::major(st.st_rdev) == 1
            && libc::minor(st.st_rdev) == 3;
        dev_null && libc::fcntl(1, libc::F_GETFL) & libc::O_ACCMODE == libc::O_RDWR
    }
}

fn run(cli: Cli) -> Result<()> {
    if stdout_was_closed() {
        return Err(Error::Io {
            path: "stdout".into(),
            source: std::io::Error::other(
                "closed (the output would be lost; redirect it to a file or /dev/null instead)",
            ),
        });
    }
    match cli.command {
        Command::Score { model, input } => {
            let input = input::Input::open(input.as_deref())?;
            score::run(&model.load()?, input)
        }
        Command::Rerank {
            model,
            query,
            input,
            top_k,
        } => {
            let (lines, source) = input::read_input(input.as_deref())?;
            let docs = input::parse_documents(lines, &source)?;
            let model = model.load()?;
            let ranked = model
                .rerank(&query, &docs, top_k.unwrap_or(docs.len()))
                .map_err(|e| at_line(e, &source, 1))?;
            let mut out = BufWriter::new(std::io::stdout().lock());
            for r in ranked {
                let (index, score) = (r.index, json_f32(r.score));
                writeln!(out, "{{\"index\":{index},\"score\":{score}}}").map_err(stdout_err)?;
            }
            out.flush().map_err(stdout_err)
        }
        Command::Bench(args) => bench::run(args),
        Command::Serve(args) => serve::run(args),
    }
}

/// One line to stdout; a closed pipe (`xenc bench | head`) is an error, not a panic.
fn out(line: impl std::fmt::Display) -> Result<()> {
    writeln!(std::io::stdout().lock(), "{line}").map_err(stdout_err)
}

/// The shortest decimal that reads back as the same f32 (`null` if not finite, as JSON has no NaN).
fn json_f32(x: f32) -> String {
    serde_json::to_string(&x).unwrap_or_else(|_| "null".into())
}

/// An error about input item i of a call whose items start at line `first_line` of `source`, as an
/// error naming that line (one pair or document per line); other errors as they are.
fn at_line(e: Error, source: &str, first_line: usize) -> Error {
    match e {
        // rerank's query is not a line of the input.
        Error::Item {
            what: "query",
            message,
            ..
        } => Error::Input(format!("--query: {message}")),
        Error::Item { index, message, .. } => {
            Error::Input(format!("{source}: line {}: {message}", first_line + index))
        }
        other => other,
    }
}

fn stdout_err(source: std::io::Error) -> Error {
    Error::Io {
        path: "stdout".into(),
        source,
    }
}
