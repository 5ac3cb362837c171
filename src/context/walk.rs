//! Stat-only walk of a tree: never follows a symlink, never leaves the tree or its filesystem.
//!
//! Each directory is opened beneath the root with `openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|...)`
//! and checked to be the inode its parent's `fstatat` saw, so a directory swapped for a symlink or
//! another directory mid-walk is refused.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::sync::{Condvar, Mutex};

use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{Mode, SFlag};

use crate::context::error::ContextError;
use crate::context::pathenc;
use crate::sys::context::read_dir_fd;

/// Deepest directory nesting a snapshot accepts (PATH_MAX allows about this many components).
const MAX_DEPTH: usize = 2048;

/// The kinds of entries a snapshot reproduces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link, copied as a link and never followed.
    Symlink,
}

/// One entry found by the walk, with the stat data used to detect changes during the copy.
#[derive(Clone, Debug)]
pub struct WalkEntry {
    /// Path relative to the root, components joined by `/`.
    pub path: Vec<u8>,
    /// Entry type.
    pub kind: EntryKind,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    /// Size in bytes (files only; 0 otherwise).
    pub size: u64,
    /// Inode number.
    pub ino: u64,
    /// Modification time (seconds, nanoseconds).
    pub mtime: (i64, i64),
    /// Symlink target bytes.
    pub target: Option<Vec<u8>>,
}

/// An entry the snapshot does not reproduce, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Path relative to the root.
    pub path: Vec<u8>,
    /// `fifo`, `socket`, `char_device`, `block_device` or `mount_point`.
    pub kind: &'static str,
}

/// The result of a walk: reproducible entries and skipped ones.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    /// Directories, files and symlinks, sorted by path bytes (so parents come first).
    pub entries: Vec<WalkEntry>,
    /// Special files and mount points that are left out.
    pub skipped: Vec<Skipped>,
}

impl Tree {
    /// Sum of file sizes rounded up to whole pages, as tmpfs accounts them.
    pub fn page_bytes(&self) -> u64 {
        self.entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| e.size.div_ceil(4096) * 4096)
            .sum()
    }
}

/// Opens `root` as a directory without following a symlink at its last component.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &[u8]) -> nix::Result<OwnedFd> {
    nix::fcntl::openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Opens `path` (relative, `/`-separated) strictly beneath `root`: no symlink, no magic link, no
/// mount crossing in any component, so a tree that changes under us cannot redirect the open.
pub fn open_beneath(root: BorrowedFd<'_>, path: &[u8], flags: OFlag) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NOCTTY)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
    nix::fcntl::openat2(root, path, how)
}

/// A directory waiting to be listed: its path and the inode its parent's `fstatat` saw.
struct DirJob {
    path: Vec<u8>,
    ino: u64,
    depth: usize,
}

/// Queue shared by the walk workers; `busy` counts jobs taken but not finished.
#[derive(Default)]
struct Queue {
    jobs: Vec<DirJob>,
    busy: usize,
    failed: Option<ContextError>,
}

/// Walks the tree below `root` (an fd opened on a directory) on all workers.
///
/// Directories are listed in parallel; each is opened beneath the root with `openat2` (no symlinks)
/// and must be the inode its parent listed. Entries come back sorted by path, so every directory
/// precedes its contents.
pub fn walk(root: BorrowedFd<'_>) -> Result<Tree, ContextError> {
    let root_stat =
        nix::sys::stat::fstat(root).map_err(|e| ContextError::Walk(".".into(), e.into()))?;
    let dev = root_stat.st_dev;
    let first = DirJob {
        path: Vec::new(),
        ino: root_stat.st_ino,
        depth: 0,
    };
    let queue = Mutex::new(Queue {
        jobs: vec![first],
        ..Default::default()
    });
    let wake = Condvar::new();
    let parts: Mutex<Vec<Tree>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..crate::context::copy::worker_threads() {
            s.spawn(|| {
                let mut part = Tree::default();
                while let Some(job) = next_job(&queue, &wake) {
                    let mut found = Vec::new();
                    let result = list_dir(root, dev, &job, &mut part, &mut found);
                    let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
                    q.busy -= 1;
                    match result {
                        Ok(()) => q.jobs.extend(found),
                        Err(e) => {
                            q.failed.get_or_insert(e);
                        }
                    }
                    wake.notify_all();
                }
                parts.lock().unwrap_or_else(|p| p.into_inner()).push(part);
            });
        }
    });
    if let Some(e) = queue.into_inner().unwrap_or_else(|p| p.into_inner()).failed {
        return Err(e);
    }
    let mut tree = Tree::default();
    for part in parts.into_inner().unwrap_or_else(|p| p.into_inner()) {
        tree.entries.extend(part.entries);
        tree.skipped.extend(part.skipped);
    }
    tree.entries.sort_by(|a, b| a.path.cmp(&b.path));
    tree.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(tree)
}

/// Takes the next directory, waiting while others may still add some; None when the walk is over.
fn next_job(queue: &Mutex<Queue>, wake: &Condvar) -> Option<DirJob> {
    let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if q.failed.is_some() {
            return None;
        }
        if let Some(job) = q.jobs.pop() {
            q.busy += 1;
            return Some(job);
        }
        if q.busy == 0 {
            return None;
        }
        q = wake.wait(q).unwrap_or_else(|p| p.into_inner());
    }
}

fn shown(p: &[u8]) -> String {
    if p.is_empty() {
        ".".to_string()
    } else {
        pathenc::encode(p)
    }
}

/// Lists one directory: records its entries in `part`, queues its subdirectories in `found`.
fn list_dir(
    root: BorrowedFd<'_>,
    dev: u64,
    job: &DirJob,
    part: &mut Tree,
    found: &mut Vec<DirJob>,
) -> Result<(), ContextError> {
    if job.depth > MAX_DEPTH {
        return Err(ContextError::TooDeep(shown(&job.path)));
    }
    let path: &[u8] = if job.path.is_empty() { b"." } else { &job.path };
    let dir = open_beneath(root, path, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
        .map_err(|e| walk_error(shown(&job.path), e.into()))?;
    let now =
        nix::sys::stat::fstat(dir.as_fd()).map_err(|e| walk_error(shown(&job.path), e.into()))?;
    if now.st_ino != job.ino || now.st_dev != dev {
        return Err(ContextError::ChangedDuringCopy(
            shown(&job.path),
            "directory replaced during the walk",
        ));
    }
    let names = read_dir_fd(dir.as_fd()).map_err(|e| walk_error(shown(&job.path), e))?;
    for raw in names {
        let path = join_path(&job.path, &raw.name);
        let st = nix::sys::stat::fstatat(
            dir.as_fd(),
            raw.name.as_slice(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| walk_error(shown(&path), e.into()))?;
        let fmt = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        let mut entry = WalkEntry {
            path,
            kind: EntryKind::File,
            mode: st.st_mode & 0o7777,
            size: 0,
            ino: st.st_ino,
            mtime: (st.st_mtime, st.st_mtime_nsec),
            target: None,
        };
        let special = match fmt {
            SFlag::S_IFREG => {
                entry.size = u64::try_from(st.st_size).unwrap_or(0);
                None
            }
            SFlag::S_IFLNK => {
                let target = nix::fcntl::readlinkat(dir.as_fd(), raw.name.as_slice())
                    .map_err(|e| walk_error(pathenc::encode(&entry.path), e.into()))?;
                entry.kind = EntryKind::Symlink;
                entry.target = Some(target.into_vec());
                None
            }
            // Like the overlay, which shows a single filesystem: mounts inside the tree are left out.
            SFlag::S_IFDIR if st.st_dev != dev => Some("mount_point"),
            SFlag::S_IFDIR => {
                entry.kind = EntryKind::Dir;
                found.push(DirJob {
                    path: entry.path.clone(),
                    ino: st.st_ino,
                    depth: job.depth + 1,
                });
                None
            }
            SFlag::S_IFIFO => Some("fifo"),
            SFlag::S_IFSOCK => Some("socket"),
            SFlag::S_IFCHR => Some("char_device"),
            _ => Some("block_device"),
        };
        match special {
            Some(kind) => part.skipped.push(Skipped {
                path: entry.path,
                kind,
            }),
            None => part.entries.push(entry),
        }
    }
    Ok(())
}

/// Splits a relative path into (parent directory, last component); the parent of `a` is empty.
pub fn split_path(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

/// Joins a relative directory path (possibly empty) and a name.
pub fn join_path(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(prefix.len() + 1 + name.len());
    p.extend_from_slice(prefix);
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// Permission errors get their own variant so the message can say how to fix them.
pub fn walk_error(path: String, e: std::io::Error) -> ContextError {
    if e.raw_os_error() == Some(libc::EACCES) {
        ContextError::Unreadable(path, e)
    } else {
        ContextError::Walk(path, e)
    }
}
