//! Pinning threads to CPU cores, so that a partition's pool stays on its cores (the stand-in
//! for a chip) and the motion loop keeps its own. Where the system refuses or cannot pin, the
//! reason comes back as text for the caller to report; nothing fails because of it.

/// Pins the calling thread to `core`.
#[cfg(target_os = "linux")]
pub fn pin_current_thread(core: usize) -> Result<usize, String> {
    if core >= libc::CPU_SETSIZE as usize {
        return Err(format!("core {core} is past CPU_SETSIZE"));
    }
    // SAFETY: cpu_set_t is plain data, zeroed is a valid empty set; CPU_SET stays inside it
    // because core < CPU_SETSIZE (checked above); sched_setaffinity reads exactly
    // size_of::<cpu_set_t>() bytes of it.
    let status = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    match status {
        0 => Ok(core),
        _ => Err(std::io::Error::last_os_error().to_string()),
    }
}

#[cfg(not(target_os = "linux"))]
pub fn pin_current_thread(_core: usize) -> Result<usize, String> {
    Err("core pinning is implemented for Linux only".into())
}
