//! The xenc command line: `score` JSON Lines of pairs, `rerank` documents for one query.

use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
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
    /// Score (query, document) pairs: JSON Lines {"query": ..., "document": ...} in, {"score": ...} out.
    Score {
        #[command(flatten)]
        model: ModelArgs,
        /// Read pairs from FILE instead of stdin.
        #[arg(long, value_name = "FILE")]
        input: Option<PathBuf>,
    },
    /// Rank documents (one per line) for one query; prints {"index": i, "score": s}, best first (i: the
    /// document's 0-based line).
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
    Bench(BenchArgs),
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Pairs to measure, as for `score` (default: --generate 2000).
    #[arg(long, value_name = "FILE", conflicts_with = "generate")]
    input: Option<PathBuf>,
    /// Generate N realistic pairs (queries 5-20 words, documents ~80 words with a tail to 500).
    #[arg(long, value_name = "N")]
    generate: Option<usize>,
    /// Seed of the generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Write the pairs as JSON Lines to FILE and exit (to run other engines on the same pairs).
    #[arg(long, value_name = "FILE")]
    write_pairs: Option<PathBuf>,
    /// Timed runs per measurement, after one warm-up run; the median is reported.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Timed 1-query × 50-document reranks for the latency percentiles.
    #[arg(long, default_value_t = 50)]
    rerank_runs: usize,
    /// One JSON object per measurement instead of a table.
    #[arg(long)]
    json: bool,
    /// Time every stage of the forward pass (CUDA events on the GPU) and print a table per
    /// measurement to stderr; the timed runs then include the profiling's own cost.
    #[arg(long)]
    profile: bool,
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
    /// Tokens per pair after truncation (default: tokenizer_config.json's model_max_length, as
    /// sentence-transformers; without it min(512, max_position_embeddings)).
    #[arg(long, value_name = "N")]
    max_length: Option<usize>,
    /// Threads for tokenisation and the CPU model (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Tokens per batch (default 65536 on CUDA, 16384 on the CPU; at least max_length).
    #[arg(long, value_name = "N")]
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

fn parse_device(s: &str) -> std::result::Result<Device, String> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "auto" => Ok(Device::Auto),
        "cuda" => Ok(Device::Cuda(0)),
        _ => s
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(Device::Cuda)
            .ok_or_else(|| format!("unknown device {s:?}: expected cpu, cuda, cuda:N or auto")),
    }
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

/// Pairs scored per call, so a long input shows progress (each call still packs ~16k-token batches). On
/// a GPU a call is larger, so that tokenisation overlaps the model within it (see `CrossEncoder::logits`).
const CHUNK: usize = 1024;
const GPU_CHUNK: usize = 32 * 1024;

fn main() -> ExitCode {
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

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Score { model, input } => {
            let (lines, source) = read_input(input.as_deref())?;
            let pairs = xenc::io::parse_pairs(&lines, &source)?;
            let model = model.load()?;
            let progress = progress_bar(pairs.len() as u64);
            let mut out = BufWriter::new(std::io::stdout().lock());
            let size = if model.on_gpu() { GPU_CHUNK } else { CHUNK };
            for (c, chunk) in pairs.chunks(size).enumerate() {
                let first_line = c * size + 1;
                let scores = model
                    .score(chunk)
                    .map_err(|e| at_line(e, &source, first_line))?;
                for s in scores {
                    writeln!(out, "{{\"score\":{}}}", json_f32(s)).map_err(stdout_err)?;
                }
                progress.inc(chunk.len() as u64);
            }
            progress.finish_and_clear();
            out.flush().map_err(stdout_err)
        }
        Command::Rerank {
            model,
            query,
            input,
            top_k,
        } => {
            let (lines, source) = read_input(input.as_deref())?;
            let docs = xenc::io::parse_documents(lines, &source)?;
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
        Command::Bench(args) => bench(args),
    }
}

fn bench(args: BenchArgs) -> Result<()> {
    let model = args.model.builder().profile(args.profile).build()?;
    // Prints the stage times gathered since the last call (nothing unless --profile).
    let profile = |what: &str| {
        if let Some(p) = model.take_profile() {
            eprintln!("{what}: {p}");
        }
    };
    let pairs = match &args.input {
        Some(path) => {
            let (lines, source) = read_input(Some(path))?;
            xenc::io::parse_pairs(&lines, &source)?
        }
        None => {
            xenc::bench::generate_with(model.tokenizer(), args.generate.unwrap_or(2000), args.seed)
        }
    };
    if let Some(path) = &args.write_pairs {
        let io_err = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let mut f = BufWriter::new(std::fs::File::create(path).map_err(io_err)?);
        for (q, d) in &pairs {
            writeln!(f, "{}", serde_json::json!({ "query": q, "document": d })).map_err(io_err)?;
        }
        return f.flush().map_err(io_err);
    }
    if pairs.is_empty() {
        return Err(Error::Input("no pairs to measure".into()));
    }
    let repeats = args.repeats.max(1);
    let encoded = model.tokenizer().encode_pairs(&pairs)?;
    let tokens: usize = encoded.iter().map(|e| e.len()).sum();
    let device = match args.model.device {
        Device::Cpu => "cpu",
        Device::Cuda(_) => "cuda",
        Device::Auto => "auto",
    };
    let report = |measure: &str, n: usize, t: usize, secs: f64, extra: serde_json::Value| {
        let mut v = serde_json::json!({
            "engine": "xenc", "device": device, "device_name": model.device_name(), "measure": measure,
            "pairs": n, "tokens": t, "seconds": secs,
            "pairs_per_s": n as f64 / secs, "tokens_per_s": t as f64 / secs,
        });
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        if args.json {
            out(v)
        } else {
            out(format!(
                "{measure:<20} {n:>7} pairs {t:>9} tokens  {:>10.1} pairs/s {:>12.0} tokens/s  {extra}",
                n as f64 / secs,
                t as f64 / secs
            ))
        }
    };
    if !args.json {
        out(format!(
            "xenc bench: {} pairs, {tokens} tokens ({:.1} per pair), {}, batches of up to {} tokens, tokenizer {}, median of {repeats} runs after a warm-up",
            pairs.len(),
            tokens as f64 / pairs.len() as f64,
            model.device_name(),
            model.token_budget(),
            model.tokenizer().engine()
        ))?;
    }

    let tok_s = median_seconds(
        repeats,
        || model.tokenizer().encode_pairs(&pairs).map(drop),
        || (),
    )?;
    let json_note = serde_json::json!({ "includes": "tokenisation only: text to token ids, on the model's threads (--threads, default all cores)" });
    report("tokenize", pairs.len(), tokens, tok_s, json_note)?;
    let model_s = median_seconds(
        repeats,
        || model.logits_encoded(&encoded).map(drop),
        || drop(model.take_profile()),
    )?;
    let json_note = serde_json::json!({ "includes": "model only: tokens to logits" });
    report("model", pairs.len(), tokens, model_s, json_note)?;
    profile("model");
    let e2e_s = median_seconds(
        repeats,
        || model.score(&pairs).map(drop),
        || drop(model.take_profile()),
    )?;
    let json_note =
        serde_json::json!({ "includes": "end to end: text to scores, tokenisation included" });
    report("end_to_end", pairs.len(), tokens, e2e_s, json_note)?;
    profile("end_to_end");

    // 1 query × 50 documents, as a RAG service reranks: end to end, then its two halves.
    let query = &pairs[0].0;
    let docs: Vec<&str> = pairs
        .iter()
        .cycle()
        .take(50)
        .map(|(_, d)| d.as_str())
        .collect();
    let rerank_encoded = model.encode_documents(query, &docs)?;
    let rerank_tokens: usize = rerank_encoded.iter().map(|e| e.len()).sum();
    let runs = args.rerank_runs.max(1);
    // (measure, what it includes, one timed call)
    type Measure<'a> = (&'a str, &'a str, &'a mut dyn FnMut() -> Result<()>);
    let rerank_measures: [Measure; 3] = [
        (
            "rerank_1x50",
            "end to end: 1 query x 50 documents, tokenisation included (CrossEncoder::rerank)",
            &mut || model.rerank(query, &docs, 50).map(drop),
        ),
        (
            "rerank_1x50_tokenize",
            "rerank's tokenisation only: text to encoded pairs, the query once (CrossEncoder::encode_documents)",
            &mut || model.encode_documents(query, &docs).map(drop),
        ),
        (
            "rerank_1x50_model",
            "rerank without tokenisation: encoded pairs to logits (CrossEncoder::logits_encoded): planning, batching, validation, packing and upload (GPU), the model, logits back",
            &mut || model.logits_encoded(&rerank_encoded).map(drop),
        ),
    ];
    for (measure, includes, f) in rerank_measures {
        f()?;
        drop(model.take_profile());
        let mut lat = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = std::time::Instant::now();
            f()?;
            lat.push(t.elapsed().as_secs_f64());
        }
        let p50 = xenc::bench::percentile(&lat, 50.0).unwrap();
        let p99 = xenc::bench::percentile(&lat, 99.0).unwrap();
        let extra = serde_json::json!({ "p50_ms": p50 * 1e3, "p99_ms": p99 * 1e3, "runs": lat.len(),
            "includes": includes });
        report(measure, docs.len(), rerank_tokens, p50, extra)?;
        profile(measure);
    }

    let peak = peak_rss_mib();
    // The activations are allocated once for the token budget, so what is in use after the runs is the
    // peak (plus whatever other processes hold on that GPU).
    let device_mib = model
        .device_memory_in_use()
        .map(|b| b as f64 / f64::from(1 << 20));
    if args.json {
        let v = serde_json::json!({ "engine": "xenc", "device": device, "measure": "peak_memory",
            "pairs": pairs.len(), "tokens": tokens, "pairs_per_s": null,
            "host_peak_rss_mib": peak, "device_in_use_mib": device_mib });
        out(v)
    } else {
        let peak = peak.map_or("unknown".into(), |m| format!("{m:.0} MiB"));
        out(format!("peak host memory (RSS): {peak}"))?;
        match device_mib {
            Some(m) => out(format!(
                "device memory in use (total - free, incl. the CUDA context): {m:.0} MiB"
            )),
            None => Ok(()),
        }
    }
}

/// One line to stdout; a closed pipe (`xenc bench | head`) is an error, not a panic.
fn out(line: impl std::fmt::Display) -> Result<()> {
    writeln!(std::io::stdout().lock(), "{line}").map_err(stdout_err)
}

/// Runs `f` once to warm up, then `after_warmup`, then `f` `repeats` times; the median wall time in
/// seconds.
fn median_seconds(
    repeats: usize,
    mut f: impl FnMut() -> Result<()>,
    mut after_warmup: impl FnMut(),
) -> Result<f64> {
    f()?;
    after_warmup();
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t = std::time::Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(xenc::bench::percentile(&times, 50.0).unwrap())
}

/// Peak resident set size of this process (Linux: VmHWM in /proc/self/status).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn read_input(path: Option<&Path>) -> Result<(Vec<String>, String)> {
    match path {
        Some(p) => {
            let f = std::fs::File::open(p).map_err(|source| Error::Io {
                path: p.to_path_buf(),
                source,
            })?;
            let name = p.display().to_string();
            Ok((xenc::io::read_lines(BufReader::new(f), &name)?, name))
        }
        None => Ok((
            xenc::io::read_lines(std::io::stdin().lock(), "stdin")?,
            "stdin".into(),
        )),
    }
}

fn progress_bar(len: u64) -> ProgressBar {
    if len <= CHUNK as u64 || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.enable_steady_tick(std::time::Duration::from_millis(250));
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} pairs  {per_sec}  eta {eta}")
            .expect("static template"),
    );
    bar
}

/// The shortest decimal that reads back as the same f32 (`null` if not finite, as JSON has no NaN).
fn json_f32(x: f32) -> String {
    serde_json::to_string(&x).unwrap_or_else(|_| "null".into())
}

/// An error about input item i of a call whose items start at line `first_line` of `source`, as an
/// error naming that line (one pair or document per line); other errors as they are.
fn at_line(e: Error, source: &str, first_line: usize) -> Error {
    match e {
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
