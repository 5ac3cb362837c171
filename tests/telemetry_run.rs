//! Telemetry through the real `nucleus run`: usage and OOM events on `--events -`, and the audit log.

use std::process::Command;

use serde_json::Value;

#[test]
fn memory_bomb_run_reports_oom_on_stderr_events_and_in_the_audit_log() {
    let state = tempfile::tempdir().expect("tempdir");
    let ctx = tempfile::tempdir().expect("context dir");
    let out = Command::new(env!("CARGO_BIN_EXE_nucleus"))
        .args([
            "run",
            "--memory",
            "64M",
            "--sample-interval-ms",
            "100",
            "--events",
            "-",
            "--",
        ])
        .args(["sh", "-c", "exec tail /dev/zero"])
        .current_dir(ctx.path())
        .env("XDG_STATE_HOME", state.path())
        .output()
        .expect("run nucleus");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(137),
        "SIGKILL by the OOM killer: {stderr}"
    );
    let events: Vec<Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("each event line is JSON"))
        .collect();
    let of = |t: &'static str| events.iter().filter(move |e| e["type"] == t);
    let usage = of("usage").next().expect("a usage sample");
    assert_eq!(usage["memory_limit_bytes"], 64u64 << 20);
    assert!(
        of("audit").any(|e| e["event"] == "oom" && e["detail"]["oom_kills"].as_u64() >= Some(1))
    );
    let exit = of("exit").next_back().expect("an exit event");
    assert_eq!(exit["oom_killed"], true);
    let id = exit["sandbox"].as_str().expect("sandbox id").to_owned();

    let log = state.path().join(format!("nucleus/audit/{id}.jsonl"));
    let kept: Vec<Value> = std::fs::read_to_string(&log)
        .expect("audit log exists")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert!(
        kept.iter().all(|e| e["type"] != "usage"),
        "samples are not kept"
    );
    assert!(kept.iter().any(|e| e["event"] == "oom"));
    assert_eq!(
        kept.last().map(|e| e["type"].clone()),
        Some(Value::from("exit"))
    );

    let list = Command::new(env!("CARGO_BIN_EXE_nucleus"))
        .args(["audit", "list"])
        .env("XDG_STATE_HOME", state.path())
        .output()
        .expect("audit list");
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with(&id) && l.contains("signal 9 (oom)")),
        "{text}"
    );
}

/// The audit log is created once PID 1 runs; when it cannot be, the run fails with a clear error
/// before the workload starts.
#[test]
fn an_audit_log_that_cannot_be_created_fails_the_run_before_the_workload_starts() {
    let state = tempfile::tempdir().expect("tempdir");
    let not_a_dir = state.path().join("file");
    std::fs::write(&not_a_dir, "").expect("write");
    let ctx = tempfile::tempdir().expect("context dir");
    let out = Command::new(env!("CARGO_BIN_EXE_nucleus"))
        .args(["run", "--writable", "--"])
        .args(["sh", "-c", "touch /context/ran"])
        .current_dir(ctx.path())
        .env("XDG_STATE_HOME", &not_a_dir)
        .output()
        .expect("run nucleus");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("cannot create the audit log directory")
            && stderr.contains("XDG_STATE_HOME"),
        "names the problem and the fix: {stderr}"
    );
    assert!(!ctx.path().join("ran").exists(), "the workload never ran");
}
