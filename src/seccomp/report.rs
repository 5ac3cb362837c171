//! `nucleus profile show|check|diff`: read a profile the way the sandbox resolves it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::cli::ProfileCommand;
use crate::seccomp::compile::FilterMode;
use crate::seccomp::policy::{Decision, Host, Policy, Rule};
use crate::seccomp::profile::{Profile, ProfileError};
use crate::seccomp::syscalls::{Arch, known_anywhere};

/// Entry point of `nucleus profile`.
pub fn main(cmd: ProfileCommand) -> i32 {
    match cmd {
        ProfileCommand::Show { file } => match load(&file).and_then(|(json, _)| show(&file, &json))
        {
            Ok(text) => print_ok(&text, 0),
            Err(e) => fail(&e, 125),
        },
        ProfileCommand::Check { file } => match load(&file) {
            Ok((json, _)) => {
                let (text, problems) = check(&file, &json);
                print_ok(&text, i32::from(problems > 0))
            }
            Err(e) => fail(&e, 1),
        },
        ProfileCommand::Diff { a, b } => match load(&a)
            .and_then(|(ja, _)| load(&b).map(|(jb, _)| (ja, jb)))
        {
            Ok((ja, jb)) => match diff(&ja, &jb) {
                Ok(text) if text.is_empty() => print_ok("profiles enforce the same policy\n", 0),
                Ok(text) => print_ok(&format!("--- {a}\n+++ {b}\n{text}"), 1),
                Err(e) => fail(&e, 125),
            },
            Err(e) => fail(&e, 125),
        },
    }
}

fn print_ok(text: &str, code: i32) -> i32 {
    print!("{text}");
    code
}

fn fail(e: &ProfileError, code: i32) -> i32 {
    eprintln!("nucleus: profile: {e}");
    code
}

/// The JSON of `default` (the embedded profile) or of a file.
pub fn load(word: &str) -> Result<(String, String), ProfileError> {
    if word == "default" {
        return Ok((
            Policy::default_profile_json().to_owned(),
            "default (embedded)".into(),
        ));
    }
    let json = std::fs::read_to_string(word).map_err(|source| ProfileError::Read {
        path: word.into(),
        source,
    })?;
    Ok((json, word.into()))
}

/// How one syscall is decided, in words (`allow`, or argument rules then the fallback).
fn describe(rules: &[Rule], default: Decision) -> String {
    let mut parts = Vec::new();
    for r in rules {
        if r.conds.is_empty() {
            // Written like the fallback, so "explicit catch-all" and "default" compare equal in diffs.
            parts.push(if parts.is_empty() {
                r.action.to_string()
            } else {
                format!("else {}", r.action)
            });
            return parts.join("; ");
        }
        let conds: Vec<String> = r.conds.iter().map(ToString::to_string).collect();
        parts.push(format!("if {} → {}", conds.join(" && "), r.action));
    }
    parts.push(format!("else {default}"));
    parts.join("; ")
}

fn name(arch: Arch, nr: u32) -> String {
    arch.name_of(nr)
        .map_or_else(|| format!("syscall_{nr}"), str::to_owned)
}

/// The summary table of `show`.
pub fn show(source: &str, json: &str) -> Result<String, ProfileError> {
    let profile = Profile::parse(json)?;
    let host = Host::sandbox();
    let (policy, warnings) = Policy::resolve(&profile, json, &host);
    let mut out = String::new();
    let _ = writeln!(out, "profile          {source}");
    let _ = writeln!(out, "digest           blake3:{}", policy.digest());
    let _ = writeln!(out, "default action   {}", policy.default_decision());
    let arches = profile.architectures.clone().unwrap_or_default();
    let _ = writeln!(
        out,
        "architectures    {}",
        if arches.is_empty() {
            "(native)".into()
        } else {
            arches.join(", ")
        }
    );
    let (major, minor) = host.kernel;
    let _ = writeln!(
        out,
        "resolved for     {}, kernel {major}.{minor}, no capabilities",
        host.arch.name()
    );
    let _ = writeln!(out, "always allowed   exit, exit_group (built in)\n");
    let mut by_action: BTreeMap<Decision, Vec<String>> = BTreeMap::new();
    let mut arg_rules = Vec::new();
    for (&nr, rules) in policy.rules() {
        let Some(first) = rules
            .iter()
            .find(|r| r.origin.is_some() || !r.conds.is_empty())
        else {
            continue;
        };
        if first.conds.is_empty() {
            by_action
                .entry(first.action)
                .or_default()
                .push(name(policy.arch(), nr));
        } else {
            arg_rules.push(format!(
                "  {:<16} {}",
                name(policy.arch(), nr),
                describe(rules, policy.default_decision())
            ));
        }
    }
    let _ = writeln!(out, "{:<22} {:>5}  SYSCALLS", "ACTION", "COUNT");
    for (action, names) in &by_action {
        let _ = writeln!(
            out,
            "{:<22} {:>5}  {}",
            action.to_string(),
            names.len(),
            wrap(names, 30)
        );
    }
    let _ = writeln!(out, "\nargument rules (first match wins):");
    for line in &arg_rules {
        let _ = writeln!(out, "{line}");
    }
    for w in warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    Ok(out)
}

fn wrap(names: &[String], indent: usize) -> String {
    let mut out = String::new();
    let mut col = 0;
    for n in names {
        if col > 0 && col + n.len() > 70 {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            col = 0;
        } else if col > 0 {
            out.push(' ');
            col += 1;
        }
        out.push_str(n);
        col += n.len();
    }
    out
}

/// `check`: the report and the number of problems.
pub fn check(source: &str, json: &str) -> (String, usize) {
    let mut out = String::new();
    let profile = match Profile::parse(json) {
        Ok(p) => p,
        Err(e) => return (format!("{source}: {e}\n"), 1),
    };
    let mut problems = 0;
    let mut unknown = BTreeSet::new();
    let mut elsewhere: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for rule in profile.syscalls.iter().flatten() {
        for n in rule.all_names() {
            if !known_anywhere(n) {
                unknown.insert(n.to_owned());
            }
        }
    }
    for arch in Arch::ALL {
        let (policy, _) = Policy::resolve(&profile, json, &Host::for_arch(arch));
        for mode in [
            FilterMode::Enforce { notify: false },
            FilterMode::Enforce { notify: true },
            FilterMode::Trace,
        ] {
            match policy.compile(mode) {
                Ok(prog) if mode == FilterMode::Trace => {
                    let _ = writeln!(
                        out,
                        "{}: compiles, {} instructions",
                        arch.name(),
                        prog.len()
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    problems += 1;
                    let _ = writeln!(out, "{}: {e}", arch.name());
                }
            }
        }
        for (&nr, rules) in policy.rules() {
            let mut decided_by: Option<&Rule> = None;
            for r in rules {
                match (decided_by, r.origin) {
                    // exit/exit_group are always allowed; a profile allowing them too is fine.
                    (Some(first), Some(i)) if first.origin.is_none() && !r.action.allows() => {
                        let _ = writeln!(
                            out,
                            "note: syscalls[{i}] ({}) for {} is overridden: nucleus always allows it",
                            r.action,
                            name(arch, nr)
                        );
                    }
                    (Some(first), Some(_)) if first.origin.is_none() => {}
                    (Some(first), Some(i)) => {
                        problems += 1;
                        let _ = writeln!(
                            out,
                            "{}: unreachable rule syscalls[{i}] for {}: already decided by syscalls[{}] ({}); \
                             remove it or move it before that rule",
                            arch.name(),
                            name(arch, nr),
                            first.origin.unwrap_or_default(),
                            first.action
                        );
                    }
                    (None, _) if r.conds.is_empty() => decided_by = Some(r),
                    _ => {}
                }
            }
        }
        for rule in profile.syscalls.iter().flatten() {
            for n in rule
                .all_names()
                .filter(|n| known_anywhere(n) && arch.number(n).is_none())
            {
                elsewhere.entry(arch.name()).or_default().push(n.to_owned());
            }
        }
    }
    for n in &unknown {
        problems += 1;
        let _ = writeln!(
            out,
            "unknown syscall {n:?}: not a syscall of any Linux architecture (typo?)"
        );
    }
    for (arch, names) in &mut elsewhere {
        names.sort();
        names.dedup();
        let _ = writeln!(
            out,
            "note: {} names are not {arch} syscalls (other architectures), ignored there",
            names.len()
        );
    }
    let verdict = if problems == 0 {
        "ok".to_owned()
    } else {
        format!("{problems} problem(s)")
    };
    let _ = writeln!(out, "{source}: {verdict}");
    (out, problems)
}

/// How `policy` decides syscall `nr`, in words; a syscall without rules reads as the default.
fn effective(policy: &Policy, nr: u32) -> String {
    let default = policy.default_decision();
    policy
        .rules()
        .get(&nr)
        .map_or_else(|| default.to_string(), |r| describe(r, default))
}

/// `diff`: per syscall, how A and B differ (native arch, the sandbox's resolution). Empty: same policy.
pub fn diff(a: &str, b: &str) -> Result<String, ProfileError> {
    let host = Host::sandbox();
    let (pa, _) = Policy::from_json(a, &host)?;
    let (pb, _) = Policy::from_json(b, &host)?;
    let mut out = String::new();
    if pa.default_decision() != pb.default_decision() {
        let _ = writeln!(
            out,
            "default action: {} → {}",
            pa.default_decision(),
            pb.default_decision()
        );
    }
    let nrs: BTreeSet<u32> = pa
        .rules()
        .keys()
        .chain(pb.rules().keys())
        .copied()
        .collect();
    for nr in nrs {
        let (da, db) = (effective(&pa, nr), effective(&pb, nr));
        if da != db {
            let _ = writeln!(out, "{:<20} {da}\n{:<20} → {db}", name(host.arch, nr), "");
        }
    }
    Ok(out)
}
