//! Usage sampling: `type:"usage"` events at an interval, and `oom` audit events, with no thread of
//! its own.
//!
//! A [`Sampler`] is a plain value driven by the caller's event loop: the loop waits (in `poll`, say)
//! for no longer than [`Sampler::until_due`], calls [`Sampler::sample_if_due`] when it wakes, and
//! writes the events it gets back; when the sandbox ends, [`Sampler::finish`] makes the last OOM
//! check. Between samples it costs nothing, and there is no thread to spawn, wake or join at exit.

use std::sync::Arc;
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

/// Usage sampling driven by the caller's event loop (no thread of its own).
#[derive(Debug)]
pub struct Sampler {
    reader: Reader,
    rates: Rates,
    interval: Duration,
    due: Instant,
}

impl Sampler {
    /// First sample: due at once from a cgroup; from /proc after min(interval, FIRST_SAMPLE_AFTER).
    /// `interval` is clamped to at least MIN_INTERVAL.
    pub fn new(source: UsageSource, interval: Duration, now: Instant) -> Sampler {
        let interval = interval.max(MIN_INTERVAL);
        let reader = Reader::from(source);
        let first = first_wait(matches!(reader, Reader::Cgroup(_)), interval);
        Sampler {
            reader,
            rates: Rates::default(),
            interval,
            due: now + first,
        }
    }

    /// Time left until the next sample is due (Duration::ZERO when due or overdue).
    pub fn until_due(&self, now: Instant) -> Duration {
        self.due.saturating_duration_since(now)
    }

    /// If a sample is due at `now`: read the source and return the events — an `oom` audit event
    /// first when the OOM-kill counter rose since the last reading, then the `usage` event — and
    /// schedule the next sample one interval after `now`. Not due: an empty Vec, nothing read.
    pub fn sample_if_due(&mut self, sandbox: &str, now: Instant) -> Vec<Event> {
        if now < self.due {
            return Vec::new();
        }
        self.due = now + self.interval;
        let (sample, new_ooms) = self.read();
        let mut events = Vec::with_capacity(2);
        events.extend(oom_event(sandbox, &sample, new_ooms));
        events.push(Event::now(sandbox, EventKind::Usage(sample)));
        events
    }

    /// The final check when the sandbox ends: an `oom` audit event for a kill in the last interval.
    /// Cgroup only (a last /proc walk would cost the exit path for nothing): None for /proc.
    pub fn finish(mut self, sandbox: &str) -> Option<Event> {
        // An OOM kill in the last interval usually ends the workload, so no later sample sees it.
        // Only a cgroup counts OOM kills.
        if let Reader::Proc(_) = self.reader {
            return None;
        }
        let (sample, new_ooms) = self.read();
        oom_event(sandbox, &sample, new_ooms)
    }

    /// Read the source now; the sample with its rates, and how many OOM kills are new.
    fn read(&mut self) -> (UsageSample, u64) {
        let raw = self.reader.read();
        // The rate's clock is the reading's, not the caller's `now`, which may be a little stale.
        self.rates.update(raw, Instant::now())
    }
}

/// How long after its creation a sampler's first sample is due.
fn first_wait(from_cgroup: bool, interval: Duration) -> Duration {
    if from_cgroup {
        Duration::ZERO
    } else {
        interval.min(FIRST_SAMPLE_AFTER)
    }
}

/// A source with the state its readings need.
#[derive(Debug)]
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

/// The `oom` audit event, when the kill counter rose since the last sample.
fn oom_event(sandbox: &str, sample: &UsageSample, new_ooms: u64) -> Option<Event> {
    if new_ooms == 0 {
        return None;
    }
    let detail = json!({
        "oom_kills": sample.oom_kills,
        "new": new_ooms,
        "memory_limit_bytes": sample.memory_limit_bytes,
        "memory_peak_bytes": sample.memory_peak_bytes,
    });
    Some(Event::audit(sandbox, "oom", detail))
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

    /// A `/proc` source for the due-time tests: this test process's own tree.
    fn own_tree() -> UsageSource {
        UsageSource::Proc {
            root_pid: std::process::id(),
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_cgroup_is_due_at_once() {
        assert_eq!(first_wait(true, DEFAULT_INTERVAL), Duration::ZERO);
        assert_eq!(first_wait(true, Duration::from_secs(3600)), Duration::ZERO);
        assert_eq!(first_wait(false, DEFAULT_INTERVAL), FIRST_SAMPLE_AFTER);
    }

    #[test]
    fn proc_is_due_after_the_interval_or_100_ms_whichever_is_shorter() {
        let t0 = Instant::now();
        let fast = Sampler::new(own_tree(), 20 * MS, t0);
        assert_eq!(fast.until_due(t0), 20 * MS);
        let default = Sampler::new(own_tree(), DEFAULT_INTERVAL, t0);
        assert_eq!(default.until_due(t0), FIRST_SAMPLE_AFTER);
        assert_eq!(default.until_due(t0 + 40 * MS), 60 * MS);
        assert_eq!(default.until_due(t0 + FIRST_SAMPLE_AFTER), Duration::ZERO);
        assert_eq!(default.until_due(t0 + 5000 * MS), Duration::ZERO, "overdue");
        // Below MIN_INTERVAL the interval is clamped, the first wait with it.
        let clamped = Sampler::new(own_tree(), MS, t0);
        assert_eq!(clamped.until_due(t0), MIN_INTERVAL);
    }

    #[test]
    fn an_hour_interval_from_proc_is_still_first_due_after_100_ms() {
        let t0 = Instant::now();
        let mut s = Sampler::new(own_tree(), Duration::from_secs(3600), t0);
        assert_eq!(s.until_due(t0), FIRST_SAMPLE_AFTER);
        assert!(s.sample_if_due("h", t0 + 99 * MS).is_empty());
        assert_eq!(s.sample_if_due("h", t0 + FIRST_SAMPLE_AFTER).len(), 1);
        let after = t0 + FIRST_SAMPLE_AFTER;
        assert_eq!(s.until_due(after), Duration::from_secs(3600));
    }

    #[test]
    fn after_a_sample_the_next_is_one_interval_later() {
        let t0 = Instant::now();
        let interval = Duration::from_secs(2);
        let mut s = Sampler::new(own_tree(), interval, t0);
        // Woken 30 ms late: the next sample is one interval after this one, not after the due time.
        let late = t0 + 130 * MS;
        let events = s.sample_if_due("n", late);
        assert_eq!(events.len(), 1, "one usage event, no oom: {events:?}");
        assert_eq!(events[0].sandbox, "n");
        let EventKind::Usage(usage) = &events[0].kind else {
            panic!("a usage event: {events:?}");
        };
        assert!(
            usage.pids >= 1,
            "this process is in its own tree: {usage:?}"
        );
        assert_eq!(s.until_due(late), interval);
        assert!(s.sample_if_due("n", late + interval - MS).is_empty());
        assert_eq!(s.sample_if_due("n", late + interval).len(), 1);
        assert_eq!(s.until_due(late + interval), interval);
    }

    #[test]
    fn not_due_gives_no_events_and_reads_nothing() {
        let t0 = Instant::now();
        let mut s = Sampler::new(own_tree(), DEFAULT_INTERVAL, t0);
        assert!(s.sample_if_due("r", t0).is_empty());
        assert!(s.sample_if_due("r", t0 + 99 * MS).is_empty());
        assert!(s.rates.last.is_none(), "no reading was taken: {s:?}");
        assert_eq!(
            s.until_due(t0),
            FIRST_SAMPLE_AFTER,
            "and the due time is unchanged"
        );
    }

    #[test]
    fn finish_from_proc_reports_nothing() {
        let t0 = Instant::now();
        let mut s = Sampler::new(own_tree(), DEFAULT_INTERVAL, t0);
        assert_eq!(s.sample_if_due("f", t0 + FIRST_SAMPLE_AFTER).len(), 1);
        assert!(s.finish("f").is_none());
    }
}
