//! Sweeps on the virtual clock, on the built-in demo: the simulation is deterministic (same
//! inputs, identical points, whether the run is the first or a restart); more TOPS is never
//! slower and never cheaper in energy per operation; replaying recorded stage costs gives the
//! timing that recomputing every call gives.

use std::path::PathBuf;

use brainstem_runtime::cerebellum::motion::{JointCommand, JointSink};
use brainstem_runtime::compute::chip::ChipProfile;
use brainstem_runtime::compute::partition::available_cores;
use brainstem_runtime::config::RuntimeConfig;
use brainstem_runtime::demo::{demo_config, SyntheticCamera, DEMO_INSTRUCTION};
use brainstem_runtime::pipeline::stages::Pipeline;
use brainstem_runtime::simulate::sweep::{simulate_point, Layout, SweepPoint};
use brainstem_runtime::simulate::Simulation;

struct Discard;

impl JointSink for Discard {
    fn send(&mut self, _: &JointCommand<'_>) {}
}

fn config(layout: Layout) -> RuntimeConfig {
    let mut config = demo_config(&PathBuf::from(env!("CARGO_TARGET_TMPDIR"))).unwrap();
    config.compute = Some(layout.compute(available_cores()));
    config
}

fn simulation(config: &RuntimeConfig, replay: bool) -> Simulation {
    let pipeline = Pipeline::load(config).unwrap();
    let sim = Simulation::new(pipeline, Box::new(Discard), Box::new(SyntheticCamera::default()), 5.0).unwrap();
    if replay {
        sim.replaying()
    } else {
        sim
    }
}

fn point(sim: &mut Simulation, layout: Layout, budget: f64) -> SweepPoint {
    let family = ChipProfile::builtin("turing-like").unwrap();
    let chips = layout.chips_for(&family, budget);
    simulate_point(sim, chips, DEMO_INSTRUCTION, 3.0, "demo", layout, budget).unwrap()
}

#[test]
fn a_point_is_the_same_every_time() {
    let config = config(Layout::Split);
    let mut sim = simulation(&config, true);
    let first = point(&mut sim, Layout::Split, 30.0);
    let restarted = point(&mut sim, Layout::Split, 30.0);
    let fresh = point(&mut simulation(&config, true), Layout::Split, 30.0);
    assert_eq!(first, restarted);
    assert_eq!(first, fresh);
    assert!(first.chunk_rate_hz > 5.0 && first.replan_rate_hz > 1.0, "{first:?}");
    assert!(first.peak_watts > first.average_watts, "{first:?}");
}

#[test]
fn more_tops_is_never_slower_nor_cheaper_per_operation() {
    for layout in [Layout::Split, Layout::OneChip] {
        let mut sim = simulation(&config(layout), true);
        let points: Vec<SweepPoint> = [3.0, 10.0, 30.0, 100.0, 300.0, 1000.0]
            .into_iter()
            .map(|tops| point(&mut sim, layout, tops))
            .collect();
        for pair in points.windows(2) {
            let (small, big) = (&pair[0], &pair[1]);
            let at = format!("{:?}: {} -> {} TOPS", layout, small.budget_tops, big.budget_tops);
            assert!(
                big.vla_chunk_p99_ms <= small.vla_chunk_p99_ms,
                "{at}: {small:?} {big:?}"
            );
            assert!(big.plan_p99_ms <= small.plan_p99_ms, "{at}");
            assert!(big.vision_p50_ms <= small.vision_p50_ms, "{at}");
            assert!(
                big.picojoules_per_op >= small.picojoules_per_op,
                "{at}: {small:?} {big:?}"
            );
        }
    }
}

#[test]
fn replayed_costs_time_the_run_as_recomputing_does() {
    let config = config(Layout::TwoChips);
    let replayed = point(&mut simulation(&config, true), Layout::TwoChips, 30.0);
    let recomputed = point(&mut simulation(&config, false), Layout::TwoChips, 30.0);
    let close = |a: f64, b: f64| (a - b).abs() <= 0.05 * b;
    assert!(
        close(replayed.vla_chunk_p50_ms, recomputed.vla_chunk_p50_ms),
        "{replayed:?}\n{recomputed:?}"
    );
    assert!(
        close(replayed.plan_p50_ms, recomputed.plan_p50_ms),
        "{replayed:?}\n{recomputed:?}"
    );
    assert!(
        close(replayed.average_watts, recomputed.average_watts),
        "{replayed:?}\n{recomputed:?}"
    );
    assert_eq!(replayed.chunk_rate_hz, recomputed.chunk_rate_hz);
}
