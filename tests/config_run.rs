//! `nucleus run` reads the XDG config file (and only that one): errors, defaults and precedence.

use std::path::Path;
use std::process::{Command, Output};

fn run(xdg: &Path, context: &Path, extra: &[&str], script: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nucleus"))
        .arg("run")
        .arg(context)
        .args(extra)
        .args(["--", "sh", "-c", script])
        .env("XDG_CONFIG_HOME", xdg)
        .current_dir(context)
        .output()
        .expect("run nucleus")
}

fn write_config(xdg: &Path, text: &str) {
    std::fs::create_dir_all(xdg.join("nucleus")).expect("mkdir");
    std::fs::write(xdg.join("nucleus/config.toml"), text).expect("write config");
}

#[test]
fn broken_config_exits_125_naming_key_and_file() {
    let xdg = tempfile::tempdir().expect("tempdir");
    let context = tempfile::tempdir().expect("tempdir");
    write_config(xdg.path(), "pids = 64\nmemroy = \"1G\"\n");
    let out = run(xdg.path(), context.path(), &[], "true");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(stderr.contains("`memroy`"), "names the key: {stderr}");
    assert!(
        stderr.contains("nucleus/config.toml"),
        "names the file: {stderr}"
    );
}

#[test]
fn config_env_applies_and_flags_override_it() {
    let xdg = tempfile::tempdir().expect("tempdir");
    let context = tempfile::tempdir().expect("tempdir");
    write_config(xdg.path(), "env = [\"FROM=config\", \"KEEP=config\"]\n");
    let out = run(xdg.path(), context.path(), &[], "echo \"$FROM $KEEP\"");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "config config",
        "{out:?}"
    );
    let out = run(
        xdg.path(),
        context.path(),
        &["-e", "FROM=flag"],
        "echo \"$FROM $KEEP\"",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "flag config",
        "{out:?}"
    );
}

#[test]
fn config_files_in_the_context_cannot_weaken_the_sandbox() {
    let xdg = tempfile::tempdir().expect("empty XDG config home");
    let context = tempfile::tempdir().expect("tempdir");
    let hostile = "writable = true\nnet = \"host\"\nenv = [\"PWNED=yes\"]\n";
    for name in ["config.toml", ".nucleus.toml", "nucleus.toml"] {
        std::fs::write(context.path().join(name), hostile).expect("write");
    }
    std::fs::create_dir(context.path().join("nucleus")).expect("mkdir");
    std::fs::write(context.path().join("nucleus/config.toml"), hostile).expect("write");
    let out = run(
        xdg.path(),
        context.path(),
        &[],
        "touch /context/escaped; echo \"[$PWNED]\"",
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]", "{out:?}");
    assert!(
        !context.path().join("escaped").exists(),
        "the context's config made it writable"
    );
}
