//! Pinning: `nucleus manifest`, expected root hash and expected manifest, option conflicts.

mod context_support;

use std::fs;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;

use context_support::{Isolation, child_dirs, fill_project, root_hash, run_child, spec};
use nucleus::context::{ContextError, Manifest, prepare, validate, verify_pins};
use nucleus::spec::ContextMode;

fn manifest_of(dir: &Path) -> Manifest {
    let f = fs::File::open(dir).expect("open");
    nucleus::context::snapshot::hash_tree(f.as_fd()).expect("hash")
}

#[test]
fn manifest_command_prints_root_hash_and_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    fill_project(dir.path());
    let bin = env!("CARGO_BIN_EXE_nucleus");
    let out = Command::new(bin)
        .arg("manifest")
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        root_hash(dir.path())
    );

    let out = Command::new(bin)
        .args(["manifest", "--json"])
        .arg(dir.path())
        .output()
        .expect("run");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8 json");
    let parsed = Manifest::from_json(&text).expect("the printed manifest parses back");
    assert_eq!(parsed.root_hash(), root_hash(dir.path()));
    assert_eq!(parsed.entries.len(), 8, "4 files, 3 dirs, 1 symlink");

    let out = Command::new(bin)
        .arg("manifest")
        .arg(dir.path().join("missing"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));
}

#[test]
fn pins_accept_the_right_tree_and_reject_a_one_byte_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    fill_project(dir.path());
    let pinned = manifest_of(dir.path());
    let mut s = spec(ContextMode::Snapshot, 1 << 20);
    s.expect_root_hash = Some(format!("blake3:{}", pinned.root_hash().to_uppercase()));
    s.expect_manifest = Some(pinned.to_json().to_string());
    validate(&s).expect("valid");
    verify_pins(&s, &pinned).expect("the same tree passes");

    fs::write(dir.path().join("src/lib.rs"), b"pub fn f() {};\n").expect("one byte more");
    let changed = manifest_of(dir.path());
    let err = verify_pins(&s, &changed).expect_err("a changed tree is refused");
    match &err {
        ContextError::PinMismatch(lines) => {
            assert_eq!(lines, &["size changed: src/lib.rs (14 -> 15 bytes)"])
        }
        other => panic!("unexpected error {other}"),
    }
    s.expect_manifest = None;
    let err = verify_pins(&s, &changed).expect_err("root hash alone also refuses");
    assert!(err.to_string().contains("root hash is"), "{err}");

    fs::write(dir.path().join("src/lib.rs"), b"pub fn g() {}\n")
        .expect("same size, one byte differs");
    s.expect_manifest = Some(pinned.to_json().to_string());
    let err = verify_pins(&s, &manifest_of(dir.path())).expect_err("refused");
    assert!(
        err.to_string().contains("content changed: src/lib.rs"),
        "{err}"
    );
}

#[test]
fn pinned_snapshot_does_not_start_on_a_different_tree() {
    let Some(d) = child_dirs("pinned_snapshot_does_not_start_on_a_different_tree") else {
        drop(run_child(
            "pinned_snapshot_does_not_start_on_a_different_tree",
            Isolation::Rootless,
            fill_project,
        ));
        return;
    };
    let mut s = spec(ContextMode::Snapshot, 8 << 20);
    s.expect_root_hash = Some(root_hash(&d.host()).replace('a', "b").replace('0', "1"));
    let err = prepare(&s, &d.host(), &d.scratch(), &d.target()).expect_err("pin mismatch");
    assert!(matches!(err, ContextError::PinMismatch(_)), "{err}");
    assert_eq!(
        fs::read_dir(d.target()).expect("ls").count(),
        0,
        "nothing mounted on /context"
    );

    s.expect_root_hash = Some(root_hash(&d.host()));
    let prepared = prepare(&s, &d.host(), &d.scratch(), &d.target()).expect("matching pin starts");
    assert_eq!(prepared.root_hash, s.expect_root_hash);
}

#[test]
fn conflicting_options_are_rejected_before_any_mount() {
    let mut s = spec(ContextMode::Lazy, 1 << 20);
    s.expect_root_hash = Some("00".into());
    assert!(
        matches!(validate(&s), Err(ContextError::Conflict(m)) if m.contains("--context-mode snapshot"))
    );
    let mut s = spec(ContextMode::Snapshot, 1 << 20);
    s.writable = true;
    assert!(matches!(validate(&s), Err(ContextError::Conflict(m)) if m.contains("--writable")));
    let mut s = spec(ContextMode::Snapshot, 1 << 20);
    s.expect_manifest = Some("{not json".into());
    assert!(matches!(validate(&s), Err(ContextError::BadManifest(_))));
    assert!(matches!(
        validate(&spec(ContextMode::Lazy, 0)),
        Err(ContextError::Conflict(_))
    ));
}
