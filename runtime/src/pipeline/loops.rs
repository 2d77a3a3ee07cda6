//! The model loops on the wall clock, one thread each: the vision stage encodes each new
//! camera frame once; the brain answers and replans at its rate; the cerebellum starts a
//! chunk every chunk period and pushes each action token into the stream the moment it is
//! sampled. Each stage's model runs on its partition's pool (pinned, at the partition's
//! priority), so the brain's work cannot take the cerebellum's cores when placement keeps
//! them apart. A stage that fails or panics is reported and retried next period; a failed
//! VLA also halts the motion decoder, which stops the robot under control.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cerebellum::feedback::{Feedback, FeedbackLimits};
use crate::cerebellum::stream::ActionSender;
use crate::clock::{Clock, Nanos};
use crate::compute::partition::Stage;
use crate::config::VlaTask;
use crate::error::{Result, RuntimeError};
use crate::pipeline::observe::{guarded, Board, CerebellumInputs, CommandedState, RuntimeEvent};
use crate::pipeline::stages::{ActRequest, ActionOutput, ActionPolicy, Brain, ModelStages, VisionStage};
use crate::telemetry::StageLatencies;

/// Stage names in the telemetry.
pub const VISION: &str = "vision_encode";
pub const PLAN: &str = "vlt_plan";
pub const ANSWER: &str = "vlm_answer";
pub const CHUNK: &str = "vla_chunk";
pub const FIRST_ACTION: &str = "vla_first_action";

/// What the loops share with each other and with the embedder.
pub(crate) struct Shared {
    pub board: Mutex<Board>,
    /// Signalled on a new frame, a new encoding and on stop.
    pub wake: Condvar,
    pub stop: AtomicBool,
    pub stages: StageLatencies,
    pub clock: Arc<dyn Clock>,
    pub events: Mutex<Sender<RuntimeEvent>>,
    pub commanded: Arc<CommandedState>,
    /// The lock-free link to the motion decoder: measured state, frame times, operator.
    pub feedback: Arc<Feedback>,
}

impl Shared {
    pub fn board(&self) -> MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn emit(&self, event: RuntimeEvent) {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        // The embedder may have dropped its receiver; the loops go on regardless.
        let _ = events.send(event);
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Waits until `deadline` on the shared clock, waking early on stop. False when stopping.
    fn wait_until(&self, deadline: Nanos) -> bool {
        let mut board = self.board();
        loop {
            if self.stopping() {
                return false;
            }
            let now = self.clock.now();
            if now >= deadline {
                return true;
            }
            let timeout = Duration::from_nanos(deadline - now);
            board = self
                .wake
                .wait_timeout(board, timeout)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// How soon a loop looks again when it had nothing to work on (no frame encoded yet, no
/// instruction).
const INPUT_POLL_NS: Nanos = 10_000_000;

/// The period boundary after `deadline`, or the next one from `now` when the work ran over.
pub(crate) fn next_deadline(deadline: Nanos, now: Nanos, period: Nanos) -> Nanos {
    deadline.max(now.saturating_sub(period)) + period
}

fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(body)
        .map_err(|e| RuntimeError::Thread(e.to_string()))
}

/// Starts the vision, brain and cerebellum threads.
pub(crate) fn start(shared: &Arc<Shared>, models: ModelStages, sender: ActionSender) -> Result<Vec<JoinHandle<()>>> {
    let ModelStages {
        vision,
        brain,
        policy,
        action_joints,
        vla_task,
        chunk_period_ns,
        input_ages,
        ..
    } = models;
    shared.stages.set_deadline(CHUNK, Duration::from_nanos(chunk_period_ns));
    shared
        .stages
        .set_deadline(PLAN, Duration::from_secs_f64(1.0 / brain.rate_hz()));
    let cerebellum = Cerebellum {
        policy,
        sender,
        joints: action_joints,
        task: vla_task,
        period_ns: chunk_period_ns,
        next_chunk: 0,
        last_outputs: Vec::new(),
        input_ages,
        stale: None,
        report: None,
    };
    let (s1, s2, s3) = (shared.clone(), shared.clone(), shared.clone());
    Ok(vec![
        spawn("brainstem-vision", move || vision_loop(&s1, &vision))?,
        spawn("brainstem-brain", move || brain_loop(&s2, &brain))?,
        spawn("brainstem-cerebellum", move || cerebellum.run(&s3))?,
    ])
}

fn vision_loop(shared: &Shared, vision: &VisionStage) {
    loop {
        let job = {
            let mut board = shared.board();
            loop {
                if shared.stopping() {
                    return;
                }
                if let Some(job) = board.frame_to_encode() {
                    break job;
                }
                board = shared.wake.wait(board).unwrap_or_else(|e| e.into_inner());
            }
        };
        let (seq, time, image) = job;
        let started = Instant::now();
        match guarded(|| vision.encode(&image)) {
            Ok(encoded) => {
                shared.stages.record(VISION, started.elapsed());
                shared.board().encoded = Some((seq, time, encoded));
                shared.wake.notify_all();
            }
            Err(message) => {
                // Mark the frame as handled so a bad frame is not retried forever.
                shared.emit(RuntimeEvent::failed(shared.clock.now(), Stage::Vision, message));
                let mut board = shared.board();
                if board.frame.as_ref().is_some_and(|(s, ..)| *s == seq) {
                    board.frame = None;
                }
            }
        }
    }
}

fn brain_loop(shared: &Shared, brain: &Brain) {
    let period = (1e9 / brain.rate_hz()) as Nanos;
    let mut deadline = shared.clock.now();
    while shared.wait_until(deadline) {
        let Some(inputs) = shared.board().take_brain_inputs() else {
            deadline = shared.clock.now() + INPUT_POLL_NS;
            continue;
        };
        deadline = next_deadline(deadline, shared.clock.now(), period);
        for (id, question) in inputs.questions {
            let started = Instant::now();
            match guarded(|| brain.answer(&question, &inputs.frame)) {
                Ok(text) => {
                    shared.stages.record(ANSWER, started.elapsed());
                    shared.emit(RuntimeEvent::Answer {
                        time: shared.clock.now(),
                        id,
                        text,
                    });
                }
                Err(message) => shared.emit(RuntimeEvent::failed(shared.clock.now(), Stage::Vlm, message)),
            }
        }
        let Some(instruction) = inputs.instruction else {
            continue;
        };
        let started = Instant::now();
        match guarded(|| brain.plan(&instruction, &inputs.frame)) {
            Ok(plan) => {
                shared.stages.record(PLAN, started.elapsed());
                let event = RuntimeEvent::plan(shared.clock.now(), &instruction, &plan);
                if let RuntimeEvent::Plan { subtasks, .. } = &event {
                    shared.board().subtask = subtasks.first().cloned();
                }
                shared.emit(event);
            }
            Err(message) => shared.emit(RuntimeEvent::failed(shared.clock.now(), Stage::Vlt, message)),
        }
    }
}

/// The cerebellum: the policy, the stream into the motion decoder, and its chunk clock.
pub(crate) struct Cerebellum {
    pub policy: Box<dyn ActionPolicy>,
    pub sender: ActionSender,
    /// The robot joints the policy drives (and reads the state of).
    pub joints: Vec<usize>,
    /// Whether a chunk is conditioned on the subtask or the instruction.
    pub task: VlaTask,
    pub period_ns: Nanos,
    pub next_chunk: u64,
    /// The tokens or values of the last chunk.
    pub last_outputs: Vec<ActionOutput>,
    /// How old a chunk's inputs may be; `None` when the robot reports no state.
    pub input_ages: Option<FeedbackLimits>,
    /// The input that is stale now, if one is.
    pub stale: Option<&'static str>,
    /// An input going stale or fresh again, to tell the embedder.
    pub report: Option<RuntimeEvent>,
}

/// One chunk's outcome.
pub(crate) struct ChunkOutcome {
    pub chunk_id: u64,
    pub subtask: String,
    pub tokens: usize,
    pub result: std::result::Result<(), String>,
}

impl Cerebellum {
    /// The inputs of the next chunk at `now` and its number, once there is a frame and a
    /// subtask, and the frame and joint state are fresh enough.
    fn next_chunk_inputs(
        &mut self,
        board: &Mutex<Board>,
        commanded: &CommandedState,
        now: Nanos,
    ) -> Option<(CerebellumInputs, u64)> {
        let inputs =
            board
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .cerebellum_inputs(&self.joints, commanded, self.task)?;
        let stale = self.stale_input(&inputs, now);
        if stale.map(|(input, _)| input) != self.stale {
            self.stale = stale.map(|(input, _)| input);
            self.report = Some(match stale {
                Some((input, age)) => RuntimeEvent::InputStale {
                    time: now,
                    input,
                    age_ms: age.map(|ns| ns as f64 * 1e-6),
                },
                None => RuntimeEvent::InputFresh { time: now },
            });
        }
        if stale.is_some() {
            return None;
        }
        self.next_chunk += 1;
        Some((inputs, self.next_chunk - 1))
    }

    /// The input too old to start a chunk on, with its age (`None`: never measured).
    fn stale_input(&self, inputs: &CerebellumInputs, now: Nanos) -> Option<(&'static str, Option<Nanos>)> {
        let limits = self.input_ages?;
        let frame = match self.policy.starts_at_observation() {
            true => inputs.captured,
            false => inputs.encoded_captured,
        };
        let frame_age = now.saturating_sub(frame);
        if limits.max_frame_age_ns.is_some_and(|max| frame_age > max) {
            return Some(("camera", Some(frame_age)));
        }
        match inputs.state_captured.map(|captured| now.saturating_sub(captured)) {
            Some(age) if age <= limits.max_state_age_ns => None,
            age => Some(("joint_state", age)),
        }
    }

    /// Samples one chunk starting at `start` (or at its observation's capture, for a policy
    /// that says so) and streams it; `on_token` sees each token or value as it is sent. A
    /// failure halts the motion decoder.
    pub fn chunk(
        &mut self,
        board: &Mutex<Board>,
        commanded: &CommandedState,
        start: Nanos,
        mut on_token: impl FnMut(usize),
    ) -> Option<ChunkOutcome> {
        let (inputs, chunk_id) = self.next_chunk_inputs(board, commanded, start)?;
        self.last_outputs.clear();
        let request = ActRequest {
            frame: &inputs.frame,
            views: &inputs.views,
            captured: inputs.captured,
            subtask: &inputs.subtask,
            state: &inputs.state,
            chunk_id,
        };
        let start = match self.policy.starts_at_observation() {
            true => inputs.captured.min(start),
            false => start,
        };
        // A full stream means the motion decoder has stopped draining it: the chunk arrives
        // incomplete and the decoder's framing rejects it, so there is nothing to retry.
        let _ = self.sender.begin_chunk(chunk_id, start);
        let (sender, policy, sent) = (&mut self.sender, &mut self.policy, &mut self.last_outputs);
        let result = guarded(|| {
            policy.act(&request, &mut |output| {
                let _ = match output {
                    ActionOutput::Token(token) => sender.token(token),
                    ActionOutput::Value(value) => sender.value(value),
                };
                sent.push(output);
                on_token(sent.len());
            })
        });
        let _ = match result {
            Ok(()) => self.sender.end_chunk(),
            Err(_) => self.sender.halt(),
        };
        Some(ChunkOutcome {
            chunk_id,
            subtask: inputs.subtask,
            tokens: self.last_outputs.len(),
            result,
        })
    }

    /// Streams `outputs` as the next chunk from `start` without running the policy, once
    /// there are inputs a chunk could be computed from (the simulation's replay).
    pub fn resend(
        &mut self,
        board: &Mutex<Board>,
        commanded: &CommandedState,
        start: Nanos,
        outputs: &[ActionOutput],
    ) -> Option<ChunkOutcome> {
        let (inputs, chunk_id) = self.next_chunk_inputs(board, commanded, start)?;
        let _ = self.sender.begin_chunk(chunk_id, start);
        for &output in outputs {
            let _ = match output {
                ActionOutput::Token(token) => self.sender.token(token),
                ActionOutput::Value(value) => self.sender.value(value),
            };
        }
        let _ = self.sender.end_chunk();
        Some(ChunkOutcome {
            chunk_id,
            subtask: inputs.subtask,
            tokens: outputs.len(),
            result: Ok(()),
        })
    }

    fn run(mut self, shared: &Shared) {
        let mut deadline = shared.clock.now();
        while shared.wait_until(deadline) {
            let start = shared.clock.now();
            let started = Instant::now();
            let mut first = None;
            let outcome = self.chunk(&shared.board, &shared.commanded, start, |n| {
                if n == 1 {
                    first = Some(started.elapsed());
                }
            });
            if let Some(report) = self.report.take() {
                shared.emit(report);
            }
            let Some(outcome) = outcome else {
                deadline = shared.clock.now() + INPUT_POLL_NS;
                continue;
            };
            deadline = next_deadline(deadline, start, self.period_ns);
            if outcome.result.is_ok() {
                shared.stages.record(CHUNK, started.elapsed());
                if let Some(first) = first {
                    shared.stages.record(FIRST_ACTION, first);
                }
            }
            shared.emit(outcome.into_event(shared.clock.now()));
        }
    }
}

impl ChunkOutcome {
    pub fn into_event(self, time: Nanos) -> RuntimeEvent {
        match self.result {
            Ok(()) => RuntimeEvent::Chunk {
                time,
                chunk_id: self.chunk_id,
                subtask: self.subtask,
                tokens: self.tokens,
            },
            Err(message) => RuntimeEvent::failed(time, Stage::Vla, message),
        }
    }
}
