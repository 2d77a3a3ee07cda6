//! SmolVLA refuses what it cannot run with an error that names the thing, and takes what
//! lerobot takes: a damaged copy of a reference checkpoint (a missing or misshapen tensor, an
//! unknown policy type, a processor that disagrees with the config, a truncated weight file),
//! and observations with a bad state, no camera, a camera it does not have, or frames of any
//! size.

use crate::common;
use crate::smolvla_parity::{golden, hub, root};

use std::path::{Path, PathBuf};

use brainstem_models::image::planar::PlanarImage;
use brainstem_models::smolvla::{Noise, SmolVla};
use brainstem_models::{LoadOptions, ModelError};

/// A copy of variant `two-cameras` in a scratch folder, `damage` applied to it.
fn damaged(name: &str, damage: impl FnOnce(&Path)) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("smolvla-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(root().join("two-cameras")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    damage(&dir);
    dir
}

fn load(dir: &Path) -> Result<SmolVla<brainstem_models::kernels::CpuBackend>, ModelError> {
    SmolVla::load(common::backend(), dir, None, &hub(), LoadOptions::default())
}

fn message(dir: &Path) -> String {
    match load(dir) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

const STATE_PROJ: &str = "model.state_proj.weight";

#[test]
fn a_missing_tensor_is_named() {
    let dir = damaged("missing-tensor", |dir| {
        common::rewrite_weights(dir, |tensors| tensors.retain(|(name, _, _)| name != STATE_PROJ))
    });
    let message = message(&dir);
    assert!(message.contains(STATE_PROJ) && message.contains("missing"), "{message}");
}

#[test]
fn a_misshapen_tensor_is_named_with_both_shapes() {
    let dir = damaged("misshapen-tensor", |dir| {
        common::rewrite_weights(dir, |tensors| {
            let (_, shape, data) = tensors.iter_mut().find(|(name, _, _)| name == STATE_PROJ).unwrap();
            *shape = vec![shape[1], shape[0]];
            let _ = data;
        })
    });
    let message = message(&dir);
    assert!(message.contains(STATE_PROJ) && message.contains("[64, 8]"), "{message}");
}

#[test]
fn a_truncated_weight_file_is_an_error() {
    let dir = damaged("truncated", |dir| {
        let path = dir.join("model.safetensors");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    });
    let message = message(&dir);
    assert!(message.contains("model.safetensors"), "{message}");
}

#[test]
fn another_policy_type_is_refused() {
    let dir = damaged("pi0", |dir| {
        let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
        std::fs::write(dir.join("config.json"), text.replace("\"smolvla\"", "\"pi0\"")).unwrap();
    });
    let message = message(&dir);
    assert!(message.contains("smolvla") && message.contains("pi0"), "{message}");
}

#[test]
fn a_processor_that_disagrees_with_the_config_is_refused() {
    let dir = damaged("processor", |dir| {
        let path = dir.join("policy_postprocessor.json");
        let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        json["steps"][0]["config"]["features"]["action"]["shape"] = serde_json::json!([7]);
        std::fs::write(&path, json.to_string()).unwrap();
    });
    let message = message(&dir);
    assert!(message.contains("action") && message.contains("[7]"), "{message}");
}

#[test]
fn bad_observations_are_refused_by_name() {
    let policy = load(&root().join("two-cameras")).unwrap();
    let golden = golden("two-cameras");
    let noise = Noise::Seed(3);
    let refuse = |obs: &brainstem_models::smolvla::Observation, needle: &str| {
        let message = policy.predict(obs, &noise).unwrap_err().to_string();
        assert!(message.contains(needle), "{message} should mention {needle:?}");
    };
    let mut obs = golden.observation.clone();
    obs.state[2] = f32::NAN;
    refuse(&obs, "observation.state[2] is NaN");
    obs.state = vec![0.0; 7];
    refuse(&obs, "observation.state has 7 values, the policy takes 6");
    let mut obs = golden.observation.clone();
    obs.images.clear();
    refuse(&obs, "no camera frame");
    let mut obs = golden.observation.clone();
    obs.images.insert("side".into(), PlanarImage::filled(8, 8, 0.5));
    refuse(&obs, "no camera \"side\"");
    let mut obs = golden.observation.clone();
    obs.images.get_mut("top").unwrap().data.truncate(10);
    refuse(&obs, "holds 10 values");
    let wrong_noise = Noise::Values(vec![0.0; 5]);
    let message = policy
        .predict(&golden.observation, &wrong_noise)
        .unwrap_err()
        .to_string();
    assert!(message.contains("noise must be 48 finite values"), "{message}");
}

#[test]
fn frames_of_any_size_and_a_missing_camera_still_give_a_chunk() {
    let policy = load(&root().join("two-cameras")).unwrap();
    let mut obs = golden("two-cameras").observation;
    for (width, height) in [(1, 1), (3, 200), (640, 2), (64, 64)] {
        obs.images.insert("top".into(), PlanarImage::filled(width, height, 0.7));
        let chunk = policy.predict(&obs, &Noise::Seed(1)).unwrap();
        assert!(chunk.values.iter().all(|v| v.is_finite()), "{width}x{height}");
    }
    obs.images.remove("wrist");
    let chunk = policy.predict(&obs, &Noise::Seed(1)).unwrap();
    assert_eq!((chunk.steps, chunk.dims), (6, 6));
}
