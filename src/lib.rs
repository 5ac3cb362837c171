//! nucleus: a Linux sandbox shell. See docs/ARCHITECTURE.md for the layers.

pub mod cache;
pub mod cgroup;
pub mod cli;
pub mod config;
pub mod context;
pub mod doctor;
pub mod events;
pub mod features;
pub mod init;
pub mod ipc;
pub mod launcher;
pub mod run;
pub mod seccomp;
pub mod spec;
pub mod sys;
pub mod telemetry;
