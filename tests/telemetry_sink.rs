//! The event sink and the audit log, read back through the real `nucleus audit` binary.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use nix::fcntl::{Flock, FlockArg};
use nucleus::events::{Event, EventKind, ExitRecord, SyscallRecord, UsageSample, Verdict};
use nucleus::telemetry::retention::{
    self, KEEP_NEWEST, MAX_AGE, PRUNE_EVERY, PRUNE_STAMP, Retention,
};
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

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Set `path`'s mtime to `age` ago.
fn age_file(path: &Path, age: Duration) {
    File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::now() - age))
        .expect("set mtime");
}

/// An audit log named `id` in `dir`, last modified `age` ago.
fn log_aged(dir: &Path, id: &str, age: Duration) -> PathBuf {
    let path = dir.join(format!("{id}.jsonl"));
    File::create(&path).expect("create log");
    age_file(&path, age);
    path
}

/// The ids of the `.jsonl` files left in `dir`, sorted.
fn log_ids(dir: &Path) -> Vec<String> {
    let mut ids: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter_map(|name| name.strip_suffix(".jsonl").map(str::to_owned))
        .collect();
    ids.sort();
    ids
}

#[test]
fn pruning_keeps_exactly_the_newest_thousand_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    // sb0000 is the newest, sb1004 the oldest, a minute apart: all well under MAX_AGE.
    for i in 0..KEEP_NEWEST as u64 + 5 {
        log_aged(
            dir.path(),
            &format!("sb{i:04}"),
            Duration::from_secs(60 * i),
        );
    }
    assert_eq!(retention::prune(dir.path(), &Retention::DEFAULT), 5);
    let kept: Vec<String> = (0..KEEP_NEWEST).map(|i| format!("sb{i:04}")).collect();
    assert_eq!(log_ids(dir.path()), kept);
}

#[test]
fn a_log_older_than_thirty_days_is_removed_under_the_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    log_aged(dir.path(), "fresh", DAY);
    log_aged(dir.path(), "month", MAX_AGE - DAY);
    log_aged(dir.path(), "stale", MAX_AGE + DAY);
    assert_eq!(retention::prune(dir.path(), &Retention::DEFAULT), 1);
    assert_eq!(log_ids(dir.path()), ["fresh", "month"]);
}

#[test]
fn a_log_held_by_a_sink_or_a_shared_lock_is_never_pruned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = EventSink::open_in(dir.path(), "running", None).expect("opens");
    age_file(sink.audit_log_path(), MAX_AGE + DAY);
    let other = log_aged(dir.path(), "other", MAX_AGE + DAY);
    let shared = Flock::lock(File::open(&other).expect("open"), FlockArg::LockShared)
        .map_err(|(_, e)| e)
        .expect("shared lock");
    log_aged(dir.path(), "done", MAX_AGE + DAY);

    assert_eq!(retention::prune(dir.path(), &Retention::DEFAULT), 1);
    assert_eq!(log_ids(dir.path()), ["other", "running"]);

    drop(sink);
    drop(shared);
    assert_eq!(retention::prune(dir.path(), &Retention::DEFAULT), 2);
    assert!(log_ids(dir.path()).is_empty());
}

#[test]
fn opening_a_sink_prunes_at_most_once_an_hour() {
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit");
    fs::create_dir(&audit).expect("mkdir");
    let first_old = log_aged(&audit, "old1", MAX_AGE + DAY);
    drop(EventSink::open_in(&audit, "first", None).expect("opens"));
    assert!(!first_old.exists(), "no stamp yet: the first start prunes");
    let stamp = audit.join(PRUNE_STAMP);
    assert!(stamp.is_file());

    let second_old = log_aged(&audit, "old2", MAX_AGE + DAY);
    drop(EventSink::open_in(&audit, "second", None).expect("opens"));
    assert!(second_old.exists(), "pruned less than an hour ago");

    age_file(&stamp, PRUNE_EVERY + Duration::from_secs(60));
    drop(EventSink::open_in(&audit, "third", None).expect("opens"));
    assert!(!second_old.exists(), "the stamp is an hour old");
    assert_eq!(log_ids(&audit), ["first", "second", "third"]);
}

#[test]
fn pruning_leaves_other_files_and_symlinks_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit");
    fs::create_dir(&audit).expect("mkdir");
    let target = log_aged(dir.path(), "target", MAX_AGE + DAY);
    std::os::unix::fs::symlink(&target, audit.join("link.jsonl")).expect("symlink");
    let notes = audit.join("notes.txt");
    File::create(&notes).expect("create");
    age_file(&notes, MAX_AGE + DAY);
    let odd_name = log_aged(&audit, "not.an-id", MAX_AGE + DAY);
    fs::create_dir(audit.join("subdir.jsonl")).expect("mkdir");
    let real = log_aged(&audit, "real", MAX_AGE + DAY);

    let keep_none = Retention {
        keep_newest: 0,
        ..Retention::DEFAULT
    };
    assert_eq!(retention::prune(&audit, &keep_none), 1);
    assert!(!real.exists());
    assert!(notes.exists() && odd_name.exists() && target.exists());
    assert!(audit.join("subdir.jsonl").is_dir());
    let link = fs::symlink_metadata(audit.join("link.jsonl")).expect("link stays");
    assert!(link.file_type().is_symlink());
}
