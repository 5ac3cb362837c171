//! Per-call cost of seccomp filters compiled by nucleus, measured side by side in one run: no filter,
//! an allow-all filter (the kernel's seccomp entry path alone), the default profile and Docker's
//! profile. Each runs in its own forked child, since a filter cannot be removed. See `bench/seccomp.sh`.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::time::Instant;

use nucleus::seccomp::policy::Host;
use nucleus::seccomp::{FilterMode, Policy};
use nucleus::sys::seccomp::{self as sys, ChildEnd};

const ITERS: u32 = 200_000;
/// Rounds interleave the three configurations, so load from other processes hits all of them alike;
/// the minimum over rounds is the undisturbed cost.
const ROUNDS: usize = 10;

/// One measured call.
type Call = Box<dyn Fn()>;

/// The calls measured: one decided by the number alone, two that read arguments in our profile.
fn calls() -> Vec<(&'static str, Call)> {
    let (pipe_r, _pipe_w) = nix::unistd::pipe().expect("pipe");
    vec![
        (
            "getppid",
            Box::new(|| {
                std::hint::black_box(std::os::unix::process::parent_id());
            }),
        ),
        (
            "ioctl(TCGETS) on a pipe",
            Box::new(move || {
                std::hint::black_box(nix::sys::termios::tcgetattr(pipe_r.as_fd()).is_err());
            }),
        ),
        (
            "socket(AF_UNIX)+close",
            Box::new(|| {
                std::hint::black_box(UnixDatagram::unbound().is_ok());
            }),
        ),
    ]
}

/// Nanoseconds per call, best of three short runs after a warm-up.
fn measure(f: &dyn Fn()) -> f64 {
    for _ in 0..ITERS / 10 {
        f();
    }
    (0..3)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..ITERS {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(ITERS)
        })
        .fold(f64::INFINITY, f64::min)
}

/// Measure every call in a child under `prog` (None: no filter); returns ns per call.
fn run(prog: Option<Vec<libc::sock_filter>>) -> Vec<f64> {
    let (mut ours, mut theirs) = UnixStream::pair().expect("socketpair");
    let end = sys::fork_and_wait(move || {
        if let Some(prog) = &prog {
            nix::sys::prctl::set_no_new_privs().expect("nnp");
            sys::install_filter(prog, false).expect("install filter");
        }
        let line: Vec<String> = calls()
            .iter()
            .map(|(_, f)| format!("{:.2}", measure(f.as_ref())))
            .collect();
        i32::from(theirs.write_all(line.join(" ").as_bytes()).is_err())
    })
    .expect("fork");
    assert_eq!(end, ChildEnd::Exited(0), "benchmark child failed");
    let mut text = String::new();
    ours.read_to_string(&mut text).expect("read results");
    text.split_whitespace()
        .map(|v| v.parse().expect("number"))
        .collect()
}

fn main() {
    let docker_path = std::env::args().nth(1).unwrap_or_else(|| {
        format!(
            "{}/../shared/testdata/seccomp/docker-default.json",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    let docker_json = std::fs::read_to_string(&docker_path).expect("read Docker profile");
    let (docker, _) = Policy::from_json(&docker_json, &Host::sandbox()).expect("Docker profile");
    let default = Policy::default_profile();
    let mode = FilterMode::Enforce { notify: true };
    let default_prog = default.compile(mode).expect("compile default");
    let docker_prog = docker.compile(mode).expect("compile docker");
    println!(
        "filters: default {} insns, docker {} insns; {ITERS} calls, min over {ROUNDS} interleaved rounds",
        default_prog.len(),
        docker_prog.len()
    );
    // The floor: any filter at all sends syscalls through the kernel's seccomp entry path.
    let (allow_all, _) =
        Policy::from_json(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#, &Host::sandbox())
            .expect("allow-all profile");
    let floor_prog = allow_all.compile(mode).expect("compile allow-all");
    let configs = [
        None,
        Some(floor_prog),
        Some(default_prog),
        Some(docker_prog),
    ];
    let mut best = vec![vec![f64::INFINITY; calls().len()]; configs.len()];
    for _ in 0..ROUNDS {
        for (c, prog) in configs.iter().enumerate() {
            for (b, v) in best[c].iter_mut().zip(run(prog.clone())) {
                *b = b.min(v);
            }
        }
    }
    let (none, floor, ours, theirs) = (&best[0], &best[1], &best[2], &best[3]);
    println!("| call | no filter | allow-all filter | nucleus default | Docker default |");
    println!("|---|---:|---:|---:|---:|");
    for (i, (name, _)) in calls().iter().enumerate() {
        let cell = |v: f64| format!("{v:.1} (+{:.1}, x{:.2})", v - none[i], v / none[i]);
        let cells = [floor[i], ours[i], theirs[i]].map(cell);
        println!("| {name} | {:.1} | {} |", none[i], cells.join(" | "));
    }
    println!("(ns per call; in parentheses the difference to no filter and the ratio)");
}
