//! `nucleus profile show|check|diff` through the real binary.

mod seccomp_common;

use std::process::{Command, Output};

use seccomp_common::testdata;

fn nucleus(args: &[&str]) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_nucleus"))
        .arg("profile")
        .args(args)
        .output()
        .expect("run nucleus");
    let text = |b: Vec<u8>| String::from_utf8(b).expect("utf-8 output");
    (status.code().unwrap_or(-1), text(stdout), text(stderr))
}

fn temp_profile(json: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), json).expect("write profile");
    file
}

#[test]
fn check_passes_on_the_default_and_docker_profiles() {
    let (code, out, _) = nucleus(&["check", "default"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("x86_64: compiles")
            && out.contains("aarch64: compiles")
            && out.contains("default: ok")
    );
    for name in [
        "docker-default.json",
        "docker-20.10-default.json",
        "example.json",
        "conditional_include.json",
    ] {
        let (code, out, err) = nucleus(&["check", &testdata(name)]);
        assert_eq!(code, 0, "{name}: {out}{err}");
    }
}

#[test]
fn check_reports_unknown_names_and_unreachable_rules() {
    let file = temp_profile(
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
            {"names":["read","getpid","reed"],"action":"SCMP_ACT_ALLOW"},
            {"names":["getpid"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
    );
    let path = file.path().to_str().expect("utf-8 path");
    let (code, out, _) = nucleus(&["check", path]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("unknown syscall \"reed\""), "{out}");
    assert!(
        out.contains("unreachable rule syscalls[1] for getpid: already decided by syscalls[0]"),
        "{out}"
    );
}

#[test]
fn check_explains_malformed_json_with_its_position() {
    let file = temp_profile(
        "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\n \"syscalls\":[{\"names\":[\"read\"],\"action\":\"ALLOW\"}]}",
    );
    let (code, out, err) = nucleus(&["check", file.path().to_str().expect("utf-8 path")]);
    assert_eq!(code, 1);
    let all = format!("{out}{err}");
    assert!(
        all.contains("line 2") && all.contains("SCMP_ACT_ALLOW"),
        "{all}"
    );
    let (code, _, err) = nucleus(&["check", "/nonexistent/profile.json"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read seccomp profile"), "{err}");
}

#[test]
fn show_summarises_actions_and_argument_rules() {
    let (code, out, _) = nucleus(&["show", "default"]);
    assert_eq!(code, 0);
    assert!(out.contains("default action   errno 38 (ENOSYS)"), "{out}");
    assert!(
        out.contains("errno 1 (EPERM)") && out.contains("mount"),
        "{out}"
    );
    assert!(out.contains("arg1 == 0x5412 (low 32 bits)"), "{out}");
    assert!(out.contains("clone3"), "{out}");
}

#[test]
fn diff_lists_what_differs_and_nothing_else() {
    let (code, out, _) = nucleus(&["diff", "default", "default"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "profiles enforce the same policy\n")
    );
    let (code, out, _) = nucleus(&["diff", "default", &testdata("docker-default.json")]);
    assert_eq!(code, 1);
    assert!(
        out.contains("default action: errno 38 (ENOSYS) → errno 1 (EPERM)"),
        "{out}"
    );
    assert!(out.lines().any(|l| l.starts_with("ptrace ")), "{out}");
    assert!(
        !out.lines().any(|l| l.starts_with("mount ")),
        "mount is EPERM in both: {out}"
    );
}
