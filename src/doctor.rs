//! `nucleus doctor`: which kernel features are available, and what nucleus does without each.

use crate::cli::DoctorArgs;

/// Entry point of `nucleus doctor`.
pub fn main(_args: DoctorArgs) -> i32 {
    eprintln!("nucleus: doctor: not built yet");
    125
}
