//! Diagnostic logging goes to a file, and `-v` levels filter it.

use nucleus::telemetry::logging;

#[test]
fn info_reaches_the_log_file_and_debug_does_not_at_v1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let guard = logging::init_in(dir.path(), 1, false).expect("log file opens");
    tracing::info!("telemetry-info-marker");
    tracing::debug!("telemetry-debug-marker");
    // Dropping the guard flushes the non-blocking writer.
    drop(guard);
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .expect("log dir")
        .flatten()
        .collect();
    assert_eq!(files.len(), 1, "one daily log file");
    let name = files[0].file_name().to_string_lossy().into_owned();
    assert!(
        name.starts_with("nucleus") && name.ends_with(".log"),
        "{name}"
    );
    let text = std::fs::read_to_string(files[0].path()).expect("read log");
    assert!(text.contains("telemetry-info-marker"), "{text}");
    assert!(!text.contains("telemetry-debug-marker"), "{text}");
}

#[test]
fn verbosity_maps_to_levels() {
    assert_eq!(logging::level_for(0), "warn");
    assert_eq!(logging::level_for(1), "info");
    assert_eq!(logging::level_for(2), "debug");
    assert_eq!(logging::level_for(9), "trace");
}
