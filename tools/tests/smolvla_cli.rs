//! SmolVLA, pi0, pi0.5 and pi0-FAST from the command line, on the tiny checkpoints that
//! tools/reference/smolvla_reference.py, pi0_reference.py and pi0fast_reference.py saved with
//! lerobot: `brainstem act` gives the chunk lerobot computed from the same frames, state, task
//! and noise (pi0-FAST: and the same FAST tokens), with the backbone found in a Hugging Face
//! cache or given with `--vlm`, and names what is wrong (no backbone anywhere, a
//! state of the wrong length); `brainstem eval --vla` replays a recorded dataset through it, or
//! says how the dataset and the policy differ.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn reference() -> PathBuf {
    reference_of("smolvla")
}

/// Where tools/reference keeps the tiny policies of one kind (`smolvla`, `pi0`).
fn reference_of(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/out").join(kind)
}

fn act(args: &[String], hf_home: &Path) -> Output {
    brainstem("act", args, hf_home)
}

fn brainstem(command: &str, args: &[String], hf_home: &Path) -> Output {
    brainstem_with_kernels(command, args, hf_home, None)
}

/// `brainstem` with `BRAINSTEM_KERNELS` set to `family`, or unset.
fn brainstem_with_kernels(command: &str, args: &[String], hf_home: &Path, family: Option<&str>) -> Output {
    let mut brainstem = Command::new(env!("CARGO_BIN_EXE_brainstem"));
    brainstem
        .arg(command)
        .args(args)
        .env("HF_HOME", hf_home)
        .env_remove("HF_HUB_CACHE")
        .env_remove("BRAINSTEM_KERNELS");
    if let Some(family) = family {
        brainstem.env("BRAINSTEM_KERNELS", family);
    }
    brainstem.output().unwrap()
}

/// The arguments for variant `two-cameras`'s golden observation.
fn golden_args(golden: &serde_json::Value) -> Vec<String> {
    golden_args_of("smolvla", golden)
}

fn golden_args_of(kind: &str, golden: &serde_json::Value) -> Vec<String> {
    let dir = reference_of(kind).join("two-cameras");
    let state: Vec<String> = golden["state"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    let mut args = vec!["--policy".to_string(), dir.display().to_string()];
    for camera in ["top", "wrist"] {
        args.push("--image".into());
        args.push(format!(
            "{camera}={}",
            dir.join("golden").join(format!("{camera}.png")).display()
        ));
    }
    args.extend([
        "--state".into(),
        state.join(","),
        "--task".into(),
        golden["task"].as_str().unwrap().into(),
        "--noise".into(),
        dir.join("golden/noise.safetensors").display().to_string(),
    ]);
    args
}

fn golden() -> serde_json::Value {
    golden_of("smolvla")
}

fn golden_of(kind: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(reference_of(kind).join("two-cameras/golden/golden.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn values(rows: &serde_json::Value) -> Vec<f64> {
    rows.as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
        .collect()
}

fn assert_matches_lerobot(output: &Output, golden: &serde_json::Value) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    let (ours, theirs) = (values(&report["actions"]), values(&golden["actions"]));
    assert_eq!(ours.len(), theirs.len(), "chunk size");
    let scale = theirs.iter().fold(0f64, |m, v| m.max(v.abs()));
    let error = ours.iter().zip(&theirs).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
    assert!(error < 1e-4 * scale, "off lerobot's chunk by {error} (scale {scale})");
}

#[test]
fn the_chunk_is_lerobots_with_the_backbone_from_the_hugging_face_cache() {
    let golden = golden();
    let output = act(&golden_args(&golden), &reference().join("hf-home"));
    assert_matches_lerobot(&output, &golden);
}

#[test]
fn a_pi0_chunk_is_lerobots_with_its_tokenizer_from_the_hugging_face_cache() {
    let golden = golden_of("pi0");
    let output = act(&golden_args_of("pi0", &golden), &reference_of("pi0").join("hf-home"));
    assert_matches_lerobot(&output, &golden);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["type"], "pi0");
}

#[test]
fn a_pi05_chunk_is_lerobots_with_the_state_in_its_prompt() {
    let golden = golden_of("pi05");
    let output = act(&golden_args_of("pi05", &golden), &reference_of("pi0").join("hf-home"));
    assert_matches_lerobot(&output, &golden);
}

#[test]
fn a_pi0_fast_chunk_and_its_tokens_are_lerobots() {
    let golden = golden_of("pi0fast");
    let mut args = golden_args_of("pi0fast", &golden);
    args.truncate(args.len() - 2);
    let output = act(&args, &reference_of("pi0fast").join("hf-home"));
    assert_matches_lerobot(&output, &golden);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let fast: Vec<i64> = golden["fast_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_i64().unwrap())
        .filter(|t| (0..512).contains(t))
        .collect();
    let tokens: Vec<i64> = serde_json::from_value(report["tokens"].clone()).unwrap();
    assert_eq!(tokens, fast);
    assert_eq!(report["type"], "pi0_fast");
}

/// Every kernel family this CPU has gives the Q8_0 chunk: the families without int8 tiles
/// (whose many-row products go through f32 GEMM) the scalar family's to 1e-4 of its scale,
/// AVX-512 VNNI's tiles lerobot's f32 chunk within the Q8_0 bound of the parity tests.
#[test]
fn every_kernel_family_the_cpu_has_gives_the_same_chunk() {
    let golden = golden_of("pi0");
    let hf_home = reference_of("pi0").join("hf-home");
    let f32_scalar = brainstem_with_kernels("act", &golden_args_of("pi0", &golden), &hf_home, Some("scalar"));
    assert_matches_lerobot(&f32_scalar, &golden);
    let mut args = golden_args_of("pi0", &golden);
    args.extend(["--quantize", "q8_0", "--activations", "int8"].map(String::from));
    let chunk = |output: &Output| -> Vec<f64> {
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        values(&report["actions"])
    };
    let off = |a: &[f64], b: &[f64]| a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((x - y).abs()));
    let scalar = chunk(&brainstem_with_kernels("act", &args, &hf_home, Some("scalar")));
    let lerobot = values(&golden["actions"]);
    let scale = lerobot.iter().fold(0f64, |m, v| m.max(v.abs()));
    let mut ran = vec!["scalar"];
    for family in ["avx2", "avx-vnni", "avx512-vnni", "neon-dotprod", "neon"] {
        let output = brainstem_with_kernels("act", &args, &hf_home, Some(family));
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                stderr.contains(&format!("BRAINSTEM_KERNELS={family} needs")),
                "{stderr}"
            );
            continue;
        }
        let ours = chunk(&output);
        match family {
            "avx512-vnni" => {
                let error = off(&ours, &lerobot);
                assert!(error < 0.1 * scale, "{family}: Q8_0 chunk off lerobot's by {error}");
            }
            _ => {
                let error = off(&ours, &scalar);
                assert!(
                    error < 1e-4 * scale,
                    "{family}: Q8_0 chunk off the scalar kernels' by {error}"
                );
            }
        }
        ran.push(family);
    }
    println!("Q8_0 chunks agree across {ran:?}");
    let unknown = brainstem_with_kernels("act", &args, &hf_home, Some("sse9"));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        !unknown.status.success() && stderr.contains("names no kernel family"),
        "{stderr}"
    );
}

#[test]
fn an_explicit_backbone_folder_needs_no_cache() {
    let golden = golden();
    let snapshots = reference().join("hf-home/hub/models--brainstem-test--tiny-smolvlm2/snapshots");
    let snapshot = std::fs::read_dir(snapshots).unwrap().next().unwrap().unwrap().path();
    let mut args = golden_args(&golden);
    args.extend(["--vlm".into(), snapshot.display().to_string()]);
    let output = act(&args, Path::new(env!("CARGO_TARGET_TMPDIR")));
    assert_matches_lerobot(&output, &golden);
}

#[test]
fn a_missing_backbone_names_every_place_tried() {
    let output = act(&golden_args(&golden()), Path::new(env!("CARGO_TARGET_TMPDIR")));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("brainstem-test/tiny-smolvlm2"), "{stderr}");
    assert!(stderr.contains("the name as a local folder"), "{stderr}");
    assert!(stderr.contains("models--brainstem-test--tiny-smolvlm2"), "{stderr}");
}

#[test]
fn a_state_of_the_wrong_length_is_refused_by_name() {
    let mut args = golden_args(&golden());
    let at = args.iter().position(|a| a == "--state").unwrap();
    args[at + 1] = "0.1,0.2".into();
    let output = act(&args, &reference().join("hf-home"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("observation.state has 2 values, the policy takes 6"),
        "{stderr}"
    );
}

fn scratch(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

fn eval_args(policy: &Path, out: &str) -> Vec<String> {
    let dataset = Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/out/lerobot/v21-images");
    [
        "--dataset",
        &dataset.display().to_string(),
        "--vla",
        &policy.display().to_string(),
        "--episodes",
        "0",
        "--cache",
        &scratch("smolvla-eval-cache").display().to_string(),
        "--out",
        &scratch(out).display().to_string(),
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn eval_replays_a_dataset_through_a_policy_that_fits_it() {
    eval_replays_the_dataset_through("smolvla");
}

#[test]
fn eval_replays_a_dataset_through_pi0_fast() {
    eval_replays_the_dataset_through("pi0fast");
}

/// `brainstem eval` of the reference dataset through the `kind` reference policy with its top
/// camera renamed to the dataset's front camera.
fn eval_replays_the_dataset_through(kind: &str) {
    let policy = scratch(&format!("{kind}-front-camera"));
    std::fs::create_dir_all(&policy).unwrap();
    for entry in std::fs::read_dir(reference_of(kind).join("two-cameras")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), policy.join(entry.file_name())).unwrap();
        }
    }
    let config = std::fs::read_to_string(policy.join("config.json")).unwrap();
    std::fs::write(policy.join("config.json"), config.replace("images.top", "images.front")).unwrap();
    let out = format!("{kind}-eval");
    let output = brainstem("eval", &eval_args(&policy, &out), &reference_of(kind).join("hf-home"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = std::fs::read_to_string(scratch(&out).join("report.json")).unwrap();
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let episode = &report["episodes"][0];
    assert_eq!(episode["episode"], 0, "{report}");
    assert!(episode["failure"].is_null(), "{episode}");
}

#[test]
fn eval_names_how_a_dataset_and_a_policy_differ() {
    let output = brainstem(
        "eval",
        &eval_args(&reference().join("two-cameras"), "smolvla-eval-refused"),
        &reference().join("hf-home"),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("camera front is in the dataset, not among the policy's (top, wrist)"),
        "{stderr}"
    );
}
