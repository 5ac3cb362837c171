//! Seccomp: OCI profile model, syscall tables, BPF compiler, notification listener (DESIGN §4).

pub mod report;
