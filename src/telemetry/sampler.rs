//! The usage sampler: a thread that emits `type:"usage"` events at an interval, and `oom` audits.
//!
//! It sleeps in `recv_timeout` on a stop channel, so it costs nothing between samples and stops as
//! soon as its handle is dropped.

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::cgroup::SandboxCgroup;
use crate::events::{Event, EventKind, UsageSample};
use crate::telemetry::proc_usage::ProcTree;

/// The default sampling interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// Shortest interval honoured; anything faster would make the sampler the workload.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Without a cgroup the first sample comes after one interval, but never later than this. Why not at
/// once: a start is over in ~10 ms, and the first `/proc` walk reads every host process (~2 ms of
/// CPU). A cgroup's first sample is cheap (a few small files) and comes at once.
pub const FIRST_SAMPLE_AFTER: Duration = Duration::from_millis(100);

/// The name of the sampler thread, as seen in `/proc/PID/task/TID/comm`.
pub const THREAD_NAME: &str = "nucleus-sampler";

/// Where usage comes from.
#[derive(Debug, Clone)]
pub enum UsageSource {
    /// The sandbox's cgroup.
    Cgroup(Arc<SandboxCgroup>),
    /// No cgroup: walk `/proc` for `root_pid` and its descendants.
    Proc {
        /// The sandbox's PID 1, as a host pid.
        root_pid: u32,
    },
}

/// Stops and joins the sampler thread when dropped.
#[derive(Debug)]
pub struct SamplerHandle {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl SamplerHandle {
    /// Stop the sampler now and wait for its thread (same as dropping the handle).
    pub fn stop(self) {}
}

impl Drop for SamplerHandle {
    fn drop(&mut self) {
        // Dropping the sender wakes the thread's recv_timeout with Disconnected.
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Start sampling `source` every `interval`, sending events for `sandbox` down `tx`.
///
/// The first sample is sent at once from a cgroup, and after `min(interval, FIRST_SAMPLE_AFTER)` from
/// `/proc`; the thread ends when the handle drops or `tx`'s receiver does.
pub fn spawn_sampler(
    source: UsageSource,
    interval: Duration,
    sandbox: String,
    tx: Sender<Event>,
) -> SamplerHandle {
    let (stop_tx, stop_rx) = mpsc::channel();
    let interval = interval.max(MIN_INTERVAL);
    let spawned = thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || run(source, interval, &sandbox, &tx, &stop_rx));
    let thread = match spawned {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the usage sampler; no usage events");
            None
        }
    };
    SamplerHandle {
        stop: Some(stop_tx),
        thread,
    }
}

fn run(
    source: UsageSource,
    interval: Duration,
    sandbox: &str,
    tx: &Sender<Event>,
    stop: &Receiver<()>,
) {
    let mut state = Rates::default();
    let mut reader = Reader::from(source);
    let mut wait = match reader {
        Reader::Cgroup(_) => Duration::ZERO,
        Reader::Proc(_) => interval.min(FIRST_SAMPLE_AFTER),
    };
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(wait) {
        let (sample, new_ooms) = state.update(reader.read(), Instant::now());
        if send_oom(sandbox, tx, &sample, new_ooms).is_err()
            || tx
                .send(Event::now(sandbox, EventKind::Usage(sample)))
                .is_err()
        {
            return;
        }
        wait = interval;
    }
    // An OOM kill in the last interval usually ends the workload, and so the sampler: report it still.
    // Only a cgroup counts OOM kills; a last walk of /proc would cost the exit path for nothing.
    if let Reader::Cgroup(_) = reader {
        let (sample, new_ooms) = state.update(reader.read(), Instant::now());
        let _ = send_oom(sandbox, tx, &sample, new_ooms);
    }
}

/// A source with the state its readings need.
enum Reader {
    Cgroup(Arc<SandboxCgroup>),
    Proc(ProcTree),
}

impl From<UsageSource> for Reader {
    fn from(source: UsageSource) -> Self {
        match source {
            UsageSource::Cgroup(cg) => Reader::Cgroup(cg),
            UsageSource::Proc { root_pid } => Reader::Proc(ProcTree::new(root_pid)),
        }
    }
}

impl Reader {
    fn read(&mut self) -> UsageSample {
        match self {
            Reader::Cgroup(cg) => cg.sample(),
            Reader::Proc(tree) => tree.sample(),
        }
    }
}

/// Emit the `oom` audit event when the kill counter rose since the last sample.
fn send_oom(
    sandbox: &str,
    tx: &Sender<Event>,
    sample: &UsageSample,
    new_ooms: u64,
) -> Result<(), ()> {
    if new_ooms == 0 {
        return Ok(());
    }
    let detail = json!({
        "oom_kills": sample.oom_kills,
        "new": new_ooms,
        "memory_limit_bytes": sample.memory_limit_bytes,
        "memory_peak_bytes": sample.memory_peak_bytes,
    });
    tx.send(Event::audit(sandbox, "oom", detail))
        .map_err(|_| ())
}

/// What the sampler remembers between samples to derive rates, peaks and new OOM kills.
#[derive(Debug, Default)]
pub struct Rates {
    last: Option<(Instant, u64)>,
    peak: u64,
    oom_kills: u64,
}

impl Rates {
    /// Fill `cpu_percent` and a monotonic peak into `raw`; also return how many OOM kills are new.
    pub fn update(&mut self, mut raw: UsageSample, now: Instant) -> (UsageSample, u64) {
        if let Some((then, usec)) = self.last {
            raw.cpu_percent = cpu_percent(usec, raw.cpu_usage_usec, now.duration_since(then));
        }
        self.last = Some((now, raw.cpu_usage_usec));
        // /proc sources have no kernel-kept peak, and v2 without memory.peak reports 0.
        self.peak = self.peak.max(raw.memory_peak_bytes).max(raw.memory_bytes);
        raw.memory_peak_bytes = self.peak;
        let new_ooms = raw.oom_kills.saturating_sub(self.oom_kills);
        self.oom_kills = self.oom_kills.max(raw.oom_kills);
        (raw, new_ooms)
    }
}

/// CPU use between two cumulative readings over `elapsed`, where 100 means one core.
pub fn cpu_percent(before_usec: u64, after_usec: u64, elapsed: Duration) -> f64 {
    let wall = elapsed.as_micros() as f64;
    if wall <= 0.0 {
        return 0.0;
    }
    // A /proc tree loses the time of children that exit unreaped, so usage can step back.
    let used = after_usec.saturating_sub(before_usec) as f64;
    (used / wall * 100.0 * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_is_per_core_and_never_negative() {
        assert_eq!(cpu_percent(0, 500_000, Duration::from_secs(1)), 50.0);
        assert_eq!(cpu_percent(0, 2_000_000, Duration::from_secs(1)), 200.0);
        assert_eq!(cpu_percent(900, 100, Duration::from_secs(1)), 0.0);
        assert_eq!(cpu_percent(0, 100, Duration::ZERO), 0.0);
    }

    #[test]
    fn rates_track_peak_and_new_ooms() {
        let mut rates = Rates::default();
        let t0 = Instant::now();
        let s = |mem, cpu, oom| UsageSample {
            memory_bytes: mem,
            cpu_usage_usec: cpu,
            oom_kills: oom,
            ..Default::default()
        };
        let (a, new) = rates.update(s(100, 0, 0), t0);
        assert_eq!((a.cpu_percent, a.memory_peak_bytes, new), (0.0, 100, 0));
        let (b, new) = rates.update(s(50, 250_000, 1), t0 + Duration::from_millis(500));
        assert_eq!((b.cpu_percent, b.memory_peak_bytes, new), (50.0, 100, 1));
        let (_, new) = rates.update(s(50, 250_000, 1), t0 + Duration::from_secs(1));
        assert_eq!(new, 0);
    }
}
