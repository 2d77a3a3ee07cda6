//! The whole runtime on the virtual clock, deterministically, in one thread: a camera, the
//! vision, brain and cerebellum stages on their partitions, the action stream and the motion
//! decoder ticking at the robot's control rate. Every model call really runs (on the host),
//! and takes the time its partition's chip would need for the work it reported to the op
//! ledger (the chip profile's roofline); a partition runs one stage at a time, the most
//! urgent first (VLA, then vision, then brain), without preemption. Action tokens reach the
//! motion decoder at the virtual moment each was sampled. The same inputs give the same
//! commands and events, byte for byte, on any host.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brainstem_models::image::RgbImage;
use brainstem_models::vlm::{EncodedFrame, Vlm};

use crate::clock::Nanos;
use crate::error::Result;
use crate::kernels::{Backend, CpuBackend, LedgerSnapshot};
use crate::loops::{Cerebellum, ANSWER, CHUNK, FIRST_ACTION, PLAN, VISION};
use crate::motion::{InterventionCounts, JointSink, MotionDecoder};
use crate::observe::{guarded, Board, CommandedState, RuntimeEvent};
use crate::partition::{Partition, Partitions, Stage};
use crate::stages::{Brain, Pipeline};
use crate::stream::{action_stream, ActionReceiver, ActionSender, StreamEvent};
use crate::telemetry::{StageLatencies, TelemetryReport};

/// Where simulated frames come from.
pub trait Camera: Send {
    fn capture(&mut self, time: Nanos) -> RgbImage;
}

/// Something that becomes visible at a virtual time.
enum Completion {
    Encoded(u64, Nanos, Arc<EncodedFrame>),
    Subtask(String),
    Event(RuntimeEvent),
}

pub struct Simulation {
    now: Nanos,
    control_period: Nanos,
    board: Mutex<Board>,
    commanded: CommandedState,
    vision: Arc<Vlm<CpuBackend>>,
    brain: Brain,
    cerebellum: Cerebellum,
    /// The cerebellum's stream, re-timed here before it reaches the decoder's.
    from_policy: ActionReceiver,
    to_decoder: ActionSender,
    in_flight: VecDeque<(Nanos, StreamEvent)>,
    decoder: MotionDecoder,
    sink: Box<dyn JointSink>,
    partitions: Arc<Partitions>,
    busy_until: Vec<Nanos>,
    completions: Vec<(Nanos, Completion)>,
    camera: Box<dyn Camera>,
    camera_period: Nanos,
    next_frame: Nanos,
    next_chunk: Nanos,
    next_brain: Nanos,
    brain_period: Nanos,
    /// The newest frame sequence number handed to the vision stage.
    encoding: Option<u64>,
    stages: StageLatencies,
    events: Vec<RuntimeEvent>,
    ledger_start: Vec<LedgerSnapshot>,
}

impl Simulation {
    pub fn new(pipeline: Pipeline, sink: Box<dyn JointSink>, camera: Box<dyn Camera>, camera_hz: f64) -> Result<Self> {
        let Pipeline {
            partitions,
            models,
            motion,
        } = pipeline;
        let control_period = motion.robot.control_period_ns();
        let (to_decoder, receiver) = action_stream(1 << 16);
        let (sender, from_policy) = action_stream(1 << 16);
        let decoder = motion.decoder(receiver)?;
        let stages = StageLatencies::default();
        stages.set_deadline(CHUNK, Duration::from_nanos(models.chunk_period_ns));
        let brain_period = (1e9 / models.brain.rate_hz()).round() as Nanos;
        stages.set_deadline(PLAN, Duration::from_nanos(brain_period));
        Ok(Self {
            now: 0,
            control_period,
            board: Mutex::new(Board::default()),
            commanded: CommandedState::new(decoder.home()),
            vision: models.vision,
            brain: models.brain,
            cerebellum: Cerebellum {
                policy: models.policy,
                sender,
                joints: models.action_joints,
                period_ns: models.chunk_period_ns,
                next_chunk: 0,
            },
            from_policy,
            to_decoder,
            in_flight: VecDeque::new(),
            decoder,
            sink,
            busy_until: vec![0; partitions.all().len()],
            ledger_start: partitions.all().iter().map(|p| p.backend.ledger().snapshot()).collect(),
            partitions,
            completions: Vec::new(),
            camera,
            camera_period: (1e9 / camera_hz.max(1e-3)).round() as Nanos,
            next_frame: 0,
            next_chunk: 0,
            next_brain: 0,
            brain_period,
            encoding: None,
            stages,
            events: Vec::new(),
        })
    }

    pub fn now(&self) -> Nanos {
        self.now
    }

    pub fn board(&self) -> std::sync::MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The events so far, oldest first; they are handed over once.
    pub fn take_events(&mut self) -> Vec<RuntimeEvent> {
        std::mem::take(&mut self.events)
    }

    pub fn interventions(&self) -> InterventionCounts {
        self.decoder.interventions().snapshot()
    }

    /// Runs control ticks until `end`.
    pub fn run_until(&mut self, end: Nanos) {
        while self.now < end {
            self.step();
            self.now += self.control_period;
        }
    }

    fn step(&mut self) {
        let now = self.now;
        if now >= self.next_frame {
            let image = self.camera.capture(now);
            // A camera's frames are never empty; if one were, it is skipped like a dropped frame.
            let _ = self.board().push_frame(now, image);
            self.next_frame += self.camera_period;
        }
        self.apply_completions();
        self.run_cerebellum();
        self.run_vision();
        self.run_brain();
        while self.in_flight.front().is_some_and(|(time, _)| *time <= now) {
            if let Some((_, event)) = self.in_flight.pop_front() {
                // The decoder drains up to max_events_per_tick per tick; the ring is sized
                // for whole seconds of tokens.
                let _ = self.to_decoder.send(event);
            }
        }
        let command = self.decoder.tick(now);
        self.commanded.store(command.positions);
        self.sink.send(&command);
    }

    fn apply_completions(&mut self) {
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.completions)
            .into_iter()
            .partition(|(time, _)| *time <= now);
        self.completions = later;
        for (_, completion) in due {
            match completion {
                Completion::Encoded(seq, time, frame) => self.board().encoded = Some((seq, time, frame)),
                Completion::Subtask(subtask) => self.board().subtask = Some(subtask),
                Completion::Event(event) => self.events.push(event),
            }
        }
    }

    /// Index of the partition `stage` runs on, if it is free now.
    fn free_partition(&self, stage: Stage) -> Option<usize> {
        let name = &self.partitions.for_stage(stage).name;
        let index = self.partitions.all().iter().position(|p| &p.name == name)?;
        (self.busy_until[index] <= self.now).then_some(index)
    }

    /// Runs `job` on partition `index` from `start`; returns its result and when it ends.
    fn occupy<T>(&mut self, index: usize, start: Nanos, job: impl FnOnce(&Self) -> T) -> (T, Nanos) {
        let partition = &self.partitions.all()[index];
        let before = partition.backend.ledger().snapshot();
        let result = job(self);
        let done = start + chip_time(partition, &before);
        self.busy_until[index] = done;
        (result, done)
    }

    fn run_vision(&mut self) {
        let Some(index) = self.free_partition(Stage::Vision) else {
            return;
        };
        let Some((seq, time, image)) = self.board().frame_to_encode() else {
            return;
        };
        if self.encoding.is_some_and(|s| s >= seq) {
            return;
        }
        self.encoding = Some(seq);
        let (result, done) = self.occupy(index, self.now, |sim| {
            guarded(|| Ok(sim.vision.encode_frame(&image)?))
        });
        match result {
            Ok(frame) => {
                self.stages.record(VISION, Duration::from_nanos(done - self.now));
                self.completions
                    .push((done, Completion::Encoded(seq, time, Arc::new(frame))));
            }
            Err(message) => self.completions.push((
                done,
                Completion::Event(RuntimeEvent::failed(done, Stage::Vision, message)),
            )),
        }
    }

    /// Answers the waiting questions, then replans: one brain period's work.
    fn run_brain(&mut self) {
        if self.now < self.next_brain {
            return;
        }
        let (Some(vlm), Some(vlt)) = (self.free_partition(Stage::Vlm), self.free_partition(Stage::Vlt)) else {
            return;
        };
        let due = self.next_brain;
        let Some(inputs) = self.board().take_brain_inputs() else {
            return;
        };
        self.next_brain = next_slot(due, self.brain_period, self.now);
        let mut cursor = self.now;
        for (id, question) in inputs.questions {
            let (result, done) = self.occupy(vlm, cursor, |sim| {
                guarded(|| sim.brain.answer(&question, &inputs.frame))
            });
            self.stages.record(ANSWER, Duration::from_nanos(done - cursor));
            let event = match result {
                Ok(text) => RuntimeEvent::Answer { time: done, id, text },
                Err(message) => RuntimeEvent::failed(done, Stage::Vlm, message),
            };
            self.completions.push((done, Completion::Event(event)));
            cursor = if vlm == vlt { done } else { cursor };
        }
        let Some(instruction) = inputs.instruction else { return };
        let (result, done) = self.occupy(vlt, cursor, |sim| {
            guarded(|| sim.brain.plan(&instruction, &inputs.frame))
        });
        match result {
            Ok(plan) => {
                self.stages.record(PLAN, Duration::from_nanos(done - cursor));
                let event = RuntimeEvent::plan(done, &instruction, &plan);
                if let RuntimeEvent::Plan { subtasks, .. } = &event {
                    if let Some(first) = subtasks.first() {
                        self.completions.push((done, Completion::Subtask(first.clone())));
                    }
                }
                self.completions.push((done, Completion::Event(event)));
            }
            Err(message) => self
                .completions
                .push((done, Completion::Event(RuntimeEvent::failed(done, Stage::Vlt, message)))),
        }
    }

    fn run_cerebellum(&mut self) {
        if self.now < self.next_chunk {
            return;
        }
        let Some(index) = self.free_partition(Stage::Vla) else {
            return;
        };
        let due = self.next_chunk;
        let start = self.now;
        let partition = &self.partitions.all()[index];
        let before = partition.backend.ledger().snapshot();
        let mut token_times = Vec::new();
        let outcome = self.cerebellum.chunk(&self.board, &self.commanded, start, |_| {
            token_times.push(start + chip_time(partition, &before));
        });
        let Some(outcome) = outcome else { return };
        let done = start + chip_time(partition, &before);
        self.busy_until[index] = done;
        self.next_chunk = next_slot(due, self.cerebellum.period_ns, self.now);
        self.retime_stream(start, &token_times, done);
        if outcome.result.is_ok() {
            self.stages.record(CHUNK, Duration::from_nanos(done - due));
            if let Some(first) = token_times.first() {
                self.stages.record(FIRST_ACTION, Duration::from_nanos(first - due));
            }
        }
        self.completions
            .push((done, Completion::Event(outcome.into_event(done))));
    }

    /// Moves the chunk's events from the policy's stream to the decoder's queue, each at the
    /// virtual time it was produced.
    fn retime_stream(&mut self, start: Nanos, token_times: &[Nanos], done: Nanos) {
        let mut tokens = token_times.iter();
        while let Some(event) = self.from_policy.pop() {
            let time = match event {
                StreamEvent::ChunkStart { .. } => start,
                StreamEvent::Token(_) | StreamEvent::Value(_) => tokens.next().copied().unwrap_or(done),
                StreamEvent::ChunkEnd | StreamEvent::Halt => done,
            };
            self.in_flight.push_back((time, event));
        }
    }

    /// Telemetry in virtual time.
    pub fn telemetry(&self) -> TelemetryReport {
        TelemetryReport::collect(
            Duration::from_nanos(self.now.max(1)),
            &self.stages,
            &self.partitions,
            &self.ledger_start,
            self.interventions(),
        )
    }
}

/// The time `partition`'s chip takes for the work its ledger recorded since `before`.
fn chip_time(partition: &Partition, before: &LedgerSnapshot) -> Nanos {
    let work = partition.backend.ledger().snapshot().since(before);
    partition.chip.time(&work).as_nanos() as Nanos
}

/// The next period boundary after `due` that is not in the past at `now`.
fn next_slot(due: Nanos, period: Nanos, now: Nanos) -> Nanos {
    let next = due + period;
    if next > now {
        next
    } else {
        now + period - (now - due) % period
    }
}
