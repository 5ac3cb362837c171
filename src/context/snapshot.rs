//! Snapshot: walk, size check, parallel copy with hashing (see `copy`), then verification of the copy.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use nix::sys::stat::{FchmodatFlags, Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;

use crate::context::copy::{self, worker_threads};
use crate::context::error::ContextError;
use crate::context::manifest::{Manifest, ManifestEntry};
use crate::context::pathenc;
use crate::context::verify;
use crate::context::walk::{self, EntryKind, Tree};

/// Timings and totals of one snapshot.
#[derive(Clone, Debug, Default)]
pub struct SnapshotStats {
    /// Stat-only walk of the source.
    pub walk: Duration,
    /// Parallel copy + hash + per-chunk read-back check.
    pub copy: Duration,
    /// Structural check of the copy (names, types, directory modes, link targets).
    pub verify: Duration,
    /// Worker threads used.
    pub threads: usize,
}

/// Walks `root` and hashes every file in parallel: the manifest of the tree as it is now.
pub fn hash_tree(root: BorrowedFd<'_>) -> Result<Manifest, ContextError> {
    let tree = walk::walk(root)?;
    hash_walked(root, &tree)
}

fn hash_walked(root: BorrowedFd<'_>, tree: &Tree) -> Result<Manifest, ContextError> {
    let hashes = copy::for_each_file(tree, root, None)?;
    Ok(build_manifest(tree, hashes))
}

/// Copies the tree at `src` into the empty directory `dst` (on tmpfs), then verifies the copy.
pub fn snapshot(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
) -> Result<(Manifest, SnapshotStats), ContextError> {
    let mut stats = SnapshotStats {
        threads: worker_threads(),
        ..Default::default()
    };
    let t = Instant::now();
    let tree = walk::walk(src)?;
    check_space(dst, &tree)?;
    stats.walk = t.elapsed();

    // Each chunk is verified right after it is written: re-read from the tmpfs and compared with the
    // bytes that were hashed, while its pages are still hot. The pass below then checks the structure.
    let t = Instant::now();
    create_skeleton(dst, &tree)?;
    let hashes = copy::for_each_file(&tree, src, Some(dst))?;
    finish_dirs(dst, &tree)?;
    let manifest = build_manifest(&tree, hashes);
    stats.copy = t.elapsed();

    // Structure: the copy must hold exactly the walked entries with the same types, directory modes
    // and link targets (file content, size and mode were checked per file above), and nothing else.
    let t = Instant::now();
    let diff = verify::verify_structure(dst, &tree)?;
    if !diff.is_empty() {
        return Err(ContextError::VerifyFailed(diff));
    }
    stats.verify = t.elapsed();
    Ok((manifest, stats))
}

/// Refuses, before anything is copied, a tree whose pages or inodes exceed what the tmpfs has free.
fn check_space(dst: BorrowedFd<'_>, tree: &Tree) -> Result<(), ContextError> {
    let st =
        nix::sys::statvfs::fstatvfs(dst).map_err(|e| ContextError::Copy(".".into(), e.into()))?;
    let available = st.blocks_available() as u64 * st.fragment_size() as u64;
    let inodes_free = st.files_available() as u64;
    let long_links = tree
        .entries
        .iter()
        .filter(|e| e.target.as_ref().is_some_and(|t| t.len() >= 128))
        .count() as u64;
    let needed = tree.page_bytes() + long_links * 4096;
    let inodes = tree.entries.len() as u64;
    if needed > available || inodes > inodes_free {
        return Err(ContextError::TooLarge {
            needed,
            available,
            inodes,
            inodes_free,
        });
    }
    Ok(())
}

fn create_skeleton(dst: BorrowedFd<'_>, tree: &Tree) -> Result<(), ContextError> {
    for e in &tree.entries {
        let shown = || pathenc::encode(&e.path);
        match e.kind {
            // Owner-writable until finish_dirs so read-only source directories can still be filled.
            EntryKind::Dir => {
                nix::sys::stat::mkdirat(dst, e.path.as_slice(), Mode::from_bits_truncate(0o700))
                    .map_err(|err| ContextError::Copy(shown(), err.into()))?
            }
            EntryKind::Symlink => {
                let target = e.target.as_deref().unwrap_or_default();
                nix::unistd::symlinkat(target, dst, e.path.as_slice())
                    .map_err(|err| ContextError::Copy(shown(), err.into()))?;
            }
            EntryKind::File => {}
        }
    }
    Ok(())
}

/// Sets directory modes and mtimes deepest-first, after their contents exist.
fn finish_dirs(dst: BorrowedFd<'_>, tree: &Tree) -> Result<(), ContextError> {
    for e in tree
        .entries
        .iter()
        .rev()
        .filter(|e| e.kind == EntryKind::Dir)
    {
        let err = |x: nix::Error| ContextError::Copy(pathenc::encode(&e.path), x.into());
        let mtime = TimeSpec::new(e.mtime.0, e.mtime.1);
        nix::sys::stat::utimensat(
            dst,
            e.path.as_slice(),
            &mtime,
            &mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(err)?;
        nix::sys::stat::fchmodat(
            dst,
            e.path.as_slice(),
            Mode::from_bits_truncate(e.mode),
            FchmodatFlags::FollowSymlink,
        )
        .map_err(err)?;
    }
    Ok(())
}

fn build_manifest(tree: &Tree, mut hashes: Vec<Option<[u8; 32]>>) -> Manifest {
    let entries = tree
        .entries
        .iter()
        .zip(hashes.drain(..))
        .map(|(e, hash)| ManifestEntry {
            path: e.path.clone(),
            kind: e.kind,
            mode: e.mode,
            size: e.size,
            hash,
            target: e.target.clone(),
        })
        .collect();
    Manifest::new(entries, tree.skipped.clone())
}
