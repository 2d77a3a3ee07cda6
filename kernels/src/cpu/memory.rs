//! The process's allocator and the CPU backend's activations. Every op returns a new tensor,
//! and a vision tower's or a prefill's are megabytes: glibc hands such blocks back to the
//! kernel when they are freed (above its mmap and trim thresholds), so the next op's block
//! comes back as fresh pages that fault in one at a time. On the 2-vCPU AMD VM of 2026-12-07
//! a repeated 1024 x 768 -> 3072 Q8_0 product took 24 ms, and 11 ms with freed memory kept
//! (`backend_matmul` in BENCHMARKS.md).
//! [`retain_freed_memory`] tells glibc to keep freed blocks in the process. It is
//! process-wide, so the program that embeds the backend decides; `brainstem` and the SmolVLA
//! benchmark call it at start.

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
