//! The VLA role: pi0-FAST's prompt and state discretisation, action tokens constrained into
//! their slice of the vocabulary and streamed one by one, on the tiny Idefics3 model with
//! OpenVLA bins and on a SmolVLM-sized vocabulary with FAST tokens.

use crate::common;

use std::sync::Arc;

use brainstem_models::action::{BinTokenizer, FastTokenizer, Normalization};
use brainstem_models::generate::{GenerateOptions, TokenConstraint};
use brainstem_models::image::RgbImage;
use brainstem_models::sampling::{Sampler, SamplingParams};
use brainstem_models::vla::{
    bins_clear_of_added_tokens, state_text, ActionConstraint, ActionVocabulary, Vla, VlaSpec, FAST_SKIP_TOKENS,
};
use brainstem_models::vlm::Vlm;
use brainstem_models::LoadOptions;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

#[derive(serde::Deserialize)]
struct StateGolden {
    state: Vec<f64>,
    text: String,
}

#[derive(serde::Deserialize)]
struct ActionGolden {
    pi0fast_state: StateGolden,
}

#[test]
fn state_bins_follow_pi0_fast() {
    let text = std::fs::read_to_string(common::reference_dir().join("action_tokens.json")).unwrap();
    let golden: ActionGolden = serde_json::from_str(&text).unwrap();
    assert_eq!(state_text(&golden.pi0fast_state.state), golden.pi0fast_state.text);
}

fn tiny_vla() -> (
    Vla<brainstem_models::kernels::CpuBackend>,
    Arc<Vlm<brainstem_models::kernels::CpuBackend>>,
) {
    let dir = common::reference_dir().join("tiny-idefics3");
    let vlm = Arc::new(Vlm::load(common::backend(), &dir, LoadOptions::default()).unwrap());
    let spec = VlaSpec {
        // The tiny tokenizer's 42 added tokens follow its 256 bytes: the bins take bytes.
        actions: ActionVocabulary::Bins(BinTokenizer::new(256, 128).unwrap()),
        chunk_steps: 4,
        action_dims: 3,
        state_normalization: vec![Normalization::Bounds { low: -2.0, high: 2.0 }; 3],
    };
    (Vla::new(vlm.clone(), spec).unwrap(), vlm)
}

#[test]
fn bins_over_the_tokenizers_added_tokens_are_refused_and_placed_below_them() {
    let dir = common::reference_dir().join("tiny-idefics3");
    let vlm = Arc::new(Vlm::load(common::backend(), &dir, LoadOptions::default()).unwrap());
    let spec = |bins| VlaSpec {
        actions: ActionVocabulary::Bins(bins),
        chunk_steps: 4,
        action_dims: 3,
        state_normalization: vec![Normalization::Bounds { low: -2.0, high: 2.0 }; 3],
    };
    let overlapping = spec(BinTokenizer::new(298, 256).unwrap());
    let message = Vla::new(vlm.clone(), overlapping).err().unwrap().to_string();
    assert!(
        message.contains("42..=297") && message.contains("256..=297"),
        "{message}"
    );
    let too_many = bins_clear_of_added_tokens(298, 256, &vlm.tokenizer().added_tokens());
    assert!(too_many.is_err(), "255 ids lie between id 0 and the added tokens");
    let placed = bins_clear_of_added_tokens(298, 128, &vlm.tokenizer().added_tokens()).unwrap();
    assert_eq!(placed.token_range(), (128, 255));
    assert!(Vla::new(vlm, spec(placed)).is_ok());
}

#[test]
fn the_tiny_vla_streams_one_binned_chunk_per_call() {
    let (vla, vlm) = tiny_vla();
    let dir = common::reference_dir().join("tiny-idefics3");
    let frame = vlm
        .encode_frame(&RgbImage::open(&dir.join("image.png")).unwrap())
        .unwrap();
    let bins = BinTokenizer::new(256, 128).unwrap();
    for seed in 0..4 {
        let opts = GenerateOptions {
            max_tokens: 32,
            sampling: SamplingParams {
                temperature: 1.0,
                top_p: 1.0,
                seed,
            },
            stop_ids: vec![],
        };
        let mut tokens = Vec::new();
        let stats = vla
            .act(&frame, "pick_up the cup", &[0.1, -0.4, 1.9], &opts, |t| tokens.push(t))
            .unwrap();
        assert_eq!(tokens.len(), 12);
        assert_eq!(stats.generated_tokens, 12);
        assert!(bins.decode(&tokens).is_ok(), "{tokens:?}");
    }
    assert!(vla.prompt("x", &[0.0, f64::NAN, 0.0]).is_err());
    assert!(vla.prompt("x", &[0.0]).is_err());
    assert_eq!(
        vla.prompt("pick_up\nit", &[0.01, 2.0, -2.0]).unwrap(),
        "Task: pick up it, State: 128 255 0;\n"
    );
}

#[test]
fn fast_action_tokens_end_within_budget_whatever_the_logits() {
    let dir = common::reference_dir().join("fast-tokenizer");
    let fast = Arc::new(FastTokenizer::from_dir(&dir, None).unwrap());
    let lm_vocab = 49_280u32;
    let end = 124; // "|" in SmolLM2's vocabulary
    let actions = ActionVocabulary::Fast {
        tokenizer: fast.clone(),
        skip: FAST_SKIP_TOKENS,
        end,
    };
    for seed in 0..50u64 {
        let budget = 2 + (seed as usize % 40);
        let mut constraint = ActionConstraint::new(&actions, lm_vocab, 16, 7).unwrap();
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut sampler = Sampler::new(SamplingParams {
            temperature: 1.0,
            top_p: 1.0,
            seed,
        })
        .unwrap();
        let mut emitted = Vec::new();
        for step in 0..budget {
            let mut logits: Vec<f32> = (0..lm_vocab).map(|_| rng.random_range(-5.0..5.0)).collect();
            logits[end as usize] = -2.0;
            let _work = constraint.restrict(&mut logits, budget - step);
            let token = sampler.sample(&logits).unwrap();
            constraint.advance(token).unwrap();
            emitted.push(token);
            if constraint.is_complete() {
                break;
            }
        }
        assert!(constraint.is_complete(), "seed {seed}: no end within {budget}");
        assert_eq!(emitted.last(), Some(&end));
        for &id in &emitted[..emitted.len() - 1] {
            let fast_id = lm_vocab - 1 - FAST_SKIP_TOKENS - id;
            assert!((fast_id as usize) < fast.vocab_size(), "{id} is not a FAST token");
        }
    }
    let tiny = ActionConstraint::new(&actions, 300, 16, 7);
    assert!(tiny.is_err(), "FAST ids cannot fit a 300-token vocabulary");
}

#[test]
fn a_frame_from_two_cameras_conditions_the_vla_on_both_views() {
    let (vla, vlm) = tiny_vla();
    let image = RgbImage::open(&common::reference_dir().join("tiny-idefics3/image.png")).unwrap();
    let wrist = image.crop(0, 0, image.width() / 2, image.height() / 2);
    let one = vlm.encode_frame(&image).unwrap();
    let two = vlm.encode_views(&[image, wrist]).unwrap();
    assert_eq!(two.views.len(), 2);
    assert_eq!(two.views[0], one.views[0]);
    assert!(two.embedding.rows > one.embedding.rows);
    assert_eq!(
        two.embedding.values[..one.embedding.values.len()],
        one.embedding.values[..]
    );
    let ids = vlm
        .prompt_ids_with_answer("Task: x, State: 1;\n", "Action: ", &two)
        .unwrap();
    let image_id = vlm.tokenizer().token_id("<image>").unwrap();
    assert_eq!(ids.iter().filter(|&&id| id == image_id).count(), two.embedding.rows);
    let mut tokens = Vec::new();
    let opts = GenerateOptions {
        max_tokens: 32,
        sampling: SamplingParams::default(),
        stop_ids: vec![],
    };
    vla.act(&two, "pick", &[0.0, 0.0, 0.0], &opts, |t| tokens.push(t))
        .unwrap();
    assert_eq!(tokens.len(), 12);
    assert!(vlm.encode_views(&[]).is_err());
}
