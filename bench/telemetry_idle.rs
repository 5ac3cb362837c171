//! Telemetry cost on an idle sandbox: CPU time of usage sampling and of event writing.
//!
//! Built and run by `bench/telemetry.sh`; usage: telemetry_idle cgroup|proc SECONDS INTERVAL_MS.
//!
//! The main thread drives a `Sampler` as the supervisor's loop does (sleep until it is due, sample,
//! write the events) and reads its own CPU time (`CLOCK_THREAD_CPUTIME_ID`, nanosecond-exact) around
//! each `sample_if_due` and each `EventSink::write`.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nucleus::cgroup::{self, CgroupSetup};
use nucleus::spec::Limits;
use nucleus::telemetry::sampler::{Sampler, UsageSource};
use nucleus::telemetry::sink::EventSink;

/// On-CPU nanoseconds of the calling thread.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
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
        UsageSource::Cgroup(cg)
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let events = dir.path().join("events.jsonl");
    let mut sink = EventSink::open_in(&dir.path().join("audit"), &id, Some(&events)).expect("sink");

    let thread_start = thread_cpu_ns();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut sampler = Sampler::new(source, interval, start);
    let (mut samples, mut count) = (0u64, 0u64);
    let (mut sampler_ns, mut writer_ns) = (0u64, 0u64);
    loop {
        let now = Instant::now();
        let Some(left) = deadline.checked_duration_since(now) else {
            break;
        };
        let wait = sampler.until_due(now);
        if wait > left {
            std::thread::sleep(left);
            break;
        }
        std::thread::sleep(wait);
        let t0 = thread_cpu_ns();
        let batch = sampler.sample_if_due(&id, Instant::now());
        let t1 = thread_cpu_ns();
        for ev in &batch {
            sink.write(ev);
        }
        let t2 = thread_cpu_ns();
        sampler_ns += t1 - t0;
        writer_ns += t2 - t1;
        samples += u64::from(!batch.is_empty());
        count += batch.len() as u64;
    }
    let wall = start.elapsed();
    // The rest of the thread's time: sleeping and waking, here the test loop's and not the sampler's.
    let thread_ns = thread_cpu_ns() - thread_start;
    drop(sampler);
    let _ = idle.kill();
    let _ = idle.wait();

    let pct = |ns: u64| ns as f64 / wall.as_nanos() as f64 * 100.0;
    println!(
        "source={source_kind} interval_ms={} wall_s={:.1} samples={samples} events={count} \
         sampler_cpu_ms={:.3} sampler_cpu_pct={:.4} per_sample_us={:.1} writer_cpu_ms={:.3} writer_cpu_pct={:.4} total_pct={:.4} \
         loop_other_cpu_ms={:.3}",
        interval.as_millis(),
        wall.as_secs_f64(),
        sampler_ns as f64 / 1e6,
        pct(sampler_ns),
        sampler_ns as f64 / 1e3 / samples.max(1) as f64,
        writer_ns as f64 / 1e6,
        pct(writer_ns),
        pct(sampler_ns + writer_ns),
        thread_ns.saturating_sub(sampler_ns + writer_ns) as f64 / 1e6,
    );
}
