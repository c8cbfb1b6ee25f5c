//! Stage timing on the GPU for [`crate::profile::Profile`]: one CUDA event recorded on the stream after
//! each stage (events reused across forward passes), read after the pass's final synchronisation, so
//! profiling adds event records but no synchronisation of its own.

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::CudaEvent;

use super::context::Gpu;
use super::device::cuda_err;
use crate::error::Result;
use crate::profile::{Laps, Profile};

pub(crate) struct EventClock {
    events: Vec<CudaEvent>,
    used: usize,
    laps: Option<Laps>,
    pub(crate) profile: Profile,
}

impl EventClock {
    pub(crate) fn new() -> Self {
        EventClock {
            events: Vec::new(),
            used: 0,
            laps: None,
            profile: Profile::new(true),
        }
    }

    fn record(&mut self, gpu: &Gpu) -> Result<()> {
        if self.used == self.events.len() {
            let e = gpu
                .ctx
                .new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
                .map_err(cuda_err("creating a profiling event"))?;
            self.events.push(e);
        }
        self.events[self.used]
            .record(&gpu.stream)
            .map_err(cuda_err("recording a profiling event"))?;
        self.used += 1;
        Ok(())
    }

    /// Marks the start of a forward pass.
    pub(crate) fn begin(&mut self, gpu: &Gpu) -> Result<()> {
        self.used = 0;
        self.laps = Some(Laps::start());
        self.record(gpu)
    }

    /// Closes stage `name`, begun at the previous mark.
    pub(crate) fn lap(&mut self, gpu: &Gpu, name: &'static str) -> Result<()> {
        self.record(gpu)?;
        if let Some(l) = self.laps.as_mut() {
            l.lap(name);
        }
        Ok(())
    }

    /// After the pass's synchronisation: adds each stage's device and host time to the profile.
    pub(crate) fn end(&mut self) -> Result<()> {
        let Some(laps) = self.laps.take() else {
            return Ok(());
        };
        let (laps, wall) = laps.finish();
        for (i, (name, host_s)) in laps.into_iter().enumerate() {
            let ms = self.events[i]
                .elapsed_ms(&self.events[i + 1])
                .map_err(cuda_err("reading a profiling event"))?;
            self.profile.add(name, host_s, f64::from(ms) / 1e3);
        }
        self.profile.add_forward(wall);
        Ok(())
    }
}

/// `clock.lap(gpu, name)` when profiling, nothing otherwise.
pub(crate) fn lap(clock: &mut Option<EventClock>, gpu: &Gpu, name: &'static str) -> Result<()> {
    match clock {
        Some(c) => c.lap(gpu, name),
        None => Ok(()),
    }
}
