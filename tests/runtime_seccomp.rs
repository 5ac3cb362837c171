//! Seccomp through the real runtime: live denials, the listener handoff, and third-party profiles.

mod common;

use std::path::Path;

use common::{As, Scratch, describe, run_sh, stdout_of};

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata/seccomp");

/// Eight threads make 50 denied `mount` calls each: every call must come back EPERM (no deadlock,
/// no lost notification), and every one must be reported as a `denied` event.
fn denials_from_a_multithreaded_workload_are_all_answered_and_reported(who: As) {
    let scratch = Scratch::new(who);
    let events = scratch.path().join("events.jsonl");
    let script = r#"python3 -c '
import ctypes, threading
libc = ctypes.CDLL(None, use_errno=True)
res = []
def worker():
    for _ in range(50):
        libc.syscall(165, 0, 0, 0, 0, 0)
        res.append(ctypes.get_errno())
ts = [threading.Thread(target=worker) for _ in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
print(len(res), sorted(set(res)))
'"#;
    let out = run_sh(
        who,
        &scratch,
        &["--events", events.to_str().expect("utf8")],
        script,
    );
    assert_eq!(stdout_of(&out).trim(), "400 [1]", "{}", describe(&out));
    let text = std::fs::read_to_string(&events).expect("events file");
    let mounts: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json line"))
        .filter(|e| e["type"] == "syscall" && e["name"] == "mount")
        .collect();
    assert_eq!(mounts.len(), 400);
    assert!(
        mounts
            .iter()
            .all(|e| e["verdict"] == "denied" && e["errno"] == 1 && e["comm"] == "python3")
    );
    assert_eq!(
        mounts.last().map(|e| e["count"].clone()),
        Some(serde_json::json!(400))
    );
}

#[test]
fn root_denials_from_a_multithreaded_workload_are_answered_and_reported() {
    denials_from_a_multithreaded_workload_are_all_answered_and_reported(As::Root);
}

#[test]
fn rootless_denials_from_a_multithreaded_workload_are_answered_and_reported() {
    denials_from_a_multithreaded_workload_are_all_answered_and_reported(As::User);
}

#[test]
fn default_profile_denials_inside_the_sandbox() {
    let scratch = Scratch::new(As::Root);
    // unshare(1) fails on the unshare syscall; the kernel would allow it in a user namespace.
    let script = "unshare -U true 2>&1 | tail -1; python3 -c 'import os, ctypes; l=ctypes.CDLL(None, use_errno=True); \
                  print(l.syscall(321, 0, 0, 0), ctypes.get_errno())'";
    let out = run_sh(As::Root, &scratch, &[], script);
    let text = stdout_of(&out);
    assert!(
        text.contains("Operation not permitted"),
        "unshare must be refused: {}",
        describe(&out)
    );
    assert!(
        text.trim_end().ends_with("-1 1"),
        "bpf(2) must get EPERM: {}",
        describe(&out)
    );
}

#[test]
fn docker_profiles_run_a_shell_and_deny_with_their_errno() {
    for profile in ["docker-default.json", "docker-20.10-default.json"] {
        let scratch = Scratch::new(As::Root);
        let path = Path::new(TESTDATA).join(profile);
        let script = "echo shell-ok; unshare -U true 2>&1 | tail -1";
        let out = run_sh(
            As::Root,
            &scratch,
            &["--seccomp-profile", path.to_str().expect("utf8")],
            script,
        );
        let text = stdout_of(&out);
        assert!(
            text.starts_with("shell-ok"),
            "{profile}: {}",
            describe(&out)
        );
        assert!(
            text.contains("Operation not permitted"),
            "{profile}: {}",
            describe(&out)
        );
    }
}

#[test]
fn a_malformed_profile_is_a_clear_error_naming_the_file() {
    let scratch = Scratch::new(As::Root);
    let bad = scratch.write(
        "bad.json",
        r#"{"defaultAction": "SCMP_ACT_NOPE", "syscalls": []}"#,
    );
    let out = run_sh(
        As::Root,
        &scratch,
        &["--seccomp-profile", bad.to_str().expect("utf8")],
        "true",
    );
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.json"), "{err}");
}

#[test]
fn a_profile_without_execve_is_refused_before_start() {
    let scratch = Scratch::new(As::Root);
    // Docker's own example profile allows only clone, open and close.
    let path = Path::new(TESTDATA).join("example.json");
    let out = run_sh(
        As::Root,
        &scratch,
        &["--seccomp-profile", path.to_str().expect("utf8")],
        "true",
    );
    assert_eq!(out.status.code(), Some(125), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("execve"),
        "{}",
        describe(&out)
    );
}

#[test]
fn allow_ptrace_flag_reaches_the_filter() {
    let scratch = Scratch::new(As::Root);
    // process_vm_readv on ourselves: EPERM from the filter by default, allowed with --allow-ptrace.
    // Arguments are passed as C longs: a plain Python int leaves the register's upper half undefined.
    let script = "python3 -c 'import ctypes, os; l=ctypes.CDLL(None, use_errno=True); \
                  L=ctypes.c_long; r=l.syscall(L(310), L(os.getpid()), L(0), L(0), L(0), L(0), L(0)); print(r, ctypes.get_errno())'";
    let denied = run_sh(As::Root, &scratch, &[], script);
    assert_eq!(stdout_of(&denied).trim(), "-1 1", "{}", describe(&denied));
    let allowed = run_sh(As::Root, &scratch, &["--allow-ptrace"], script);
    assert_eq!(stdout_of(&allowed).trim(), "0 0", "{}", describe(&allowed));
}

/// The second start of a profile loads its filter from the cache, and the policy built at the
/// first notification still answers with the profile's errno; a profile changed in place is
/// compiled afresh.
#[test]
fn cached_filters_answer_like_compiled_ones_and_a_changed_profile_is_compiled_afresh() {
    let scratch = Scratch::new(As::Root);
    let events = scratch.path().join("events.jsonl");
    // An unknown name (only a warning) makes this profile's text, so its cache entry, new.
    let nonce = format!(
        "nonce_{}_{:?}",
        std::process::id(),
        std::time::Instant::now()
    );
    let profile = |errno: u32| {
        format!(
            r#"{{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {{"names": ["mkdir", "mkdirat", "{nonce}"], "action": "SCMP_ACT_ERRNO", "errnoRet": {errno}}}]}}"#
        )
    };
    let path = scratch.write("profile.json", &profile(libc::EACCES as u32));
    let start = || {
        let _ = std::fs::remove_file(&events);
        let out = run_sh(
            As::Root,
            &scratch,
            &[
                "--seccomp-profile",
                path.to_str().expect("utf8"),
                "--events",
                events.to_str().expect("utf8"),
            ],
            "mkdir /tmp/d 2>&1 | sed 's/.*: //'",
        );
        let text = std::fs::read_to_string(&events).expect("events file");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        let cache = lines
            .iter()
            .find(|e| e["event"] == "seccomp_profile")
            .map(|e| e["detail"]["filter_cache"].clone());
        let errnos: Vec<_> = lines
            .iter()
            .filter(|e| e["type"] == "syscall" && e["name"] == "mkdir")
            .map(|e| e["errno"].clone())
            .collect();
        (stdout_of(&out).trim().to_owned(), cache, errnos)
    };
    let eacces = serde_json::json!(libc::EACCES);
    let first = start();
    assert_eq!(
        first,
        (
            "Permission denied".into(),
            Some("miss".into()),
            vec![eacces.clone()]
        )
    );
    let second = start();
    assert_eq!(
        second,
        ("Permission denied".into(), Some("hit".into()), vec![eacces])
    );
    std::fs::write(&path, profile(libc::EROFS as u32)).expect("change the profile");
    let changed = start();
    assert_eq!(
        changed,
        (
            "Read-only file system".into(),
            Some("miss".into()),
            vec![serde_json::json!(libc::EROFS)]
        )
    );
}
