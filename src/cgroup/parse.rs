//! Pure parsers for cgroup and /proc text formats, so the kernel-facing code stays a thin reader.

use std::path::PathBuf;

/// The value of `key` in a flat-keyed file (`key value` per line: cpu.stat, memory.events, oom_control).
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// A single-number file; v2 writes `max` for "no limit", which becomes None.
pub fn number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The cgroup path of this process for one v1 controller, or for v2 when `controller` is None.
///
/// `text` is `/proc/self/cgroup`: lines of `id:controller,controller:/path`; v2 is `0::/path`.
pub fn own_cgroup(text: &str, controller: Option<&str>) -> Option<PathBuf> {
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = match controller {
            None => ctrls.is_empty(),
            Some(want) => ctrls.split(',').any(|c| c == want),
        };
        hit.then(|| PathBuf::from(path.trim_start_matches('/')))
    })
}

/// v1 CFS quota in microseconds for `cpus` cores over `period_us`; at least the kernel minimum (1 ms).
pub fn cfs_quota_us(cpus: f64, period_us: u64) -> u64 {
    let quota = (cpus * period_us as f64).round();
    if quota.is_finite() && quota >= 1000.0 {
        quota as u64
    } else {
        1000
    }
}

/// The content of a v2 `cpu.max` file: `quota period`.
pub fn cpu_max(cpus: f64, period_us: u64) -> String {
    format!("{} {period_us}", cfs_quota_us(cpus, period_us))
}

/// The resident set size in pages: the second field of `/proc/PID/statm`.
pub fn statm_resident_pages(text: &str) -> Option<u64> {
    text.split_whitespace().nth(1)?.parse().ok()
}

/// Fields of `/proc/PID/stat` that usage sampling needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    /// Parent pid.
    pub ppid: u32,
    /// User + system time of the process itself, plus that of its reaped children, in clock ticks.
    pub ticks: u64,
    /// Resident set size in pages.
    pub rss_pages: u64,
    /// Number of threads.
    pub threads: u64,
}

/// Parse `/proc/PID/stat`; `comm` may contain spaces and parentheses, so split after the last `)`.
pub fn proc_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Index 0 is field 3 (state) of proc(5).
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    let ticks = field(14)? + field(15)? + field(16)? + field(17)?;
    Some(ProcStat {
        ppid: u32::try_from(field(4)?).ok()?,
        ticks,
        rss_pages: field(24)?,
        threads: field(20)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_reads_cpu_stat_and_oom_control() {
        let stat = "usage_usec 1500\nuser_usec 1000\nthrottled_usec 42\n";
        assert_eq!(keyed(stat, "usage_usec"), Some(1500));
        assert_eq!(keyed(stat, "throttled_usec"), Some(42));
        assert_eq!(keyed(stat, "user"), None);
        let oom = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed(oom, "oom_kill"), Some(3));
    }

    #[test]
    fn number_treats_max_as_none() {
        assert_eq!(number("4096\n"), Some(4096));
        assert_eq!(number("max\n"), None);
    }

    #[test]
    fn own_cgroup_finds_v1_and_v2_lines() {
        let text = "9:name=systemd:/\n4:memory:/a/b\n1:cpu,cpuacct:/c\n0::/user.slice/x.scope\n";
        assert_eq!(own_cgroup(text, Some("memory")), Some(PathBuf::from("a/b")));
        assert_eq!(own_cgroup(text, Some("cpuacct")), Some(PathBuf::from("c")));
        assert_eq!(
            own_cgroup(text, None),
            Some(PathBuf::from("user.slice/x.scope"))
        );
        assert_eq!(own_cgroup(text, Some("pids")), None);
    }

    #[test]
    fn cpu_quota_is_fractional_and_clamped() {
        assert_eq!(cfs_quota_us(1.5, 100_000), 150_000);
        assert_eq!(cfs_quota_us(0.001, 100_000), 1000);
        assert_eq!(cpu_max(0.5, 100_000), "50000 100000");
    }

    #[test]
    fn statm_gives_resident_pages() {
        assert_eq!(statm_resident_pages("1000 250 100 1 0 50 0\n"), Some(250));
        assert_eq!(statm_resident_pages(""), None);
    }

    #[test]
    fn proc_stat_survives_odd_comm() {
        let text = "42 (a b) c)) S 7 42 42 0 -1 4194560 100 0 0 0 11 22 3 4 20 0 1 0 100 1000 55 18446744073709551615";
        let stat = proc_stat(text).expect("parses");
        assert_eq!(
            stat,
            ProcStat {
                ppid: 7,
                ticks: 40,
                rss_pages: 55,
                threads: 1
            }
        );
    }
}
