//! `nucleus profile show|check|diff`.

use crate::cli::ProfileCommand;

/// Entry point of `nucleus profile`.
pub fn main(_cmd: ProfileCommand) -> i32 {
    eprintln!("nucleus: profile: not built yet");
    125
}
