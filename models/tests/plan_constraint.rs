//! Constrained plan decoding: whatever the logits (random, as random weights give), the text
//! is a plan that parses and uses only the configured skills, within the token budget; on a
//! byte-level vocabulary and on SmolLM2's real 49k-token BPE vocabulary; and end to end
//! through the tiny Idefics3 model.

use crate::common;

use brainstem_models::generate::{GenerateOptions, TokenConstraint};
use brainstem_models::image::RgbImage;
use brainstem_models::kernels::{Backend, OpKind};
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
        let _work = constraint.restrict(&mut logits, budget - step);
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

/// The tokens a plain check of every vocabulary entry allows after `text`, with `remaining`
/// tokens of budget: what the constraint's sorted scan must agree with.
fn allowed_by_brute_force(vocabulary: &[String], text: &str, remaining: usize) -> Vec<bool> {
    let schema = schema();
    let state = text
        .chars()
        .try_fold(State::start(), |state, c| state.step(c, &schema))
        .unwrap();
    vocabulary
        .iter()
        .map(|token| {
            let next = token.chars().try_fold(state.clone(), |state, c| state.step(c, &schema));
            !token.is_empty() && next.is_some_and(|next| next.min_completion(&schema) < remaining)
        })
        .collect()
}

#[test]
fn the_sorted_scan_allows_exactly_what_a_check_of_every_token_allows() {
    let file = WeightFile::open(&common::smollm2_gguf()).unwrap();
    let tokenizer = Tokenizer::from_gguf(&file.gguf_metadata().unwrap()).unwrap();
    let vocabulary: Vec<String> = (0..tokenizer.vocab_size() as u32)
        .map(|id| tokenizer.decode(&[id]).unwrap())
        .collect();
    let mut constraint = PlanConstraint::with_token_texts(schema(), vocabulary.clone());
    let mut sampler = Sampler::new(SamplingParams {
        temperature: 1.0,
        top_p: 1.0,
        seed: 11,
    })
    .unwrap();
    let budget = 90;
    let mut checked = 0;
    for step in 0..budget {
        let mut logits = vec![0f32; vocabulary.len() + 3];
        let work = constraint.restrict(&mut logits, budget - step);
        assert!(work.float_ops > 0 && work.bytes_read > 0);
        let expected = allowed_by_brute_force(&vocabulary, constraint.text(), budget - step);
        let allowed: Vec<bool> = logits[..vocabulary.len()].iter().map(|l| l.is_finite()).collect();
        assert_eq!(allowed, expected, "after {:?}", constraint.text());
        assert!(logits[vocabulary.len()..].iter().all(|l| *l == f32::NEG_INFINITY));
        checked += 1;
        constraint.advance(sampler.sample(&logits).unwrap()).unwrap();
        if constraint.is_complete() {
            break;
        }
    }
    assert!(checked > 5, "the plan ended after {checked} steps");
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
fn a_plan_records_its_host_work_in_the_ledger() {
    let dir = common::reference_dir().join("tiny-idefics3");
    let backend = common::backend();
    let vlm = Vlm::load(backend.clone(), &dir, LoadOptions::default()).unwrap();
    let before = backend.ledger().snapshot();
    let frame = vlm
        .encode_frame(&RgbImage::open(&dir.join("image.png")).unwrap())
        .unwrap();
    let opts = GenerateOptions {
        max_tokens: 96,
        sampling: SamplingParams::default(),
        stop_ids: vec![],
    };
    let (_, stats) = vlm.plan("tidy the table", &frame, &schema(), &opts).unwrap();
    let work = backend.ledger().snapshot().since(&before);
    let calls = |kind| {
        work.by_kind
            .iter()
            .find(|(k, _, _)| *k == kind)
            .map(|(_, calls, cost)| (*calls, *cost))
    };
    let tokens = stats.generated_tokens as u64;
    assert_eq!(calls(OpKind::ImagePrep).map(|c| c.0), Some(1));
    assert_eq!(calls(OpKind::Tokenize).map(|c| c.0), Some(1));
    assert_eq!(calls(OpKind::Constrain).map(|c| c.0), Some(tokens));
    assert_eq!(calls(OpKind::Sample).map(|c| c.0), Some(tokens));
    for kind in [OpKind::ImagePrep, OpKind::Tokenize, OpKind::Constrain, OpKind::Sample] {
        let cost = calls(kind).unwrap().1;
        assert!(
            kind.is_host() && cost.float_ops > 0 && cost.bytes_read > 0,
            "{kind:?}: {cost:?}"
        );
    }
    assert!(!OpKind::QuantMatmul.is_host() && !OpKind::Attention.is_host());
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
