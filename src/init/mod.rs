//! `nucleus __init`: builds the sandbox as a straight line of named steps (DESIGN §2).

/// Entry point of the hidden `__init` subcommand.
pub fn main() -> i32 {
    125
}
