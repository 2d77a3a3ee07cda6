//! Recording work for the device. Ops append compute passes to one open command encoder;
//! parameters and small uploads are staged in one host-side ring and written with a single
//! queue write when the encoder is submitted, which happens only when the host needs data
//! back (or the ring fills). Activation buffers come from a pool of power-of-two sizes and go
//! back to it when their last tensor is dropped, and bind groups are cached per buffer set,
//! so a model that repeats the same step allocates nothing new on the device.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::device::Gpu;
use super::pipelines::{Kernel, Pipelines, PARAMS_BYTES};
use crate::error::{DeviceFault, Result};

/// Bytes of the staging ring: parameters and uploads of one submission.
const RING_BYTES: usize = 4 << 20;
/// Alignment of every staged slice (the largest uniform offset alignment WebGPU allows).
const SLOT_ALIGN: usize = 256;
/// Bind groups kept before the cache starts over.
const MAX_BIND_GROUPS: usize = 4096;

/// A device buffer; pooled ones return to their pool when dropped.
#[derive(Debug)]
pub struct GpuBuffer {
    pub buffer: wgpu::Buffer,
    id: u64,
    pool: Option<Arc<Pool>>,
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            pool.give_back(self.id, self.buffer.clone());
        }
    }
}

/// Free buffers (with their ids) by (size, whether they are for reading back).
type FreeLists = HashMap<(u64, bool), Vec<(u64, wgpu::Buffer)>>;

/// Free activation buffers by size, and counts of what the backend created.
#[derive(Debug, Default)]
pub struct Pool {
    free: Mutex<FreeLists>,
    next_id: AtomicU64,
    buffers_created: AtomicU64,
}

/// What the backend has created on the device so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceStats {
    pub buffers_created: u64,
    pub bind_groups_created: u64,
    pub submissions: u64,
}

const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);
const READBACK: wgpu::BufferUsages = wgpu::BufferUsages::MAP_READ.union(wgpu::BufferUsages::COPY_DST);

impl Pool {
    fn lock(&self) -> MutexGuard<'_, FreeLists> {
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn give_back(&self, id: u64, buffer: wgpu::Buffer) {
        let key = (buffer.size(), buffer.usage().contains(wgpu::BufferUsages::MAP_READ));
        self.lock().entry(key).or_default().push((id, buffer));
    }

    /// A buffer of at least `bytes` (a power of two, 256 bytes or more).
    pub fn take(self: &Arc<Self>, gpu: &Gpu, bytes: u64, readback: bool) -> Result<GpuBuffer> {
        let size = bytes.max(SLOT_ALIGN as u64).next_power_of_two();
        let reused = self.lock().get_mut(&(size, readback)).and_then(Vec::pop);
        let (id, buffer) = match reused {
            Some(found) => found,
            None => {
                let usage = if readback { READBACK } else { STORAGE };
                let buffer = gpu.storage_buffer("activations", size, usage)?;
                self.buffers_created.fetch_add(1, Ordering::Relaxed);
                (self.next_id.fetch_add(1, Ordering::Relaxed), buffer)
            }
        };
        Ok(GpuBuffer {
            buffer,
            id,
            pool: Some(self.clone()),
        })
    }

    /// A buffer of exactly `bytes` that is never pooled (weights, caches, tables).
    pub fn dedicated(&self, gpu: &Gpu, label: &str, bytes: u64) -> Result<GpuBuffer> {
        let buffer = gpu.storage_buffer(label, bytes, STORAGE)?;
        self.buffers_created.fetch_add(1, Ordering::Relaxed);
        Ok(GpuBuffer {
            buffer,
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            pool: None,
        })
    }
}

struct State {
    encoder: Option<wgpu::CommandEncoder>,
    /// Staged bytes of this submission, written to `ring` at its start.
    staged: Vec<u8>,
    bind_groups: HashMap<(Kernel, [u64; 6]), wgpu::BindGroup>,
    stats: DeviceStats,
}

/// The open encoder, the staging ring and the bind group cache.
pub struct Recorder {
    ring: wgpu::Buffer,
    state: Mutex<State>,
}

impl Recorder {
    pub fn new(gpu: &Gpu) -> Result<Recorder> {
        let usage = wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        let ring = gpu.scoped(wgpu::ErrorFilter::OutOfMemory, DeviceFault::OutOfMemory, || {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("staging ring"),
                size: RING_BYTES as u64,
                usage,
                mapped_at_creation: false,
            })
        })?;
        Ok(Recorder {
            ring,
            state: Mutex::new(State {
                encoder: None,
                staged: Vec::with_capacity(RING_BYTES),
                bind_groups: HashMap::new(),
                stats: DeviceStats::default(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn stats(&self, pool: &Pool) -> DeviceStats {
        DeviceStats {
            buffers_created: pool.buffers_created.load(Ordering::Relaxed),
            ..self.lock().stats
        }
    }

    /// Runs `kernel` over `workgroups` workgroups with `params` and `buffers` bound in the
    /// kernel's order.
    pub fn dispatch(
        &self,
        gpu: &Gpu,
        pipelines: &Pipelines,
        kernel: Kernel,
        buffers: &[&GpuBuffer],
        params: &[u32],
        workgroups: u64,
    ) -> Result<()> {
        debug_assert_eq!(buffers.len(), kernel.buffers());
        debug_assert!(params.len() * 4 <= PARAMS_BYTES as usize);
        gpu.check()?;
        if workgroups == 0 {
            return Ok(());
        }
        let grid = grid(gpu, workgroups)?;
        let mut state = self.lock();
        let offset = self.stage(gpu, &mut state, PARAMS_BYTES as usize, |staged| {
            params.iter().for_each(|w| staged.extend_from_slice(&w.to_le_bytes()))
        });
        let group = self.bind_group(gpu, pipelines, &mut state, kernel, buffers);
        let encoder = encoder(gpu, &mut state);
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        pass.set_pipeline(&pipelines.get(kernel).pipeline);
        pass.set_bind_group(0, &group, &[offset as u32]);
        pass.dispatch_workgroups(grid.0, grid.1, 1);
        Ok(())
    }

    /// Copies `bytes` bytes from `src` at `src_offset` into `dst` at `dst_offset`, in order
    /// with the recorded work.
    pub fn copy(&self, gpu: &Gpu, src: &GpuBuffer, src_offset: u64, dst: &GpuBuffer, dst_offset: u64, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let mut state = self.lock();
        encoder(gpu, &mut state).copy_buffer_to_buffer(&src.buffer, src_offset, &dst.buffer, dst_offset, bytes);
    }

    /// Writes `data` to the start of `dst`, in order with the recorded work.
    pub fn upload(&self, gpu: &Gpu, dst: &GpuBuffer, data: &[u8]) -> Result<()> {
        gpu.check()?;
        if data.is_empty() {
            return Ok(());
        }
        let mut state = self.lock();
        if data.len() > RING_BYTES / 2 {
            // Too large to stage: submit what is recorded, then write directly; the write
            // lands after every submitted command.
            self.submit(gpu, &mut state);
            gpu.queue.write_buffer(&dst.buffer, 0, data);
            return Ok(());
        }
        let offset = self.stage(gpu, &mut state, data.len(), |staged| staged.extend_from_slice(data));
        encoder(gpu, &mut state).copy_buffer_to_buffer(&self.ring, offset as u64, &dst.buffer, 0, data.len() as u64);
        Ok(())
    }

    /// Submits the recorded work with a copy of the first `bytes` of `src`, waits, and returns
    /// those bytes.
    pub fn read(&self, gpu: &Gpu, pool: &Arc<Pool>, src: &GpuBuffer, bytes: u64) -> Result<Vec<u8>> {
        gpu.check()?;
        if bytes == 0 {
            return Ok(Vec::new());
        }
        let staging = pool.take(gpu, bytes, true)?;
        {
            let mut state = self.lock();
            encoder(gpu, &mut state).copy_buffer_to_buffer(&src.buffer, 0, &staging.buffer, 0, bytes);
            self.submit(gpu, &mut state);
        }
        let slice = staging.buffer.slice(..bytes);
        let (sender, receiver) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |outcome| {
            let _ = sender.send(outcome);
        });
        gpu.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| gpu.error(DeviceFault::Lost, e.to_string()))?;
        gpu.check()?;
        match receiver.try_recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(gpu.error(DeviceFault::Validation, format!("reading back: {e}"))),
            Err(_) => return Err(gpu.error(DeviceFault::Lost, "the read-back never completed")),
        }
        let data = slice
            .get_mapped_range()
            .map_err(|e| gpu.error(DeviceFault::Validation, e.to_string()))?
            .to_vec();
        staging.buffer.unmap();
        Ok(data)
    }

    fn submit(&self, gpu: &Gpu, state: &mut State) {
        let Some(encoder) = state.encoder.take() else {
            return;
        };
        if !state.staged.is_empty() {
            gpu.queue.write_buffer(&self.ring, 0, &state.staged);
            state.staged.clear();
        }
        gpu.queue.submit([encoder.finish()]);
        state.stats.submissions += 1;
    }

    /// Reserves an aligned slot of `slot` bytes in the ring, lets `fill` append at most that
    /// many, and returns the slot's offset.
    fn stage(&self, gpu: &Gpu, state: &mut State, slot: usize, fill: impl FnOnce(&mut Vec<u8>)) -> usize {
        let mut offset = state.staged.len().next_multiple_of(SLOT_ALIGN);
        if offset + slot > RING_BYTES {
            self.submit(gpu, state);
            offset = 0;
        }
        state.staged.resize(offset, 0);
        fill(&mut state.staged);
        debug_assert!(state.staged.len() <= offset + slot);
        state.staged.resize(offset + slot, 0);
        offset
    }

    fn bind_group(
        &self,
        gpu: &Gpu,
        pipelines: &Pipelines,
        state: &mut State,
        kernel: Kernel,
        buffers: &[&GpuBuffer],
    ) -> wgpu::BindGroup {
        let mut ids = [u64::MAX; 6];
        for (id, b) in ids.iter_mut().zip(buffers) {
            *id = b.id;
        }
        if let Some(group) = state.bind_groups.get(&(kernel, ids)) {
            return group.clone();
        }
        if state.bind_groups.len() >= MAX_BIND_GROUPS {
            state.bind_groups.clear();
        }
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &self.ring,
                offset: 0,
                size: wgpu::BufferSize::new(PARAMS_BYTES),
            }),
        }];
        entries.extend(buffers.iter().enumerate().map(|(i, b)| wgpu::BindGroupEntry {
            binding: kernel.binding(i),
            resource: b.buffer.as_entire_binding(),
        }));
        let group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipelines.get(kernel).layout,
            entries: &entries,
        });
        state.stats.bind_groups_created += 1;
        state.bind_groups.insert((kernel, ids), group.clone());
        group
    }
}

fn encoder<'a>(gpu: &Gpu, state: &'a mut State) -> &'a mut wgpu::CommandEncoder {
    state.encoder.get_or_insert_with(|| {
        gpu.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor::default())
    })
}

/// Workgroups laid out as (x, y) within the adapter's per-dimension limit; shaders take the
/// linear index `x + y * num_workgroups.x` and skip indices past the work.
fn grid(gpu: &Gpu, workgroups: u64) -> Result<(u32, u32)> {
    let max = gpu.limits.max_compute_workgroups_per_dimension as u64;
    let x = workgroups.min(max);
    let y = workgroups.div_ceil(x);
    if y > max {
        return Err(gpu.error(
            DeviceFault::Limit,
            format!("{workgroups} workgroups exceed {max} x {max}"),
        ));
    }
    Ok((x as u32, y as u32))
}
