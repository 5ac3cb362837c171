//! Compiled seccomp filters kept between runs. Parsing and resolving a profile cost ~0.3 ms of the
//! supervisor's CPU at every start. That CPU is one PID 1 needs: the RCU grace period of its old
//! root's detach waited for it. With the cache a start takes 0.91× the time (docs/BENCHMARKS.md).
//!
//! An entry is named by a hash of everything the filter comes from:
//! - the seccomp spec: profile text, mode, `--allow-ptrace`;
//! - whether denials are notified;
//! - the architecture;
//! - the nucleus executable itself (`cache::hash_identity`: device, inode, size, times), so a
//!   rebuilt nucleus never loads what another build compiled.
//!
//! An entry is written to a temporary file and renamed into place, and never changes. A missing
//! or unreadable entry means compiling, as without a cache; so does any failure to store one, and
//! so does a cache directory that anyone but this user could write.

use std::borrow::Cow;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::cache::is_private;
use crate::seccomp::Policy;
use crate::spec::{CompiledFilter, SeccompMode, SeccompSpec};

/// Bump when what an entry holds changes shape.
const LAYOUT_VERSION: &str = "filter-cache-1";

/// Entries older than this are removed when a new one is stored: they belong to other builds or
/// profiles, and at worst a start compiles again.
const KEEP: Duration = Duration::from_secs(24 * 60 * 60);

/// A compiled filter with what the audit log says about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compiled {
    /// The program PID 1 installs for the workload.
    pub filter: CompiledFilter,
    /// What the profile's resolution warned about.
    pub warnings: Vec<String>,
    /// The resolved policy's digest (`Policy::digest`).
    pub digest: String,
}

/// The cache entry's name for `spec` compiled with `notify`, or None when the executable cannot
/// be identified (then nothing is cached).
pub fn entry_name(spec: &SeccompSpec, notify: bool, exe: &Path) -> Option<String> {
    let meta = fs::metadata(exe).ok()?;
    let mut hasher = blake3::Hasher::new();
    hasher.update(LAYOUT_VERSION.as_bytes());
    crate::cache::hash_identity(&mut hasher, &meta);
    hasher.update(std::env::consts::ARCH.as_bytes());
    hasher.update(&[u8::from(notify)]);
    // Every field, named so that a new one cannot be forgotten here. Fed as they are, not as JSON:
    // escaping the 20 KB default profile cost ~0.1 ms of every start.
    let SeccompSpec {
        mode,
        profile_json,
        profile_source,
        allow_ptrace,
    } = spec;
    let mode: &[u8] = match mode {
        SeccompMode::Enforce => b"enforce",
        SeccompMode::Trace => b"trace",
    };
    for field in [mode, profile_source.as_bytes(), &[u8::from(*allow_ptrace)]] {
        hasher.update(&field.len().to_le_bytes());
        hasher.update(field);
    }
    // The embedded default profile is part of the executable, whose identity is in the name
    // already: hashing its 20 KB again cost ~30 µs of every start.
    let embedded = matches!(profile_json, Cow::Borrowed(text) if std::ptr::eq(*text, Policy::default_profile_json()));
    if embedded {
        hasher.update(b"embedded default profile");
    } else {
        hasher.update(profile_json.as_bytes());
    }
    Some(hasher.finalize().to_hex()[..32].to_owned())
}

/// The entry `name` under `root` if it holds a filter, else what `compile` returns, stored there
/// for the next start. The flag says whether the filter came from the cache.
pub fn load_or_compile<E>(
    root: Option<&Path>,
    name: Option<&str>,
    compile: impl FnOnce() -> Result<Compiled, E>,
) -> Result<(Compiled, bool), E> {
    // A filter is loaded only from a directory nobody else can write (`cache::is_private`).
    let path = root
        .filter(|root| is_private(root))
        .zip(name)
        .map(|(root, name)| root.join(name));
    if let Some(cached) = path.as_deref().and_then(load) {
        return Ok((cached, true));
    }
    let compiled = compile()?;
    if let (Some(root), Some(name)) = (root, name) {
        // Best effort: a start that cannot store its filter only compiles it again next time.
        let _ = store(root, name, &compiled);
    }
    Ok((compiled, false))
}

fn load(path: &Path) -> Option<Compiled> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

fn store(root: &Path, name: &str, compiled: &Compiled) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)?;
    if !is_private(root) {
        return Err(io::Error::other(format!(
            "{} can be written by others",
            root.display()
        )));
    }
    let tmp = root.join(format!(".tmp-{name}-{}", std::process::id()));
    let written = File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut file| file.write_all(&serde_json::to_vec(compiled)?))
        .and_then(|()| fs::rename(&tmp, root.join(name)));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    remove_stale(root, name);
    written
}

/// Remove the entries but `keep` last written over `KEEP` ago.
fn remove_stale(root: &Path, keep: &str) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|written| now.duration_since(written).is_ok_and(|age| age > KEEP));
        if stale && entry.file_name() != keep {
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(profile: &'static str) -> SeccompSpec {
        SeccompSpec {
            mode: SeccompMode::Enforce,
            profile_json: Cow::Borrowed(profile),
            profile_source: "test".to_owned(),
            allow_ptrace: false,
        }
    }

    fn compiled(k: u64) -> Compiled {
        Compiled {
            filter: CompiledFilter {
                program: vec![k],
                notify: true,
            },
            warnings: vec![format!("w{k}")],
            digest: format!("d{k}"),
        }
    }

    #[test]
    fn everything_a_filter_comes_from_names_its_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = dir.path().join("nucleus");
        fs::write(&exe, "v1").expect("write");
        let base = entry_name(&spec("{}"), true, &exe).expect("named");
        assert_eq!(entry_name(&spec("{}"), true, &exe), Some(base.clone()));
        assert_ne!(entry_name(&spec("{ }"), true, &exe), Some(base.clone()));
        // The embedded default, named by the executable's identity rather than its text.
        let default = spec(Policy::default_profile_json());
        let named = entry_name(&default, true, &exe).expect("named");
        assert_eq!(entry_name(&default, true, &exe), Some(named.clone()));
        // Known without reading it: the same text from a file is hashed, and named otherwise.
        let mut copied = default.clone();
        copied.profile_json = Cow::Owned(Policy::default_profile_json().to_owned());
        assert_ne!(entry_name(&copied, true, &exe), Some(named.clone()));
        assert_ne!(named, base);
        assert_ne!(entry_name(&spec("{}"), false, &exe), Some(base.clone()));
        let mut ptrace = spec("{}");
        ptrace.allow_ptrace = true;
        assert_ne!(entry_name(&ptrace, true, &exe), Some(base.clone()));
        let mut trace = spec("{}");
        trace.mode = SeccompMode::Trace;
        assert_ne!(entry_name(&trace, true, &exe), Some(base.clone()));
        // A rebuilt executable (another inode, size or time) names other entries.
        fs::remove_file(&exe).expect("remove");
        fs::write(&exe, "v22").expect("rebuild");
        assert_ne!(entry_name(&spec("{}"), true, &exe), Some(base));
        assert_eq!(
            entry_name(&spec("{}"), true, &dir.path().join("gone")),
            None
        );
    }

    #[test]
    fn a_stored_filter_is_loaded_without_compiling() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("seccomp");
        let first = load_or_compile::<()>(Some(&root), Some("e1"), || Ok(compiled(1)));
        assert_eq!(first, Ok((compiled(1), false)));
        let second = load_or_compile::<()>(Some(&root), Some("e1"), || panic!("compiled again"));
        assert_eq!(second, Ok((compiled(1), true)));
        let names: Vec<_> = fs::read_dir(&root)
            .expect("listed")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["e1"], "no temporary file is left");
    }

    #[test]
    fn an_unreadable_entry_is_compiled_again_and_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("seccomp");
        fs::create_dir(&root).expect("mkdir");
        fs::write(root.join("e1"), "{ truncated").expect("write");
        let got = load_or_compile::<()>(Some(&root), Some("e1"), || Ok(compiled(2)));
        assert_eq!(got, Ok((compiled(2), false)));
        assert_eq!(load(&root.join("e1")), Some(compiled(2)));
    }

    #[test]
    fn without_a_place_or_a_name_it_only_compiles() {
        let none = load_or_compile::<()>(None, Some("e1"), || Ok(compiled(3)));
        assert_eq!(none, Ok((compiled(3), false)));
        let dir = tempfile::tempdir().expect("tempdir");
        let unnamed = load_or_compile::<()>(Some(dir.path()), None, || Ok(compiled(3)));
        assert_eq!(unnamed, Ok((compiled(3), false)));
        assert_eq!(fs::read_dir(dir.path()).expect("listed").count(), 0);
        let failed = load_or_compile(Some(dir.path()), Some("e1"), || Err("broken profile"));
        assert_eq!(failed, Err("broken profile"));
        assert_eq!(fs::read_dir(dir.path()).expect("listed").count(), 0);
    }

    #[test]
    fn a_directory_others_can_write_is_neither_read_nor_written() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("seccomp");
        load_or_compile::<()>(Some(&root), Some("e1"), || Ok(compiled(5))).expect("stored");
        fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).expect("chmod");
        // Someone else's entry under that name is not loaded, and ours is not stored there.
        fs::write(
            root.join("e2"),
            serde_json::to_vec(&compiled(6)).expect("json"),
        )
        .expect("plant");
        let got = load_or_compile::<()>(Some(&root), Some("e2"), || Ok(compiled(7)));
        assert_eq!(got, Ok((compiled(7), false)));
        assert_eq!(load(&root.join("e2")), Some(compiled(6)), "left as it was");
        let again = load_or_compile::<()>(Some(&root), Some("e1"), || Ok(compiled(8)));
        assert_eq!(again, Ok((compiled(8), false)), "not even our own entry");
    }

    #[test]
    fn storing_removes_only_entries_written_long_ago() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("seccomp");
        fs::create_dir(&root).expect("mkdir");
        for name in ["old", "recent"] {
            fs::write(root.join(name), "{}").expect("write");
        }
        let long_ago = SystemTime::now() - KEEP - Duration::from_secs(60);
        File::options()
            .write(true)
            .open(root.join("old"))
            .and_then(|f| f.set_modified(long_ago))
            .expect("age it");
        load_or_compile::<()>(Some(&root), Some("new"), || Ok(compiled(4))).expect("stored");
        let mut names: Vec<_> = fs::read_dir(&root)
            .expect("listed")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        names.sort();
        assert_eq!(names, ["new", "recent"]);
    }
}
