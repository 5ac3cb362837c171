//! Kernel feature probes shared by `doctor` and the runtime's strictness checks.
//!
//! Probes that would change the caller's state (namespaces, mounts) run in a short-lived child
//! process (see `sys::probe`), so they are safe to call from the multi-threaded supervisor. Those cost
//! 2–5 ms each (docs/doctor.md); nothing is cached, because the answer can change (sysctls, delegation).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use nix::sys::statfs::{CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, FsType, TMPFS_MAGIC};

use crate::sys::probe;

pub use crate::sys::probe::{BpfProgType, OverlayStep, PidfdStep};

/// The Landlock ABI version the kernel offers, or None when Landlock is unavailable.
pub fn landlock_abi() -> Option<u32> {
    crate::sys::landlock_abi_version()
}

/// What each Landlock ABI level adds, indexed by level - 1.
pub const LANDLOCK_ABI_ADDS: [&str; 7] = [
    "filesystem access rules",
    "file reparenting (refer)",
    "truncate",
    "TCP bind/connect rules",
    "ioctl on devices",
    "scopes: abstract unix sockets and signals",
    "audit logging flags",
];

/// The seccomp actions the kernel offers (from /proc/sys/kernel/seccomp/actions_avail).
pub fn seccomp_actions() -> Vec<String> {
    std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail")
        .map(|s| s.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Whether seccomp user notification is available (one `seccomp` call: reading `actions_avail`
/// costs an open, a read and a close of a sysctl file at every start).
pub fn user_notif_available() -> bool {
    crate::sys::seccomp::action_available(crate::seccomp::bpf::RET_USER_NOTIF)
}

fn read_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `/proc/sys/user/max_user_namespaces` (0 means user namespaces are switched off).
pub fn max_user_namespaces() -> Option<u64> {
    read_number("/proc/sys/user/max_user_namespaces")
}

/// Whether the current user can create a user namespace (a real `unshare` in a child).
pub fn userns_available() -> bool {
    userns_probe(None).is_ok()
}

/// Try `unshare(CLONE_NEWUSER)` in a child, first switching to `as_user` (uid, gid) when given.
pub fn userns_probe(as_user: Option<(u32, u32)>) -> io::Result<()> {
    probe::unshare_in_child(libc::CLONE_NEWUSER, as_user)
}

/// Whether an unprivileged user (`nobody` when we are root) can create a user namespace.
pub fn unprivileged_userns_available() -> bool {
    let as_user = nix::unistd::geteuid().is_root().then_some((65534, 65534));
    userns_probe(as_user).is_ok()
}

/// The namespaces a sandbox creates inside its user namespace (DESIGN §2 step 3), with their names.
pub const SANDBOX_NAMESPACES: [(libc::c_int, &str); 6] = [
    (libc::CLONE_NEWNS, "mount"),
    (libc::CLONE_NEWPID, "pid"),
    (libc::CLONE_NEWNET, "net"),
    (libc::CLONE_NEWUTS, "uts"),
    (libc::CLONE_NEWIPC, "ipc"),
    (libc::CLONE_NEWCGROUP, "cgroup"),
];

/// Whether a child can create a user namespace together with every namespace a sandbox needs;
/// on failure, name the first namespace that cannot be created.
pub fn sandbox_namespaces() -> Result<(), (&'static str, io::Error)> {
    let all = SANDBOX_NAMESPACES
        .iter()
        .fold(libc::CLONE_NEWUSER, |acc, (flag, _)| acc | flag);
    if probe::unshare_in_child(all, None).is_ok() {
        return Ok(());
    }
    probe::unshare_in_child(libc::CLONE_NEWUSER, None).map_err(|e| ("user", e))?;
    for (flag, name) in SANDBOX_NAMESPACES {
        probe::unshare_in_child(libc::CLONE_NEWUSER | flag, None).map_err(|e| (name, e))?;
    }
    Err((
        "all together",
        io::Error::other("each namespace works alone but not all at once"),
    ))
}

/// Run the overlay-in-user-namespace probe; on failure, name the first step that failed.
pub fn overlay_in_userns() -> Result<(), (OverlayStep, io::Error)> {
    // Cheap common case first: the whole sequence in one child.
    if probe::overlay_in_userns(OverlayStep::Overlay).is_ok() {
        return Ok(());
    }
    // The child reports only an errno, so rerun prefixes to find the step that breaks.
    for step in OverlayStep::ALL {
        probe::overlay_in_userns(step).map_err(|e| (step, e))?;
    }
    // It failed once and then passed every step: report the flake as the final step.
    Err((
        OverlayStep::Overlay,
        io::Error::other("overlay probe failed intermittently"),
    ))
}

/// Whether `pidfd_open` and `pidfd_getfd` both work (probed on ourselves).
pub fn pidfd_available() -> Result<(), (PidfdStep, io::Error)> {
    probe::pidfd_self()
}

/// `/proc/sys/kernel/unprivileged_bpf_disabled`: 0 allowed, 1 or 2 disabled for unprivileged users.
pub fn unprivileged_bpf_disabled() -> Option<u64> {
    read_number("/proc/sys/kernel/unprivileged_bpf_disabled")
}

/// Whether we hold CAP_BPF (or CAP_SYS_ADMIN, which implies it) in our effective set.
pub fn has_cap_bpf() -> bool {
    use caps::{CapSet, Capability};
    [Capability::CAP_BPF, Capability::CAP_SYS_ADMIN]
        .into_iter()
        .any(|c| caps::has_cap(None, CapSet::Effective, c).unwrap_or(false))
}

/// Try to load a trivial BPF program of this type.
pub fn bpf_load(prog_type: BpfProgType) -> io::Result<()> {
    probe::bpf_load_trivial(prog_type)
}

/// How the cgroup filesystem is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Only v1 controller hierarchies.
    V1,
    /// v1 controllers plus a cgroup2 mount at /sys/fs/cgroup/unified (nucleus uses the v1 controllers).
    Hybrid,
    /// The unified hierarchy at /sys/fs/cgroup.
    V2,
    /// No cgroup filesystem mounted at /sys/fs/cgroup.
    None,
}

impl fmt::Display for CgroupVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V1 => "v1",
            Self::Hybrid => "v1-hybrid",
            Self::V2 => "v2",
            Self::None => "none",
        })
    }
}

fn fs_magic(path: &str) -> Option<FsType> {
    nix::sys::statfs::statfs(path)
        .ok()
        .map(|s| s.filesystem_type())
}

/// Detect the cgroup layout from the filesystem types at /sys/fs/cgroup and /sys/fs/cgroup/unified.
pub fn cgroup_layout() -> CgroupVersion {
    let Some(root) = fs_magic("/sys/fs/cgroup") else {
        return CgroupVersion::None;
    };
    if root == CGROUP2_SUPER_MAGIC {
        CgroupVersion::V2
    } else if root == TMPFS_MAGIC && fs_magic("/sys/fs/cgroup/unified") == Some(CGROUP2_SUPER_MAGIC)
    {
        CgroupVersion::Hybrid
    } else if (root == TMPFS_MAGIC || root == CGROUP_SUPER_MAGIC) && !v1_hierarchies().is_empty() {
        CgroupVersion::V1
    } else {
        CgroupVersion::None
    }
}

/// Our own v1 hierarchies from /proc/self/cgroup: (controllers, path), skipping named hierarchies.
fn v1_hierarchies() -> Vec<(Vec<String>, String)> {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let controllers: Vec<String> = controllers
                .split(',')
                .filter(|c| !c.is_empty() && !c.starts_with("name="))
                .map(str::to_owned)
                .collect();
            (!controllers.is_empty()).then(|| (controllers, path.to_owned()))
        })
        .collect()
}

/// Our own cgroup2 path from /proc/self/cgroup (the `0::` line).
fn v2_path() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_owned))
}

/// `/proc/self/cgroup` paths are absolute within the hierarchy; "/" is the mount itself.
fn join_cgroup(mount: &Path, path: &str) -> PathBuf {
    match path.trim_start_matches('/') {
        "" => mount.to_owned(),
        rel => mount.join(rel),
    }
}

/// The directory of our own cgroup for each available controller (v1: one per mounted hierarchy;
/// v2: the unified directory, once per enabled controller).
pub fn own_cgroup_dirs() -> Vec<(String, PathBuf)> {
    let root = Path::new("/sys/fs/cgroup");
    match cgroup_layout() {
        CgroupVersion::V1 | CgroupVersion::Hybrid => v1_hierarchies()
            .into_iter()
            .filter_map(|(controllers, path)| {
                // Co-mounted controllers live at e.g. "cpu,cpuacct", usually with per-name symlinks;
                // a hierarchy listed in /proc/self/cgroup but not mounted here is unusable.
                let joined = controllers.join(",");
                let mount = std::iter::once(joined.as_str())
                    .chain(controllers.iter().map(String::as_str))
                    .map(|name| root.join(name))
                    .find(|dir| dir.is_dir())?;
                Some((controllers, join_cgroup(&mount, &path)))
            })
            .flat_map(|(controllers, dir)| controllers.into_iter().map(move |c| (c, dir.clone())))
            .collect(),
        CgroupVersion::V2 => {
            let dir = join_cgroup(root, &v2_path().unwrap_or_default());
            let enabled =
                std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
            enabled
                .split_whitespace()
                .map(|c| (c.to_owned(), dir.clone()))
                .collect()
        }
        CgroupVersion::None => Vec::new(),
    }
}

/// The controllers available to us, sorted.
pub fn cgroup_controllers() -> Vec<String> {
    let mut names: Vec<String> = own_cgroup_dirs().into_iter().map(|(c, _)| c).collect();
    names.sort();
    names.dedup();
    names
}

/// Whether we can create (and remove) a child cgroup under `dir`; returns the probe path on success.
pub fn can_create_child_cgroup(dir: &Path) -> io::Result<PathBuf> {
    let probe = dir.join(format!("nucleus-doctor-{}", std::process::id()));
    std::fs::create_dir(&probe)?;
    std::fs::remove_dir(&probe)?;
    Ok(probe)
}
