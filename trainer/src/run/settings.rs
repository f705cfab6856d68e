//! Which settings may change when a run resumes.
//!
//! A resumed run continues the history its checkpoints began, so settings that shape the
//! checkpoint (model, LoRA rank and targets, precision) or the steps already taken (data,
//! seed, batch, optimizer) must stay as they were: a change is refused, naming each key with
//! its two values, before anything is written. A command lists the keys that may change
//! (for SFT: how long to train, how often to evaluate and save, memory limit, device); those
//! changes are allowed and recorded in the metrics as a resume event. Changing `max_steps`
//! also changes the length of a decaying learning-rate schedule from the resumed step on.

use std::collections::BTreeSet;
use std::path::Path;

use crate::error::{Error, Result};

/// One setting whose value differs between the run on disk and this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The key (dotted for nested tables).
    pub key: String,
    /// Its value in the run on disk (`unset` when absent).
    pub before: String,
    /// Its value now.
    pub after: String,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} = {} (now {})", self.key, self.before, self.after)
    }
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, toml::Value)>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            other => out.push((key, other.clone())),
        }
    }
}

/// Every key whose value differs between `before` and `after`, in key order.
pub fn diff(before: &toml::Table, after: &toml::Table) -> Vec<Change> {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    flatten("", before, &mut a);
    flatten("", after, &mut b);
    let keys: BTreeSet<&String> = a.iter().chain(&b).map(|(k, _)| k).collect();
    let get = |side: &[(String, toml::Value)], k: &str| {
        side.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    keys.into_iter()
        .filter_map(|k| {
            let (x, y) = (get(&a, k), get(&b, k));
            (x != y).then(|| Change {
                key: k.clone(),
                before: x.map_or("unset".into(), |v| v.to_string()),
                after: y.map_or("unset".into(), |v| v.to_string()),
            })
        })
        .collect()
}

/// Checks the settings of a run resuming in `dir` against those it was started with: the
/// changed keys outside `may_change` are refused ([`Error::SettingsChanged`]); the changes
/// that are allowed are returned, for the resume event.
pub fn check_resume(
    dir: &Path,
    before: &toml::Table,
    after: &toml::Table,
    may_change: &[&str],
) -> Result<Vec<Change>> {
    let (allowed, refused): (Vec<Change>, Vec<Change>) = diff(before, after)
        .into_iter()
        .partition(|c| may_change.contains(&c.key.as_str()));
    if refused.is_empty() {
        Ok(allowed)
    } else {
        Err(Error::SettingsChanged {
            path: dir.to_path_buf(),
            changes: refused,
            may_change: may_change.iter().map(|s| s.to_string()).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(s: &str) -> toml::Table {
        s.parse().expect("toml")
    }

    #[test]
    fn changed_keys_are_named_with_both_values_and_only_listed_ones_may_change() {
        let before = table("lora_rank = 8\nlr = 0.0002\nmax_steps = 30\n[optim]\nbeta1 = 0.9\n");
        let after = table("lora_rank = 4\nlr = 2e-4\nmax_steps = 35\neval_data = \"e\"\n");
        let all = diff(&before, &after);
        let keys: Vec<&str> = all.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["eval_data", "lora_rank", "max_steps", "optim.beta1"]);
        let err = check_resume(
            Path::new("run"),
            &before,
            &after,
            &["max_steps", "eval_data"],
        )
        .expect_err("rank and beta1 changed");
        let msg = err.to_string();
        assert!(
            msg.contains("lora_rank = 8 (now 4)")
                && msg.contains("optim.beta1 = 0.9 (now unset)")
                && !msg.contains("max_steps = 30"),
            "{msg}"
        );
        let ok = check_resume(
            Path::new("run"),
            &table("lora_rank = 8\nmax_steps = 30\n"),
            &table("lora_rank = 8\nmax_steps = 35\n"),
            &["max_steps"],
        )
        .expect("allowed");
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].to_string(), "max_steps = 30 (now 35)");
    }
}
