//! Opening a wgpu device: choosing the adapter, requesting every limit it offers, and
//! turning what the device reports (uncaptured errors, loss, out-of-memory) into typed
//! errors that name the adapter, so that nothing on the device path panics.

use std::sync::{Arc, Mutex};

use crate::error::{DeviceFault, KernelError, Result};

/// The first fault the device reported, kept until every later op has refused to run.
#[derive(Clone, Default)]
pub struct FaultSlot(Arc<Mutex<Option<(DeviceFault, String)>>>);

impl FaultSlot {
    fn set(&self, fault: DeviceFault, message: String) {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert((fault, message));
    }

    fn get(&self) -> Option<(DeviceFault, String)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// An open device with its queue and the adapter it came from.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    faults: FaultSlot,
}

/// How a backend picks among the adapters: `None` takes the best kind (discrete, then
/// integrated, virtual, software); a number takes that index in [`adapters`]'s order; any
/// other text takes the first adapter whose name contains it, ignoring case.
pub fn choose<'a>(adapters: &'a [wgpu::Adapter], selector: Option<&str>) -> Result<&'a wgpu::Adapter> {
    let names = || {
        let list: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        if list.is_empty() {
            "no Vulkan, Metal or DX12 adapter is visible (on Debian, install mesa-vulkan-drivers for a software one)"
                .to_string()
        } else {
            format!("adapters here: {}", list.join(", "))
        }
    };
    let found = match selector {
        None => adapters.iter().min_by_key(|a| kind_rank(a.get_info().device_type)),
        Some(s) => match s.parse::<usize>() {
            Ok(i) => adapters.get(i),
            Err(_) => {
                let want = s.to_lowercase();
                adapters
                    .iter()
                    .find(|a| a.get_info().name.to_lowercase().contains(&want))
            }
        },
    };
    found.ok_or_else(|| {
        let asked = selector.map_or("any adapter".to_string(), |s| format!("adapter {s:?}"));
        KernelError::NoAdapter(format!("{asked}: {}", names()))
    })
}

fn kind_rank(kind: wgpu::DeviceType) -> u8 {
    match kind {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

/// The native backends: Vulkan, Metal and DX12 (`WGPU_BACKEND` overrides).
const NATIVE: wgpu::Backends = wgpu::Backends::VULKAN
    .union(wgpu::Backends::METAL)
    .union(wgpu::Backends::DX12);

/// The names of the adapters here, in the order `wgpu:INDEX` counts them.
pub fn adapter_names() -> Vec<String> {
    adapters().iter().map(|a| a.get_info().name).collect()
}

/// Every adapter of the native backends, in the driver's order.
fn adapters() -> Vec<wgpu::Adapter> {
    let backends = wgpu::Backends::from_env().unwrap_or(NATIVE);
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    let instance = wgpu::Instance::new(desc);
    pollster::block_on(instance.enumerate_adapters(backends))
}

impl Gpu {
    /// Opens the adapter `selector` picks (see [`choose`]) with every limit it offers.
    pub fn open(selector: Option<&str>) -> Result<Gpu> {
        let adapters = adapters();
        let adapter = choose(&adapters, selector)?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        let request = wgpu::DeviceDescriptor {
            label: Some("brainstem"),
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) =
            pollster::block_on(adapter.request_device(&request)).map_err(|e| KernelError::Device {
                adapter: info.name.clone(),
                fault: DeviceFault::Refused,
                message: e.to_string(),
            })?;
        let faults = FaultSlot::default();
        let on_error = faults.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let fault = match e {
                wgpu::Error::OutOfMemory { .. } => DeviceFault::OutOfMemory,
                _ => DeviceFault::Validation,
            };
            on_error.set(fault, e.to_string());
        }));
        let on_lost = faults.clone();
        device.set_device_lost_callback(move |reason, message| {
            on_lost.set(DeviceFault::Lost, format!("{reason:?}: {message}"));
        });
        Ok(Gpu {
            device,
            queue,
            info,
            limits,
            faults,
        })
    }

    /// An error for `fault` that names this adapter.
    pub fn error(&self, fault: DeviceFault, message: impl Into<String>) -> KernelError {
        KernelError::Device {
            adapter: self.info.name.clone(),
            fault,
            message: message.into(),
        }
    }

    /// The first fault the device has reported, if any.
    pub fn check(&self) -> Result<()> {
        match self.faults.get() {
            Some((fault, message)) => Err(self.error(fault, message)),
            None => Ok(()),
        }
    }

    /// Runs `create` in an error scope for `filter` and returns its error as `fault`.
    pub fn scoped<T>(&self, filter: wgpu::ErrorFilter, fault: DeviceFault, create: impl FnOnce() -> T) -> Result<T> {
        let scope = self.device.push_error_scope(filter);
        let made = create();
        match pollster::block_on(scope.pop()) {
            Some(e) => Err(self.error(fault, e.to_string())),
            None => Ok(made),
        }
    }

    /// A storage buffer of `size` bytes, refused with a typed error past the adapter's limits
    /// or its memory.
    pub fn storage_buffer(&self, label: &str, size: u64, usage: wgpu::BufferUsages) -> Result<wgpu::Buffer> {
        let limit = self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size);
        if size > limit {
            return Err(self.error(
                DeviceFault::Limit,
                format!("{label} needs a buffer of {size} bytes; the adapter binds at most {limit}"),
            ));
        }
        self.scoped(wgpu::ErrorFilter::OutOfMemory, DeviceFault::OutOfMemory, || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: size.max(4),
                usage,
                mapped_at_creation: false,
            })
        })
    }
}
