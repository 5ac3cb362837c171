//! The headless console: the host terminal in raw mode, proxied to the sandbox's own PTY, so nothing
//! inside can reach the host tty (no TIOCSTI on it). Window size follows the host terminal.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;
use std::thread;

use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};

use crate::sys::tty;

/// The host terminal's settings before raw mode, restored on drop, on panic and on signals.
static SAVED: Mutex<Option<Termios>> = Mutex::new(None);

/// Restores the host terminal when dropped.
pub struct RawMode;

impl RawMode {
    /// Put the terminal on stdin into raw mode.
    pub fn enter() -> io::Result<RawMode> {
        let stdin = io::stdin();
        let original = tcgetattr(&stdin)?;
        let mut raw = original.clone();
        cfmakeraw(&mut raw);
        *SAVED.lock().unwrap_or_else(|p| p.into_inner()) = Some(original);
        let previous_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            previous_hook(info);
        }));
        tcsetattr(&stdin, SetArg::TCSANOW, &raw)?;
        Ok(RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// Put the host terminal back as it was (idempotent).
pub fn restore_terminal() {
    if let Some(saved) = SAVED.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        let _ = tcsetattr(io::stdin(), SetArg::TCSANOW, saved);
    }
}

/// Copy the sandbox console to stdout and stdin to the console; returns the output thread, which ends
/// when the console closes (the workload and everything holding the PTY is gone).
pub fn proxy(master: OwnedFd) -> io::Result<thread::JoinHandle<()>> {
    sync_window_size(&master);
    let mut to_console = File::from(master.try_clone()?);
    let mut from_console = File::from(master);
    // The input thread may block in read(stdin) after the sandbox ends; it dies with the process.
    thread::Builder::new()
        .name("console-in".into())
        .spawn(move || {
            let mut buf = [0u8; 4096];
            let mut stdin = io::stdin().lock();
            while let Ok(n @ 1..) = stdin.read(&mut buf) {
                if to_console.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        })?;
    thread::Builder::new()
        .name("console-out".into())
        .spawn(move || {
            let mut buf = [0u8; 16384];
            let mut stdout = io::stdout().lock();
            // EIO means every slave fd closed: the sandbox is gone.
            while let Ok(n @ 1..) = from_console.read(&mut buf) {
                if stdout
                    .write_all(&buf[..n])
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    break;
                }
            }
        })
}

/// Copy the host terminal's size to the console (on start and on SIGWINCH).
pub fn sync_window_size(master: &impl AsRawFd) {
    if let Ok(ws) = tty::window_size(io::stdin().as_raw_fd()) {
        let _ = tty::set_window_size(master.as_raw_fd(), &ws);
    }
}
