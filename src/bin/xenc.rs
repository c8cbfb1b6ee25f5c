//! The xenc command line: `score` JSON Lines of pairs, `rerank` documents for one query.

use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use xenc::{Activation, CrossEncoder, Device, Error, Result};

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
    /// Rank documents (one per line on stdin) for one query; prints {"index": i, "score": s}, best first.
    Rerank {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        query: String,
        /// Print only the best K documents (default: all).
        #[arg(long, value_name = "K")]
        top_k: Option<usize>,
    },
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
    /// Tokens per pair after truncation (default: min(512, max_position_embeddings)).
    #[arg(long, value_name = "N")]
    max_length: Option<usize>,
    /// CPU threads (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
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
        b.build()
    }
}

/// Pairs scored per call, so a long input shows progress.
const CHUNK: usize = 4096;

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
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
            for chunk in pairs.chunks(CHUNK) {
                for s in model.score(chunk)? {
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
            top_k,
        } => {
            let (docs, _) = read_input(None)?;
            let model = model.load()?;
            let ranked = model.rerank(&query, &docs, top_k.unwrap_or(docs.len()))?;
            let mut out = BufWriter::new(std::io::stdout().lock());
            for r in ranked {
                let (index, score) = (r.index, json_f32(r.score));
                writeln!(out, "{{\"index\":{index},\"score\":{score}}}").map_err(stdout_err)?;
            }
            out.flush().map_err(stdout_err)
        }
    }
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

fn stdout_err(source: std::io::Error) -> Error {
    Error::Io {
        path: "stdout".into(),
        source,
    }
}
