//! Cost of each feature probe, so the runtime knows which it can afford to call per run.
//!
//! Built and run by `bench/doctor.sh`; usage: doctor_probes [ITERATIONS].

use std::time::Instant;

use nucleus::features::{self, BpfProgType};

fn time<T>(name: &str, iterations: u32, mut probe: impl FnMut() -> T) {
    let start = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(probe());
    }
    let per = start.elapsed() / iterations;
    println!("{name:32} {:>10.1} µs", per.as_secs_f64() * 1e6);
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    println!("{:32} {:>13}  ({n} iterations)", "probe", "per call");
    time("landlock_abi", n, features::landlock_abi);
    time("user_notif_available", n, features::user_notif_available);
    time("cgroup_layout", n, features::cgroup_layout);
    time("own_cgroup_dirs", n, features::own_cgroup_dirs);
    time("pidfd_available", n, features::pidfd_available);
    time("userns_available (child)", n, features::userns_available);
    time(
        "sandbox_namespaces (child)",
        n,
        features::sandbox_namespaces,
    );
    time("overlay_in_userns (child)", n, features::overlay_in_userns);
    time("bpf_load raw_tracepoint", n, || {
        features::bpf_load(BpfProgType::RawTracepoint)
    });
    time(
        "nucleus::doctor::collect (all)",
        n / 10 + 1,
        nucleus::doctor::collect,
    );
}
