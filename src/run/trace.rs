//! `nucleus trace`: run like `nucleus run`, but let every call through, record what the profile would
//! deny, and export the base profile with those calls allowed.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;

use crate::cli::TraceArgs;
use crate::events::{Event, EventKind, Verdict};
use crate::seccomp::learn::learned_profile;
use crate::spec::SeccompMode;

/// Syscalls seen with verdict `would_deny`, with counts, and the profile they were judged by.
#[derive(Debug, Default)]
pub struct Learned {
    /// Name → number of calls.
    pub would_deny: BTreeMap<String, u64>,
    /// The base profile's JSON text.
    pub base_profile: Cow<'static, str>,
}

impl Learned {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Count a `would_deny` syscall event; ignore everything else.
    pub fn observe(&mut self, ev: &Event) {
        if let EventKind::Syscall(rec) = &ev.kind
            && rec.verdict == Verdict::WouldDeny
        {
            *self.would_deny.entry(rec.name.clone()).or_default() += 1;
        }
    }
}

/// Entry point of `nucleus trace`.
pub fn main(args: TraceArgs, verbose: u8) -> i32 {
    let (code, learned) = super::execute(args.run, verbose, SeccompMode::Trace);
    if learned.base_profile.is_empty() {
        return code; // the sandbox never started; the error was printed
    }
    eprintln!(
        "nucleus: trace: {} syscall(s) the profile would deny:",
        learned.would_deny.len()
    );
    for (name, count) in &learned.would_deny {
        eprintln!("  {name:<24} {count}");
    }
    let names: BTreeSet<String> = learned.would_deny.keys().cloned().collect();
    let text = match learned_profile(&learned.base_profile, &names) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("nucleus: trace: building the learned profile: {e}");
            return 125;
        }
    };
    let path = args.output.unwrap_or_else(default_output);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = fs::create_dir_all(dir);
    }
    if let Err(e) = fs::write(&path, text + "\n") {
        eprintln!("nucleus: trace: writing {}: {e}", path.display());
        return 125;
    }
    eprintln!(
        "nucleus: trace: learned profile written to {}",
        path.display()
    );
    code
}

/// `$XDG_DATA_HOME/nucleus/profiles/learned-<unix time>.json`.
fn default_output() -> PathBuf {
    let dir = directories::ProjectDirs::from("", "", "nucleus")
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| PathBuf::from("."));
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    dir.join("profiles").join(format!("learned-{secs}.json"))
}
