//! The `nucleus` binary: parse the command line and dispatch.

use nucleus::cli::{Cli, Command};

fn main() {
    // Usage errors are nucleus failing, so they exit 125 like every other nucleus error (as docker run
    // does); --help and --version still exit 0.
    let cli = Cli::parse_args().unwrap_or_else(|err| {
        let code = if err.use_stderr() { 125 } else { 0 };
        let _ = err.print();
        std::process::exit(code);
    });
    let code = match cli.command {
        Command::Run(args) => nucleus::run::main(*args, cli.verbose),
        Command::Trace(args) => nucleus::run::trace::main(*args, cli.verbose),
        Command::Profile(cmd) => nucleus::seccomp::report::main(cmd),
        Command::Manifest(args) => nucleus::context::manifest_command(args),
        Command::Doctor(args) => nucleus::doctor::main(args),
        Command::Audit(cmd) => nucleus::telemetry::audit_log::main(cmd),
        Command::Reap { dirs } => nucleus::run::reaper::main(dirs),
    };
    std::process::exit(code);
}
