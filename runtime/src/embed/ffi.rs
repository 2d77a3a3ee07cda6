//! The C ABI: a C or C++ robot stack embeds the runtime through these functions and the
//! header `runtime/include/brainstem.h` that cbindgen generates from them (a test keeps the
//! two in step). Every function checks its pointers and strings, catches panics at the
//! boundary, and reports failure by its return value with the reason available from
//! [`brainstem_last_error`] on the same thread. A runtime handle may be used from any thread;
//! only [`brainstem_runtime_free`] must not race the others.

use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr, CString};
use std::path::PathBuf;
use std::sync::Mutex;

use brainstem_models::image::RgbImage;

use crate::cerebellum::motion::{JointCommand, JointSink};
use crate::config::RuntimeConfig;
use crate::demo::demo_config;
use crate::embed::{Runtime, RuntimeOptions};

/// Called on the motion loop's thread once per control tick with every joint's command (in
/// the robot's joint order). It must return well within the control period and must not
/// block. `mode` is 0 idle, 1 following, 2 stopping, 3 holding.
pub type BrainstemJointCallback = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        tick: u64,
        time_ns: u64,
        mode: i32,
        positions: *const f64,
        velocities: *const f64,
        joints: usize,
    ),
>;

/// A running runtime, opaque to C.
pub struct BrainstemRuntime {
    runtime: Runtime,
    /// An event too large for the caller's buffer, kept for the next call.
    pending: Mutex<Option<CString>>,
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_error(message: impl Into<String>) {
    let text = message.into().replace('\0', " ");
    LAST_ERROR.with(|e| *e.borrow_mut() = CString::new(text).unwrap_or_default());
}

/// Runs `body`, turning an error or a panic into `failed` and the thread's last error.
fn boundary<T>(failed: T, body: impl FnOnce() -> Result<T, String>) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(Ok(value)) => value,
        Ok(Err(message)) => {
            set_error(message);
            failed
        }
        Err(_) => {
            set_error("brainstem panicked inside the call");
            failed
        }
    }
}

/// # Safety
/// `text` is null or a NUL-terminated string that outlives the call.
unsafe fn utf8<'a>(text: *const c_char, what: &str) -> Result<Option<&'a str>, String> {
    if text.is_null() {
        return Ok(None);
    }
    // SAFETY: non-null, and the caller promises NUL termination.
    let text = unsafe { CStr::from_ptr(text) };
    text.to_str().map(Some).map_err(|_| format!("{what} is not UTF-8"))
}

/// # Safety
/// `handle` is null or a pointer from [`brainstem_runtime_new`] not yet freed.
unsafe fn runtime<'a>(handle: *const BrainstemRuntime) -> Result<&'a BrainstemRuntime, String> {
    // SAFETY: the caller promises a live handle or null.
    unsafe { handle.as_ref() }.ok_or_else(|| "the runtime handle is null".to_string())
}

/// # Safety
/// As [`runtime`] and [`utf8`]; the text must not be null.
unsafe fn runtime_and_text<'a>(
    handle: *const BrainstemRuntime,
    text: *const c_char,
    what: &str,
) -> Result<(&'a BrainstemRuntime, &'a str), String> {
    // SAFETY: forwarded from this function's contract.
    let (handle, text) = unsafe { (runtime(handle)?, utf8(text, what)?) };
    Ok((handle, text.ok_or_else(|| format!("{what} is null"))?))
}

struct CallbackSink {
    callback: unsafe extern "C" fn(*mut c_void, u64, u64, i32, *const f64, *const f64, usize),
    user: *mut c_void,
}

// SAFETY: the embedder promises, by the documented contract of `BrainstemJointCallback`,
// that the callback and its `user` pointer may be used from the motion loop's thread.
unsafe impl Send for CallbackSink {}

impl JointSink for CallbackSink {
    fn send(&mut self, command: &JointCommand<'_>) {
        let mode = command.mode.code() as i32;
        // SAFETY: the slices are valid for `joints` values during the call.
        unsafe {
            (self.callback)(
                self.user,
                command.tick,
                command.time,
                mode,
                command.positions.as_ptr(),
                command.velocities.as_ptr(),
                command.positions.len(),
            )
        }
    }
}

/// Starts a runtime. `config_path` names a runtime configuration (TOML); when null, the
/// built-in demo runs, its generated checkpoint kept under `cache_dir` (null: the system's
/// temporary directory). `callback` receives every joint command. Returns null on failure.
///
/// # Safety
/// The strings are null or NUL-terminated; `callback` and `user` obey
/// [`BrainstemJointCallback`]'s contract until the runtime is freed.
#[no_mangle]
pub unsafe extern "C" fn brainstem_runtime_new(
    config_path: *const c_char,
    cache_dir: *const c_char,
    callback: BrainstemJointCallback,
    user: *mut c_void,
) -> *mut BrainstemRuntime {
    boundary(std::ptr::null_mut(), || {
        let callback = callback.ok_or("the joint callback is null")?;
        // SAFETY: forwarded from this function's contract.
        let (config_path, cache_dir) = unsafe { (utf8(config_path, "config_path")?, utf8(cache_dir, "cache_dir")?) };
        let config = match config_path {
            Some(path) => RuntimeConfig::from_file(&PathBuf::from(path)),
            None => demo_config(&cache_dir.map_or_else(std::env::temp_dir, PathBuf::from)),
        }
        .map_err(|e| e.to_string())?;
        let sink = Box::new(CallbackSink { callback, user });
        let runtime = Runtime::from_config(&config, sink, RuntimeOptions::default()).map_err(|e| e.to_string())?;
        Ok(Box::into_raw(Box::new(BrainstemRuntime {
            runtime,
            pending: Mutex::new(None),
        })))
    })
}

/// Stops the runtime (the motion loop last) and frees it. Null is ignored.
///
/// # Safety
/// `handle` is null or from [`brainstem_runtime_new`], and is not used again.
#[no_mangle]
pub unsafe extern "C" fn brainstem_runtime_free(handle: *mut BrainstemRuntime) {
    if !handle.is_null() {
        // SAFETY: the caller hands back ownership of a pointer from Box::into_raw.
        let handle = unsafe { Box::from_raw(handle) };
        boundary((), || handle.runtime.stop().map(|_| ()).map_err(|e| e.to_string()));
    }
}

/// The number of joints, which every state and command has. 0 on a null handle.
///
/// # Safety
/// `handle` is null or live.
#[no_mangle]
pub unsafe extern "C" fn brainstem_joint_count(handle: *const BrainstemRuntime) -> usize {
    // SAFETY: forwarded from this function's contract.
    boundary(0, || Ok(unsafe { runtime(handle) }?.runtime.joint_count()))
}

/// Pushes a camera frame of `width` x `height` RGB pixels (3 bytes each, row-major), for a
/// robot with one camera. Returns 0, or -1 with the reason in [`brainstem_last_error`].
///
/// # Safety
/// `handle` is live; `rgb` points to `width * height * 3` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn brainstem_push_frame_rgb(
    handle: *const BrainstemRuntime,
    rgb: *const u8,
    width: u32,
    height: u32,
) -> i32 {
    boundary(-1, || {
        // SAFETY: forwarded from this function's contract.
        let handle = unsafe { runtime(handle) }?;
        let len = (width as usize)
            .checked_mul(height as usize)
            .and_then(|n| n.checked_mul(3))
            .ok_or("the frame's size overflows")?;
        if rgb.is_null() {
            return Err("the pixel pointer is null".into());
        }
        // SAFETY: the caller promises `len` readable bytes at `rgb`.
        let pixels = unsafe { std::slice::from_raw_parts(rgb, len) }.to_vec();
        let image = RgbImage::new(width, height, pixels).map_err(|e| e.to_string())?;
        handle.runtime.push_frame(image).map_err(|e| e.to_string())?;
        Ok(0)
    })
}

/// Pushes the robot's measured joint positions, one per joint in the robot's order.
/// Returns 0, or -1 (a wrong count, a NaN ...) with the reason in [`brainstem_last_error`].
///
/// # Safety
/// `handle` is live; `positions` points to `count` readable doubles.
#[no_mangle]
pub unsafe extern "C" fn brainstem_push_state(
    handle: *const BrainstemRuntime,
    positions: *const f64,
    count: usize,
) -> i32 {
    boundary(-1, || {
        // SAFETY: forwarded from this function's contract.
        let handle = unsafe { runtime(handle) }?;
        if positions.is_null() {
            return Err("the positions pointer is null".into());
        }
        // SAFETY: the caller promises `count` readable doubles.
        let positions = unsafe { std::slice::from_raw_parts(positions, count) };
        handle.runtime.push_state(positions).map_err(|e| e.to_string())?;
        Ok(0)
    })
}

/// Sets what the robot should do. Returns 0, or -1 with the reason.
///
/// # Safety
/// `handle` is live; `text` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn brainstem_set_instruction(handle: *const BrainstemRuntime, text: *const c_char) -> i32 {
    boundary(-1, || {
        // SAFETY: forwarded from this function's contract.
        let (handle, text) = unsafe { runtime_and_text(handle, text, "the instruction") }?;
        handle.runtime.set_instruction(text).map_err(|e| e.to_string())?;
        Ok(0)
    })
}

/// Asks the VLM about the latest frame; returns the question's id (the answer event carries
/// it), or -1 with the reason.
///
/// # Safety
/// `handle` is live; `question` is NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn brainstem_ask(handle: *const BrainstemRuntime, question: *const c_char) -> i64 {
    boundary(-1, || {
        // SAFETY: forwarded from this function's contract.
        let (handle, question) = unsafe { runtime_and_text(handle, question, "the question") }?;
        let id = handle.runtime.ask(question).map_err(|e| e.to_string())?;
        i64::try_from(id).map_err(|_| "question ids ran out".to_string())
    })
}

/// Copies `text` and its NUL into `buffer` if `capacity` allows; returns the bytes it needs.
fn copy_out(text: &CString, buffer: *mut c_char, capacity: usize) -> usize {
    let bytes = text.as_bytes_with_nul();
    if !buffer.is_null() && capacity >= bytes.len() {
        // SAFETY: the caller of the public function promises `capacity` writable bytes.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr().cast(), buffer, bytes.len()) };
    }
    bytes.len()
}

/// Takes the next event (a plan, an answer, a finished chunk, a stage failure) as JSON into
/// `buffer`. Returns 0 when there is none, else the bytes the event needs with its NUL: when
/// that exceeds `capacity` nothing is written and the event waits for a larger buffer.
///
/// # Safety
/// `handle` is live; `buffer` is null or has `capacity` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn brainstem_next_event_json(
    handle: *const BrainstemRuntime,
    buffer: *mut c_char,
    capacity: usize,
) -> usize {
    boundary(0, || {
        // SAFETY: forwarded from this function's contract.
        let handle = unsafe { runtime(handle) }?;
        let mut pending = handle.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.is_none() {
            *pending = match handle.runtime.try_event() {
                Some(event) => Some(json_string(&event)?),
                None => return Ok(0),
            };
        }
        let needed = pending.as_ref().map_or(0, |text| copy_out(text, buffer, capacity));
        if needed <= capacity {
            *pending = None;
        }
        Ok(needed)
    })
}

/// Writes the telemetry so far as JSON into `buffer`; returns the bytes it needs with its
/// NUL (nothing is written when that exceeds `capacity`), or 0 on failure.
///
/// # Safety
/// `handle` is live; `buffer` is null or has `capacity` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn brainstem_telemetry_json(
    handle: *const BrainstemRuntime,
    buffer: *mut c_char,
    capacity: usize,
) -> usize {
    boundary(0, || {
        // SAFETY: forwarded from this function's contract.
        let handle = unsafe { runtime(handle) }?;
        let text = CString::new(handle.runtime.telemetry().to_json()).map_err(|e| e.to_string())?;
        Ok(copy_out(&text, buffer, capacity))
    })
}

fn json_string(value: &impl serde::Serialize) -> Result<CString, String> {
    let text = serde_json::to_string(value).map_err(|e| e.to_string())?;
    CString::new(text).map_err(|e| e.to_string())
}

/// The reason the calling thread's last failed call failed (empty if none). The pointer
/// stays valid until this thread's next failing call.
#[no_mangle]
pub extern "C" fn brainstem_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}
