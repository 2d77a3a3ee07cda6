//! The robot the motion decoder drives: joint names, their position, velocity, acceleration
//! and jerk limits, where each rests, and the control rate. Read from TOML (unknown keys are
//! refused and every error names the key), or [`RobotDescription::humanoid`], an 82-joint
//! humanoid whose limits are typical of electric humanoids' published joint specifications.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Result, RuntimeError};

/// The longest a joint may take to stop from its top speed with its acceleration at its worst,
/// `v/a + 3a/j` seconds. The safety envelope proves each command viable by simulating that
/// stop, up to twice this horizon in control ticks, so the bound keeps its work per tick
/// bounded; and a joint that needs longer than this to stop cannot be kept safe by a decoder
/// whose chunks last a fraction of a second. Electric humanoids' joints stop in well under a
/// second (the built-in humanoid's in at most 0.3 s).
pub const MAX_STOPPING_SECONDS: f64 = 30.0;

/// The largest magnitude of a position or limit. No joint moves a billion radians or metres
/// a second; staying far below it keeps the envelope's bounds (`v^2 / 2a`, `a^3 / 2j^2`) finite.
pub const MAX_LIMIT_MAGNITUDE: f64 = 1e9;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RobotDescription {
    pub name: String,
    /// Commands per second sent to the joints.
    pub control_rate_hz: f64,
    pub joints: Vec<JointSpec>,
}

/// One joint's limits, in its own units (radians for revolute joints, metres for prismatic).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JointSpec {
    pub name: String,
    pub min_position: f64,
    pub max_position: f64,
    pub max_velocity: f64,
    pub max_acceleration: f64,
    pub max_jerk: f64,
    /// Where the joint starts and rests; the middle of its range when absent.
    #[serde(default)]
    pub home: Option<f64>,
    /// How far the measured position may be from the command before the joint counts as
    /// not tracking; what the joint covers in 100 ms at full speed when absent.
    #[serde(default)]
    pub max_tracking_error: Option<f64>,
}

impl JointSpec {
    pub fn home(&self) -> f64 {
        self.home.unwrap_or(0.5 * (self.min_position + self.max_position))
    }

    pub fn tracking_limit(&self) -> f64 {
        self.max_tracking_error.unwrap_or(0.1 * self.max_velocity)
    }

    fn validate(&self, index: usize) -> Result<()> {
        let key = |field: &str| format!("joints[{index}].{field} ({})", self.name);
        let bounded = |value: f64| value.abs() <= MAX_LIMIT_MAGNITUDE;
        if !(bounded(self.min_position) && bounded(self.max_position) && self.min_position < self.max_position) {
            return Err(RuntimeError::config(
                key("min_position"),
                format!(
                    "needs min_position < max_position, both within +-{MAX_LIMIT_MAGNITUDE:e}, found {:?} and {:?}",
                    self.min_position, self.max_position
                ),
            ));
        }
        for (field, value) in [
            ("max_velocity", self.max_velocity),
            ("max_acceleration", self.max_acceleration),
            ("max_jerk", self.max_jerk),
        ] {
            if !(value > 0.0 && bounded(value)) {
                return Err(RuntimeError::config(
                    key(field),
                    format!("must be positive and at most {MAX_LIMIT_MAGNITUDE:e}, found {value:?}"),
                ));
            }
        }
        let tracking = self.tracking_limit();
        if !(tracking.is_finite() && tracking > 0.0) {
            return Err(RuntimeError::config(
                key("max_tracking_error"),
                format!("must be positive and finite, found {tracking}"),
            ));
        }
        let stopping = self.max_velocity / self.max_acceleration + 3.0 * self.max_acceleration / self.max_jerk;
        if stopping.is_nan() || stopping > MAX_STOPPING_SECONDS {
            return Err(RuntimeError::config(
                key("max_acceleration"),
                format!(
                    "stopping from max_velocity {:?} at max_acceleration {:?} with max_jerk {:?} takes \
                     v/a + 3a/j = {stopping:e} s, over the {MAX_STOPPING_SECONDS} s the safety envelope allows",
                    self.max_velocity, self.max_acceleration, self.max_jerk
                ),
            ));
        }
        let home = self.home();
        if !(self.min_position..=self.max_position).contains(&home) {
            return Err(RuntimeError::config(
                key("home"),
                format!("{home} is outside [{}, {}]", self.min_position, self.max_position),
            ));
        }
        Ok(())
    }
}

impl RobotDescription {
    pub fn from_toml(text: &str) -> Result<Self> {
        let robot: Self = toml::from_str(text).map_err(|e| RuntimeError::toml(text, &e))?;
        robot.validate()?;
        Ok(robot)
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let text = crate::config::read_config_file(path)?;
        Self::from_toml(&text).map_err(|e| RuntimeError::ConfigFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    pub fn validate(&self) -> Result<()> {
        if !(self.control_rate_hz.is_finite() && (1.0..=100_000.0).contains(&self.control_rate_hz)) {
            return Err(RuntimeError::config(
                "control_rate_hz",
                format!("must be within 1 to 100000 Hz, found {}", self.control_rate_hz),
            ));
        }
        if self.joints.is_empty() {
            return Err(RuntimeError::config("joints", "the robot has no joints"));
        }
        for (index, joint) in self.joints.iter().enumerate() {
            joint.validate(index)?;
            if let Some(first) = self.joints[..index].iter().position(|other| other.name == joint.name) {
                return Err(RuntimeError::config(
                    format!("joints[{index}].name"),
                    format!("{:?} is already the name of joints[{first}]", joint.name),
                ));
            }
        }
        Ok(())
    }

    pub fn control_period_ns(&self) -> u64 {
        (1e9 / self.control_rate_hz).round() as u64
    }

    pub fn joint_index(&self, name: &str) -> Option<usize> {
        self.joints.iter().position(|joint| joint.name == name)
    }

    /// An 82-joint humanoid controlled at 1 kHz: head and eyes (7), waist (3), two legs (2 x 7),
    /// two arms (2 x 7), two dexterous hands (2 x 22).
    pub fn humanoid() -> Self {
        let mut joints = Vec::with_capacity(82);
        let mut add = |name: String, range: (f64, f64), home: f64, class: JointClass| {
            let (velocity, acceleration, jerk) = class.limits();
            joints.push(JointSpec {
                name,
                min_position: range.0,
                max_position: range.1,
                max_velocity: velocity,
                max_acceleration: acceleration,
                max_jerk: jerk,
                home: Some(home),
                max_tracking_error: None,
            });
        };
        for (name, range) in [
            ("neck_yaw", (-1.4, 1.4)),
            ("neck_pitch", (-0.6, 0.8)),
            ("neck_roll", (-0.4, 0.4)),
        ] {
            add(name.into(), range, 0.0, JointClass::Head);
        }
        for side in ["left", "right"] {
            add(format!("{side}_eye_pan"), (-0.6, 0.6), 0.0, JointClass::Eye);
            add(format!("{side}_eye_tilt"), (-0.5, 0.5), 0.0, JointClass::Eye);
        }
        for (name, range) in [
            ("waist_yaw", (-2.6, 2.6)),
            ("waist_roll", (-0.5, 0.5)),
            ("waist_pitch", (-0.5, 0.9)),
        ] {
            add(name.into(), range, 0.0, JointClass::Torso);
        }
        for side in ["left", "right"] {
            let leg = [
                ("hip_yaw", (-0.8, 0.8), 0.0),
                ("hip_roll", (-0.5, 0.5), 0.0),
                ("hip_pitch", (-2.5, 1.0), -0.2),
                ("knee", (0.0, 2.4), 0.4),
                ("ankle_pitch", (-0.9, 0.6), -0.2),
                ("ankle_roll", (-0.3, 0.3), 0.0),
                ("toe", (-0.4, 0.6), 0.0),
            ];
            for (joint, range, home) in leg {
                add(format!("{side}_{joint}"), range, home, JointClass::Leg);
            }
            let arm = [
                ("shoulder_pitch", (-3.0, 1.2), 0.0),
                ("shoulder_roll", (-0.3, 2.2), 0.2),
                ("shoulder_yaw", (-2.6, 2.6), 0.0),
                ("elbow", (0.0, 2.5), 0.6),
                ("wrist_yaw", (-2.6, 2.6), 0.0),
                ("wrist_pitch", (-1.0, 1.0), 0.0),
                ("wrist_roll", (-1.4, 1.4), 0.0),
            ];
            for (joint, range, home) in arm {
                add(format!("{side}_{joint}"), range, home, JointClass::Arm);
            }
            add(format!("{side}_palm_spread"), (0.0, 0.4), 0.1, JointClass::Finger);
            for (finger, segments) in [("thumb", 5), ("index", 4), ("middle", 4), ("ring", 4), ("little", 4)] {
                for segment in 0..segments {
                    add(
                        format!("{side}_{finger}_{segment}"),
                        (0.0, 1.6),
                        0.1,
                        JointClass::Finger,
                    );
                }
            }
        }
        Self {
            name: "brainstem-humanoid-82".into(),
            control_rate_hz: 1000.0,
            joints,
        }
    }
}

#[derive(Clone, Copy)]
enum JointClass {
    Head,
    Eye,
    Torso,
    Leg,
    Arm,
    Finger,
}

impl JointClass {
    /// (velocity rad/s, acceleration rad/s^2, jerk rad/s^3)
    fn limits(self) -> (f64, f64, f64) {
        match self {
            JointClass::Head => (3.0, 20.0, 400.0),
            JointClass::Eye => (8.0, 80.0, 2000.0),
            JointClass::Torso => (2.0, 10.0, 200.0),
            JointClass::Leg => (4.0, 30.0, 600.0),
            JointClass::Arm => (3.0, 20.0, 400.0),
            JointClass::Finger => (5.0, 40.0, 1000.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_humanoid_has_82_valid_joints() {
        let robot = RobotDescription::humanoid();
        assert_eq!(robot.joints.len(), 82);
        robot.validate().unwrap();
        assert_eq!(robot.control_period_ns(), 1_000_000);
    }

    #[test]
    fn a_toml_robot_loads_and_bad_keys_are_named() {
        let text = r#"
            name = "arm"
            control_rate_hz = 500.0
            [[joints]]
            name = "elbow"
            min_position = 0.0
            max_position = 2.0
            max_velocity = 1.0
            max_acceleration = 5.0
            max_jerk = 50.0
        "#;
        let robot = RobotDescription::from_toml(text).unwrap();
        assert_eq!(robot.joints[0].home(), 1.0);
        let unknown = RobotDescription::from_toml(&text.replace("max_jerk", "max_jolt")).unwrap_err();
        assert!(unknown.to_string().contains("max_jolt"), "{unknown}");
        let inverted = RobotDescription::from_toml(&text.replace("max_position = 2.0", "max_position = -1.0"));
        assert!(inverted
            .unwrap_err()
            .to_string()
            .contains("joints[0].min_position (elbow)"));
    }
}
