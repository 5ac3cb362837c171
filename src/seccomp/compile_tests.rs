//! Golden tests of the compiler, and a pure BPF interpreter that checks compile == decide.

use std::collections::BTreeMap;

use crate::seccomp::bpf::{self, disasm};
use crate::seccomp::compile::FilterMode;
use crate::seccomp::policy::{Cond, Decision, Policy, Rule};
use crate::seccomp::profile::CmpOp;
use crate::seccomp::syscalls::Arch;

fn policy(arch: Arch, rules: Vec<(u32, Vec<Rule>)>) -> Policy {
    Policy {
        arch,
        default: Decision::Errno(1),
        rules: rules.into_iter().collect::<BTreeMap<_, _>>(),
        digest: String::new(),
    }
}

fn allow() -> Rule {
    Rule {
        action: Decision::Allow,
        conds: vec![],
        origin: Some(0),
    }
}

fn cond(index: u8, op: CmpOp, value: u64, value_two: u64, low32: bool) -> Cond {
    Cond {
        index,
        op,
        value,
        value_two,
        low32,
    }
}

const ENFORCE: FilterMode = FilterMode::Enforce { notify: false };

#[test]
fn golden_number_only() {
    let p = policy(Arch::Aarch64, vec![(5, vec![allow()])]);
    let prog = p.compile(ENFORCE).expect("compiles");
    let want = "0: ld [4]\n1: jeq #0xc00000b7 2 7\n2: ld [0]\n3: jge #0x5 4 6\n4: jge #0x6 6 5\n\
                5: ret #0x7fff0000\n6: ret #0x50001\n7: ret #0x80000000\n";
    assert_eq!(disasm(&prog), want);
}

#[test]
fn golden_x86_refuses_x32_and_keeps_minus_one_on_default() {
    let p = policy(Arch::X86_64, vec![(110, vec![allow()])]);
    let text = disasm(&p.compile(ENFORCE).expect("compiles"));
    let want = "0: ld [4]\n1: jeq #0xc000003e 2 9\n2: ld [0]\n3: jge #0x6f 5 4\n4: jge #0x6e 7 8\n\
                5: jge #0x40000000 6 8\n6: jge #0xffffffff 8 9\n\
                7: ret #0x7fff0000\n8: ret #0x50001\n9: ret #0x80000000\n";
    assert_eq!(text, want, "{text}");
}

#[test]
fn golden_argument_rules() {
    // ioctl-like: arg1 low 32 bits == 0x5412 → EPERM; else allowed. Then a 64-bit GT.
    let deny = Rule {
        action: Decision::Errno(1),
        conds: vec![cond(1, CmpOp::Eq, 0x5412, 0, true)],
        origin: Some(0),
    };
    let gt = Rule {
        action: Decision::Allow,
        conds: vec![cond(0, CmpOp::Gt, 0x1_0000_0002, 0, false)],
        origin: Some(1),
    };
    let p = policy(
        Arch::Aarch64,
        vec![(29, vec![deny, allow()]), (30, vec![gt])],
    );
    let text = disasm(&p.compile(ENFORCE).expect("compiles"));
    // nr 30: high word decides unless equal, then the low word; nr 29: low 32 bits only.
    let want = "0: ld [4]\n1: jeq #0xc00000b7 2 15\n2: ld [0]\n3: jge #0x1e 5 4\n4: jge #0x1d 11 14\n\
                5: jge #0x1f 14 6\n6: ld [20]\n7: jgt #0x1 13 8\n8: jeq #0x1 9 14\n9: ld [16]\n\
                10: jgt #0x2 13 14\n11: ld [24]\n12: jeq #0x5412 14 13\n\
                13: ret #0x7fff0000\n14: ret #0x50001\n15: ret #0x80000000\n";
    assert_eq!(text, want, "{text}");
}

/// Run a classic BPF program on a `seccomp_data` like the kernel does.
pub(crate) fn run(prog: &[libc::sock_filter], arch: u32, nr: u32, args: &[u64; 6]) -> u32 {
    let word = |off: u32| -> u32 {
        match off {
            0 => nr,
            4 => arch,
            o if (16..64).contains(&o) => {
                let a = args[((o - 16) / 8) as usize];
                if o.is_multiple_of(8) {
                    a as u32
                } else {
                    (a >> 32) as u32
                }
            }
            o => panic!("load of offset {o}"),
        }
    };
    let (mut pc, mut a) = (0usize, 0u32);
    loop {
        let ins = prog[pc];
        let (k, t, f) = (ins.k, usize::from(ins.jt), usize::from(ins.jf));
        pc += 1;
        match ins.code {
            bpf::LD_W_ABS => a = word(k),
            bpf::AND => a &= k,
            bpf::RET => return k,
            bpf::JA => pc += k as usize,
            bpf::JEQ => pc += if a == k { t } else { f },
            bpf::JGT => pc += if a > k { t } else { f },
            bpf::JGE => pc += if a >= k { t } else { f },
            bpf::JSET => pc += if a & k != 0 { t } else { f },
            c => panic!("unexpected opcode {c:#x}"),
        }
    }
}

/// A tiny deterministic generator (no dependency needed for a few thousand samples).
pub(crate) struct Lcg(pub u64);

impl Lcg {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let x = self.0;
        (x ^ (x >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ (x >> 32)
    }
}

fn interesting(rng: &mut Lcg, near: &[u64]) -> u64 {
    let base = near[(rng.next() % near.len() as u64) as usize];
    match rng.next() % 6 {
        0 => base,
        1 => base.wrapping_add(1),
        2 => base.wrapping_sub(1),
        3 => base | (rng.next() << 32),
        4 => base ^ (1 << (rng.next() % 64)),
        _ => rng.next(),
    }
}

#[test]
fn every_op_matches_the_evaluator_on_random_samples() {
    let ops = [
        CmpOp::Ne,
        CmpOp::Lt,
        CmpOp::Le,
        CmpOp::Eq,
        CmpOp::Ge,
        CmpOp::Gt,
        CmpOp::MaskedEq,
    ];
    let values = [
        0u64,
        1,
        0x5412,
        0xffff_ffff,
        0x1_0000_0000,
        0x7fff_ffff_ffff_ffff,
        u64::MAX,
        0x7e02_0000,
    ];
    let mut rng = Lcg(7);
    for (i, op) in ops.iter().enumerate() {
        for low32 in [false, true] {
            let v = values[i % values.len()];
            let c = cond(1, *op, v, v & 0x0f0f_0f0f_0f0f_0f0f, low32);
            let two = cond(2, CmpOp::Le, 0x1_0000_0000, 0, false);
            let rules = vec![
                Rule {
                    action: Decision::Errno(13),
                    conds: vec![c, two],
                    origin: Some(0),
                },
                Rule {
                    action: Decision::Trap,
                    conds: vec![c],
                    origin: Some(1),
                },
                allow(),
            ];
            let p = policy(Arch::X86_64, vec![(16, rules), (0, vec![allow()])]);
            let prog = p.compile(ENFORCE).expect("compiles");
            for _ in 0..400 {
                let nr = if rng.next().is_multiple_of(4) {
                    rng.next() as u32 % 20
                } else {
                    16
                };
                let mut args = [0u64; 6];
                for a in &mut args {
                    *a = interesting(&mut rng, &values);
                }
                let want =
                    crate::seccomp::compile::ret_value(p.decide(i64::from(nr), &args), ENFORCE);
                let got = run(&prog, Arch::X86_64.audit_arch(), nr, &args);
                assert_eq!(got, want, "op {op:?} low32 {low32} nr {nr} args {args:x?}");
            }
        }
    }
}

#[test]
fn modes_map_decisions() {
    use crate::seccomp::compile::ret_value;
    let notify = FilterMode::Enforce { notify: true };
    assert_eq!(ret_value(Decision::Errno(38), ENFORCE), bpf::RET_ERRNO | 38);
    assert_eq!(ret_value(Decision::Errno(1), notify), bpf::RET_USER_NOTIF);
    // ENOSYS is answered in the kernel and not reported, even with live reports or in trace mode.
    assert_eq!(ret_value(Decision::Errno(38), notify), bpf::RET_ERRNO | 38);
    assert_eq!(
        ret_value(Decision::Errno(38), FilterMode::Trace),
        bpf::RET_ERRNO | 38
    );
    assert_eq!(
        ret_value(Decision::KillProcess, notify),
        bpf::RET_KILL_PROCESS
    );
    assert_eq!(
        ret_value(Decision::KillProcess, FilterMode::Trace),
        bpf::RET_USER_NOTIF
    );
    assert_eq!(
        ret_value(Decision::Allow, FilterMode::Trace),
        bpf::RET_ALLOW
    );
    assert_eq!(ret_value(Decision::Log, notify), bpf::RET_LOG);
}

#[test]
fn runs_of_values_compile_as_ranges_and_decide_as_before() {
    let p = Policy::default_profile();
    let prog = p.compile(ENFORCE).expect("compiles");
    // Docker's socket rule refuses ~40 address families one by one (and 448 instructions were
    // compiled before runs became ranges).
    assert!(prog.len() < 250, "{} instructions", prog.len());
    let socket = libc::SYS_socket as u32;
    for family in 0..0x40u64 {
        for high in [0, 1 << 32] {
            for protocol in [0, 1] {
                let args = [family | high, 1, protocol, 0, 0, 0];
                let want =
                    crate::seccomp::compile::ret_value(p.decide(i64::from(socket), &args), ENFORCE);
                let got = run(&prog, p.arch.audit_arch(), socket, &args);
                assert_eq!(got, want, "socket{args:x?}");
            }
        }
    }
}

#[test]
fn only_adjacent_single_value_rules_with_one_action_merge() {
    let eq = |v: u64| cond(0, CmpOp::Eq, v, 0, false);
    let rule = |action, conds| Rule {
        action,
        conds,
        origin: Some(0),
    };
    let (deny, other) = (Decision::Errno(1), Decision::Errno(2));
    let rules = vec![
        rule(deny, vec![eq(3)]),
        rule(deny, vec![eq(5)]),
        rule(deny, vec![eq(4)]),
        rule(other, vec![eq(6)]),
        rule(deny, vec![eq(7)]),
        rule(deny, vec![eq(8)]),
        rule(deny, vec![eq(20), cond(1, CmpOp::Eq, 0, 0, false)]),
        rule(deny, vec![eq(9)]),
        rule(deny, vec![eq(10)]),
        rule(deny, vec![eq(11)]),
        rule(deny, vec![cond(0, CmpOp::Ge, 12, 0, false)]),
    ];
    let merged = crate::seccomp::compile::merge_runs(&rules);
    let range = |lo, hi| {
        rule(
            deny,
            vec![
                cond(0, CmpOp::Ge, lo, 0, false),
                cond(0, CmpOp::Le, hi, 0, false),
            ],
        )
    };
    assert_eq!(
        merged,
        vec![
            range(3, 5),
            rule(other, vec![eq(6)]),
            // Two values: as they were (4 instructions each, a range takes 10).
            rule(deny, vec![eq(7)]),
            rule(deny, vec![eq(8)]),
            rules[6].clone(),
            // Joined to the open range after them.
            rule(deny, vec![cond(0, CmpOp::Ge, 9, 0, false)]),
        ]
    );
}
