//! Constrained plan decoding: whatever the logits (random, as random weights give), the text
//! is a plan that parses and uses only the configured skills, within the token budget; on a
//! byte-level vocabulary and on SmolLM2's real 49k-token BPE vocabulary; and end to end
//! through the tiny Idefics3 model.

use crate::common;

use brainstem_models::generate::{GenerateOptions, TokenConstraint};
use brainstem_models::image::RgbImage;
use brainstem_models::plan::grammar::State;
use brainstem_models::plan::{Plan, PlanConstraint, PlanSchema};
use brainstem_models::sampling::{Sampler, SamplingParams};
use brainstem_models::vlm::Vlm;
use brainstem_models::{LoadOptions, Tokenizer, WeightFile};
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn schema() -> PlanSchema {
    PlanSchema::new(
        ["pick", "place", "push", "navigate", "open_gripper"]
            .map(String::from)
            .to_vec(),
    )
    .unwrap()
}

fn byte_vocabulary() -> Vec<String> {
    let tokenizer = Tokenizer::from_json_file(&common::reference_dir().join("tiny-idefics3/tokenizer.json")).unwrap();
    (0..tokenizer.vocab_size() as u32)
        .map(|id| tokenizer.decode(&[id]).unwrap())
        .collect()
}

/// Decodes with seeded random logits (a stand-in for random weights), returning the text.
fn decode_with_random_logits(vocabulary: &[String], seed: u64, budget: usize, temperature: f32) -> String {
    let mut constraint = PlanConstraint::with_token_texts(schema(), vocabulary.to_vec());
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut sampler = Sampler::new(SamplingParams {
        temperature,
        top_p: 1.0,
        seed,
    })
    .unwrap();
    for step in 0..budget {
        let mut logits: Vec<f32> = (0..vocabulary.len()).map(|_| rng.random_range(-8.0..8.0)).collect();
        constraint.restrict(&mut logits, budget - step);
        let token = sampler.sample(&logits).expect("some token is always allowed");
        constraint.advance(token).unwrap();
        if constraint.is_complete() {
            return constraint.text().to_string();
        }
    }
    panic!("no complete plan within {budget} tokens: {:?}", constraint.text());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_logits_give_a_plan_within_budget(seed in any::<u64>(), budget in 15usize..300, greedy in any::<bool>()) {
        let vocabulary = byte_vocabulary();
        let text = decode_with_random_logits(&vocabulary, seed, budget, if greedy { 0.0 } else { 1.0 });
        let plan = Plan::parse(&text, &schema()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(plan.subtasks.len() <= 8);
        prop_assert!(plan.subtasks.iter().all(|t| t.args.len() <= 4));
    }
}

#[test]
fn smollm2_vocabulary_gives_plans_too() {
    let file = WeightFile::open(&common::smollm2_gguf()).unwrap();
    let tokenizer = Tokenizer::from_gguf(&file.gguf_metadata().unwrap()).unwrap();
    let vocabulary: Vec<String> = (0..tokenizer.vocab_size() as u32)
        .map(|id| tokenizer.decode(&[id]).unwrap())
        .collect();
    for seed in 0..6 {
        let text = decode_with_random_logits(&vocabulary, seed, 120, 1.0);
        Plan::parse(&text, &schema()).unwrap();
    }
}

#[test]
fn the_grammar_accepts_plans_and_refuses_near_misses() {
    let schema = schema();
    let run = |text: &str| text.chars().try_fold(State::start(), |state, c| state.step(c, &schema));
    let good = r#"{"subtasks":[{"skill":"pick","args":{"object":"red cup"}},{"skill":"place","args":{}}]}"#;
    assert_eq!(run(good), Some(State::Done));
    assert_eq!(run(r#"{"subtasks":[]}"#), Some(State::Done));
    for bad in [
        r#"{"subtasks":[{"skill":"fly","args":{}}]}"#,
        r#"{"subtasks":[{"skill":"pick","args":{"Object":"x"}}]}"#,
        r#"{"subtasks":[{"skill":"pick","args":{}},]}"#,
        r#"{"subtasks": []}"#,
    ] {
        assert!(run(bad) != Some(State::Done), "accepted {bad}");
    }
}

#[test]
fn the_tiny_vlm_plans_from_an_image_with_any_seed() {
    let dir = common::reference_dir().join("tiny-idefics3");
    let vlm = Vlm::load(common::backend(), &dir, LoadOptions::default()).unwrap();
    let frame = vlm
        .encode_frame(&RgbImage::open(&dir.join("image.png")).unwrap())
        .unwrap();
    for seed in 0..4 {
        let opts = GenerateOptions {
            max_tokens: 96,
            sampling: SamplingParams {
                temperature: 1.0,
                top_p: 1.0,
                seed,
            },
            stop_ids: vec![],
        };
        let (plan, _) = vlm
            .plan("put the red cup on the green box", &frame, &schema(), &opts)
            .unwrap();
        assert!(plan.subtasks.iter().all(|t| schema().skills.contains(&t.skill)));
    }
    let tight = GenerateOptions {
        max_tokens: 3,
        sampling: SamplingParams::default(),
        stop_ids: vec![],
    };
    assert!(vlm.plan("anything", &frame, &schema(), &tight).is_err());
}

#[test]
fn a_synthetic_checkpoint_loads_and_plans() {
    let dir = tempfile::tempdir().unwrap();
    brainstem_models::synthetic::Idefics3Shape::tiny()
        .write_checkpoint(dir.path())
        .unwrap();
    let vlm = Vlm::load(common::backend(), dir.path(), LoadOptions::default()).unwrap();
    let image = RgbImage::open(&common::reference_dir().join("tiny-idefics3/image.png")).unwrap();
    let frame = vlm.encode_frame(&image).unwrap();
    let opts = GenerateOptions {
        max_tokens: 80,
        sampling: SamplingParams::default(),
        stop_ids: vec![],
    };
    let (plan, _) = vlm.plan("tidy the table", &frame, &schema(), &opts).unwrap();
    assert!(plan.subtasks.iter().all(|t| schema().skills.contains(&t.skill)));
}
