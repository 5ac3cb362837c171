//! cgroup v2: one directory in the unified hierarchy, with controllers delegated by the parent.

use std::fs;
use std::path::{Path, PathBuf};

use super::layout::{own_cgroup, parent_candidates};
use super::v1::unavailable_or;
use super::{
    CgroupError, CgroupSetup, SandboxCgroup, Version, make_dir, needed_controllers, parse,
    write_limit,
};
use crate::events::UsageSample;
use crate::spec::Limits;

/// The controllers nucleus enables for its children when it can: they also provide the usage files.
const WANTED: [&str; 3] = ["memory", "cpu", "pids"];

/// The CFS period written to `cpu.max`.
const CPU_PERIOD_US: u64 = 100_000;

/// Create `name` below the first parent that can delegate the needed controllers, and limit it.
pub(super) fn create(
    mount: &Path,
    name: &str,
    limits: &Limits,
) -> Result<CgroupSetup, CgroupError> {
    let own = own_cgroup(None);
    let needed = needed_controllers(limits);
    let mut last_err = None;
    // A parent that delegates only the needed controllers is a fallback: without the others the
    // sandbox's usage (memory, tasks) cannot be read from its cgroup.
    let mut partial = None;
    for parent in parent_candidates(mount, own.as_deref()) {
        match delegate(&parent, &needed) {
            Ok(true) => return build(&parent, name, limits),
            Ok(false) => {
                partial.get_or_insert(parent);
            }
            Err(e) => last_err = Some(e),
        }
    }
    if let Some(parent) = partial {
        return build(&parent, name, limits);
    }
    match last_err {
        Some(err) => unavailable_or(err),
        None => Ok(CgroupSetup::Unavailable {
            reason: "no writable cgroup v2 subtree (rootless without delegation); limits are not \
                     enforced and usage comes from /proc; run under `systemd-run --user -p Delegate=yes` \
                     to get one"
                .into(),
        }),
    }
}

/// Make `parent/name` and write the limits.
fn build(parent: &Path, name: &str, limits: &Limits) -> Result<CgroupSetup, CgroupError> {
    let mut cg = SandboxCgroup {
        version: Version::V2,
        dirs: Vec::new(),
        limits: *limits,
    };
    make_dir(&mut cg, "", parent.join(name))?;
    apply_limits(&cg, limits)?;
    Ok(CgroupSetup::Limited(cg))
}

/// Enable the wanted controllers in `parent/cgroup.subtree_control`; only the needed ones must succeed.
///
/// Returns whether every wanted controller that the parent offers is now delegated.
fn delegate(parent: &Path, needed: &[&'static str]) -> Result<bool, CgroupError> {
    let read_set = |file: &str| -> Vec<String> {
        fs::read_to_string(parent.join(file))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    let available = read_set("cgroup.controllers");
    if let Some(missing) = needed.iter().find(|c| !available.iter().any(|a| a == *c)) {
        return Err(CgroupError::ControllerMissing {
            controller: missing,
            parent: parent.to_owned(),
        });
    }
    let enabled = read_set("cgroup.subtree_control");
    let mut complete = true;
    for controller in WANTED {
        if enabled.iter().any(|e| e == controller) || !available.iter().any(|a| a == controller) {
            continue;
        }
        // EBUSY here means the parent holds processes itself (the "no internal processes" rule).
        let result = fs::write(
            parent.join("cgroup.subtree_control"),
            format!("+{controller}"),
        );
        match result {
            Ok(()) => {}
            Err(source) if needed.contains(&controller) => {
                return Err(CgroupError::Delegate {
                    controller,
                    parent: parent.to_owned(),
                    source,
                });
            }
            Err(_) => complete = false,
        }
    }
    Ok(complete)
}

fn apply_limits(cg: &SandboxCgroup, limits: &Limits) -> Result<(), CgroupError> {
    let Some(dir) = cg.dir("") else {
        return Ok(());
    };
    if let Some(bytes) = limits.memory_bytes {
        write_limit(dir, "memory.max", &bytes.to_string())?;
        // Swap must not extend the limit; the file is absent without swap accounting.
        if dir.join("memory.swap.max").exists() {
            write_limit(dir, "memory.swap.max", "0")?;
        }
    }
    if let Some(cpus) = limits.cpus {
        write_limit(dir, "cpu.max", &parse::cpu_max(cpus, CPU_PERIOD_US))?;
    }
    if let Some(max) = limits.pids {
        write_limit(dir, "pids.max", &max.to_string())?;
    }
    Ok(())
}

/// Read the v2 usage files; without the pids or memory controller, count threads and resident memory.
pub(super) fn sample(cg: &SandboxCgroup) -> UsageSample {
    let num = |file: &str| cg.read("", file).and_then(|t| parse::number(&t));
    let cpu_stat = cg.read("", "cpu.stat").unwrap_or_default();
    let pids = num("pids.current").unwrap_or_else(|| {
        cg.read("", "cgroup.threads")
            .map_or(0, |t| t.lines().count() as u64)
    });
    UsageSample {
        memory_bytes: num("memory.current").unwrap_or_else(|| resident_bytes(&cg.pids())),
        memory_peak_bytes: num("memory.peak").unwrap_or(0),
        memory_limit_bytes: cg.limits.memory_bytes,
        cpu_usage_usec: parse::keyed(&cpu_stat, "usage_usec").unwrap_or(0),
        cpu_percent: 0.0,
        pids,
        pids_limit: cg.limits.pids,
        oom_kills: oom_kills(cg),
        cpu_throttled_usec: parse::keyed(&cpu_stat, "throttled_usec").unwrap_or(0),
    }
}

/// Without the memory controller (a hybrid host's unified side), sum the tasks' resident memory.
fn resident_bytes(pids: &[u32]) -> u64 {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096, |p| p.max(1) as u64);
    pids.iter()
        .filter_map(|pid| fs::read_to_string(format!("/proc/{pid}/statm")).ok())
        .filter_map(|t| parse::statm_resident_pages(&t))
        .map(|pages| pages * page)
        .sum()
}

/// The `oom_kill` counter of `memory.events`.
pub(super) fn oom_kills(cg: &SandboxCgroup) -> u64 {
    cg.read("", "memory.events")
        .and_then(|t| parse::keyed(&t, "oom_kill"))
        .unwrap_or(0)
}

/// SIGKILL the whole subtree atomically (kernel 5.14+); false when `cgroup.kill` is missing.
pub(super) fn kill(cg: &SandboxCgroup) -> bool {
    cg.dir("")
        .map(|d| d.join("cgroup.kill"))
        .is_some_and(|p: PathBuf| fs::write(p, "1").is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake parent cgroup: plain files, and `subtree_control` a directory when writes must fail.
    fn parent(offers: &str, writable: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("cgroup.controllers"), offers).expect("write");
        if writable {
            fs::write(dir.path().join("cgroup.subtree_control"), "").expect("write");
        } else {
            fs::create_dir(dir.path().join("cgroup.subtree_control")).expect("mkdir");
        }
        dir
    }

    #[test]
    fn delegation_is_complete_when_every_offered_controller_is_enabled() {
        let dir = parent("cpu memory pids io\n", true);
        assert!(delegate(dir.path(), &["memory"]).expect("delegates"));
    }

    #[test]
    fn failing_optional_controllers_make_a_partial_fallback() {
        let dir = parent("cpu memory pids\n", false);
        assert!(!delegate(dir.path(), &[]).expect("nothing needed"));
        let err = delegate(dir.path(), &["pids"]).expect_err("needed one fails");
        assert!(matches!(
            err,
            CgroupError::Delegate {
                controller: "memory" | "cpu" | "pids",
                ..
            }
        ));
    }

    #[test]
    fn a_needed_controller_the_parent_lacks_is_named() {
        let dir = parent("cpu\n", true);
        let err = delegate(dir.path(), &["memory"]).expect_err("memory missing");
        assert!(matches!(
            err,
            CgroupError::ControllerMissing {
                controller: "memory",
                ..
            }
        ));
    }
}
