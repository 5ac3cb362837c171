//! Audit logs: one JSON-lines file per sandbox in the XDG state directory. `nucleus audit list` and
//! `nucleus audit show ID` read them back; `retention` keeps the directory bounded.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cli::AuditCommand;
use crate::telemetry::audit_dir;

/// Entry point of `nucleus audit`.
pub fn main(cmd: AuditCommand) -> i32 {
    let dir = audit_dir();
    let mut out = io::stdout().lock();
    let result = match cmd {
        AuditCommand::List => list(&dir, &mut out),
        AuditCommand::Show { id } => show(&dir, &id, &mut out),
    };
    match result {
        Ok(()) => 0,
        Err(msg) => {
            eprintln!("nucleus: audit: {msg}");
            1
        }
    }
}

/// What `audit list` shows of one log.
#[derive(Debug, Default, PartialEq)]
pub struct LogSummary {
    /// Sandbox id (the file's stem).
    pub id: String,
    /// `ts` of the first event.
    pub started: Option<String>,
    /// The command, from the first audit event whose detail has `command`.
    pub command: Option<String>,
    /// How it ended, from the exit event; None while running or after a crash.
    pub exit: Option<String>,
}

/// Summarise one log's text.
pub fn summarise(id: &str, text: &str) -> LogSummary {
    let mut summary = LogSummary {
        id: id.to_owned(),
        ..LogSummary::default()
    };
    for ev in text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
    {
        if summary.started.is_none() {
            summary.started = ev["ts"].as_str().map(str::to_owned);
        }
        if summary.command.is_none() && ev["type"] == "audit" {
            summary.command = command_text(&ev["detail"]["command"]);
        }
        if ev["type"] == "exit" {
            summary.exit = Some(exit_text(&ev));
        }
    }
    summary
}

fn command_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => None,
    }
}

fn exit_text(ev: &Value) -> String {
    let mut text = match (ev["code"].as_i64(), ev["signal"].as_i64()) {
        (_, Some(sig)) => format!("signal {sig}"),
        (Some(code), None) => format!("code {code}"),
        (None, None) => "unknown".to_owned(),
    };
    if ev["oom_killed"] == true {
        text.push_str(" (oom)");
    }
    text
}

/// The `.jsonl` files in `dir`, as (id, path).
fn logs(dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
    };
    Ok(entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .filter_map(|p| Some((p.file_stem()?.to_str()?.to_owned(), p)))
        .collect())
}

/// Print one row per log, oldest first.
pub fn list(dir: &Path, out: &mut impl Write) -> Result<(), String> {
    let mut rows: Vec<LogSummary> = logs(dir)?
        .into_iter()
        .map(|(id, path)| summarise(&id, &fs::read_to_string(path).unwrap_or_default()))
        .collect();
    if rows.is_empty() {
        eprintln!("nucleus: audit: no audit logs in {}", dir.display());
        return Ok(());
    }
    // RFC 3339 UTC timestamps in one format sort as text.
    rows.sort_by(|a, b| a.started.cmp(&b.started).then(a.id.cmp(&b.id)));
    let w = rows.iter().map(|r| r.id.len()).max().unwrap_or(2).max(2);
    let io = |e: io::Error| format!("cannot write: {e}");
    writeln!(
        out,
        "{:<w$}  {:<27}  {:<14}  COMMAND",
        "ID", "STARTED", "EXIT"
    )
    .map_err(io)?;
    for r in rows {
        writeln!(
            out,
            "{:<w$}  {:<27}  {:<14}  {}",
            r.id,
            r.started.as_deref().unwrap_or("-"),
            r.exit.as_deref().unwrap_or("-"),
            r.command.as_deref().unwrap_or("-"),
        )
        .map_err(io)?;
    }
    Ok(())
}

/// Print the log whose id starts with `prefix`, one event per line.
pub fn show(dir: &Path, prefix: &str, out: &mut impl Write) -> Result<(), String> {
    let found: Vec<(String, PathBuf)> = logs(dir)?
        .into_iter()
        .filter(|(id, _)| id.starts_with(prefix))
        .collect();
    let path = match found.as_slice() {
        [] => {
            return Err(format!(
                "no audit log matches {prefix:?}; see `nucleus audit list`"
            ));
        }
        [(_, path)] => path,
        many => {
            let ids: Vec<&str> = many.iter().map(|(id, _)| id.as_str()).collect();
            return Err(format!(
                "{prefix:?} matches {}; give more of the id",
                ids.join(", ")
            ));
        }
    };
    let text =
        fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    for line in text.lines() {
        writeln!(out, "{}", render(line)).map_err(|e| format!("cannot write: {e}"))?;
    }
    Ok(())
}

/// One event as `TS  TYPE  what`, or the raw line when it is not an event.
fn render(line: &str) -> String {
    let Ok(ev) = serde_json::from_str::<Value>(line) else {
        return line.to_owned();
    };
    let ts = ev["ts"].as_str().unwrap_or("-");
    let what = match ev["type"].as_str() {
        Some("audit") => format!("{} {}", ev["event"].as_str().unwrap_or("?"), ev["detail"]),
        Some("exit") => format!("{} after {} ms", exit_text(&ev), ev["duration_ms"]),
        Some("syscall") => format!(
            "{} {} (pid {}, {})",
            ev["verdict"].as_str().unwrap_or("?"),
            ev["name"].as_str().unwrap_or("?"),
            ev["pid"],
            ev["comm"].as_str().unwrap_or("?"),
        ),
        _ => line.to_owned(),
    };
    format!("{ts}  {:<7}  {what}", ev["type"].as_str().unwrap_or("?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reads_start_command_and_exit() {
        let text = concat!(
            r#"{"ts":"2026-01-01T00:00:00.000000Z","sandbox":"ab","type":"audit","event":"sandbox_started","detail":{"command":["sh","-c","x"]}}"#,
            "\n",
            r#"{"ts":"2026-01-01T00:00:01.000000Z","sandbox":"ab","type":"exit","code":137,"signal":9,"oom_killed":true,"duration_ms":5}"#,
            "\nnot json\n"
        );
        let s = summarise("ab", text);
        assert_eq!(s.started.as_deref(), Some("2026-01-01T00:00:00.000000Z"));
        assert_eq!(s.command.as_deref(), Some("sh -c x"));
        assert_eq!(s.exit.as_deref(), Some("signal 9 (oom)"));
    }

    #[test]
    fn render_keeps_unknown_lines() {
        assert_eq!(render("garbage"), "garbage");
        let line = r#"{"ts":"t","sandbox":"a","type":"exit","code":0,"signal":null,"oom_killed":false,"duration_ms":3}"#;
        assert_eq!(render(line), "t  exit     code 0 after 3 ms");
    }
}
