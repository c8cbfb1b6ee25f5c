//! The CUDA backend: fp16 storage, fp32 accumulation, the kernels of `kernels/` plus cuBLAS(Lt) GEMMs.
//!
//! Nothing CUDA is linked: cudarc dlopens libcuda, libcublas(Lt) and libnvrtc at run time, after a
//! presence check, so a machine without them builds, tests and runs the CPU path, and asking for CUDA
//! there is an `Error::Cuda`, never a panic. The files, bottom up (each imports only those above it):
//!
//! - `device`, `nvrtc`, `plan`: the ground floor. Presence checks and library lookup, error conversion
//!   and device addresses; one NVRTC compile (shared with build.rs); all launch arithmetic in plain Rust
//!   (work lists, which entry point runs, launch shapes, sizes, weight layout).
//! - `modules`: the kernel images build.rs made, loaded once (cubin, PTX, or NVRTC at first use).
//! - `gemm`: the GEMM state and the GEMMs, on cuBLASLt with plans cached per shape or on the older
//!   cuBLAS path ([`crate::CudaOptions::gemm`]).
//! - `context`: [`kernels::Gpu`], the handle every launcher takes (device, streams, kernels, GEMMs,
//!   options), and the one-time banner.
//! - `buffers`, `weights`, `profile`: device buffers (batch indices, activations), the one weight
//!   allocation, stage timing with events.
//! - `launch`: typed launchers, one per kernel, checking the kernel's contract before launching.
//! - `forward`: the model, op for op the CPU backend's.

mod buffers;
mod context;
mod device;
mod forward;
mod gemm;
mod launch;
mod modules;
mod nvrtc;
pub mod plan;
mod profile;
mod weights;

use std::sync::Mutex;

use crate::batch::RaggedBatch;
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::options::CudaOptions;
use crate::profile::Profile;
use crate::weights::BertWeights;
use buffers::Activations;
use context::Gpu;
use profile::EventClock;
use weights::DeviceWeights;

/// The kernels one by one, for tests that compare each with its CPU twin in [`crate::cpu::ops`].
pub mod kernels {
    pub use super::buffers::{
        download_f16, download_f32, upload_f16, zeros_f16, zeros_f32, DeviceBatch,
    };
    pub use super::context::Gpu;
    pub use super::device::DeviceInfo;
    pub use super::gemm::{GemmChoice, GemmPath, LtAlgo, HEURISTIC_COUNT, PLAN_CACHE_CAP};
    pub use super::launch::{
        add_bias_residual_layernorm, attention_varlen, attention_varlen_with, bias_gelu,
        embed_layernorm, gather_rows, layernorm, linear, linear_bias, linear_bias_add,
        linear_bias_gelu, linear_lt, lt_algorithms, pooler_classifier, pooler_classifier_with,
        AttentionKernel, FfnIn, GbgWarps, Pooler, Residual,
    };
    pub use super::modules::{build_status, build_summary, kernel_file_names};
    pub use super::plan::ENTRIES;
    pub use super::weights::{fp16_image, DeviceWeights};
    pub use cudarc::driver::{CudaSlice, CudaView, CudaViewMut};
}

/// Cheap check used by `Device::Auto`: Ok if libcuda loads and a device exists; Err(reason) otherwise.
/// Never panics.
pub fn probe() -> std::result::Result<(), String> {
    device::probe().map(|_| ())
}

/// The model on one GPU. `forward` takes `&self`: the stream and activation buffers sit behind a mutex,
/// so the backend is `Send + Sync` and batches from several threads run one after another.
pub struct CudaBackend {
    gpu: Gpu,
    cfg: ModelConfig,
    weights: DeviceWeights,
    token_budget: usize,
    state: Mutex<State>,
}

/// What one forward pass at a time uses: the activation buffers and, when profiling, the stage clock.
struct State {
    activations: Activations,
    clock: Option<EventClock>,
}

impl CudaBackend {
    /// Checks for libcuda/cuBLAS/device before any driver call; Err(Error::cuda(..)) if unusable.
    pub fn new(
        cfg: &ModelConfig,
        w: &BertWeights,
        ordinal: usize,
        token_budget: usize,
        options: &CudaOptions,
    ) -> Result<Self> {
        supported(cfg, token_budget, options.allow_unverified)?;
        let gpu = Gpu::new(ordinal, options)?;
        let weights = DeviceWeights::upload(&gpu, cfg, w)?;
        let activations = Activations::new(&gpu, cfg, token_budget)?;
        gpu.synchronize()?;
        Ok(CudaBackend {
            gpu,
            cfg: cfg.clone(),
            weights,
            token_budget,
            state: Mutex::new(State {
                activations,
                clock: None,
            }),
        })
    }

    /// One logit per pair in batch order; the batch is already validated (ids in range, lengths ≤ max
    /// positions, tokens ≤ token_budget). The launchers check again what they index with.
    pub fn forward(&self, batch: &RaggedBatch) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        self.forward_batches(1, |_| Ok(batch), |_, logits| out = logits)?;
        Ok(out)
    }

    /// Runs `count` batches made by `make(k)` and hands each one's logits to `take(k, logits)`, in order
    /// k = 0, 1, ...; while the GPU runs batch k, the host makes, packs and uploads batch k + 1 (two
    /// slots of index buffers and page-locked logits; uploads on their own stream, ordered against the
    /// compute stream by events). With profiling on, batches run one at a time so that each pass's stage
    /// times are its own.
    pub fn forward_batches<B: std::borrow::Borrow<RaggedBatch>>(
        &self,
        count: usize,
        mut make: impl FnMut(usize) -> Result<B>,
        mut take: impl FnMut(usize, Vec<f32>),
    ) -> Result<()> {
        // A panic mid-forward leaves nothing a later forward depends on: every buffer is rewritten.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let State { activations, clock } = &mut *state;
        self.gpu.bind()?;
        let labels = self.cfg.num_labels;
        let depth = if clock.is_some() { 1 } else { buffers::SLOTS };
        let mut pending = std::collections::VecDeque::with_capacity(depth);
        for k in 0..count {
            let batch = make(k)?;
            let batch = batch.borrow();
            if batch.num_tokens() > self.token_budget {
                return Err(Error::Input(format!(
                    "batch of {} tokens exceeds the CUDA backend's token budget {}",
                    batch.num_tokens(),
                    self.token_budget
                )));
            }
            if pending.len() == depth {
                let (j, slot, n) = pending.pop_front().expect("depth >= 1");
                take(j, forward::finish(activations, slot, n, labels, clock)?);
            }
            let slot = k % buffers::SLOTS;
            if batch.num_pairs() > 0 {
                let (g, c, w) = (&self.gpu, &self.cfg, &self.weights);
                forward::enqueue(g, c, w, activations, slot, clock, batch)?;
            }
            pending.push_back((k, slot, batch.num_pairs()));
        }
        while let Some((j, slot, n)) = pending.pop_front() {
            let logits = if n == 0 {
                Vec::new()
            } else {
                forward::finish(activations, slot, n, labels, clock)?
            };
            take(j, logits);
        }
        Ok(())
    }

    /// Starts (or stops) timing each stage of every forward pass with CUDA events.
    pub fn set_profiling(&self, on: bool) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.clock = on.then(EventClock::new);
    }

    /// The stage times gathered since profiling started or since the last call; None when not profiling.
    pub fn take_profile(&self) -> Option<Profile> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state
            .clock
            .as_mut()
            .map(|c| std::mem::replace(&mut c.profile, Profile::new(true)))
    }

    /// Bytes of device memory in use on this GPU (total − free, as the driver reports it): this process's
    /// weights, activations, cuBLAS workspaces and CUDA context, plus anything other processes hold.
    pub fn device_memory_in_use(&self) -> Result<usize> {
        let (free, total) = self
            .gpu
            .ctx
            .mem_get_info()
            .map_err(|e| Error::cuda(format!("device memory info: {e}")).with_source(e))?;
        Ok(total.saturating_sub(free))
    }

    /// e.g. "cuda:0 NVIDIA H100 80GB HBM3 (sm_90)".
    pub fn describe(&self) -> String {
        self.gpu.info().describe()
    }
}

/// What the kernels can run, checked before touching the GPU.
/// Whether the kernels can run `cfg` under `token_budget`. `allow_unverified`
/// ([`CudaOptions::allow_unverified`]) lets through, with a warning, what they can run but no GPU run
/// has verified yet.
fn supported(cfg: &ModelConfig, token_budget: usize, allow_unverified: bool) -> Result<()> {
    let e = |m: String| Err(Error::cuda(format!("{m}; use the CPU backend")));
    // Every family reaches the kernels as BERT does (crate::family: the loader renames the head and
    // drops RoBERTa's first position rows), but only BERT has run on a GPU: a family joins once
    // scripts/gpu-check.sh has passed it there (its goldens, batch vs alone). The pooler/classifier
    // kernel takes any number of labels, but only one-label heads have run on a GPU.
    let mut unverified = Vec::new();
    if cfg.family != crate::family::Family::Bert {
        unverified.push(format!("the {} family", cfg.family.name()));
    }
    if cfg.num_labels != 1 {
        unverified.push(format!("a head with {} labels", cfg.num_labels));
    }
    if !unverified.is_empty() {
        let what = unverified.join(" and ");
        if !allow_unverified {
            return e(format!(
                "{what}: not yet verified on a GPU (BERT with one label is; {} opts in for \
                 scripts/gpu-check.sh)",
                CudaOptions::UNVERIFIED_VAR
            ));
        }
        log::warn!("running {what} on the GPU although no GPU run has verified it yet");
    }
    if !plan::ATTN_HEAD_DIMS.contains(&cfg.head_dim()) {
        return e(format!(
            "head_dim {} has no attention kernel (supported: 32, 64)",
            cfg.head_dim()
        ));
    }
    if let Err(m) =
        plan::layernorm_launch(1, cfg.hidden_size).and(plan::pooler_launch(1, cfg.hidden_size))
    {
        return e(m);
    }
    if !cfg.intermediate_size.is_multiple_of(2) {
        return e(format!(
            "intermediate_size {} is odd",
            cfg.intermediate_size
        ));
    }
    if token_budget == 0
        || token_budget.saturating_mul(cfg.intermediate_size.max(3 * cfg.hidden_size))
            > i32::MAX as usize
    {
        return e(format!(
            "token budget {token_budget} is 0 or too large for 32-bit kernel indices"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn backend_is_send_and_sync() {
        assert_send_sync::<CudaBackend>();
    }

    fn cfg(heads: usize) -> ModelConfig {
        ModelConfig::from_json_str(&format!(
            r#"{{"model_type":"bert","hidden_size":384,"num_attention_heads":{heads},"num_hidden_layers":1,
            "intermediate_size":1536,"max_position_embeddings":512,"vocab_size":100,"num_labels":1}}"#
        ))
        .unwrap()
    }

    #[test]
    fn unsupported_shapes_are_errors_before_any_cuda_call() {
        assert!(supported(&cfg(12), 16384, false).is_ok());
        assert!(supported(&cfg(6), 16384, false).is_ok());
        let err = supported(&cfg(4), 16384, false).unwrap_err().to_string();
        assert!(err.contains("head_dim 96"), "{err}");
        assert!(supported(&cfg(12), 0, false).is_err());
        assert!(supported(&cfg(12), 1 << 21, false).is_err());
        let roberta = ModelConfig {
            family: crate::family::Family::Roberta,
            ..cfg(12)
        };
        let err = supported(&roberta, 16384, false).unwrap_err().to_string();
        assert!(err.contains("roberta family: not yet verified"), "{err}");
        assert!(supported(&roberta, 16384, true).is_ok());
        let three_labels = ModelConfig {
            num_labels: 3,
            ..cfg(12)
        };
        let err = supported(&three_labels, 16384, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("a head with 3 labels"), "{err}");
        assert!(supported(&three_labels, 16384, true).is_ok());
    }

    /// Without a driver (as on CI) asking for the GPU is an error value, not a panic.
    #[test]
    fn new_without_a_gpu_is_an_error() {
        if probe().is_ok() {
            return; // a GPU machine: tests/gpu.rs covers it
        }
        let c = cfg(12);
        let w = super::weights::tests_support::tiny(&c);
        match CudaBackend::new(&c, &w, 0, 1024, &CudaOptions::default()) {
            Err(Error::Cuda { message: m, .. }) => {
                assert!(m.contains("libcuda") || m.contains("device"), "{m}")
            }
            Err(e) => panic!("wrong error kind: {e}"),
            Ok(_) => panic!("a backend without a GPU"),
        }
    }
}
