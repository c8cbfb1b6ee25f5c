//! Where a forward pass spends its time, stage by stage (`CrossEncoderBuilder::profile(true)`,
//! `xenc bench --profile`). Each backend times its own stages: the CPU with the host clock, the GPU with
//! CUDA events recorded on its stream between stages (device time) plus the host clock (time to issue the
//! stage, which for a GPU is launch and library overhead). Profiling adds one event per stage; it is off
//! unless asked for.

use std::fmt;
use std::time::Instant;

/// Accumulated stage times over any number of forward passes.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    stages: Vec<StageTotal>,
    forwards: usize,
    wall_s: f64,
    device: bool,
}

#[derive(Debug, Clone)]
struct StageTotal {
    name: &'static str,
    calls: usize,
    host_s: f64,
    device_s: f64,
}

impl Profile {
    /// A profile whose stages carry device times (GPU) or host times only (CPU).
    pub(crate) fn new(device: bool) -> Self {
        Profile {
            device,
            ..Profile::default()
        }
    }

    /// Adds one stage's time; stages are listed in the order first seen.
    pub(crate) fn add(&mut self, name: &'static str, host_s: f64, device_s: f64) {
        let i = match self.stages.iter().position(|s| s.name == name) {
            Some(i) => i,
            None => {
                self.stages.push(StageTotal {
                    name,
                    calls: 0,
                    host_s: 0.0,
                    device_s: 0.0,
                });
                self.stages.len() - 1
            }
        };
        let s = &mut self.stages[i];
        s.calls += 1;
        s.host_s += host_s;
        s.device_s += device_s;
    }

    /// Counts one whole forward pass and its wall time (host clock, from entry to logits on the host).
    pub(crate) fn add_forward(&mut self, wall_s: f64) {
        self.forwards += 1;
        self.wall_s += wall_s;
    }

    pub fn forwards(&self) -> usize {
        self.forwards
    }

    /// Sum of the wall times of the forward passes, in seconds.
    pub fn wall_seconds(&self) -> f64 {
        self.wall_s
    }

    /// (stage, calls, host seconds, device seconds) in the order the stages run; device seconds are 0 on
    /// the CPU.
    pub fn stages(&self) -> impl Iterator<Item = (&'static str, usize, f64, f64)> + '_ {
        self.stages
            .iter()
            .map(|s| (s.name, s.calls, s.host_s, s.device_s))
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let busy: f64 = self
            .stages
            .iter()
            .map(|s| if self.device { s.device_s } else { s.host_s })
            .sum();
        let what = if self.device { "device" } else { "host" };
        writeln!(
            f,
            "profile: {} forward passes, wall {:.3} ms, {what} time in stages {:.3} ms ({:.0}% of wall)",
            self.forwards,
            self.wall_s * 1e3,
            busy * 1e3,
            if self.wall_s > 0.0 { 100.0 * busy / self.wall_s } else { 0.0 }
        )?;
        if self.device {
            writeln!(
                f,
                "{:<22} {:>6} {:>11} {:>7} {:>12} {:>12}",
                "stage", "calls", "device ms", "share", "device µs/c", "host µs/c"
            )?;
        } else {
            writeln!(
                f,
                "{:<22} {:>6} {:>11} {:>7} {:>12}",
                "stage", "calls", "host ms", "share", "host µs/c"
            )?;
        }
        for s in &self.stages {
            let per = |x: f64| 1e6 * x / s.calls.max(1) as f64;
            let t = if self.device { s.device_s } else { s.host_s };
            let share = if busy > 0.0 { 100.0 * t / busy } else { 0.0 };
            if self.device {
                writeln!(
                    f,
                    "{:<22} {:>6} {:>11.3} {:>6.1}% {:>12.1} {:>12.1}",
                    s.name,
                    s.calls,
                    t * 1e3,
                    share,
                    per(s.device_s),
                    per(s.host_s)
                )?;
            } else {
                writeln!(
                    f,
                    "{:<22} {:>6} {:>11.3} {:>6.1}% {:>12.1}",
                    s.name,
                    s.calls,
                    t * 1e3,
                    share,
                    per(s.host_s)
                )?;
            }
        }
        Ok(())
    }
}

/// Host-clock laps within one forward pass: `lap(name)` closes the stage that began at the previous lap.
pub(crate) struct Laps {
    start: Instant,
    last: Instant,
    laps: Vec<(&'static str, f64)>,
}

impl Laps {
    pub(crate) fn start() -> Self {
        let now = Instant::now();
        Laps {
            start: now,
            last: now,
            laps: Vec::with_capacity(96),
        }
    }

    pub(crate) fn lap(&mut self, name: &'static str) {
        let now = Instant::now();
        self.laps
            .push((name, now.duration_since(self.last).as_secs_f64()));
        self.last = now;
    }

    /// The laps so far, and the time since `start`.
    pub(crate) fn finish(self) -> (Vec<(&'static str, f64)>, f64) {
        let wall = self.start.elapsed().as_secs_f64();
        (self.laps, wall)
    }
}

/// Stage names of a layer: the last layer runs its second half on [CLS] rows only, so it is listed apart.
pub(crate) fn layer_stage(last: bool, stage: usize) -> &'static str {
    const ALL: [&str; 8] = [
        "qkv_gemm",
        "attention",
        "out_proj_gemm",
        "attn_residual_ln",
        "ffn_in_gemm",
        "bias_gelu",
        "ffn_out_gemm",
        "ffn_residual_ln",
    ];
    const CLS: [&str; 8] = [
        "qkv_gemm (last)",
        "attention (last, cls)",
        "out_proj_gemm (cls)",
        "attn_residual_ln (cls)",
        "ffn_in_gemm (cls)",
        "bias_gelu (cls)",
        "ffn_out_gemm (cls)",
        "ffn_residual_ln (cls)",
    ];
    if last {
        CLS[stage]
    } else {
        ALL[stage]
    }
}

/// The CPU backend's feed-forward half (FFN-in GEMM, bias+GELU, FFN-out GEMM, bias+residual+LayerNorm),
/// which it runs fused on blocks of rows and so times as one stage.
pub(crate) fn fused_ffn_stage(last: bool) -> &'static str {
    if last {
        "ffn_fused (cls)"
    } else {
        "ffn_fused"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_accumulate_in_first_seen_order() {
        let mut p = Profile::new(true);
        p.add("b", 1e-3, 2e-3);
        p.add("a", 1e-3, 1e-3);
        p.add("b", 1e-3, 2e-3);
        p.add_forward(10e-3);
        let v: Vec<_> = p.stages().collect();
        assert_eq!(v[0].0, "b");
        assert_eq!(v[0].1, 2);
        assert!((v[0].3 - 4e-3).abs() < 1e-12);
        assert_eq!(v[1].0, "a");
        let text = p.to_string();
        assert!(text.contains("1 forward passes"), "{text}");
        assert!(text.contains("50% of wall"), "{text}");
        assert!(text.contains("80.0%"), "{text}"); // b: 4 of 5 ms of device time
    }

    #[test]
    fn laps_close_the_stage_since_the_previous_lap() {
        let mut l = Laps::start();
        l.lap("x");
        l.lap("y");
        let (laps, wall) = l.finish();
        assert_eq!(laps.iter().map(|l| l.0).collect::<Vec<_>>(), ["x", "y"]);
        assert!(laps.iter().map(|l| l.1).sum::<f64>() <= wall);
    }

    #[test]
    fn the_last_layer_is_named_apart() {
        assert_eq!(layer_stage(false, 1), "attention");
        assert_eq!(layer_stage(true, 1), "attention (last, cls)");
    }
}
