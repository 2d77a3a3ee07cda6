//! The embedding API: what a robot stack calls. Build a [`Runtime`] from a configuration
//! (or a loaded [`Pipeline`]) and the robot's [`JointSink`]; push camera frames and joint
//! states as they come, stamped with when they were captured; set the instruction, ask
//! questions; pause, resume, or stop for good; read plans, answers, chunk completions, stale
//! inputs and stage failures as [`RuntimeEvent`]s; take telemetry at any time. The motion
//! loop drives the sink at the robot's control rate from its own thread whatever the models
//! do, and [`Runtime::stop`] brings everything down and returns the final report.
//! [`ffi`] is the same API as a C ABI.

pub mod ffi;

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use brainstem_models::image::RgbImage;

use crate::cerebellum::feedback::Feedback;
use crate::cerebellum::motion::{InterventionCounts, JointSink, LoopOptions, MotionLoop};
use crate::cerebellum::stream::action_stream;
use crate::clock::{Clock, Nanos, WallClock};
use crate::compute::partition::Partitions;
use crate::config::RuntimeConfig;
use crate::error::{Result, RuntimeError};
use crate::kernels::{Backend, LedgerSnapshot};
use crate::pipeline::loops::{self, Shared};
use crate::pipeline::observe::{Board, CommandedState, RecordingSink, RuntimeEvent};
use crate::pipeline::stages::Pipeline;
use crate::telemetry::{MotionSummary, TelemetryReport};

#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// The motion loop's core, real-time priority and memory locking, over the
    /// configuration's `[motion]` settings where given.
    pub motion: LoopOptions,
    /// Action-stream events in flight at most.
    pub stream_capacity: usize,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            motion: LoopOptions::default(),
            stream_capacity: 8192,
        }
    }
}

pub struct Runtime {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    motion: Option<MotionLoop>,
    events: Receiver<RuntimeEvent>,
    partitions: Arc<Partitions>,
    ledger_start: Vec<LedgerSnapshot>,
    started: Instant,
    joints: usize,
    cameras: usize,
}

impl Runtime {
    /// Loads the configuration's models and starts.
    pub fn from_config(config: &RuntimeConfig, sink: Box<dyn JointSink>, options: RuntimeOptions) -> Result<Self> {
        Self::start(Pipeline::load(config)?, sink, options)
    }

    /// Starts the motion loop and the model loops on the wall clock.
    pub fn start(pipeline: Pipeline, sink: Box<dyn JointSink>, options: RuntimeOptions) -> Result<Self> {
        let Pipeline {
            partitions,
            models,
            motion,
        } = pipeline;
        let joints = motion.robot.joints.len();
        let cameras = models.cameras;
        let (sender, receiver) = action_stream(options.stream_capacity);
        let feedback = Arc::new(Feedback::new(joints));
        let decoder = motion.decoder_with(receiver, &feedback)?;
        let commanded = Arc::new(CommandedState::new(decoder.home()));
        let (events_in, events) = mpsc::channel();
        let clock: Arc<dyn Clock> = Arc::new(WallClock::new());
        let shared = Arc::new(Shared {
            board: Mutex::new(Board::new(joints, cameras)),
            wake: Default::default(),
            stop: Default::default(),
            stages: Default::default(),
            clock: clock.clone(),
            events: Mutex::new(events_in),
            commanded: commanded.clone(),
            feedback,
        });
        let ledger_start = partitions.all().iter().map(|p| p.backend.ledger().snapshot()).collect();
        let sink = Box::new(RecordingSink { inner: sink, commanded });
        let loop_options = options.motion.or(&motion.loop_options);
        let motion = MotionLoop::spawn(decoder, clock, sink, loop_options)?;
        let mut runtime = Self {
            shared: shared.clone(),
            threads: Vec::new(),
            motion: Some(motion),
            events,
            partitions,
            ledger_start,
            started: Instant::now(),
            joints,
            cameras,
        };
        runtime.threads = loops::start(&shared, models, sender)?;
        Ok(runtime)
    }

    /// Nanoseconds on the runtime's clock (the time stamps of events and observations).
    pub fn now(&self) -> Nanos {
        self.shared.clock.now()
    }

    /// A camera frame taken now, for a robot with one camera; returns its sequence number.
    /// Only the newest frame is encoded: one the vision stage has not started on is replaced.
    pub fn push_frame(&self, image: RgbImage) -> Result<u64> {
        self.push_views(vec![image])
    }

    /// One frame from each camera, taken now, in camera order.
    pub fn push_views(&self, views: Vec<RgbImage>) -> Result<u64> {
        self.push_views_at(self.now(), views)
    }

    /// One frame from each camera, in camera order, captured at `captured` on the runtime's
    /// clock ([`Runtime::now`]): not in the future, and not before the newest frame.
    pub fn push_views_at(&self, captured: Nanos, views: Vec<RgbImage>) -> Result<u64> {
        self.check_capture_time(captured)?;
        let seq = self.shared.board().push_frame(captured, views)?;
        self.shared.feedback.publish_frame(captured);
        self.shared.wake.notify_all();
        Ok(seq)
    }

    /// Cameras on the robot: every frame has a view from each.
    pub fn camera_count(&self) -> usize {
        self.cameras
    }

    /// The robot's measured position of every joint, in the robot's joint order, measured
    /// now. Without one, the cerebellum reads the commanded positions.
    pub fn push_state(&self, positions: &[f64]) -> Result<()> {
        self.push_state_at(self.now(), positions, None)
    }

    /// The robot's measured joint state captured at `captured` on the runtime's clock: every
    /// joint's position and, where the robot reports them, velocities. The motion decoder
    /// starts and restarts from it and tracks it; a state not in the future, not older than
    /// the newest, one finite value per joint.
    pub fn push_state_at(&self, captured: Nanos, positions: &[f64], velocities: Option<&[f64]>) -> Result<()> {
        self.check_capture_time(captured)?;
        let mut board = self.shared.board();
        board.push_state(captured, positions, velocities)?;
        self.shared.feedback.publish_state(captured, positions, velocities);
        Ok(())
    }

    fn check_capture_time(&self, captured: Nanos) -> Result<()> {
        let now = self.now();
        match captured <= now {
            true => Ok(()),
            false => Err(RuntimeError::Observation(format!(
                "captured at {captured} ns, which is after the runtime's clock's now ({now} ns)"
            ))),
        }
    }

    /// Brings the robot to a controlled stop and holds it; chunks are dropped until
    /// [`Runtime::resume`].
    pub fn pause(&self) {
        self.shared.feedback.pause();
    }

    /// Lets the next whole chunk move the robot again, from its measured state.
    pub fn resume(&self) {
        self.shared.feedback.resume();
    }

    /// Stops the robot under control and holds it until the runtime is dropped; nothing
    /// resumes it.
    pub fn emergency_stop(&self) {
        self.shared.feedback.emergency_stop();
    }

    /// What the robot should do; the brain plans it at its next period.
    pub fn set_instruction(&self, text: &str) -> Result<()> {
        self.shared.board().set_instruction(text)
    }

    /// A question for the VLM about the latest frame; the answer comes as an event with the
    /// returned id.
    pub fn ask(&self, question: &str) -> Result<u64> {
        self.shared.board().ask(question)
    }

    /// The next event, if one is waiting.
    pub fn try_event(&self) -> Option<RuntimeEvent> {
        self.events.try_recv().ok()
    }

    /// The next event, waiting up to `timeout`.
    pub fn wait_event(&self, timeout: Duration) -> Option<RuntimeEvent> {
        self.events.recv_timeout(timeout).ok()
    }

    /// Joints in the robot (every state and command has one value per joint).
    pub fn joint_count(&self) -> usize {
        self.joints
    }

    /// The subtask the cerebellum is working on.
    pub fn subtask(&self) -> Option<String> {
        self.shared.board().current_subtask()
    }

    pub fn interventions(&self) -> InterventionCounts {
        self.motion.as_ref().map(|m| m.interventions()).unwrap_or_default()
    }

    /// Telemetry since the start: stage latencies, partition work, interventions.
    pub fn telemetry(&self) -> TelemetryReport {
        let work: Vec<_> = self
            .partitions
            .all()
            .iter()
            .zip(&self.ledger_start)
            .map(|(partition, start)| partition.backend.ledger().snapshot().since(start))
            .collect();
        let chips: Vec<_> = self
            .partitions
            .all()
            .iter()
            .map(|p| (p.name.as_str(), &p.chip))
            .collect();
        TelemetryReport::collect(
            self.started.elapsed(),
            &self.shared.stages,
            &chips,
            &work,
            self.interventions(),
        )
    }

    /// Stops every loop and returns the final telemetry, with the motion loop's timing.
    pub fn stop(mut self) -> Result<TelemetryReport> {
        self.halt_model_loops();
        let mut report = self.telemetry();
        if let Some(motion) = self.motion.take() {
            let motion = motion.stop()?;
            report.interventions = motion.interventions;
            report.motion = Some(MotionSummary::new(&motion));
        }
        Ok(report)
    }

    fn halt_model_loops(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake.notify_all();
        for thread in self.threads.drain(..) {
            // A loop thread only ends by returning: its stages run under catch_unwind.
            let _ = thread.join();
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.halt_model_loops();
        if let Some(motion) = self.motion.take() {
            let _ = motion.stop();
        }
    }
}
