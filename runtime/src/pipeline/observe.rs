//! Observations and intentions shared between the embedder and the model loops: the latest
//! camera frame, its shared encoding, the joint state (measured when the robot reports it,
//! commanded otherwise), the instruction, the current subtask and the questions waiting for
//! the VLM. Everything is checked on the way in (a NaN in a state, a frame of the wrong size
//! is refused with the reason). The model side takes the board's lock briefly; the motion
//! loop never touches it, and reaches the model side only through the lock-free
//! [`CommandedState`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use brainstem_models::image::RgbImage;
use brainstem_models::plan::{Plan, Subtask};
use brainstem_models::vlm::EncodedFrame;
use serde::Serialize;

use crate::cerebellum::motion::{JointCommand, JointSink};
use crate::clock::Nanos;
use crate::compute::partition::Stage;
use crate::config::VlaTask;
use crate::error::{Result, RuntimeError};

/// A frame encoded for the brain and for the VLA: the same encoding when the VLA takes the
/// brain's image embedding, its own tower's otherwise.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameEncodings {
    pub brain: Arc<EncodedFrame>,
    pub vla: Arc<EncodedFrame>,
}

/// What the runtime tells the embedder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum RuntimeEvent {
    /// The VLT planned: `subtasks` as text (the skill, then its arguments); the first is what
    /// the cerebellum does now.
    Plan {
        time: Nanos,
        instruction: String,
        subtasks: Vec<String>,
    },
    /// The VLM answered question `id`.
    Answer { time: Nanos, id: u64, text: String },
    /// The VLA finished chunk `chunk_id` of `tokens` action tokens for `subtask`.
    Chunk {
        time: Nanos,
        chunk_id: u64,
        subtask: String,
        tokens: usize,
    },
    /// The cerebellum will not start a chunk on `input` ("camera" or "joint_state"): it is
    /// `age_ms` old (`None`: never measured), past the configured age. The motion decoder
    /// holds the robot until it is fresh again.
    InputStale {
        time: Nanos,
        input: &'static str,
        age_ms: Option<f64>,
    },
    /// Every input is fresh again; chunks start again.
    InputFresh { time: Nanos },
    /// A model stage failed (an error, or a panic caught at the stage's edge). When it is the
    /// VLA, the motion decoder has been told to stop the robot under control.
    StageFailed {
        time: Nanos,
        stage: &'static str,
        message: String,
    },
}

impl RuntimeEvent {
    pub fn plan(time: Nanos, instruction: &str, plan: &Plan) -> Self {
        Self::Plan {
            time,
            instruction: instruction.to_string(),
            subtasks: plan.subtasks.iter().map(subtask_text).collect(),
        }
    }

    pub fn failed(time: Nanos, stage: Stage, message: String) -> Self {
        Self::StageFailed {
            time,
            stage: stage.key(),
            message,
        }
    }
}

/// A subtask as the VLA's prompt takes it: the skill, then `key value` for each argument.
pub fn subtask_text(subtask: &Subtask) -> String {
    let mut text = subtask.skill.clone();
    for (key, value) in &subtask.args {
        text.push_str(&format!(" {key} {value}"));
    }
    text
}

/// The joint positions the motion loop last commanded, one atomic per joint: written every
/// tick without a lock or an allocation, read by the cerebellum as proprioception when the
/// robot reports no measured state.
pub struct CommandedState {
    positions: Vec<AtomicU64>,
}

impl CommandedState {
    pub fn new(home: &[f64]) -> Self {
        Self {
            positions: home.iter().map(|p| AtomicU64::new(p.to_bits())).collect(),
        }
    }

    pub fn store(&self, positions: &[f64]) {
        for (slot, p) in self.positions.iter().zip(positions) {
            slot.store(p.to_bits(), Ordering::Relaxed);
        }
    }

    pub fn load(&self, joint: usize) -> f64 {
        f64::from_bits(self.positions[joint].load(Ordering::Relaxed))
    }
}

/// Wraps the robot's sink: records each command into [`CommandedState`], then forwards it.
pub struct RecordingSink {
    pub inner: Box<dyn JointSink>,
    pub commanded: Arc<CommandedState>,
}

impl JointSink for RecordingSink {
    fn send(&mut self, command: &JointCommand<'_>) {
        self.commanded.store(command.positions);
        self.inner.send(command);
    }
}

/// The shared state behind the board's lock. It knows the robot's joint and camera counts,
/// so whatever is pushed is checked against the robot, not against the caller's word.
pub struct Board {
    /// The newest frame (a view per camera) and its sequence number.
    pub frame: Option<(u64, Nanos, Arc<Vec<RgbImage>>)>,
    /// The newest encodings, and the sequence number of the frame they encode.
    pub encoded: Option<(u64, Nanos, FrameEncodings)>,
    /// The robot's measured joint state (every joint, in the robot's order).
    measured: Option<(Nanos, Vec<f64>)>,
    pub instruction: Option<String>,
    /// The subtask the cerebellum works on: the first of the latest plan.
    pub subtask: Option<String>,
    pub questions: VecDeque<(u64, String)>,
    next_frame: u64,
    next_question: u64,
    joints: usize,
    cameras: usize,
}

impl Board {
    /// The board of a robot with `joints` joints and `cameras` cameras.
    pub fn new(joints: usize, cameras: usize) -> Self {
        Self {
            frame: None,
            encoded: None,
            measured: None,
            instruction: None,
            subtask: None,
            questions: VecDeque::new(),
            next_frame: 0,
            next_question: 0,
            joints,
            cameras,
        }
    }

    /// One frame from each of the robot's cameras, in camera order.
    pub fn push_frame(&mut self, time: Nanos, views: Vec<RgbImage>) -> Result<u64> {
        let cameras = self.cameras;
        if views.len() != cameras {
            return Err(RuntimeError::Observation(format!(
                "a frame has one view per camera: expected {cameras}, found {}",
                views.len()
            )));
        }
        if let Some((i, view)) = views
            .iter()
            .enumerate()
            .find(|(_, v)| v.width() == 0 || v.height() == 0)
        {
            return Err(RuntimeError::Observation(format!(
                "camera {i}'s frame is {}x{} pixels",
                view.width(),
                view.height()
            )));
        }
        if let Some((_, newest, _)) = self.frame.as_ref().filter(|(_, newest, _)| time < *newest) {
            return Err(RuntimeError::Observation(format!(
                "a frame captured at {time} ns is older than the newest one, captured at {newest} ns"
            )));
        }
        let seq = self.next_frame;
        self.next_frame += 1;
        self.frame = Some((seq, time, Arc::new(views)));
        Ok(seq)
    }

    /// The measured position (and velocity, where the robot reports it) of every joint, in
    /// the robot's order, captured at `time`.
    pub fn push_state(&mut self, time: Nanos, positions: &[f64], velocities: Option<&[f64]>) -> Result<()> {
        check_joint_values(self.joints, "position", positions)?;
        if let Some(velocities) = velocities {
            check_joint_values(self.joints, "velocity", velocities)?;
        }
        if let Some((newest, _)) = self.measured.as_ref().filter(|(newest, _)| time < *newest) {
            return Err(RuntimeError::Observation(format!(
                "a joint state captured at {time} ns is older than the newest one, captured at {newest} ns"
            )));
        }
        self.measured = Some((time, positions.to_vec()));
        Ok(())
    }

    /// When the newest measured joint state was captured.
    pub fn state_captured(&self) -> Option<Nanos> {
        self.measured.as_ref().map(|(time, _)| *time)
    }

    pub fn set_instruction(&mut self, text: &str) -> Result<()> {
        let text = text.trim();
        if text.is_empty() {
            return Err(RuntimeError::Observation("an empty instruction".into()));
        }
        self.instruction = Some(text.to_string());
        Ok(())
    }

    pub fn ask(&mut self, question: &str) -> Result<u64> {
        if question.trim().is_empty() {
            return Err(RuntimeError::Observation("an empty question".into()));
        }
        let id = self.next_question;
        self.next_question += 1;
        self.questions.push_back((id, question.trim().to_string()));
        Ok(id)
    }

    /// A frame not yet encoded, if there is one.
    pub fn frame_to_encode(&self) -> Option<(u64, Nanos, Arc<Vec<RgbImage>>)> {
        let (seq, time, image) = self.frame.as_ref()?;
        let done = self.encoded.as_ref().is_some_and(|(s, ..)| s >= seq);
        (!done).then(|| (*seq, *time, image.clone()))
    }

    /// What the subtask is until the first plan: the instruction itself.
    pub fn current_subtask(&self) -> Option<String> {
        self.subtask.clone().or_else(|| self.instruction.clone())
    }

    /// The policy's joints' state: measured if the robot reports it, else commanded.
    pub fn policy_state(&self, joints: &[usize], commanded: &CommandedState) -> Vec<f64> {
        match &self.measured {
            Some((_, positions)) => joints.iter().map(|&j| positions[j]).collect(),
            None => joints.iter().map(|&j| commanded.load(j)).collect(),
        }
    }

    /// What the cerebellum needs for a chunk, once there is a frame and something to do.
    pub fn cerebellum_inputs(
        &self,
        joints: &[usize],
        commanded: &CommandedState,
        task: VlaTask,
    ) -> Option<CerebellumInputs> {
        let (_, encoded_captured, frame) = self.encoded.as_ref()?;
        let (_, captured, views) = self.frame.as_ref()?;
        Some(CerebellumInputs {
            frame: frame.vla.clone(),
            encoded_captured: *encoded_captured,
            state_captured: self.state_captured(),
            views: views.clone(),
            captured: *captured,
            subtask: match task {
                VlaTask::Subtask => self.current_subtask()?,
                VlaTask::Instruction => self.instruction.clone()?,
            },
            state: self.policy_state(joints, commanded),
        })
    }

    /// What the brain works on this period: the frame, the instruction to plan for, and the
    /// questions taken off the queue.
    pub fn take_brain_inputs(&mut self) -> Option<BrainInputs> {
        let (_, _, frame) = self.encoded.as_ref()?;
        Some(BrainInputs {
            frame: frame.brain.clone(),
            instruction: self.instruction.clone(),
            questions: self.questions.drain(..).collect(),
        })
    }
}

pub struct CerebellumInputs {
    pub frame: Arc<EncodedFrame>,
    /// When the frame behind `frame` was captured.
    pub encoded_captured: Nanos,
    /// When the measured joint state was captured; `None` when the state is the commanded one.
    pub state_captured: Option<Nanos>,
    /// The newest frame's views, for a policy with its own vision tower, and when they were
    /// captured.
    pub views: Arc<Vec<RgbImage>>,
    pub captured: Nanos,
    pub subtask: String,
    pub state: Vec<f64>,
}

pub struct BrainInputs {
    pub frame: Arc<EncodedFrame>,
    pub instruction: Option<String>,
    pub questions: Vec<(u64, String)>,
}

fn check_joint_values(joints: usize, what: &str, values: &[f64]) -> Result<()> {
    if values.len() != joints {
        return Err(RuntimeError::Observation(format!(
            "a joint state has one {what} per joint: expected {joints}, found {}",
            values.len()
        )));
    }
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(RuntimeError::Observation(format!(
            "joint {i}'s {what} is {}",
            values[i]
        ))),
        None => Ok(()),
    }
}

/// Runs a model stage, turning a panic inside it into an error with the panic's message.
pub fn guarded<T>(stage: impl FnOnce() -> Result<T>) -> std::result::Result<T, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(stage)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            Err(format!("panicked: {message}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_observations_are_refused_with_the_reason() {
        let mut board = Board::new(2, 1);
        let nan = board.push_state(0, &[0.0, f64::NAN], None).unwrap_err().to_string();
        assert!(nan.contains("joint 1") && nan.contains("NaN"), "{nan}");
        let short = board.push_state(0, &[0.0], None).unwrap_err().to_string();
        assert!(short.contains("expected 2, found 1"), "{short}");
        let speed = board.push_state(0, &[0.0, 0.0], Some(&[f64::INFINITY, 0.0]));
        assert!(speed.unwrap_err().to_string().contains("joint 0's velocity is inf"));
        board.push_state(10, &[0.0, 0.0], None).unwrap();
        let old = board.push_state(5, &[0.0, 0.0], None).unwrap_err().to_string();
        assert!(old.contains("older than the newest"), "{old}");
        assert!(board.set_instruction("  ").is_err());
        assert!(board.ask("").is_err());
        assert_eq!(board.state_captured(), Some(10));
    }

    #[test]
    fn the_newest_frame_waits_for_encoding_once() {
        let mut board = Board::new(2, 1);
        let image = RgbImage::new(2, 2, vec![0; 12]).unwrap();
        board.push_frame(10, vec![image.clone()]).unwrap();
        assert!(board.push_frame(15, vec![image.clone(), image.clone()]).is_err());
        let seq = board.push_frame(20, vec![image]).unwrap();
        let (next, time, _) = board.frame_to_encode().unwrap();
        assert_eq!((next, time), (seq, 20));
        let encoded = EncodedFrame {
            views: vec![(0, 0)],
            embedding: Arc::new(brainstem_models::idefics3::ImageEmbedding {
                rows: 0,
                hidden: 0,
                values: Vec::new(),
            }),
        };
        let encoded = Arc::new(encoded);
        let encodings = FrameEncodings {
            brain: encoded.clone(),
            vla: encoded,
        };
        board.encoded = Some((seq, time, encodings));
        assert!(board.frame_to_encode().is_none());
    }
}
