//! What the command-line tests share: running the built `brainstem` and reading its output.

use std::process::Command;

/// Runs `brainstem` with `args` and returns its stdout; fails the test, with both outputs,
/// when it fails.
pub fn brainstem(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_brainstem"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "brainstem {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
