//! What the motion decoder needs to know about the policy: its rate and chunk shape, which
//! joint each action dimension drives and how it was normalised, how chunks blend, and the
//! watchdog's horizon.

use brainstem_models::action::Normalization;

use super::schedule::BlendMode;
use crate::error::{Result, RuntimeError};
use crate::robot::RobotDescription;

#[derive(Debug, Clone, PartialEq)]
pub struct MotionConfig {
    /// Action steps per second in a chunk.
    pub policy_rate_hz: f64,
    /// Steps in a chunk.
    pub chunk_steps: usize,
    /// The joint (index into the robot's joints) each action dimension drives.
    pub action_joints: Vec<usize>,
    /// How each action dimension was normalised for the policy.
    pub normalization: Vec<Normalization>,
    pub blend: BlendMode,
    /// Policy steps over which a new chunk fades in.
    pub transition_steps: usize,
    /// How long past the last scheduled step the robot waits for more before it stops.
    pub starvation_horizon_ns: u64,
    /// Stream events read per tick at most: the bound on a tick's decoding work.
    pub max_events_per_tick: usize,
}

impl MotionConfig {
    /// A configuration that drives the named joints, one action dimension each, with actions
    /// normalised by `normalization` (one per joint), lerobot's weighted-average blending,
    /// a 2-step transition and a 200 ms starvation horizon.
    pub fn for_joints(
        robot: &RobotDescription,
        joints: &[&str],
        normalization: Vec<Normalization>,
        policy_rate_hz: f64,
        chunk_steps: usize,
    ) -> Result<Self> {
        let action_joints = joints
            .iter()
            .map(|name| {
                robot
                    .joint_index(name)
                    .ok_or_else(|| RuntimeError::config("action_joints", format!("the robot has no joint {name:?}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let config = Self {
            policy_rate_hz,
            chunk_steps,
            action_joints,
            normalization,
            blend: BlendMode::WeightedAverage { new_weight: 0.7 },
            transition_steps: 2,
            starvation_horizon_ns: 200_000_000,
            max_events_per_tick: 64,
        };
        config.validate(robot)?;
        Ok(config)
    }

    pub fn action_dims(&self) -> usize {
        self.action_joints.len()
    }

    pub fn policy_period_ns(&self) -> u64 {
        (1e9 / self.policy_rate_hz).round() as u64
    }

    pub fn validate(&self, robot: &RobotDescription) -> Result<()> {
        if !(self.policy_rate_hz.is_finite()
            && self.policy_rate_hz > 0.0
            && self.policy_rate_hz <= robot.control_rate_hz)
        {
            return Err(RuntimeError::config(
                "policy_rate_hz",
                format!(
                    "must be positive and at most the control rate {} Hz, found {}",
                    robot.control_rate_hz, self.policy_rate_hz
                ),
            ));
        }
        if self.chunk_steps == 0 || self.chunk_steps > 4096 {
            return Err(RuntimeError::config(
                "chunk_steps",
                format!("must be 1 to 4096, found {}", self.chunk_steps),
            ));
        }
        if self.action_joints.is_empty() {
            return Err(RuntimeError::config("action_joints", "the policy drives no joint"));
        }
        for (dim, &joint) in self.action_joints.iter().enumerate() {
            if joint >= robot.joints.len() {
                return Err(RuntimeError::config(
                    format!("action_joints[{dim}]"),
                    format!("joint {joint} does not exist; the robot has {}", robot.joints.len()),
                ));
            }
            if self.action_joints[..dim].contains(&joint) {
                return Err(RuntimeError::config(
                    format!("action_joints[{dim}]"),
                    format!("joint {} is driven twice", robot.joints[joint].name),
                ));
            }
        }
        if self.normalization.len() != self.action_joints.len() {
            return Err(RuntimeError::config(
                "normalization",
                format!(
                    "needs one entry per action dimension ({}), found {}",
                    self.action_joints.len(),
                    self.normalization.len()
                ),
            ));
        }
        for (dim, normalization) in self.normalization.iter().enumerate() {
            normalization
                .validate()
                .map_err(|e| RuntimeError::config(format!("normalization[{dim}]"), e.to_string()))?;
        }
        if let BlendMode::WeightedAverage { new_weight } = self.blend {
            if !(new_weight > 0.0 && new_weight <= 1.0) {
                return Err(RuntimeError::config(
                    "blend.new_weight",
                    format!("must be in (0, 1], found {new_weight}"),
                ));
            }
        }
        if self.max_events_per_tick == 0 {
            return Err(RuntimeError::config("max_events_per_tick", "must be at least 1"));
        }
        Ok(())
    }
}
