//! Turn what `nucleus trace` saw into a profile: the base profile, with every syscall that it would
//! have denied allowed instead. The result is plain OCI/Docker JSON; fields nucleus does not model
//! are kept as they were.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::ProfileError;

/// The base profile (JSON text) with `learned` syscalls allowed. Each learned name is removed from
/// every rule that does not allow it (so no syscall has conflicting actions), and one rule allowing
/// all of them is added first.
pub fn learned_profile(
    base_json: &str,
    learned: &BTreeSet<String>,
) -> Result<String, ProfileError> {
    // Parse through the model first: the base must be a valid profile.
    super::profile::Profile::parse(base_json)?;
    let invalid = |problem: String| ProfileError::Invalid {
        path: "syscalls".into(),
        problem,
    };
    let mut profile: Value = serde_json::from_str(base_json).map_err(|e| invalid(e.to_string()))?;
    let mut rules = profile
        .get_mut("syscalls")
        .and_then(Value::as_array_mut)
        .map(std::mem::take)
        .unwrap_or_default();
    rules.retain_mut(|rule| {
        if rule.get("action").and_then(Value::as_str) == Some("SCMP_ACT_ALLOW") {
            return true;
        }
        let Some(obj) = rule.as_object_mut() else {
            return true;
        };
        if let Some(names) = obj.get_mut("names").and_then(Value::as_array_mut) {
            names.retain(|n| n.as_str().is_none_or(|n| !learned.contains(n)));
            return !names.is_empty();
        }
        obj.get("name")
            .and_then(Value::as_str)
            .is_none_or(|n| !learned.contains(n))
    });
    if !learned.is_empty() {
        let names: Vec<&str> = learned.iter().map(String::as_str).collect();
        rules.insert(
            0,
            json!({"names": names, "action": "SCMP_ACT_ALLOW", "comment": "learned by nucleus trace: denied by the base profile, used by the workload"}),
        );
    }
    profile["syscalls"] = Value::Array(rules);
    serde_json::to_string_pretty(&profile).map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::policy::Host;
    use crate::seccomp::{Decision, Policy};

    #[test]
    fn learned_calls_are_allowed_and_nothing_else_changes() {
        let base = Policy::default_profile_json();
        let learned: BTreeSet<String> = ["unshare".to_owned(), "mount".to_owned()].into();
        let text = learned_profile(base, &learned).expect("learned profile");
        let (before, _) = Policy::from_json(base, &Host::sandbox()).expect("base");
        let (after, warnings) = Policy::from_json(&text, &Host::sandbox()).expect("learned parses");
        assert!(warnings.is_empty(), "{warnings:?}");
        let nr = |name: &str| i64::from(before.arch().number(name).expect("known syscall"));
        for name in ["unshare", "mount"] {
            assert_ne!(before.decide(nr(name), &[0; 6]), Decision::Allow);
            assert_eq!(after.decide(nr(name), &[0; 6]), Decision::Allow, "{name}");
        }
        for name in ["bpf", "keyctl", "getpid", "read"] {
            assert_eq!(
                before.decide(nr(name), &[0; 6]),
                after.decide(nr(name), &[0; 6]),
                "{name}"
            );
        }
        let json: Value = serde_json::from_str(&text).expect("json");
        let mentions = |name: &str| {
            json["syscalls"]
                .as_array()
                .expect("rules")
                .iter()
                .filter(|r| {
                    r["names"]
                        .as_array()
                        .is_some_and(|ns| ns.iter().any(|n| n == name))
                })
                .count()
        };
        assert_eq!(mentions("mount"), 1, "one rule, so no conflicting actions");
    }

    #[test]
    fn nothing_learned_is_the_base_profile() {
        let base = Policy::default_profile_json();
        let text = learned_profile(base, &BTreeSet::new()).expect("profile");
        let a: Value = serde_json::from_str(base).expect("json");
        let b: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(a, b);
    }
}
