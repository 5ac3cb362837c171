//! The per-file engine of snapshots and manifests: parallel workers, one read per source file.
//!
//! Every source file is opened with `openat2` beneath its directory (itself opened beneath the root:
//! no symlinks, no magic links, no mount crossing) and read exactly once; the bytes feed BLAKE3 and
//! the copy's write from the same buffer. `fstat` before and after (size, mtime, ctime, inode)
//! catches a file that changes meanwhile. Each chunk of the copy is re-read from tmpfs and compared
//! with the hashed bytes right after it is written.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::sys::time::TimeSpec;

use crate::context::error::ContextError;
use crate::context::pathenc;
use crate::context::walk::{EntryKind, Tree, WalkEntry, open_beneath, split_path, walk_error};

const BUF_SIZE: usize = 256 * 1024;
/// Files per work unit: large enough to amortise two directory opens, small enough to balance.
const UNIT_FILES: usize = 64;

/// Worker threads: one per core, capped because tmpfs writes stop scaling beyond a few.
pub fn worker_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8)
}

/// A batch of files of one directory: its path and the indices of the files in the tree.
struct Unit<'t> {
    dir: &'t [u8],
    files: Vec<usize>,
    bytes: u64,
}

/// Splits the files of `tree` into per-directory batches, biggest first, so each worker opens a
/// directory once and then resolves a single name per file, and the load balances.
fn units(tree: &Tree) -> Vec<Unit<'_>> {
    let mut by_dir: HashMap<&[u8], Vec<usize>> = HashMap::new();
    for (i, e) in tree.entries.iter().enumerate() {
        if e.kind == EntryKind::File {
            by_dir.entry(split_path(&e.path).0).or_default().push(i);
        }
    }
    let mut units = Vec::new();
    for (dir, files) in by_dir {
        for chunk in files.chunks(UNIT_FILES) {
            let bytes = chunk.iter().map(|i| tree.entries[*i].size).sum();
            units.push(Unit {
                dir,
                files: chunk.to_vec(),
                bytes,
            });
        }
    }
    units.sort_by_key(|u| std::cmp::Reverse(u.bytes));
    units
}

/// Hashes every file of `tree` below `src` on all workers, copying it below `dst` when given.
/// Returns one slot per tree entry (None for non-files); stops at the first error.
pub fn for_each_file(
    tree: &Tree,
    src: BorrowedFd<'_>,
    dst: Option<BorrowedFd<'_>>,
) -> Result<Vec<Option<[u8; 32]>>, ContextError> {
    let units = units(tree);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<ContextError>> = Mutex::new(None);
    let results: Mutex<Vec<Option<[u8; 32]>>> = Mutex::new(vec![None; tree.entries.len()]);
    let run_unit = |unit: &Unit<'_>, buf: &mut Buffers, out: &mut Vec<(usize, [u8; 32])>| {
        let shown = || pathenc::encode(unit.dir);
        let src_dir = open_dir_beneath(src, unit.dir).map_err(|e| walk_error(shown(), e.into()))?;
        let dst_dir = match dst {
            Some(d) => Some(
                open_dir_beneath(d, unit.dir).map_err(|e| ContextError::Copy(shown(), e.into()))?,
            ),
            None => None,
        };
        for &idx in &unit.files {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let hash = transfer(
                src_dir.as_fd(),
                dst_dir.as_ref().map(|d| d.as_fd()),
                &tree.entries[idx],
                buf,
            )?;
            out.push((idx, hash));
        }
        Ok::<(), ContextError>(())
    };
    std::thread::scope(|s| {
        for _ in 0..worker_threads().min(units.len().max(1)) {
            s.spawn(|| {
                let mut buf = Buffers {
                    data: vec![0u8; BUF_SIZE],
                    check: vec![0u8; BUF_SIZE],
                };
                let mut local = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let Some(unit) = units.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    if let Err(e) = run_unit(unit, &mut buf, &mut local) {
                        stop.store(true, Ordering::Relaxed);
                        failure
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(e);
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

/// Opens directory `dir` (empty: the root itself) beneath `root`, never through a symlink.
fn open_dir_beneath(root: BorrowedFd<'_>, dir: &[u8]) -> nix::Result<OwnedFd> {
    let path: &[u8] = if dir.is_empty() { b"." } else { dir };
    open_beneath(root, path, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
}

/// Reads one source file once, hashing it and (when `dst_dir` is given) writing the same bytes to the
/// copy, each chunk read back and compared.
fn transfer(
    src_dir: BorrowedFd<'_>,
    dst_dir: Option<BorrowedFd<'_>>,
    e: &WalkEntry,
    bufs: &mut Buffers,
) -> Result<[u8; 32], ContextError> {
    let Buffers { data: buf, check } = bufs;
    let shown = || pathenc::encode(&e.path);
    let name = split_path(&e.path).1;
    // O_NONBLOCK: if the file was swapped for a fifo after the walk, the open must not hang.
    let fd = open_beneath(src_dir, name, OFlag::O_RDONLY | OFlag::O_NONBLOCK)
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
    let mut output = dst_dir.map(|d| create_copy(d, name, e)).transpose()?;
    let mut hasher = blake3::Hasher::new();
    let mut total = 0u64;
    // Stop at the size seen by fstat instead of reading to EOF: a file that grew is caught by the
    // fstat comparison below, and the saved read() per file matters with tens of thousands of files.
    while total < e.size {
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
            verify_chunk(out, total, &buf[..n], check, e)?;
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
    let hash = *hasher.finalize().as_bytes();
    if let Some(out) = output {
        let err = |x: nix::Error| ContextError::Copy(shown(), x.into());
        if e.mode & 0o7000 != 0 || e.mode & umask() != 0 {
            nix::sys::stat::fchmod(out.as_fd(), Mode::from_bits_truncate(e.mode)).map_err(err)?;
        }
        let mtime = TimeSpec::new(e.mtime.0, e.mtime.1);
        nix::sys::stat::futimens(out.as_fd(), &mtime, &mtime).map_err(err)?;
        let st = nix::sys::stat::fstat(out.as_fd()).map_err(err)?;
        if u64::try_from(st.st_size).ok() != Some(e.size) || st.st_mode & 0o7777 != e.mode {
            return Err(ContextError::VerifyFailed(vec![format!(
                "size or mode of the copy differs: {}",
                shown()
            )]));
        }
    }
    Ok(hash)
}

/// Creates the copy with its final permission bits (set-id bits and umask are fixed up later).
fn create_copy(dst_dir: BorrowedFd<'_>, name: &[u8], e: &WalkEntry) -> Result<File, ContextError> {
    let flags =
        OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(
        dst_dir,
        name,
        flags,
        Mode::from_bits_truncate(e.mode & 0o777),
    )
    .map_err(|err| ContextError::Copy(pathenc::encode(&e.path), err.into()))?;
    Ok(File::from(fd))
}

/// Per-worker buffers: `data` carries the source bytes, `check` the bytes re-read from the copy.
struct Buffers {
    data: Vec<u8>,
    check: Vec<u8>,
}

/// Re-reads the chunk just written at `offset` from the tmpfs and compares it with the bytes that
/// were hashed into the manifest. Byte equality with the hashed bytes is exactly "the copy hashes to
/// the manifest's hash", without a second BLAKE3 pass; the chunk is still hot in cache.
fn verify_chunk(
    out: &File,
    offset: u64,
    written: &[u8],
    check: &mut [u8],
    e: &WalkEntry,
) -> Result<(), ContextError> {
    use std::os::unix::fs::FileExt;
    let back = &mut check[..written.len()];
    out.read_exact_at(back, offset)
        .map_err(|err| ContextError::Copy(pathenc::encode(&e.path), err))?;
    if back != written {
        return Err(ContextError::VerifyFailed(vec![format!(
            "content of the copy differs at byte {offset}: {}",
            pathenc::encode(&e.path)
        )]));
    }
    Ok(())
}

/// The process umask, read without changing it (`umask(2)` would race with other threads).
fn umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Umask:"))
                    .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
            })
            .unwrap_or(0o777)
    })
}
