//! Usage from `/proc` for sandboxes without a cgroup: walk the process tree below the root pid.
//!
//! A process outside the tree can never join it (orphans reparent to the sandbox's PID 1, which is
//! inside), so `ProcTree` remembers the outsiders and reads only the tree's own `stat` files: the cost
//! per sample is one directory listing plus one read per sandbox process, not per host process.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::Read;

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

/// The process tree below one root pid, sampled repeatedly.
#[derive(Debug)]
pub struct ProcTree {
    root: u32,
    /// Pids known not to descend from `root`; dropped once they vanish, so a reused pid is re-read.
    outside: HashSet<u32>,
    buf: String,
    tick_usec: u64,
    page: u64,
}

impl ProcTree {
    /// Track `root` and its descendants.
    pub fn new(root: u32) -> Self {
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
        ProcTree {
            root,
            outside: HashSet::new(),
            buf: String::new(),
            tick_usec: 1_000_000 / ticks,
            page,
        }
    }

    /// Sum the usage of the tree now; None when the root is gone.
    pub fn usage(&mut self) -> Option<TreeUsage> {
        let mut listed = HashSet::new();
        let mut stats: HashMap<u32, ProcStat> = HashMap::new();
        for entry in fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            listed.insert(pid);
            if self.outside.contains(&pid) {
                continue;
            }
            // A process may exit between the listing and the read; skipping it is the only answer.
            if let Some(stat) = self.read_stat(pid) {
                stats.insert(pid, stat);
            }
        }
        self.outside.retain(|pid| listed.contains(pid));
        let tree: HashSet<u32> = descendants(self.root, &stats)?.into_iter().collect();
        self.outside
            .extend(stats.keys().filter(|pid| !tree.contains(pid)));
        let mut usage = TreeUsage::default();
        for s in tree.iter().filter_map(|pid| stats.get(pid)) {
            usage.rss_bytes += s.rss_pages * self.page;
            usage.cpu_usec += s.ticks * self.tick_usec;
            usage.tasks += s.threads;
        }
        Some(usage)
    }

    /// A usage sample (no limits: without a cgroup none are enforced).
    pub fn sample(&mut self) -> UsageSample {
        let usage = self.usage().unwrap_or_default();
        UsageSample {
            memory_bytes: usage.rss_bytes,
            memory_peak_bytes: usage.rss_bytes,
            cpu_usage_usec: usage.cpu_usec,
            pids: usage.tasks,
            ..UsageSample::default()
        }
    }

    fn read_stat(&mut self, pid: u32) -> Option<ProcStat> {
        self.buf.clear();
        File::open(format!("/proc/{pid}/stat"))
            .ok()?
            .read_to_string(&mut self.buf)
            .ok()?;
        parse::proc_stat(&self.buf)
    }
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
    fn own_process_is_sampled_and_outsiders_remembered() {
        let mut tree = ProcTree::new(std::process::id());
        let usage = tree.usage().expect("we exist");
        assert!(usage.rss_bytes > 0);
        assert!(usage.tasks >= 1);
        assert!(tree.outside.contains(&1), "init is not below us");
        assert!(!tree.outside.contains(&std::process::id()));
        assert_eq!(ProcTree::new(u32::MAX).usage(), None);
    }
}
