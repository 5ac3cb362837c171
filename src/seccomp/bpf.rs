//! Classic BPF building blocks: opcodes, return values, and an emitter that lays a program out
//! back to front, so every jump target is already placed and its distance is known.

/// `BPF_LD | BPF_W | BPF_ABS`: load a 32-bit word of `seccomp_data` into A.
pub const LD_W_ABS: u16 = 0x20;
/// `BPF_JMP | BPF_JA`: unconditional jump by `k`.
pub const JA: u16 = 0x05;
/// `BPF_JMP | BPF_JEQ | BPF_K`.
pub const JEQ: u16 = 0x15;
/// `BPF_JMP | BPF_JGT | BPF_K` (unsigned).
pub const JGT: u16 = 0x25;
/// `BPF_JMP | BPF_JGE | BPF_K` (unsigned).
pub const JGE: u16 = 0x35;
/// `BPF_JMP | BPF_JSET | BPF_K`.
pub const JSET: u16 = 0x45;
/// `BPF_ALU | BPF_AND | BPF_K`.
pub const AND: u16 = 0x54;
/// `BPF_RET | BPF_K`.
pub const RET: u16 = 0x06;

/// `SECCOMP_RET_KILL_PROCESS`.
pub const RET_KILL_PROCESS: u32 = 0x8000_0000;
/// `SECCOMP_RET_KILL_THREAD`.
pub const RET_KILL_THREAD: u32 = 0;
/// `SECCOMP_RET_TRAP`.
pub const RET_TRAP: u32 = 0x0003_0000;
/// `SECCOMP_RET_ERRNO` (the errno goes in the low 16 bits).
pub const RET_ERRNO: u32 = 0x0005_0000;
/// `SECCOMP_RET_USER_NOTIF`.
pub const RET_USER_NOTIF: u32 = 0x7fc0_0000;
/// `SECCOMP_RET_TRACE` (the tracer's data goes in the low 16 bits).
pub const RET_TRACE: u32 = 0x7ff0_0000;
/// `SECCOMP_RET_LOG`.
pub const RET_LOG: u32 = 0x7ffc_0000;
/// `SECCOMP_RET_ALLOW`.
pub const RET_ALLOW: u32 = 0x7fff_0000;

/// Offset of `nr` in `struct seccomp_data`.
pub const OFF_NR: u32 = 0;
/// Offset of `arch` in `struct seccomp_data`.
pub const OFF_ARCH: u32 = 4;

/// Offset of the low 32 bits of argument `index` (both supported arches are little-endian).
pub const fn off_arg_lo(index: u8) -> u32 {
    16 + 8 * index as u32
}

/// Offset of the high 32 bits of argument `index`.
pub const fn off_arg_hi(index: u8) -> u32 {
    off_arg_lo(index) + 4
}

/// The kernel refuses longer programs (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;

/// A placed instruction, counted from the end of the program (the emitter builds backwards).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label(usize);

/// Builds a program from its last instruction to its first.
#[derive(Default)]
pub struct Emitter {
    rev: Vec<libc::sock_filter>,
}

/// Conditional jumps reach at most 255 instructions; keep two slots of margin for trampolines.
const FAR: usize = 253;

impl Emitter {
    /// Distance a jump placed next would travel to reach `target`.
    fn dist(&self, target: Label) -> usize {
        self.rev.len() - target.0 - 1
    }

    fn push(&mut self, code: u16, jt: u8, jf: u8, k: u32) -> Label {
        self.rev.push(libc::sock_filter { code, jt, jf, k });
        Label(self.rev.len() - 1)
    }

    /// `ret k`.
    pub fn ret(&mut self, k: u32) -> Label {
        self.push(RET, 0, 0, k)
    }

    /// `ld [offset]`.
    pub fn load(&mut self, offset: u32) -> Label {
        self.push(LD_W_ABS, 0, 0, offset)
    }

    /// `and #k`.
    pub fn and(&mut self, k: u32) -> Label {
        self.push(AND, 0, 0, k)
    }

    /// `ja target` (32-bit offset, so it reaches anything).
    pub fn ja(&mut self, target: Label) -> Label {
        let k = u32::try_from(self.dist(target))
            .expect("program length is bounded by MAX_INSNS checks");
        self.push(JA, 0, 0, k)
    }

    /// A conditional jump; targets beyond 255 instructions go through a `ja` trampoline.
    pub fn jump(&mut self, code: u16, k: u32, jt: Label, jf: Label) -> Label {
        // A jump to the very next instruction needs no code at all.
        if jt == jf && self.dist(jt) == 0 {
            return jt;
        }
        let jf = if self.dist(jf) > FAR { self.ja(jf) } else { jf };
        let jt = if self.dist(jt) > FAR { self.ja(jt) } else { jt };
        let (t, f) = (self.dist(jt), self.dist(jf));
        self.push(code, narrow(t), narrow(f), k)
    }

    /// The most recently emitted instruction: the one the next emitted instruction falls through to.
    pub fn last(&self) -> Option<Label> {
        self.rev.len().checked_sub(1).map(Label)
    }

    /// Number of instructions so far.
    pub fn len(&self) -> usize {
        self.rev.len()
    }

    /// Whether nothing was emitted yet.
    pub fn is_empty(&self) -> bool {
        self.rev.is_empty()
    }

    /// The program in execution order.
    pub fn finish(mut self) -> Vec<libc::sock_filter> {
        self.rev.reverse();
        self.rev
    }
}

/// One instruction per line, `idx: op args`, jump targets as absolute indexes (for golden tests
/// and `nucleus profile check --verbose` style debugging).
pub fn disasm(prog: &[libc::sock_filter]) -> String {
    let mut out = String::new();
    for (i, ins) in prog.iter().enumerate() {
        let (t, f) = (i + 1 + usize::from(ins.jt), i + 1 + usize::from(ins.jf));
        let line = match ins.code {
            LD_W_ABS => format!("ld [{}]", ins.k),
            AND => format!("and #{:#x}", ins.k),
            RET => format!("ret #{:#x}", ins.k),
            JA => format!("ja {}", i + 1 + ins.k as usize),
            JEQ => format!("jeq #{:#x} {t} {f}", ins.k),
            JGT => format!("jgt #{:#x} {t} {f}", ins.k),
            JGE => format!("jge #{:#x} {t} {f}", ins.k),
            JSET => format!("jset #{:#x} {t} {f}", ins.k),
            code => format!("op {code:#x} {} {} {:#x}", ins.jt, ins.jf, ins.k),
        };
        out.push_str(&format!("{i}: {line}\n"));
    }
    out
}

fn narrow(d: usize) -> u8 {
    u8::try_from(d).expect("trampolines keep conditional jumps within 255")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_targets_get_a_trampoline() {
        let mut e = Emitter::default();
        let allow = e.ret(RET_ALLOW);
        for _ in 0..300 {
            e.ret(RET_KILL_PROCESS);
        }
        let deny = e.ret(RET_ERRNO | 1);
        e.jump(JEQ, 5, allow, deny);
        let prog = e.finish();
        // jeq → ja (trampoline) ; the ja reaches the allow at the end.
        assert_eq!(prog[0].code, JEQ);
        assert_eq!((prog[0].jt, prog[0].jf), (0, 1));
        assert_eq!(prog[1].code, JA);
        assert_eq!(2 + prog[1].k as usize, prog.len() - 1);
        assert_eq!(prog[prog.len() - 1].k, RET_ALLOW);
        assert_eq!(prog[2].k, RET_ERRNO | 1);
    }
}
