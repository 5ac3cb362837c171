//! What the sandbox changed under /context, read from the overlay's upper layer after exit.
//!
//! Upper entries are compared with the lower (host) tree: a 0:0 character device is a whiteout
//! (deleted), a directory with the `trusted.overlay.opaque` or `user.overlay.opaque` xattr set to `y`
//! hides everything below it in the lower tree. A copied-up file whose content, mode and link target
//! are unchanged is not reported. Both trees are walked through directory fds without following links.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, SFlag};
use serde::Serialize;

use crate::context::error::ContextError;
use crate::context::pathenc;
use crate::context::walk::{join_path, open_dir_at};
use crate::sys::context::{fgetxattr, read_dir_fd};

pub use crate::context::save::save_changes;

/// One changed path (escaped with `pathenc`) and its size in bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Path relative to /context, in the escaped text form of `pathenc`.
    pub path: String,
    /// Size of the new file (created, modified) or of the removed one (deleted).
    pub size: u64,
}

/// Files created, modified and deleted under /context, sorted by path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChangeReport {
    /// The host context directory the report compares against.
    pub context_dir: PathBuf,
    /// Paths that did not exist before.
    pub created: Vec<Change>,
    /// Paths whose content, mode or link target changed.
    pub modified: Vec<Change>,
    /// Paths that were removed.
    pub deleted: Vec<Change>,
}

impl ChangeReport {
    /// True when the sandbox left the context as it found it.
    pub fn is_empty(&self) -> bool {
        self.created.is_empty() && self.modified.is_empty() && self.deleted.is_empty()
    }
}

impl fmt::Display for ChangeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 50;
        writeln!(
            f,
            "context changes (discarded unless saved): {} created, {} modified, {} deleted",
            self.created.len(),
            self.modified.len(),
            self.deleted.len()
        )?;
        for (sign, list) in [
            ("+", &self.created),
            ("~", &self.modified),
            ("-", &self.deleted),
        ] {
            for c in list.iter().take(SHOWN) {
                writeln!(f, "  {sign} {} ({} bytes)", c.path, c.size)?;
            }
            if list.len() > SHOWN {
                writeln!(f, "  {sign} … and {} more", list.len() - SHOWN)?;
            }
        }
        Ok(())
    }
}

/// Computes the change report from the upper layer `upper` against the host context dir `lower`.
pub fn change_report(upper: &OwnedFd, lower: &Path) -> Result<ChangeReport, ContextError> {
    let lower_root =
        File::open(lower).map_err(|e| ContextError::OpenRoot(lower.to_path_buf(), e))?;
    let mut report = ChangeReport {
        context_dir: lower.to_path_buf(),
        ..Default::default()
    };
    compare_dir(upper.as_fd(), Some(lower_root.as_fd()), &[], &mut report)?;
    for list in [
        &mut report.created,
        &mut report.modified,
        &mut report.deleted,
    ] {
        list.sort_by(|a, b| a.path.cmp(&b.path));
    }
    Ok(report)
}

fn err(path: &[u8]) -> impl Fn(nix::Error) -> ContextError + '_ {
    move |e| ContextError::Report(pathenc::encode(path), e.into())
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

fn is_whiteout(st: &FileStat) -> bool {
    kind(st) == SFlag::S_IFCHR && st.st_rdev == 0
}

fn is_opaque(dir: BorrowedFd<'_>) -> bool {
    [c"trusted.overlay.opaque", c"user.overlay.opaque"]
        .iter()
        .any(|name| matches!(fgetxattr(dir, name), Ok(Some(v)) if v == b"y"))
}

fn size_of(st: &FileStat) -> u64 {
    u64::try_from(st.st_size).unwrap_or(0)
}

fn compare_dir(
    upper: BorrowedFd<'_>,
    lower: Option<BorrowedFd<'_>>,
    prefix: &[u8],
    report: &mut ChangeReport,
) -> Result<(), ContextError> {
    let opaque = lower.is_some() && is_opaque(upper);
    let visible_lower = if opaque { None } else { lower };
    let names = read_dir_fd(upper).map_err(|e| ContextError::Report(pathenc::encode(prefix), e))?;
    for raw in &names {
        let path = join_path(prefix, &raw.name);
        let ust = nix::sys::stat::fstatat(upper, raw.name.as_slice(), AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(err(&path))?;
        let lst = visible_lower.and_then(|l| {
            nix::sys::stat::fstatat(l, raw.name.as_slice(), AtFlags::AT_SYMLINK_NOFOLLOW).ok()
        });
        if is_whiteout(&ust) {
            if let (Some(l), Some(lst)) = (visible_lower, lst) {
                add_deleted(l, &raw.name, &lst, &path, report)?;
            }
            continue;
        }
        let l_is_dir = lst.as_ref().is_some_and(|s| kind(s) == SFlag::S_IFDIR);
        if let (Some(l), Some(lst)) = (visible_lower, lst.as_ref()) {
            // A type change: the old entry is gone, the new one is created.
            if (kind(&ust) == SFlag::S_IFDIR) != l_is_dir {
                add_deleted(l, &raw.name, lst, &path, report)?;
            }
        }
        if kind(&ust) == SFlag::S_IFDIR {
            let usub = match open_dir_at(upper, &raw.name) {
                Ok(fd) => fd,
                // A directory the workload locked (chmod 000) cannot be listed by an unprivileged
                // supervisor: report it as one entry, marked by a trailing `/`, instead of failing.
                Err(nix::Error::EACCES) => {
                    let change = Change {
                        path: format!("{}/", pathenc::encode(&path)),
                        size: 0,
                    };
                    if l_is_dir {
                        report.modified.push(change)
                    } else {
                        report.created.push(change)
                    }
                    continue;
                }
                Err(e) => return Err(err(&path)(e)),
            };
            let lsub = match visible_lower {
                Some(l) if l_is_dir => Some(open_dir_at(l, &raw.name).map_err(err(&path))?),
                _ => None,
            };
            compare_dir(
                usub.as_fd(),
                lsub.as_ref().map(|f| f.as_fd()),
                &path,
                report,
            )?;
            continue;
        }
        let change = Change {
            path: pathenc::encode(&path),
            size: size_of(&ust),
        };
        match (visible_lower, lst) {
            (Some(l), Some(lst)) if !l_is_dir => {
                // A copy the supervisor cannot read (say, chmod 000 by the workload) counts as modified.
                if differs(upper, l, &raw.name, &ust, &lst).unwrap_or(true) {
                    report.modified.push(change);
                }
            }
            _ => report.created.push(change),
        }
    }
    if opaque && let Some(l) = lower {
        let kept: Vec<&[u8]> = names.iter().map(|n| n.name.as_slice()).collect();
        let lower_names =
            read_dir_fd(l).map_err(|e| ContextError::Report(pathenc::encode(prefix), e))?;
        for raw in lower_names
            .iter()
            .filter(|n| !kept.contains(&n.name.as_slice()))
        {
            let path = join_path(prefix, &raw.name);
            let lst = nix::sys::stat::fstatat(l, raw.name.as_slice(), AtFlags::AT_SYMLINK_NOFOLLOW)
                .map_err(err(&path))?;
            add_deleted(l, &raw.name, &lst, &path, report)?;
        }
    }
    Ok(())
}

/// Records a removed lower entry; a removed directory lists every file that was under it.
fn add_deleted(
    dir: BorrowedFd<'_>,
    name: &[u8],
    st: &FileStat,
    path: &[u8],
    report: &mut ChangeReport,
) -> Result<(), ContextError> {
    if kind(st) != SFlag::S_IFDIR {
        report.deleted.push(Change {
            path: pathenc::encode(path),
            size: size_of(st),
        });
        return Ok(());
    }
    let sub = open_dir_at(dir, name).map_err(err(path))?;
    let names =
        read_dir_fd(sub.as_fd()).map_err(|e| ContextError::Report(pathenc::encode(path), e))?;
    for raw in names {
        let child = join_path(path, &raw.name);
        let cst = nix::sys::stat::fstatat(
            sub.as_fd(),
            raw.name.as_slice(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(err(&child))?;
        add_deleted(sub.as_fd(), &raw.name, &cst, &child, report)?;
    }
    Ok(())
}

/// Whether a copied-up entry really differs from its lower original.
fn differs(
    upper: BorrowedFd<'_>,
    lower: BorrowedFd<'_>,
    name: &[u8],
    u: &FileStat,
    l: &FileStat,
) -> std::io::Result<bool> {
    if kind(u) != kind(l) || u.st_mode != l.st_mode || u.st_size != l.st_size {
        return Ok(true);
    }
    match kind(u) {
        SFlag::S_IFLNK => {
            Ok(nix::fcntl::readlinkat(upper, name)? != nix::fcntl::readlinkat(lower, name)?)
        }
        SFlag::S_IFREG => Ok(content_hash(upper, name)? != content_hash(lower, name)?),
        _ => Ok(u.st_rdev != l.st_rdev),
    }
}

fn content_hash(dir: BorrowedFd<'_>, name: &[u8]) -> std::io::Result<blake3::Hash> {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let mut f = File::from(nix::fcntl::openat(
        dir,
        name,
        flags,
        nix::sys::stat::Mode::empty(),
    )?);
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match f.read(&mut buf)? {
            0 => return Ok(h.finalize()),
            n => {
                h.update(&buf[..n]);
            }
        }
    }
}
