//! `brainstem eval` from the command line on the v2.1 reference dataset: two shards written
//! by two runs, merged by `eval merge` into the report one run writes, with the HTML report
//! and a parity run against the quantized models.

mod common;

use common::brainstem;
use std::path::{Path, PathBuf};
use std::process::Command;

fn dataset() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/out/lerobot/v21-images");
    root.display().to_string()
}

fn scratch(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

fn episodes(report: &Path) -> Vec<u64> {
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    json["episodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["episode"].as_u64().unwrap())
        .collect()
}

#[test]
fn shards_evaluated_apart_merge_into_one_report() {
    let cache = scratch("eval-cli-cache").display().to_string();
    let (a, b, merged) = (scratch("eval-cli-a"), scratch("eval-cli-b"), scratch("eval-cli-merged"));
    for (shard, out) in [("0/2", &a), ("1/2", &b)] {
        let out = out.display().to_string();
        let text = brainstem(&[
            "eval",
            "--dataset",
            &dataset(),
            "--shard",
            shard,
            "--cache",
            &cache,
            "--out",
            &out,
        ]);
        assert!(text.contains("LeRobotDataset v2.1, 3 episodes"), "{text}");
    }
    assert_eq!(episodes(&a.join("report.json")), [0, 2]);
    assert_eq!(episodes(&b.join("report.json")), [1]);
    let text = brainstem(&[
        "eval",
        "merge",
        &a.join("report.json").display().to_string(),
        &b.join("report.json").display().to_string(),
        "--out",
        &merged.display().to_string(),
    ]);
    assert!(text.contains("3 episodes evaluated, 0 failed, 36 frames"), "{text}");
    assert_eq!(episodes(&merged.join("report.json")), [0, 1, 2]);
    let html = std::fs::read_to_string(merged.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("shoulder_pan") && html.contains("Episode 2"));
    assert!(!html.contains("plot failed"));
}

#[test]
fn parity_against_quantized_models_is_reported() {
    let cache = scratch("eval-cli-cache-parity").display().to_string();
    let out = scratch("eval-cli-parity");
    let text = brainstem(&[
        "eval",
        "--dataset",
        &dataset(),
        "--episodes",
        "1",
        "--against-quantize",
        "q8_0",
        "--cache",
        &cache,
        "--out",
        &out.display().to_string(),
    ]);
    assert!(text.contains("parity demo q8_0 vs demo over 1 episodes"), "{text}");
    let parity: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("parity.json")).unwrap()).unwrap();
    assert_eq!(parity["joints"].as_array().unwrap().len(), 6);
    assert!(out.join("report-demo-q8-0.json").is_file());
}

#[test]
fn parity_against_another_placement_is_reported() {
    let cache = scratch("eval-cli-cache-placement").display().to_string();
    let out = scratch("eval-cli-placement");
    let text = brainstem(&[
        "eval",
        "--dataset",
        &dataset(),
        "--episodes",
        "0,2",
        "--against-placement",
        "one-chip",
        "--cache",
        &cache,
        "--out",
        &out.display().to_string(),
    ]);
    assert!(text.contains("parity demo one-chip vs demo over 2 episodes"), "{text}");
    let placed = std::fs::read_to_string(out.join("report-demo-one-chip.json")).unwrap();
    assert!(placed.contains("\"config\":\"demo one-chip\""));
    let refused = Command::new(env!("CARGO_BIN_EXE_brainstem"))
        .args([
            "eval",
            "--dataset",
            &dataset(),
            "--placement",
            "four-chips",
            "--cache",
            &cache,
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("four-chips"));
}

#[test]
fn parity_between_the_cpu_and_a_wgpu_device_is_reported() {
    let cache = scratch("eval-cli-cache-device").display().to_string();
    let out = scratch("eval-cli-device");
    let text = brainstem(&[
        "eval",
        "--dataset",
        &dataset(),
        "--episodes",
        "1",
        "--against-device",
        "wgpu",
        "--cache",
        &cache,
        "--out",
        &out.display().to_string(),
    ]);
    assert!(text.contains("parity demo on wgpu vs demo over 1 episodes"), "{text}");
    let moved = std::fs::read_to_string(out.join("report-demo-on-wgpu.json")).unwrap();
    assert!(moved.contains("\"config\":\"demo on wgpu\""));
    let refused = Command::new(env!("CARGO_BIN_EXE_brainstem"))
        .args([
            "eval",
            "--dataset",
            &dataset(),
            "--device",
            "wgpu:no-such-adapter",
            "--cache",
            &cache,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("no-such-adapter"),
        "{stderr}"
    );
}
