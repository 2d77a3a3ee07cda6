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
/// the robot's joint order): positions, velocities and accelerations. It must return well
/// within the control period and must not block. `mode` is 0 idle, 1 following, 2 stopping,
/// 3 holding. While the runtime waits for the robot's first measured state it is not called.
pub type BrainstemJointCallback = Option<
    unsafe extern "C" fn(
        user: *mut c_void,
        tick: u64,
        time_ns: u64,
        mode: i32,
        positions: *const f64,
        velocities: *const f64,
        accelerations: *const f64,
        joints: usize,
    ),
>;

/// One camera's frame: `width` x `height` RGB pixels, 3 bytes each, row-major.
#[repr(C)]
pub struct BrainstemImage {
    pub rgb: *const u8,
    pub width: u32,
    pub height: u32,
}

/// The largest frame side accepted, in pixels.
const MAX_FRAME_SIDE: u32 = 16_384;

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

/// # Safety
/// `values` is null or points to `count` readable doubles.
unsafe fn doubles<'a>(values: *const f64, count: usize, what: &str) -> Result<&'a [f64], String> {
    if values.is_null() {
        return Err(format!("the {what} pointer is null"));
    }
    if !values.is_aligned() {
        return Err(format!("the {what} pointer is not aligned to 8 bytes"));
    }
    if count > isize::MAX as usize / std::mem::size_of::<f64>() {
        return Err(format!("{count} {what} values overflow the address space"));
    }
    // SAFETY: non-null, aligned, and the caller promises `count` readable doubles.
    Ok(unsafe { std::slice::from_raw_parts(values, count) })
}

/// # Safety
/// As [`doubles`]; `values` must hold as many as the robot has joints.
unsafe fn joint_values<'a>(
    handle: &BrainstemRuntime,
    values: *const f64,
    count: usize,
    what: &str,
) -> Result<&'a [f64], String> {
    let joints = handle.runtime.joint_count();
    if count != joints {
        return Err(format!("expected {joints} {what} values, one per joint, found {count}"));
    }
    // SAFETY: forwarded from this function's contract.
    unsafe { doubles(values, count, what) }
}

/// # Safety
/// `image.rgb` points to `width * height * 3` readable bytes.
unsafe fn rgb_image(image: &BrainstemImage, camera: usize) -> Result<RgbImage, String> {
    let BrainstemImage { rgb, width, height } = *image;
    if rgb.is_null() {
        return Err(format!("camera {camera}'s pixel pointer is null"));
    }
    if width == 0 || height == 0 || width > MAX_FRAME_SIDE || height > MAX_FRAME_SIDE {
        return Err(format!(
            "camera {camera}'s frame is {width}x{height} pixels; each side must be 1 to {MAX_FRAME_SIDE}"
        ));
    }
    let len = width as usize * height as usize * 3;
    // SAFETY: the caller promises `len` readable bytes at `rgb`; u8 needs no alignment.
    let pixels = unsafe { std::slice::from_raw_parts(rgb, len) }.to_vec();
    RgbImage::new(width, height, pixels).map_err(|e| e.to_string())
}

type JointCallback = unsafe extern "C" fn(*mut c_void, u64, u64, i32, *const f64, *const f64, *const f64, usize);

struct CallbackSink {
    callback: JointCallback,
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
                command.accelerations.as_ptr(),
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
/// robot with one camera, captured now. Returns 0, or -1 with the reason in
/// [`brainstem_last_error`].
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
        // SAFETY: forwarded from this function's contract.
        let image = unsafe { rgb_image(&BrainstemImage { rgb, width, height }, 0) }?;
        handle.runtime.push_frame(image).map_err(|e| e.to_string())?;
        Ok(0)
    })
}

/// Pushes one frame from each of the robot's `count` cameras, in camera order, captured at
/// `captured_ns` on the runtime's clock ([`brainstem_now_ns`]). Returns 0, or -1 (a wrong
/// camera count, a capture time in the future or before the newest frame ...) with the
/// reason in [`brainstem_last_error`].
///
/// # Safety
/// `handle` is live; `views` points to `count` images whose pixels obey [`BrainstemImage`].
#[no_mangle]
pub unsafe extern "C" fn brainstem_push_frames_rgb(
    handle: *const BrainstemRuntime,
    views: *const BrainstemImage,
    count: usize,
    captured_ns: u64,
) -> i32 {
    boundary(-1, || {
        // SAFETY: forwarded from this function's contract.
        let handle = unsafe { runtime(handle) }?;
        let cameras = handle.runtime.camera_count();
        if count != cameras {
            return Err(format!("expected a view from each of {cameras} cameras, found {count}"));
        }
        if views.is_null() || !views.is_aligned() {
            return Err("the views pointer is null or misaligned".into());
        }
        // SAFETY: non-null, aligned, and the caller promises `count` images.
        let views = unsafe { std::slice::from_raw_parts(views, count) };
        let images = views
            .iter()
            .enumerate()
            // SAFETY: the caller promises each view's pixels.
            .map(|(camera, view)| unsafe { rgb_image(view, camera) })
            .collect::<Result<Vec<_>, _>>()?;
        handle
            .runtime
            .push_views_at(captured_ns, images)
            .map_err(|e| e.to_string())?;
        Ok(0)
    })
}

/// Pushes the robot's measured joint positions, one per joint in the robot's order, measured
/// now. Returns 0, or -1 (a wrong count, a NaN ...) with the reason in [`brainstem_last_error`].
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
        // SAFETY: forwarded from this function's contract.
        let positions = unsafe { joint_values(handle, positions, count, "position") }?;
        handle.runtime.push_state(positions).map_err(|e| e.to_string())?;
        Ok(0)
    })
}

/// Pushes the robot's measured joint state captured at `captured_ns` on the runtime's clock:
/// `count` positions and, unless `velocities` is null, `count` velocities, in the robot's
/// joint order. The motion decoder starts and restarts from it and tracks it. Returns 0, or
/// -1 with the reason in [`brainstem_last_error`].
///
/// # Safety
/// `handle` is live; `positions` (and `velocities`, unless null) point to `count` doubles.
#[no_mangle]
pub unsafe extern "C" fn brainstem_push_state_at(
    handle: *const BrainstemRuntime,
    captured_ns: u64,
    positions: *const f64,
    velocities: *const f64,
    count: usize,
) -> i32 {
    boundary(-1, || {
        // SAFETY: forwarded from this function's contract.
        let handle = unsafe { runtime(handle) }?;
        // SAFETY: forwarded from this function's contract.
        let positions = unsafe { joint_values(handle, positions, count, "position") }?;
        let velocities = match velocities.is_null() {
            true => None,
            // SAFETY: forwarded from this function's contract.
            false => Some(unsafe { joint_values(handle, velocities, count, "velocity") }?),
        };
        handle
            .runtime
            .push_state_at(captured_ns, positions, velocities)
            .map_err(|e| e.to_string())?;
        Ok(0)
    })
}

/// Nanoseconds on the runtime's clock, the clock of capture times. 0 on a null handle.
///
/// # Safety
/// `handle` is null or live.
#[no_mangle]
pub unsafe extern "C" fn brainstem_now_ns(handle: *const BrainstemRuntime) -> u64 {
    // SAFETY: forwarded from this function's contract.
    boundary(0, || Ok(unsafe { runtime(handle) }?.runtime.now()))
}

/// Brings the robot to a controlled stop and holds it until [`brainstem_resume`]; chunks are
/// dropped meanwhile. Returns 0, or -1 on a null handle.
///
/// # Safety
/// `handle` is null or live.
#[no_mangle]
pub unsafe extern "C" fn brainstem_pause(handle: *const BrainstemRuntime) -> i32 {
    // SAFETY: forwarded from this function's contract.
    boundary(-1, || unsafe { runtime(handle) }.map(|h| h.runtime.pause()).map(|_| 0))
}

/// Lets the next whole chunk move the robot again, from its measured state. Returns 0, or -1
/// on a null handle.
///
/// # Safety
/// `handle` is null or live.
#[no_mangle]
pub unsafe extern "C" fn brainstem_resume(handle: *const BrainstemRuntime) -> i32 {
    // SAFETY: forwarded from this function's contract.
    boundary(-1, || unsafe { runtime(handle) }.map(|h| h.runtime.resume()).map(|_| 0))
}

/// Stops the robot under control and holds it until the runtime is freed; nothing resumes it.
/// Returns 0, or -1 on a null handle.
///
/// # Safety
/// `handle` is null or live.
#[no_mangle]
pub unsafe extern "C" fn brainstem_emergency_stop(handle: *const BrainstemRuntime) -> i32 {
    // SAFETY: forwarded from this function's contract.
    boundary(-1, || {
        unsafe { runtime(handle) }
            .map(|h| h.runtime.emergency_stop())
            .map(|_| 0)
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

/// Copies `text` and its NUL into `buffer` if it is not null and `capacity` allows; returns
/// the bytes it needs, and whether it wrote them.
fn copy_out(text: &CString, buffer: *mut c_char, capacity: usize) -> (usize, bool) {
    let bytes = text.as_bytes_with_nul();
    let fits = !buffer.is_null() && capacity >= bytes.len();
    if fits {
        // SAFETY: the caller of the public function promises `capacity` writable bytes.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr().cast(), buffer, bytes.len()) };
    }
    (bytes.len(), fits)
}

/// Takes the next event (a plan, an answer, a finished chunk, a stale or fresh input, a stage
/// failure) as JSON into `buffer`. Returns 0 when there is none, else the bytes the event
/// needs with its NUL: when `buffer` is null or that exceeds `capacity` nothing is written
/// and the event waits for the next call.
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
        let (needed, written) = pending
            .as_ref()
            .map_or((0, false), |text| copy_out(text, buffer, capacity));
        if written {
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
        Ok(copy_out(&text, buffer, capacity).0)
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
