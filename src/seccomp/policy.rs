//! A profile resolved for one architecture, kernel and capability set: what the filter enforces.

use std::collections::BTreeMap;
use std::fmt;

use crate::seccomp::profile::{
    ActionName, CmpOp, Filter, Profile, ProfileError, parse_kernel_version,
};
use crate::seccomp::syscalls::{Arch, known_anywhere};
use crate::spec::SeccompSpec;

/// EPERM, the errno of an ERRNO action that names none (as runc and Docker do).
const EPERM: u16 = 1;

/// What the filter does with one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Decision {
    /// The call runs.
    Allow,
    /// The call fails with this errno.
    Errno(u16),
    /// The calling thread is killed.
    KillThread,
    /// The whole process is killed (also: foreign architecture, x32).
    KillProcess,
    /// SIGSYS is delivered.
    Trap,
    /// A ptrace tracer is asked (ENOSYS without one); carries the tracer's data.
    Trace(u16),
    /// The call runs and the kernel logs it.
    Log,
    /// A notification agent decides.
    Notify,
}

impl Decision {
    /// Whether the call runs.
    pub fn allows(self) -> bool {
        matches!(self, Decision::Allow | Decision::Log)
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Allow => f.write_str("allow"),
            Decision::Errno(n) => write!(f, "errno {n} ({})", errno_name(*n)),
            Decision::KillThread => f.write_str("kill thread"),
            Decision::KillProcess => f.write_str("kill process"),
            Decision::Trap => f.write_str("trap"),
            Decision::Trace(n) => write!(f, "trace {n}"),
            Decision::Log => f.write_str("log"),
            Decision::Notify => f.write_str("notify"),
        }
    }
}

/// Short names for the errnos profiles use.
pub fn errno_name(n: u16) -> &'static str {
    match i32::from(n) {
        libc::EPERM => "EPERM",
        libc::ENOSYS => "ENOSYS",
        libc::EACCES => "EACCES",
        libc::EINVAL => "EINVAL",
        libc::ENOENT => "ENOENT",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        _ => "errno",
    }
}

/// One argument condition, ready to compile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cond {
    /// Argument index 0..=5.
    pub index: u8,
    /// The comparison.
    pub op: CmpOp,
    /// Operand (mask for `MaskedEq`).
    pub value: u64,
    /// Second operand (expected value for `MaskedEq`).
    pub value_two: u64,
    /// Compare only the low 32 bits (ioctl requests: the kernel truncates them to `unsigned int`).
    pub low32: bool,
}

impl Cond {
    /// Whether the condition holds for these argument registers.
    pub fn holds(&self, args: &[u64; 6]) -> bool {
        let arg = args[usize::from(self.index)];
        if self.low32 {
            let lo = |v: u64| v & 0xffff_ffff;
            self.op.holds(lo(arg), lo(self.value), lo(self.value_two))
        } else {
            self.op.holds(arg, self.value, self.value_two)
        }
    }
}

impl fmt::Display for Cond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bits = if self.low32 { " (low 32 bits)" } else { "" };
        match self.op {
            CmpOp::MaskedEq => write!(
                f,
                "arg{} & {:#x} == {:#x}{bits}",
                self.index, self.value, self.value_two
            ),
            op => write!(f, "arg{} {op} {:#x}{bits}", self.index, self.value),
        }
    }
}

/// One rule for one syscall: if every condition holds, `action` decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The decision when the rule matches.
    pub action: Decision,
    /// Conditions, all of which must hold (empty: always matches).
    pub conds: Vec<Cond>,
    /// Index in the profile's `syscalls` array; `None` for nucleus's built-in rules.
    pub origin: Option<usize>,
}

/// Context a profile is resolved in (Docker resolves `includes`/`excludes` the same way).
#[derive(Clone, Debug)]
pub struct Host {
    /// Architecture the filter is for.
    pub arch: Arch,
    /// Kernel `(major, minor)`.
    pub kernel: (u32, u32),
    /// Capabilities the workload holds (`CAP_*`); nucleus drops all, so empty.
    pub caps: Vec<String>,
}

impl Host {
    /// Native arch, running kernel, no capabilities: the sandbox's own context.
    pub fn sandbox() -> Host {
        Host {
            arch: Arch::native(),
            kernel: running_kernel(),
            caps: Vec::new(),
        }
    }

    /// The same host, for another architecture.
    pub fn for_arch(arch: Arch) -> Host {
        Host {
            arch,
            ..Host::sandbox()
        }
    }

    fn at_least(&self, text: Option<&str>) -> Option<bool> {
        text.and_then(parse_kernel_version)
            .map(|v| self.kernel >= v)
    }

    /// Whether a rule's `includes` are all met.
    fn includes_met(&self, f: &Filter) -> bool {
        let arch_ok = f
            .arches
            .as_ref()
            .is_none_or(|a| a.is_empty() || a.iter().any(|w| self.arch.matches(w)));
        let caps_ok = f.caps.iter().flatten().all(|c| self.caps.contains(c));
        arch_ok && caps_ok && self.at_least(f.min_kernel.as_deref()).unwrap_or(true)
    }

    /// Whether any of a rule's `excludes` is met.
    fn excludes_met(&self, f: &Filter) -> bool {
        f.arches.iter().flatten().any(|w| self.arch.matches(w))
            || f.caps.iter().flatten().any(|c| self.caps.contains(c))
            || self.at_least(f.min_kernel.as_deref()).unwrap_or(false)
    }
}

/// The running kernel's `(major, minor)` from `/proc/sys/kernel/osrelease`; `(0, 0)` if unreadable,
/// which drops every `minKernel` rule (the safe side: fewer allowances).
pub fn running_kernel() -> (u32, u32) {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .and_then(|t| parse_kernel_version(&t))
        .unwrap_or((0, 0))
}

/// A resolved profile: per-syscall ordered rules plus the default.
#[derive(Clone, Debug)]
pub struct Policy {
    pub(crate) arch: Arch,
    pub(crate) default: Decision,
    pub(crate) rules: BTreeMap<u32, Vec<Rule>>,
    pub(crate) digest: String,
}

/// The default profile (DESIGN §3: embedded in the binary). A static, not a const: one address,
/// which `filter_cache::entry_name` compares to know it without reading 20 KB (a const is copied
/// into each codegen unit that uses it).
static DEFAULT_PROFILE: &str = include_str!("../../profiles/default.json");

/// Calls that are always allowed: denying them confines nothing (a process may always end), and a
/// notified exit would hang the process when no supervisor answers.
const ALWAYS_ALLOWED: [&str; 2] = ["exit", "exit_group"];

/// Calls `allow_ptrace` lets through.
const PTRACE_FAMILY: [&str; 3] = ["ptrace", "process_vm_readv", "process_vm_writev"];

fn action_of(name: ActionName, errno: Option<u32>) -> Decision {
    let ret = errno.and_then(|n| u16::try_from(n).ok()).unwrap_or(EPERM);
    match name {
        ActionName::Allow => Decision::Allow,
        ActionName::Errno => Decision::Errno(ret),
        ActionName::Kill | ActionName::KillThread => Decision::KillThread,
        ActionName::KillProcess => Decision::KillProcess,
        ActionName::Trap => Decision::Trap,
        ActionName::Trace => Decision::Trace(ret),
        ActionName::Log => Decision::Log,
        ActionName::Notify => Decision::Notify,
    }
}

impl Policy {
    /// Resolve a parsed profile for `host`; returns warnings (unknown syscall names).
    pub fn resolve(profile: &Profile, json: &str, host: &Host) -> (Policy, Vec<String>) {
        let mut warnings = Vec::new();
        let mut rules: BTreeMap<u32, Vec<Rule>> = BTreeMap::new();
        for name in ALWAYS_ALLOWED {
            if let Some(nr) = host.arch.number(name) {
                rules.entry(nr).or_default().push(Rule {
                    action: Decision::Allow,
                    conds: vec![],
                    origin: None,
                });
            }
        }
        for (i, rule) in profile.syscalls.iter().flatten().enumerate() {
            if rule.excludes.as_ref().is_some_and(|f| host.excludes_met(f))
                || !rule.includes.as_ref().is_none_or(|f| host.includes_met(f))
            {
                continue;
            }
            let action = action_of(rule.action, rule.errno_ret);
            for name in rule.all_names() {
                let Some(nr) = host.arch.number(name) else {
                    if !known_anywhere(name) {
                        warnings.push(format!(
                            "seccomp profile rule {i}: unknown syscall {name:?} ignored (typo, or newer than Linux 6.18?)"
                        ));
                    }
                    continue;
                };
                let conds = rule
                    .args
                    .iter()
                    .flatten()
                    .map(|a| Cond {
                        index: u8::try_from(a.index).unwrap_or(5),
                        op: a.op,
                        value: a.value,
                        value_two: a.value_two,
                        low32: name == "ioctl" && a.index == 1,
                    })
                    .collect();
                rules.entry(nr).or_default().push(Rule {
                    action,
                    conds,
                    origin: Some(i),
                });
            }
        }
        let default = action_of(profile.default_action, profile.default_errno_ret);
        let digest = blake3::hash(json.as_bytes()).to_hex().to_string();
        (
            Policy {
                arch: host.arch,
                default,
                rules,
                digest,
            },
            warnings,
        )
    }

    /// Parse `json` and resolve it for `host`.
    pub fn from_json(json: &str, host: &Host) -> Result<(Policy, Vec<String>), ProfileError> {
        let profile = Profile::parse(json)?;
        Ok(Policy::resolve(&profile, json, host))
    }

    /// The sandbox's policy: the spec's profile for this machine, no capabilities, `allow_ptrace` applied.
    pub fn from_spec(spec: &SeccompSpec) -> Result<(Policy, Vec<String>), ProfileError> {
        let (mut policy, warnings) = Policy::from_json(&spec.profile_json, &Host::sandbox())?;
        if spec.allow_ptrace {
            policy.allow_first(&PTRACE_FAMILY);
        }
        Ok((policy, warnings))
    }

    /// The embedded default profile, resolved for the sandbox.
    pub fn default_profile() -> Policy {
        Policy::from_json(DEFAULT_PROFILE, &Host::sandbox())
            .map(|(p, _)| p)
            .expect("the embedded default profile is checked by tests")
    }

    /// The embedded default profile's JSON text.
    pub fn default_profile_json() -> &'static str {
        DEFAULT_PROFILE
    }

    /// Put an unconditional allow in front of these syscalls' rules.
    pub fn allow_first(&mut self, names: &[&str]) {
        for name in names {
            if let Some(nr) = self.arch.number(name) {
                let allow = Rule {
                    action: Decision::Allow,
                    conds: vec![],
                    origin: None,
                };
                self.rules.entry(nr).or_default().insert(0, allow);
            }
        }
    }

    /// The architecture this policy was resolved for.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// What happens to calls no rule matches.
    pub fn default_decision(&self) -> Decision {
        self.default
    }

    /// Rules per syscall number, in the order they are tried.
    pub fn rules(&self) -> &BTreeMap<u32, Vec<Rule>> {
        &self.rules
    }

    /// blake3 hex digest of the profile JSON, for audit events.
    pub fn digest(&self) -> String {
        self.digest.clone()
    }

    /// Exactly what the compiled filter does with `(nr, args)` from a native-arch caller.
    pub fn decide(&self, nr: i64, args: &[u64; 6]) -> Decision {
        // The kernel hands the filter `nr` as a 32-bit word.
        let nr = nr as u32;
        if self.arch == Arch::X86_64 && is_x32(nr) {
            return Decision::KillProcess;
        }
        self.rules
            .get(&nr)
            .and_then(|rules| rules.iter().find(|r| r.conds.iter().all(|c| c.holds(args))))
            .map_or(self.default, |r| r.action)
    }

    /// Whether `execve` passes whatever its arguments (the runtime's first execve must not be notified).
    pub fn allows_execve(&self) -> bool {
        let Some(nr) = self.arch.number("execve") else {
            return false;
        };
        match self.rules.get(&nr).and_then(|r| r.first()) {
            Some(rule) => rule.conds.is_empty() && rule.action.allows(),
            None => self.default.allows(),
        }
    }
}

/// First x32 number (`__X32_SYSCALL_BIT`); everything from here up is refused on x86_64.
pub(crate) const X32_BIT: u32 = 0x4000_0000;

/// x32 (or garbage above it), except `-1`, which ptrace uses to skip a call and the default handles.
pub(crate) fn is_x32(nr: u32) -> bool {
    (X32_BIT..u32::MAX).contains(&nr)
}
