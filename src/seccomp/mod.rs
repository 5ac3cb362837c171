//! Seccomp: OCI profile model, syscall tables, BPF compiler, notification listener (DESIGN §4).

pub mod bpf;
pub mod compile;
pub mod learn;
pub mod notify;
pub mod policy;
pub mod profile;
pub mod report;
pub mod syscalls;

pub use compile::{CompileError, FilterMode};
pub use policy::{Decision, Policy};
pub use profile::ProfileError;
pub use syscalls::syscall_name;

#[cfg(test)]
mod compile_tests;
#[cfg(test)]
mod policy_tests;
