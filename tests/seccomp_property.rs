//! The evaluator (`Policy::decide`) against the real kernel filter on random (nr, args) samples
//! (the compiler merges runs of values into ranges; the evaluator does not).
//! Every rule's action is a distinct errno, so nothing actually runs and the errno tells which rule hit.

mod seccomp_common;

use nucleus::seccomp::policy::Host;
use nucleus::seccomp::{Decision, FilterMode, Policy};
use nucleus::sys::seccomp::{self as sys, ChildEnd};
use seccomp_common::{install, sc};

/// Rules on four syscalls with every comparison, 64-bit and ioctl's 32-bit request.
fn probe_profile() -> String {
    let rule = |name: &str, errno: u32, args: &str| {
        format!(
            r#"{{"names":["{name}"],"action":"SCMP_ACT_ERRNO","errnoRet":{errno},"args":[{args}]}}"#
        )
    };
    let arg = |index: u32, op: &str, value: u64, two: u64| {
        format!(r#"{{"index":{index},"value":{value},"valueTwo":{two},"op":"SCMP_CMP_{op}"}}"#)
    };
    let rules = [
        rule("personality", 101, &arg(0, "EQ", 0xffff_ffff, 0)),
        rule(
            "personality",
            106,
            &arg(0, "MASKED_EQ", 0xff00_0000_0000_00f0, 0x0100_0000_0000_0010),
        ),
        rule("personality", 102, &arg(0, "LT", 8, 0)),
        rule(
            "personality",
            103,
            &format!("{},{}", arg(0, "LE", 0x1_0000_0000, 0), arg(1, "NE", 0, 0)),
        ),
        rule("personality", 104, &arg(0, "GT", 0x7fff_ffff_ffff_ffff, 0)),
        rule("personality", 105, &arg(0, "GE", 0x1_0000_0005, 0)),
        // A run of 32-bit values with one action: compiled as one range.
        rule("ioctl", 115, &arg(1, "EQ", 0x5413, 0)),
        rule("ioctl", 115, &arg(1, "EQ", 0x5415, 0)),
        rule("ioctl", 115, &arg(1, "EQ", 0x5414, 0)),
        rule("ioctl", 111, &arg(1, "EQ", 0x5412, 0)),
        rule("ioctl", 112, &arg(1, "MASKED_EQ", 0xffff_ff00, 0x5400)),
        rule("ioctl", 113, &arg(1, "GT", 0xffff_0000, 0)),
        rule("ioctl", 114, ""),
        rule(
            "socket",
            121,
            &format!("{},{}", arg(0, "EQ", 16, 0), arg(2, "EQ", 0, 0)),
        ),
        rule("socket", 122, &arg(0, "LE", 10, 0)),
        // Runs of 64-bit values, broken by another action, one joining an open range (`GE`).
        rule("shutdown", 141, &arg(1, "EQ", 3, 0)),
        rule("shutdown", 141, &arg(1, "EQ", 4, 0)),
        rule("shutdown", 141, &arg(1, "EQ", 5, 0)),
        rule("shutdown", 142, &arg(1, "EQ", 7, 0)),
        rule("shutdown", 141, &arg(1, "EQ", 9, 0)),
        rule("shutdown", 141, &arg(1, "EQ", 10, 0)),
        rule("shutdown", 141, &arg(1, "GE", 11, 0)),
        rule("shutdown", 143, &arg(1, "LE", 8, 0)),
        rule("getppid", 131, ""),
        r#"{"names":["write"],"action":"SCMP_ACT_ALLOW"}"#.to_owned(),
    ];
    format!(
        r#"{{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,"syscalls":[{}]}}"#,
        rules.join(",")
    )
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn arg(&mut self) -> u64 {
        const NEAR: [u64; 14] = [
            0,
            1,
            4,
            6,
            8,
            10,
            16,
            0x5412,
            0x5414,
            0x5416,
            0xffff_ffff,
            0x1_0000_0000,
            0x1_0000_0005,
            u64::MAX,
        ];
        let base = NEAR[(self.next() % NEAR.len() as u64) as usize];
        match self.next() % 6 {
            0 => base,
            1 => base.wrapping_add(1),
            2 => base.wrapping_sub(1),
            3 => base ^ (self.next() << 32),
            4 => 0x0100_0000_0000_0010 | (self.next() & 0x00ff_ffff_ffff_ff0f),
            _ => self.next(),
        }
    }
}

#[test]
fn decide_matches_the_kernel_on_random_samples() {
    let (policy, warnings) =
        Policy::from_json(&probe_profile(), &Host::sandbox()).expect("probe profile");
    assert!(warnings.is_empty());
    let nrs = [
        libc::SYS_personality,
        libc::SYS_ioctl,
        libc::SYS_socket,
        libc::SYS_shutdown,
        libc::SYS_getppid,
        libc::SYS_getpid,
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let samples: Vec<(i64, [u64; 6])> = (0..10_000)
        .map(|_| {
            let nr = nrs[(rng.next() % nrs.len() as u64) as usize];
            let mut args = [0u64; 6];
            args.iter_mut().for_each(|a| *a = rng.arg());
            if rng.next().is_multiple_of(3) {
                args[2] = 0;
            }
            (nr, args)
        })
        .collect();
    let want: Vec<Option<i32>> = samples
        .iter()
        .map(|(nr, args)| match policy.decide(*nr, args) {
            Decision::Errno(n) => Some(i32::from(n)),
            other => panic!("probe profile only has ERRNO outcomes, got {other:?}"),
        })
        .collect();
    // Each outcome must occur, or the sample says little.
    for errno in [
        38, 101, 102, 103, 104, 105, 106, 111, 112, 113, 114, 115, 121, 122, 131, 141, 142, 143,
    ] {
        assert!(want.contains(&Some(errno)), "no sample hit errno {errno}");
    }
    let end = sys::fork_and_wait(|| {
        install(&policy, FilterMode::Enforce { notify: false });
        let mut bad = 0;
        for ((nr, args), want) in samples.iter().zip(&want) {
            let got = sc(*nr, *args).err();
            if got != *want {
                eprintln!("nr {nr} args {args:x?}: kernel {got:?}, decide {want:?}");
                bad += 1;
            }
        }
        i32::from(bad > 0)
    })
    .expect("fork");
    assert_eq!(
        end,
        ChildEnd::Exited(0),
        "kernel and evaluator disagree (see stderr)"
    );
}
