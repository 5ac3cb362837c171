//! Syscall name <-> number tables for the architectures nucleus compiles filters for.

pub mod aarch64;
pub mod other;
pub mod x86_64;

/// An architecture a filter can be compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// x86-64 (native 64-bit entry only; i386 and x32 are refused).
    X86_64,
    /// ARM64 (AArch64 entry only; AArch32 compat is refused).
    Aarch64,
}

impl Arch {
    /// The architecture this binary was built for.
    pub const fn native() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else {
            Arch::X86_64
        }
    }

    /// Both supported architectures.
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    /// The `AUDIT_ARCH_*` value the kernel puts in `seccomp_data.arch`.
    pub const fn audit_arch(self) -> u32 {
        match self {
            // EM_X86_64 (62) | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
            Arch::X86_64 => 0xc000_003e,
            // EM_AARCH64 (183) | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
            Arch::Aarch64 => 0xc000_00b7,
        }
    }

    /// Kernel-style name, as in events (`x86_64`, `aarch64`).
    pub const fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// Whether a profile's architecture word (`amd64`, `SCMP_ARCH_X86_64`, `arm64`…) names this arch.
    pub fn matches(self, word: &str) -> bool {
        let word = word
            .strip_prefix("SCMP_ARCH_")
            .unwrap_or(word)
            .to_ascii_lowercase();
        match self {
            Arch::X86_64 => matches!(word.as_str(), "x86_64" | "amd64"),
            Arch::Aarch64 => matches!(word.as_str(), "aarch64" | "arm64"),
        }
    }

    /// The `(name, number)` table of this architecture, sorted by number.
    pub fn table(self) -> &'static [(&'static str, u32)] {
        match self {
            Arch::X86_64 => x86_64::TABLE,
            Arch::Aarch64 => aarch64::TABLE,
        }
    }

    /// The number of a syscall by name on this architecture.
    pub fn number(self, name: &str) -> Option<u32> {
        let by_name: &[(&str, u32)] = match self {
            Arch::X86_64 => &X86_64_BY_NAME,
            Arch::Aarch64 => &AARCH64_BY_NAME,
        };
        by_name
            .binary_search_by(|(n, _)| (*n).cmp(name))
            .ok()
            .map(|i| by_name[i].1)
    }

    /// The name of a syscall number on this architecture.
    pub fn name_of(self, nr: u32) -> Option<&'static str> {
        let table = self.table();
        table
            .binary_search_by_key(&nr, |(_, n)| *n)
            .ok()
            .map(|i| table[i].0)
    }
}

/// The tables sorted by name, at compile time: a profile names ~400 syscalls, and sorting them at
/// run time showed in every start (0.97× without it, docs/BENCHMARKS.md).
static X86_64_BY_NAME: [(&str, u32); x86_64::TABLE.len()] = sorted_by_name(x86_64::TABLE);
static AARCH64_BY_NAME: [(&str, u32); aarch64::TABLE.len()] = sorted_by_name(aarch64::TABLE);

const fn sorted_by_name<const N: usize>(table: &[(&'static str, u32)]) -> [(&'static str, u32); N] {
    let mut sorted = [("", 0); N];
    let mut i = 0;
    while i < N {
        // Insertion sort: const fn has no `sort`, and this runs once, in the compiler.
        let mut j = i;
        while j > 0 && name_before(table[i].0, sorted[j - 1].0) {
            sorted[j] = sorted[j - 1];
            j -= 1;
        }
        sorted[j] = table[i];
        i += 1;
    }
    sorted
}

/// `a < b`, bytewise (as `str::cmp`).
const fn name_before(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut i = 0;
    while i < a.len() && i < b.len() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
        i += 1;
    }
    a.len() < b.len()
}

/// Whether `name` is a syscall of some Linux architecture (so a miss is "other arch", not a typo).
pub fn known_anywhere(name: &str) -> bool {
    Arch::ALL.iter().any(|a| a.number(name).is_some()) || other::NAMES.binary_search(&name).is_ok()
}

/// The native name of syscall `nr`, or `syscall_N` when unknown.
pub fn syscall_name(nr: i64) -> String {
    u32::try_from(nr)
        .ok()
        .and_then(|n| Arch::native().name_of(n))
        .map_or_else(|| format!("syscall_{nr}"), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_and_unique() {
        for arch in Arch::ALL {
            let t = arch.table();
            assert!(
                t.windows(2).all(|w| w[0].1 < w[1].1),
                "{arch:?} not strictly sorted"
            );
            let mut names: Vec<_> = t.iter().map(|(n, _)| *n).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), t.len(), "{arch:?} has duplicate names");
        }
        assert!(other::NAMES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn every_name_is_found_by_the_compile_time_sorted_tables() {
        for arch in Arch::ALL {
            for (name, nr) in arch.table() {
                assert_eq!(arch.number(name), Some(*nr), "{arch:?} {name}");
            }
        }
    }

    #[test]
    fn numbers_match_the_kernel_tables() {
        let x = Arch::X86_64;
        assert_eq!(x.number("read"), Some(0));
        assert_eq!(x.number("execve"), Some(59));
        assert_eq!(x.number("uretprobe"), Some(335));
        assert_eq!(x.number("listmount"), Some(458));
        assert_eq!(x.number("mseal"), Some(462));
        assert_eq!(x.number("file_setattr"), Some(469));
        let a = Arch::Aarch64;
        assert_eq!(a.number("io_setup"), Some(0));
        assert_eq!(a.number("execve"), Some(221));
        assert_eq!(a.number("renameat"), Some(38));
        assert_eq!(a.number("open"), None);
        assert_eq!(a.number("open_tree_attr"), Some(467));
        assert!(known_anywhere("chown32") && known_anywhere("s390_runtime_instr"));
        assert!(!known_anywhere("no_such_call"));
    }

    #[test]
    fn native_names_and_unknown_numbers() {
        #[cfg(target_arch = "x86_64")]
        assert_eq!(syscall_name(libc::SYS_getppid), "getppid");
        assert_eq!(syscall_name(9999), "syscall_9999");
        assert_eq!(syscall_name(-1), "syscall_-1");
    }
}
