//! Errors of cgroup setup: one variant per failing step, each naming the fix.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why the sandbox's cgroup could not be created or limited.
#[derive(Debug)]
pub enum CgroupError {
    /// `statfs` of the cgroup mount point failed.
    Detect {
        /// The mount point probed.
        path: PathBuf,
        /// The errno.
        source: io::Error,
    },
    /// A limit was asked for but its controller is not available below the chosen parent.
    ControllerMissing {
        /// `memory`, `cpu` or `pids`.
        controller: &'static str,
        /// The parent cgroup that lacks it.
        parent: PathBuf,
    },
    /// Enabling a controller for child cgroups (`cgroup.subtree_control`) failed.
    Delegate {
        /// The controller.
        controller: &'static str,
        /// The parent cgroup.
        parent: PathBuf,
        /// The errno (EBUSY: the parent holds processes itself).
        source: io::Error,
    },
    /// `mkdir` of the sandbox's cgroup failed.
    Create {
        /// The directory.
        path: PathBuf,
        /// The errno.
        source: io::Error,
    },
    /// Writing a limit file failed.
    Limit {
        /// The file written.
        path: PathBuf,
        /// What was written.
        value: String,
        /// The errno.
        source: io::Error,
    },
}

impl fmt::Display for CgroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Detect { path, source } => write!(
                f,
                "cannot inspect the cgroup mount {}: {source}; mount cgroup2 or the v1 controllers there",
                path.display()
            ),
            Self::ControllerMissing { controller, parent } => write!(
                f,
                "the {controller} controller is not available in {}; enable it for this subtree \
                 (cgroup v2: delegate it, e.g. systemd Delegate=yes; v1: mount it) or drop the \
                 matching --memory/--cpus/--pids option",
                parent.display()
            ),
            Self::Delegate {
                controller,
                parent,
                source,
            } => write!(
                f,
                "cannot enable the {controller} controller in {}/cgroup.subtree_control: {source}; \
                 run nucleus from a cgroup that holds no other processes, or as root",
                parent.display()
            ),
            Self::Create { path, source } => write!(
                f,
                "cannot create the sandbox cgroup {}: {source}; check that the parent is writable \
                 and remove a stale directory of the same name",
                path.display()
            ),
            Self::Limit {
                path,
                value,
                source,
            } => write!(
                f,
                "cannot write {value:?} to {}: {source}; check that the limit is within the \
                 parent cgroup's limits",
                path.display()
            ),
        }
    }
}

impl std::error::Error for CgroupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Detect { source, .. }
            | Self::Delegate { source, .. }
            | Self::Create { source, .. }
            | Self::Limit { source, .. } => Some(source),
            Self::ControllerMissing { .. } => None,
        }
    }
}
