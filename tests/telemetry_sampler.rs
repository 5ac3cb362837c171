//! The usage sampler against real processes: /proc trees and a real v1 cgroup under OOM.
//!
//! Each test drives a `Sampler` as the supervisor's loop does: sleep until it is due, then sample.

mod common;

use std::collections::VecDeque;
use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use nucleus::cgroup::{self, CgroupSetup, SandboxCgroup};
use nucleus::events::{Event, EventKind, UsageSample};
use nucleus::spec::Limits;
use nucleus::telemetry::sampler::{Sampler, UsageSource};

use common::{held, release};

const WAIT: Duration = Duration::from_secs(20);

/// The test's event loop: a sampler and the events it returned that the test has not looked at yet.
struct Driver {
    sampler: Sampler,
    sandbox: String,
    pending: VecDeque<Event>,
}

impl Driver {
    fn new(source: UsageSource, interval: Duration, sandbox: &str) -> Driver {
        Driver {
            sampler: Sampler::new(source, interval, Instant::now()),
            sandbox: sandbox.into(),
            pending: VecDeque::new(),
        }
    }

    /// Sleep until the sampler is due and sample, until it returns events; those events.
    fn next_batch(&mut self) -> Vec<Event> {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = Instant::now();
            assert!(now < deadline, "no sample within {WAIT:?}");
            thread::sleep(self.sampler.until_due(now));
            let events = self.sampler.sample_if_due(&self.sandbox, Instant::now());
            if !events.is_empty() {
                return events;
            }
        }
    }

    fn next_event(&mut self) -> Event {
        if self.pending.is_empty() {
            let batch = self.next_batch();
            self.pending.extend(batch);
        }
        self.pending.pop_front().expect("a batch is never empty")
    }

    fn next_usage(&mut self) -> UsageSample {
        loop {
            if let EventKind::Usage(u) = self.next_event().kind {
                return u;
            }
        }
    }
}

fn limited(id: &str, limits: &Limits) -> Arc<SandboxCgroup> {
    match cgroup::create(id, limits).expect("creates") {
        CgroupSetup::Limited(cg) => Arc::new(cg),
        CgroupSetup::Unavailable { reason } => panic!("unavailable as root: {reason}"),
    }
}

#[test]
fn proc_source_counts_the_whole_tree() {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("sleep 30 & sleep 30 & wait")
        .spawn()
        .expect("spawn");
    let mut driver = Driver::new(
        UsageSource::Proc {
            root_pid: child.id(),
        },
        Duration::from_millis(20),
        "p1",
    );
    // The sleeps appear a moment after sh starts; wait for the tree to be complete.
    let mut usage = driver.next_usage();
    while usage.pids < 3 {
        usage = driver.next_usage();
    }
    assert_eq!(usage.pids, 3, "sh and two sleeps: {usage:?}");
    assert!(usage.memory_bytes > 0 && usage.memory_peak_bytes >= usage.memory_bytes);
    assert_eq!((usage.memory_limit_bytes, usage.pids_limit), (None, None));
    assert!(
        driver.sampler.finish("p1").is_none(),
        "no final check from /proc"
    );
    child.kill().expect("kill");
    child.wait().expect("wait");
}

#[test]
fn cgroup_source_reports_an_oom_kill_as_an_audit_event() {
    let id = format!("t{}-sampler-oom", std::process::id());
    let limits = Limits {
        memory_bytes: Some(32 << 20),
        pids: Some(16),
        ..Limits::default()
    };
    let cg = limited(&id, &limits);
    let mut child = held("exec tail /dev/zero");
    cg.add_process(child.id()).expect("add");
    let mut driver = Driver::new(
        UsageSource::Cgroup(Arc::clone(&cg)),
        Duration::from_millis(50),
        &id,
    );
    assert_eq!(
        driver.sampler.until_due(Instant::now()),
        Duration::ZERO,
        "a cgroup's first sample is due at once"
    );
    let before = driver.next_usage();
    assert_eq!(
        (
            before.memory_limit_bytes,
            before.pids_limit,
            before.oom_kills
        ),
        (Some(32 << 20), Some(16), 0)
    );
    release(&mut child);
    // The batch with the kill: the `oom` audit event first, then the usage sample that saw it.
    let batch = loop {
        let batch = driver.next_batch();
        if batch.len() > 1 {
            break batch;
        }
        assert!(
            matches!(batch[0].kind, EventKind::Usage(_)),
            "only usage until the kill: {batch:?}"
        );
    };
    let [oom, usage] = &batch[..] else {
        panic!("an oom and a usage event: {batch:?}");
    };
    let EventKind::Audit(oom) = &oom.kind else {
        panic!("the oom audit event comes first: {batch:?}");
    };
    assert_eq!(oom.event, "oom");
    assert_eq!(oom.detail["new"], 1);
    assert_eq!(oom.detail["memory_limit_bytes"], 32u64 << 20);
    let EventKind::Usage(after) = &usage.kind else {
        panic!("then the usage event: {batch:?}");
    };
    assert!(
        after.oom_kills >= 1 && after.memory_peak_bytes > 16 << 20,
        "{after:?}"
    );
    child.wait().expect("wait");
    assert!(
        driver.sampler.finish(&id).is_none(),
        "the kill was reported once, not again by the final check"
    );
    assert_eq!(Arc::strong_count(&cg), 1, "the sampler released the cgroup");
}

#[test]
fn an_oom_kill_in_the_last_interval_is_reported_by_finish() {
    let id = format!("t{}-sampler-late-oom", std::process::id());
    let limits = Limits {
        memory_bytes: Some(32 << 20),
        ..Limits::default()
    };
    let cg = limited(&id, &limits);
    let mut child = held("exec tail /dev/zero");
    cg.add_process(child.id()).expect("add");
    // An hour-long interval: only the first sample and the final check can see anything.
    let mut driver = Driver::new(
        UsageSource::Cgroup(Arc::clone(&cg)),
        Duration::from_secs(3600),
        &id,
    );
    assert_eq!(driver.next_usage().oom_kills, 0);
    release(&mut child);
    child.wait().expect("OOM-killed");
    assert!(
        driver.sampler.sample_if_due(&id, Instant::now()).is_empty(),
        "no sample is due within the hour"
    );
    let last = driver.sampler.finish(&id).expect("finish reports the kill");
    let EventKind::Audit(oom) = &last.kind else {
        panic!("an audit event: {last:?}");
    };
    assert_eq!((oom.event.as_str(), &oom.detail["new"]), ("oom", &1.into()));
    assert_eq!(oom.detail["memory_limit_bytes"], 32u64 << 20);
    assert_eq!(Arc::strong_count(&cg), 1, "finish released the cgroup");
}

#[test]
fn sampler_keeps_reporting_through_a_fork_bomb() {
    let id = format!("t{}-sampler-forkbomb", std::process::id());
    let limits = Limits {
        pids: Some(64),
        ..Limits::default()
    };
    let cg = limited(&id, &limits);
    let mut child = held("bomb() { bomb | bomb & }; bomb; sleep 30");
    cg.add_process(child.id()).expect("add");
    let mut driver = Driver::new(
        UsageSource::Cgroup(Arc::clone(&cg)),
        Duration::from_millis(50),
        &id,
    );
    release(&mut child);
    let mut max = 0;
    for _ in 0..20 {
        let usage = driver.next_usage();
        assert!(usage.pids <= 64, "bounded by pids.max: {usage:?}");
        assert_eq!(usage.pids_limit, Some(64));
        max = max.max(usage.pids);
    }
    assert!(max >= 32, "the bomb reached the limit, saw at most {max}");
    drop(driver);
    assert_eq!(Arc::strong_count(&cg), 1, "the sampler released the cgroup");
    cg.kill_all();
    child.wait().expect("wait");
}
