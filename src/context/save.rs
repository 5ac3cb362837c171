//! `--save-changes DEST`: copy created and modified files out of the upper layer, list deletions.
//!
//! Runs in the supervisor with the user's host privileges, on content the sandbox wrote, so every
//! read is `openat2`-beneath the upper fd and every write is dirfd-relative with `O_NOFOLLOW`: a
//! symlink planted by the sandbox can neither redirect a read nor a write. Set-id bits are dropped.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag};

use crate::context::error::ContextError;
use crate::context::pathenc;
use crate::context::report::ChangeReport;
use crate::context::walk::{open_beneath, open_dir_at, split_path};

/// Copies the report's created and modified files from `upper` into `dest`, and writes `deleted.txt`.
pub fn save_changes(
    upper: &OwnedFd,
    report: &ChangeReport,
    dest: &Path,
) -> Result<(), ContextError> {
    let dest_abs = resolve_dest(dest)?;
    let context = report
        .context_dir
        .canonicalize()
        .map_err(|e| ContextError::OpenRoot(report.context_dir.clone(), e))?;
    if dest_abs.starts_with(&context) {
        return Err(ContextError::SaveInsideContext(dest_abs, context));
    }
    std::fs::create_dir_all(&dest_abs).map_err(|e| ContextError::CreateDir(dest_abs.clone(), e))?;
    let dest_root =
        File::open(&dest_abs).map_err(|e| ContextError::OpenRoot(dest_abs.clone(), e))?;
    for change in report.created.iter().chain(&report.modified) {
        let raw = pathenc::decode(&change.path).ok_or_else(|| {
            ContextError::Save(change.path.clone(), std::io::ErrorKind::InvalidData.into())
        })?;
        save_one(upper.as_fd(), dest_root.as_fd(), &raw)
            .map_err(|e| ContextError::Save(change.path.clone(), e))?;
    }
    let mut list = String::new();
    for change in &report.deleted {
        list.push_str(&change.path);
        list.push('\n');
    }
    let deleted = dest_abs.join("deleted.txt");
    std::fs::write(&deleted, list).map_err(|e| ContextError::Save("deleted.txt".into(), e))
}

/// The absolute, symlink-free form of `dest`, even when it does not exist yet.
fn resolve_dest(dest: &Path) -> Result<PathBuf, ContextError> {
    if let Ok(p) = dest.canonicalize() {
        return Ok(p);
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dest.file_name().ok_or_else(|| {
        ContextError::OpenRoot(dest.to_path_buf(), std::io::ErrorKind::InvalidInput.into())
    })?;
    let parent = parent
        .canonicalize()
        .map_err(|e| ContextError::OpenRoot(parent.clone(), e))?;
    Ok(parent.join(name))
}

fn save_one(upper: BorrowedFd<'_>, dest: BorrowedFd<'_>, raw: &[u8]) -> std::io::Result<()> {
    let (dir, name) = split_path(raw);
    let src_dir = if dir.is_empty() {
        upper.try_clone_to_owned()?
    } else {
        open_beneath(upper, dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?
    };
    let st = nix::sys::stat::fstatat(src_dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
    let dst_dir = make_dirs(dest, dir)?;
    match SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFREG => {
            let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
            let mut input = File::from(nix::fcntl::openat(
                src_dir.as_fd(),
                name,
                flags,
                Mode::empty(),
            )?);
            let flags = OFlag::O_WRONLY
                | OFlag::O_CREAT
                | OFlag::O_TRUNC
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC;
            let mode = Mode::from_bits_truncate(st.st_mode & 0o777);
            let mut output = File::from(nix::fcntl::openat(dst_dir.as_fd(), name, flags, mode)?);
            std::io::copy(&mut input, &mut output)?;
            output.flush()?;
            nix::sys::stat::fchmod(output.as_fd(), mode)?;
        }
        SFlag::S_IFLNK => {
            let target = nix::fcntl::readlinkat(src_dir.as_fd(), name)?;
            match nix::unistd::unlinkat(
                dst_dir.as_fd(),
                name,
                nix::unistd::UnlinkatFlags::NoRemoveDir,
            ) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => return Err(e.into()),
            }
            nix::unistd::symlinkat(target.as_os_str(), dst_dir.as_fd(), name)?;
        }
        // Fifos, sockets and devices the sandbox made carry no content worth saving.
        _ => {}
    }
    Ok(())
}

/// `mkdir -p` of `dir` below `root`, one component at a time, never following a symlink.
fn make_dirs(root: BorrowedFd<'_>, dir: &[u8]) -> std::io::Result<OwnedFd> {
    let mut cur = root.try_clone_to_owned()?;
    for comp in dir.split(|b| *b == b'/').filter(|c| !c.is_empty()) {
        match nix::sys::stat::mkdirat(cur.as_fd(), comp, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        cur = open_dir_at(cur.as_fd(), comp)?;
    }
    Ok(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonexistent_dest_resolves_against_its_parent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = resolve_dest(&dir.path().join("new")).expect("resolve");
        assert_eq!(p, dir.path().canonicalize().expect("canon").join("new"));
    }
}
