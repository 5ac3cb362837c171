//! Structural verification of a finished snapshot: exactly the walked entries, nothing else.
//!
//! File content, size and mode were already checked per file while copying (see `copy`), so this
//! pass only lists directories (`getdents`, no per-file `stat`), compares names and types with the
//! source walk, and checks directory modes and symlink targets.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

use crate::context::error::ContextError;
use crate::context::pathenc;
use crate::context::walk::{EntryKind, Tree, join_path, open_dir_at, split_path};
use crate::sys::context::{DirEntryKind, read_dir_fd};

/// Differences between the copy below `dst` and the source walk `tree`; empty when they match.
pub fn verify_structure(dst: BorrowedFd<'_>, tree: &Tree) -> Result<Vec<String>, ContextError> {
    let mut children: HashMap<&[u8], Vec<(&[u8], usize)>> = HashMap::new();
    for (i, e) in tree.entries.iter().enumerate() {
        let (parent, name) = split_path(&e.path);
        children.entry(parent).or_default().push((name, i));
    }
    let mut diff = Vec::new();
    check_dir(dst, b"", tree, &children, &mut diff)?;
    Ok(diff)
}

fn check_dir(
    dir: BorrowedFd<'_>,
    path: &[u8],
    tree: &Tree,
    children: &HashMap<&[u8], Vec<(&[u8], usize)>>,
    diff: &mut Vec<String>,
) -> Result<(), ContextError> {
    let shown = |p: &[u8]| pathenc::encode(p);
    let err = |p: &[u8], e: std::io::Error| ContextError::Copy(shown(p), e);
    let mut found = read_dir_fd(dir).map_err(|e| err(path, e))?;
    found.sort_by(|a, b| a.name.cmp(&b.name));
    let mut want: Vec<(&[u8], usize)> = children.get(path).cloned().unwrap_or_default();
    want.sort();
    let (mut i, mut j) = (0, 0);
    while i < found.len() || j < want.len() {
        let order = match (found.get(i), want.get(j)) {
            (Some(x), Some((name, _))) => x.name.as_slice().cmp(name),
            (Some(_), None) => Ordering::Less,
            (None, _) => Ordering::Greater,
        };
        match order {
            Ordering::Less => {
                let p = join_path(path, &found[i].name);
                diff.push(format!("unexpected in the copy: {}", shown(&p)));
                i += 1;
            }
            Ordering::Greater => {
                let p = join_path(path, want[j].0);
                diff.push(format!("missing in the copy: {}", shown(&p)));
                j += 1;
            }
            Ordering::Equal => {
                let (name, idx) = want[j];
                let e = &tree.entries[idx];
                let p = join_path(path, name);
                let same_kind = matches!(
                    (e.kind, found[i].kind),
                    (EntryKind::Dir, DirEntryKind::Dir)
                        | (EntryKind::File, DirEntryKind::File)
                        | (EntryKind::Symlink, DirEntryKind::Symlink)
                );
                if !same_kind {
                    diff.push(format!("type differs in the copy: {}", shown(&p)));
                } else if e.kind == EntryKind::Symlink {
                    let target =
                        nix::fcntl::readlinkat(dir, name).map_err(|x| err(&p, x.into()))?;
                    if Some(target.as_bytes()) != e.target.as_deref() {
                        diff.push(format!("symlink target differs in the copy: {}", shown(&p)));
                    }
                } else if e.kind == EntryKind::Dir {
                    let sub = open_dir_at(dir, name).map_err(|x| err(&p, x.into()))?;
                    let st = nix::sys::stat::fstat(sub.as_fd()).map_err(|x| err(&p, x.into()))?;
                    if st.st_mode & 0o7777 != e.mode {
                        diff.push(format!("mode differs in the copy: {}", shown(&p)));
                    }
                    check_dir(sub.as_fd(), &p, tree, children, diff)?;
                }
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}
