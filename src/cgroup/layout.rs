//! Which cgroup hierarchy this host has, and where a sandbox's cgroup may be created.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::sys::statfs::{CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, statfs};
use nix::unistd::{AccessFlags, Uid, access};

use super::CgroupError;
use super::parse;

/// The standard mount point of the cgroup hierarchies.
pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

/// The v1 controllers nucleus uses, each in its own (or a co-mounted) hierarchy.
pub const V1_CONTROLLERS: [&str; 4] = ["memory", "cpu", "cpuacct", "pids"];

/// The cgroup hierarchy found at a mount point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CgroupLayout {
    /// The unified hierarchy, mounted at `mount`.
    V2 {
        /// The cgroup2 mount point.
        mount: PathBuf,
    },
    /// Legacy per-controller hierarchies (v1, or the v1 side of a hybrid host).
    V1 {
        /// `(controller, mount point)` for each controller that is mounted.
        controllers: Vec<(&'static str, PathBuf)>,
    },
    /// No usable hierarchy at all.
    None,
}

impl CgroupLayout {
    /// Detect the layout at the standard mount point.
    pub fn detect() -> Result<Self, CgroupError> {
        Self::detect_at(Path::new(DEFAULT_ROOT))
    }

    /// Detect the layout at `root`: cgroup2 by its `statfs` magic, else v1 controller mounts below it.
    pub fn detect_at(root: &Path) -> Result<Self, CgroupError> {
        let fs = statfs(root).map_err(|e| CgroupError::Detect {
            path: root.to_owned(),
            source: io::Error::from(e),
        })?;
        if fs.filesystem_type() == CGROUP2_SUPER_MAGIC {
            return Ok(Self::V2 {
                mount: root.to_owned(),
            });
        }
        let controllers: Vec<(&'static str, PathBuf)> = V1_CONTROLLERS
            .iter()
            .filter_map(|&name| {
                let dir = root.join(name);
                let is_v1 = statfs(&dir).is_ok_and(|s| s.filesystem_type() == CGROUP_SUPER_MAGIC);
                // Co-mounted controllers (`cpu,cpuacct`) are reached through symlinks; keep the real path.
                is_v1.then(|| (name, fs::canonicalize(&dir).unwrap_or(dir)))
            })
            .collect();
        if controllers.is_empty() {
            Ok(Self::None)
        } else {
            Ok(Self::V1 { controllers })
        }
    }
}

/// Where to nest: the invoking process's own cgroup when writable, else the hierarchy root when root.
///
/// `own` is this process's cgroup path relative to `mount`, from `/proc/self/cgroup`.
pub fn parent_candidates(mount: &Path, own: Option<&Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(own) = own {
        let dir = mount.join(own);
        if access(&dir, AccessFlags::W_OK).is_ok() {
            out.push(dir);
        }
    }
    if Uid::effective().is_root() && !out.iter().any(|d| d == mount) {
        out.push(mount.to_owned());
    }
    out
}

/// This process's cgroup for `controller` (None: v2) relative to the hierarchy's mount point.
pub fn own_cgroup(controller: Option<&str>) -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    parse::own_cgroup(&text, controller)
}
