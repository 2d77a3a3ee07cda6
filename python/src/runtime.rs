//! `brainstem.Runtime`: the whole brain-cerebellum stack from Python, as the C ABI gives it to C:
//! a configuration loaded and started, camera frames and joint states pushed in, instructions
//! and questions given, events (plans, answers, chunks, stale inputs) and telemetry read out.
//! The motion decoder's commands go into a lock-free ring on the motion loop's thread (no
//! allocation, no lock, a full ring drops the command and counts it), and Python drains it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use brainstem_runtime::cerebellum::motion::{JointCommand, JointSink};
use brainstem_runtime::demo::demo_config;
use brainstem_runtime::models::image::RgbImage;
use brainstem_runtime::{Runtime as Stack, RuntimeConfig, RuntimeEvent, RuntimeOptions};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use rtrb::{Consumer, Producer, RingBuffer};

use crate::error::{to_py, BrainstemError};

/// Values in one command's record: tick, time, mode, then positions, velocities and
/// accelerations of every joint.
fn record_len(joints: usize) -> usize {
    3 + 3 * joints
}

/// How often `next_event` looks for an event while it waits.
const EVENT_POLL: Duration = Duration::from_millis(2);

/// Commands the ring holds: ten seconds at 1 kHz. When it is full (nobody reads), each new
/// command is dropped and counted.
const RING_COMMANDS: usize = 10_000;

/// The motion loop's end of the ring. Real-time: writes into the ring's free slots or, when
/// it is full (or the command is not the robot's length), counts a drop; never allocates,
/// locks or blocks.
struct RingSink {
    producer: Producer<f64>,
    /// The robot's joints: the length of every record the reader splits the ring into.
    joints: usize,
    dropped: Arc<AtomicU64>,
}

impl JointSink for RingSink {
    fn send(&mut self, command: &JointCommand<'_>) {
        let sized = [command.positions, command.velocities, command.accelerations]
            .iter()
            .all(|values| values.len() == self.joints);
        // A command of another length would misalign every record after it: dropped too.
        let chunk = match self.producer.write_chunk_uninit(record_len(self.joints)) {
            Ok(chunk) if sized => chunk,
            _ => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let header = [command.tick as f64, command.time as f64, f64::from(command.mode.code())];
        let values = header
            .into_iter()
            .chain(command.positions.iter().copied())
            .chain(command.velocities.iter().copied())
            .chain(command.accelerations.iter().copied());
        chunk.fill_from_iter(values);
    }
}

struct Commands {
    consumer: Consumer<f64>,
    joints: usize,
}

/// A running brainstem runtime.
#[pyclass(module = "brainstem", frozen)]
pub struct Runtime {
    /// Held only for the length of one runtime call, never while waiting or while taking
    /// the GIL: `next_event` polls instead of blocking inside, so a thread waiting for an
    /// event does not hold up one pushing frames.
    stack: Mutex<Option<Stack>>,
    commands: Mutex<Commands>,
    dropped: Arc<AtomicU64>,
}

fn stopped() -> PyErr {
    BrainstemError::new_err("the runtime is stopped")
}

/// An RGB frame from a `[H, W, 3]` uint8 array.
fn frame(value: &Bound<'_, PyAny>) -> PyResult<RgbImage> {
    let array: PyReadonlyArrayDyn<'_, u8> = value
        .extract()
        .map_err(|_| PyTypeError::new_err("a camera frame is a numpy uint8 array of shape [H, W, 3]"))?;
    let [height, width, 3] = array.shape() else {
        return Err(PyValueError::new_err(format!(
            "a camera frame is [H, W, 3] uint8, found shape {:?}",
            array.shape()
        )));
    };
    let pixels = match array.as_slice() {
        Ok(slice) => slice.to_vec(),
        Err(_) => array.as_array().iter().copied().collect(),
    };
    let side = |n: usize| u32::try_from(n).map_err(|_| PyValueError::new_err(format!("a frame side of {n} pixels")));
    RgbImage::new(side(*width)?, side(*height)?, pixels).map_err(to_py)
}

fn event_dict<'py>(py: Python<'py>, event: &RuntimeEvent) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(event).map_err(to_py)?;
    py.import("json")?.getattr("loads")?.call1((text,))
}

#[pymethods]
impl Runtime {
    /// Loads and starts a runtime from a TOML configuration file (`config`) or text (`toml`);
    /// with neither, the built-in demo robot, its tiny models made under `cache_dir`.
    #[new]
    #[pyo3(signature = (config=None, *, toml=None, cache_dir=None))]
    fn new(
        py: Python<'_>,
        config: Option<PathBuf>,
        toml: Option<String>,
        cache_dir: Option<PathBuf>,
    ) -> PyResult<Self> {
        py.detach(|| {
            let config = match (config, toml) {
                (Some(_), Some(_)) => return Err(PyValueError::new_err("give config or toml, not both")),
                (Some(path), None) => RuntimeConfig::from_file(&path),
                (None, Some(text)) => RuntimeConfig::from_toml(&text),
                (None, None) => demo_config(&cache_dir.unwrap_or_else(std::env::temp_dir)),
            }
            .map_err(to_py)?;
            let joints = config.robot().map_err(to_py)?.joints.len();
            let (producer, consumer) = RingBuffer::new(RING_COMMANDS * record_len(joints));
            let dropped = Arc::new(AtomicU64::new(0));
            let sink = Box::new(RingSink {
                producer,
                joints,
                dropped: dropped.clone(),
            });
            let stack = Stack::from_config(&config, sink, RuntimeOptions::default()).map_err(to_py)?;
            Ok(Self {
                stack: Mutex::new(Some(stack)),
                commands: Mutex::new(Commands { consumer, joints }),
                dropped,
            })
        })
    }

    /// The runtime's clock, in nanoseconds: what capture times are given on.
    fn now_ns(&self) -> PyResult<u64> {
        self.with(|s| Ok(s.now()))
    }

    /// One frame per camera (a `[H, W, 3]` uint8 array, or a list of them in camera order),
    /// captured now or at `captured_ns` on the runtime's clock. Returns the frame's number.
    #[pyo3(signature = (frames, captured_ns=None))]
    fn push_frame(&self, frames: &Bound<'_, PyAny>, captured_ns: Option<u64>) -> PyResult<u64> {
        let views = match frames.cast::<PyList>() {
            Ok(list) => list.iter().map(|f| frame(&f)).collect::<PyResult<Vec<_>>>()?,
            Err(_) => vec![frame(frames)?],
        };
        self.with(|s| {
            let captured = captured_ns.unwrap_or_else(|| s.now());
            s.push_views_at(captured, views).map_err(to_py)
        })
    }

    /// The robot's measured joint positions (and velocities), in the robot's joint order.
    #[pyo3(signature = (positions, velocities=None, captured_ns=None))]
    fn push_state(&self, positions: Vec<f64>, velocities: Option<Vec<f64>>, captured_ns: Option<u64>) -> PyResult<()> {
        self.with(|s| {
            let captured = captured_ns.unwrap_or_else(|| s.now());
            s.push_state_at(captured, &positions, velocities.as_deref())
                .map_err(to_py)
        })
    }

    fn set_instruction(&self, text: &str) -> PyResult<()> {
        self.with(|s| s.set_instruction(text).map_err(to_py))
    }

    /// Asks the VLM about the newest frame; the answer comes as an event with this number.
    fn ask(&self, question: &str) -> PyResult<u64> {
        self.with(|s| s.ask(question).map_err(to_py))
    }

    fn pause(&self) -> PyResult<()> {
        self.with(|s| {
            s.pause();
            Ok(())
        })
    }

    fn resume(&self) -> PyResult<()> {
        self.with(|s| {
            s.resume();
            Ok(())
        })
    }

    fn emergency_stop(&self) -> PyResult<()> {
        self.with(|s| {
            s.emergency_stop();
            Ok(())
        })
    }

    /// The next event as a dict (`{"Plan": {...}}`, `{"Answer": {...}}`, ...), or None;
    /// waits up to `timeout_s` seconds for one.
    #[pyo3(signature = (timeout_s=0.0))]
    fn next_event<'py>(&self, py: Python<'py>, timeout_s: f64) -> PyResult<Option<Bound<'py, PyAny>>> {
        if !(timeout_s.is_finite() && timeout_s >= 0.0) {
            return Err(PyValueError::new_err(format!(
                "timeout_s must be 0 or more, found {timeout_s}"
            )));
        }
        let deadline = Instant::now() + Duration::from_secs_f64(timeout_s);
        let event = py.detach(|| loop {
            let event = self.with(|s| Ok(s.try_event()))?;
            let now = Instant::now();
            if event.is_some() || now >= deadline {
                return Ok::<_, PyErr>(event);
            }
            std::thread::sleep(EVENT_POLL.min(deadline - now));
        })?;
        event.map(|e| event_dict(py, &e)).transpose()
    }

    /// The motion decoder's commands since the last call, as arrays: `tick`, `time_ns` and
    /// `mode` (`[n]`; mode 0 idle, 1 following, 2 stopping, 3 holding), `positions`,
    /// `velocities` and `accelerations` (`[n, joints]`), and `dropped` (commands the ring had
    /// no room for since the runtime started).
    fn commands<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let mut commands = lock(&self.commands);
        let joints = commands.joints;
        let len = record_len(joints);
        let records = commands.consumer.slots() / len;
        let chunk = commands
            .consumer
            .read_chunk(records * len)
            .map_err(|e| BrainstemError::new_err(e.to_string()))?;
        let (first, second) = chunk.as_slices();
        let values: Vec<f64> = first.iter().chain(second).copied().collect();
        chunk.commit_all();
        let column = |i: usize| values.chunks_exact(len).map(|r| r[i]).collect::<Vec<f64>>();
        let block = |start: usize| -> Vec<f64> {
            values
                .chunks_exact(len)
                .flat_map(|r| r[start..start + joints].iter().copied())
                .collect()
        };
        let out = PyDict::new(py);
        out.set_item(
            "tick",
            PyArray1::from_vec(py, column(0).into_iter().map(|v| v as u64).collect()),
        )?;
        out.set_item(
            "time_ns",
            PyArray1::from_vec(py, column(1).into_iter().map(|v| v as u64).collect()),
        )?;
        out.set_item(
            "mode",
            PyArray1::from_vec(py, column(2).into_iter().map(|v| v as u8).collect()),
        )?;
        for (name, start) in [
            ("positions", 3),
            ("velocities", 3 + joints),
            ("accelerations", 3 + 2 * joints),
        ] {
            out.set_item(name, PyArray1::from_vec(py, block(start)).reshape([records, joints])?)?;
        }
        out.set_item("dropped", self.dropped.load(Ordering::Relaxed))?;
        Ok(out)
    }

    #[getter]
    fn joint_count(&self) -> PyResult<usize> {
        self.with(|s| Ok(s.joint_count()))
    }

    #[getter]
    fn camera_count(&self) -> PyResult<usize> {
        self.with(|s| Ok(s.camera_count()))
    }

    /// The subtask the cerebellum is doing now, if a plan has given one.
    #[getter]
    fn subtask(&self) -> PyResult<Option<String>> {
        self.with(|s| Ok(s.subtask()))
    }

    /// Rates, latencies, the motion decoder's interventions and the partitions' work so far.
    fn telemetry<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let text = self.with(|s| Ok(s.telemetry().to_json()))?;
        py.import("json")?.getattr("loads")?.call1((text,))
    }

    /// Stops the runtime (the motion loop last) and returns the final telemetry. Later calls
    /// raise; stopping twice is allowed and returns None.
    fn stop<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(stack) = lock(&self.stack).take() else {
            return Ok(None);
        };
        let report = py.detach(|| stack.stop().map_err(to_py))?;
        py.import("json")?
            .getattr("loads")?
            .call1((report.to_json(),))
            .map(Some)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _kind: Option<&Bound<'_, PyAny>>,
        _value: Option<&Bound<'_, PyAny>>,
        _traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.stop(py)?;
        Ok(false)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Runtime {
    fn with<T>(&self, body: impl FnOnce(&Stack) -> PyResult<T>) -> PyResult<T> {
        match lock(&self.stack).as_ref() {
            Some(stack) => body(stack),
            None => Err(stopped()),
        }
    }
}
