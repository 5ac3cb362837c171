//! `SandboxSpec`: the validated, pure description of one sandbox, built by the supervisor and read by
//! the sandbox's PID 1 (a clone of it).

use std::borrow::Cow;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything PID 1 needs to build the sandbox; pure data, no kernel state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SandboxSpec {
    /// Short random id, used in event streams, cgroup names and audit logs.
    pub id: String,
    /// Canonical absolute host path of the context directory.
    pub context_dir: PathBuf,
    /// How the context appears at `/context`.
    pub context: ContextSpec,
    /// The command and its arguments, run with `/context` as working directory.
    pub command: Vec<String>,
    /// Environment of the workload (already filtered by the supervisor).
    pub env: Vec<(String, String)>,
    /// Network namespace policy.
    pub network: NetworkMode,
    /// Hostname inside the UTS namespace.
    pub hostname: String,
    /// Size limit of `/tmp` in bytes.
    pub tmp_size_bytes: u64,
    /// Seccomp policy for the workload.
    pub seccomp: SeccompSpec,
    /// Refuse to start when a hardening layer is unavailable.
    pub strict: bool,
    /// Whether the workload's stdio is a PTY (so it takes it as controlling terminal).
    pub tty: bool,
    /// The host terminal's size (rows, columns), set on the console before the workload starts.
    #[serde(default)]
    pub window: Option<(u16, u16)>,
    /// Host ids that container uid/gid 0 map to.
    pub id_map: IdMap,
    /// Cgroup limits (applied by the supervisor, reported by both sides).
    pub limits: Limits,
    /// Extra read-only binds (`--ro-bind`).
    pub ro_binds: Vec<RoBind>,
}

/// One `--ro-bind HOST[:INSIDE]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoBind {
    /// The host path, resolved.
    pub host: PathBuf,
    /// Where it appears inside.
    pub inside: PathBuf,
    /// A directory (else a file, bound onto an empty file).
    pub is_dir: bool,
}

/// How the context directory is presented at `/context`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContextSpec {
    /// Lazy overlay or verified snapshot.
    pub mode: ContextMode,
    /// Write through to the host tree (the only way the sandbox changes host files).
    pub writable: bool,
    /// Size limit in bytes for the tmpfs holding the overlay's upper layer or the snapshot.
    pub tmpfs_size_bytes: u64,
    /// Refuse to start unless the tree's root hash equals this.
    pub expect_root_hash: Option<String>,
    /// Refuse to start unless the tree matches this manifest (JSON text of `nucleus manifest --json`).
    #[serde(default)]
    pub expect_manifest: Option<String>,
    /// Host directory that receives the files the sandbox changed.
    pub save_changes: Option<PathBuf>,
}

/// Context presentation modes (DESIGN §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ContextMode {
    /// Read-only host tree with a tmpfs overlay; writes are discarded.
    Lazy,
    /// A hashed, verified copy of the tree in tmpfs.
    Snapshot,
}

/// Network namespace policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// A fresh network namespace with only loopback.
    None,
    /// Share the host's network namespace (must be asked for explicitly).
    Host,
}

/// Seccomp settings for the workload.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeccompSpec {
    /// Enforce, or trace what would be denied.
    pub mode: SeccompMode,
    /// OCI/Docker profile JSON text: the embedded default (borrowed, never copied) unless a file
    /// was given.
    pub profile_json: Cow<'static, str>,
    /// Where the profile came from, for reports (`default` or a path).
    pub profile_source: String,
    /// Allow ptrace and process_vm_* (denied by the default profile).
    pub allow_ptrace: bool,
}

/// The filter the supervisor compiled from a `SeccompSpec`, for the workload to install.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompiledFilter {
    /// The BPF program, each instruction packed as `code << 48 | jt << 40 | jf << 32 | k`, so that
    /// the kernel's largest program (4,096 instructions) stays under 90 KiB of JSON.
    pub program: Vec<u64>,
    /// Whether it notifies denials to a listener (false: plain errno).
    pub notify: bool,
}

impl CompiledFilter {
    /// Pack a program.
    pub fn new(program: impl IntoIterator<Item = BpfInstruction>, notify: bool) -> Self {
        let pack = |i: BpfInstruction| {
            u64::from(i.code) << 48 | u64::from(i.jt) << 40 | u64::from(i.jf) << 32 | u64::from(i.k)
        };
        CompiledFilter {
            program: program.into_iter().map(pack).collect(),
            notify,
        }
    }

    /// The program's instructions.
    pub fn instructions(&self) -> impl Iterator<Item = BpfInstruction> + '_ {
        self.program.iter().map(|&w| BpfInstruction {
            code: (w >> 48) as u16,
            jt: (w >> 40) as u8,
            jf: (w >> 32) as u8,
            k: w as u32,
        })
    }
}

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BpfInstruction {
    /// Opcode.
    pub code: u16,
    /// Jump offset if true.
    pub jt: u8,
    /// Jump offset if false.
    pub jf: u8,
    /// Constant operand.
    pub k: u32,
}

/// What the seccomp filter does with calls the profile does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SeccompMode {
    /// Deny with the profile's errno and report each denial.
    Enforce,
    /// Let everything run; report what the profile would deny.
    Trace,
}

/// Host ids that container root maps to. Never host root (DESIGN §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    /// Host uid of container uid 0.
    pub host_uid: u32,
    /// Host gid of container gid 0.
    pub host_gid: u32,
    /// True when the supervisor runs as an unprivileged user (setgroups must be denied).
    pub rootless: bool,
}

/// Resource limits applied through a per-sandbox cgroup.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Memory limit in bytes.
    pub memory_bytes: Option<u64>,
    /// CPU quota in cores (fractional).
    pub cpus: Option<f64>,
    /// Maximum number of tasks.
    pub pids: Option<u64>,
}
