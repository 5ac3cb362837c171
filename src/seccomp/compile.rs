//! Policy → classic BPF. Pure: no kernel involved, golden-tested instruction by instruction.
//!
//! Layout: arch check, then a binary search on `nr` whose leaves are either a shared `ret`
//! (number-only decisions, so the kernel's per-nr action cache can prove "always allow") or a
//! per-syscall block of argument checks, where runs of values with one action are ranges
//! (`merge_runs`: the default profile compiles to 217 instructions instead of 448).

use std::collections::BTreeMap;
use std::fmt;

use crate::seccomp::bpf::{self, Emitter, Label};
use crate::seccomp::policy::{Cond, Decision, Policy, Rule, X32_BIT};
use crate::seccomp::profile::CmpOp;
use crate::seccomp::syscalls::Arch;

/// How denials are delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilterMode {
    /// Deny what the profile denies; with `notify`, ERRNO denials (but ENOSYS) go to the supervisor,
    /// which records them and answers with the same errno.
    Enforce {
        /// Turn ERRNO into `SECCOMP_RET_USER_NOTIF`.
        notify: bool,
    },
    /// Let everything run; every call the profile would not allow is notified (`would_deny`), but
    /// ENOSYS probes, which are answered as in enforce mode.
    Trace,
}

/// Why a filter could not be built.
#[derive(Debug, PartialEq, Eq)]
pub enum CompileError {
    /// More instructions than the kernel's `BPF_MAXINSNS`.
    TooLong {
        /// Instructions needed.
        len: usize,
    },
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompileError::TooLong { len } => write!(
                f,
                "seccomp filter needs {len} instructions, the kernel allows {}; merge argument rules \
                 or drop some from the profile",
                bpf::MAX_INSNS
            ),
        }
    }
}

impl std::error::Error for CompileError {}

/// The `SECCOMP_RET_*` value of a decision in a mode.
pub fn ret_value(decision: Decision, mode: FilterMode) -> u32 {
    match (decision, mode) {
        (Decision::Allow, _) => bpf::RET_ALLOW,
        (Decision::Log, _) => bpf::RET_LOG,
        // ENOSYS is "no such call here": libc and runtimes probe with it and fall back (glibc tries
        // clone3 on every thread start). Answered in the kernel, in every mode, it is not reported,
        // costs no round trip to the supervisor (~40 µs each), and trace mode does not learn it
        // (which would allow clone3, whose flags no filter can check).
        (Decision::Errno(n), _) if i32::from(n) == libc::ENOSYS => bpf::RET_ERRNO | u32::from(n),
        (_, FilterMode::Trace) => bpf::RET_USER_NOTIF,
        (Decision::Errno(_), FilterMode::Enforce { notify: true }) => bpf::RET_USER_NOTIF,
        (Decision::Errno(n), _) => bpf::RET_ERRNO | u32::from(n),
        (Decision::KillThread, _) => bpf::RET_KILL_THREAD,
        (Decision::KillProcess, _) => bpf::RET_KILL_PROCESS,
        (Decision::Trap, _) => bpf::RET_TRAP,
        (Decision::Trace(n), _) => bpf::RET_TRACE | u32::from(n),
        (Decision::Notify, _) => bpf::RET_USER_NOTIF,
    }
}

struct Compiler {
    e: Emitter,
    mode: FilterMode,
    rets: BTreeMap<u32, Label>,
}

impl Compiler {
    /// The shared `ret` for a value (all rets are emitted first, so they sit at the end).
    fn ret(&mut self, value: u32) -> Label {
        if let Some(l) = self.rets.get(&value) {
            return *l;
        }
        let l = self.e.ret(value);
        self.rets.insert(value, l);
        l
    }

    fn decision(&mut self, d: Decision) -> Label {
        self.ret(ret_value(d, self.mode))
    }

    /// Rules of one syscall, tried in order; `fallback` when none matches.
    fn rules(&mut self, rules: &[Rule], fallback: Label) -> Label {
        let mut next = fallback;
        for rule in merge_runs(rules).iter().rev() {
            let matched = self.decision(rule.action);
            next = self.conds(&rule.conds, matched, next);
        }
        next
    }

    /// AND of conditions.
    fn conds(&mut self, conds: &[Cond], matched: Label, unmatched: Label) -> Label {
        let mut next = matched;
        for c in conds.iter().rev() {
            next = self.cond(c, next, unmatched);
        }
        next
    }

    /// One 64-bit (or low-32-bit) unsigned comparison.
    fn cond(&mut self, c: &Cond, t: Label, f: Label) -> Label {
        let (hi, lo) = ((c.value >> 32) as u32, c.value as u32);
        let e = &mut self.e;
        // NE, LT and LE are the negations of EQ, GE and GT.
        let (op, t, f) = match c.op {
            CmpOp::Ne => (CmpOp::Eq, f, t),
            CmpOp::Lt => (CmpOp::Ge, f, t),
            CmpOp::Le => (CmpOp::Gt, f, t),
            op => (op, t, f),
        };
        let (ld_lo, ld_hi) = (bpf::off_arg_lo(c.index), bpf::off_arg_hi(c.index));
        match op {
            CmpOp::MaskedEq => {
                let (dhi, dlo) = ((c.value_two >> 32) as u32, c.value_two as u32);
                e.jump(bpf::JEQ, dlo, t, f);
                e.and(lo);
                let low = e.load(ld_lo);
                if c.low32 {
                    return low;
                }
                e.jump(bpf::JEQ, dhi, low, f);
                e.and(hi);
                e.load(ld_hi)
            }
            CmpOp::Eq | CmpOp::Gt | CmpOp::Ge => {
                let code = match op {
                    CmpOp::Eq => bpf::JEQ,
                    CmpOp::Gt => bpf::JGT,
                    _ => bpf::JGE,
                };
                e.jump(code, lo, t, f);
                let low = e.load(ld_lo);
                if c.low32 {
                    return low;
                }
                let eq = e.jump(bpf::JEQ, hi, low, f);
                if op != CmpOp::Eq {
                    // The high word decides unless it is equal.
                    e.jump(bpf::JGT, hi, t, eq);
                }
                e.load(ld_hi)
            }
            CmpOp::Ne | CmpOp::Lt | CmpOp::Le => unreachable!("negated above"),
        }
    }

    /// Binary search over `[start, next start)` ranges of `nr`.
    fn tree(&mut self, ranges: &[(u32, Label)]) -> Label {
        if ranges.len() == 1 {
            return ranges[0].1;
        }
        let mid = ranges.len() / 2;
        let right = self.tree(&ranges[mid..]);
        let left = self.tree(&ranges[..mid]);
        self.e.jump(bpf::JGE, ranges[mid].0, right, left)
    }
}

impl Policy {
    /// Compile to classic BPF for `seccomp(SECCOMP_SET_MODE_FILTER)`.
    pub fn compile(&self, mode: FilterMode) -> Result<Vec<libc::sock_filter>, CompileError> {
        let mut c = Compiler {
            e: Emitter::default(),
            mode,
            rets: BTreeMap::new(),
        };
        let kill = c.ret(bpf::RET_KILL_PROCESS);
        let default = c.decision(self.default);
        // Per-syscall targets: a shared ret when the number alone decides, else an argument block.
        let mut targets: Vec<(u32, Label)> = Vec::new();
        let mut decisions: Vec<(u32, Decision)> = Vec::new();
        for (&nr, rules) in &self.rules {
            match rules.first() {
                Some(r) if r.conds.is_empty() => decisions.push((nr, r.action)),
                Some(_) => {
                    let block = c.rules(rules, default);
                    targets.push((nr, block));
                }
                None => {}
            }
        }
        for (nr, d) in decisions {
            let l = c.decision(d);
            targets.push((nr, l));
        }
        targets.sort_by_key(|(nr, _)| *nr);
        let mut ranges = ranges(&targets, default);
        if self.arch == Arch::X86_64 {
            // x32 numbers reuse native handlers with other argument layouts: refuse them outright.
            ranges.retain(|(start, _)| *start < X32_BIT);
            ranges.push((X32_BIT, kill));
            ranges.push((u32::MAX, default));
        }
        merge(&mut ranges);
        let dispatch = c.tree(&ranges);
        if c.e.last() != Some(dispatch) {
            c.e.ja(dispatch);
        }
        let load_nr = c.e.load(bpf::OFF_NR);
        // A foreign arch (i386 `int 0x80`, AArch32) has other numbers and would bypass every rule.
        c.e.jump(bpf::JEQ, self.arch.audit_arch(), load_nr, kill);
        c.e.load(bpf::OFF_ARCH);
        let len = c.e.len();
        if len > bpf::MAX_INSNS {
            return Err(CompileError::TooLong { len });
        }
        Ok(c.e.finish())
    }
}

/// The rules with each run of contiguous values turned into one range rule (`Ge`, `Le`): adjacent
/// rules with the same action and a single `Eq` (or, closing a run, `Ge`) on the same argument.
///
/// Why this is the same filter: first match wins among rules, but adjacent rules with the same
/// action may be tried in any order, and together they match exactly the values of their ranges.
/// Why: Docker's `socket` rule refuses ~40 address families one by one, 4 instructions each; the
/// kernel converts and JIT-compiles every instruction at every start.
pub(super) fn merge_runs(rules: &[Rule]) -> Vec<Rule> {
    // A 64-bit `Eq` takes 4 instructions, a range 10: merge runs of 3 values or more.
    const MIN_RUN: u64 = 3;
    let mut out = Vec::with_capacity(rules.len());
    let mut rest = rules;
    while let Some(first) = rest.first() {
        let Some(key) = run_key(first) else {
            out.push(first.clone());
            rest = &rest[1..];
            continue;
        };
        let len = rest.iter().take_while(|r| run_key(r) == Some(key)).count();
        let (run, after) = rest.split_at(len);
        rest = after;
        let (index, low32, action) = key;
        let mut values: Vec<u64> = Vec::new();
        let mut from: Option<u64> = None;
        for cond in run.iter().map(|r| &r.conds[0]) {
            match cond.op {
                CmpOp::Ge => from = Some(from.map_or(cond.value, |f| f.min(cond.value))),
                _ => values.push(cond.value),
            }
        }
        values.sort_unstable();
        values.dedup();
        let cond = |op, value| Cond {
            index,
            op,
            value,
            value_two: 0,
            low32,
        };
        let rule = |conds| Rule {
            action,
            conds,
            origin: run[0].origin,
        };
        // Contiguous stretches of values: (first, last).
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for v in values {
            match ranges.last_mut() {
                Some((_, last)) if last.checked_add(1) == Some(v) => *last = v,
                _ => ranges.push((v, v)),
            }
        }
        for (lo, hi) in ranges {
            match from {
                // Reaches the open range: joins it.
                Some(f) if hi.saturating_add(1) >= f => from = Some(f.min(lo)),
                _ if hi - lo >= MIN_RUN - 1 => {
                    out.push(rule(vec![cond(CmpOp::Ge, lo), cond(CmpOp::Le, hi)]))
                }
                _ => out.extend((lo..=hi).map(|v| rule(vec![cond(CmpOp::Eq, v)]))),
            }
        }
        if let Some(f) = from {
            out.push(rule(vec![cond(CmpOp::Ge, f)]));
        }
    }
    out
}

/// What rules must share to be merged by `merge_runs`: one `Eq` or `Ge` condition, on this
/// argument, with this width, and this action. A 32-bit comparison's operand must fit in 32 bits
/// (its high bits are ignored, so a run could wrap).
fn run_key(rule: &Rule) -> Option<(u8, bool, Decision)> {
    match rule.conds.as_slice() {
        [c] if matches!(c.op, CmpOp::Eq | CmpOp::Ge)
            && !(c.low32 && c.value > u64::from(u32::MAX)) =>
        {
            Some((c.index, c.low32, rule.action))
        }
        _ => None,
    }
}

/// Cover all of `u32` with `(start, target)` ranges: listed numbers go to their target, gaps to `default`.
fn ranges(targets: &[(u32, Label)], default: Label) -> Vec<(u32, Label)> {
    let mut out = vec![(0, default)];
    for &(nr, l) in targets {
        out.push((nr, l));
        if let Some(after) = nr.checked_add(1) {
            out.push((after, default));
        }
    }
    merge(&mut out);
    out
}

/// Drop empty ranges (same start: the later wins) and join neighbours with the same target.
fn merge(ranges: &mut Vec<(u32, Label)>) {
    let mut out: Vec<(u32, Label)> = Vec::with_capacity(ranges.len());
    for &(start, l) in ranges.iter() {
        if let Some(last) = out.last_mut() {
            if last.0 == start {
                *last = (start, l);
                if out.len() >= 2 && out[out.len() - 2].1 == l {
                    out.pop();
                }
                continue;
            }
            if last.1 == l {
                continue;
            }
        }
        out.push((start, l));
    }
    *ranges = out;
}
