//! Telemetry cost on an idle sandbox: CPU time of the sampler thread and of the event writer.
//!
//! Built and run by `bench/telemetry.sh`; usage: telemetry_idle cgroup|proc SECONDS INTERVAL_MS.

use std::fs;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use nucleus::cgroup::{self, CgroupSetup};
use nucleus::spec::Limits;
use nucleus::telemetry::sampler::{self, UsageSource, spawn_sampler};
use nucleus::telemetry::sink::EventSink;

/// On-CPU nanoseconds of one thread of this process (schedstat is ns-exact; stat is in ticks).
fn thread_cpu_ns(tid: &str) -> u64 {
    fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn sampler_tid() -> Option<String> {
    fs::read_dir("/proc/self/task")
        .ok()?
        .flatten()
        .find_map(|e| {
            let comm = fs::read_to_string(e.path().join("comm")).ok()?;
            (comm.trim() == sampler::THREAD_NAME)
                .then(|| e.file_name().to_string_lossy().into_owned())
        })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let source_kind = args.get(1).map_or("cgroup", String::as_str).to_owned();
    let secs: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(60);
    let interval = Duration::from_millis(args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1000));
    let id = format!("bench{}", std::process::id());
    let mut idle = Command::new("sleep")
        .arg((secs + 30).to_string())
        .stdin(Stdio::null())
        .spawn()
        .expect("sleep");

    let mut _cg_keep = None;
    let source = if source_kind == "proc" {
        UsageSource::Proc {
            root_pid: idle.id(),
        }
    } else {
        let limits = Limits {
            memory_bytes: Some(512 << 20),
            cpus: Some(1.0),
            pids: Some(64),
        };
        let cg = match cgroup::create(&id, &limits).expect("cgroup") {
            CgroupSetup::Limited(cg) => Arc::new(cg),
            CgroupSetup::Unavailable { reason } => panic!("{reason}"),
        };
        cg.add_process(idle.id()).expect("add");
        _cg_keep = Some(Arc::clone(&cg));
        UsageSource::Cgroup(cg)
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let events = dir.path().join("events.jsonl");
    let mut sink = EventSink::open_in(&dir.path().join("audit"), &id, Some(&events)).expect("sink");

    let (tx, rx) = mpsc::channel();
    let main_tid = fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| Some(p.file_name()?.to_string_lossy().into_owned()))
        .expect("/proc/thread-self names this thread");
    let writer_start = thread_cpu_ns(&main_tid);
    let handle = spawn_sampler(source, interval, id.clone(), tx);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut count = 0u64;
    let tid = loop {
        if let Some(t) = sampler_tid() {
            break t;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(ev) => {
                sink.write(&ev);
                count += 1;
            }
            Err(RecvTimeoutError::Timeout) => break,
            Err(RecvTimeoutError::Disconnected) => panic!("sampler died"),
        }
    }
    let sampler_ns = thread_cpu_ns(&tid);
    let writer_ns = thread_cpu_ns(&main_tid).saturating_sub(writer_start);
    let wall = start.elapsed();
    drop(handle);
    let _ = idle.kill();
    let _ = idle.wait();

    let pct = |ns: u64| ns as f64 / wall.as_nanos() as f64 * 100.0;
    println!(
        "source={source_kind} interval_ms={} wall_s={:.1} events={count} \
         sampler_cpu_ms={:.3} sampler_cpu_pct={:.4} per_sample_us={:.1} writer_cpu_ms={:.3} writer_cpu_pct={:.4} total_pct={:.4}",
        interval.as_millis(),
        wall.as_secs_f64(),
        sampler_ns as f64 / 1e6,
        pct(sampler_ns),
        sampler_ns as f64 / 1e3 / count.max(1) as f64,
        writer_ns as f64 / 1e6,
        pct(writer_ns),
        pct(sampler_ns + writer_ns),
    );
}
