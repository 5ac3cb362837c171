//! The project directory at /context: lazy overlay, verified snapshot, change report (DESIGN §3).

use crate::cli::ManifestArgs;

/// Entry point of `nucleus manifest`.
pub fn manifest_command(_args: ManifestArgs) -> i32 {
    eprintln!("nucleus: manifest: not built yet");
    125
}
