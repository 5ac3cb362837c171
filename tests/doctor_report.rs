//! `nucleus doctor` run for real: the JSON report, the exit code, and the config row.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn doctor(xdg: &Path, cwd: &Path, json: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nucleus"));
    cmd.arg("doctor")
        .env("XDG_CONFIG_HOME", xdg)
        .current_dir(cwd);
    if json {
        cmd.arg("--json");
    }
    cmd.output().expect("run nucleus doctor")
}

fn rows(out: &Output) -> Vec<Value> {
    let text = String::from_utf8_lossy(&out.stdout);
    let parsed: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON ({e}): {text}"));
    parsed.as_array().expect("an array of rows").clone()
}

fn row<'a>(rows: &'a [Value], feature: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["feature"] == feature)
        .unwrap_or_else(|| panic!("no {feature} row in {rows:?}"))
}

#[test]
fn json_report_has_every_row_and_this_machine_is_ready() {
    let xdg = tempfile::tempdir().expect("tempdir");
    let out = doctor(xdg.path(), xdg.path(), true);
    let rows = rows(&out);
    for feature in [
        "config",
        "kernel",
        "user_namespaces",
        "namespaces",
        "overlayfs_userns",
        "seccomp",
        "seccomp_user_notif",
        "landlock",
        "cgroups",
        "pidfd",
        "bpf",
    ] {
        let r = row(&rows, feature);
        assert!(
            ["ok", "missing", "degraded"].contains(&r["status"].as_str().unwrap_or("")),
            "{r}"
        );
        assert!(!r["detail"].as_str().unwrap_or("").is_empty(), "{r}");
        assert!(!r["without"].as_str().unwrap_or("").is_empty(), "{r}");
        assert!(r["required"].is_boolean(), "{r}");
    }
    // Every machine this project runs on has these (see the task brief and DESIGN §5).
    for feature in [
        "user_namespaces",
        "namespaces",
        "seccomp",
        "seccomp_user_notif",
        "landlock",
        "overlayfs_userns",
    ] {
        assert_eq!(
            row(&rows, feature)["status"],
            "ok",
            "{}",
            row(&rows, feature)
        );
    }
    let cgroups = row(&rows, "cgroups")["detail"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(cgroups.starts_with("v1-hybrid"), "{cgroups}");
    assert!(cgroups.contains("memory"), "{cgroups}");
    assert_eq!(out.status.code(), Some(0), "a default run works here");
}

#[test]
fn text_report_is_a_table_with_a_verdict() {
    let xdg = tempfile::tempdir().expect("tempdir");
    let out = doctor(xdg.path(), xdg.path(), false);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().expect("a header");
    assert!(
        header.starts_with("FEATURE") && header.contains("STATUS") && header.contains("DETAIL")
    );
    let status_col = header.find("STATUS").expect("STATUS column");
    let landlock = text
        .lines()
        .find(|l| l.starts_with("landlock "))
        .expect("landlock line");
    assert_eq!(
        landlock.get(status_col..status_col + 2),
        Some("ok"),
        "aligned: {landlock}"
    );
    assert!(
        text.contains("ready: a default `nucleus run` works here."),
        "{text}"
    );
}

#[test]
fn broken_config_is_reported_with_key_and_file() {
    let xdg = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(xdg.path().join("nucleus")).expect("mkdir");
    let path = xdg.path().join("nucleus/config.toml");
    std::fs::write(&path, "memory = \"1G\"\nmemroy_limit = 5\n").expect("write");
    let out = doctor(xdg.path(), xdg.path(), true);
    let rows = rows(&out);
    let config = row(&rows, "config");
    let detail = config["detail"].as_str().unwrap_or("");
    assert_ne!(config["status"], "ok", "{config}");
    assert!(detail.contains("memroy_limit"), "names the key: {detail}");
    assert!(
        detail.contains(&path.display().to_string()),
        "names the file: {detail}"
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a broken config stops a default run"
    );
}

#[test]
fn valid_config_is_reported_ok() {
    let xdg = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(xdg.path().join("nucleus")).expect("mkdir");
    std::fs::write(
        xdg.path().join("nucleus/config.toml"),
        "memory = \"1G\"\nstrict = true\n",
    )
    .expect("write");
    let out = doctor(xdg.path(), xdg.path(), true);
    let config = row(&rows(&out), "config").clone();
    assert_eq!(config["status"], "ok", "{config}");
    assert!(
        config["detail"].as_str().unwrap_or("").ends_with("(ok)"),
        "{config}"
    );
}

#[test]
fn config_in_the_context_directory_is_ignored() {
    // An untrusted repository must not configure its own sandbox: broken config files placed
    // where a naive loader might look (the working directory) must not be read at all.
    let xdg = tempfile::tempdir().expect("tempdir");
    let context = tempfile::tempdir().expect("tempdir");
    let hostile = "writable = true\nnot_a_key = 1\n";
    std::fs::write(context.path().join("config.toml"), hostile).expect("write");
    std::fs::write(context.path().join(".nucleus.toml"), hostile).expect("write");
    std::fs::create_dir(context.path().join("nucleus")).expect("mkdir");
    std::fs::write(context.path().join("nucleus/config.toml"), hostile).expect("write");
    let out = doctor(xdg.path(), context.path(), true);
    let config = row(&rows(&out), "config").clone();
    assert_eq!(config["status"], "ok", "{config}");
    let detail = config["detail"].as_str().unwrap_or("");
    assert!(detail.contains("absent"), "{detail}");
    assert!(
        !detail.contains(&context.path().display().to_string()),
        "{detail}"
    );
}

#[test]
fn a_missing_required_feature_makes_the_report_not_ready() {
    use nucleus::doctor::{self, Row, Status};
    let row = |feature, status, required| Row {
        feature,
        status,
        detail: "probed".to_owned(),
        without: "what happens instead",
        required,
    };
    let fine = vec![
        row("seccomp", Status::Ok, true),
        row("bpf", Status::Missing, false),
    ];
    assert!(
        doctor::ready(&fine),
        "an optional feature does not block a run"
    );
    let text = doctor::render(&fine);
    assert!(text.contains("without it: what happens instead"), "{text}");
    assert!(text.contains("\nready:"), "{text}");

    let broken = vec![
        row("user_namespaces", Status::Missing, true),
        row("config", Status::Degraded, true),
    ];
    assert!(!doctor::ready(&broken));
    let text = doctor::render(&broken);
    assert!(
        text.contains("not ready: a default run needs user_namespaces, config."),
        "{text}"
    );
}
