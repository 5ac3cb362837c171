//! Rootless without a delegated subtree: no cgroup, no error, and a plain reason (DESIGN §5).

use std::os::unix::process::CommandExt;
use std::process::Command;

use nucleus::cgroup::{self, CgroupSetup};
use nucleus::spec::Limits;

/// Set in the copy of this test that runs as `nobody`.
const CHILD: &str = "NUCLEUS_CGROUP_ROOTLESS_CHILD";

#[test]
fn rootless_without_delegation_is_unavailable_with_a_reason() {
    if std::env::var_os(CHILD).is_some() {
        // The unprivileged half: report what create() said, for the root half to check.
        let limits = Limits {
            memory_bytes: Some(64 << 20),
            ..Limits::default()
        };
        match cgroup::create("rootless", &limits).expect("rootless is not an error") {
            CgroupSetup::Unavailable { reason } => println!("UNAVAILABLE: {reason}"),
            CgroupSetup::Limited(cg) => println!("LIMITED: {:?}", cg.paths()),
        }
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new(exe)
        .args([
            "--exact",
            "rootless_without_delegation_is_unavailable_with_a_reason",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run as nobody");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("UNAVAILABLE: "), "{stdout}");
    assert!(
        stdout.contains("limits are not enforced") && stdout.contains("/proc"),
        "{stdout}"
    );
}
