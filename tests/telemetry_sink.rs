//! The event sink and the audit log, read back through the real `nucleus audit` binary.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use nucleus::events::{Event, EventKind, ExitRecord, SyscallRecord, UsageSample, Verdict};
use nucleus::telemetry::sink::{EventSink, SinkError};
use serde_json::{Value, json};

fn syscall(sandbox: &str, name: &str, count: u64) -> Event {
    Event::now(
        sandbox,
        EventKind::Syscall(SyscallRecord {
            name: name.into(),
            nr: 165,
            arch: "x86_64".into(),
            pid: 42,
            comm: "sh".into(),
            verdict: Verdict::Denied,
            count,
            args: [0; 6],
            errno: Some(1),
        }),
    )
}

fn exit(sandbox: &str, code: i32) -> Event {
    Event::now(
        sandbox,
        EventKind::Exit(ExitRecord {
            code,
            signal: None,
            oom_killed: false,
            duration_ms: 12,
        }),
    )
}

/// Write a whole sandbox's life: start, usage, three denials of one call, exit.
fn write_life(sink: &mut EventSink, id: &str, command: &[&str]) {
    sink.write(&Event::audit(
        id,
        "sandbox_started",
        json!({ "command": command }),
    ));
    sink.write(&Event::now(
        id,
        EventKind::Usage(UsageSample {
            memory_bytes: 1,
            ..UsageSample::default()
        }),
    ));
    for count in 1..=3 {
        sink.write(&syscall(id, "mount", count));
    }
    sink.write(&exit(id, 0));
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect()
}

#[test]
fn events_file_gets_everything_flushed_and_audit_log_the_lasting_part() {
    let dir = tempfile::tempdir().expect("tempdir");
    let events = dir.path().join("events.jsonl");
    let mut sink =
        EventSink::open_in(&dir.path().join("audit"), "sb1", Some(&events)).expect("opens");
    write_life(&mut sink, "sb1", &["make", "test"]);
    // Read while the sink is alive: each line must already be on disk for `tail -f`.
    let all = lines(&events);
    let types: Vec<&str> = all
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        ["audit", "usage", "syscall", "syscall", "syscall", "exit"]
    );
    for ev in &all {
        assert_eq!(ev["sandbox"], "sb1");
        assert!(ev["ts"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
    assert_eq!(sink.audit_log_path(), dir.path().join("audit/sb1.jsonl"));
    let audit = lines(sink.audit_log_path());
    let kinds: Vec<String> = audit
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["type"].as_str().unwrap_or(""),
                e["event"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "audit:sandbox_started",
            "syscall:",
            "audit:syscall_summary",
            "exit:"
        ]
    );
    assert_eq!(audit[2]["detail"]["denied"]["mount"], 3);
}

#[test]
fn audit_log_appends_and_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit");
    for _ in 0..2 {
        let mut sink = EventSink::open_in(&audit, "sb2", None).expect("opens");
        sink.write(&Event::audit("sb2", "x", json!({})));
    }
    let path = audit.join("sb2.jsonl");
    assert_eq!(lines(&path).len(), 2);
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
    assert_eq!(mode & 0o077, 0, "audit log is private: {mode:o}");
}

#[test]
fn bad_ids_and_unwritable_events_are_refused_with_a_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = EventSink::open_in(dir.path(), "../x", None).expect_err("path in id");
    assert!(matches!(err, SinkError::BadId(_)));
    let err = EventSink::open_in(dir.path(), "ok", Some(Path::new("/nonexistent/dir/ev")))
        .expect_err("no dir");
    assert!(matches!(err, SinkError::Events { .. }));
    assert!(err.to_string().contains("`-` for stderr"), "{err}");
}

fn nucleus(state: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nucleus"))
        .args(args)
        .env("XDG_STATE_HOME", state)
        .output()
        .expect("run nucleus");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

#[test]
fn audit_list_and_show_read_the_state_dir() {
    let state = tempfile::tempdir().expect("tempdir");
    let audit = state.path().join("nucleus/audit");
    let mut a = EventSink::open_in(&audit, "abc111", None).expect("opens");
    write_life(&mut a, "abc111", &["make", "test"]);
    std::thread::sleep(Duration::from_millis(5));
    let mut b = EventSink::open_in(&audit, "abd222", None).expect("opens");
    b.write(&Event::audit(
        "abd222",
        "sandbox_started",
        json!({ "command": ["sleep", "9"] }),
    ));

    let (code, out, err) = nucleus(state.path(), &["audit", "list"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(
        rows[1].starts_with("abc111")
            && rows[1].contains("code 0")
            && rows[1].contains("make test")
    );
    assert!(
        rows[2].starts_with("abd222") && rows[2].contains("sleep 9"),
        "still running: no exit yet"
    );

    let (code, out, err) = nucleus(state.path(), &["audit", "show", "abc1"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("sandbox_started") && out.contains("syscall_summary"),
        "{out}"
    );
    assert!(
        out.contains("denied mount") && out.contains("code 0 after 12 ms"),
        "{out}"
    );

    let (code, _, err) = nucleus(state.path(), &["audit", "show", "ab"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("abc111") && err.contains("abd222"),
        "ambiguous prefix names both: {err}"
    );
    let (code, _, err) = nucleus(state.path(), &["audit", "show", "zzz"]);
    assert_eq!(code, 1);
    assert!(err.contains("nucleus audit list"), "{err}");
}

#[test]
fn audit_list_with_no_logs_says_so() {
    let state = tempfile::tempdir().expect("tempdir");
    let (code, out, err) = nucleus(state.path(), &["audit", "list"]);
    assert_eq!(code, 0);
    assert!(out.is_empty());
    assert!(err.contains("no audit logs"), "{err}");
}
