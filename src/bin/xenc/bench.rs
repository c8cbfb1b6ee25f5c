//! `xenc bench`: model-only and end-to-end throughput, the 1 × 50 rerank's latency, peak memory.

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use clap::Args;
use xenc::{Device, Error, Result};

use crate::input::{self, read_input};
use crate::{out, ModelArgs};

/// The most pairs `--generate` makes: they are held in memory as text and ids (~1.6 KB a pair, so
/// ~1.6 GB at the limit), which is more than any measurement needs.
pub const MAX_GENERATE: usize = 1_000_000;

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Pairs to measure, as for `score` (default: --generate 2000).
    #[arg(long, value_name = "FILE", conflicts_with = "generate")]
    input: Option<PathBuf>,
    /// Generate N realistic pairs (queries 5-20 words, documents ~80 words with a tail to 500); at most
    /// 1,000,000.
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

pub fn run(args: BenchArgs) -> Result<()> {
    if let Some(n) = args.generate.filter(|&n| n > MAX_GENERATE) {
        return Err(Error::Option(format!(
            "--generate {n}: at most {MAX_GENERATE} pairs (they are held in memory, ~1.6 KB each)"
        )));
    }
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
            input::parse_pairs(&lines, &source)?
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
