//! A prepared root skeleton, kept between runs, that PID 1 binds read-only as the new root instead
//! of mounting a tmpfs and creating ~50 directories, links and files in it (the synthesized `/etc`
//! among them; docs/BENCHMARKS.md). An entry holds `rootfs::skeleton`, created once, in `ROOT`,
//! and an empty `SCRATCH` directory beside it (see there).
//!
//! An entry is named by a hash of everything its contents come from (`entry_name`): the nucleus
//! executable, the allowlisted host `/etc` entries' metadata (device, inode, size, modification and
//! change times, or a symlink's target), the parts of the spec the skeleton holds, and a layout
//! version. A changed host file therefore names a new entry; an entry is never changed
//! once built. Entries are built in a temporary directory and renamed into place, so a reader sees
//! a whole entry or none. Nothing in an entry is writable by others: mount points are 0755, whatever
//! mode the mount over them has.
//!
//! Every sandbox holds a shared `flock` on its entry for its lifetime. When a new entry is built,
//! the others are removed, but only those built over 15 minutes ago whose exclusive lock can be
//! taken: no sandbox uses them.
//! Any failure here only means PID 1 builds the root itself, as without a cache; so does a cache
//! directory that anyone but this user could write (`cache::is_private`).

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};

use super::execute::open_regular;
use super::{HostEntry, HostLayout, MountOp, execute, skeleton};
use crate::spec::{NetworkMode, SandboxSpec};

/// Bump when what an entry holds changes shape.
const LAYOUT_VERSION: &str = "root-cache-3";

/// In an entry: the skeleton, which PID 1 binds onto itself as the new root.
pub const ROOT: &str = "root";
/// In an entry, outside the new root: where PID 1 mounts its scratch tmpfs (the context overlay's
/// layers). Being in the host's tree, it is detached with the host's mounts once PID 1 has
/// pivoted, at no cost of its own.
pub const SCRATCH: &str = "scratch";

/// An entry in use: its host path, and the shared lock that keeps it from removal.
#[derive(Debug)]
pub struct RootCache {
    /// The entry's directory on the host.
    pub dir: PathBuf,
    _lock: Flock<File>,
}

/// Where entries live: `root` under `cache::runtime_dir` (as root, `/run/nucleus/root`, where
/// the unprivileged host id of container root can search).
pub fn default_root() -> Option<PathBuf> {
    crate::cache::runtime_dir().map(|dir| dir.join("root"))
}

/// How long after its last change a file's metadata is not trusted to tell its contents apart:
/// file times move in clock ticks, so two writes of the same size within one tick look alike.
const RACY: Duration = Duration::from_secs(2);

/// The fingerprint of one allowlisted host `/etc` entry at `path`, fed into an entry's name: its
/// metadata, a symlink's target, and a file's contents too while it changed too recently for the
/// metadata to tell (as git does for "racy" files).
pub(super) fn fingerprint(
    hasher: &mut blake3::Hasher,
    name: &str,
    path: &Path,
    entry: &HostEntry,
    meta: &fs::Metadata,
) {
    hasher.update(name.as_bytes());
    crate::cache::hash_identity(hasher, meta);
    let changed = UNIX_EPOCH + Duration::new(meta.ctime().max(0) as u64, meta.ctime_nsec() as u32);
    let recent = SystemTime::now()
        .duration_since(changed)
        .map_or(true, |age| age < RACY);
    match entry {
        HostEntry::Symlink(target) => {
            hasher.update(target.as_os_str().as_encoded_bytes());
        }
        // Unreadable now: the name changes anyway, and the build fails and falls back.
        HostEntry::File(_) if recent => {
            hasher.update(&read_regular(path).unwrap_or_default());
        }
        _ => {}
    }
}

/// The entry for this spec and host under `root`, built if missing and locked for the caller's
/// lifetime. `host_root` is where the host's `/` is seen (`/` for the supervisor).
pub fn open(
    root: &Path,
    spec: &SandboxSpec,
    host: &HostLayout,
    host_root: &Path,
) -> io::Result<RootCache> {
    // An entry's scratch directory carries the context overlay's layers, whose paths go into the
    // overlay's option string.
    crate::context::mounts::check_option_safe(root).map_err(io::Error::other)?;
    make_dirs(root)?;
    if !crate::cache::is_private(root) {
        return Err(io::Error::other(format!(
            "{} can be written by others",
            root.display()
        )));
    }
    let name = entry_name(spec, host)?;
    let dir = root.join(&name);
    for _ in 0..3 {
        match File::open(&dir) {
            Ok(entry) => {
                let entry = lock(entry, FlockArg::LockShared)?;
                // A collector may have removed it between our open and our lock.
                if entry.metadata()?.nlink() == 0 {
                    continue;
                }
                if !spec.id_map.rootless && !searchable_by_others(&dir) {
                    return Err(io::Error::other(format!(
                        "{} is out of reach of the sandbox's root",
                        dir.display()
                    )));
                }
                return Ok(RootCache { dir, _lock: entry });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                build(root, &name, spec, host, host_root)?;
                collect_garbage(root, &name);
                remove_legacy_etc_cache(root);
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("the entry kept disappearing"))
}

/// An entry's name: a hash of everything `skeleton` makes it from, taken from its inputs (computing
/// the skeleton took ~30 µs, and with a cached root a start computes none): the executable, by
/// identity (its code and its assets); the host's system directories and allowlisted `/etc`
/// entries (`fingerprint`); and what of the spec goes into the skeleton: the hostname, the network
/// (and with it `resolv.conf`) and the read-only binds' mount points.
fn entry_name(spec: &SandboxSpec, host: &HostLayout) -> io::Result<String> {
    let mut input = Vec::with_capacity(4 << 10);
    let mut field = |bytes: &[u8]| {
        input.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        input.extend_from_slice(bytes);
    };
    field(LAYOUT_VERSION.as_bytes());
    let mut exe = blake3::Hasher::new();
    crate::cache::hash_identity(&mut exe, &fs::metadata("/proc/self/exe")?);
    field(exe.finalize().as_bytes());
    field(&host.etc_fingerprint);
    for (name, entry) in &host.system {
        field(name.as_bytes());
        match entry {
            HostEntry::Symlink(target) => field(target.as_os_str().as_encoded_bytes()),
            _ => field(b"dir"),
        }
    }
    field(spec.hostname.as_bytes());
    field(match spec.network {
        NetworkMode::None => b"none",
        NetworkMode::Host => b"host",
    });
    field(&host.resolv_conf);
    for bind in &spec.ro_binds {
        field(bind.inside.as_os_str().as_encoded_bytes());
        field(&[u8::from(bind.is_dir)]);
    }
    Ok(blake3::hash(&input).to_hex()[..32].to_owned())
}

/// Build the entry in a locked temporary directory and rename it into place.
fn build(
    root: &Path,
    name: &str,
    spec: &SandboxSpec,
    host: &HostLayout,
    host_root: &Path,
) -> io::Result<()> {
    let tmp = root.join(format!(".tmp-{name}-{}", std::process::id()));
    fs::create_dir(&tmp)?;
    let _guard = lock(File::open(&tmp)?, FlockArg::LockExclusive)?;
    let filled = [ROOT, SCRATCH]
        .iter()
        .try_for_each(|dir| fs::create_dir(tmp.join(dir)))
        .and_then(|()| fill(&tmp.join(ROOT), spec, host, host_root))
        .and_then(|()| {
            for dir in [&tmp.join(ROOT), &tmp.join(SCRATCH), &tmp] {
                fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
            }
            fs::rename(&tmp, root.join(name))
        });
    if filled.is_err() {
        // Lost a race to another builder (the entry exists now), or failed: either way ours goes.
        let _ = fs::remove_dir_all(&tmp);
    }
    match filled {
        Err(e) if !root.join(name).is_dir() => Err(e),
        _ => Ok(()),
    }
}

/// The skeleton, created under `dir` with the modes it names, whatever the caller's umask (which
/// is process-wide, so it is left alone: the executor's modes are then only masked, and set again).
fn fill(dir: &Path, spec: &SandboxSpec, host: &HostLayout, host_root: &Path) -> io::Result<()> {
    for op in skeleton(spec, host, host_root, dir) {
        execute(&op)?;
        match op {
            MountOp::Dir { path, mode } => {
                // Parents made on the way too (a bind's mount point may be nested).
                for made in path
                    .ancestors()
                    .take_while(|a| a.starts_with(dir) && *a != dir)
                {
                    fs::set_permissions(made, fs::Permissions::from_mode(mode))?;
                }
            }
            MountOp::File { path, mode, .. }
            | MountOp::CopyFile {
                target: path, mode, ..
            } => fs::set_permissions(path, fs::Permissions::from_mode(mode))?,
            _ => {}
        }
    }
    Ok(())
}

/// The contents of the file the probe saw as a regular file (`execute::open_regular`).
fn read_regular(path: &Path) -> io::Result<Vec<u8>> {
    let mut contents = Vec::new();
    io::Read::read_to_end(&mut open_regular(path)?, &mut contents)?;
    Ok(contents)
}

/// Create `root` (and missing parents, with the usual modes); `root` and its parent, nucleus's own,
/// become searchable by everyone (see `default_root`).
fn make_dirs(root: &Path) -> io::Result<()> {
    if root.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(root)?;
    for dir in [root.parent(), Some(root)].into_iter().flatten() {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// Whether every directory from `/` down to `dir` lets others search it: PID 1 binds the entry as
/// container root, which is an unprivileged host id when nucleus runs as root.
fn searchable_by_others(dir: &Path) -> bool {
    dir.ancestors()
        .all(|d| fs::metadata(d).is_ok_and(|m| m.mode() & 0o001 != 0))
}

/// How old an entry must be before a collector may remove it. Why not at once: entries of other
/// variants (`--net host` has its own `resolv.conf`) are still current, and runs that alternate
/// between them would otherwise rebuild one another's entries every time.
const KEEP_UNUSED: Duration = Duration::from_secs(15 * 60);

/// Versions before the root cache kept `/etc` alone in `etc` beside `root`: its entries go like
/// stale ones of ours (unused and old, so a sandbox of an older nucleus keeps its own), and the
/// directory once it is empty.
fn remove_legacy_etc_cache(root: &Path) {
    let legacy = root.with_file_name("etc");
    if crate::cache::is_private(&legacy) {
        collect_garbage(&legacy, "");
        let _ = fs::remove_dir(&legacy);
    }
}

/// Remove every entry but `keep` that no sandbox holds and that was built more than `KEEP_UNUSED`
/// ago, and temporary ones no builder holds.
fn collect_garbage(root: &Path, keep: &str) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let path = entry.path();
        let young = fs::metadata(&path)
            .and_then(|m| m.modified())
            .is_ok_and(|built| {
                now.duration_since(built)
                    .map_or(true, |age| age < KEEP_UNUSED)
            });
        if entry.file_name() == keep || !path.is_dir() || young {
            continue;
        }
        let Ok(dir) = File::open(&path) else {
            continue;
        };
        // Removed while the exclusive lock is held: no sandbox can take it meanwhile.
        if let Ok(_held) = lock(dir, FlockArg::LockExclusiveNonblock) {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// `file` with an `flock` held until it is dropped.
fn lock(file: File, how: FlockArg) -> io::Result<Flock<File>> {
    Flock::lock(file, how).map_err(|(_, errno)| errno.into())
}
