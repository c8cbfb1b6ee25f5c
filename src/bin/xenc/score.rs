//! `xenc score`, streaming: pairs are read and parsed on a thread of their own, scored chunk by chunk as
//! they arrive, and each chunk's scores are printed (and flushed) before the next chunk is scored. Memory
//! is bounded whatever the input's length: one chunk being scored, one chunk of parsed lines waiting.
//!
//! A slow producer is not kept waiting for a full chunk: once no line has arrived for [`IDLE_FLUSH`],
//! the lines read so far are scored and printed.
//!
//! The error contract: xenc stops at the first line it cannot take (not JSON, a missing or non-string
//! field, invalid UTF-8, an empty line, or a pair the tokenizer or the model rejects), with an error
//! naming that line and a non-zero exit status, after printing the score of every line before it and
//! of none after it.

use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use xenc::{CrossEncoder, Result};

use crate::input::{parse_line, Input, Lines};
use crate::{at_line, json_f32, stdout_err};

/// Pairs scored per call on the CPU: each call still packs ~16k-token batches, and a long input shows
/// progress. On a GPU a call is larger, so that tokenisation overlaps the model within it.
pub const CHUNK: usize = 1024;
pub const GPU_CHUNK: usize = 32 * 1024;

/// How long the lines read so far wait for more before they are scored anyway.
pub const IDLE_FLUSH: Duration = Duration::from_millis(50);

/// One parsed input line: its 1-based number and the pair, or the error that stops the input.
type Parsed = Result<(usize, (String, String))>;

/// Reads and parses the input on a thread of its own; at most `capacity` parsed lines wait in the
/// channel. The first error is the last item sent.
fn spawn_reader(input: Input, source: String, capacity: usize) -> Receiver<Parsed> {
    let (tx, rx) = mpsc::sync_channel(capacity);
    std::thread::spawn(move || match input {
        Input::File(f) => send_lines(BufReader::new(f), &source, &tx),
        Input::Stdin => send_lines(std::io::stdin().lock(), &source, &tx),
    });
    rx
}

fn send_lines(input: impl BufRead, source: &str, tx: &mpsc::SyncSender<Parsed>) {
    for (i, line) in Lines::new(input, source).enumerate() {
        let number = i + 1;
        let parsed = line.and_then(|l| parse_line(&l, source, number));
        let stop = parsed.is_err();
        if tx.send(parsed.map(|p| (number, p))).is_err() || stop {
            return; // the scorer stopped, or this line stops the input
        }
    }
}

/// Scores the pairs of `input` (from [`Input::open`]) and prints one `{"score"}` per line.
pub fn run(model: &CrossEncoder, (input, source): (Input, String)) -> Result<()> {
    let size = if model.on_gpu() { GPU_CHUNK } else { CHUNK };
    let lines = spawn_reader(input, source.clone(), size);
    let progress = progress();
    let mut out = BufWriter::new(std::io::stdout().lock());
    let line = Line::new(model);
    let mut chunk: Vec<(String, String)> = Vec::with_capacity(size);
    let mut first_line = 1;
    let mut stop = None;
    loop {
        // Wait for a line; with lines in hand, only until the producer has been idle for IDLE_FLUSH.
        let next = if chunk.is_empty() {
            lines.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            lines.recv_timeout(IDLE_FLUSH)
        };
        let ended = matches!(next, Err(RecvTimeoutError::Disconnected));
        let flush = match next {
            Ok(Ok((_, pair))) => {
                chunk.push(pair);
                chunk.len() == size
            }
            Ok(Err(e)) => {
                stop = Some(e);
                true
            }
            Err(_) => true, // idle, or the end of the input
        };
        if flush && !chunk.is_empty() {
            score_chunk(model, &line, &chunk, &source, first_line, &mut out)?;
            progress.inc(chunk.len() as u64);
            first_line += chunk.len();
            chunk.clear();
        }
        if stop.is_some() || ended {
            break;
        }
    }
    progress.finish_and_clear();
    out.flush().map_err(stdout_err)?;
    stop.map_or(Ok(()), Err)
}

/// Scores `chunk` (lines `first_line..`) and prints its scores. If a pair is rejected, the scores of
/// the pairs before it are printed and the error names its line.
fn score_chunk(
    model: &CrossEncoder,
    line: &Line,
    chunk: &[(String, String)],
    source: &str,
    first_line: usize,
    out: &mut impl Write,
) -> Result<()> {
    let (scores, stop) = match model.score(chunk) {
        Ok(s) => (s, None),
        Err(e) => match e.item() {
            // Pairs are scored independently: those before the rejected one get their scores.
            Some((_, index)) => (model.score(&chunk[..index])?, Some(e)),
            None => return Err(e),
        },
    };
    for row in scores.chunks_exact(line.keys.len()) {
        line.write(out, row)?;
    }
    out.flush().map_err(stdout_err)?;
    stop.map_or(Ok(()), |e| Err(at_line(e, source, first_line)))
}

/// One output line per pair: `{"score":s}` for a one-label model, `{"scores":{"label":s,...}}` with
/// every label (id2label's names, or their indices where two labels share a name) for one with several.
struct Line {
    keys: Vec<String>,
}

impl Line {
    fn new(model: &CrossEncoder) -> Self {
        let names = &model.config().labels;
        let unique = names.iter().collect::<std::collections::HashSet<_>>().len() == names.len();
        let keys = (names.iter().enumerate())
            .map(|(i, n)| if unique { n.clone() } else { i.to_string() })
            .map(|k| serde_json::to_string(&k).expect("a string serialises"))
            .collect();
        Line { keys }
    }

    fn write(&self, out: &mut impl Write, row: &[f32]) -> Result<()> {
        if let [s] = row {
            return writeln!(out, "{{\"score\":{}}}", json_f32(*s)).map_err(stdout_err);
        }
        let fields: Vec<String> = (self.keys.iter().zip(row))
            .map(|(k, s)| format!("{k}:{}", json_f32(*s)))
            .collect();
        writeln!(out, "{{\"scores\":{{{}}}}}", fields.join(",")).map_err(stdout_err)
    }
}

/// A spinner with the count and rate of pairs scored, on stderr when it is a terminal.
fn progress() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(250));
    bar.set_style(
        ProgressStyle::with_template("{spinner} {pos} pairs scored  {per_sec}  {elapsed}")
            .expect("static template"),
    );
    bar
}
