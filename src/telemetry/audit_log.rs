//! Audit logs: one JSON-lines file per sandbox in the XDG state directory.

use crate::cli::AuditCommand;

/// Entry point of `nucleus audit`.
pub fn main(_cmd: AuditCommand) -> i32 {
    eprintln!("nucleus: audit: not built yet");
    125
}
