//! The whole runtime on the virtual clock, deterministically, in one thread: a camera, the
//! vision, brain and cerebellum stages on their partitions, the action stream and the motion
//! decoder ticking at the robot's control rate. Every model call really runs (on the host),
//! and takes the time its partition's chip would need for the work it reported to the op
//! ledger (the chip profile's roofline); a partition runs one stage at a time, the most
//! urgent first (VLA, then vision, then brain), without preemption. Action tokens reach the
//! motion decoder at the virtual moment each was sampled. The same inputs give the same
//! commands and events, byte for byte, on any host. [`Simulation::replaying`] reuses each
//! stage kind's first call instead of recomputing it ([`replay`]), for fast sweeps; the
//! power timeline (`power.rs`) gives the peak draw. [`sweep`] runs it once per point of a
//! chip-budget sweep, which is what `brainstem bench` reports.

mod power;
pub mod replay;
pub mod sweep;

pub use power::PowerTimeline;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brainstem_models::image::RgbImage;

use crate::cerebellum::motion::{InterventionCounts, JointSink, MotionDecoder};
use crate::cerebellum::stream::{action_stream, ActionReceiver, ActionSender, StreamEvent};
use crate::clock::Nanos;
use crate::compute::chip::ChipProfile;
use crate::compute::partition::{Partitions, Stage};
use crate::error::{Result, RuntimeError};
use crate::kernels::{Backend, LedgerSnapshot};
use crate::pipeline::loops::{next_deadline, Cerebellum, ChunkOutcome, ANSWER, CHUNK, FIRST_ACTION, PLAN, VISION};
use crate::pipeline::observe::{guarded, Board, CommandedState, FrameEncodings, RuntimeEvent};
use crate::pipeline::stages::{Brain, MotionSetup, Pipeline, VisionStage};
use crate::simulate::replay::{Recorded, RecordedChunk, Replay};
use crate::telemetry::{StageLatencies, TelemetryReport};

/// Where frames come from: one view per camera of the robot, in camera order.
pub trait Camera: Send {
    fn capture(&mut self, time: Nanos) -> Vec<RgbImage>;
}

/// Something that becomes visible at a virtual time.
enum Completion {
    Encoded(u64, Nanos, FrameEncodings),
    Subtask(String),
    Event(RuntimeEvent),
}

pub struct Simulation {
    control_period: Nanos,
    vision: VisionStage,
    brain: Brain,
    cerebellum: Cerebellum,
    motion: MotionSetup,
    sink: Box<dyn JointSink>,
    partitions: Arc<Partitions>,
    /// The chip each partition stands for (the partitions' own unless restarted with others).
    chips: Vec<ChipProfile>,
    camera: Box<dyn Camera>,
    camera_period: Nanos,
    cameras: usize,
    brain_period: Nanos,
    replay: Option<Replay>,
    run: Run,
}

/// Everything a run changes, made anew by [`Simulation::restart`].
struct Run {
    now: Nanos,
    board: Mutex<Board>,
    commanded: CommandedState,
    /// The cerebellum's stream, re-timed here before it reaches the decoder's.
    from_policy: ActionReceiver,
    to_decoder: ActionSender,
    in_flight: VecDeque<(Nanos, StreamEvent)>,
    decoder: MotionDecoder,
    busy_until: Vec<Nanos>,
    completions: Vec<(Nanos, Completion)>,
    next_frame: Nanos,
    next_chunk: Nanos,
    next_brain: Nanos,
    /// When the last chunk and the last brain period ended: a loop does not start its next
    /// period's work before its last is done, so latency counts from the later of the two.
    chunk_done: Nanos,
    brain_done: Nanos,
    /// The newest frame sequence number handed to the vision stage.
    encoding: Option<u64>,
    stages: StageLatencies,
    events: Vec<RuntimeEvent>,
    /// The work each partition has done.
    work: Vec<LedgerSnapshot>,
    power: PowerTimeline,
}

impl Run {
    /// A run from time zero; returns it and the sender the cerebellum streams into.
    fn new(
        motion: &MotionSetup,
        partitions: usize,
        cameras: usize,
        chunk_period: Nanos,
        brain_period: Nanos,
    ) -> Result<(Self, ActionSender)> {
        let (to_decoder, receiver) = action_stream(1 << 16);
        let (sender, from_policy) = action_stream(1 << 16);
        let decoder = motion.decoder(receiver)?;
        let stages = StageLatencies::default();
        stages.set_deadline(CHUNK, Duration::from_nanos(chunk_period));
        stages.set_deadline(PLAN, Duration::from_nanos(brain_period));
        let run = Self {
            now: 0,
            board: Mutex::new(Board::new(motion.robot.joints.len(), cameras)),
            commanded: CommandedState::new(decoder.home()),
            from_policy,
            to_decoder,
            in_flight: VecDeque::new(),
            decoder,
            busy_until: vec![0; partitions],
            completions: Vec::new(),
            next_frame: 0,
            next_chunk: 0,
            next_brain: 0,
            chunk_done: 0,
            brain_done: 0,
            encoding: None,
            stages,
            events: Vec::new(),
            work: vec![LedgerSnapshot::default(); partitions],
            power: PowerTimeline::default(),
        };
        Ok((run, sender))
    }
}

impl Simulation {
    pub fn new(pipeline: Pipeline, sink: Box<dyn JointSink>, camera: Box<dyn Camera>, camera_hz: f64) -> Result<Self> {
        let Pipeline {
            partitions,
            models,
            motion,
        } = pipeline;
        let brain_period = (1e9 / models.brain.rate_hz()).round() as Nanos;
        let (run, sender) = Run::new(
            &motion,
            partitions.all().len(),
            models.cameras,
            models.chunk_period_ns,
            brain_period,
        )?;
        Ok(Self {
            control_period: motion.robot.control_period_ns(),
            vision: models.vision,
            brain: models.brain,
            cerebellum: Cerebellum {
                policy: models.policy,
                sender,
                joints: models.action_joints,
                task: models.vla_task,
                period_ns: models.chunk_period_ns,
                next_chunk: 0,
                last_outputs: Vec::new(),
                // The simulated robot follows its commands exactly: no input is watched.
                input_ages: None,
                stale: None,
                report: None,
            },
            motion,
            sink,
            chips: partitions.all().iter().map(|p| p.chip.clone()).collect(),
            partitions,
            camera,
            camera_period: (1e9 / camera_hz.max(1e-3)).round() as Nanos,
            cameras: models.cameras,
            brain_period,
            replay: None,
            run,
        })
    }

    /// Starts again from time zero with these chips standing for the partitions (in the
    /// partitions' order), keeping the models and what replay has recorded.
    pub fn restart(&mut self, chips: Vec<ChipProfile>) -> Result<()> {
        if chips.len() != self.chips.len() {
            return Err(RuntimeError::config(
                "chips",
                format!(
                    "{} partitions need as many chips, found {}",
                    self.chips.len(),
                    chips.len()
                ),
            ));
        }
        let (run, sender) = Run::new(
            &self.motion,
            chips.len(),
            self.cameras,
            self.cerebellum.period_ns,
            self.brain_period,
        )?;
        self.run = run;
        self.chips = chips;
        self.cerebellum.sender = sender;
        self.cerebellum.next_chunk = 0;
        Ok(())
    }

    /// Starts again from time zero with the robot resting at `positions` (one per joint,
    /// each clamped into its range), as a recorded episode starts where the robot stood.
    pub fn restart_at(&mut self, positions: &[f64]) -> Result<()> {
        for (joint, &position) in self.motion.robot.joints.iter_mut().zip(positions) {
            joint.home = Some(position.clamp(joint.min_position, joint.max_position));
        }
        self.restart(self.chips.clone())
    }

    /// The position last commanded to robot joint `joint`.
    pub fn commanded(&self, joint: usize) -> f64 {
        self.run.commanded.load(joint)
    }

    pub fn stage_latencies(&self) -> &StageLatencies {
        &self.run.stages
    }

    /// Reuses each stage kind's first successful call from now on (see [`replay`]).
    pub fn replaying(mut self) -> Self {
        self.replay = Some(Replay::default());
        self
    }

    pub fn now(&self) -> Nanos {
        self.run.now
    }

    pub fn board(&self) -> std::sync::MutexGuard<'_, Board> {
        self.run.board.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The events so far, oldest first; they are handed over once.
    pub fn take_events(&mut self) -> Vec<RuntimeEvent> {
        std::mem::take(&mut self.run.events)
    }

    pub fn interventions(&self) -> InterventionCounts {
        self.run.decoder.interventions().snapshot()
    }

    /// Runs control ticks until `end`.
    pub fn run_until(&mut self, end: Nanos) {
        while self.run.now < end {
            self.step();
            self.run.now += self.control_period;
        }
    }

    fn step(&mut self) {
        let now = self.run.now;
        if now >= self.run.next_frame {
            let views = self.camera.capture(now);
            let pushed = self.board().push_frame(now, views);
            if let Err(error) = pushed {
                let event = RuntimeEvent::failed(now, Stage::Vision, error.to_string());
                self.run.events.push(event);
            }
            self.run.next_frame += self.camera_period;
        }
        self.apply_completions();
        self.run_cerebellum();
        self.run_vision();
        self.run_brain();
        while self.run.in_flight.front().is_some_and(|(time, _)| *time <= now) {
            if let Some((_, event)) = self.run.in_flight.pop_front() {
                // The decoder drains up to max_events_per_tick per tick; the ring is sized
                // for whole seconds of tokens.
                let _ = self.run.to_decoder.relay(event);
            }
        }
        let command = self.run.decoder.tick(now);
        self.run.commanded.store(command.positions);
        self.sink.send(&command);
    }

    fn apply_completions(&mut self) {
        let now = self.run.now;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.run.completions)
            .into_iter()
            .partition(|(time, _)| *time <= now);
        self.run.completions = later;
        for (_, completion) in due {
            match completion {
                Completion::Encoded(seq, time, frame) => self.board().encoded = Some((seq, time, frame)),
                Completion::Subtask(subtask) => self.board().subtask = Some(subtask),
                Completion::Event(event) => self.run.events.push(event),
            }
        }
    }

    /// Index of the partition `stage` runs on, if it is free now.
    fn free_partition(&self, stage: Stage) -> Option<usize> {
        let name = &self.partitions.for_stage(stage).name;
        let index = self.partitions.all().iter().position(|p| &p.name == name)?;
        (self.run.busy_until[index] <= self.run.now).then_some(index)
    }

    /// Runs `job` on partition `index` from `start`, or replays the call `slot` recorded;
    /// returns its result and when it ends.
    fn occupy<T: Clone>(
        &mut self,
        index: usize,
        start: Nanos,
        slot: fn(&mut Replay) -> &mut Option<Recorded<T>>,
        job: impl FnOnce(&Self) -> std::result::Result<T, String>,
    ) -> (std::result::Result<T, String>, Nanos) {
        if let Some(recorded) = self.replay.as_mut().and_then(|r| slot(r).clone()) {
            let done = self.account(index, start, &recorded.work);
            return (Ok(recorded.output), done);
        }
        let ledger = self.partitions.all()[index].backend.ledger();
        let before = ledger.snapshot();
        let result = job(self);
        let work = ledger.snapshot().since(&before);
        if let (Some(replay), Ok(output)) = (self.replay.as_mut(), &result) {
            *slot(replay) = Some(Recorded {
                output: output.clone(),
                work: work.clone(),
            });
        }
        (result, self.account(index, start, &work))
    }

    /// Charges `work` to partition `index` from `start`; returns when it ends.
    fn account(&mut self, index: usize, start: Nanos, work: &LedgerSnapshot) -> Nanos {
        let chip = &self.chips[index];
        let done = start + chip.time(work).as_nanos() as Nanos;
        self.run.power.record(start, done, chip.dynamic_joules(work));
        self.run.work[index] = self.run.work[index].plus(work);
        self.run.busy_until[index] = done;
        done
    }

    fn run_vision(&mut self) {
        let Some(index) = self.free_partition(Stage::Vision) else {
            return;
        };
        let Some((seq, time, image)) = self.board().frame_to_encode() else {
            return;
        };
        if self.run.encoding.is_some_and(|s| s >= seq) {
            return;
        }
        self.run.encoding = Some(seq);
        let (result, done) = self.occupy(
            index,
            self.run.now,
            |r| &mut r.vision,
            |sim| guarded(|| sim.vision.encode(&image)),
        );
        match result {
            Ok(frame) => {
                self.run
                    .stages
                    .record(VISION, Duration::from_nanos(done - self.run.now));
                self.run.completions.push((done, Completion::Encoded(seq, time, frame)));
            }
            Err(message) => self.run.completions.push((
                done,
                Completion::Event(RuntimeEvent::failed(done, Stage::Vision, message)),
            )),
        }
    }

    /// Answers the waiting questions, then replans: one brain period's work.
    fn run_brain(&mut self) {
        if self.run.now < self.run.next_brain {
            return;
        }
        let (Some(vlm), Some(vlt)) = (self.free_partition(Stage::Vlm), self.free_partition(Stage::Vlt)) else {
            return;
        };
        let due = self.run.next_brain;
        let Some(inputs) = self.board().take_brain_inputs() else {
            // Nothing to plan from yet: the period starts when there is.
            self.run.next_brain = self.run.now + self.control_period;
            return;
        };
        let start = self.run.now;
        self.run.next_brain = next_deadline(due, start, self.brain_period);
        // Latency counts from when the brain wanted the chip, waiting for it included.
        let (mut cursor, mut from) = (start, due.max(self.run.brain_done));
        for (id, question) in inputs.questions {
            let (result, done) = self.occupy(
                vlm,
                cursor,
                |r| &mut r.answer,
                |sim| guarded(|| sim.brain.answer(&question, &inputs.frame)),
            );
            self.run.stages.record(ANSWER, Duration::from_nanos(done - from));
            let event = match result {
                Ok(text) => RuntimeEvent::Answer { time: done, id, text },
                Err(message) => RuntimeEvent::failed(done, Stage::Vlm, message),
            };
            self.run.completions.push((done, Completion::Event(event)));
            self.run.brain_done = done;
            if vlm == vlt {
                (cursor, from) = (done, done);
            }
        }
        let Some(instruction) = inputs.instruction else { return };
        let (result, done) = self.occupy(
            vlt,
            cursor,
            |r| &mut r.plan,
            |sim| guarded(|| sim.brain.plan(&instruction, &inputs.frame)),
        );
        self.run.brain_done = self.run.brain_done.max(done);
        match result {
            Ok(plan) => {
                self.run.stages.record(PLAN, Duration::from_nanos(done - from));
                let event = RuntimeEvent::plan(done, &instruction, &plan);
                if let RuntimeEvent::Plan { subtasks, .. } = &event {
                    if let Some(first) = subtasks.first() {
                        self.run.completions.push((done, Completion::Subtask(first.clone())));
                    }
                }
                self.run.completions.push((done, Completion::Event(event)));
            }
            Err(message) => self
                .run
                .completions
                .push((done, Completion::Event(RuntimeEvent::failed(done, Stage::Vlt, message)))),
        }
    }

    fn run_cerebellum(&mut self) {
        if self.run.now < self.run.next_chunk {
            return;
        }
        let Some(index) = self.free_partition(Stage::Vla) else {
            return;
        };
        let (due, start) = (self.run.next_chunk, self.run.now);
        let recorded = self.replay.as_ref().and_then(|r| r.chunk.clone());
        let chunk = match recorded {
            Some(recorded) => self.replay_chunk(start, recorded),
            None => self.sample_chunk(index, start),
        };
        let Some((outcome, work, work_at_token)) = chunk else {
            // No frame or subtask yet: the chunk's period starts when there is.
            self.run.next_chunk = self.run.now + self.control_period;
            return;
        };
        let done = self.account(index, start, &work);
        let chip = &self.chips[index];
        let token_times: Vec<Nanos> = work_at_token
            .iter()
            .map(|w| start + chip.time(w).as_nanos() as Nanos)
            .collect();
        // Latency counts from when the cerebellum wanted the chip (its period, once its last
        // chunk was done), waiting for another stage on the chip included.
        let wanted = due.max(self.run.chunk_done);
        self.run.chunk_done = done;
        self.run.next_chunk = next_deadline(due, start, self.cerebellum.period_ns);
        self.retime_stream(start, &token_times, done);
        if outcome.result.is_ok() {
            self.run.stages.record(CHUNK, Duration::from_nanos(done - wanted));
            if let Some(first) = token_times.first() {
                self.run
                    .stages
                    .record(FIRST_ACTION, Duration::from_nanos(first - wanted));
            }
        }
        self.run
            .completions
            .push((done, Completion::Event(outcome.into_event(done))));
    }

    /// Runs the policy for a chunk: its outcome, its work, and the work by each token.
    fn sample_chunk(
        &mut self,
        index: usize,
        start: Nanos,
    ) -> Option<(ChunkOutcome, LedgerSnapshot, Vec<LedgerSnapshot>)> {
        let ledger = self.partitions.all()[index].backend.ledger();
        let before = ledger.snapshot();
        let mut work_at_token = Vec::new();
        let outcome = self
            .cerebellum
            .chunk(&self.run.board, &self.run.commanded, start, |_| {
                work_at_token.push(ledger.snapshot().since(&before));
            })?;
        let work = ledger.snapshot().since(&before);
        if let (Some(replay), Ok(())) = (self.replay.as_mut(), &outcome.result) {
            replay.chunk = Some(RecordedChunk {
                outputs: self.cerebellum.last_outputs.clone(),
                work_at_token: work_at_token.clone(),
                work: work.clone(),
            });
        }
        Some((outcome, work, work_at_token))
    }

    /// Streams a recorded chunk again, as the policy would have.
    fn replay_chunk(
        &mut self,
        start: Nanos,
        recorded: RecordedChunk,
    ) -> Option<(ChunkOutcome, LedgerSnapshot, Vec<LedgerSnapshot>)> {
        let outcome = self
            .cerebellum
            .resend(&self.run.board, &self.run.commanded, start, &recorded.outputs)?;
        Some((outcome, recorded.work, recorded.work_at_token))
    }

    /// Moves the chunk's events from the policy's stream to the decoder's queue, each at the
    /// virtual time it was produced.
    fn retime_stream(&mut self, start: Nanos, token_times: &[Nanos], done: Nanos) {
        let mut tokens = token_times.iter();
        while let Some(event) = self.run.from_policy.pop() {
            let time = match event {
                StreamEvent::ChunkStart { .. } => start,
                StreamEvent::Token(_) | StreamEvent::Value(_) => tokens.next().copied().unwrap_or(done),
                StreamEvent::ChunkEnd { .. } | StreamEvent::Halt => done,
            };
            self.run.in_flight.push_back((time, event));
        }
    }

    /// Telemetry in virtual time.
    pub fn telemetry(&self) -> TelemetryReport {
        let chips: Vec<_> = self
            .partitions
            .all()
            .iter()
            .zip(&self.chips)
            .map(|(p, chip)| (p.name.as_str(), chip))
            .collect();
        TelemetryReport::collect(
            Duration::from_nanos(self.run.now.max(1)),
            &self.run.stages,
            &chips,
            &self.run.work,
            self.interventions(),
        )
    }

    /// The highest power the chips drew together at any moment, watts.
    pub fn peak_watts(&self) -> f64 {
        let idle: f64 = self.chips.iter().map(|chip| chip.idle_watts).sum();
        self.run.power.peak_watts(idle)
    }
}
