//! SmolVLA against lerobot 0.6.1: the tiny policies tools/reference/smolvla_reference.py saved
//! with lerobot's own `save_pretrained`, their backbone found in the committed Hugging Face
//! cache layout, the camera PNGs and noise the reference used, and lerobot's velocity at every
//! denoising step and its final chunk. f32 agrees to 1e-4 of the chunk's scale; the quantized
//! formats' error against the same reference is printed (`--nocapture`) and bounded.

use crate::common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use brainstem_models::kernels::{Backend, DType};
use brainstem_models::smolvla::rtc::PrefixSchedule;
use brainstem_models::smolvla::{ChunkPrefix, HubCache, Noise, Observation, RealTimeChunking, SmolVla};
use brainstem_models::LoadOptions;
use serde::Deserialize;

pub const VARIANTS: [&str; 2] = ["two-cameras", "missing-camera"];

pub fn root() -> PathBuf {
    common::reference_dir().join("smolvla")
}

pub fn hub() -> HubCache {
    HubCache::at_home(&root().join("hf-home"))
}

#[derive(Deserialize)]
pub struct GoldenText {
    pub task: String,
    pub state: Vec<f32>,
    pub cameras: Vec<String>,
    pub token_ids: Vec<u32>,
    pub times: Vec<f32>,
}

pub struct Golden {
    pub text: GoldenText,
    pub tensors: BTreeMap<String, Vec<f32>>,
    pub noise: Vec<f32>,
    pub observation: Observation,
}

pub fn golden(variant: &str) -> Golden {
    let dir = root().join(variant).join("golden");
    let text: GoldenText = serde_json::from_slice(&std::fs::read(dir.join("golden.json")).unwrap()).unwrap();
    let observation = common::golden_observation(&dir, &text.cameras, &text.state, &text.task);
    Golden {
        noise: common::f32_tensors(&dir.join("noise.safetensors"))
            .remove("noise")
            .unwrap(),
        tensors: common::f32_tensors(&dir.join("golden.safetensors")),
        observation,
        text,
    }
}

pub fn load<B: Backend>(backend: Arc<B>, variant: &str, options: LoadOptions) -> SmolVla<B> {
    SmolVla::load(backend, &root().join(variant), None, &hub(), options).unwrap()
}

/// Largest absolute difference over the reference's largest magnitude.
fn error(ours: &[f32], reference: &[f32]) -> f32 {
    common::max_relative_error(ours, reference)
}

#[test]
fn f32_chunks_and_every_step_match_lerobot() {
    for variant in VARIANTS {
        let golden = golden(variant);
        let policy = load(common::backend(), variant, LoadOptions::default());
        let (chunk, trace) = policy
            .predict_traced(&golden.observation, &Noise::Values(golden.noise.clone()))
            .unwrap();
        assert_eq!(trace.token_ids, golden.text.token_ids, "{variant}: task tokens");
        assert_eq!(trace.times, golden.text.times, "{variant}: denoising times");
        for (step, velocity) in trace.velocities.iter().enumerate() {
            let reference = &golden.tensors[&format!("step_{step}_velocity")];
            let e = error(velocity, reference);
            assert!(e < 1e-4, "{variant}: step {step} velocity off by {e:e} of its scale");
            let e = error(&trace.samples[step], &golden.tensors[&format!("step_{step}_x")]);
            assert!(e < 1e-4, "{variant}: step {step} sample off by {e:e}");
        }
        let cut: Vec<f32> = trace
            .normalized
            .chunks_exact(policy.config().max_action_dim)
            .flat_map(|row| row[..chunk.dims].to_vec())
            .collect();
        let e = error(&cut, &golden.tensors["chunk_normalized"]);
        assert!(e < 1e-4, "{variant}: normalized chunk off by {e:e}");
        let e = error(&chunk.values, &golden.tensors["actions"]);
        assert!(e < 1e-4, "{variant}: unnormalized chunk off by {e:e}");
        println!(
            "{variant}: f32 chunk error {e:.2e} of its scale, prefix {} rows",
            trace.prefix_len
        );
    }
}

#[test]
fn quantized_chunks_stay_near_lerobot() {
    for variant in VARIANTS {
        let golden = golden(variant);
        for (dtype, bound) in [(DType::Q8_0, 0.05), (DType::Q4K, 0.5)] {
            let options = LoadOptions {
                quantize: Some(dtype),
                ..LoadOptions::default()
            };
            let policy = load(common::backend(), variant, options);
            let chunk = policy
                .predict(&golden.observation, &Noise::Values(golden.noise.clone()))
                .unwrap();
            let e = error(&chunk.values, &golden.tensors["actions"]);
            println!("{variant}: {dtype:?} chunk error {e:.3e} of its scale");
            assert!(e < bound, "{variant}: {dtype:?} chunk off by {e:e}");
        }
    }
}

#[test]
fn the_wgpu_backend_matches_the_cpu_backend() {
    let backend = Arc::new(
        brainstem_models::kernels::WgpuBackend::new(None)
            .unwrap_or_else(|e| panic!("the wgpu tests need an adapter: {e}")),
    );
    for variant in VARIANTS {
        let golden = golden(variant);
        let noise = Noise::Values(golden.noise.clone());
        let gpu = load(backend.clone(), variant, LoadOptions::default());
        let cpu = load(common::backend(), variant, LoadOptions::default());
        let (ours, theirs) = (
            gpu.predict(&golden.observation, &noise).unwrap(),
            cpu.predict(&golden.observation, &noise).unwrap(),
        );
        let e = error(&ours.values, &theirs.values);
        assert!(e < 1e-4, "{variant}: wgpu chunk off the CPU's by {e:e} of its scale");
        let e = error(&ours.values, &golden.tensors["actions"]);
        assert!(e < 1e-4, "{variant}: wgpu chunk off lerobot's by {e:e}");
    }
}

#[test]
fn real_time_chunking_guides_the_chunk_as_lerobots_rtc_does() {
    let golden = golden("two-cameras");
    let text: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root().join("two-cameras/golden/golden.json")).unwrap()).unwrap();
    let settings = &text["rtc"];
    let rtc = RealTimeChunking {
        execution_horizon: settings["execution_horizon"].as_u64().unwrap() as usize,
        max_guidance_weight: settings["max_guidance_weight"].as_f64().unwrap() as f32,
        schedule: PrefixSchedule::Linear,
    };
    let left_over = &golden.tensors["rtc_left_over"];
    let prefix = ChunkPrefix {
        left_over,
        dims: 6,
        inference_delay: settings["inference_delay"].as_u64().unwrap() as usize,
    };
    let policy = load(common::backend(), "two-cameras", LoadOptions::default());
    let noise = Noise::Values(golden.tensors["rtc_noise"].clone());
    let (guided, _) = policy
        .predict_guided(&golden.observation, &noise, Some((&rtc, &prefix)))
        .unwrap();
    let e = error(&guided.values, &golden.tensors["rtc_actions"]);
    assert!(e < 1e-4, "guided chunk off lerobot's by {e:e} of its scale");
    let (free, _) = policy.predict_traced(&golden.observation, &noise).unwrap();
    let moved = error(&free.values, &golden.tensors["rtc_actions"]);
    assert!(moved > 1e-2, "the guidance changed the chunk by only {moved:e}");
}
