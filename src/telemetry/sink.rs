//! The event sink: every event to `--events` (FILE or `-` for stderr), and the lasting ones to the
//! sandbox's audit log. Each line is written with one `write` and flushed, so `tail -f` sees whole lines.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use nix::fcntl::Flock;
use serde_json::json;

use crate::events::{Event, EventKind, Verdict};
use crate::telemetry::audit_dir;
use crate::telemetry::retention::{self, Retention};

/// Why a sink could not be opened.
#[derive(Debug)]
pub enum SinkError {
    /// The sandbox id cannot name a file.
    BadId(String),
    /// Creating the audit directory failed.
    AuditDir {
        /// The directory.
        path: PathBuf,
        /// The errno.
        source: io::Error,
    },
    /// Opening the audit log failed.
    AuditLog {
        /// The file.
        path: PathBuf,
        /// The errno.
        source: io::Error,
    },
    /// Opening the `--events` file failed.
    Events {
        /// The file.
        path: PathBuf,
        /// The errno.
        source: io::Error,
    },
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadId(id) => write!(
                f,
                "sandbox id {id:?} cannot name an audit log; use letters, digits, - and _"
            ),
            Self::AuditDir { path, source } => write!(
                f,
                "cannot create the audit log directory {}: {source}; set XDG_STATE_HOME to a writable directory",
                path.display()
            ),
            Self::AuditLog { path, source } => write!(
                f,
                "cannot open the audit log {}: {source}; check its permissions or set XDG_STATE_HOME",
                path.display()
            ),
            Self::Events { path, source } => write!(
                f,
                "cannot open the --events file {}: {source}; choose a writable path or `-` for stderr",
                path.display()
            ),
        }
    }
}

impl std::error::Error for SinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::BadId(_) => None,
            Self::AuditDir { source, .. }
            | Self::AuditLog { source, .. }
            | Self::Events { source, .. } => Some(source),
        }
    }
}

/// Writes events as JSON lines to the audit log and the optional `--events` stream.
pub struct EventSink {
    sandbox: String,
    audit_path: PathBuf,
    /// Held with a shared `flock` for the sink's life, so pruning never removes a log in use.
    audit: Flock<File>,
    events: Option<Box<dyn Write + Send>>,
    /// Highest count seen per (syscall, verdict), summarised into the audit log at exit.
    syscalls: BTreeMap<(String, &'static str), u64>,
    warned: bool,
}

impl fmt::Debug for EventSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSink")
            .field("sandbox", &self.sandbox)
            .field("audit_path", &self.audit_path)
            .field("events", &self.events.is_some())
            .finish_non_exhaustive()
    }
}

impl EventSink {
    /// Open the audit log in the XDG state dir and, if given, the `--events` FILE (`-` = stderr).
    pub fn open(sandbox: &str, events: Option<&Path>) -> Result<EventSink, SinkError> {
        Self::open_in(&audit_dir(), sandbox, events)
    }

    /// Like `open`, with the audit log in `dir` (the audit directory) instead of the state dir.
    /// Also prunes old logs from `dir`, at most once an hour (`retention::prune_if_due`).
    pub fn open_in(
        dir: &Path,
        sandbox: &str,
        events: Option<&Path>,
    ) -> Result<EventSink, SinkError> {
        if !retention::is_valid_id(sandbox) {
            return Err(SinkError::BadId(sandbox.to_owned()));
        }
        // Audit logs can show commands and paths, so keep them private to the user.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| SinkError::AuditDir {
                path: dir.to_owned(),
                source,
            })?;
        let audit_path = dir.join(format!("{sandbox}.jsonl"));
        let audit = retention::open_held(&audit_path).map_err(|source| SinkError::AuditLog {
            path: audit_path.clone(),
            source,
        })?;
        // After our own log is held, so this start's log is never a candidate.
        retention::prune_if_due(dir, &Retention::DEFAULT);
        let events: Option<Box<dyn Write + Send>> = match events {
            None => None,
            Some(p) if p == Path::new("-") => Some(Box::new(io::stderr())),
            Some(p) => Some(Box::new(File::create(p).map_err(|source| {
                SinkError::Events {
                    path: p.to_owned(),
                    source,
                }
            })?)),
        };
        Ok(EventSink {
            sandbox: sandbox.to_owned(),
            audit_path,
            audit,
            events,
            syscalls: BTreeMap::new(),
            warned: false,
        })
    }

    /// The audit log's path.
    pub fn audit_log_path(&self) -> &Path {
        &self.audit_path
    }

    /// Write `ev` to `--events`; audits, exits and syscall-denial summaries also go to the audit log.
    pub fn write(&mut self, ev: &Event) {
        let line = to_line(ev);
        if let Some(events) = self.events.as_mut() {
            let result = events.write_all(&line).and_then(|()| events.flush());
            self.warn_once("--events", result);
        }
        match &ev.kind {
            EventKind::Audit(_) => self.audit_line(&line),
            EventKind::Syscall(rec) if rec.verdict != Verdict::Allowed => {
                let verdict = if rec.verdict == Verdict::Denied {
                    "denied"
                } else {
                    "would_deny"
                };
                let seen = self
                    .syscalls
                    .entry((rec.name.clone(), verdict))
                    .or_default();
                let first = *seen == 0;
                *seen = (*seen).max(rec.count).max(1);
                // The first of each kind goes in at once; the totals follow in the exit summary.
                if first {
                    self.audit_line(&line);
                }
            }
            EventKind::Exit(_) => {
                if !self.syscalls.is_empty() {
                    let summary = Event::audit(&self.sandbox, "syscall_summary", self.summary());
                    self.audit_line(&to_line(&summary));
                }
                self.audit_line(&line);
            }
            EventKind::Syscall(_) | EventKind::Usage(_) => {}
        }
    }

    /// Per-verdict totals: `{"denied": {"mount": 3}, "would_deny": {..}}`.
    fn summary(&self) -> serde_json::Value {
        let mut out = json!({ "denied": {}, "would_deny": {} });
        for ((name, verdict), count) in &self.syscalls {
            out[*verdict][name] = json!(count);
        }
        out
    }

    fn audit_line(&mut self, line: &[u8]) {
        let result = self.audit.write_all(line);
        self.warn_once("the audit log", result);
    }

    /// A broken sink must not stop the sandbox; say so once in the diagnostic log.
    fn warn_once(&mut self, what: &str, result: io::Result<()>) {
        if let Err(e) = result
            && !self.warned
        {
            self.warned = true;
            tracing::warn!(error = %e, "cannot write an event to {what}");
        }
    }
}

/// One JSON line; `Event` holds only plain data, so serialising it cannot fail in practice.
fn to_line(ev: &Event) -> Vec<u8> {
    let mut line = serde_json::to_vec(ev).unwrap_or_else(|e| {
        format!(
            r#"{{"type":"error","sandbox":{:?},"detail":{:?}}}"#,
            ev.sandbox,
            e.to_string()
        )
        .into_bytes()
    });
    line.push(b'\n');
    line
}
