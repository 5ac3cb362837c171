//! Usage from `/proc` for sandboxes without a cgroup: walk the process tree below the root pid.

use std::collections::HashMap;
use std::fs;

use nix::unistd::{SysconfVar, sysconf};

use crate::cgroup::parse::{self, ProcStat};
use crate::events::UsageSample;

/// Memory and CPU of a process tree at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeUsage {
    /// Summed resident set size.
    pub rss_bytes: u64,
    /// Summed CPU time, including reaped children (so exited descendants still count).
    pub cpu_usec: u64,
    /// Number of threads in the tree.
    pub tasks: u64,
}

/// Sum the usage of `root_pid` and all its descendants; None when `root_pid` is gone.
pub fn tree_usage(root_pid: u32) -> Option<TreeUsage> {
    let mut stats: HashMap<u32, ProcStat> = HashMap::new();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may exit between readdir and read; skipping it is the only sane answer.
        if let Some(stat) = fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|t| parse::proc_stat(&t))
        {
            stats.insert(pid, stat);
        }
    }
    let tree = descendants(root_pid, &stats)?;
    let (tick_usec, page) = units();
    let mut usage = TreeUsage::default();
    for pid in tree {
        if let Some(s) = stats.get(&pid) {
            usage.rss_bytes += s.rss_pages * page;
            usage.cpu_usec += s.ticks * tick_usec;
            usage.tasks += s.threads;
        }
    }
    Some(usage)
}

/// `root` and every pid whose parent chain reaches it; None when `root` is not in `stats`.
pub fn descendants(root: u32, stats: &HashMap<u32, ProcStat>) -> Option<Vec<u32>> {
    stats.get(&root)?;
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (&pid, s) in stats {
        children.entry(s.ppid).or_default().push(pid);
    }
    let mut out = vec![root];
    let mut i = 0;
    while let Some(&pid) = out.get(i) {
        if let Some(kids) = children.get(&pid) {
            out.extend(kids.iter().copied().filter(|&k| k != pid));
        }
        i += 1;
    }
    Some(out)
}

/// Microseconds per clock tick and bytes per page.
fn units() -> (u64, u64) {
    let ticks = sysconf(SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100)
        .max(1) as u64;
    let page = sysconf(SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096)
        .max(1) as u64;
    (1_000_000 / ticks, page)
}

/// A usage sample from the tree (no limits: without a cgroup none are enforced).
pub fn sample(root_pid: u32) -> UsageSample {
    let usage = tree_usage(root_pid).unwrap_or_default();
    UsageSample {
        memory_bytes: usage.rss_bytes,
        memory_peak_bytes: usage.rss_bytes,
        cpu_usage_usec: usage.cpu_usec,
        pids: usage.tasks,
        ..UsageSample::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(ppid: u32) -> ProcStat {
        ProcStat {
            ppid,
            ticks: 1,
            rss_pages: 1,
            threads: 1,
        }
    }

    #[test]
    fn descendants_follow_parent_links_only() {
        let stats: HashMap<u32, ProcStat> = [
            (1, stat(0)),
            (10, stat(1)),
            (11, stat(10)),
            (12, stat(11)),
            (20, stat(1)),
        ]
        .into();
        let mut tree = descendants(10, &stats).expect("root present");
        tree.sort_unstable();
        assert_eq!(tree, vec![10, 11, 12]);
        assert_eq!(descendants(99, &stats), None);
    }

    #[test]
    fn own_process_is_sampled() {
        let usage = tree_usage(std::process::id()).expect("we exist");
        assert!(usage.rss_bytes > 0);
        assert!(usage.tasks >= 1);
    }
}
