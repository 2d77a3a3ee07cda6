//! The link to a simulator process: started from a command line (`brainstem eval sim` runs
//! tools/sim/server.py under the project's Python), spoken to over its standard input and
//! output, one JSON object a line each way, a request then its reply (the protocol is in
//! tools/sim/server.py's doc). Every reply is checked: a reply longer than
//! [`MAX_REPLY_BYTES`], one that is not the JSON expected, one that carries `"error"`, one
//! with the wrong number of joints or a non-finite value, and a process that exits or stays
//! silent past the timeout, are each a [`SimError`] that says what was expected and what came.
//! The process is killed when the link is dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use base64::Engine;
use brainstem_models::image::RgbImage;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::robot::JointSpec;

/// The longest reply line read: far above a frame of a few cameras at 640 x 480 in base64.
pub const MAX_REPLY_BYTES: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("could not start the simulator `{command}`: {reason}")]
    Start { command: String, reason: String },
    #[error("the simulator exited or closed its output while `{request}` waited for its reply")]
    Exited { request: String },
    #[error("the simulator sent no reply to `{request}` within {seconds} s")]
    Timeout { request: String, seconds: f64 },
    #[error("the simulator's reply to `{request}` is longer than {MAX_REPLY_BYTES} bytes")]
    TooLong { request: String },
    #[error("the simulator's reply to `{request}` is not what the protocol says: {reason}")]
    Malformed { request: String, reason: String },
    #[error("the simulator refused `{request}`: {message}")]
    Refused { request: String, message: String },
    #[error("writing to the simulator: {0}")]
    Write(String),
}

/// The task a simulator serves, as its `describe` reply gives it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TaskDescription {
    pub task: String,
    pub instruction: String,
    pub control_rate_hz: f64,
    /// The rate of the policy's actions, and of the camera's frames.
    pub action_rate_hz: f64,
    pub success_radius: f64,
    pub cameras: Vec<CameraSpec>,
    pub joints: Vec<JointSpec>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CameraSpec {
    pub name: String,
    pub height: u32,
    pub width: u32,
}

/// The simulated robot after a reset or a step.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SimState {
    #[serde(default)]
    pub time: f64,
    pub joints: Vec<f64>,
    pub velocities: Vec<f64>,
    /// How far the task's goal still is (metres for the reaching task).
    pub distance: f64,
}

#[derive(Deserialize)]
struct Views {
    views: Vec<View>,
}

#[derive(Deserialize)]
struct View {
    camera: String,
    height: u32,
    width: u32,
    rgb: String,
}

/// A running simulator.
pub struct SimProcess {
    child: Child,
    stdin: ChildStdin,
    replies: Receiver<Result<String, SimError>>,
    timeout: Duration,
    joints: usize,
}

impl SimProcess {
    /// Starts `program` with `args`; each reply must come within `timeout`.
    pub fn start(program: &str, args: &[String], timeout: Duration) -> Result<Self, SimError> {
        let command = std::iter::once(program)
            .chain(args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ");
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| SimError::Start {
                command: command.clone(),
                reason: e.to_string(),
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err(SimError::Start {
                command,
                reason: "its standard input or output could not be piped".into(),
            });
        };
        let (sender, replies) = mpsc::channel();
        std::thread::Builder::new()
            .name("sim-replies".into())
            .spawn(move || read_replies(BufReader::new(stdout), sender))
            .map_err(|e| SimError::Start {
                command,
                reason: e.to_string(),
            })?;
        Ok(Self {
            child,
            stdin,
            replies,
            timeout,
            joints: 0,
        })
    }

    /// The task, and from now on the number of joints every state must have.
    pub fn describe(&mut self) -> Result<TaskDescription, SimError> {
        let task: TaskDescription = self.request(r#"{"op":"describe"}"#, "describe")?;
        if task.joints.is_empty() || task.cameras.is_empty() {
            return Err(malformed("describe", "a task needs at least one joint and one camera"));
        }
        if !(task.control_rate_hz > 0.0 && task.action_rate_hz > 0.0 && task.success_radius.is_finite()) {
            return Err(malformed(
                "describe",
                format!(
                    "rates must be positive and the radius finite, found control {} Hz, actions {} Hz, radius {}",
                    task.control_rate_hz, task.action_rate_hz, task.success_radius
                ),
            ));
        }
        self.joints = task.joints.len();
        Ok(task)
    }

    /// Resets the task as episode `seed` has it.
    pub fn reset(&mut self, seed: u64) -> Result<SimState, SimError> {
        let state = self.request(&format!(r#"{{"op":"reset","seed":{seed}}}"#), "reset")?;
        self.checked(state, "reset")
    }

    /// Holds the joints' `targets` for `seconds` of simulated time.
    pub fn step(&mut self, targets: &[f64], seconds: f64) -> Result<SimState, SimError> {
        let line = serde_json::json!({"op": "step", "targets": targets, "seconds": seconds}).to_string();
        let state = self.request(&line, "step")?;
        self.checked(state, "step")
    }

    /// Every camera's view now, in the order `describe` gave the cameras.
    pub fn render(&mut self, cameras: &[CameraSpec]) -> Result<Vec<RgbImage>, SimError> {
        let Views { views } = self.request(r#"{"op":"render"}"#, "render")?;
        if views.len() != cameras.len() {
            return Err(malformed(
                "render",
                format!("{} views for {} cameras", views.len(), cameras.len()),
            ));
        }
        views
            .into_iter()
            .zip(cameras)
            .map(|(view, camera)| decode_view(view, camera))
            .collect()
    }

    fn checked(&self, state: SimState, request: &str) -> Result<SimState, SimError> {
        if state.joints.len() != self.joints || state.velocities.len() != self.joints {
            return Err(malformed(
                request,
                format!(
                    "{} joints and {} velocities for a robot of {} joints",
                    state.joints.len(),
                    state.velocities.len(),
                    self.joints
                ),
            ));
        }
        let values = state
            .joints
            .iter()
            .chain(&state.velocities)
            .chain([&state.distance, &state.time]);
        if let Some(bad) = values.copied().find(|v| !v.is_finite()) {
            return Err(malformed(request, format!("a non-finite value {bad}")));
        }
        Ok(state)
    }

    fn request<T: DeserializeOwned>(&mut self, line: &str, request: &str) -> Result<T, SimError> {
        writeln!(self.stdin, "{line}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| SimError::Write(e.to_string()))?;
        let reply = match self.replies.recv_timeout(self.timeout) {
            Ok(reply) => reply?,
            Err(RecvTimeoutError::Timeout) => {
                return Err(SimError::Timeout {
                    request: request.into(),
                    seconds: self.timeout.as_secs_f64(),
                })
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(SimError::Exited {
                    request: request.into(),
                })
            }
        };
        let value: serde_json::Value = serde_json::from_str(&reply).map_err(|e| malformed(request, e.to_string()))?;
        if let Some(message) = value.get("error") {
            return Err(SimError::Refused {
                request: request.into(),
                message: message.as_str().map_or_else(|| message.to_string(), String::from),
            });
        }
        serde_json::from_value(value).map_err(|e| malformed(request, e.to_string()))
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, r#"{{"op":"close"}}"#);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn malformed(request: &str, reason: impl Into<String>) -> SimError {
    SimError::Malformed {
        request: request.into(),
        reason: reason.into(),
    }
}

/// Forwards each reply line; a line past [`MAX_REPLY_BYTES`] ends the link.
fn read_replies(mut stdout: impl BufRead, sender: mpsc::Sender<Result<String, SimError>>) {
    loop {
        let mut line = String::new();
        let read = stdout.by_ref().take(MAX_REPLY_BYTES).read_line(&mut line);
        let reply = match read {
            Ok(0) => return,
            Ok(_) if !line.ends_with('\n') && line.len() as u64 >= MAX_REPLY_BYTES => Err(SimError::TooLong {
                request: "the last request".into(),
            }),
            Ok(_) => Ok(line),
            Err(e) => Err(malformed("the last request", e.to_string())),
        };
        let ended = reply.is_err();
        if sender.send(reply).is_err() || ended {
            return;
        }
    }
}

fn decode_view(view: View, camera: &CameraSpec) -> Result<RgbImage, SimError> {
    if view.camera != camera.name {
        return Err(malformed(
            "render",
            format!("camera {} where {} was expected", view.camera, camera.name),
        ));
    }
    let pixels = base64::engine::general_purpose::STANDARD
        .decode(view.rgb.as_bytes())
        .map_err(|e| malformed("render", format!("camera {}: {e}", view.camera)))?;
    RgbImage::new(view.width, view.height, pixels)
        .map_err(|e| malformed("render", format!("camera {}: {e}", view.camera)))
}
