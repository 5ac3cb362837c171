//! Lossless text form of raw path bytes, for manifests, change reports and `deleted.txt`.
//!
//! Valid UTF-8 passes through unchanged, except that `\` becomes `\\` and control characters
//! (below 0x20, and 0x7f) become `\xHH`; every byte of an invalid UTF-8 sequence becomes `\xHH`
//! (lowercase hex). Decoding reverses this exactly, so any byte string round-trips.

use std::fmt::Write as _;

/// Encodes raw path bytes into the escaped text form.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Decodes the escaped text form back to raw bytes; `None` when the escapes are malformed.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some(b'x') => {
                let hex = text.get(i + 2..i + 4)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 4;
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_passes_through() {
        assert_eq!(encode("src/main.rs".as_bytes()), "src/main.rs");
        assert_eq!(encode("été/ü".as_bytes()), "été/ü");
    }

    #[test]
    fn invalid_bytes_backslash_and_controls_are_escaped() {
        assert_eq!(encode(b"a\xffb"), "a\\xffb");
        assert_eq!(encode(b"back\\slash"), "back\\\\slash");
        assert_eq!(encode(b"new\nline"), "new\\x0aline");
    }

    #[test]
    fn every_byte_string_round_trips() {
        let samples: Vec<Vec<u8>> = vec![
            b"plain".to_vec(),
            b"\\x41".to_vec(),
            (0u8..=255).collect(),
            b"\xc3\x28\xe2\x82".to_vec(),
            "日本/語".as_bytes().to_vec(),
        ];
        for s in samples {
            assert_eq!(decode(&encode(&s)).as_deref(), Some(s.as_slice()));
        }
    }

    #[test]
    fn malformed_escapes_are_rejected() {
        assert_eq!(decode("a\\"), None);
        assert_eq!(decode("a\\q"), None);
        assert_eq!(decode("a\\xz1"), None);
        assert_eq!(decode("a\\x1"), None);
    }
}
