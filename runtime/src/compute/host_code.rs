//! How fast one of this machine's cores runs the runtime's host-side work, by the ledger's
//! own counts: the rate behind the measured `host` profile's [`HostCpu`], checked the way
//! the int8 rate is (the work itself, timed, over what the ledger says it was). The probe
//! runs the real code: a plan-constraint step over a 32k-entry vocabulary, sampling at a
//! temperature over 49k logits, and a camera frame resized with padding to 512 px.

use std::time::Instant;

use brainstem_models::generate::TokenConstraint;
use brainstem_models::host_work;
use brainstem_models::image::planar::{resize_with_pad, PadPlacement, PlanarImage};
use brainstem_models::plan::{PlanConstraint, PlanSchema};
use brainstem_models::sampling::{Sampler, SamplingParams};
use brainstem_models::synthetic::uniform;

use crate::compute::chip::HostCpu;
use crate::error::Result;
use crate::kernels::{Cost, OpKind};

/// A vocabulary shaped like a byte-pair tokenizer's: `size` entries of one to eight
/// characters, letters mostly, some with a leading space, digits and punctuation.
fn synthetic_vocabulary(size: usize) -> Vec<String> {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz_\":{},[]0123456789 ";
    (0..size as u64)
        .map(|id| {
            let len = 1 + (uniform(1, id) * 8.0) as u64;
            (0..len)
                .map(|at| CHARS[(uniform(2 + at, id) * CHARS.len() as f64) as usize % CHARS.len()] as char)
                .collect()
        })
        .collect()
}

/// Seconds and ledger cost of each kind of host work, run `rounds` times.
pub fn host_work_timings(rounds: usize) -> Result<Vec<(OpKind, f64, Cost)>> {
    let schema = PlanSchema::new(vec!["pick".into(), "place".into(), "open_gripper".into()])?;
    let mut constraint = PlanConstraint::with_token_texts(schema, synthetic_vocabulary(32_768));
    let logits: Vec<f32> = (0..49_152).map(|i| (uniform(3, i) * 16.0 - 8.0) as f32).collect();
    let mut sampler = Sampler::new(SamplingParams {
        temperature: 1.0,
        top_p: 1.0,
        seed: 1,
    })?;
    let frame = PlanarImage::filled(640, 480, 0.5);
    let mut out = vec![
        (OpKind::Constrain, 0.0, Cost::default()),
        (OpKind::Sample, 0.0, Cost::default()),
    ];
    out.push((OpKind::ImagePrep, 0.0, Cost::default()));
    for _ in 0..rounds {
        let mut masked = vec![0f32; 32_768];
        let started = Instant::now();
        out[0].2 += constraint.restrict(&mut masked, 64);
        out[0].1 += started.elapsed().as_secs_f64();
        let started = Instant::now();
        out[1].2 += sampler.sample_counted(&logits)?.1;
        out[1].1 += started.elapsed().as_secs_f64();
        let started = Instant::now();
        let pixels = resize_with_pad(&frame, 512, 512, PadPlacement::BottomRight, 0.0);
        let scaled: Vec<f32> = pixels.data.iter().map(|v| v * 2.0 - 1.0).collect();
        out[2].1 += started.elapsed().as_secs_f64();
        out[2].2 += host_work::resized(4 * frame.data.len(), scaled.len());
    }
    Ok(out)
}

/// This core as the host CPU of a measured profile: the rate it runs the probe's host work
/// at, the read bandwidth `read_bytes_per_s` measured for it, the model's energy per
/// operation.
pub fn measured_host_cpu(name: &str, read_bytes_per_s: f64) -> Result<HostCpu> {
    let timings = host_work_timings(3)?;
    let seconds: f64 = timings.iter().map(|(_, s, _)| s).sum();
    let ops: u64 = timings.iter().map(|(_, _, c)| c.float_ops).sum();
    Ok(HostCpu {
        name: name.into(),
        gops: ops as f64 / seconds.max(1e-9) / 1e9,
        memory_gbps: read_bytes_per_s / 1e9,
        op_pj: HostCpu::arm_core("", 1.0).op_pj,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_runs_every_kind_of_host_work_and_counts_it() {
        let timings = host_work_timings(1).unwrap();
        for (kind, seconds, cost) in &timings {
            assert!(kind.is_host(), "{kind:?}");
            assert!(
                *seconds > 0.0 && cost.float_ops > 0 && cost.bytes_read > 0,
                "{kind:?}: {cost:?}"
            );
            eprintln!("{kind:?}: {:.2} Gops/s", cost.float_ops as f64 / seconds / 1e9);
        }
        let cpu = measured_host_cpu("core", 1e10).unwrap();
        assert!(cpu.gops > 0.0 && cpu.memory_gbps == 10.0);
    }
}
