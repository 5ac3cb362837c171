//! The audit log of a run records every hardening step, in the order the kernel saw them.

mod common;

use common::{As, Scratch, describe, run_sh};

#[test]
fn audit_log_lists_every_hardening_step_in_order() {
    let scratch = Scratch::new(As::Root);
    let out = run_sh(As::Root, &scratch, &["--pids", "128"], "exit 3");
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    let dir = scratch.path().join("state/nucleus/audit");
    // Logs only: the directory also holds the retention stamp (`.pruned`).
    let logs: Vec<_> = std::fs::read_dir(&dir)
        .expect("audit dir")
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "jsonl"))
        .collect();
    assert_eq!(logs.len(), 1, "one audit log per sandbox");
    let text = std::fs::read_to_string(logs[0].path()).expect("audit log");
    let names: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json line"))
        .filter(|e| e["type"] == "audit")
        .map(|e| e["event"].as_str().expect("event name").to_owned())
        .collect();
    let expected = [
        "sandbox_started",
        "limits_applied",
        "seccomp_profile",
        "user_namespace",
        "namespaces",
        "root_filesystem",
        "context",
        "pivot_root",
        "capabilities_dropped",
        "no_new_privs",
        "landlock",
        "seccomp",
        "exit",
    ];
    let positions: Vec<usize> = expected
        .iter()
        .map(|step| {
            names
                .iter()
                .position(|n| n == step)
                .unwrap_or_else(|| panic!("{step} missing from {names:?}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "out of order: {names:?}"
    );
    let exit: serde_json::Value = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["type"] == "exit")
        .expect("exit event");
    assert_eq!(exit["code"], 3);
}
