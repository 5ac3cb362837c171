//! The command lines of `run` and `trace`, read without clap when they use only what this parser
//! knows: long options as `--name VALUE` or `--name=VALUE`, `-e`, `-o` and `-v`, one directory and
//! the command after `--`. Anything else (help, version, an unknown or repeated option, a value
//! that does not parse, a missing command) returns None, and clap reads the line and reports.
//!
//! Why: building clap's parser for every subcommand and option took ~0.2 ms of each start, ~4 % of
//! `nucleus run -- /bin/true` (docs/BENCHMARKS.md). `agrees_with_clap` in the tests holds the two
//! to the same result, option by option.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::ValueEnum;

use super::{Cli, Command, RunArgs, SandboxArgs, TraceArgs};

/// The `Cli` that clap would make of `args` (the program name first), if this parser can read it.
pub fn parse(args: &[OsString]) -> Option<Cli> {
    let args: Vec<&str> = args.iter().map(|a| a.to_str()).collect::<Option<_>>()?;
    let (subcommand, rest) = args.get(1..)?.split_first()?;
    let tracing = match *subcommand {
        "run" => false,
        "trace" => true,
        _ => return None,
    };
    let dashes = rest.iter().position(|a| *a == "--")?;
    let (options, command) = (&rest[..dashes], &rest[dashes + 1..]);
    if command.is_empty() {
        return None;
    }
    let mut line = Line::default();
    let mut tokens = options.iter();
    while let Some(token) = tokens.next() {
        if let Some(long) = token.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (long, None),
            };
            line.long(name, inline, &mut tokens, tracing)?;
        } else if let Some(short) = token.strip_prefix('-').filter(|s| !s.is_empty()) {
            line.short(short, &mut tokens, tracing)?;
        } else if line.dir.replace(PathBuf::from(token)).is_some() {
            return None;
        }
    }
    let run = RunArgs {
        dir: line.dir.unwrap_or_else(|| PathBuf::from(".")),
        command: command.iter().map(|a| a.to_string()).collect(),
        sandbox: line.sandbox,
    };
    let command = if tracing {
        Command::Trace(Box::new(TraceArgs {
            output: line.output,
            run,
        }))
    } else {
        Command::Run(Box::new(run))
    };
    Some(Cli {
        verbose: line.verbose,
        command,
    })
}

/// What the options before `--` said so far.
#[derive(Default)]
struct Line {
    sandbox: SandboxArgs,
    dir: Option<PathBuf>,
    output: Option<PathBuf>,
    verbose: u8,
}

/// The next token as an option's value: none that clap would read as an option or refuse.
fn value<'a>(
    inline: Option<&'a str>,
    tokens: &mut std::slice::Iter<'_, &'a str>,
) -> Option<&'a str> {
    let value = match inline {
        Some(value) => value,
        None => tokens
            .next()
            .copied()
            .filter(|v| *v == "-" || !v.starts_with('-'))?,
    };
    (!value.is_empty()).then_some(value)
}

/// Set a single-valued option once; a second time is clap's error to report.
fn once<T>(slot: &mut Option<T>, value: Option<T>) -> Option<()> {
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(value?);
            Some(())
        }
    }
}

/// Add to a repeatable option.
fn push(list: &mut Vec<String>, value: Option<&str>) -> Option<()> {
    list.push(value?.to_string());
    Some(())
}

/// Set a flag once.
fn flag(slot: &mut bool, inline: Option<&str>) -> Option<()> {
    if *slot || inline.is_some() {
        return None;
    }
    *slot = true;
    Some(())
}

impl Line {
    fn long<'a>(
        &mut self,
        name: &str,
        inline: Option<&'a str>,
        tokens: &mut std::slice::Iter<'_, &'a str>,
        tracing: bool,
    ) -> Option<()> {
        let path = |v: &str| PathBuf::from(v);
        match name {
            "verbose" if inline.is_none() => return self.count_verbose(1),
            "output" if tracing => return once(&mut self.output, value(inline, tokens).map(path)),
            _ => {}
        }
        let s = &mut self.sandbox;
        match name {
            "writable" => flag(&mut s.writable, inline),
            "allow-ptrace" => flag(&mut s.allow_ptrace, inline),
            "strict" => flag(&mut s.strict, inline),
            "context-mode" => once(
                &mut s.context_mode,
                ValueEnum::from_str(value(inline, tokens)?, false).ok(),
            ),
            "net" => once(
                &mut s.net,
                ValueEnum::from_str(value(inline, tokens)?, false).ok(),
            ),
            "tmpfs-size" => once(&mut s.tmpfs_size, value(inline, tokens).map(String::from)),
            "expect-root-hash" => once(
                &mut s.expect_root_hash,
                value(inline, tokens).map(String::from),
            ),
            "memory" => once(&mut s.memory, value(inline, tokens).map(String::from)),
            "expect-manifest" => once(&mut s.expect_manifest, value(inline, tokens).map(path)),
            "save-changes" => once(&mut s.save_changes, value(inline, tokens).map(path)),
            "seccomp-profile" => once(&mut s.seccomp_profile, value(inline, tokens).map(path)),
            "events" => once(&mut s.events, value(inline, tokens).map(path)),
            "cpus" => once(&mut s.cpus, value(inline, tokens)?.parse().ok()),
            "pids" => once(&mut s.pids, value(inline, tokens)?.parse().ok()),
            "sample-interval-ms" => once(
                &mut s.sample_interval_ms,
                value(inline, tokens)?.parse().ok(),
            ),
            "ro-bind" => push(&mut s.ro_bind, value(inline, tokens)),
            "env" => push(&mut s.env, value(inline, tokens)),
            _ => None,
        }
    }

    /// `-e VALUE`, `-o FILE` (trace) or a run of `v`s; nothing bundled or attached.
    fn short(
        &mut self,
        short: &str,
        tokens: &mut std::slice::Iter<'_, &str>,
        tracing: bool,
    ) -> Option<()> {
        match short {
            "e" => push(&mut self.sandbox.env, value(None, tokens)),
            "o" if tracing => once(&mut self.output, value(None, tokens).map(PathBuf::from)),
            vs if vs.bytes().all(|b| b == b'v') => self.count_verbose(vs.len()),
            _ => None,
        }
    }

    fn count_verbose(&mut self, n: usize) -> Option<()> {
        self.verbose = self.verbose.checked_add(u8::try_from(n).ok()?)?;
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    fn argv(line: &str) -> Vec<OsString> {
        std::iter::once("nucleus")
            .chain(line.split(' '))
            .map(OsString::from)
            .collect()
    }

    /// The fast parser reads `line` exactly as clap does.
    fn same(line: &str) {
        let args = argv(line);
        let fast = parse(&args).unwrap_or_else(|| panic!("not read fast: {line}"));
        let clap = Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(format!("{fast:?}"), format!("{clap:?}"), "{line}");
    }

    /// The fast parser leaves `line` to clap.
    fn left_to_clap(line: &str) {
        assert!(parse(&argv(line)).is_none(), "read fast: {line}");
    }

    #[test]
    fn agrees_with_clap() {
        same("run -- true");
        same("run . -- sh -c exit 3");
        same("run /tmp/x -- --weird -- args");
        same("trace -o out.json dir -- make");
        same("trace --output=p.json -v -- make");
        same("run -vv --verbose dir -- x");
        same("run --writable --allow-ptrace --strict dir -- x");
        same("run dir --net host --context-mode snapshot -- x");
        same("run --net=none --context-mode=lazy dir -- x");
        same("run --tmpfs-size 2G --memory=512M --cpus 1.5 --pids=64 -- x");
        same("run --expect-root-hash abc --expect-manifest m.json --save-changes out -- x");
        same("run --seccomp-profile p.json --events - --sample-interval-ms 50 -- x");
        same("run --events=ev.jsonl --ro-bind /opt --ro-bind=/a:/b -e K=V --env=A=B -e X= -- x");
    }

    #[test]
    fn reads_every_option_of_run_and_trace() {
        // Each option clap knows is one the fast parser reads, so no start pays for clap.
        let mut cli = Cli::command();
        cli.build();
        let mut read = 0;
        for sub in ["run", "trace"] {
            let command = cli.find_subcommand(sub).expect(sub);
            for arg in command.get_arguments().filter(|a| !a.is_positional()) {
                let Some(long) = arg.get_long().filter(|l| *l != "help") else {
                    continue;
                };
                let is_flag = arg.get_num_args().is_some_and(|n| n.max_values() == 0);
                let line = if is_flag {
                    format!("{sub} --{long} -- x")
                } else {
                    let value = arg
                        .get_possible_values()
                        .first()
                        .map_or("1", |v| v.get_name())
                        .to_string();
                    format!("{sub} --{long} {value} -- x")
                };
                same(&line);
                read += 1;
            }
        }
        // The 17 sandbox options and --verbose, for run and for trace, and trace's --output.
        assert_eq!(read, 37);
    }

    #[test]
    fn leaves_the_rest_to_clap() {
        for line in [
            "run --help",
            "run -h -- x",
            "--version",
            "-v run -- x",
            "doctor",
            "run dir",
            "run dir --",
            "run a b -- x",
            "run --net wifi -- x",
            "run --net host --net none -- x",
            "run --writable --writable -- x",
            "run --writable=yes -- x",
            "run --pids many -- x",
            "run --cpus -- x",
            "run --events -x -- y",
            "run --tmpfs-size= -- x",
            "run --output o -- x",
            "run -wv -- x",
            "run -ex -- y",
            "run --unknown -- x",
        ] {
            left_to_clap(line);
        }
    }
}
