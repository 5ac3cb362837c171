//! Shared helpers for integration tests: run the real binary, as root or as an unprivileged user.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The binary under test.
pub fn nucleus_bin() -> &'static str {
    env!("CARGO_BIN_EXE_nucleus")
}

/// The unprivileged account rootless tests run as (created on first use).
pub const TEST_USER: &str = "nucleus-test";

/// uid and gid of `TEST_USER`, creating the account if needed.
pub fn test_user() -> (u32, u32) {
    static USER: OnceLock<(u32, u32)> = OnceLock::new();
    *USER.get_or_init(|| {
        let lookup = || {
            let out = Command::new("id").args(["-u", TEST_USER]).output().ok()?;
            let uid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
            let out = Command::new("id").args(["-g", TEST_USER]).output().ok()?;
            Some((
                uid,
                String::from_utf8_lossy(&out.stdout).trim().parse().ok()?,
            ))
        };
        if let Some(ids) = lookup() {
            return ids;
        }
        // Parallel test binaries may race to create it; a failure here is fine if it now exists.
        let _ = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/bin/sh",
                TEST_USER,
            ])
            .status();
        lookup().expect("creating the unprivileged test user with useradd")
    })
}

/// Who runs the binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum As {
    /// root (the CI user).
    Root,
    /// The unprivileged `TEST_USER`.
    User,
}

/// A scratch directory usable by both root and the test user, removed on drop.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// A new scratch dir (world-accessible, owned by the test user when `who` is `User`).
    pub fn new(who: As) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("nucleus-it-")
            .tempdir()
            .expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        if who == As::User {
            let (uid, gid) = test_user();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        }
        Scratch { dir }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Create a subdirectory owned like the scratch dir.
    pub fn subdir(&self, name: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::create_dir_all(&p).expect("mkdir");
        let meta = std::fs::metadata(self.path()).expect("stat");
        use std::os::unix::fs::MetadataExt;
        std::os::unix::fs::chown(&p, Some(meta.uid()), Some(meta.gid())).expect("chown");
        p
    }

    /// Write a file owned like the scratch dir.
    pub fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let p = self.path().join(rel);
        std::fs::write(&p, contents).expect("write");
        let meta = std::fs::metadata(self.path()).expect("stat");
        use std::os::unix::fs::MetadataExt;
        std::os::unix::fs::chown(&p, Some(meta.uid()), Some(meta.gid())).expect("chown");
        p
    }
}

/// A `nucleus` command with private XDG dirs under `home` (config, state, data), run as `who`.
pub fn nucleus(who: As, home: &Path) -> Command {
    let mut cmd = match who {
        As::Root => Command::new(nucleus_bin()),
        As::User => Command::new(bin_for_others()),
    };
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_DATA_HOME", home.join("data"))
        .stdin(Stdio::null());
    if who == As::User {
        let (uid, gid) = test_user();
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// The binary at a path the unprivileged user can reach: the build's own path when every ancestor is
/// searchable by others, else a copy in the temp dir (a checkout may live under a private directory).
pub fn bin_for_others() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let built = Path::new(nucleus_bin());
        let reachable = built.ancestors().skip(1).all(|dir| {
            std::fs::metadata(dir)
                .map(|m| m.permissions().mode() & 0o001 != 0)
                .unwrap_or(false)
        });
        if reachable {
            return built.to_path_buf();
        }
        let dir = std::env::temp_dir().join(format!("nucleus-it-bin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let copy = dir.join("nucleus");
        std::fs::copy(built, &copy).expect("copy the binary");
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        copy
    })
    .clone()
}

/// Run `nucleus run DIR [extra…] -- sh -c SCRIPT` and return its output.
pub fn run_sh(who: As, scratch: &Scratch, extra: &[&str], script: &str) -> Output {
    let ctx = scratch.subdir("ctx");
    nucleus(who, scratch.path())
        .arg("run")
        .arg(&ctx)
        .args(extra)
        .args(["--", "/bin/sh", "-c", script])
        .output()
        .expect("running nucleus")
}

/// stdout as text, with stderr shown when an assertion fails.
pub fn stdout_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A one-line description of an Output for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A shell that waits on stdin before running `script`, so that it can be moved into a cgroup first
/// (`release` starts it). Its output is dropped: a fork bomb's "Cannot fork" lines are expected.
pub fn held(script: &str) -> std::process::Child {
    Command::new("sh")
        .arg("-c")
        .arg(format!("read _ ; {script}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sh")
}

/// Let a `held` shell run its script.
pub fn release(child: &mut std::process::Child) {
    use std::io::Write;
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(b"go\n").expect("release");
}
