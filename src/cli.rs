//! Command-line interface (DESIGN §3). Options are `Option`s so the config file can supply defaults.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::spec::{ContextMode, NetworkMode};

mod fast;

impl Cli {
    /// Parse the process's arguments: `run` and `trace` lines without clap when they can be
    /// (`fast`), clap otherwise, which also reports usage errors.
    pub fn parse_args() -> Result<Self, clap::Error> {
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        fast::parse(&args).map_or_else(|| Self::try_parse_from(args), Ok)
    }
}

/// nucleus: a hardened Linux sandbox for exploring untrusted code.
#[derive(Debug, Parser)]
#[command(name = "nucleus", version, about)]
pub struct Cli {
    /// More diagnostic logging (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in the sandbox, headless, and exit with its status.
    Run(Box<RunArgs>),
    /// Run a command letting every syscall through; export the profile it needs.
    Trace(Box<TraceArgs>),
    /// Inspect, check and compare OCI/Docker seccomp profiles.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Print the root hash (or, with --json, the manifest) of a directory tree.
    Manifest(ManifestArgs),
    /// Report which kernel features nucleus can use here.
    Doctor(DoctorArgs),
    /// Read back the audit logs of past sandboxes.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Internal: removes a sandbox's cgroups when the supervisor is gone.
    #[command(name = "__reap", hide = true)]
    Reap {
        /// The cgroup directories.
        dirs: Vec<PathBuf>,
    },
}

/// Options of `nucleus run`.
#[derive(Debug, Args, Clone, Default)]
pub struct RunArgs {
    /// The project directory, mounted at /context.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The command to run, after `--`.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
    #[command(flatten)]
    pub sandbox: SandboxArgs,
}

/// Options of `nucleus trace`.
#[derive(Debug, Args, Clone)]
pub struct TraceArgs {
    /// Where to write the learned profile (default: the XDG data dir).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Options shared by every command that starts a sandbox.
#[derive(Debug, Args, Clone, Default)]
pub struct SandboxArgs {
    /// How the context appears: lazy overlay (default) or verified snapshot.
    #[arg(long, value_enum)]
    pub context_mode: Option<ContextMode>,
    /// Let the sandbox write through to the host tree.
    #[arg(long)]
    pub writable: bool,
    /// Size limit of each tmpfs (/tmp, the context overlay or snapshot), e.g. 512M, 2G.
    #[arg(long, value_name = "SIZE")]
    pub tmpfs_size: Option<String>,
    /// Refuse to start unless the context's root hash is this.
    #[arg(long, value_name = "HASH")]
    pub expect_root_hash: Option<String>,
    /// Refuse to start unless the context matches this manifest (from `nucleus manifest --json`).
    #[arg(long, value_name = "FILE")]
    pub expect_manifest: Option<PathBuf>,
    /// Keep the files the sandbox created or changed in DIR.
    #[arg(long, value_name = "DIR")]
    pub save_changes: Option<PathBuf>,
    /// Network: none (loopback only, default) or host.
    #[arg(long, value_enum)]
    pub net: Option<NetworkMode>,
    /// Enforce this OCI/Docker seccomp profile instead of the default.
    #[arg(long, value_name = "FILE")]
    pub seccomp_profile: Option<PathBuf>,
    /// Allow ptrace and process_vm_* (denied by the default profile).
    #[arg(long)]
    pub allow_ptrace: bool,
    /// Memory limit, e.g. 512M.
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// CPU limit in cores, e.g. 1.5.
    #[arg(long, value_name = "N")]
    pub cpus: Option<f64>,
    /// Maximum number of processes and threads.
    #[arg(long, value_name = "N")]
    pub pids: Option<u64>,
    /// Refuse to start when any hardening layer is unavailable.
    #[arg(long)]
    pub strict: bool,
    /// Write every event as JSON lines to FILE, or `-` for stderr.
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// Usage sampling interval in milliseconds.
    #[arg(long, value_name = "MS")]
    pub sample_interval_ms: Option<u64>,
    /// Bind a host path read-only into the sandbox: HOST or HOST:INSIDE (repeatable), e.g. a toolchain.
    #[arg(long = "ro-bind", value_name = "HOST[:INSIDE]")]
    pub ro_bind: Vec<String>,
    /// Extra environment variable for the workload, KEY=VALUE (repeatable).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
}

/// `nucleus profile …`
#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Summarise a profile as a table.
    Show {
        /// The profile (OCI/Docker JSON), or `default`.
        file: String,
    },
    /// Parse and compile a profile; list unknown names and unreachable rules. Exit 1 on problems.
    Check {
        /// The profile (OCI/Docker JSON), or `default`.
        file: String,
    },
    /// Show the syscalls and argument rules that differ between two profiles.
    Diff {
        /// The first profile, or `default`.
        a: String,
        /// The second profile, or `default`.
        b: String,
    },
}

/// Options of `nucleus manifest`.
#[derive(Debug, Args)]
pub struct ManifestArgs {
    /// The tree to hash.
    pub dir: PathBuf,
    /// Print the whole manifest as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Options of `nucleus doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `nucleus audit …`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List the audit logs, newest last.
    List,
    /// Print one sandbox's audit log.
    Show {
        /// The sandbox id (a unique prefix is enough).
        id: String,
    },
}
