//! Shared helpers of the context integration tests.
//!
//! Tests that need namespaces re-execute their own test binary (one test, `--exact`) under
//! `unshare`/`setpriv`, because a multi-threaded test process may neither fork freely nor create a
//! user namespace. The same test function is both sides: the parent spawns and checks the exit status,
//! the child (recognised by an environment variable) does the real work and asserts.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nucleus::spec::{ContextMode, ContextSpec};

const CHILD_VAR: &str = "NUCLEUS_CTX_TEST_CHILD";
const DIR_VAR: &str = "NUCLEUS_CTX_TEST_DIR";

/// How the child process is isolated.
#[derive(Clone, Copy, Debug)]
pub enum Isolation {
    /// Rootless: uid 65534 on the host, root in a fresh user namespace, own mount namespace.
    Rootless,
    /// Host root with only a private mount namespace (initial user namespace).
    RootMountNs,
    /// Plain uid 65534, no namespaces.
    Nobody,
}

/// The working directory of a child test: `host/`, `scratch/`, `target/`, `dest/` below it.
pub struct Dirs {
    /// Root of the test's directories.
    pub root: PathBuf,
}

impl Dirs {
    /// The host context directory.
    pub fn host(&self) -> PathBuf {
        self.root.join("host")
    }
    /// The empty scratch directory for the tmpfs.
    pub fn scratch(&self) -> PathBuf {
        self.root.join("scratch")
    }
    /// The empty directory that becomes /context.
    pub fn target(&self) -> PathBuf {
        self.root.join("target")
    }
    /// A save destination outside the context.
    pub fn dest(&self) -> PathBuf {
        self.root.join("dest")
    }
}

/// In the child: the dirs the parent prepared; None in the parent.
pub fn child_dirs(name: &str) -> Option<Dirs> {
    if std::env::var(CHILD_VAR).ok().as_deref() != Some(name) {
        return None;
    }
    let root = PathBuf::from(std::env::var(DIR_VAR).expect("parent sets the dir variable"));
    Some(Dirs { root })
}

/// In the parent: a fresh tree of dirs, filled by `fill_host`, handed to a child running test `name`.
pub fn run_child(name: &str, iso: Isolation, fill_host: impl FnOnce(&Path)) -> tempfile::TempDir {
    run_child_with(name, iso, fill_host, |_| {})
}

/// Like `run_child`, with `post_chown` run on the host dir after ownership was handed to uid 65534.
pub fn run_child_with(
    name: &str,
    iso: Isolation,
    fill_host: impl FnOnce(&Path),
    post_chown: impl FnOnce(&Path),
) -> tempfile::TempDir {
    let tmp = tempfile::Builder::new()
        .prefix("nucleus-ctx-")
        .tempdir()
        .expect("tempdir");
    let dirs = Dirs {
        root: tmp.path().to_path_buf(),
    };
    for d in [dirs.host(), dirs.scratch(), dirs.target()] {
        std::fs::create_dir(&d).expect("mkdir");
    }
    fill_host(&dirs.host());
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    if !matches!(iso, Isolation::RootMountNs) {
        chown_tree(tmp.path(), 65534, 65534);
    }
    post_chown(&dirs.host());
    let exe = std::env::current_exe().expect("current exe");
    let harness = [
        exe.to_str().expect("utf-8 exe path"),
        "--exact",
        name,
        "--nocapture",
        "--test-threads=1",
    ];
    let mut cmd = match iso {
        Isolation::Rootless => {
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
                "unshare",
                "--user",
            ]);
            c.args([
                "--map-root-user",
                "--mount",
                "--propagation",
                "private",
                "--",
            ]);
            c
        }
        Isolation::RootMountNs => {
            let mut c = Command::new("unshare");
            c.args(["--mount", "--propagation", "private", "--"]);
            c
        }
        Isolation::Nobody => {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
            c
        }
    };
    let out = cmd
        .args(harness)
        .env(CHILD_VAR, name)
        .env(DIR_VAR, tmp.path())
        .output()
        .expect("spawn child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child {name} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    tmp
}

/// `chown -R` without following symlinks.
pub fn chown_tree(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).expect("lchown");
    let meta = std::fs::symlink_metadata(path).expect("lstat");
    if meta.is_dir() {
        for e in std::fs::read_dir(path).expect("readdir") {
            chown_tree(&e.expect("entry").path(), uid, gid);
        }
    }
}

/// A small ordinary project tree.
pub fn fill_project(host: &Path) {
    std::fs::create_dir_all(host.join("src/deep/er")).expect("mkdir");
    std::fs::write(host.join("README.md"), b"# project\n").expect("write");
    std::fs::write(host.join("src/main.rs"), b"fn main() {}\n").expect("write");
    std::fs::write(host.join("src/lib.rs"), b"pub fn f() {}\n").expect("write");
    std::fs::write(host.join("src/deep/er/data.bin"), vec![7u8; 100_000]).expect("write");
    std::os::unix::fs::symlink("main.rs", host.join("src/link")).expect("symlink");
}

/// A context spec for tests.
pub fn spec(mode: ContextMode, tmpfs_size_bytes: u64) -> ContextSpec {
    ContextSpec {
        mode,
        writable: false,
        tmpfs_size_bytes,
        expect_root_hash: None,
        expect_manifest: None,
        save_changes: None,
    }
}

/// Root hash of a tree as `nucleus::context` computes it.
pub fn root_hash(dir: &Path) -> String {
    let f = std::fs::File::open(dir).expect("open tree");
    nucleus::context::snapshot::hash_tree(std::os::fd::AsFd::as_fd(&f))
        .expect("hash tree")
        .root_hash()
}

/// Paths of a change list.
pub fn paths(list: &[nucleus::context::Change]) -> Vec<&str> {
    list.iter().map(|c| c.path.as_str()).collect()
}

/// Links a hostile tree carries, as (name, target): out of the tree, absolute, a loop. Both context
/// modes must show them as links and never follow them.
const HOSTILE_LINKS: [(&str, &str); 3] = [
    ("escape", "../../../../../../etc/passwd"),
    ("abs", "/etc/shadow"),
    ("loop", "."),
];

/// Put the `HOSTILE_LINKS` into `dir`.
pub fn make_hostile_links(dir: &Path) {
    for (name, target) in HOSTILE_LINKS {
        std::os::unix::fs::symlink(target, dir.join(name)).expect("symlink");
    }
}

/// The `HOSTILE_LINKS` are in `dir` as they were made.
pub fn assert_hostile_links_kept(dir: &Path) {
    for (name, target) in HOSTILE_LINKS {
        assert_eq!(
            std::fs::read_link(dir.join(name)).expect("readlink"),
            Path::new(target)
        );
    }
}
