//! `nucleus run`: the headless frontend.

use crate::cli::RunArgs;

/// Entry point of `nucleus run`.
pub fn main(_args: RunArgs, _verbose: u8) -> i32 {
    125
}
