//! pi0-FAST against lerobot 0.6.1: the tiny policies tools/reference/pi0fast_reference.py built
//! with lerobot's own modules at test sizes and saved with `save_pretrained`, both tokenizers
//! found in the committed Hugging Face cache layout under the names the config gives, the
//! camera PNGs the reference used, and what lerobot sampled from them: the prompt's tokens, the
//! greedy tokens (one variant runs to its budget, one stops at `|`), the FAST tokens they become,
//! the first steps' logits and the decoded, unnormalized chunk. f32 samples the same tokens and
//! decodes the same chunk; the tokens stream out as they are sampled; bad input is refused by
//! name.

use crate::common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use brainstem_models::kernels::{Backend, DType};
use brainstem_models::pi0fast::{Pi0Fast, SampleOptions, TokenizerFolders};
use brainstem_models::smolvla::{HubCache, Observation};
use brainstem_models::LoadOptions;
use serde::Deserialize;

const VARIANTS: [&str; 2] = ["two-cameras", "end"];
/// Logits the tests compare, of the first steps.
const LOGITS_KEPT: usize = 3;

fn root() -> PathBuf {
    common::reference_dir().join("pi0fast")
}

fn hub() -> HubCache {
    HubCache::at_home(&root().join("hf-home"))
}

#[derive(Deserialize)]
struct GoldenText {
    task: String,
    state: Vec<f32>,
    cameras: Vec<String>,
    token_ids: Vec<u32>,
    token_mask: Vec<u32>,
    generated: Vec<u32>,
    end_token: u32,
    stopped: bool,
    fast_tokens: Vec<i64>,
}

struct Golden {
    text: GoldenText,
    tensors: BTreeMap<String, Vec<f32>>,
    observation: Observation,
}

fn golden(variant: &str) -> Golden {
    let dir = root().join(variant).join("golden");
    let text: GoldenText = serde_json::from_slice(&std::fs::read(dir.join("golden.json")).unwrap()).unwrap();
    let observation = common::golden_observation(&dir, &text.cameras, &text.state, &text.task);
    Golden {
        observation,
        tensors: common::f32_tensors(&dir.join("golden.safetensors")),
        text,
    }
}

fn load<B: Backend>(backend: Arc<B>, variant: &str, options: LoadOptions) -> Pi0Fast<B> {
    Pi0Fast::load(
        backend,
        &root().join(variant),
        TokenizerFolders::default(),
        &hub(),
        options,
    )
    .unwrap()
}

fn traced() -> SampleOptions {
    SampleOptions {
        seed: 0,
        keep_logits: LOGITS_KEPT,
    }
}

#[test]
fn f32_samples_lerobots_tokens_and_decodes_its_chunk() {
    for variant in VARIANTS {
        let golden = golden(variant);
        let policy = load(common::backend(), variant, LoadOptions::default());
        let (chunk, trace) = policy.predict(&golden.observation, traced()).unwrap();
        let mut prompt: Vec<u32> = golden
            .text
            .token_ids
            .iter()
            .zip(&golden.text.token_mask)
            .filter(|(_, &mask)| mask == 1)
            .map(|(&id, _)| id)
            .collect();
        prompt.push(trace.prompt_ids[trace.prompt_ids.len() - 1]);
        assert_eq!(trace.prompt_ids, prompt, "{variant}: the prompt's tokens, then <bos>");
        for (step, logits) in trace.logits.iter().enumerate() {
            let e = common::max_relative_error(logits, &golden.tensors[&format!("logits_{step}")]);
            assert!(e < 1e-4, "{variant}: step {step}'s logits off by {e:e} of their scale");
        }
        assert_eq!(trace.generated, golden.text.generated, "{variant}: greedy tokens");
        assert_eq!(
            trace.generated.last() == Some(&golden.text.end_token),
            golden.text.stopped,
            "{variant}: stopping at |"
        );
        let fast: Vec<i64> = golden
            .text
            .fast_tokens
            .iter()
            .copied()
            .filter(|t| (0..512).contains(t))
            .collect();
        let ours: Vec<i64> = trace.fast_tokens.iter().map(|&t| i64::from(t)).collect();
        assert_eq!(ours, fast, "{variant}: FAST tokens");
        let e = common::max_relative_error(&trace.normalized, &golden.tensors["chunk_normalized"]);
        assert!(e < 1e-6, "{variant}: the decoded chunk off by {e:e}");
        let e = common::max_relative_error(&chunk.values, &golden.tensors["actions"]);
        assert!(e < 1e-6, "{variant}: unnormalized chunk off by {e:e}");
        println!(
            "{variant}: {} tokens, {} FAST, prefix {} rows, chunk {}x{}",
            trace.generated.len(),
            trace.fast_tokens.len(),
            trace.prefix_len,
            chunk.steps,
            chunk.dims
        );
    }
}

#[test]
fn fast_tokens_stream_out_as_they_are_sampled() {
    let golden = golden("two-cameras");
    let policy = load(common::backend(), "two-cameras", LoadOptions::default());
    let mut streamed = Vec::new();
    let mut estimate = policy.action_tokenizer().stream_decoder();
    let (_, trace) = policy
        .sample(&golden.observation, SampleOptions::default(), |token| {
            streamed.push(token);
            estimate.push_token(token).unwrap();
        })
        .unwrap();
    assert_eq!(streamed, trace.fast_tokens);
    let progressive: Vec<f32> = estimate.estimate().iter().map(|&v| v as f32).collect();
    assert_eq!(
        progressive, trace.normalized,
        "the stream decoder's estimate is the chunk"
    );
}

#[test]
fn quantized_logits_stay_near_lerobot() {
    for variant in VARIANTS {
        let golden = golden(variant);
        let options = LoadOptions {
            quantize: Some(DType::Q8_0),
            ..LoadOptions::default()
        };
        let policy = load(common::backend(), variant, options);
        let (_, trace) = policy.predict(&golden.observation, traced()).unwrap();
        let e = common::max_relative_error(&trace.logits[0], &golden.tensors["logits_0"]);
        let same = trace
            .generated
            .iter()
            .zip(&golden.text.generated)
            .take_while(|(a, b)| a == b)
            .count();
        println!(
            "{variant}: Q8_0 first logits off by {e:.3e}; the first {same} of {} tokens agree",
            golden.text.generated.len()
        );
        assert!(e > 1e-6 && e < 0.1, "{variant}: Q8_0 logits off by {e:e}");
    }
}

#[test]
fn the_wgpu_backend_samples_the_same_tokens() {
    let backend = Arc::new(
        brainstem_models::kernels::WgpuBackend::new(None)
            .unwrap_or_else(|e| panic!("the wgpu tests need an adapter: {e}")),
    );
    for variant in VARIANTS {
        let golden = golden(variant);
        let gpu = load(backend.clone(), variant, LoadOptions::default());
        let (chunk, trace) = gpu.predict(&golden.observation, SampleOptions::default()).unwrap();
        assert_eq!(trace.generated, golden.text.generated, "{variant}: wgpu's tokens");
        let e = common::max_relative_error(&chunk.values, &golden.tensors["actions"]);
        assert!(e < 1e-6, "{variant}: wgpu chunk off lerobot's by {e:e}");
    }
}

#[test]
fn bad_input_is_refused_by_name() {
    let policy = load(common::backend(), "two-cameras", LoadOptions::default());
    let golden = golden("two-cameras");
    let refuse = |obs: &Observation, needle: &str| {
        let message = policy.predict(obs, SampleOptions::default()).unwrap_err().to_string();
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    };
    let mut obs = golden.observation.clone();
    obs.state.pop();
    refuse(&obs, "observation.state has 5 values, the policy takes 6");
    let mut obs = golden.observation.clone();
    obs.state[1] = f32::INFINITY;
    refuse(&obs, "observation.state[1] is inf");
    let mut obs = golden.observation.clone();
    obs.images.clear();
    refuse(&obs, "at least one is needed");

    let pi0 = common::reference_dir().join("pi0/two-cameras");
    let message = Pi0Fast::load(
        common::backend(),
        &pi0,
        TokenizerFolders::default(),
        &hub(),
        LoadOptions::default(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(message.contains("\"pi0_fast\"") && message.contains("pi0"), "{message}");
    let empty = HubCache::at_home(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")));
    let message = Pi0Fast::load(
        common::backend(),
        &root().join("end"),
        TokenizerFolders::default(),
        &empty,
        LoadOptions::default(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        message.contains("google/paligemma-3b-pt-224") && message.contains("Hugging Face cache"),
        "{message}"
    );
}

#[test]
fn tokens_that_do_not_open_with_action_are_refused_when_the_config_checks() {
    let dir = common::policy_copy(&root().join("end"), "pi0fast-validate-prefix");
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let config = config.replacen(
        "\"validate_action_token_prefix\": false",
        "\"validate_action_token_prefix\": true",
        1,
    );
    std::fs::write(dir.join("config.json"), config).unwrap();
    let policy = Pi0Fast::load(
        common::backend(),
        &dir,
        TokenizerFolders::default(),
        &hub(),
        LoadOptions::default(),
    )
    .unwrap();
    let message = policy
        .predict(&golden("end").observation, SampleOptions::default())
        .unwrap_err()
        .to_string();
    assert!(message.contains("must begin with \"Action:\""), "{message}");
}
