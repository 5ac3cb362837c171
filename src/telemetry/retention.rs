//! Audit log retention keeps the audit directory bounded: each start (`EventSink::open_in`) calls
//! `prune_if_due`, which costs one `stat` of the stamp `.pruned` unless the last prune is an hour
//! old. A prune keeps the newest 1,000 logs and removes those not written for 30 days, but never
//! one a sandbox still writes: every sink holds a shared `flock` on its log (`open_held`), and a
//! log is removed only while its exclusive lock is held (`remove_if_unused`).

use std::ffi::OsStr;
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::fcntl::{Flock, FlockArg};

/// Keep at most this many logs: weeks of runs on a busy machine, yet few enough that the directory
/// and `audit list`, which reads every log, stay small.
pub const KEEP_NEWEST: usize = 1_000;

/// Remove logs not written for this long: a month covers looking back at a recent run; older logs
/// only fill the disk.
pub const MAX_AGE: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Prune at most this often: listing and `stat`ing a thousand logs is too much for every start, and
/// an hour's runs can wait for the next prune.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60 * 60);

/// The stamp in the audit directory whose mtime says when pruning last ran; it does not end in
/// `.jsonl`, so it is never taken for a log.
pub const PRUNE_STAMP: &str = ".pruned";

/// How many audit logs to keep, for how long, and how often to prune; a parameter so tests can
/// use small numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Keep at most this many logs, the newest by mtime.
    pub keep_newest: usize,
    /// Remove logs last modified longer ago than this.
    pub max_age: Duration,
    /// Prune at most once in this long.
    pub prune_every: Duration,
}

impl Retention {
    /// The policy every start applies.
    pub const DEFAULT: Retention = Retention {
        keep_newest: KEEP_NEWEST,
        max_age: MAX_AGE,
        prune_every: PRUNE_EVERY,
    };
}

/// Whether `id` can name an audit log: letters, digits, `-` and `_`, so it never names a path.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Whether a file name is `<valid id>.jsonl`, the only names pruning may remove.
fn is_log_name(name: &OsStr) -> bool {
    name.to_str()
        .and_then(|n| n.strip_suffix(".jsonl"))
        .is_some_and(is_valid_id)
}

/// Open (creating, mode 0600) the log at `path` for appending, with the shared lock that keeps
/// `prune` off it for as long as the file stays open.
pub(crate) fn open_held(path: &Path) -> io::Result<Flock<File>> {
    // A prune may unlink the file between our open and our lock (it holds the exclusive lock only
    // while it unlinks), leaving our lock and our writes on a file no name reaches; then open
    // again. A prune removes a file once, so the second try succeeds.
    for _ in 0..3 {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        let held = Flock::lock(file, FlockArg::LockShared).map_err(|(_, errno)| errno)?;
        if fs::metadata(path).is_ok_and(|named| same_inode(&named, &held)) {
            return Ok(held);
        }
    }
    Err(io::Error::other(
        "the file was removed each time it was opened",
    ))
}

/// Prune `dir` by `policy` when its stamp says the last prune is `prune_every` old; returns whether
/// it pruned. Best effort: errors are ignored, since a start must never fail over old logs.
pub fn prune_if_due(dir: &Path, policy: &Retention) -> bool {
    let stamp = dir.join(PRUNE_STAMP);
    let last = fs::symlink_metadata(&stamp).and_then(|m| m.modified()).ok();
    let now = SystemTime::now();
    if !is_due(last, now, policy.prune_every) {
        return false;
    }
    // Claim this prune before the slow part, so starts racing with this one find a fresh stamp.
    // Without a stamp every start would list the directory, so no stamp, no prune.
    if touch(&stamp, now).is_err() {
        return false;
    }
    prune(dir, policy);
    true
}

/// Due with no stamp, or one `every` old, or `every` ahead of `now` (the clock was set back).
fn is_due(last: Option<SystemTime>, now: SystemTime, every: Duration) -> bool {
    let Some(last) = last else {
        return true;
    };
    let gap = now
        .duration_since(last)
        .unwrap_or_else(|ahead| ahead.duration());
    gap >= every
}

/// Set the stamp's mtime to `now`, creating it; never through a symlink.
fn touch(stamp: &Path, now: SystemTime) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(stamp)?
        .set_modified(now)
}

/// Remove the logs in `dir` that `policy` does not keep and no sandbox holds; returns how many.
pub fn prune(dir: &Path, policy: &Retention) -> usize {
    let Ok(logs) = log_files(dir) else {
        return 0;
    };
    let mut removed = 0;
    for path in expired(logs, policy, SystemTime::now()) {
        if remove_if_unused(&path) {
            removed += 1;
        }
    }
    removed
}

/// The regular files in `dir` named like audit logs, with their mtimes; symlinks, directories and
/// other names are never candidates.
fn log_files(dir: &Path) -> io::Result<Vec<(PathBuf, SystemTime)>> {
    let mut logs = Vec::new();
    for entry in fs::read_dir(dir)?.flatten() {
        if !is_log_name(&entry.file_name()) {
            continue;
        }
        // `DirEntry::metadata` does not follow a symlink, so one is not `is_file`.
        if let Ok(meta) = entry.metadata()
            && meta.is_file()
            && let Ok(modified) = meta.modified()
        {
            logs.push((entry.path(), modified));
        }
    }
    Ok(logs)
}

/// The logs `policy` removes: all but the `keep_newest` newest, and any older than `max_age`.
fn expired(
    mut logs: Vec<(PathBuf, SystemTime)>,
    policy: &Retention,
    now: SystemTime,
) -> Vec<PathBuf> {
    // Newest first; equal mtimes in name order, so the same logs go every time.
    logs.sort_by(|(a, a_time), (b, b_time)| b_time.cmp(a_time).then_with(|| a.cmp(b)));
    logs.into_iter()
        .enumerate()
        .filter(|(rank, (_, modified))| {
            *rank >= policy.keep_newest
                || now
                    .duration_since(*modified)
                    .is_ok_and(|age| age > policy.max_age)
        })
        .map(|(_, (path, _))| path)
        .collect()
}

/// Remove the log at `path` unless a sandbox holds it (its exclusive lock is taken) or the name
/// no longer names the file we locked; returns whether it was removed.
fn remove_if_unused(path: &Path) -> bool {
    // O_NOFOLLOW: a symlink swapped in since the listing is not followed; O_NONBLOCK: nor is a
    // FIFO waited on.
    let Ok(file) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    else {
        return false;
    };
    let Ok(held) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
        return false;
    };
    let still_named =
        fs::symlink_metadata(path).is_ok_and(|named| named.is_file() && same_inode(&named, &held));
    // The lock is held until `held` drops, after the unlink.
    still_named && fs::remove_file(path).is_ok()
}

fn same_inode(named: &Metadata, open: &File) -> bool {
    open.metadata()
        .is_ok_and(|m| m.dev() == named.dev() && m.ino() == named.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_valid_ids_ending_in_jsonl_are_log_names() {
        for name in ["ab-1_Z.jsonl", "x.jsonl"] {
            assert!(is_log_name(OsStr::new(name)), "{name}");
        }
        for name in [
            ".jsonl",
            "a.b.jsonl",
            "a b.jsonl",
            "a.json",
            PRUNE_STAMP,
            "a.jsonl.tmp",
        ] {
            assert!(!is_log_name(OsStr::new(name)), "{name}");
        }
    }

    #[test]
    fn expired_drops_beyond_the_count_and_past_the_age_newest_first() {
        let now = SystemTime::now();
        let minutes = |m: u64| now - Duration::from_secs(60 * m);
        let logs = vec![
            (PathBuf::from("c"), minutes(3)),
            (PathBuf::from("a"), minutes(1)),
            (PathBuf::from("old"), minutes(600)),
            (PathBuf::from("b"), minutes(1)),
            (PathBuf::from("future"), now + Duration::from_secs(60)),
        ];
        let policy = Retention {
            keep_newest: 3,
            max_age: Duration::from_secs(60 * 60),
            prune_every: PRUNE_EVERY,
        };
        let gone = expired(logs, &policy, now);
        // Kept: future, a, b (tie broken by name); c is fourth, old is both fifth and too old.
        assert_eq!(gone, [PathBuf::from("c"), PathBuf::from("old")]);
    }

    #[test]
    fn pruning_is_due_without_a_stamp_or_an_hour_after_it() {
        let now = SystemTime::now();
        let ago = |secs: u64| Some(now - Duration::from_secs(secs));
        assert!(is_due(None, now, PRUNE_EVERY));
        assert!(!is_due(ago(59 * 60), now, PRUNE_EVERY));
        assert!(is_due(ago(60 * 60), now, PRUNE_EVERY));
        let ahead = Some(now + Duration::from_secs(2 * 60 * 60));
        assert!(
            is_due(ahead, now, PRUNE_EVERY),
            "a clock set back does not stop pruning"
        );
    }
}
