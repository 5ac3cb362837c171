//! The sandbox's root filesystem: a pure plan of mount operations and the thin executor that runs it.
//!
//! Paths in the plan are absolute: host paths under `oldroot`, the new root at `newroot`, which
//! `RootPlan::new` picks (with a `root_cache` entry, the host's `/` and the entry's root bound onto
//! itself; without one, `/oldroot` and `/newroot` in the staging tmpfs of `pid1::build_root`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::spec::{NetworkMode, SandboxSpec};

/// Host directories bound read-only so that shells, compilers and interpreters work.
pub const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

/// Host `/etc` entries that programs need and that hold no secrets.
pub const ETC_ALLOWLIST: &[&str] = &[
    "alternatives",
    "bash.bashrc",
    "ca-certificates",
    "ca-certificates.conf",
    "debian_version",
    "gai.conf",
    "gitconfig",
    "host.conf",
    "inputrc",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "locale.alias",
    "localtime",
    "magic",
    "magic.mime",
    "manpath.config",
    "mime.types",
    "networks",
    "os-release",
    "perl",
    "profile",
    "profile.d",
    "protocols",
    "python3",
    "python3.11",
    "services",
    "shells",
    "ssl",
    "terminfo",
    "timezone",
    "vim",
    "xattr.conf",
];

/// Device nodes bound from the host's /dev (a user namespace cannot mknod).
pub const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// /proc files hidden behind /dev/null (as Docker masks them).
pub const PROC_MASKED_FILES: &[&str] = &[
    "kcore",
    "keys",
    "timer_list",
    "sched_debug",
    "latency_stats",
    "kallsyms",
];
/// /proc directories hidden behind an empty read-only tmpfs.
pub const PROC_MASKED_DIRS: &[&str] = &["acpi", "scsi", "asound", "firmware"];
/// /proc subtrees made read-only.
pub const PROC_READ_ONLY: &[&str] = &["sys", "irq", "bus", "fs", "sysrq-trigger"];

/// What a host path is, as far as the plan cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostEntry {
    /// A directory: bind it.
    Dir,
    /// A regular file of this size: copy it (cheaper than a bind mount).
    File(u64),
    /// A symbolic link with this target: recreate it.
    Symlink(PathBuf),
}

/// The parts of the host the plan depends on, gathered once by `HostLayout::probe`.
#[derive(Clone, Debug, Default)]
pub struct HostLayout {
    /// Existing entries among `SYSTEM_DIRS`, by path.
    pub system: Vec<(String, HostEntry)>,
    /// Existing entries among `ETC_ALLOWLIST`, by name.
    pub etc: Vec<(String, HostEntry)>,
    /// The host's resolv.conf contents, read only for `--net host`, which uses it.
    pub resolv_conf: Vec<u8>,
    /// A hash of the `etc` entries (`root_cache::fingerprint`): part of a cache entry's name.
    pub etc_fingerprint: [u8; 32],
    /// The host path of a `root_cache` entry, whose prepared root skeleton (`skeleton`) is bound
    /// instead of built.
    pub root_cache: Option<PathBuf>,
}

impl HostLayout {
    /// Look at the host through `host_root` (`/` for the supervisor); with `network` the host's,
    /// read its resolv.conf too.
    pub fn probe(host_root: &Path, network: NetworkMode) -> Self {
        let under = |p: &str| host_root.join(p.trim_start_matches('/'));
        let entry = |path: &Path| -> Option<(HostEntry, fs::Metadata)> {
            let meta = fs::symlink_metadata(path).ok()?;
            let entry = if meta.file_type().is_symlink() {
                HostEntry::Symlink(fs::read_link(path).ok()?)
            } else if meta.is_dir() {
                HostEntry::Dir
            } else if meta.is_file() && meta.permissions().mode() & 0o004 != 0 {
                // Only what anyone on the host may read: the copy is readable by the sandbox (and
                // by every user, in a cache entry), whoever made it.
                HostEntry::File(meta.len())
            } else {
                return None;
            };
            Some((entry, meta))
        };
        let system = SYSTEM_DIRS
            .iter()
            .filter_map(|d| entry(&under(d)).map(|(e, _)| (d.to_string(), e)))
            .filter(|(_, e)| !matches!(e, HostEntry::File(_)))
            .collect();
        let mut fingerprint = blake3::Hasher::new();
        let etc = ETC_ALLOWLIST
            .iter()
            .filter_map(|name| {
                let path = under("/etc").join(name);
                let (entry, meta) = entry(&path)?;
                root_cache::fingerprint(&mut fingerprint, name, &path, &entry, &meta);
                Some((name.to_string(), entry))
            })
            .collect();
        // resolv.conf is often a symlink into /run: read through it, never bind it.
        let resolv_conf = match network {
            NetworkMode::Host => fs::read(under("/etc/resolv.conf")).unwrap_or_default(),
            NetworkMode::None => Vec::new(),
        };
        HostLayout {
            system,
            etc,
            resolv_conf,
            etc_fingerprint: *fingerprint.finalize().as_bytes(),
            root_cache: None,
        }
    }
}

/// One step of building the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountOp {
    /// Mount a tmpfs.
    Tmpfs {
        target: PathBuf,
        size: Option<u64>,
        mode: u32,
        flags: Flags,
    },
    /// Recursive bind, then make the whole tree read-only, nosuid, nodev.
    BindReadOnly { source: PathBuf, target: PathBuf },
    /// Bind one device node onto an empty file.
    BindDevice { source: PathBuf, target: PathBuf },
    /// Create a directory.
    Dir { path: PathBuf, mode: u32 },
    /// Copy `len` bytes of a host file (the copy gets `mode`, whatever the host's is).
    CopyFile {
        source: PathBuf,
        target: PathBuf,
        len: u64,
        mode: u32,
    },
    /// Create a file with contents.
    File {
        path: PathBuf,
        contents: Vec<u8>,
        mode: u32,
    },
    /// Create a symbolic link.
    Symlink { link: PathBuf, target: PathBuf },
    /// Mount a fresh procfs (PID 1 is in the new pid namespace).
    Proc { target: PathBuf },
    /// Mount a private devpts instance.
    Devpts { target: PathBuf },
    /// Hide a file behind `null` (the host's /dev/null), if it exists.
    MaskFile { target: PathBuf, null: PathBuf },
    /// Hide a directory behind an empty read-only tmpfs, if it exists.
    MaskDir { target: PathBuf },
    /// Bind a subtree onto itself read-only, if it exists.
    ReadOnlySelf { target: PathBuf },
}

/// Mount flags the plan uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flags {
    /// nosuid, nodev.
    NoSuidDev,
    /// nosuid, nodev, noexec.
    NoSuidDevExec,
}

/// The synthesized /etc files: no host users, no host secrets. The fixed ones live in `assets/etc/`.
pub fn synthesized_etc(spec: &SandboxSpec, host: &HostLayout) -> Vec<(&'static str, Vec<u8>)> {
    let resolv = match spec.network {
        NetworkMode::Host => host.resolv_conf.clone(),
        NetworkMode::None => {
            b"# no network in this sandbox (nucleus --net host enables it)\n".to_vec()
        }
    };
    vec![
        (
            "passwd",
            include_bytes!("../../../assets/etc/passwd").to_vec(),
        ),
        (
            "group",
            include_bytes!("../../../assets/etc/group").to_vec(),
        ),
        ("hostname", format!("{}\n", spec.hostname).into_bytes()),
        (
            "hosts",
            format!(
                "127.0.0.1\tlocalhost {0}\n::1\tlocalhost ip6-localhost ip6-loopback {0}\n",
                spec.hostname
            )
            .into_bytes(),
        ),
        ("resolv.conf", resolv),
        (
            "nsswitch.conf",
            include_bytes!("../../../assets/etc/nsswitch.conf").to_vec(),
        ),
    ]
}

/// Where PID 1 assembles the root, and the plan it runs there. The supervisor makes it before the
/// clone (PID 1, a copy, only executes it; computing it there took PID 1 ~85 µs, most of them
/// copy-on-write and first-use page faults).
#[derive(Clone, Debug)]
pub struct RootPlan {
    /// Where the host's `/` is seen.
    pub oldroot: PathBuf,
    /// The new root.
    pub newroot: PathBuf,
    /// The mount point of the context overlay's scratch tmpfs.
    pub scratch: PathBuf,
    /// The operations, in order.
    pub ops: Vec<MountOp>,
}

impl RootPlan {
    /// With a `root_cache` entry, the host stays at `/`, the new root is the entry's root (bound onto
    /// itself by the first operation) and the scratch goes on the entry's scratch directory. Without
    /// one, PID 1 stages (`pid1::stage`): the host at `/oldroot`, the new root a tmpfs at `/newroot`,
    /// the scratch at `/scratch`.
    pub fn new(spec: &SandboxSpec, host: &HostLayout) -> Self {
        let (oldroot, newroot, scratch) = match &host.root_cache {
            Some(entry) => (
                PathBuf::from("/"),
                entry.join(root_cache::ROOT),
                entry.join(root_cache::SCRATCH),
            ),
            None => ("/oldroot".into(), "/newroot".into(), "/scratch".into()),
        };
        let ops = plan(spec, host, &oldroot, &newroot);
        RootPlan {
            oldroot,
            newroot,
            scratch,
            ops,
        }
    }
}

/// Build the plan for the new root at `newroot`, with the host visible at `oldroot`: the root's
/// skeleton (created in a tmpfs, or one read-only bind of a `root_cache` entry), then its mounts.
pub fn plan(spec: &SandboxSpec, host: &HostLayout, oldroot: &Path, newroot: &Path) -> Vec<MountOp> {
    let cached = host.root_cache.is_some();
    // A cached skeleton is not made again (~30 µs of the start, before the clone).
    let Layout {
        skeleton, mounts, ..
    } = layout(spec, host, oldroot, newroot, !cached);
    let mut ops = match &host.root_cache {
        Some(entry) => vec![MountOp::BindReadOnly {
            source: oldroot
                .join(entry.strip_prefix("/").unwrap_or(entry))
                .join(root_cache::ROOT),
            target: newroot.into(),
        }],
        None => {
            let mut ops = vec![MountOp::Tmpfs {
                target: newroot.into(),
                size: Some(16 << 20),
                mode: 0o755,
                flags: Flags::NoSuidDev,
            }];
            ops.extend(skeleton);
            ops
        }
    };
    ops.extend(mounts);
    ops
}

/// What the root holds before anything is mounted in it, at `root`: its directories, symbolic
/// links and files, `/etc`'s among them. A `root_cache` entry is these, created once.
pub fn skeleton(
    spec: &SandboxSpec,
    host: &HostLayout,
    oldroot: &Path,
    root: &Path,
) -> Vec<MountOp> {
    layout(spec, host, oldroot, root, true).skeleton
}

/// What `layout` makes: the skeleton's creations, and the mounts (with what must be created inside
/// them) that follow.
struct Layout {
    skeleton: Vec<MountOp>,
    mounts: Vec<MountOp>,
    with_skeleton: bool,
}

impl Layout {
    /// Add a creation to the skeleton; without one, `op` is not even made.
    fn create(&mut self, op: impl FnOnce() -> MountOp) {
        if self.with_skeleton {
            self.skeleton.push(op());
        }
    }
}

/// The skeleton's creations (only `with_skeleton`), and the mounts that follow. Mount points are
/// made 0755 whatever the mount's mode: the mount hides theirs, and a skeleton in a cache must hold
/// nothing others can write.
fn layout(
    spec: &SandboxSpec,
    host: &HostLayout,
    oldroot: &Path,
    newroot: &Path,
    with_skeleton: bool,
) -> Layout {
    let new = |p: &str| newroot.join(p.trim_start_matches('/'));
    let old = |p: &str| oldroot.join(p.trim_start_matches('/'));
    let dir = |path: PathBuf| MountOp::Dir { path, mode: 0o755 };
    let mut l = Layout {
        skeleton: Vec::new(),
        mounts: Vec::new(),
        with_skeleton,
    };

    for (name, entry) in &host.system {
        match entry {
            HostEntry::Symlink(target) => l.create(|| MountOp::Symlink {
                link: new(name),
                target: target.clone(),
            }),
            _ => {
                l.create(|| dir(new(name)));
                l.mounts.push(MountOp::BindReadOnly {
                    source: old(name),
                    target: new(name),
                });
            }
        }
    }

    l.create(|| dir(new("/etc")));
    for (name, entry) in &host.etc {
        let path = || new("/etc").join(name);
        match entry {
            HostEntry::Dir => {
                l.create(|| dir(path()));
                l.mounts.push(MountOp::BindReadOnly {
                    source: old("/etc").join(name),
                    target: path(),
                });
            }
            HostEntry::File(len) => l.create(|| MountOp::CopyFile {
                source: old("/etc").join(name),
                target: path(),
                len: *len,
                mode: 0o644,
            }),
            HostEntry::Symlink(target) => l.create(|| MountOp::Symlink {
                link: path(),
                target: target.clone(),
            }),
        }
    }
    if l.with_skeleton {
        for (name, contents) in synthesized_etc(spec, host) {
            l.create(|| MountOp::File {
                path: new("/etc").join(name),
                contents,
                mode: 0o644,
            });
        }
    }

    // /dev is read-only: part of the root, which is made read-only once built.
    l.create(|| dir(new("/dev")));
    for dev in DEVICES {
        let target = new("/dev").join(dev);
        l.create(|| MountOp::File {
            path: target.clone(),
            contents: Vec::new(),
            mode: 0o444,
        });
        l.mounts.push(MountOp::BindDevice {
            source: old("/dev").join(dev),
            target,
        });
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        l.create(|| MountOp::Symlink {
            link: new("/dev").join(link),
            target: target.into(),
        });
    }
    l.create(|| dir(new("/dev/pts")));
    l.mounts.push(MountOp::Devpts {
        target: new("/dev/pts"),
    });
    l.create(|| dir(new("/dev/shm")));
    l.mounts.push(MountOp::Tmpfs {
        target: new("/dev/shm"),
        size: Some(spec.tmp_size_bytes),
        mode: 0o1777,
        flags: Flags::NoSuidDev,
    });

    l.create(|| dir(new("/proc")));
    l.mounts.push(MountOp::Proc {
        target: new("/proc"),
    });
    l.mounts
        .extend(PROC_MASKED_FILES.iter().map(|f| MountOp::MaskFile {
            target: new("/proc").join(f),
            null: old("/dev/null"),
        }));
    l.mounts
        .extend(PROC_MASKED_DIRS.iter().map(|d| MountOp::MaskDir {
            target: new("/proc").join(d),
        }));
    l.mounts
        .extend(PROC_READ_ONLY.iter().map(|d| MountOp::ReadOnlySelf {
            target: new("/proc").join(d),
        }));

    l.create(|| dir(new("/tmp")));
    l.mounts.push(MountOp::Tmpfs {
        target: new("/tmp"),
        size: Some(spec.tmp_size_bytes),
        mode: 0o1777,
        flags: Flags::NoSuidDev,
    });

    for bind in &spec.ro_binds {
        let target = new(&bind.inside.to_string_lossy());
        // A mount point inside another mount (say /tmp/x) is made once that mount is there.
        let under_a_mount = l.mounts.iter().any(|op| match op {
            MountOp::BindReadOnly { target: t, .. }
            | MountOp::Tmpfs { target: t, .. }
            | MountOp::Proc { target: t }
            | MountOp::Devpts { target: t } => target.starts_with(t),
            _ => false,
        });
        let made = |l: &mut Layout, op: MountOp| {
            if under_a_mount {
                l.mounts.push(op);
            } else {
                l.create(|| op);
            }
        };
        if bind.is_dir {
            made(&mut l, dir(target.clone()));
        } else {
            // A file is bound onto an empty file, in a directory made for it.
            if let Some(parent) = target.parent() {
                made(&mut l, dir(parent.to_owned()));
            }
            made(
                &mut l,
                MountOp::File {
                    path: target.clone(),
                    contents: Vec::new(),
                    mode: 0o444,
                },
            );
        }
        l.mounts.push(MountOp::BindReadOnly {
            source: old(&bind.host.to_string_lossy()),
            target,
        });
    }
    l.create(|| dir(new("/context")));
    l
}

mod execute;
pub mod root_cache;

pub use execute::execute;

#[cfg(test)]
mod tests;
