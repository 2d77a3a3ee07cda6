//! The compute kernels: which shader entry point each one is, the buffers it binds, and
//! their pipelines, compiled once when the backend opens so that an adapter that rejects a
//! shader says so at once, by name.

use std::num::NonZeroU64;

use super::device::Gpu;
use crate::error::{DeviceFault, Result};
use crate::quant::DType;

/// Bytes of the parameter block every kernel reads at binding 0.
pub const PARAMS_BYTES: u64 = 64;

/// The WGSL sources, one shader module each.
#[derive(Clone, Copy)]
enum Module {
    Elementwise,
    Rows,
    Matmul,
    Quantize,
    Attention,
    Embed,
}
impl Module {
    const ALL: [Module; 6] = [
        Module::Elementwise,
        Module::Rows,
        Module::Matmul,
        Module::Quantize,
        Module::Attention,
        Module::Embed,
    ];

    fn source(self) -> &'static str {
        match self {
            Module::Elementwise => include_str!("shaders/elementwise.wgsl"),
            Module::Rows => include_str!("shaders/rows.wgsl"),
            Module::Matmul => include_str!("shaders/matmul.wgsl"),
            Module::Quantize => include_str!("shaders/quantize.wgsl"),
            Module::Attention => include_str!("shaders/attention.wgsl"),
            Module::Embed => include_str!("shaders/embed.wgsl"),
        }
    }
}

/// A storage binding after the parameters: its number and whether the kernel writes it.
#[derive(Clone, Copy)]
enum Slot {
    Read(u32),
    Write(u32),
}
use Slot::{Read, Write};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    Add,
    Mul,
    Silu,
    Gelu,
    GatedSilu,
    GatedGelu,
    CopyBlock,
    RmsNorm,
    LayerNorm,
    Rope,
    Quantize,
    /// Dense f32 weights.
    MatmulDense,
    /// Block-format weights, int8 activations.
    MatmulInt8,
    /// Block-format weights, f32 activations.
    MatmulF32Act,
    Attend,
    EmbedDense,
    EmbedBlocks,
    /// The per-invocation forms of the kernels above that use workgroup barriers.
    MatmulDenseCols,
    MatmulInt8Cols,
    MatmulF32ActCols,
    RmsNormRows,
    LayerNormRows,
    AttendRows,
}

/// How the kernels that reduce (matmul, norms, attention) share out their work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelStyle {
    /// A workgroup per output (or tile of outputs), its invocations summing in workgroup
    /// memory: the shape GPUs run fastest.
    Cooperative,
    /// One invocation per output and no barriers: for adapters that run shaders on a CPU,
    /// where a barrier turns every invocation into a coroutine (about 100x slower measured
    /// on lavapipe).
    PerInvocation,
}

impl KernelStyle {
    /// The style for an adapter of this kind.
    pub fn for_adapter(kind: wgpu::DeviceType) -> KernelStyle {
        match kind {
            wgpu::DeviceType::Cpu => KernelStyle::PerInvocation,
            _ => KernelStyle::Cooperative,
        }
    }
}

/// The number the matmul and embedding shaders switch on for a block format.
pub fn format_code(dtype: DType) -> u32 {
    match dtype {
        DType::Q8_0 => 0,
        DType::Q4_0 => 1,
        DType::Q4_1 => 2,
        DType::Q4K => 3,
        DType::Q6K => 4,
        DType::F32 | DType::F16 | DType::BF16 => u32::MAX,
    }
}

impl Kernel {
    pub const ALL: [Kernel; 23] = [
        Kernel::Add,
        Kernel::Mul,
        Kernel::Silu,
        Kernel::Gelu,
        Kernel::GatedSilu,
        Kernel::GatedGelu,
        Kernel::CopyBlock,
        Kernel::RmsNorm,
        Kernel::LayerNorm,
        Kernel::Rope,
        Kernel::Quantize,
        Kernel::MatmulDense,
        Kernel::MatmulInt8,
        Kernel::MatmulF32Act,
        Kernel::Attend,
        Kernel::EmbedDense,
        Kernel::EmbedBlocks,
        Kernel::MatmulDenseCols,
        Kernel::MatmulInt8Cols,
        Kernel::MatmulF32ActCols,
        Kernel::RmsNormRows,
        Kernel::LayerNormRows,
        Kernel::AttendRows,
    ];

    /// This kernel in `style`: the per-invocation form where one exists.
    pub fn in_style(self, style: KernelStyle) -> Kernel {
        match (style, self) {
            (KernelStyle::Cooperative, k) => k,
            (KernelStyle::PerInvocation, Kernel::MatmulDense) => Kernel::MatmulDenseCols,
            (KernelStyle::PerInvocation, Kernel::MatmulInt8) => Kernel::MatmulInt8Cols,
            (KernelStyle::PerInvocation, Kernel::MatmulF32Act) => Kernel::MatmulF32ActCols,
            (KernelStyle::PerInvocation, Kernel::RmsNorm) => Kernel::RmsNormRows,
            (KernelStyle::PerInvocation, Kernel::LayerNorm) => Kernel::LayerNormRows,
            (KernelStyle::PerInvocation, Kernel::Attend) => Kernel::AttendRows,
            (KernelStyle::PerInvocation, k) => k,
        }
    }

    /// Shader source, entry point, and storage bindings in the order ops pass buffers.
    fn spec(self) -> (Module, &'static str, &'static [Slot]) {
        const BINARY: &[Slot] = &[Read(1), Read(2), Write(3)];
        const UNARY: &[Slot] = &[Read(1), Write(3)];
        match self {
            Kernel::Add => (Module::Elementwise, "add", BINARY),
            Kernel::Mul => (Module::Elementwise, "mul", BINARY),
            Kernel::Silu => (Module::Elementwise, "silu_op", UNARY),
            Kernel::Gelu => (Module::Elementwise, "gelu_op", UNARY),
            Kernel::GatedSilu => (Module::Elementwise, "gated_silu", BINARY),
            Kernel::GatedGelu => (Module::Elementwise, "gated_gelu", BINARY),
            Kernel::CopyBlock => (Module::Elementwise, "copy_block", UNARY),
            Kernel::RmsNorm => (Module::Rows, "rms_norm", &[Read(1), Read(2), Write(4)]),
            Kernel::LayerNorm => (Module::Rows, "layer_norm", &[Read(1), Read(2), Read(3), Write(4)]),
            Kernel::Rope => (Module::Rows, "rope", &[Read(1), Write(4), Read(5)]),
            Kernel::Quantize => (Module::Quantize, "quantize_rows", &[Read(1), Write(2), Write(3)]),
            Kernel::MatmulDense => (Module::Matmul, "mm_f32", &[Write(4), Read(5), Read(6)]),
            Kernel::MatmulInt8 => (Module::Matmul, "mm_int8", &[Read(1), Read(2), Read(3), Write(4)]),
            Kernel::MatmulF32Act => (Module::Matmul, "mm_f32_act", &[Read(1), Read(6), Write(4)]),
            Kernel::Attend => (
                Module::Attention,
                "attend",
                &[Read(1), Read(2), Read(3), Write(4), Write(5)],
            ),
            Kernel::EmbedDense => (Module::Embed, "embed_f32", &[Read(2), Write(3), Read(4)]),
            Kernel::EmbedBlocks => (Module::Embed, "embed_blocks", &[Read(1), Read(2), Write(3)]),
            Kernel::MatmulDenseCols => (Module::Matmul, "mm_f32_cols", &[Write(4), Read(5), Read(6)]),
            Kernel::MatmulInt8Cols => (Module::Matmul, "mm_int8_cols", &[Read(1), Read(2), Read(3), Write(4)]),
            Kernel::MatmulF32ActCols => (Module::Matmul, "mm_f32_act_cols", &[Read(1), Read(6), Write(4)]),
            Kernel::RmsNormRows => (Module::Rows, "rms_norm_rows", &[Read(1), Read(2), Write(4)]),
            Kernel::LayerNormRows => (Module::Rows, "layer_norm_rows", &[Read(1), Read(2), Read(3), Write(4)]),
            Kernel::AttendRows => (
                Module::Attention,
                "attend_rows",
                &[Read(1), Read(2), Read(3), Write(4), Write(5)],
            ),
        }
    }

    /// Number of storage buffers the kernel binds.
    pub fn buffers(self) -> usize {
        self.spec().2.len()
    }

    /// Binding numbers of the storage buffers, in the order ops pass them.
    pub fn binding(self, i: usize) -> u32 {
        match self.spec().2[i] {
            Read(b) | Write(b) => b,
        }
    }
}

/// A compiled kernel and the layout its bind groups follow.
pub struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// Every kernel's pipeline, indexed by [`Kernel`]'s position in [`Kernel::ALL`].
pub struct Pipelines(Vec<Pipeline>);

impl Pipelines {
    pub fn build(gpu: &Gpu) -> Result<Pipelines> {
        let mut modules = Vec::with_capacity(Module::ALL.len());
        for module in Module::ALL {
            let source = module.source();
            modules.push(
                gpu.scoped(wgpu::ErrorFilter::Validation, DeviceFault::ShaderRejected, || {
                    gpu.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(first_line(source)),
                        source: wgpu::ShaderSource::Wgsl(source.into()),
                    })
                })?,
            );
        }
        let mut pipelines = Vec::with_capacity(Kernel::ALL.len());
        for kernel in Kernel::ALL {
            let (module, entry, slots) = kernel.spec();
            let module = &modules[module as usize];
            let built = gpu.scoped(wgpu::ErrorFilter::Validation, DeviceFault::ShaderRejected, || {
                pipeline(&gpu.device, module, entry, slots)
            });
            pipelines.push(built.map_err(|e| match e {
                crate::KernelError::Device {
                    adapter,
                    fault,
                    message,
                } => crate::KernelError::Device {
                    adapter,
                    fault,
                    message: format!("kernel {entry}: {message}"),
                },
                other => other,
            })?);
        }
        Ok(Pipelines(pipelines))
    }

    pub fn get(&self, kernel: Kernel) -> &Pipeline {
        &self.0[kernel as usize]
    }
}

fn first_line(source: &str) -> &str {
    source.lines().next().unwrap_or("shader")
}

fn pipeline(device: &wgpu::Device, module: &wgpu::ShaderModule, entry: &str, slots: &[Slot]) -> Pipeline {
    let mut entries = vec![wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: true,
            min_binding_size: NonZeroU64::new(PARAMS_BYTES),
        },
        count: None,
    }];
    entries.extend(slots.iter().map(|slot| {
        let (binding, read_only) = match *slot {
            Read(b) => (b, true),
            Write(b) => (b, false),
        };
        wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }
    }));
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(entry),
        entries: &entries,
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(entry),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(entry),
        layout: Some(&pipeline_layout),
        module,
        entry_point: Some(entry),
        compilation_options: Default::default(),
        cache: None,
    });
    Pipeline { pipeline, layout }
}
