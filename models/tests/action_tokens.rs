//! Action tokenizers against lerobot: the FAST tokenizer that tools/reference/action_reference.py
//! fitted with lerobot's `UniversalActionProcessor`, its tokens and decodes for held-out
//! chunks, the relaxed decodes of lerobot's pi0-FAST on token prefixes, and OpenVLA-formula
//! binning with q01/q99 normalisation.

use crate::common;

use brainstem_models::action::{ActionError, BinTokenizer, FastTokenizer, Normalization};
use proptest::prelude::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct Golden {
    steps: usize,
    dims: usize,
    scale: f64,
    min_token: i64,
    openvla_bins: usize,
    lm_vocab: u32,
    q01: Vec<f64>,
    q99: Vec<f64>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    actions: Vec<f64>,
    tokens: Vec<u32>,
    decoded: Vec<f64>,
    prefixes: Vec<Prefix>,
    binning: Binning,
}

#[derive(Deserialize)]
struct Prefix {
    tokens: usize,
    actions: Vec<f64>,
}

#[derive(Deserialize)]
struct Binning {
    normalized: Vec<f64>,
    tokens: Vec<u32>,
    decoded: Vec<f64>,
    unnormalized: Vec<f64>,
}

fn golden() -> Golden {
    let text = std::fs::read_to_string(common::reference_dir().join("action_tokens.json")).expect("golden file");
    serde_json::from_str(&text).expect("golden json")
}

fn fast() -> FastTokenizer {
    FastTokenizer::from_dir(&common::reference_dir().join("fast-tokenizer"), None).expect("FAST tokenizer")
}

fn assert_close(what: &str, ours: &[f64], theirs: &[f64], tolerance: f64) {
    assert_eq!(ours.len(), theirs.len(), "{what}: length");
    for (i, (a, b)) in ours.iter().zip(theirs).enumerate() {
        assert!((a - b).abs() <= tolerance, "{what}[{i}]: ours {a}, lerobot {b}");
    }
}

#[test]
fn fast_reads_the_fitted_parameters() {
    let golden = golden();
    let params = fast().params();
    assert_eq!((params.time_horizon, params.action_dim), (golden.steps, golden.dims));
    assert_eq!((params.scale, params.min_token), (golden.scale, golden.min_token));
}

#[test]
fn fast_encodes_token_for_token_like_lerobot() {
    let tokenizer = fast();
    for (i, case) in golden().cases.iter().enumerate() {
        assert_eq!(tokenizer.encode(&case.actions).unwrap(), case.tokens, "case {i}");
    }
}

#[test]
fn fast_decodes_like_lerobot() {
    let tokenizer = fast();
    for (i, case) in golden().cases.iter().enumerate() {
        let ours = tokenizer.decode(&case.tokens).unwrap();
        assert_close(&format!("case {i}"), &ours, &case.decoded, 1e-6);
    }
}

#[test]
fn progressive_decoding_matches_lerobots_relaxed_decode_of_every_prefix() {
    let tokenizer = fast();
    let golden = golden();
    let mut checked = 0;
    for case in golden.cases.iter().filter(|case| !case.prefixes.is_empty()) {
        let mut stream = tokenizer.stream_decoder();
        let mut prefixes = case.prefixes.iter().peekable();
        for (n, &token) in case.tokens.iter().enumerate() {
            stream.push_token(token).unwrap();
            if let Some(prefix) = prefixes.next_if(|p| p.tokens == n + 1) {
                assert_close(&format!("prefix {}", n + 1), stream.estimate(), &prefix.actions, 1e-6);
                checked += 1;
            }
        }
        assert!(stream.is_complete());
        assert_eq!(
            relaxed(&tokenizer, &case.tokens[..case.tokens.len() / 2]).len(),
            case.actions.len()
        );
    }
    assert!(checked > 20, "only {checked} prefixes checked");
}

fn relaxed(tokenizer: &FastTokenizer, tokens: &[u32]) -> Vec<f64> {
    tokenizer.decode_relaxed(tokens).unwrap()
}

#[test]
fn progressive_error_falls_as_tokens_arrive() {
    let tokenizer = fast();
    for case in golden().cases.iter().filter(|case| case.tokens.len() > 8) {
        let mut stream = tokenizer.stream_decoder();
        let error = |estimate: &[f64]| -> f64 {
            estimate
                .iter()
                .zip(&case.decoded)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f64>()
        };
        let mut previous = error(stream.estimate());
        for &token in &case.tokens {
            stream.push_token(token).unwrap();
            let now = error(stream.estimate());
            // Orthonormal basis: each coefficient that arrives removes its own share of the error.
            assert!(now <= previous + 1e-9, "error rose from {previous} to {now}");
            previous = now;
        }
        assert!(previous < 1e-12);
    }
}

#[test]
fn strict_decode_refuses_a_short_sequence_and_relaxed_pads_it() {
    let tokenizer = fast();
    let case = &golden().cases[0];
    let half = &case.tokens[..case.tokens.len() / 2];
    assert!(matches!(
        tokenizer.decode(half),
        Err(ActionError::CoefficientCount { .. }) | Err(ActionError::InvalidUtf8 { .. })
    ));
    let long: Vec<u32> = case.tokens.iter().chain(&case.tokens).copied().collect();
    assert_close("truncated", &relaxed(&tokenizer, &long), &case.decoded, 1e-6);
}

#[test]
fn garbage_tokens_are_typed_errors() {
    let tokenizer = fast();
    let vocab = tokenizer.vocab_size() as u32;
    assert!(matches!(
        tokenizer.decode(&[vocab + 5]),
        Err(ActionError::TokenOutOfRange { .. })
    ));
    assert!(matches!(
        tokenizer.encode(&[0.0; 3]),
        Err(ActionError::ChunkShape { .. })
    ));
    let mut chunk = golden().cases[0].actions.clone();
    chunk[9] = f64::NAN;
    assert!(matches!(
        tokenizer.encode(&chunk),
        Err(ActionError::NotFinite { index: 9, .. })
    ));
}

#[test]
fn binning_matches_the_openvla_formula() {
    let golden = golden();
    let tokenizer = BinTokenizer::new(golden.lm_vocab, golden.openvla_bins).unwrap();
    let norms: Vec<Normalization> = golden
        .q01
        .iter()
        .zip(&golden.q99)
        .map(|(&low, &high)| Normalization::Bounds { low, high })
        .collect();
    for case in &golden.cases {
        let normalized: Vec<f64> = case
            .actions
            .iter()
            .enumerate()
            .map(|(i, &v)| norms[i % golden.dims].normalize(v))
            .collect();
        assert_close("normalized", &normalized, &case.binning.normalized, 1e-9);
        assert_eq!(tokenizer.encode(&case.binning.normalized).unwrap(), case.binning.tokens);
        let decoded = tokenizer.decode(&case.binning.tokens).unwrap();
        assert_close("decoded", &decoded, &case.binning.decoded, 1e-9);
        let unnormalized: Vec<f64> = decoded
            .iter()
            .enumerate()
            .map(|(i, &v)| norms[i % golden.dims].unnormalize(v))
            .collect();
        assert_close("unnormalized", &unnormalized, &case.binning.unnormalized, 1e-9);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any chunk inside the fitted range survives encode then decode to within the rounding
    /// of its coefficients: each is off by at most 0.5 / scale, so the chunk by at most
    /// sqrt(n) * 0.5 / scale in the L2 norm (the DCT is orthonormal).
    #[test]
    fn fast_round_trip_error_is_bounded_by_the_rounding(values in proptest::collection::vec(-0.8f64..0.8, 112)) {
        let tokenizer = fast();
        let params = tokenizer.params();
        let decoded = tokenizer.decode(&tokenizer.encode(&values).unwrap()).unwrap();
        let l2: f64 = decoded.iter().zip(&values).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt();
        let bound = (values.len() as f64).sqrt() * 0.5 / params.scale;
        prop_assert!(l2 <= bound + 1e-9, "L2 error {} over bound {}", l2, bound);
    }

    /// Any token sequence at all decodes to a finite chunk or a typed error.
    #[test]
    fn any_token_sequence_decodes_or_errs(tokens in proptest::collection::vec(0u32..600, 0..60)) {
        let tokenizer = fast();
        if let Ok(chunk) = tokenizer.decode_relaxed(&tokens) {
            prop_assert!(chunk.iter().all(|v| v.is_finite()));
        }
    }
}
