//! The one event stream (DESIGN §3): every collector sends owned `Event`s down one channel.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// One record of what happened in a sandbox; serialises to one JSON line.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// When it happened (RFC 3339 in JSON).
    #[serde(with = "rfc3339")]
    pub ts: SystemTime,
    /// The sandbox id.
    pub sandbox: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The event payloads; `type` in JSON.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A hardening step or runtime fact.
    Audit(AuditEvent),
    /// A syscall that seccomp denied, or would deny in trace mode.
    Syscall(SyscallRecord),
    /// A cgroup (or /proc) usage sample.
    Usage(UsageSample),
    /// The workload ended.
    Exit(ExitRecord),
}

/// A hardening step or runtime fact, e.g. `capabilities_dropped`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AuditEvent {
    /// snake_case name of the step.
    pub event: String,
    /// Step-specific details.
    pub detail: serde_json::Value,
}

/// Verdict of the seccomp filter for one syscall.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Passed (only recorded by full tracing).
    Allowed,
    /// Refused with an errno (enforce mode).
    Denied,
    /// Let through, but the profile would have refused it (trace mode).
    WouldDeny,
}

/// One syscall seen by the seccomp listener.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SyscallRecord {
    /// Syscall name, or `syscall_N` when unknown.
    pub name: String,
    /// Syscall number.
    pub nr: i64,
    /// Architecture name, e.g. `x86_64`.
    pub arch: String,
    /// Host pid of the calling thread.
    pub pid: u32,
    /// The caller's `comm`.
    pub comm: String,
    /// What the filter did.
    pub verdict: Verdict,
    /// How many times this (name, verdict) was seen so far, this one included.
    pub count: u64,
    /// The six raw argument registers.
    pub args: [u64; 6],
    /// The errno returned for a denial.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub errno: Option<i32>,
}

/// One usage sample (cgroup, or /proc when no cgroup is available).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct UsageSample {
    /// Current memory use.
    pub memory_bytes: u64,
    /// Peak memory use.
    pub memory_peak_bytes: u64,
    /// Memory limit, or null when there is none.
    pub memory_limit_bytes: Option<u64>,
    /// Cumulative CPU time.
    pub cpu_usage_usec: u64,
    /// CPU use over the last interval, 100 = one core.
    pub cpu_percent: f64,
    /// Current number of tasks.
    pub pids: u64,
    /// Task limit, or null when there is none.
    pub pids_limit: Option<u64>,
    /// OOM kills so far.
    pub oom_kills: u64,
    /// Cumulative time throttled by the CPU quota.
    pub cpu_throttled_usec: u64,
}

/// How the workload ended.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ExitRecord {
    /// Exit code (128+signal when killed by a signal), as `run` exits with.
    pub code: i32,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
    /// Whether the kernel's OOM killer acted in the sandbox.
    pub oom_killed: bool,
    /// Wall time from start to exit.
    pub duration_ms: u64,
}

impl Event {
    /// Stamp `kind` with the current time and the sandbox id.
    pub fn now(sandbox: &str, kind: EventKind) -> Self {
        Event {
            ts: SystemTime::now(),
            sandbox: sandbox.to_owned(),
            kind,
        }
    }

    /// Convenience constructor for an audit event.
    pub fn audit(sandbox: &str, event: &str, detail: serde_json::Value) -> Self {
        Self::now(
            sandbox,
            EventKind::Audit(AuditEvent {
                event: event.to_owned(),
                detail,
            }),
        )
    }
}

/// RFC 3339 timestamps (UTC, microseconds) without a date-time dependency.
mod rfc3339 {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).ok_or_else(|| serde::de::Error::custom(format!("bad RFC 3339 time {text:?}")))
    }

    /// Format as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    pub fn format(t: SystemTime) -> String {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs() as i64;
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60,
            since.subsec_micros()
        )
    }

    /// Parse the format that `format` writes.
    pub fn parse(text: &str) -> Option<SystemTime> {
        let text = text.strip_suffix('Z')?;
        let (date, time) = text.split_once('T')?;
        let mut date = date.split('-').map(|p| p.parse::<i64>().ok());
        let (y, m, d) = (date.next()??, date.next()??, date.next()??);
        let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
        let mut hms = hms.split(':').map(|p| p.parse::<i64>().ok());
        let (hh, mm, ss) = (hms.next()??, hms.next()??, hms.next()??);
        let micros: u64 = format!("{frac:0<6}")[..6].parse().ok()?;
        let secs = days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss;
        Some(
            UNIX_EPOCH
                + Duration::from_secs(u64::try_from(secs).ok()?)
                + Duration::from_micros(micros),
        )
    }

    // Howard Hinnant's days <-> civil date algorithms.
    fn civil_from_days(z: i64) -> (i64, i64, i64) {
        let z = z + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        (yoe + era * 400 + i64::from(m <= 2), m, d)
    }

    fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let mp = if m > 2 { m - 3 } else { m + 9 };
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn round_trips_and_matches_known_date() {
            let t =
                UNIX_EPOCH + Duration::from_secs(1_796_000_000) + Duration::from_micros(123_456);
            let text = format(t);
            assert_eq!(text, "2026-11-30T00:53:20.123456Z");
            assert_eq!(parse(&text), Some(t));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_event_has_contract_fields() {
        let ev = Event::now(
            "abc",
            EventKind::Syscall(SyscallRecord {
                name: "mount".into(),
                nr: 165,
                arch: "x86_64".into(),
                pid: 7,
                comm: "sh".into(),
                verdict: Verdict::Denied,
                count: 1,
                args: [0; 6],
                errno: Some(1),
            }),
        );
        let json: serde_json::Value = serde_json::to_value(&ev).expect("serialises");
        for key in [
            "ts", "sandbox", "type", "name", "nr", "arch", "pid", "comm", "verdict", "count",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        assert_eq!(json["type"], "syscall");
        assert_eq!(json["verdict"], "denied");
        let back: Event = serde_json::from_value(json).expect("parses back");
        assert_eq!(back.kind, ev.kind);
    }
}
