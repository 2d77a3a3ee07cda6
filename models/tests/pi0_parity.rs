//! pi0 and pi0.5 against lerobot 0.6.1: the tiny policies tools/reference/pi0_reference.py built with
//! lerobot's own modules at test sizes and saved with `save_pretrained`, the tokenizer found in
//! the committed Hugging Face cache layout under the name the preprocessor gives, the camera
//! PNGs and noise the reference used, and lerobot's velocity at every denoising step and its
//! final chunk. f32 agrees to 1e-4 of the chunk's scale; Q8_0's error against the same
//! reference is printed (`--nocapture`) and bounded (Q4_K's 256-wide blocks divide none of the
//! test sizes' widths, so it would run in f32 here). Bad input is refused by name.

use crate::common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use brainstem_models::kernels::{Backend, DType};
use brainstem_models::pi0::Pi0;
use brainstem_models::smolvla::{HubCache, Noise, Observation};
use brainstem_models::LoadOptions;
use serde::Deserialize;

const VARIANTS: [&str; 2] = ["two-cameras", "missing-camera"];
/// The policies of each kind, by lerobot type.
const KINDS: [&str; 2] = ["pi0", "pi05"];

fn root() -> PathBuf {
    common::reference_dir().join("pi0")
}

/// Where the reference keeps policies of `kind`.
fn root_of(kind: &str) -> PathBuf {
    common::reference_dir().join(kind)
}

#[derive(Deserialize)]
struct GoldenText {
    task: String,
    state: Vec<f32>,
    cameras: Vec<String>,
    token_ids: Vec<u32>,
    token_mask: Vec<u32>,
    times: Vec<f32>,
}

struct Golden {
    text: GoldenText,
    tensors: BTreeMap<String, Vec<f32>>,
    noise: Vec<f32>,
    observation: Observation,
}

fn golden(variant: &str) -> Golden {
    golden_of("pi0", variant)
}

fn golden_of(kind: &str, variant: &str) -> Golden {
    let dir = root_of(kind).join(variant).join("golden");
    let text: GoldenText = serde_json::from_slice(&std::fs::read(dir.join("golden.json")).unwrap()).unwrap();
    let observation = common::golden_observation(&dir, &text.cameras, &text.state, &text.task);
    Golden {
        observation,
        noise: common::f32_tensors(&dir.join("noise.safetensors"))
            .remove("noise")
            .unwrap(),
        tensors: common::f32_tensors(&dir.join("golden.safetensors")),
        text,
    }
}

fn load<B: Backend>(backend: Arc<B>, variant: &str, options: LoadOptions) -> Pi0<B> {
    load_of(backend, "pi0", variant, options)
}

/// A policy of `kind`, its tokenizer from the cache the reference wrote beside pi0's.
fn load_of<B: Backend>(backend: Arc<B>, kind: &str, variant: &str, options: LoadOptions) -> Pi0<B> {
    let hub = HubCache::at_home(&root().join("hf-home"));
    Pi0::load(backend, &root_of(kind).join(variant), None, &hub, options).unwrap()
}

#[test]
fn f32_chunks_and_every_step_match_lerobot() {
    for (kind, variant) in KINDS.iter().flat_map(|k| VARIANTS.map(|v| (*k, v))) {
        let golden = golden_of(kind, variant);
        let policy = load_of(common::backend(), kind, variant, LoadOptions::default());
        let variant = format!("{kind} {variant}");
        let (chunk, trace) = policy
            .predict_traced(&golden.observation, &Noise::Values(golden.noise.clone()))
            .unwrap();
        let unpadded: Vec<u32> = golden
            .text
            .token_ids
            .iter()
            .zip(&golden.text.token_mask)
            .filter(|(_, &mask)| mask == 1)
            .map(|(&id, _)| id)
            .collect();
        assert_eq!(trace.token_ids, unpadded, "{variant}: task tokens");
        assert_eq!(trace.times, golden.text.times, "{variant}: denoising times");
        for (step, velocity) in trace.velocities.iter().enumerate() {
            let e = common::max_relative_error(velocity, &golden.tensors[&format!("step_{step}_velocity")]);
            assert!(e < 1e-4, "{variant}: step {step} velocity off by {e:e} of its scale");
        }
        let e = common::max_relative_error(&chunk.values, &golden.tensors["actions"]);
        assert!(e < 1e-4, "{variant}: unnormalized chunk off by {e:e}");
        println!(
            "{variant}: f32 chunk error {e:.2e} of its scale, prefix {} rows",
            trace.prefix_len
        );
    }
}

#[test]
fn quantized_chunks_stay_near_lerobot() {
    for (kind, variant) in KINDS.iter().flat_map(|k| VARIANTS.map(|v| (*k, v))) {
        let golden = golden_of(kind, variant);
        let options = LoadOptions {
            quantize: Some(DType::Q8_0),
            ..LoadOptions::default()
        };
        let policy = load_of(common::backend(), kind, variant, options);
        let variant = format!("{kind} {variant}");
        let chunk = policy
            .predict(&golden.observation, &Noise::Values(golden.noise.clone()))
            .unwrap();
        let e = common::max_relative_error(&chunk.values, &golden.tensors["actions"]);
        println!("{variant}: Q8_0 chunk error {e:.3e} of its scale");
        assert!(e > 1e-6 && e < 0.1, "{variant}: Q8_0 chunk off by {e:e}");
    }
}

#[test]
fn bad_input_is_refused_by_name() {
    let policy = load(common::backend(), "two-cameras", LoadOptions::default());
    let golden = golden("two-cameras");
    let noise = Noise::Seed(3);
    let refuse = |obs: &Observation, needle: &str| {
        let message = policy.predict(obs, &noise).unwrap_err().to_string();
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    };
    let mut obs = golden.observation.clone();
    obs.state.pop();
    refuse(&obs, "observation.state has 5 values, the policy takes 6");
    let mut obs = golden.observation.clone();
    obs.state[2] = f32::NAN;
    refuse(&obs, "observation.state[2] is NaN");
    let mut obs = golden.observation.clone();
    let top = obs.images.remove("top").unwrap();
    obs.images.insert("left".into(), top);
    refuse(&obs, "no camera \"left\"");
    let mut obs = golden.observation.clone();
    obs.images.clear();
    refuse(&obs, "at least one is needed");
    let short = Noise::Values(vec![0.0; 3]);
    let message = policy.predict(&golden.observation, &short).unwrap_err().to_string();
    assert!(message.contains("noise must be 48 finite values ([6, 8])"), "{message}");

    let hub = HubCache::at_home(&root().join("hf-home"));
    let smolvla = common::reference_dir().join("smolvla/two-cameras");
    let message = Pi0::load(common::backend(), &smolvla, None, &hub, LoadOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(message.contains("\"pi0\"") && message.contains("smolvla"), "{message}");
    let dir = common::policy_copy(&root().join("two-cameras"), "pi0-wrong-resolution");
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let config = config.replacen(
        "\"image_resolution\": [\n        56,\n        56\n    ]",
        "\"image_resolution\": [64, 64]",
        1,
    );
    std::fs::write(dir.join("config.json"), config).unwrap();
    let message = Pi0::load(common::backend(), &dir, None, &hub, LoadOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        message.contains("image_resolution is 64x64, the checkpoint's vision tower takes 56x56"),
        "{message}"
    );
}

#[test]
fn the_wgpu_backend_matches_the_cpu_backend() {
    let backend = Arc::new(
        brainstem_models::kernels::WgpuBackend::new(None)
            .unwrap_or_else(|e| panic!("the wgpu tests need an adapter: {e}")),
    );
    for (kind, variant) in KINDS.iter().flat_map(|k| VARIANTS.map(|v| (*k, v))) {
        let golden = golden_of(kind, variant);
        let noise = Noise::Values(golden.noise.clone());
        let gpu = load_of(backend.clone(), kind, variant, LoadOptions::default());
        let chunk = gpu.predict(&golden.observation, &noise).unwrap();
        let e = common::max_relative_error(&chunk.values, &golden.tensors["actions"]);
        assert!(e < 1e-4, "{variant}: wgpu chunk off lerobot's by {e:e} of its scale");
    }
}

#[test]
fn a_checkpoint_keeping_only_the_tied_head_loads_as_lerobot_loads_it() {
    let dir = common::policy_copy(&root().join("two-cameras"), "pi0-head-only");
    let embedding = "model.paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight";
    let head = "model.paligemma_with_expert.paligemma.lm_head.weight";
    common::rewrite_weights(&dir, |tensors| {
        let copy = tensors.iter().find(|(name, _, _)| name == embedding).unwrap().clone();
        tensors.retain(|(name, _, _)| name != embedding && name != head);
        tensors.push((head.to_string(), copy.1, copy.2));
    });
    let hub = HubCache::at_home(&root().join("hf-home"));
    let policy = Pi0::load(common::backend(), &dir, None, &hub, LoadOptions::default()).unwrap();
    assert_eq!(policy.shape().paligemma.embedding, head);
    let golden = golden("two-cameras");
    let chunk = policy
        .predict(&golden.observation, &Noise::Values(golden.noise.clone()))
        .unwrap();
    let e = common::max_relative_error(&chunk.values, &golden.tensors["actions"]);
    assert!(e < 1e-4, "off lerobot's chunk by {e:e}");
}

#[test]
fn a_config_whose_type_disagrees_with_the_experts_norms_is_refused() {
    let dir = common::policy_copy(&root_of("pi05").join("two-cameras"), "pi0-config-pi05-weights");
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        config.replacen("\"type\": \"pi05\"", "\"type\": \"pi0\"", 1),
    )
    .unwrap();
    let hub = HubCache::at_home(&root().join("hf-home"));
    let message = Pi0::load(common::backend(), &dir, None, &hub, LoadOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        message.contains("a pi0 policy, but the expert's norms are adaptive"),
        "{message}"
    );
}
