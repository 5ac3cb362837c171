//! Diagnostic logging: tracing to a file in the state dir, and to stderr only when no console is proxied.

use std::io;
use std::path::Path;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_appender::rolling::{Builder, Rotation};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;
use tracing_subscriber::prelude::*;

use crate::telemetry::log_dir;

/// Daily log files kept before the oldest is deleted.
const KEEP_FILES: usize = 7;

/// The filter for `-v` counts: warn, info, debug, trace.
pub fn level_for(verbosity: u8) -> &'static str {
    match verbosity {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    }
}

/// Install the global subscriber; keep the guard alive until exit so buffered lines are written.
///
/// `RUST_LOG` overrides the `-v` level. With `to_terminal` false (a proxied console owns the
/// terminal) nothing is ever written to stderr. Returns None when no log file could be opened.
pub fn init(verbosity: u8, to_terminal: bool) -> Option<WorkerGuard> {
    init_in(&log_dir(), verbosity, to_terminal)
}

/// Like `init`, with the log files in `dir` instead of the state dir.
pub fn init_in(dir: &Path, verbosity: u8, to_terminal: bool) -> Option<WorkerGuard> {
    let filter = || {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level_for(verbosity)))
    };
    let appender = std::fs::create_dir_all(dir).ok().and_then(|()| {
        Builder::new()
            .rotation(Rotation::DAILY)
            .filename_prefix("nucleus")
            .filename_suffix("log")
            .max_log_files(KEEP_FILES)
            .build(dir)
            .ok()
    });
    let (file_layer, guard) = match appender {
        Some(appender) => {
            // Why a small buffer: the default holds 128,000 lines, and allocating it costs ~1 ms of
            // page faults at every start. Diagnostics that outrun 1,024 lines are dropped, not blocked.
            let (writer, guard) = NonBlockingBuilder::default()
                .buffered_lines_limit(1024)
                .finish(appender);
            let layer = fmt::layer()
                .with_writer(writer)
                .with_ansi(false)
                .with_filter(filter());
            (Some(layer), Some(guard))
        }
        None => (None, None),
    };
    let term_layer =
        to_terminal.then(|| fmt::layer().with_writer(io::stderr).with_filter(filter()));
    // A second init (tests, or a frontend that already set one) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(file_layer)
        .with(term_layer)
        .try_init();
    guard
}
