//! The motion decoder's real-time behaviour: the 82-joint humanoid at its 1 kHz control rate
//! for a minute, fed by a policy thread that streams binned action tokens for every joint
//! (50 Hz policy, 20-step chunks every 200 ms so consecutive chunks overlap by half, each
//! chunk's 1640 tokens paced over 100 ms as a model would sample them). Reports tick work
//! (wake-up to sink return) and tick jitter (wake-up minus deadline), alone, and optionally
//! while SmolLM2 decodes greedily on another thread.
//!
//! cargo run --release -p brainstem-benches --bin motion_loop -- --seconds 60
//! cargo run --release -p brainstem-benches --bin motion_loop -- --seconds 60 --model weights/SmolLM2-135M-Instruct.Q4_1.gguf

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use brainstem_benches::machine_description;
use brainstem_runtime::cerebellum::motion::{
    ActionDecoding, JointCommand, JointSink, LoopOptions, LoopReport, MotionConfig, MotionDecoder, MotionLoop,
};
use brainstem_runtime::cerebellum::stream::{action_stream, ActionSender};
use brainstem_runtime::clock::{Clock, WallClock};
use brainstem_runtime::kernels::{Backend, CpuBackend};
use brainstem_runtime::models::action::{BinTokenizer, Normalization};
use brainstem_runtime::models::sampling::argmax;
use brainstem_runtime::models::{Llama, LoadOptions, Logits, WeightFile};
use brainstem_runtime::robot::RobotDescription;
use clap::Parser;
use hdrhistogram::Histogram;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Decode this GGUF on another thread while the loop runs.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Pin the motion loop to this core.
    #[arg(long)]
    core: Option<usize>,
    /// Ask for SCHED_FIFO at this priority.
    #[arg(long)]
    fifo: Option<i32>,
}

const POLICY_HZ: f64 = 50.0;
const CHUNK_STEPS: usize = 20;
/// Policy steps between the starts of consecutive chunks.
const CHUNK_INTERVAL: u64 = 10;
const VOCAB: u32 = 49_152;

/// The robot's bus: the command is copied out, as a driver would.
struct BusSink {
    frame: Vec<f64>,
}

impl JointSink for BusSink {
    fn send(&mut self, command: &JointCommand<'_>) {
        self.frame.copy_from_slice(command.positions);
    }
}

/// The policy: smooth motions of every joint around home, binned, streamed token by token.
fn policy(mut sender: ActionSender, robot: RobotDescription, clock: Arc<WallClock>, stop: Arc<AtomicBool>) -> u64 {
    let bins = BinTokenizer::new(VOCAB, 256).expect("valid bins");
    let joints = robot.joints.len();
    let period = (1e9 / POLICY_HZ) as u64;
    let mut chunk_id = 0;
    let mut tokens = Vec::with_capacity(CHUNK_STEPS * joints);
    while !stop.load(Ordering::Relaxed) {
        let start = clock.now();
        tokens.clear();
        for step in 0..CHUNK_STEPS {
            let t = (start + step as u64 * period) as f64 * 1e-9;
            for joint in 0..joints {
                let phase = joint as f64 * 0.37;
                let value = 0.3 * (std::f64::consts::TAU * 0.4 * t + phase).sin();
                tokens.push(bins.encode_value(value).expect("finite"));
            }
        }
        chunk_id += 1;
        let _ = sender.begin_chunk(chunk_id, start);
        let pace = Duration::from_micros(100_000 / tokens.len() as u64 * 8);
        for batch in tokens.chunks(8) {
            for &token in batch {
                let _ = sender.token(token);
            }
            std::thread::sleep(pace);
        }
        let _ = sender.end_chunk();
        clock.sleep_until(start + CHUNK_INTERVAL * period);
    }
    sender.refused()
}

/// SmolLM2 decoding greedily on one thread until told to stop; returns tokens per second.
fn decode_model(path: PathBuf, stop: Arc<AtomicBool>, decoded: Arc<AtomicU64>) -> anyhow::Result<f64> {
    let backend = Arc::new(CpuBackend::new(1)?);
    let file = WeightFile::open(&path)?;
    let model = Llama::from_file(backend.clone(), &file, LoadOptions::default())?;
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let mut cache = model.new_cache(256)?;
        let mut token = 1;
        for _ in 0..255 {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let logits = backend.read(&model.forward(&[token], &mut cache, Logits::Last)?)?;
            token = argmax(&logits).context("no finite logit")?;
            decoded.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(decoded.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

fn us(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let robot = RobotDescription::humanoid();
    let names: Vec<&str> = robot.joints.iter().map(|j| j.name.as_str()).collect();
    let normalization = robot
        .joints
        .iter()
        .map(|j| Normalization::Bounds {
            low: j.min_position,
            high: j.max_position,
        })
        .collect();
    let config = MotionConfig::for_joints(&robot, &names, normalization, POLICY_HZ, CHUNK_STEPS)?;
    let (sender, receiver) = action_stream(16 * 1024);
    let bins = BinTokenizer::new(VOCAB, 256)?;
    let decoder = MotionDecoder::new(&robot, config, ActionDecoding::Bins(bins), receiver)?;
    let clock = Arc::new(WallClock::new());
    let stop = Arc::new(AtomicBool::new(false));

    let decoded = Arc::new(AtomicU64::new(0));
    let model = args.model.clone().map(|path| {
        let (stop, decoded) = (stop.clone(), decoded.clone());
        std::thread::spawn(move || decode_model(path, stop, decoded))
    });
    if model.is_some() {
        std::thread::sleep(Duration::from_secs(2)); // let the model load before measuring
    }
    let producer = {
        let (robot, clock, stop) = (robot.clone(), clock.clone(), stop.clone());
        std::thread::spawn(move || policy(sender, robot, clock, stop))
    };
    let options = LoopOptions {
        core: args.core,
        realtime_priority: args.fifo,
        lock_memory: false,
        ticks: Some(args.seconds * robot.control_rate_hz as u64),
    };
    let sink = Box::new(BusSink {
        frame: vec![0.0; robot.joints.len()],
    });
    let report = MotionLoop::spawn(decoder, clock, sink, options)?.join()?;
    stop.store(true, Ordering::Relaxed);
    let refused = producer.join().expect("policy thread");
    let model_rate = model.map(|handle| handle.join().expect("model thread")).transpose()?;
    print_report(&args, &report, refused, model_rate)
}

fn print_report(args: &Args, report: &LoopReport, refused: u64, model_rate: Option<f64>) -> anyhow::Result<()> {
    println!("machine: {}", machine_description()?);
    println!(
        "motion loop: 82 joints at 1000 Hz for {} s; pinned {:?}, SCHED_FIFO {:?}",
        args.seconds, report.realtime.pinned_core, report.realtime.fifo_priority
    );
    if let Some(rate) = model_rate {
        println!("concurrent model: SmolLM2 greedy decode on 1 thread at {rate:.1} tokens/s");
    }
    let (work, jitter) = (&report.work_ns, &report.jitter_ns);
    println!(
        "ticks {} overruns {} refused events {}; interventions: {:?}",
        report.ticks, report.overruns, refused, report.interventions
    );
    println!("| load | tick work p50 | p99 | max | jitter p50 | p99 | max |");
    println!(
        "| {} | {:.1} us | {:.1} us | {:.1} us | {:.1} us | {:.1} us | {:.1} us |",
        if model_rate.is_some() {
            "model decoding"
        } else {
            "alone"
        },
        us(work, 0.5),
        us(work, 0.99),
        work.max() as f64 / 1000.0,
        us(jitter, 0.5),
        us(jitter, 0.99),
        jitter.max() as f64 / 1000.0,
    );
    Ok(())
}
