//! Limits through `nucleus run`: a fork bomb is capped, usage events follow a CPU-burning workload.

mod common;

use common::{As, Scratch, describe, run_sh, stdout_of};

#[test]
fn fork_bomb_is_capped_by_pids() {
    let scratch = Scratch::new(As::Root);
    // Forks sleepers until the kernel refuses; the pid namespace takes them all down at exit.
    let script = r#"python3 -c '
import os, time
n = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        n += 1
except OSError as e:
    print("capped", n, e.errno)
'"#;
    let out = run_sh(As::Root, &scratch, &["--pids", "64"], script);
    let text = stdout_of(&out);
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(fields.first(), Some(&"capped"), "{}", describe(&out));
    let forked: u32 = fields[1].parse().expect("count");
    assert!(
        forked < 64,
        "at most 64 tasks in the sandbox, forked {forked}"
    );
    assert_eq!(fields[2], libc::EAGAIN.to_string());
}

#[test]
fn usage_events_follow_a_cpu_burning_workload() {
    let scratch = Scratch::new(As::Root);
    let events = scratch.path().join("events.jsonl");
    let args = [
        "--cpus",
        "0.5",
        "--sample-interval-ms",
        "200",
        "--events",
        events.to_str().expect("utf8"),
    ];
    let burn = "python3 -c 'import time\nt = time.time()\nwhile time.time() - t < 2: pass'";
    let out = run_sh(As::Root, &scratch, &args, burn);
    assert!(out.status.success(), "{}", describe(&out));
    let usage: Vec<serde_json::Value> = std::fs::read_to_string(&events)
        .expect("events")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .filter(|e| e["type"] == "usage")
        .collect();
    assert!(
        usage.len() >= 5,
        "a sample every 200 ms for 2 s: {}",
        usage.len()
    );
    let cpu: Vec<u64> = usage
        .iter()
        .map(|e| e["cpu_usage_usec"].as_u64().expect("cpu_usage_usec"))
        .collect();
    assert!(
        cpu.windows(2).all(|w| w[0] <= w[1]),
        "cumulative CPU never goes back: {cpu:?}"
    );
    assert!(
        cpu[cpu.len() - 1] >= 500_000,
        "about a second of CPU in 2 s at 0.5 cores: {cpu:?}"
    );
    let percents: Vec<f64> = usage
        .iter()
        .filter_map(|e| e["cpu_percent"].as_f64())
        .collect();
    let busy = percents.iter().filter(|p| **p > 10.0).count();
    assert!(busy >= 3, "the burn shows up: {percents:?}");
    assert!(
        percents.iter().all(|p| *p <= 75.0),
        "the 0.5-core quota holds: {percents:?}"
    );
}
