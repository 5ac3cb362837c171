//! Stat-only walk of a tree through directory fds: never follows a symlink, never leaves the tree.
//!
//! Each directory is opened relative to its parent's fd with `O_NOFOLLOW|O_DIRECTORY` and checked to
//! be the inode that `fstatat` saw, so a directory swapped for a symlink mid-walk is refused.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};

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

/// The result of a walk: reproducible entries (parents before children) and skipped ones.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    /// Directories, files and symlinks, in pre-order.
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

/// Walks the tree below `root` (an fd opened on a directory).
pub fn walk(root: BorrowedFd<'_>) -> Result<Tree, ContextError> {
    let root_stat =
        nix::sys::stat::fstat(root).map_err(|e| ContextError::Walk(".".into(), e.into()))?;
    let mut tree = Tree::default();
    let mut prefix = Vec::new();
    walk_dir(root, root_stat.st_dev, &mut prefix, 0, &mut tree)?;
    Ok(tree)
}

fn walk_dir(
    dir: BorrowedFd<'_>,
    dev: u64,
    prefix: &mut Vec<u8>,
    depth: usize,
    tree: &mut Tree,
) -> Result<(), ContextError> {
    let shown = |p: &[u8]| {
        if p.is_empty() {
            ".".to_string()
        } else {
            pathenc::encode(p)
        }
    };
    if depth > MAX_DEPTH {
        return Err(ContextError::TooDeep(shown(prefix)));
    }
    let mut names = read_dir_fd(dir).map_err(|e| walk_error(shown(prefix), e))?;
    names.sort_by(|a, b| a.name.cmp(&b.name));
    for raw in names {
        let base = prefix.len();
        if !prefix.is_empty() {
            prefix.push(b'/');
        }
        prefix.extend_from_slice(&raw.name);
        let st = nix::sys::stat::fstatat(dir, raw.name.as_slice(), AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| walk_error(shown(prefix), e.into()))?;
        visit(dir, &raw.name, &st, dev, prefix, depth, tree)?;
        prefix.truncate(base);
    }
    Ok(())
}

fn visit(
    dir: BorrowedFd<'_>,
    name: &[u8],
    st: &FileStat,
    dev: u64,
    path: &mut Vec<u8>,
    depth: usize,
    tree: &mut Tree,
) -> Result<(), ContextError> {
    let fmt = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    let mode = st.st_mode & 0o7777;
    let mut entry = WalkEntry {
        path: path.clone(),
        kind: EntryKind::File,
        mode,
        size: 0,
        ino: st.st_ino,
        mtime: (st.st_mtime, st.st_mtime_nsec),
        target: None,
    };
    let skip = |kind| Skipped {
        path: path.clone(),
        kind,
    };
    match fmt {
        SFlag::S_IFREG => {
            entry.size = u64::try_from(st.st_size).unwrap_or(0);
            tree.entries.push(entry);
        }
        SFlag::S_IFLNK => {
            let target = nix::fcntl::readlinkat(dir, name)
                .map_err(|e| walk_error(pathenc::encode(path), e.into()))?;
            entry.kind = EntryKind::Symlink;
            entry.target = Some(target.into_vec());
            tree.entries.push(entry);
        }
        SFlag::S_IFDIR if st.st_dev != dev => tree.skipped.push(skip("mount_point")),
        SFlag::S_IFDIR => {
            let sub =
                open_dir_at(dir, name).map_err(|e| walk_error(pathenc::encode(path), e.into()))?;
            let now = nix::sys::stat::fstat(sub.as_fd())
                .map_err(|e| walk_error(pathenc::encode(path), e.into()))?;
            if now.st_ino != st.st_ino || now.st_dev != st.st_dev {
                return Err(ContextError::ChangedDuringCopy(
                    pathenc::encode(path),
                    "directory replaced during the walk",
                ));
            }
            entry.kind = EntryKind::Dir;
            tree.entries.push(entry);
            walk_dir(sub.as_fd(), dev, path, depth + 1, tree)?;
        }
        SFlag::S_IFIFO => tree.skipped.push(skip("fifo")),
        SFlag::S_IFSOCK => tree.skipped.push(skip("socket")),
        SFlag::S_IFCHR => tree.skipped.push(skip("char_device")),
        _ => tree.skipped.push(skip("block_device")),
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
