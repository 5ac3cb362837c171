//! Diagnostic logging: tracing to a file in the state dir, and to stderr only when no console is proxied.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tracing_appender::rolling::{Builder, RollingFileAppender, RollingWriter, Rotation};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt;
use tracing_subscriber::fmt::writer::{EitherWriter, MakeWriter};
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

/// Install the global subscriber. The log file is opened at the first line written: at the
/// default level a run writes none, and opening (which also prunes old files) cost ~0.1 ms.
///
/// `RUST_LOG` overrides the `-v` level. With `to_terminal` false (a proxied console owns the
/// terminal) nothing is ever written to stderr.
pub fn init(verbosity: u8, to_terminal: bool) {
    init_in(&log_dir(), verbosity, to_terminal);
}

/// Like `init`, with the log files in `dir` instead of the state dir.
pub fn init_in(dir: &Path, verbosity: u8, to_terminal: bool) {
    let filter = || {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level_for(verbosity)))
    };
    let file_layer = fmt::layer()
        .with_writer(OpenedAtFirstLine {
            dir: dir.to_owned(),
            appender: OnceLock::new(),
        })
        .with_ansi(false)
        .with_filter(filter());
    let term_layer =
        to_terminal.then(|| fmt::layer().with_writer(io::stderr).with_filter(filter()));
    // A second init (tests, or a frontend that already set one) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(file_layer)
        .with(term_layer)
        .try_init();
}

/// The daily log files in `dir`, opened when the first line is written. Lines are dropped if
/// they cannot be opened: diagnostics never stop a sandbox.
struct OpenedAtFirstLine {
    dir: PathBuf,
    appender: OnceLock<Option<RollingFileAppender>>,
}

impl<'a> MakeWriter<'a> for OpenedAtFirstLine {
    type Writer = EitherWriter<RollingWriter<'a>, io::Sink>;

    fn make_writer(&'a self) -> Self::Writer {
        let appender = self.appender.get_or_init(|| {
            fs::create_dir_all(&self.dir).ok()?;
            Builder::new()
                .rotation(Rotation::DAILY)
                .filename_prefix("nucleus")
                .filename_suffix("log")
                .max_log_files(KEEP_FILES)
                .build(&self.dir)
                .ok()
        });
        // Why the appender itself, not its non-blocking writer: a run logs next to nothing, and the
        // non-blocking writer's thread cost a spawn at every start and a join at every exit, on the
        // path to the exit status. Each line is one write(2) by the thread that logs.
        match appender {
            Some(appender) => EitherWriter::A(appender.make_writer()),
            None => EitherWriter::B(io::sink()),
        }
    }
}
