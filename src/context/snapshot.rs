//! Snapshot: copy a tree into tmpfs with parallel workers, hashing while copying, then verify the copy.
//!
//! Every source file is opened beneath the root with `openat2` (no symlinks, no mount crossing) and
//! read exactly once; the bytes feed BLAKE3 and the destination write from the same buffer. `fstat`
//! before and after each copy (size, mtime, ctime, inode) catches a file that changes meanwhile.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::stat::{FchmodatFlags, Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;

use crate::context::error::ContextError;
use crate::context::manifest::{Manifest, ManifestEntry};
use crate::context::pathenc;
use crate::context::walk::{self, EntryKind, Tree, WalkEntry, open_beneath, walk_error};

const BUF_SIZE: usize = 256 * 1024;

/// Timings and totals of one snapshot.
#[derive(Clone, Debug, Default)]
pub struct SnapshotStats {
    /// Stat-only walk of the source.
    pub walk: Duration,
    /// Parallel copy + hash.
    pub copy: Duration,
    /// Re-walk and re-hash of the copy.
    pub verify: Duration,
    /// Worker threads used.
    pub threads: usize,
}

/// Worker threads: one per core, capped because tmpfs writes stop scaling beyond a few.
pub fn worker_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8)
}

/// Walks `root` and hashes every file in parallel: the manifest of the tree as it is now.
pub fn hash_tree(root: BorrowedFd<'_>) -> Result<Manifest, ContextError> {
    let tree = walk::walk(root)?;
    hash_walked(root, &tree)
}

fn hash_walked(root: BorrowedFd<'_>, tree: &Tree) -> Result<Manifest, ContextError> {
    let hashes = for_each_file(tree, |buf, e| transfer(root, None, e, buf))?;
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

    let t = Instant::now();
    create_skeleton(dst, &tree)?;
    let hashes = for_each_file(&tree, |buf, e| transfer(src, Some(dst), e, buf))?;
    finish_dirs(dst, &tree)?;
    let manifest = build_manifest(&tree, hashes);
    stats.copy = t.elapsed();

    // Verification re-reads the copy through the same walker and hasher: anything the copy got wrong,
    // or anything added to it, shows up as a manifest difference.
    let t = Instant::now();
    let copy = hash_tree(dst)?;
    let diff = copy.diff(&manifest);
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

/// Runs `work` on every file of `tree` on all workers, largest files first so the load balances.
/// Returns one slot per tree entry (None for non-files); stops at the first error.
fn for_each_file<F>(tree: &Tree, work: F) -> Result<Vec<Option<[u8; 32]>>, ContextError>
where
    F: Fn(&mut Vec<u8>, &WalkEntry) -> Result<[u8; 32], ContextError> + Sync,
{
    let mut order: Vec<usize> = (0..tree.entries.len())
        .filter(|i| tree.entries[*i].kind == EntryKind::File)
        .collect();
    order.sort_by_key(|i| std::cmp::Reverse(tree.entries[*i].size));
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<ContextError>> = Mutex::new(None);
    let results: Mutex<Vec<Option<[u8; 32]>>> = Mutex::new(vec![None; tree.entries.len()]);
    std::thread::scope(|s| {
        for _ in 0..worker_threads().min(order.len().max(1)) {
            s.spawn(|| {
                let mut buf = vec![0u8; BUF_SIZE];
                let mut local = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let Some(&idx) = order.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    match work(&mut buf, &tree.entries[idx]) {
                        Ok(h) => local.push((idx, h)),
                        Err(e) => {
                            stop.store(true, Ordering::Relaxed);
                            failure
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert(e);
                        }
                    }
                }
                let mut all = results.lock().unwrap_or_else(|p| p.into_inner());
                for (idx, h) in local {
                    all[idx] = Some(h);
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(results.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// Reads one source file once, hashing it and (when `dst` is given) writing the same bytes to the copy.
fn transfer(
    src: BorrowedFd<'_>,
    dst: Option<BorrowedFd<'_>>,
    e: &WalkEntry,
    buf: &mut [u8],
) -> Result<[u8; 32], ContextError> {
    let shown = || pathenc::encode(&e.path);
    // O_NONBLOCK: if the file was swapped for a fifo after the walk, the open must not hang.
    let fd = open_beneath(src, &e.path, OFlag::O_RDONLY | OFlag::O_NONBLOCK)
        .map_err(|err| walk_error(shown(), err.into()))?;
    let mut input = File::from(fd);
    let before = input
        .metadata()
        .map_err(|err| ContextError::Walk(shown(), err))?;
    if !before.is_file()
        || before.ino() != e.ino
        || before.len() != e.size
        || (before.mtime(), before.mtime_nsec()) != e.mtime
    {
        return Err(ContextError::ChangedDuringCopy(
            shown(),
            "changed between the walk and the copy",
        ));
    }
    let mut output = match dst {
        Some(d) => {
            let flags = OFlag::O_WRONLY
                | OFlag::O_CREAT
                | OFlag::O_EXCL
                | OFlag::O_NOFOLLOW
                | OFlag::O_CLOEXEC;
            let fd =
                nix::fcntl::openat(d, e.path.as_slice(), flags, Mode::from_bits_truncate(0o600))
                    .map_err(|err| ContextError::Copy(shown(), err.into()))?;
            Some(File::from(fd))
        }
        None => None,
    };
    let mut hasher = blake3::Hasher::new();
    let mut total = 0u64;
    loop {
        let n = match input.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(walk_error(shown(), err)),
        };
        hasher.update(&buf[..n]);
        if let Some(out) = output.as_mut() {
            out.write_all(&buf[..n])
                .map_err(|err| ContextError::Copy(shown(), err))?;
        }
        total += n as u64;
    }
    let after = input
        .metadata()
        .map_err(|err| ContextError::Walk(shown(), err))?;
    let same = after.len() == before.len()
        && after.ino() == before.ino()
        && (after.mtime(), after.mtime_nsec()) == (before.mtime(), before.mtime_nsec())
        && (after.ctime(), after.ctime_nsec()) == (before.ctime(), before.ctime_nsec());
    if !same || total != e.size {
        return Err(ContextError::ChangedDuringCopy(
            shown(),
            "modified while it was read",
        ));
    }
    if let Some(out) = output {
        let err = |x: nix::Error| ContextError::Copy(shown(), x.into());
        nix::sys::stat::fchmod(out.as_fd(), Mode::from_bits_truncate(e.mode)).map_err(err)?;
        let mtime = TimeSpec::new(e.mtime.0, e.mtime.1);
        nix::sys::stat::futimens(out.as_fd(), &mtime, &mtime).map_err(err)?;
    }
    Ok(*hasher.finalize().as_bytes())
}
