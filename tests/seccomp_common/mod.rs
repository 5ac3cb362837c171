//! Helpers shared by the seccomp integration tests: forked children with a filter installed.

#![allow(dead_code)]

use nucleus::seccomp::{FilterMode, Policy};
use nucleus::sys::seccomp::{self as sys, ChildEnd};

/// A path under the shared test data directory (checked out next to the repo).
pub fn testdata(name: &str) -> String {
    format!(
        "{}/../shared/testdata/seccomp/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Raw syscall returning the value or errno.
pub fn sc(nr: i64, args: [u64; 6]) -> Result<i64, i32> {
    // SAFETY: every caller passes null pointers or plain integers, so the kernel touches none of our
    // memory; calls run in a forked child that exits right after.
    unsafe { sys::raw_syscall(nr, args) }
}

/// Set no_new_privs and install `policy` compiled in `mode` on the calling (child) process.
pub fn install(policy: &Policy, mode: FilterMode) {
    nix::sys::prctl::set_no_new_privs().expect("PR_SET_NO_NEW_PRIVS");
    let prog = policy.compile(mode).expect("policy compiles");
    sys::install_filter(&prog, false).expect("seccomp(SET_MODE_FILTER)");
}

/// One expectation: a call and the errno it must get (`None`: must succeed).
pub struct Case {
    /// Shown on failure.
    pub what: &'static str,
    /// Syscall number.
    pub nr: i64,
    /// Arguments.
    pub args: [u64; 6],
    /// Expected errno, or None for success.
    pub errno: Option<i32>,
}

/// Build a case.
pub fn case(what: &'static str, nr: i64, args: [u64; 6], errno: Option<i32>) -> Case {
    Case {
        what,
        nr,
        args,
        errno,
    }
}

/// In a forked child under `policy`, run every case; the child exits 0 when all matched,
/// else prints each mismatch to stderr and exits 1.
pub fn check_in_child(policy: &Policy, mode: FilterMode, cases: &[Case]) {
    let end = sys::fork_and_wait(|| {
        install(policy, mode);
        let mut bad = 0;
        for c in cases {
            let got = sc(c.nr, c.args);
            let ok = match (c.errno, got) {
                (None, Ok(_)) => true,
                (Some(want), Err(e)) => want == e,
                _ => false,
            };
            if !ok {
                eprintln!(
                    "seccomp case {:?}: want errno {:?}, got {:?}",
                    c.what, c.errno, got
                );
                bad += 1;
            }
        }
        i32::from(bad > 0)
    })
    .expect("fork");
    assert_eq!(end, ChildEnd::Exited(0), "some cases failed (see stderr)");
}
