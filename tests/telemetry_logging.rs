//! Diagnostic logging goes to a file; `-v` sets the level and `RUST_LOG` overrides it.
//!
//! The global subscriber can be installed once per process, so each case runs in a fresh copy of
//! this test binary with a controlled environment.

use std::path::Path;
use std::process::Command;

use nucleus::telemetry::logging;

/// Set in the child copy: the directory to log into.
const CHILD_DIR: &str = "NUCLEUS_LOGGING_CHILD_DIR";

/// Set in the child copy when it may log to the terminal too.
const CHILD_TERMINAL: &str = "NUCLEUS_LOGGING_CHILD_TERMINAL";

/// What a child copy left: its log file's text (None when it wrote no file) and its stderr.
type Logged = (Option<String>, String);

/// In the child copy, log one line per level at `-v` and return None; in the parent, run test `name`
/// as that child with `RUST_LOG` set as given, and return the single log file's text.
fn logged_by_child(name: &str, rust_log: Option<&str>) -> Option<Option<String>> {
    logged_by_child_to(name, rust_log, false).map(|(file, _)| file)
}

/// Like `logged_by_child`, optionally with `to_terminal`; also returns stderr.
fn logged_by_child_to(name: &str, rust_log: Option<&str>, to_terminal: bool) -> Option<Logged> {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        let to_terminal = std::env::var_os(CHILD_TERMINAL).is_some();
        logging::init_in(Path::new(&dir).join("logs").as_path(), 1, to_terminal);
        tracing::info!("telemetry-info-marker");
        tracing::debug!("telemetry-debug-marker");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args(["--exact", name, "--nocapture"])
        .env(CHILD_DIR, dir.path());
    if to_terminal {
        cmd.env(CHILD_TERMINAL, "1");
    }
    match rust_log {
        Some(filter) => cmd.env("RUST_LOG", filter),
        None => cmd.env_remove("RUST_LOG"),
    };
    let out = cmd.output().expect("run child");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    if !to_terminal {
        assert!(
            !stderr.contains("marker"),
            "to_terminal=false keeps stderr clean: {stderr}"
        );
    }
    // The directory and the file are made when the first line is written.
    let Ok(entries) = std::fs::read_dir(dir.path().join("logs")) else {
        return Some((None, stderr));
    };
    let files: Vec<_> = entries.flatten().collect();
    assert_eq!(files.len(), 1, "one daily log file");
    let file = files[0].file_name().to_string_lossy().into_owned();
    assert!(
        file.starts_with("nucleus.") && file.ends_with(".log"),
        "{file}"
    );
    Some((
        Some(std::fs::read_to_string(files[0].path()).expect("read log")),
        stderr,
    ))
}

#[test]
fn v1_logs_info_to_the_file_but_not_debug() {
    let Some(text) = logged_by_child("v1_logs_info_to_the_file_but_not_debug", None) else {
        return;
    };
    let text = text.expect("a log file");
    assert!(text.contains("telemetry-info-marker"), "{text}");
    assert!(!text.contains("telemetry-debug-marker"), "{text}");
}

#[test]
fn rust_log_debug_overrides_the_verbosity() {
    let Some(text) = logged_by_child("rust_log_debug_overrides_the_verbosity", Some("debug"))
    else {
        return;
    };
    let text = text.expect("a log file");
    assert!(text.contains("telemetry-debug-marker"), "{text}");
}

#[test]
fn rust_log_error_silences_info_and_no_file_is_made() {
    let Some(text) = logged_by_child(
        "rust_log_error_silences_info_and_no_file_is_made",
        Some("error"),
    ) else {
        return;
    };
    assert_eq!(
        text, None,
        "nothing was logged, so no log directory or file exists"
    );
}

#[test]
fn to_terminal_also_logs_to_stderr() {
    let Some((file, stderr)) = logged_by_child_to("to_terminal_also_logs_to_stderr", None, true)
    else {
        return;
    };
    let file = file.expect("a log file");
    assert!(file.contains("telemetry-info-marker"), "{file}");
    assert!(stderr.contains("telemetry-info-marker"), "{stderr}");
}

#[test]
fn verbosity_maps_to_levels() {
    assert_eq!(logging::level_for(0), "warn");
    assert_eq!(logging::level_for(1), "info");
    assert_eq!(logging::level_for(2), "debug");
    assert_eq!(logging::level_for(9), "trace");
}
