//! Change report edge cases computed, as the supervisor does, by an unprivileged process.

mod context_support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use context_support::{Isolation, child_dirs, paths, run_child_with};
use nucleus::context::change_report;

fn fill(host: &Path) {
    fs::write(host.join("secret"), b"same").expect("write");
    fs::write(host.join("kept"), b"k").expect("write");
}

/// The "upper" is `scratch/`: what a workload left behind, locked with chmod 000.
fn lock_upper(host: &Path) {
    let upper = host.parent().expect("parent").join("scratch");
    fs::write(upper.join("secret"), b"same").expect("write");
    fs::set_permissions(upper.join("secret"), fs::Permissions::from_mode(0o000)).expect("chmod");
    fs::create_dir(upper.join("locked")).expect("mkdir");
    fs::write(upper.join("locked/inner"), b"i").expect("write");
    context_support::chown_tree(&upper, 65534, 65534);
    fs::set_permissions(upper.join("locked"), fs::Permissions::from_mode(0o000)).expect("chmod");
}

#[test]
fn locked_entries_in_upper_are_reported_not_fatal() {
    let Some(d) = child_dirs("locked_entries_in_upper_are_reported_not_fatal") else {
        let name = "locked_entries_in_upper_are_reported_not_fatal";
        drop(run_child_with(name, Isolation::Nobody, fill, lock_upper));
        return;
    };
    let upper: std::os::fd::OwnedFd = fs::File::open(d.scratch()).expect("open upper").into();
    let report = change_report(&upper, &d.host()).expect("report despite locked entries");
    assert_eq!(paths(&report.created), ["locked/"], "{report}");
    assert_eq!(paths(&report.modified), ["secret"], "{report}");
    assert!(report.deleted.is_empty(), "{report}");
}
