//! The cerebellum's back half as a robot stack embeds it: an action stream, the motion
//! decoder for the built-in 82-joint humanoid, and the 1 kHz motion loop driving a sink.
//! A stand-in policy streams FAST-style raw-value chunks for the left arm; after two seconds
//! it goes silent and the watchdog brings the arm to a controlled stop.
//!
//! cargo run --release -p brainstem-runtime --example motion_decoder

use std::sync::Arc;
use std::time::Duration;

use brainstem_runtime::cerebellum::motion::{
    ActionDecoding, JointCommand, JointSink, LoopOptions, MotionConfig, MotionDecoder, MotionLoop,
};
use brainstem_runtime::cerebellum::stream::action_stream;
use brainstem_runtime::clock::{Clock, WallClock};
use brainstem_runtime::models::action::Normalization;
use brainstem_runtime::robot::RobotDescription;

const ARM: [&str; 4] = [
    "left_shoulder_pitch",
    "left_shoulder_roll",
    "left_elbow",
    "left_wrist_pitch",
];

/// Prints the elbow's command ten times a second.
struct PrintingSink {
    elbow: usize,
}

impl JointSink for PrintingSink {
    fn send(&mut self, command: &JointCommand<'_>) {
        if command.tick.is_multiple_of(100) {
            println!(
                "t={:>5} ms {:?}: elbow {:+.3} rad, {:+.3} rad/s",
                command.time / 1_000_000,
                command.mode,
                command.positions[self.elbow],
                command.velocities[self.elbow]
            );
        }
    }
}

fn main() -> brainstem_runtime::Result<()> {
    let robot = RobotDescription::humanoid();
    let normalization = ARM
        .iter()
        .map(|name| {
            let joint = &robot.joints[robot.joint_index(name).expect("a humanoid joint")];
            Normalization::Bounds {
                low: joint.min_position,
                high: joint.max_position,
            }
        })
        .collect();
    let config = MotionConfig::for_joints(&robot, &ARM, normalization, 50.0, 25)?;
    let (mut sender, receiver) = action_stream(4096);
    let decoder = MotionDecoder::new(&robot, config, ActionDecoding::Values, receiver)?;
    let clock = Arc::new(WallClock::new());
    let sink = Box::new(PrintingSink {
        elbow: robot.joint_index("left_elbow").expect("a humanoid joint"),
    });
    let options = LoopOptions {
        ticks: Some(3000),
        ..LoopOptions::default()
    };
    let motion = MotionLoop::spawn(decoder, clock.clone(), sink, options)?;

    // The policy: a 0.5 s chunk (25 steps at 50 Hz) every 250 ms for two seconds.
    for chunk in 0..8u64 {
        let start = clock.now();
        sender.begin_chunk(chunk, start).expect("room in the stream");
        for step in 0..25 {
            let t = (start as f64 * 1e-9) + step as f64 * 0.02;
            for dim in 0..ARM.len() {
                let value = 0.5 * (std::f64::consts::TAU * 0.5 * t + dim as f64).sin();
                sender.value(value as f32).expect("room in the stream");
            }
        }
        sender.end_chunk().expect("room in the stream");
        std::thread::sleep(Duration::from_millis(250));
    }
    let report = motion.join()?;
    println!(
        "{} ticks, tick work p99 {:.1} us, jitter p99 {:.1} us; interventions {:?}",
        report.ticks,
        report.work_ns.value_at_quantile(0.99) as f64 / 1000.0,
        report.jitter_ns.value_at_quantile(0.99) as f64 / 1000.0,
        report.interventions
    );
    Ok(())
}
