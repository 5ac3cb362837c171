//! The manifest of a tree (path, type, mode, size, BLAKE3 hash, symlink target) and its root hash.
//!
//! Root hash (format v1, see docs/context.md): BLAKE3 over `"nucleus-manifest-v1\n"` followed by every
//! entry in ascending byte order of its raw path, each encoded as: type byte (`d`, `f`, `l`), mode as
//! u32 LE, path length as u64 LE, path bytes; then for files size u64 LE and the 32-byte content hash,
//! for symlinks target length u64 LE and target bytes. Skipped special files are not part of it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::context::error::ContextError;
use crate::context::pathenc;
use crate::context::walk::{EntryKind, Skipped};

const DOMAIN: &[u8] = b"nucleus-manifest-v1\n";

/// One reproducible entry of a tree with its content hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Raw path bytes relative to the root.
    pub path: Vec<u8>,
    /// Entry type.
    pub kind: EntryKind,
    /// Permission bits.
    pub mode: u32,
    /// File size (0 for directories and symlinks).
    pub size: u64,
    /// BLAKE3 of the file content.
    pub hash: Option<[u8; 32]>,
    /// Symlink target bytes.
    pub target: Option<Vec<u8>>,
}

/// The whole manifest: entries sorted by path, plus what was left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Entries in ascending byte order of path.
    pub entries: Vec<ManifestEntry>,
    /// Special files and mount points not reproduced (not covered by the root hash).
    pub skipped: Vec<Skipped>,
}

#[derive(Serialize, Deserialize)]
struct JsonManifest {
    version: u32,
    algorithm: String,
    root_hash: String,
    files: u64,
    dirs: u64,
    symlinks: u64,
    bytes: u64,
    entries: Vec<JsonEntry>,
    #[serde(default)]
    skipped: Vec<JsonSkipped>,
}

#[derive(Serialize, Deserialize)]
struct JsonEntry {
    path: String,
    #[serde(rename = "type")]
    kind: String,
    mode: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    target: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct JsonSkipped {
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

impl Manifest {
    /// Builds a manifest, sorting entries into canonical order.
    pub fn new(mut entries: Vec<ManifestEntry>, skipped: Vec<Skipped>) -> Self {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Self { entries, skipped }
    }

    /// The root hash as lowercase hex (format v1).
    pub fn root_hash(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(DOMAIN);
        for e in &self.entries {
            let tag = match e.kind {
                EntryKind::Dir => b'd',
                EntryKind::File => b'f',
                EntryKind::Symlink => b'l',
            };
            h.update(&[tag]);
            h.update(&e.mode.to_le_bytes());
            h.update(&(e.path.len() as u64).to_le_bytes());
            h.update(&e.path);
            match e.kind {
                EntryKind::File => {
                    h.update(&e.size.to_le_bytes());
                    h.update(&e.hash.unwrap_or([0; 32]));
                }
                EntryKind::Symlink => {
                    let t = e.target.as_deref().unwrap_or_default();
                    h.update(&(t.len() as u64).to_le_bytes());
                    h.update(t);
                }
                EntryKind::Dir => {}
            }
        }
        h.finalize().to_hex().to_string()
    }

    /// Counts of (files, dirs, symlinks, file bytes).
    pub fn totals(&self) -> (u64, u64, u64, u64) {
        let mut t = (0, 0, 0, 0);
        for e in &self.entries {
            match e.kind {
                EntryKind::File => {
                    t.0 += 1;
                    t.3 += e.size;
                }
                EntryKind::Dir => t.1 += 1,
                EntryKind::Symlink => t.2 += 1,
            }
        }
        t
    }

    /// The JSON document printed by `nucleus manifest --json`.
    pub fn to_json(&self) -> serde_json::Value {
        let (files, dirs, symlinks, bytes) = self.totals();
        let doc = JsonManifest {
            version: 1,
            algorithm: "blake3".into(),
            root_hash: self.root_hash(),
            files,
            dirs,
            symlinks,
            bytes,
            entries: self.entries.iter().map(entry_to_json).collect(),
            skipped: self
                .skipped
                .iter()
                .map(|s| JsonSkipped {
                    path: pathenc::encode(&s.path),
                    kind: s.kind.into(),
                })
                .collect(),
        };
        serde_json::to_value(doc).unwrap_or(serde_json::Value::Null)
    }

    /// Parses the JSON document of `nucleus manifest --json`, checking its stated root hash.
    pub fn from_json(text: &str) -> Result<Self, ContextError> {
        let doc: JsonManifest =
            serde_json::from_str(text).map_err(|e| ContextError::BadManifest(e.to_string()))?;
        if doc.version != 1 || doc.algorithm != "blake3" {
            return Err(ContextError::BadManifest(format!(
                "unsupported version {} / algorithm {}",
                doc.version, doc.algorithm
            )));
        }
        let entries = doc
            .entries
            .iter()
            .map(entry_from_json)
            .collect::<Result<Vec<_>, _>>()?;
        let m = Manifest::new(entries, Vec::new());
        if m.root_hash() != doc.root_hash {
            return Err(ContextError::BadManifest(
                "its root_hash does not match its entries (edited by hand?)".into(),
            ));
        }
        Ok(m)
    }

    /// Human-readable differences from `expected` to `self`; empty when the trees are identical.
    pub fn diff(&self, expected: &Manifest) -> Vec<String> {
        let want: BTreeMap<&[u8], &ManifestEntry> = expected
            .entries
            .iter()
            .map(|e| (e.path.as_slice(), e))
            .collect();
        let have: BTreeMap<&[u8], &ManifestEntry> = self
            .entries
            .iter()
            .map(|e| (e.path.as_slice(), e))
            .collect();
        let mut out = Vec::new();
        for (path, w) in &want {
            let shown = pathenc::encode(path);
            match have.get(path) {
                None => out.push(format!("missing: {shown}")),
                Some(h) if h.kind != w.kind => out.push(format!(
                    "type changed: {shown} ({} -> {})",
                    kind_name(w.kind),
                    kind_name(h.kind)
                )),
                Some(h) => {
                    if h.size != w.size {
                        out.push(format!(
                            "size changed: {shown} ({} -> {} bytes)",
                            w.size, h.size
                        ));
                    } else if h.hash != w.hash {
                        out.push(format!("content changed: {shown}"));
                    }
                    if h.mode != w.mode {
                        out.push(format!(
                            "mode changed: {shown} ({:04o} -> {:04o})",
                            w.mode, h.mode
                        ));
                    }
                    if h.target != w.target {
                        out.push(format!("symlink target changed: {shown}"));
                    }
                }
            }
        }
        for path in have.keys().filter(|p| !want.contains_key(*p)) {
            out.push(format!("unexpected: {}", pathenc::encode(path)));
        }
        out
    }
}

fn kind_name(k: EntryKind) -> &'static str {
    match k {
        EntryKind::Dir => "dir",
        EntryKind::File => "file",
        EntryKind::Symlink => "symlink",
    }
}

fn entry_to_json(e: &ManifestEntry) -> JsonEntry {
    JsonEntry {
        path: pathenc::encode(&e.path),
        kind: kind_name(e.kind).into(),
        mode: format!("{:04o}", e.mode),
        size: (e.kind == EntryKind::File).then_some(e.size),
        hash: e
            .hash
            .map(|h| blake3::Hash::from_bytes(h).to_hex().to_string()),
        target: e.target.as_deref().map(pathenc::encode),
    }
}

fn entry_from_json(j: &JsonEntry) -> Result<ManifestEntry, ContextError> {
    let bad = |what: &str| ContextError::BadManifest(format!("entry {:?}: bad {what}", j.path));
    let kind = match j.kind.as_str() {
        "dir" => EntryKind::Dir,
        "file" => EntryKind::File,
        "symlink" => EntryKind::Symlink,
        _ => return Err(bad("type")),
    };
    let hash = match (&j.hash, kind) {
        (Some(h), EntryKind::File) => Some(
            *blake3::Hash::from_hex(h)
                .map_err(|_| bad("hash"))?
                .as_bytes(),
        ),
        (None, EntryKind::File) => return Err(bad("hash")),
        _ => None,
    };
    let target = match (&j.target, kind) {
        (Some(t), EntryKind::Symlink) => Some(pathenc::decode(t).ok_or_else(|| bad("target"))?),
        (None, EntryKind::Symlink) => return Err(bad("target")),
        _ => None,
    };
    Ok(ManifestEntry {
        path: pathenc::decode(&j.path).ok_or_else(|| bad("path"))?,
        kind,
        mode: u32::from_str_radix(&j.mode, 8).map_err(|_| bad("mode"))?,
        size: if kind == EntryKind::File {
            j.size.ok_or_else(|| bad("size"))?
        } else {
            0
        },
        hash,
        target,
    })
}

/// Normalises a user-given root hash (`blake3:` prefix optional, any case) for comparison.
pub fn normalize_root_hash(s: &str) -> String {
    s.trim().trim_start_matches("blake3:").to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &[u8], content: &[u8]) -> ManifestEntry {
        ManifestEntry {
            path: path.to_vec(),
            kind: EntryKind::File,
            mode: 0o644,
            size: content.len() as u64,
            hash: Some(*blake3::hash(content).as_bytes()),
            target: None,
        }
    }

    fn sample() -> Manifest {
        let link = ManifestEntry {
            path: b"l\xff".to_vec(),
            kind: EntryKind::Symlink,
            mode: 0o777,
            size: 0,
            hash: None,
            target: Some(b"../../etc/passwd".to_vec()),
        };
        let dir = ManifestEntry {
            path: b"d".to_vec(),
            kind: EntryKind::Dir,
            mode: 0o755,
            size: 0,
            hash: None,
            target: None,
        };
        Manifest::new(vec![file(b"d/a", b"hello"), link, dir], Vec::new())
    }

    #[test]
    fn root_hash_is_order_independent_and_content_sensitive() {
        let a = sample();
        let mut b = sample();
        b.entries.reverse();
        let b = Manifest::new(b.entries, Vec::new());
        assert_eq!(a.root_hash(), b.root_hash());
        let mut c = sample();
        c.entries[1] = file(b"d/a", b"hellp");
        assert_ne!(a.root_hash(), c.root_hash());
        let mut d = sample();
        d.entries[0].mode = 0o700;
        assert_ne!(a.root_hash(), d.root_hash());
    }

    #[test]
    fn root_hash_golden_value_is_stable() {
        // Pins the canonical encoding: changing it must be a deliberate format version bump.
        let m = Manifest::new(vec![file(b"a", b"x")], Vec::new());
        let mut h = blake3::Hasher::new();
        h.update(b"nucleus-manifest-v1\nf");
        h.update(&0o644u32.to_le_bytes());
        h.update(&1u64.to_le_bytes());
        h.update(b"a");
        h.update(&1u64.to_le_bytes());
        h.update(blake3::hash(b"x").as_bytes());
        assert_eq!(m.root_hash(), h.finalize().to_hex().to_string());
    }

    #[test]
    fn json_round_trips_including_non_utf8_paths() {
        let m = sample();
        let text = m.to_json().to_string();
        let back = Manifest::from_json(&text).expect("parse");
        assert_eq!(back.entries, m.entries);
        assert_eq!(back.root_hash(), m.root_hash());
    }

    #[test]
    fn tampered_json_is_rejected() {
        let text = sample()
            .to_json()
            .to_string()
            .replace("\"0755\"", "\"0777\"");
        assert!(matches!(
            Manifest::from_json(&text),
            Err(ContextError::BadManifest(_))
        ));
    }

    #[test]
    fn diff_lists_each_difference() {
        let want = sample();
        let mut have = sample();
        have.entries[1] = file(b"d/a", b"hello!");
        have.entries.push(file(b"z", b""));
        have.entries.remove(2);
        let lines = have.diff(&want);
        assert!(
            lines.contains(&"size changed: d/a (5 -> 6 bytes)".to_string()),
            "{lines:?}"
        );
        assert!(lines.contains(&"missing: l\\xff".to_string()), "{lines:?}");
        assert!(lines.contains(&"unexpected: z".to_string()), "{lines:?}");
        assert!(want.diff(&want).is_empty());
    }

    #[test]
    fn root_hash_prefix_and_case_are_ignored() {
        assert_eq!(normalize_root_hash(" blake3:ABcd "), "abcd");
    }
}
