//! The process's allocator and the CPU backend's activations. Every op returns a new tensor,
//! and a vision tower's or a prefill's are megabytes: glibc hands such blocks back to the
//! kernel when they are freed (above its mmap and trim thresholds), so the next op's block
//! comes back as fresh pages that fault in one at a time. On the 2-vCPU AMD VM of 2026-12-07
//! a repeated 1024 x 768 -> 3072 Q8_0 product took 24 ms, and 11 ms with freed memory kept
//! (`backend_matmul` in BENCHMARKS.md).
//! [`retain_freed_memory`] tells glibc to keep freed blocks in the process. It is
//! process-wide, so the program that embeds the backend decides; `brainstem` and the SmolVLA
//! benchmark call it at start. [`written_zeros`] is the zeroed buffer for kernels that add into
//! their output.

/// Keeps freed memory in the process (glibc's mmap and trim thresholds raised to 1 GiB), so
/// that large per-op buffers are reused instead of faulted in again. Returns whether the
/// allocator took the setting (false where the C library is not glibc).
pub fn retain_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const GIB: libc::c_int = 1 << 30;
        // SAFETY: mallopt only changes the allocator's thresholds; it is safe to call at any
        // time, and blocks already allocated are unaffected.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, GIB) == 1 && libc::mallopt(libc::M_TRIM_THRESHOLD, GIB) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// `len` zeros written into memory now. A zeroed allocation (`vec![0.0; len]`, calloc) of
/// fresh pages maps the kernel's shared zero page; a kernel that reads such a buffer before it
/// writes it (accumulating into its output) then takes a copy-on-write fault per page, and
/// each one flushes the TLB of every core running the process (an interprocessor interrupt):
/// 8% of a SmolVLA chunk's samples on the 2-vCPU AMD VM of 2026-12-07. Writing the zeros
/// first faults each page in once, without copies or flushes.
pub(crate) fn written_zeros(len: usize) -> Vec<f32> {
    let mut zeros = Vec::with_capacity(len);
    zeros.resize(len, 0.0);
    zeros
}
