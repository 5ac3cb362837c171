//! cgroup v1 for real (this host is v1-hybrid): limits, OOM, fork bomb, kill, removal.

mod common;

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nucleus::cgroup::{self, CgroupLayout, CgroupSetup, SandboxCgroup, Version};
use nucleus::spec::Limits;

use common::{held, release};

fn v1_cgroup(name: &str, limits: Limits) -> SandboxCgroup {
    let layout = CgroupLayout::detect_at(Path::new("/sys/fs/cgroup")).expect("detects");
    assert!(
        matches!(layout, CgroupLayout::V1 { .. }),
        "this host is v1-hybrid: {layout:?}"
    );
    let id = format!("t{}-{name}", std::process::id());
    match cgroup::create_in(&layout, &id, &limits).expect("creates") {
        CgroupSetup::Limited(cg) => cg,
        CgroupSetup::Unavailable { reason } => panic!("unavailable as root: {reason}"),
    }
}

fn read(cg: &SandboxCgroup, controller: &str, file: &str) -> String {
    let dir = cg
        .paths()
        .into_iter()
        .find(|p| p.components().any(|c| c.as_os_str() == controller))
        .expect("controller dir")
        .to_owned();
    fs::read_to_string(dir.join(file))
        .expect("read cgroup file")
        .trim()
        .to_owned()
}

#[test]
fn limits_are_written_and_dirs_removed_on_drop() {
    let limits = Limits {
        memory_bytes: Some(64 << 20),
        cpus: Some(0.5),
        pids: Some(64),
    };
    let cg = v1_cgroup("limits", limits);
    assert_eq!(cg.version(), Version::V1);
    assert_eq!(
        read(&cg, "memory", "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    assert_eq!(read(&cg, "cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(read(&cg, "cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(read(&cg, "pids", "pids.max"), "64");
    let desc = cg.describe();
    assert_eq!(desc["version"], "v1");
    assert_eq!(desc["limits"]["memory_bytes"], 64u64 << 20);
    assert_eq!(
        desc["paths"].as_array().map(Vec::len),
        Some(cg.paths().len())
    );
    let sample = cg.sample();
    assert_eq!(sample.memory_limit_bytes, Some(64 << 20));
    assert_eq!(sample.pids_limit, Some(64));
    let paths: Vec<_> = cg.paths().into_iter().map(Path::to_owned).collect();
    assert!(paths.len() >= 3 && paths.iter().all(|p| p.is_dir()));
    drop(cg);
    assert!(paths.iter().all(|p| !p.exists()), "left behind: {paths:?}");
}

#[test]
fn memory_bomb_is_oom_killed_and_counted() {
    let cg = v1_cgroup(
        "oom",
        Limits {
            memory_bytes: Some(64 << 20),
            ..Limits::default()
        },
    );
    // tail buffers /dev/zero looking for a newline that never comes: memory grows without bound.
    let mut child = held("exec tail /dev/zero");
    cg.add_process(child.id()).expect("add to cgroup");
    assert_eq!(cg.pids(), vec![child.id()]);
    release(&mut child);
    let status = child.wait().expect("wait");
    assert_eq!(
        status.signal(),
        Some(9),
        "OOM killer sends SIGKILL: {status:?}"
    );
    assert!(cg.oom_kills() >= 1);
    let sample = cg.sample();
    assert!(sample.oom_kills >= 1);
    assert!(
        sample.memory_peak_bytes > 32 << 20,
        "peak {}",
        sample.memory_peak_bytes
    );
    assert!(
        sample.memory_peak_bytes <= 64 << 20,
        "peak {}",
        sample.memory_peak_bytes
    );
}

#[test]
fn fork_bomb_is_bounded_and_killed() {
    let cg = v1_cgroup(
        "forkbomb",
        Limits {
            pids: Some(64),
            ..Limits::default()
        },
    );
    let mut child = held("bomb() { bomb | bomb & }; bomb; sleep 30");
    cg.add_process(child.id()).expect("add to cgroup");
    release(&mut child);
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut max = 0;
    while Instant::now() < deadline {
        let sample = cg.sample();
        max = max.max(sample.pids);
        assert!(
            sample.pids <= 64,
            "pids.current {} exceeds the limit",
            sample.pids
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        max >= 32,
        "the bomb should have hit the limit, saw at most {max}"
    );
    let failcnt: u64 = read(&cg, "pids", "pids.events")
        .trim_start_matches("max ")
        .parse()
        .expect("pids.events");
    assert!(failcnt > 0, "forks were refused");
    cg.kill_all();
    assert!(cg.pids().is_empty(), "kill_all left {:?}", cg.pids());
    assert_eq!(child.wait().expect("wait").signal(), Some(9));
}

#[test]
fn cpu_quota_throttles_a_busy_loop() {
    let cg = v1_cgroup(
        "cpu",
        Limits {
            cpus: Some(0.2),
            ..Limits::default()
        },
    );
    let mut child = held("while :; do :; done");
    cg.add_process(child.id()).expect("add to cgroup");
    release(&mut child);
    std::thread::sleep(Duration::from_millis(1500));
    let sample = cg.sample();
    assert!(sample.cpu_usage_usec > 0);
    assert!(
        sample.cpu_throttled_usec > 0,
        "a 0.2-core quota must throttle a busy loop: {sample:?}"
    );
    // 1.5 s at 0.2 cores is ~300 ms; far below the 1.5 s an unthrottled loop would burn.
    assert!(sample.cpu_usage_usec < 1_000_000, "{sample:?}");
    let paths: Vec<_> = cg.paths().into_iter().map(Path::to_owned).collect();
    // The killed child stays an unreaped zombie until wait() below: removal must not wait for that.
    drop(cg);
    assert!(paths.iter().all(|p| !p.exists()), "left behind: {paths:?}");
    assert_eq!(
        child.wait().expect("wait").signal(),
        Some(9),
        "drop kills the tasks"
    );
}
