//! The motion decoder's tick must not allocate: a counting global allocator watches the ticks
//! of a decoder fed FAST tokens, binned tokens and raw values, garbage, stops and a policy's
//! halt included, and of a decoder following a measured robot through its waits, restarts,
//! tracking fault, stale camera, pause and emergency stop, and counts every allocation made on
//! the ticking thread.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use brainstem_runtime::cerebellum::feedback::{Feedback, FeedbackLimits};
use brainstem_runtime::cerebellum::motion::{ActionDecoding, BlendMode, MotionConfig, MotionDecoder};
use brainstem_runtime::cerebellum::stream::{action_stream, ActionSender};
use brainstem_runtime::models::action::{BinTokenizer, Normalization};
use brainstem_runtime::robot::RobotDescription;
use common::{fast_tokenizer, HUMANOID_ARM};

struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches only an
// atomic and a thread-local flag, neither of which allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if WATCHING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if WATCHING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn arm_decoder(decoding: ActionDecoding, steps: usize) -> (MotionDecoder, ActionSender) {
    let robot = RobotDescription::humanoid();
    let normalization = vec![Normalization::MeanStd { mean: 0.2, std: 0.5 }; HUMANOID_ARM.len()];
    let mut config = MotionConfig::for_joints(&robot, &HUMANOID_ARM, normalization, 50.0, steps).unwrap();
    config.blend = BlendMode::FreezePrefix { steps: 2 };
    let (sender, receiver) = action_stream(8192);
    (MotionDecoder::new(&robot, config, decoding, receiver).unwrap(), sender)
}

/// Ticks `ticks` times from `from` with the allocator watching, returning the allocations.
fn watched_ticks(decoder: &mut MotionDecoder, from: u64, ticks: u64) -> u64 {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    WATCHING.with(|w| w.set(true));
    for tick in 0..ticks {
        decoder.tick(from + tick * 1_000_000);
    }
    WATCHING.with(|w| w.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

#[test]
fn ticks_never_allocate() {
    let fast = fast_tokenizer();
    let chunk: Vec<f64> = (0..16 * 7).map(|i| 0.4 * ((i / 7) as f64 / 5.0).sin()).collect();
    let tokens = fast.encode(&chunk).unwrap();
    let (mut decoder, mut sender) = arm_decoder(ActionDecoding::Fast(Arc::new(fast)), 16);
    let mut now = 0;
    for chunk_id in 0..6u64 {
        sender.begin_chunk(chunk_id, now).unwrap();
        for &token in &tokens {
            sender.token(token).unwrap();
        }
        if chunk_id == 3 {
            sender.token(u32::MAX).unwrap(); // garbage: the watchdog stops the arm
        }
        sender.end_chunk().unwrap();
        assert_eq!(watched_ticks(&mut decoder, now, 300), 0, "FAST chunk {chunk_id}");
        now += 300 * 1_000_000;
    }
    assert_eq!(watched_ticks(&mut decoder, now, 1000), 0, "starving");
    assert_eq!(decoder.interventions().snapshot().stop_bad_token, 1);

    let bins = BinTokenizer::new(49_152, 256).unwrap();
    let (mut decoder, mut sender) = arm_decoder(ActionDecoding::Bins(bins), 10);
    sender.begin_chunk(0, 0).unwrap();
    for i in 0..70u32 {
        sender.token(49_000 + i).unwrap();
    }
    sender.end_chunk().unwrap();
    sender.token(5).unwrap(); // outside a chunk
    assert_eq!(watched_ticks(&mut decoder, 0, 600), 0, "binned chunk");
    sender.begin_chunk(1, 600_000_000).unwrap();
    for i in 0..35u32 {
        sender.token(49_000 + i).unwrap();
    }
    sender.halt().unwrap(); // the policy failed halfway through the chunk
    assert_eq!(watched_ticks(&mut decoder, 600_000_000, 600), 0, "halted chunk");
    assert_eq!(decoder.interventions().snapshot().stop_policy_failed, 1);

    let (mut decoder, mut sender) = arm_decoder(ActionDecoding::Values, 10);
    sender.begin_chunk(0, 0).unwrap();
    sender.value(0.5).unwrap();
    sender.value(f32::NAN).unwrap();
    assert_eq!(watched_ticks(&mut decoder, 0, 600), 0, "raw values");
}

#[test]
fn ticks_following_a_measured_robot_never_allocate() {
    let robot = RobotDescription::humanoid();
    let feedback = Arc::new(Feedback::new(robot.joints.len()));
    let (decoder, mut sender) = arm_decoder(ActionDecoding::Values, 10);
    let mut decoder = decoder.follow_robot(&robot, feedback.clone(), FeedbackLimits::default());
    let home: Vec<f64> = robot.joints.iter().map(|j| j.home()).collect();
    let chunk = |sender: &mut ActionSender, id: u64, start: u64, level: f32| {
        sender.begin_chunk(id, start).unwrap();
        (0..10 * HUMANOID_ARM.len()).for_each(|_| sender.value(level).unwrap());
        sender.end_chunk().unwrap();
    };
    chunk(&mut sender, 0, 0, 0.3);
    assert_eq!(watched_ticks(&mut decoder, 0, 50), 0, "waiting for the first state");
    let mut now = 50_000_000;
    for (id, event) in ["fresh", "frozen", "blind", "paused", "resumed", "stopped"]
        .into_iter()
        .enumerate()
    {
        match event {
            "paused" => feedback.pause(),
            "resumed" => feedback.resume(),
            "stopped" => feedback.emergency_stop(),
            _ => {}
        }
        chunk(&mut sender, id as u64 + 1, now, 0.1 * id as f32);
        for tick in 0..400u64 {
            let at = now + tick * 1_000_000;
            feedback.publish_state(at, &home, None);
            if event != "blind" {
                feedback.publish_frame(at);
            }
            assert_eq!(watched_ticks(&mut decoder, at, 1), 0, "{event} at tick {tick}");
        }
        now += 400_000_000;
    }
    let counts = decoder.interventions().snapshot();
    assert!(counts.stop_emergency == 1 && counts.stop_paused == 1, "{counts:?}");
}
