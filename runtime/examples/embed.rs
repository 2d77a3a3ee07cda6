//! Embedding the runtime in a robot stack: build it from a configuration (here the built-in
//! demo; `RuntimeConfig::from_file` reads a TOML one), give it the joints as a sink, push
//! camera frames and measured joint states as they come, set the instruction, ask a
//! question, react to events, and read telemetry.
//!
//! cargo run --release -p brainstem-runtime --example embed

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brainstem_runtime::cerebellum::motion::{JointCommand, JointSink};
use brainstem_runtime::config::MotionSettings;
use brainstem_runtime::demo::{demo_config, SyntheticCamera};
use brainstem_runtime::{Runtime, RuntimeEvent, RuntimeOptions};

/// A simulated robot whose joints reach every command: the motion loop calls `send` at
/// 1 kHz on its own thread, and the encoders read back lock-free from any thread.
struct Robot {
    encoders: Arc<Vec<AtomicU64>>,
}

impl JointSink for Robot {
    fn send(&mut self, command: &JointCommand<'_>) {
        for (encoder, position) in self.encoders.iter().zip(command.positions) {
            encoder.store(position.to_bits(), Ordering::Relaxed);
        }
    }
}

fn read(encoders: &[AtomicU64]) -> Vec<f64> {
    encoders
        .iter()
        .map(|e| f64::from_bits(e.load(Ordering::Relaxed)))
        .collect()
}

fn main() -> brainstem_runtime::Result<()> {
    let mut config = demo_config(&std::env::temp_dir())?;
    // This robot reports its encoders: the motion decoder starts from them and tracks them.
    // They come at 10 Hz here, so a state may be up to a quarter second old.
    config.motion = MotionSettings {
        max_state_age_ms: 250.0,
        ..MotionSettings::default()
    };
    let robot = config.robot()?;
    let encoders: Arc<Vec<AtomicU64>> = Arc::new(
        robot
            .joints
            .iter()
            .map(|j| AtomicU64::new(j.home().to_bits()))
            .collect(),
    );
    let elbow = robot.joint_index("left_elbow").expect("a humanoid joint");
    let sink = Robot {
        encoders: encoders.clone(),
    };
    let runtime = Runtime::from_config(&config, Box::new(sink), RuntimeOptions::default())?;
    runtime.set_instruction("pick up the red ball and put it in the bin")?;
    let camera = SyntheticCamera::default();
    let mut question = None;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        // The camera and the joint encoders, at 10 Hz here.
        runtime.push_frame(camera.frame(runtime.now()))?;
        runtime.push_state(&read(&encoders))?;
        if question.is_none() {
            question = Some(runtime.ask("Where is the ball?")?);
        }
        std::thread::sleep(Duration::from_millis(100));
        while let Some(event) = runtime.try_event() {
            match event {
                RuntimeEvent::Plan { subtasks, .. } => println!("plan: {}", subtasks.join(" -> ")),
                RuntimeEvent::Answer { id, text, .. } => println!("answer to {id}: {text:?}"),
                RuntimeEvent::StageFailed { stage, message, .. } => println!("{stage} failed: {message}"),
                RuntimeEvent::InputStale { input, age_ms, .. } => println!("{input} is stale ({age_ms:?} ms)"),
                RuntimeEvent::InputFresh { .. } => println!("inputs fresh again"),
                RuntimeEvent::Chunk { chunk_id, .. } if chunk_id % 10 == 0 => {
                    println!("chunk {chunk_id}; elbow at {:+.3} rad", read(&encoders)[elbow])
                }
                RuntimeEvent::Chunk { .. } => {}
            }
        }
    }
    println!("{}", runtime.stop()?.to_json());
    Ok(())
}
