//! The simulator link against processes that break its protocol: each way a simulator can
//! misbehave is a typed error naming the request, never a hang or a panic. The processes are
//! real (`sh` printing what a broken simulator would), speaking over the same pipes the MuJoCo
//! server does; the closed loop with the real simulator is python/tests/test_sim.py.

use std::time::{Duration, Instant};

use brainstem_runtime::offline::sim::{SimError, SimProcess};

const TASK: &str = r#"{"task":"reach","instruction":"touch the red dot","control_rate_hz":50,"action_rate_hz":10,"success_radius":0.02,"cameras":[{"name":"top","height":2,"width":2}],"joints":[{"name":"a","min_position":-1,"max_position":1,"max_velocity":1,"max_acceleration":10,"max_jerk":100}]}"#;

/// A simulator that answers each request in turn with `replies`, then reads on silently.
fn scripted(replies: &[&str]) -> SimProcess {
    let mut script = String::new();
    for reply in replies {
        script.push_str(&format!("read line; printf '%s\\n' '{reply}'; "));
    }
    script.push_str("cat >/dev/null");
    SimProcess::start("sh", &["-c".into(), script], Duration::from_secs(5)).expect("sh starts")
}

#[test]
fn a_well_formed_exchange_is_read() {
    let state = r#"{"time":0.02,"joints":[0.5],"velocities":[0.1],"distance":0.3}"#;
    let view = r#"{"views":[{"camera":"top","height":2,"width":2,"rgb":"AAECAwQFBgcICQoL"}]}"#;
    let mut sim = scripted(&[TASK, state, view]);
    let task = sim.describe().unwrap();
    assert_eq!((task.joints.len(), task.cameras[0].name.as_str()), (1, "top"));
    assert_eq!(sim.step(&[0.4], 0.02).unwrap().joints, vec![0.5]);
    let views = sim.render(&task.cameras).unwrap();
    assert_eq!(views[0].pixels(), (0u8..12).collect::<Vec<_>>());
}

/// Whether an error is the one a case expects.
type ErrorCheck = fn(&SimError) -> bool;

#[test]
fn each_broken_reply_is_a_typed_error() {
    let cases: [(&str, ErrorCheck); 4] = [
        ("not json", |e| matches!(e, SimError::Malformed { .. })),
        (
            r#"{"error":"no such seed"}"#,
            |e| matches!(e, SimError::Refused { message, .. } if message == "no such seed"),
        ),
        (
            r#"{"time":0,"joints":[0.5,0.1],"velocities":[0,0],"distance":1}"#,
            |e| matches!(e, SimError::Malformed { reason, .. } if reason.contains("2 joints")),
        ),
        (r#"{"time":0,"joints":[1e999],"velocities":[0],"distance":1}"#, |e| {
            matches!(e, SimError::Malformed { .. })
        }),
    ];
    for (reply, expected) in cases {
        let mut sim = scripted(&[TASK, reply]);
        sim.describe().unwrap();
        let error = sim.reset(3).unwrap_err();
        assert!(expected(&error), "{reply}: {error}");
        assert!(error.to_string().contains("reset"), "{error}");
    }
}

#[test]
fn a_view_of_the_wrong_size_or_camera_is_refused() {
    let short = r#"{"views":[{"camera":"top","height":2,"width":2,"rgb":"AAEC"}]}"#;
    let other = r#"{"views":[{"camera":"wrist","height":2,"width":2,"rgb":"AAECAwQFBgcICQoL"}]}"#;
    for reply in [short, other] {
        let mut sim = scripted(&[TASK, reply]);
        let task = sim.describe().unwrap();
        let error = sim.render(&task.cameras).unwrap_err();
        assert!(matches!(error, SimError::Malformed { .. }), "{error}");
    }
}

#[test]
fn a_task_without_joints_is_refused() {
    let mut sim = scripted(&[
        r#"{"task":"t","instruction":"","control_rate_hz":50,"action_rate_hz":10,"success_radius":0.02,"cameras":[],"joints":[]}"#,
    ]);
    assert!(matches!(sim.describe(), Err(SimError::Malformed { .. })));
}

#[test]
fn a_silent_or_exited_simulator_ends_the_wait() {
    let mut silent = SimProcess::start(
        "sh",
        &["-c".into(), "cat >/dev/null".into()],
        Duration::from_millis(200),
    )
    .unwrap();
    let started = Instant::now();
    assert!(matches!(silent.describe(), Err(SimError::Timeout { .. })));
    assert!(started.elapsed() < Duration::from_secs(5));
    let mut exited = SimProcess::start("sh", &["-c".into(), "exit 0".into()], Duration::from_secs(5)).unwrap();
    let error = exited.describe().unwrap_err();
    assert!(matches!(error, SimError::Exited { .. } | SimError::Write(_)), "{error}");
    let missing = SimProcess::start("/nonexistent/simulator", &[], Duration::from_secs(1));
    assert!(matches!(missing, Err(SimError::Start { .. })));
}
