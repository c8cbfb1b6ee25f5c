//! Device buffers: a batch's indices (uploaded once per batch into one reused `i32` buffer, with the
//! host-checked facts the launchers rely on), the activation buffers sized once from the token budget,
//! and fp16 upload/download helpers for tests.

use cudarc::driver::{CudaEvent, CudaSlice, CudaView, DeviceRepr, PinnedHostSlice};
use half::f16;

use super::context::Gpu;
use super::device::cuda_err;
use super::plan::{self, ActivationSizes, IndexLayout, PackedBatch};
use crate::batch::RaggedBatch;
use crate::config::ModelConfig;
use crate::error::{Error, Result};

/// Page-locked host memory for asynchronous copies, with an event marking the end of the last copy that
/// used it: the host waits on that event before it touches the memory again, and on nothing else.
pub(crate) struct Pinned<T> {
    mem: PinnedHostSlice<T>,
    done: CudaEvent,
}

impl<T: DeviceRepr + cudarc::driver::ValidAsZeroBits> Pinned<T> {
    /// `len` elements; `write_combined` for memory the host only writes (uploads).
    pub fn new(gpu: &Gpu, len: usize, write_combined: bool) -> Result<Self> {
        let flags = if write_combined {
            cudarc::driver::sys::CU_MEMHOSTALLOC_WRITECOMBINED
        } else {
            0
        };
        // SAFETY: the memory is written (by the host or a copy) before it is read.
        let mem = unsafe { gpu.ctx.alloc_pinned_with_flags::<T>(len.max(1), flags) }
            .map_err(cuda_err("allocating page-locked host memory"))?;
        let done = gpu
            .ctx
            .new_event(None)
            .map_err(cuda_err("creating a copy event"))?;
        Ok(Pinned { mem, done })
    }

    /// The memory, once the last copy that used it has finished.
    pub fn host(&self) -> Result<&[T]> {
        self.done
            .synchronize()
            .map_err(cuda_err("waiting for a copy"))?;
        self.mem.as_slice().map_err(cuda_err("page-locked memory"))
    }

    /// The memory for writing, once the last copy that used it has finished.
    pub fn host_mut(&mut self) -> Result<&mut [T]> {
        self.done
            .synchronize()
            .map_err(cuda_err("waiting for a copy"))?;
        self.mem
            .as_mut_slice()
            .map_err(cuda_err("page-locked memory"))
    }

    /// Queues a copy of the first `len` elements to device address `dst` on `stream`.
    ///
    /// # Safety
    /// `dst` must be valid for `len` elements, and no work that reads its old contents may still be
    /// pending unless it is ordered before this copy on `stream`.
    pub unsafe fn upload(
        &mut self,
        stream: &cudarc::driver::CudaStream,
        len: usize,
        dst: u64,
    ) -> Result<()> {
        let src = &self.host_mut()?[..len];
        cudarc::driver::result::memcpy_htod_async(dst, src, stream.cu_stream())
            .map_err(cuda_err("copying to the device"))?;
        self.done
            .record(stream)
            .map_err(cuda_err("recording a copy event"))
    }

    /// Queues a copy of `len` elements from device address `src` into the start of this memory.
    ///
    /// # Safety
    /// `src` must be valid for `len` elements once earlier work on the stream has run.
    pub unsafe fn download(&mut self, gpu: &Gpu, src: u64, len: usize) -> Result<()> {
        let dst = &mut self.host_mut()?[..len];
        cudarc::driver::result::memcpy_dtoh_async(dst, src, gpu.stream.cu_stream())
            .map_err(cuda_err("copying to the host"))?;
        self.done
            .record(&gpu.stream)
            .map_err(cuda_err("recording a copy event"))
    }
}

/// A batch's index arrays on the device (see [`plan::IndexLayout`]) plus what was checked on the host:
/// the largest id of each kind and the work-list lengths. Launchers trust device indices only through it.
pub struct DeviceBatch {
    buf: CudaSlice<i32>,
    /// Recorded on the compute stream after the last kernel that reads `buf` for the current batch
    /// ([`DeviceBatch::release`]); the next upload into `buf` waits for it on the copy stream.
    released: CudaEvent,
    /// Recorded on the copy stream when the upload has landed; the compute stream waits for it.
    uploaded: CudaEvent,
    /// Page-locked copy of `packed.data`, the source of the asynchronous upload.
    staging: Pinned<i32>,
    capacity: IndexLayout,
    num_heads: usize,
    layout: Option<IndexLayout>,
    packed: PackedBatch,
}

impl DeviceBatch {
    /// Room for any batch of at most `token_budget` tokens.
    pub fn with_capacity(gpu: &Gpu, token_budget: usize, num_heads: usize) -> Result<Self> {
        let capacity = IndexLayout::capacity(token_budget, num_heads);
        // SAFETY: every element a kernel reads is written by `upload` first.
        let buf = unsafe { gpu.stream.alloc::<i32>(capacity.total.max(4)) }
            .map_err(cuda_err("index buffer"))?;
        let event = || {
            gpu.ctx
                .new_event(None)
                .map_err(cuda_err("creating an upload event"))
        };
        Ok(DeviceBatch {
            staging: Pinned::new(gpu, buf.len(), true)?,
            released: event()?,
            uploaded: event()?,
            buf,
            capacity,
            num_heads,
            layout: None,
            packed: PackedBatch::default(),
        })
    }

    /// A buffer sized for `batch` alone, with `batch` uploaded.
    pub fn new(gpu: &Gpu, batch: &RaggedBatch, num_heads: usize) -> Result<Self> {
        let mut b = DeviceBatch::with_capacity(gpu, batch.num_tokens(), num_heads)?;
        b.upload(gpu, batch)?;
        Ok(b)
    }

    /// Packs `batch` on the host and queues one asynchronous copy from page-locked memory on the copy
    /// stream (host buffers reused): the copy waits until the kernels of the batch this buffer held before
    /// have released it, and the compute stream waits for the copy before anything queued after this
    /// call. So while the GPU computes the batch of one `DeviceBatch`, the next can be packed and copied.
    pub fn upload(&mut self, gpu: &Gpu, batch: &RaggedBatch) -> Result<()> {
        self.layout = None;
        let layout =
            plan::pack_batch(batch, self.num_heads, &mut self.packed).map_err(Error::Input)?;
        if layout.total > self.buf.len() || layout.tokens > self.capacity.tokens {
            return Err(Error::cuda(format!(
                "batch of {} tokens does not fit the index buffer sized for {}",
                layout.tokens, self.capacity.tokens
            )));
        }
        self.staging.host_mut()?[..layout.total].copy_from_slice(&self.packed.data);
        let dst = gpu.addr(&self.buf);
        gpu.copy_stream
            .wait(&self.released)
            .map_err(cuda_err("ordering the upload after the previous batch"))?;
        // SAFETY: buf holds at least layout.total elements (checked above); the copy stream waits (above)
        // for every kernel queued to read buf before this upload (`release` records after them).
        unsafe { self.staging.upload(&gpu.copy_stream, layout.total, dst)? };
        self.uploaded
            .record(&gpu.copy_stream)
            .map_err(cuda_err("recording the upload"))?;
        gpu.stream
            .wait(&self.uploaded)
            .map_err(cuda_err("ordering the kernels after the upload"))?;
        self.layout = Some(layout);
        Ok(())
    }

    /// Marks, on the compute stream, that every kernel queued so far is done with this batch's indices:
    /// the next [`DeviceBatch::upload`] into this buffer waits for that point.
    pub fn release(&self, gpu: &Gpu) -> Result<()> {
        self.released
            .record(&gpu.stream)
            .map_err(cuda_err("recording the end of a batch"))
    }

    pub(crate) fn layout(&self, kernel: &str) -> Result<IndexLayout> {
        self.layout
            .ok_or_else(|| Error::cuda(format!("{kernel}: no batch has been uploaded")))
    }

    pub fn tokens(&self) -> usize {
        self.layout.map_or(0, |l| l.tokens)
    }

    pub fn pairs(&self) -> usize {
        self.layout.map_or(0, |l| l.pairs)
    }

    pub fn num_heads(&self) -> usize {
        self.num_heads
    }

    pub(crate) fn facts(&self) -> &PackedBatch {
        &self.packed
    }

    /// Device address of element `offset` of the index buffer.
    pub(crate) fn addr_of(&self, gpu: &Gpu, offset: usize) -> u64 {
        gpu.addr(&self.buf) + 4 * offset as u64
    }
}

/// Batches in flight: while the GPU runs one, the host packs and uploads the next.
pub(crate) const SLOTS: usize = 2;

/// The activations of one forward pass, allocated once for the token budget, plus what each of the
/// [`SLOTS`] batches in flight owns: its index buffer and its page-locked logits.
pub(crate) struct Activations {
    pub index: [DeviceBatch; SLOTS],
    pub hidden: CudaSlice<f16>,
    pub qkv: CudaSlice<f16>,
    pub ctx: CudaSlice<f16>,
    pub proj: CudaSlice<f16>,
    pub ffn: CudaSlice<f16>,
    pub cls: CudaSlice<f16>,
    pub logits: CudaSlice<f32>,
    pub logits_host: [Pinned<f32>; SLOTS],
}

impl Activations {
    pub fn new(gpu: &Gpu, cfg: &ModelConfig, token_budget: usize) -> Result<Self> {
        let s = ActivationSizes::new(cfg, token_budget);
        let what = format!(
            "allocating {} MiB of activations for a token budget of {token_budget}",
            s.total_bytes() >> 20
        );
        let f16s = |n: usize| gpu.stream.alloc_zeros::<f16>(n).map_err(cuda_err(&what));
        let index = || DeviceBatch::with_capacity(gpu, token_budget, cfg.num_attention_heads);
        let logits_host = || Pinned::new(gpu, s.logits, false);
        Ok(Activations {
            index: [index()?, index()?],
            hidden: f16s(s.hidden)?,
            qkv: f16s(s.qkv)?,
            ctx: f16s(s.ctx)?,
            proj: f16s(s.proj)?,
            ffn: f16s(s.ffn)?,
            cls: f16s(s.cls)?,
            logits: gpu
                .stream
                .alloc_zeros::<f32>(s.logits)
                .map_err(cuda_err(&what))?,
            logits_host: [logits_host()?, logits_host()?],
        })
    }
}

/// Rounds `x` to fp16 and copies it to a new device buffer.
pub fn upload_f16(gpu: &Gpu, x: &[f32]) -> Result<CudaSlice<f16>> {
    let h: Vec<f16> = x.iter().map(|&v| f16::from_f32(v)).collect();
    gpu.stream
        .clone_htod(&h)
        .map_err(cuda_err("uploading fp16 data"))
}

/// A zeroed fp16 device buffer of `len` elements.
pub fn zeros_f16(gpu: &Gpu, len: usize) -> Result<CudaSlice<f16>> {
    gpu.stream
        .alloc_zeros::<f16>(len)
        .map_err(cuda_err("allocating fp16 data"))
}

/// A zeroed fp32 device buffer of `len` elements.
pub fn zeros_f32(gpu: &Gpu, len: usize) -> Result<CudaSlice<f32>> {
    gpu.stream
        .alloc_zeros::<f32>(len)
        .map_err(cuda_err("allocating fp32 data"))
}

/// Copies an fp16 device buffer back, widened to f32 (waits for the stream).
pub fn download_f16(gpu: &Gpu, x: &CudaView<'_, f16>) -> Result<Vec<f32>> {
    let h = gpu
        .stream
        .clone_dtoh(x)
        .map_err(cuda_err("downloading fp16 data"))?;
    gpu.synchronize()?;
    Ok(h.into_iter().map(f16::to_f32).collect())
}

/// Copies an fp32 device buffer back (waits for the stream).
pub fn download_f32(gpu: &Gpu, x: &CudaView<'_, f32>) -> Result<Vec<f32>> {
    let h = gpu
        .stream
        .clone_dtoh(x)
        .map_err(cuda_err("downloading fp32 data"))?;
    gpu.synchronize()?;
    Ok(h)
}
