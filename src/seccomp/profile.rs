//! The OCI / Docker seccomp profile as JSON (what `docker run --security-opt seccomp=` reads).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A whole profile, field names as in Docker's `default.json` and the OCI runtime spec.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// What happens to a syscall no rule matches.
    pub default_action: ActionName,
    /// Errno of `defaultAction: SCMP_ACT_ERRNO` (EPERM when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    /// `SCMP_ARCH_*` names the filter should accept (informational here: only native runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architectures: Option<Vec<String>>,
    /// Docker's arch map (informational here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch_map: Option<Vec<ArchMap>>,
    /// Unix socket of an external notification agent (not used by nucleus, tolerated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<String>,
    /// Opaque data for that agent (tolerated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_metadata: Option<String>,
    /// `SECCOMP_FILTER_FLAG_*` names (tolerated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<Vec<String>>,
    /// The rules, in order; for one syscall the first matching rule decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syscalls: Option<Vec<SyscallRule>>,
}

/// One entry of `archMap`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    /// The main architecture.
    pub architecture: String,
    /// Its compat architectures.
    #[serde(default)]
    pub sub_architectures: Option<Vec<String>>,
}

/// One rule: some syscalls, an action, optional argument conditions and conditions on the host.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SyscallRule {
    /// Syscall names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
    /// Legacy single name (Docker before 1.13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What to do when the rule matches.
    pub action: ActionName,
    /// Errno for `SCMP_ACT_ERRNO` (or data for `SCMP_ACT_TRACE`); EPERM when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    /// Argument conditions, all of which must hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<ArgCond>>,
    /// Host conditions that must all hold for the rule to exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub includes: Option<Filter>,
    /// Host conditions any of which removes the rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excludes: Option<Filter>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl SyscallRule {
    /// `names` plus the legacy `name`.
    pub fn all_names(&self) -> impl Iterator<Item = &str> {
        self.names
            .iter()
            .flatten()
            .chain(self.name.iter())
            .map(String::as_str)
    }
}

/// `includes` / `excludes`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    /// Capabilities (`CAP_SYS_ADMIN`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps: Option<Vec<String>>,
    /// Architectures (`amd64`, `arm64`, or `SCMP_ARCH_*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arches: Option<Vec<String>>,
    /// Kernel version `major.minor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
}

/// One argument condition.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ArgCond {
    /// Argument index, 0..=5.
    pub index: u32,
    /// The operand (the mask for `SCMP_CMP_MASKED_EQ`).
    pub value: u64,
    /// The second operand (the expected value for `SCMP_CMP_MASKED_EQ`).
    #[serde(default)]
    pub value_two: u64,
    /// The comparison.
    pub op: CmpOp,
}

/// The seven libseccomp comparisons; all compare unsigned 64-bit values.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CmpOp {
    /// `arg != value`.
    #[serde(rename = "SCMP_CMP_NE")]
    Ne,
    /// `arg < value`.
    #[serde(rename = "SCMP_CMP_LT")]
    Lt,
    /// `arg <= value`.
    #[serde(rename = "SCMP_CMP_LE")]
    Le,
    /// `arg == value`.
    #[serde(rename = "SCMP_CMP_EQ")]
    Eq,
    /// `arg >= value`.
    #[serde(rename = "SCMP_CMP_GE")]
    Ge,
    /// `arg > value`.
    #[serde(rename = "SCMP_CMP_GT")]
    Gt,
    /// `arg & value == valueTwo`.
    #[serde(rename = "SCMP_CMP_MASKED_EQ")]
    MaskedEq,
}

impl CmpOp {
    /// Apply the comparison.
    pub fn holds(self, arg: u64, value: u64, value_two: u64) -> bool {
        match self {
            CmpOp::Ne => arg != value,
            CmpOp::Lt => arg < value,
            CmpOp::Le => arg <= value,
            CmpOp::Eq => arg == value,
            CmpOp::Ge => arg >= value,
            CmpOp::Gt => arg > value,
            CmpOp::MaskedEq => arg & value == value_two,
        }
    }
}

impl fmt::Display for CmpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Eq => "==",
            CmpOp::Ge => ">=",
            CmpOp::Gt => ">",
            CmpOp::MaskedEq => "&",
        })
    }
}

/// The action words of a profile.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum ActionName {
    /// Let the call run.
    #[serde(rename = "SCMP_ACT_ALLOW")]
    Allow,
    /// Fail the call with `errnoRet`.
    #[default]
    #[serde(rename = "SCMP_ACT_ERRNO")]
    Errno,
    /// Kill the thread (libseccomp's historical `KILL`).
    #[serde(rename = "SCMP_ACT_KILL")]
    Kill,
    /// Kill the whole process.
    #[serde(rename = "SCMP_ACT_KILL_PROCESS")]
    KillProcess,
    /// Kill the thread.
    #[serde(rename = "SCMP_ACT_KILL_THREAD")]
    KillThread,
    /// Send SIGSYS.
    #[serde(rename = "SCMP_ACT_TRAP")]
    Trap,
    /// Hand the call to a ptrace tracer (ENOSYS without one).
    #[serde(rename = "SCMP_ACT_TRACE")]
    Trace,
    /// Allow and log.
    #[serde(rename = "SCMP_ACT_LOG")]
    Log,
    /// Ask the user-space notification agent.
    #[serde(rename = "SCMP_ACT_NOTIFY")]
    Notify,
}

impl fmt::Display for ActionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_value(self).ok();
        f.write_str(
            text.as_ref()
                .and_then(|v| v.as_str())
                .unwrap_or("SCMP_ACT_?"),
        )
    }
}

/// Why a profile could not be used.
#[derive(Debug)]
pub enum ProfileError {
    /// The text is not JSON of the expected shape.
    Json {
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// serde's description (names the field or the expected values).
        message: String,
    },
    /// The JSON parsed but a value is out of range.
    Invalid {
        /// Where, e.g. `syscalls[3].args[0].index`.
        path: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// The profile file could not be read.
    Read {
        /// The path given.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProfileError::Json {
                line,
                column,
                message,
            } => write!(
                f,
                "seccomp profile is not valid OCI/Docker JSON at line {line}, column {column}: {message}; \
                 fix that spot (the format is Docker's seccomp default.json, see docs/seccomp.md)"
            ),
            ProfileError::Invalid { path, problem } => {
                write!(f, "seccomp profile field `{path}`: {problem}")
            }
            ProfileError::Read { path, source } => write!(
                f,
                "cannot read seccomp profile {path}: {source}; give an existing JSON file or `default`"
            ),
        }
    }
}

impl std::error::Error for ProfileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProfileError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Highest errno the kernel accepts in `SECCOMP_RET_ERRNO` (`MAX_ERRNO`).
const MAX_ERRNO: u32 = 4095;

impl Profile {
    /// Parse and validate profile JSON.
    pub fn parse(text: &str) -> Result<Profile, ProfileError> {
        let profile: Profile = serde_json::from_str(text).map_err(|e| ProfileError::Json {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        profile.validate()?;
        Ok(profile)
    }

    fn validate(&self) -> Result<(), ProfileError> {
        let invalid = |path: String, problem: String| Err(ProfileError::Invalid { path, problem });
        if let Some(n) = self.default_errno_ret.filter(|n| *n > MAX_ERRNO) {
            return invalid(
                "defaultErrnoRet".into(),
                format!("{n} is above {MAX_ERRNO}; use an errno like 1 (EPERM) or 38 (ENOSYS)"),
            );
        }
        for (i, rule) in self.syscalls.iter().flatten().enumerate() {
            if rule.all_names().next().is_none() {
                return invalid(
                    format!("syscalls[{i}].names"),
                    "the rule names no syscall; add `\"names\": [\"…\"]`".into(),
                );
            }
            if let Some(n) = rule.errno_ret.filter(|n| *n > MAX_ERRNO) {
                return invalid(
                    format!("syscalls[{i}].errnoRet"),
                    format!("{n} is above {MAX_ERRNO}; use a real errno"),
                );
            }
            for (j, arg) in rule.args.iter().flatten().enumerate() {
                if arg.index > 5 {
                    return invalid(
                        format!("syscalls[{i}].args[{j}].index"),
                        format!(
                            "{} is out of range; syscalls have arguments 0 to 5",
                            arg.index
                        ),
                    );
                }
            }
            for (which, filter) in [("includes", &rule.includes), ("excludes", &rule.excludes)] {
                if let Some(text) = filter.as_ref().and_then(|f| f.min_kernel.as_deref())
                    && parse_kernel_version(text).is_none()
                {
                    return invalid(
                        format!("syscalls[{i}].{which}.minKernel"),
                        format!("{text:?} is not a kernel version; write it as \"5.8\""),
                    );
                }
            }
        }
        Ok(())
    }
}

/// `"5.8"`, `"6.18.0-1-amd64"` → `(5, 8)`.
pub fn parse_kernel_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.trim().split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_field_and_both_name_forms() {
        let text = r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,"architectures":["SCMP_ARCH_X86_64"],
            "listenerPath":"/x","listenerMetadata":"m","flags":["SECCOMP_FILTER_FLAG_LOG"],
            "archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":null}],
            "syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","comment":"c"},
                        {"name":"ioctl","action":"SCMP_ACT_ERRNO","errnoRet":1,
                         "args":[{"index":1,"value":21522,"valueTwo":0,"op":"SCMP_CMP_EQ"}],
                         "includes":{"minKernel":"4.8"},"excludes":{"caps":["CAP_SYS_ADMIN"],"arches":["s390"]}}]}"#;
        let p = Profile::parse(text).expect("valid profile");
        assert_eq!(p.default_errno_ret, Some(38));
        let rules = p.syscalls.expect("rules");
        assert_eq!(rules[1].all_names().collect::<Vec<_>>(), ["ioctl"]);
        assert_eq!(rules[1].args.as_ref().expect("args")[0].op, CmpOp::Eq);
    }

    #[test]
    fn errors_name_the_place_and_the_fix() {
        let bad_action = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
            {"names":["read"],"action":"SCMP_ACT_BOGUS"}]}"#;
        let msg = Profile::parse(bad_action)
            .expect_err("bad action")
            .to_string();
        assert!(
            msg.contains("line 2")
                && msg.contains("SCMP_ACT_BOGUS")
                && msg.contains("SCMP_ACT_ALLOW"),
            "{msg}"
        );
        let bad_index = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW",
            "args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#;
        let msg = Profile::parse(bad_index)
            .expect_err("bad index")
            .to_string();
        assert!(
            msg.contains("syscalls[0].args[0].index") && msg.contains("0 to 5"),
            "{msg}"
        );
        let bad_op = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW",
            "args":[{"index":0,"value":1,"op":"SCMP_CMP_ABOUT"}]}]}"#;
        assert!(
            Profile::parse(bad_op)
                .expect_err("bad op")
                .to_string()
                .contains("SCMP_CMP_MASKED_EQ")
        );
        let bad_kernel = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW",
            "includes":{"minKernel":"new"}}]}"#;
        assert!(
            Profile::parse(bad_kernel)
                .expect_err("bad kernel")
                .to_string()
                .contains("minKernel")
        );
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel_version("6.18.0-1-amd64"), Some((6, 18)));
        assert_eq!(parse_kernel_version("4.8"), Some((4, 8)));
        assert_eq!(parse_kernel_version("5"), Some((5, 0)));
        assert_eq!(parse_kernel_version("x"), None);
    }
}
