//! The sandbox's root filesystem: a pure plan of mount operations and the thin executor that runs it.
//!
//! Paths in the plan are absolute *inside the staging root*: host paths live under `/oldroot`, the new
//! root is assembled under `/newroot` (see `pid1::build_root`).

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
    /// The host's resolv.conf contents (used with `--net host`).
    pub resolv_conf: Vec<u8>,
    /// A hash of the `etc` entries (`etc_cache::fingerprint`): what a cache entry is named by.
    pub etc_fingerprint: [u8; 32],
    /// A prepared copy of the whole synthesized `/etc` at this host path (`etc_cache`): bound
    /// instead of built.
    pub etc_cache: Option<PathBuf>,
}

impl HostLayout {
    /// Look at the host through `host_root` (`/` for the supervisor).
    pub fn probe(host_root: &Path) -> Self {
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
                etc_cache::fingerprint(&mut fingerprint, name, &path, &entry, &meta);
                Some((name.to_string(), entry))
            })
            .collect();
        // resolv.conf is often a symlink into /run: read through it, never bind it.
        let resolv_conf = fs::read(under("/etc/resolv.conf")).unwrap_or_default();
        HostLayout {
            system,
            etc,
            resolv_conf,
            etc_fingerprint: *fingerprint.finalize().as_bytes(),
            etc_cache: None,
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
    /// Remount a tmpfs read-only once it is populated.
    RemountReadOnly { target: PathBuf },
}

/// Mount flags the plan uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flags {
    /// nosuid, nodev.
    NoSuidDev,
    /// nosuid, nodev, noexec.
    NoSuidDevExec,
    /// nosuid (device nodes are bound into it).
    NoSuid,
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

/// Build the plan for the new root at `newroot`, with the host visible at `oldroot`.
pub fn plan(spec: &SandboxSpec, host: &HostLayout, oldroot: &Path, newroot: &Path) -> Vec<MountOp> {
    let new = |p: &str| newroot.join(p.trim_start_matches('/'));
    let old = |p: &str| oldroot.join(p.trim_start_matches('/'));
    let mut ops = vec![MountOp::Tmpfs {
        target: newroot.into(),
        size: Some(16 << 20),
        mode: 0o755,
        flags: Flags::NoSuidDev,
    }];

    for (dir, entry) in &host.system {
        match entry {
            HostEntry::Symlink(target) => ops.push(MountOp::Symlink {
                link: new(dir),
                target: target.clone(),
            }),
            _ => {
                ops.push(MountOp::Dir {
                    path: new(dir),
                    mode: 0o755,
                });
                ops.push(MountOp::BindReadOnly {
                    source: old(dir),
                    target: new(dir),
                });
            }
        }
    }

    ops.push(MountOp::Dir {
        path: new("/etc"),
        mode: 0o755,
    });
    if let Some(cache) = &host.etc_cache {
        ops.push(MountOp::BindReadOnly {
            source: old(&cache.to_string_lossy()),
            target: new("/etc"),
        });
    }
    let build_etc = host.etc_cache.is_none();
    for (name, entry) in &host.etc {
        let path = new("/etc").join(name);
        match entry {
            HostEntry::Dir => {
                // A cache entry holds the mount point already.
                if build_etc {
                    ops.push(MountOp::Dir {
                        path: path.clone(),
                        mode: 0o755,
                    });
                }
                ops.push(MountOp::BindReadOnly {
                    source: old("/etc").join(name),
                    target: path,
                });
            }
            _ if !build_etc => {}
            HostEntry::File(len) => ops.push(MountOp::CopyFile {
                source: old("/etc").join(name),
                target: path,
                len: *len,
                mode: 0o644,
            }),
            HostEntry::Symlink(target) => ops.push(MountOp::Symlink {
                link: path,
                target: target.clone(),
            }),
        }
    }
    if build_etc {
        for (name, contents) in synthesized_etc(spec, host) {
            ops.push(MountOp::File {
                path: new("/etc").join(name),
                contents,
                mode: 0o644,
            });
        }
    }

    ops.push(MountOp::Dir {
        path: new("/dev"),
        mode: 0o755,
    });
    ops.push(MountOp::Tmpfs {
        target: new("/dev"),
        size: Some(1 << 20),
        mode: 0o755,
        flags: Flags::NoSuid,
    });
    for dev in DEVICES {
        let target = new("/dev").join(dev);
        ops.push(MountOp::File {
            path: target.clone(),
            contents: Vec::new(),
            mode: 0o666,
        });
        ops.push(MountOp::BindDevice {
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
        ops.push(MountOp::Symlink {
            link: new("/dev").join(link),
            target: target.into(),
        });
    }
    ops.push(MountOp::Dir {
        path: new("/dev/pts"),
        mode: 0o755,
    });
    ops.push(MountOp::Devpts {
        target: new("/dev/pts"),
    });
    ops.push(MountOp::Dir {
        path: new("/dev/shm"),
        mode: 0o1777,
    });
    ops.push(MountOp::Tmpfs {
        target: new("/dev/shm"),
        size: Some(spec.tmp_size_bytes),
        mode: 0o1777,
        flags: Flags::NoSuidDev,
    });
    ops.push(MountOp::RemountReadOnly {
        target: new("/dev"),
    });

    ops.push(MountOp::Dir {
        path: new("/proc"),
        mode: 0o555,
    });
    ops.push(MountOp::Proc {
        target: new("/proc"),
    });
    ops.extend(PROC_MASKED_FILES.iter().map(|f| MountOp::MaskFile {
        target: new("/proc").join(f),
        null: old("/dev/null"),
    }));
    ops.extend(PROC_MASKED_DIRS.iter().map(|d| MountOp::MaskDir {
        target: new("/proc").join(d),
    }));
    ops.extend(PROC_READ_ONLY.iter().map(|d| MountOp::ReadOnlySelf {
        target: new("/proc").join(d),
    }));

    ops.push(MountOp::Dir {
        path: new("/tmp"),
        mode: 0o1777,
    });
    ops.push(MountOp::Tmpfs {
        target: new("/tmp"),
        size: Some(spec.tmp_size_bytes),
        mode: 0o1777,
        flags: Flags::NoSuidDev,
    });

    for bind in &spec.ro_binds {
        let target = new(&bind.inside.to_string_lossy());
        if bind.is_dir {
            ops.push(MountOp::Dir {
                path: target.clone(),
                mode: 0o755,
            });
        } else {
            // A file is bound onto an empty file, in a directory made for it.
            if let Some(parent) = target.parent() {
                ops.push(MountOp::Dir {
                    path: parent.to_owned(),
                    mode: 0o755,
                });
            }
            ops.push(MountOp::File {
                path: target.clone(),
                contents: Vec::new(),
                mode: 0o444,
            });
        }
        ops.push(MountOp::BindReadOnly {
            source: old(&bind.host.to_string_lossy()),
            target,
        });
    }
    ops.push(MountOp::Dir {
        path: new("/context"),
        mode: 0o755,
    });
    ops
}

pub mod etc_cache;
mod execute;

pub use execute::execute;

#[cfg(test)]
mod tests;
