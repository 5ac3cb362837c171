//! The Landlock policy of the workload: read and execute everywhere, write only where the sandbox may.

use landlock::{
    ABI, Access, AccessFs, AccessNet, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreated,
    RulesetCreatedAttr, Scope,
};
use serde_json::json;

use crate::spec::{NetworkMode, SandboxSpec};

/// Paths (inside the new root) the workload may write to. Everything else is read-only.
pub const WRITABLE: &[&str] = &["/tmp", "/dev", "/context"];

/// A ruleset ready for `restrict_self`, plus its description for the audit event.
pub struct Prepared {
    /// The created ruleset (holds the kernel fd).
    pub ruleset: RulesetCreated,
    /// ABI, handled rights, rules.
    pub detail: serde_json::Value,
}

/// Build the ruleset at the kernel's own ABI (the caller checks that Landlock exists).
pub fn prepare(spec: &SandboxSpec, kernel_abi: u32) -> Result<Prepared, String> {
    build(spec, kernel_abi).map_err(|e| e.to_string())
}

fn build(spec: &SandboxSpec, kernel_abi: u32) -> Result<Prepared, Box<dyn std::error::Error>> {
    let abi = ABI::from(i32::try_from(kernel_abi).unwrap_or(i32::MAX));
    let read = AccessFs::from_read(abi);
    let all = AccessFs::from_all(abi);
    let mut ruleset = Ruleset::default().handle_access(all)?;
    let net_off = spec.network == NetworkMode::None && kernel_abi >= 4;
    if net_off {
        // No rule allows any port: TCP bind/connect are refused even on loopback.
        ruleset = ruleset.handle_access(AccessNet::from_all(abi))?;
    }
    if kernel_abi >= 6 {
        ruleset = ruleset.scope(Scope::AbstractUnixSocket | Scope::Signal)?;
    }
    let mut created = ruleset.create()?;
    created = created.add_rule(PathBeneath::new(PathFd::new("/")?, read))?;
    for path in WRITABLE {
        created = created.add_rule(PathBeneath::new(PathFd::new(path)?, all))?;
    }
    let detail = json!({
        "abi": kernel_abi,
        "read_execute": ["/"],
        "writable": WRITABLE,
        "tcp_bind_connect": if net_off { "denied" } else { "unrestricted" },
        "scoped": if kernel_abi >= 6 { json!(["abstract_unix_socket", "signal"]) } else { json!([]) },
    });
    Ok(Prepared {
        ruleset: created,
        detail,
    })
}
