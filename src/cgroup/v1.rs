//! cgroup v1: one directory per controller hierarchy (memory, cpu, cpuacct, pids).

use std::path::PathBuf;

use nix::unistd::Uid;

use super::layout::{own_cgroup, parent_candidates};
use super::{
    CgroupError, CgroupSetup, Dir, SandboxCgroup, Version, make_dir, needed_controllers, parse,
    write_limit,
};
use crate::events::UsageSample;
use crate::spec::Limits;

/// The CFS period nucleus uses; 100 ms is the kernel default and keeps quota rounding small.
const CFS_PERIOD_US: u64 = 100_000;

/// Create `name` in every mounted controller hierarchy and write the limits.
pub(super) fn create(
    controllers: &[(&'static str, PathBuf)],
    name: &str,
    limits: &Limits,
) -> Result<CgroupSetup, CgroupError> {
    let needed = needed_controllers(limits);
    if let Some(missing) = needed
        .iter()
        .find(|c| !controllers.iter().any(|(n, _)| n == *c))
    {
        return unavailable_or(CgroupError::ControllerMissing {
            controller: missing,
            parent: PathBuf::from(super::layout::DEFAULT_ROOT).join(missing),
        });
    }
    let mut cg = SandboxCgroup {
        version: Version::V1,
        dirs: Vec::new(),
        limits: *limits,
    };
    for &(controller, ref mount) in controllers {
        let own = own_cgroup(Some(controller));
        let Some(parent) = parent_candidates(mount, own.as_deref()).into_iter().next() else {
            return Ok(CgroupSetup::Unavailable {
                reason: format!(
                    "no writable cgroup v1 {controller} hierarchy (rootless without delegation); \
                     limits are not enforced and usage comes from /proc"
                ),
            });
        };
        let path = parent.join(name);
        if cg.dirs.iter().any(|d| d.path == path) {
            // Co-mounted controllers (`cpu,cpuacct`) share one directory.
            cg.dirs.push(Dir { controller, path });
            continue;
        }
        make_dir(&mut cg, controller, path)?;
    }
    apply_limits(&cg, limits)?;
    Ok(CgroupSetup::Limited(cg))
}

/// Root gets the error; a rootless caller gets "unavailable", because that is its expected state.
pub(super) fn unavailable_or(err: CgroupError) -> Result<CgroupSetup, CgroupError> {
    if Uid::effective().is_root() {
        return Err(err);
    }
    Ok(CgroupSetup::Unavailable {
        reason: format!("{err}; limits are not enforced and usage comes from /proc"),
    })
}

fn apply_limits(cg: &SandboxCgroup, limits: &Limits) -> Result<(), CgroupError> {
    if let (Some(bytes), Some(dir)) = (limits.memory_bytes, cg.dir("memory")) {
        write_limit(dir, "memory.limit_in_bytes", &bytes.to_string())?;
        // Without swap accounting the memsw file is absent; with it, swap must not extend the limit.
        if dir.join("memory.memsw.limit_in_bytes").exists() {
            write_limit(dir, "memory.memsw.limit_in_bytes", &bytes.to_string())?;
        }
    }
    if let (Some(cpus), Some(dir)) = (limits.cpus, cg.dir("cpu")) {
        write_limit(dir, "cpu.cfs_period_us", &CFS_PERIOD_US.to_string())?;
        write_limit(
            dir,
            "cpu.cfs_quota_us",
            &parse::cfs_quota_us(cpus, CFS_PERIOD_US).to_string(),
        )?;
    }
    if let (Some(max), Some(dir)) = (limits.pids, cg.dir("pids")) {
        write_limit(dir, "pids.max", &max.to_string())?;
    }
    Ok(())
}

/// Read the v1 usage files; a missing controller reads as 0.
pub(super) fn sample(cg: &SandboxCgroup) -> UsageSample {
    let num = |ctrl: &str, file: &str| cg.read(ctrl, file).and_then(|t| parse::number(&t));
    let throttled_ns = cg
        .read("cpu", "cpu.stat")
        .and_then(|t| parse::keyed(&t, "throttled_time"))
        .unwrap_or(0);
    UsageSample {
        memory_bytes: num("memory", "memory.usage_in_bytes").unwrap_or(0),
        memory_peak_bytes: num("memory", "memory.max_usage_in_bytes").unwrap_or(0),
        memory_limit_bytes: cg.limits.memory_bytes,
        cpu_usage_usec: num("cpuacct", "cpuacct.usage").unwrap_or(0) / 1000,
        cpu_percent: 0.0,
        pids: num("pids", "pids.current").unwrap_or(0),
        pids_limit: cg.limits.pids,
        oom_kills: oom_kills(cg),
        cpu_throttled_usec: throttled_ns / 1000,
    }
}

/// The `oom_kill` counter of `memory.oom_control` (kernel 4.13+).
pub(super) fn oom_kills(cg: &SandboxCgroup) -> u64 {
    cg.read("memory", "memory.oom_control")
        .and_then(|t| parse::keyed(&t, "oom_kill"))
        .unwrap_or(0)
}
