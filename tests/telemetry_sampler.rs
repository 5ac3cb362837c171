//! The usage sampler against real processes: /proc trees and a real v1 cgroup under OOM.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use nucleus::cgroup::{self, CgroupSetup};
use nucleus::events::{Event, EventKind, UsageSample};
use nucleus::spec::Limits;
use nucleus::telemetry::sampler::{UsageSource, spawn_sampler};

const WAIT: Duration = Duration::from_secs(20);

fn next_usage(rx: &Receiver<Event>) -> UsageSample {
    loop {
        let ev = rx.recv_timeout(WAIT).expect("an event");
        if let EventKind::Usage(u) = ev.kind {
            return u;
        }
    }
}

fn held(script: &str) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(format!("read _ ; {script}"))
        .stdin(Stdio::piped())
        // A fork bomb's "Cannot fork" lines are expected; keep them out of the test output.
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sh")
}

#[test]
fn proc_source_counts_the_whole_tree() {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("sleep 30 & sleep 30 & wait")
        .spawn()
        .expect("spawn");
    let (tx, rx) = mpsc::channel();
    let handle = spawn_sampler(
        UsageSource::Proc {
            root_pid: child.id(),
        },
        Duration::from_millis(20),
        "p1".into(),
        tx,
    );
    // The sleeps appear a moment after sh starts; wait for the tree to be complete.
    let mut usage = next_usage(&rx);
    while usage.pids < 3 {
        usage = next_usage(&rx);
    }
    assert_eq!(usage.pids, 3, "sh and two sleeps: {usage:?}");
    assert!(usage.memory_bytes > 0 && usage.memory_peak_bytes >= usage.memory_bytes);
    assert_eq!((usage.memory_limit_bytes, usage.pids_limit), (None, None));
    drop(handle);
    child.kill().expect("kill");
    child.wait().expect("wait");
}

#[test]
fn dropping_the_handle_stops_a_sleeping_sampler_at_once() {
    let (tx, rx) = mpsc::channel();
    let handle = spawn_sampler(
        UsageSource::Proc {
            root_pid: std::process::id(),
        },
        Duration::from_secs(3600),
        "p2".into(),
        tx,
    );
    let first = rx
        .recv_timeout(WAIT)
        .expect("the first sample does not wait for the interval");
    assert_eq!(first.sandbox, "p2");
    // With an hour-long interval this only returns because the stop channel wakes the thread.
    drop(handle);
    assert!(
        rx.recv().is_err(),
        "the thread ended and dropped its sender"
    );
}

#[test]
fn sampler_ends_when_the_receiver_is_gone() {
    let (tx, rx) = mpsc::channel();
    let handle = spawn_sampler(
        UsageSource::Proc {
            root_pid: std::process::id(),
        },
        Duration::from_millis(10),
        "p3".into(),
        tx,
    );
    rx.recv_timeout(WAIT).expect("one sample");
    drop(rx);
    drop(handle);
}

#[test]
fn cgroup_source_reports_an_oom_kill_as_an_audit_event() {
    let id = format!("t{}-sampler-oom", std::process::id());
    let limits = Limits {
        memory_bytes: Some(32 << 20),
        pids: Some(16),
        ..Limits::default()
    };
    let cg = match cgroup::create(&id, &limits).expect("creates") {
        CgroupSetup::Limited(cg) => Arc::new(cg),
        CgroupSetup::Unavailable { reason } => panic!("unavailable as root: {reason}"),
    };
    let mut child = held("exec tail /dev/zero");
    cg.add_process(child.id()).expect("add");
    let (tx, rx) = mpsc::channel();
    let handle = spawn_sampler(
        UsageSource::Cgroup(Arc::clone(&cg)),
        Duration::from_millis(50),
        id.clone(),
        tx,
    );
    let before = next_usage(&rx);
    assert_eq!(
        (
            before.memory_limit_bytes,
            before.pids_limit,
            before.oom_kills
        ),
        (Some(32 << 20), Some(16), 0)
    );
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(b"go\n")
        .expect("release");
    let oom = loop {
        let ev = rx
            .recv_timeout(WAIT)
            .expect("events keep coming during the bomb");
        if let EventKind::Audit(a) = ev.kind {
            break a;
        }
    };
    assert_eq!(oom.event, "oom");
    assert_eq!(oom.detail["new"], 1);
    assert_eq!(oom.detail["memory_limit_bytes"], 32u64 << 20);
    let after = next_usage(&rx);
    assert!(
        after.oom_kills >= 1 && after.memory_peak_bytes > 16 << 20,
        "{after:?}"
    );
    drop(handle);
    child.wait().expect("wait");
    assert_eq!(Arc::strong_count(&cg), 1, "the sampler released the cgroup");
}

#[test]
fn an_oom_kill_in_the_last_interval_is_reported_when_the_sampler_stops() {
    let id = format!("t{}-sampler-late-oom", std::process::id());
    let limits = Limits {
        memory_bytes: Some(32 << 20),
        ..Limits::default()
    };
    let cg = match cgroup::create(&id, &limits).expect("creates") {
        CgroupSetup::Limited(cg) => Arc::new(cg),
        CgroupSetup::Unavailable { reason } => panic!("unavailable as root: {reason}"),
    };
    let mut child = held("exec tail /dev/zero");
    cg.add_process(child.id()).expect("add");
    let (tx, rx) = mpsc::channel();
    // An hour-long interval: only the first sample and the final check on stop can see anything.
    let handle = spawn_sampler(
        UsageSource::Cgroup(Arc::clone(&cg)),
        Duration::from_secs(3600),
        id,
        tx,
    );
    assert_eq!(next_usage(&rx).oom_kills, 0);
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(b"go\n")
        .expect("release");
    child.wait().expect("OOM-killed");
    drop(handle);
    let rest: Vec<Event> = rx.iter().collect();
    assert!(
        rest.iter()
            .any(|e| matches!(&e.kind, EventKind::Audit(a) if a.event == "oom")),
        "final check reports the kill: {rest:?}"
    );
}

#[test]
fn sampler_keeps_reporting_through_a_fork_bomb() {
    let id = format!("t{}-sampler-forkbomb", std::process::id());
    let limits = Limits {
        pids: Some(64),
        ..Limits::default()
    };
    let cg = match cgroup::create(&id, &limits).expect("creates") {
        CgroupSetup::Limited(cg) => Arc::new(cg),
        CgroupSetup::Unavailable { reason } => panic!("unavailable as root: {reason}"),
    };
    let mut child = held("bomb() { bomb | bomb & }; bomb; sleep 30");
    cg.add_process(child.id()).expect("add");
    let (tx, rx) = mpsc::channel();
    let handle = spawn_sampler(
        UsageSource::Cgroup(Arc::clone(&cg)),
        Duration::from_millis(50),
        id,
        tx,
    );
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(b"go\n")
        .expect("release");
    let mut max = 0;
    for _ in 0..20 {
        let usage = next_usage(&rx);
        assert!(usage.pids <= 64, "bounded by pids.max: {usage:?}");
        assert_eq!(usage.pids_limit, Some(64));
        max = max.max(usage.pids);
    }
    assert!(max >= 32, "the bomb reached the limit, saw at most {max}");
    drop(handle);
    cg.kill_all();
    child.wait().expect("wait");
}
