//! Per-sandbox cgroups, v2 and v1 (DESIGN §5): create, limit, sample, kill, and always remove.
//!
//! The supervisor creates the cgroup before cloning the sandbox's PID 1 and moves PID 1 in before it
//! unshares its cgroup namespace, so the sandbox sees its own cgroup as `/`.

mod error;
pub mod layout;
pub mod parse;
mod v1;
mod v2;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

use crate::events::UsageSample;
use crate::spec::Limits;

pub use error::CgroupError;
pub use layout::CgroupLayout;

/// The result of cgroup setup: limits applied, or plainly unavailable (rootless without delegation).
#[derive(Debug)]
pub enum CgroupSetup {
    /// The sandbox's own cgroup, with its limits written.
    Limited(SandboxCgroup),
    /// No cgroup could be created; limits are not enforced and usage must come from `/proc`.
    Unavailable {
        /// Why, in words fit for the user.
        reason: String,
    },
}

/// Which cgroup version a `SandboxCgroup` lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// The legacy per-controller hierarchies.
    V1,
    /// The unified hierarchy.
    V2,
}

/// One created directory: the v1 controller it belongs to (`""` for v2) and its path.
#[derive(Clone, Debug)]
struct Dir {
    controller: &'static str,
    path: PathBuf,
}

/// A sandbox's cgroup: one directory (v2) or one per controller (v1); removed on drop.
#[derive(Debug)]
pub struct SandboxCgroup {
    version: Version,
    dirs: Vec<Dir>,
    limits: Limits,
}

/// Create the sandbox's cgroup in the host's standard hierarchy and apply `limits`.
pub fn create(sandbox_id: &str, limits: &Limits) -> Result<CgroupSetup, CgroupError> {
    create_in(&CgroupLayout::detect()?, sandbox_id, limits)
}

/// Create the sandbox's cgroup in an explicit `layout` (tests point this at another mount).
pub fn create_in(
    layout: &CgroupLayout,
    sandbox_id: &str,
    limits: &Limits,
) -> Result<CgroupSetup, CgroupError> {
    let name = format!("nucleus-{sandbox_id}");
    match layout {
        CgroupLayout::V2 { mount } => v2::create(mount, &name, limits),
        CgroupLayout::V1 { controllers } => v1::create(controllers, &name, limits),
        CgroupLayout::None => Ok(CgroupSetup::Unavailable {
            reason: "no cgroup hierarchy is mounted at /sys/fs/cgroup; limits are not enforced"
                .into(),
        }),
    }
}

impl SandboxCgroup {
    /// The cgroup version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The created directories (one for v2, one per controller for v1).
    pub fn paths(&self) -> Vec<&Path> {
        self.dirs.iter().map(|d| d.path.as_path()).collect()
    }

    /// The limits that were written.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Move `pid` (and so all its future children) into the sandbox's cgroup.
    pub fn add_process(&self, pid: u32) -> io::Result<()> {
        for dir in &self.dirs {
            fs::write(dir.path.join("cgroup.procs"), pid.to_string())?;
        }
        Ok(())
    }

    /// Current usage; `cpu_percent` is left 0 for the sampler, which knows the interval.
    pub fn sample(&self) -> UsageSample {
        match self.version {
            Version::V1 => v1::sample(self),
            Version::V2 => v2::sample(self),
        }
    }

    /// How many times the kernel's OOM killer acted in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        match self.version {
            Version::V1 => v1::oom_kills(self),
            Version::V2 => v2::oom_kills(self),
        }
    }

    /// Version, paths and limits, for the `limits_applied` audit event.
    pub fn describe(&self) -> serde_json::Value {
        json!({
            "version": match self.version { Version::V1 => "v1", Version::V2 => "v2" },
            "paths": self.dirs.iter().map(|d| d.path.display().to_string()).collect::<Vec<_>>(),
            "limits": {
                "memory_bytes": self.limits.memory_bytes,
                "cpus": self.limits.cpus,
                "pids": self.limits.pids,
            },
        })
    }

    /// The pids currently in the cgroup (union over the v1 hierarchies).
    ///
    /// Tasks outside this process's pid namespace read as 0; they are left out, because
    /// `kill(0, …)` would signal our own process group.
    pub fn pids(&self) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .dirs
            .iter()
            .filter_map(|d| fs::read_to_string(d.path.join("cgroup.procs")).ok())
            .flat_map(|text| {
                text.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .filter(|&pid: &u32| pid > 0)
                    .collect::<Vec<u32>>()
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// SIGKILL every task: v2 writes `cgroup.kill`; otherwise kill the listed pids until none remain.
    pub fn kill_all(&self) {
        if self.version == Version::V2 && v2::kill(self) {
            return;
        }
        // A forking task can add pids between a read and the kills, so repeat until a read is empty.
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let pids = self.pids();
            if pids.is_empty() || Instant::now() > deadline {
                return;
            }
            for pid in pids {
                if let Ok(pid) = i32::try_from(pid)
                    && pid > 0
                {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The directory of a v1 controller (or the v2 directory for `""`).
    fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|d| d.controller == controller)
            .map(|d| d.path.as_path())
    }

    /// Read one file of a controller's directory.
    fn read(&self, controller: &str, file: &str) -> Option<String> {
        fs::read_to_string(self.dir(controller)?.join(file)).ok()
    }
}

impl Drop for SandboxCgroup {
    fn drop(&mut self) {
        self.kill_all();
        // Killed tasks leave the cgroup asynchronously, so rmdir sees EBUSY for a moment.
        for dir in self.dirs.iter().rev() {
            let deadline = Instant::now() + Duration::from_secs(2);
            loop {
                match fs::remove_dir(&dir.path) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if Instant::now() > deadline => {
                        tracing::warn!(path = %dir.path.display(), error = %e, "cannot remove sandbox cgroup");
                        break;
                    }
                    Err(_) => {
                        self.kill_all();
                        thread::sleep(Duration::from_millis(10));
                    }
                }
            }
        }
    }
}

/// The controllers that the requested limits need.
fn needed_controllers(limits: &Limits) -> Vec<&'static str> {
    [
        ("memory", limits.memory_bytes.is_some()),
        ("cpu", limits.cpus.is_some()),
        ("pids", limits.pids.is_some()),
    ]
    .into_iter()
    .filter_map(|(c, wanted)| wanted.then_some(c))
    .collect()
}

/// Write `value` to `dir/file`, mapping failure to the `Limit` step.
fn write_limit(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    fs::write(&path, value).map_err(|source| CgroupError::Limit {
        path,
        value: value.to_owned(),
        source,
    })
}

/// Create one cgroup directory and record it in `cg`, so a later failure still removes it.
fn make_dir(
    cg: &mut SandboxCgroup,
    controller: &'static str,
    path: PathBuf,
) -> Result<(), CgroupError> {
    fs::create_dir(&path).map_err(|source| CgroupError::Create {
        path: path.clone(),
        source,
    })?;
    cg.dirs.push(Dir { controller, path });
    Ok(())
}
