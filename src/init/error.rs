//! Setup failures: one variant per step, each with the errno and a hint (STYLE habit 2).

use std::fmt;
use std::io;

use crate::ipc::SetupFailure;

/// The named steps of PID 1's setup, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Arming the parent-death signal.
    DieWithParent,
    /// A new session, stdio installed, inherited descriptors closed.
    Stdio,
    /// Waiting for the supervisor to write the id maps.
    IdMaps,
    /// setresuid/setresgid to container root.
    BecomeRoot,
    /// unshare of the cgroup namespace.
    Namespaces,
    /// Making the inherited mounts private.
    PrivateMounts,
    /// Mounting the staging tmpfs and moving the host to /oldroot.
    StagingRoot,
    /// One operation of the root filesystem plan.
    MountPlan,
    /// Presenting the context at /context.
    Context,
    /// Setting the hostname.
    Hostname,
    /// Joining the sandbox's network namespace (loopback only).
    Network,
    /// pivot_root into the new root and detaching the old one.
    PivotRoot,
    /// Finding the command inside the sandbox.
    ResolveCommand,
    /// Building the Landlock ruleset.
    Landlock,
    /// Compiling the seccomp profile.
    Seccomp,
    /// Starting the workload process.
    SpawnWorkload,
    /// Passing the seccomp listener to the supervisor.
    ListenerHandoff,
}

impl Step {
    /// snake_case name used in reports and events.
    pub fn name(self) -> &'static str {
        match self {
            Step::DieWithParent => "die_with_parent",
            Step::Stdio => "stdio",
            Step::IdMaps => "id_maps",
            Step::BecomeRoot => "become_root",
            Step::Namespaces => "namespaces",
            Step::PrivateMounts => "private_mounts",
            Step::StagingRoot => "staging_root",
            Step::MountPlan => "mount_plan",
            Step::Context => "context",
            Step::Hostname => "hostname",
            Step::Network => "network",
            Step::PivotRoot => "pivot_root",
            Step::ResolveCommand => "resolve_command",
            Step::Landlock => "landlock",
            Step::Seccomp => "seccomp",
            Step::SpawnWorkload => "spawn_workload",
            Step::ListenerHandoff => "listener_handoff",
        }
    }

    /// What the user can do when this step fails.
    pub fn hint(self) -> &'static str {
        match self {
            Step::IdMaps | Step::BecomeRoot => {
                "user namespaces must be enabled (sysctl user.max_user_namespaces > 0); run `nucleus doctor`"
            }
            Step::Namespaces => {
                "the kernel refused a namespace; run `nucleus doctor` to see which features exist"
            }
            Step::PrivateMounts | Step::StagingRoot | Step::MountPlan | Step::PivotRoot => {
                "a mount was refused; check that the paths exist and run `nucleus doctor`"
            }
            Step::Context => "check the context directory, --context-mode and --tmpfs-size",
            Step::ResolveCommand => {
                "check the command name; only the host's system directories are visible inside"
            }
            Step::Landlock => {
                "Landlock is unavailable; run without --strict to continue without it"
            }
            Step::Seccomp => "check the profile with `nucleus profile check FILE`",
            _ => {
                "this is likely a bug in nucleus; rerun with -v and see the log in the state directory"
            }
        }
    }
}

/// A failed step with its cause.
#[derive(Debug)]
pub struct SetupError {
    /// Which step failed.
    pub step: Step,
    /// The OS error, when a syscall failed.
    pub errno: Option<i32>,
    /// What happened.
    pub message: String,
    /// 125, 126 or 127.
    pub exit_code: i32,
}

impl SetupError {
    /// A syscall failure in `step`, described by `what`.
    pub fn os(step: Step, what: impl fmt::Display, err: impl Into<io::Error>) -> Self {
        let err = err.into();
        SetupError {
            step,
            errno: err.raw_os_error(),
            message: format!("{what}: {err}"),
            exit_code: 125,
        }
    }

    /// A failure that is not a syscall error.
    pub fn other(step: Step, message: impl Into<String>) -> Self {
        SetupError {
            step,
            errno: None,
            message: message.into(),
            exit_code: 125,
        }
    }

    /// The same error with another exit code (126/127 for command problems).
    pub fn with_exit_code(mut self, code: i32) -> Self {
        self.exit_code = code;
        self
    }

    /// The wire form sent to the supervisor.
    pub fn to_failure(&self) -> SetupFailure {
        SetupFailure {
            step: self.step.name().to_owned(),
            errno: self.errno,
            message: self.message.clone(),
            hint: self.step.hint().to_owned(),
            exit_code: self.exit_code,
        }
    }
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.step.name(), self.message)
    }
}

/// Shorthand for results of setup steps.
pub type StepResult<T> = Result<T, SetupError>;

/// Attach a step to an OS error.
pub trait StepContext<T> {
    /// Map the error to `SetupError::os(step, what, err)`.
    fn step(self, step: Step, what: impl fmt::Display) -> StepResult<T>;
}

impl<T, E: Into<io::Error>> StepContext<T> for Result<T, E> {
    fn step(self, step: Step, what: impl fmt::Display) -> StepResult<T> {
        self.map_err(|e| SetupError::os(step, what, e))
    }
}
