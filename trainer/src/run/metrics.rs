//! `metrics.jsonl`: one JSON object per line, describing one history.
//!
//! Step lines carry `"step"`; events carry `"event"` (for example `"resume"`, with the
//! settings that changed) and the step they happened at. A run resumed from the checkpoint
//! of step N first drops every line of a later step (the killed run's steps after its last
//! checkpoint, which the resumed run computes again) and a partial last line a kill may
//! have left; so the file never holds two lines for one step.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};

/// The open metrics log of a run.
#[derive(Debug)]
pub struct Metrics {
    file: std::fs::File,
    path: PathBuf,
}

impl Metrics {
    /// Opens `path` for a run that starts after step `start`: lines of later steps and an
    /// unparseable tail are dropped first (through a temporary file and a rename). Returns
    /// the log and how many lines were dropped.
    pub fn open(path: &Path, start: usize) -> Result<(Self, usize)> {
        let mut dropped = 0;
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let mut kept = String::with_capacity(text.len());
                for line in text.lines() {
                    let keep = serde_json::from_str::<Value>(line).is_ok_and(|v| {
                        v.get("step")
                            .and_then(Value::as_u64)
                            .is_none_or(|s| s as usize <= start)
                    });
                    if keep {
                        kept.push_str(line);
                        kept.push('\n');
                    } else {
                        dropped += 1;
                    }
                }
                if dropped > 0 {
                    super::dir::write_atomic(path, kept.as_bytes())?;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(path, e)),
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let metrics = Self {
            file,
            path: path.to_path_buf(),
        };
        Ok((metrics, dropped))
    }

    /// Appends one line.
    pub fn write(&mut self, v: &Value) -> Result<()> {
        writeln!(self.file, "{v}").map_err(|e| Error::io(&self.path, e))
    }
}

/// The value of `key` on the last line that has it, when the log exists.
pub fn last_value(path: &Path, key: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v.get(key).and_then(Value::as_f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resuming_drops_later_steps_and_a_partial_tail() {
        let tmp = tempfile::tempdir().expect("tmp");
        let p = tmp.path().join("metrics.jsonl");
        let lines: String = (1..=13)
            .map(|s| format!("{{\"step\": {s}, \"loss\": {s}.5}}\n"))
            .collect();
        std::fs::write(&p, format!("{lines}{{\"step\": 14, \"lo")).expect("w");
        let (mut m, dropped) = Metrics::open(&p, 10).expect("open");
        assert_eq!(dropped, 4, "steps 11-13 and the partial line");
        m.write(&serde_json::json!({"event": "resume", "step": 10}))
            .expect("w");
        let text = std::fs::read_to_string(&p).expect("r");
        let steps: Vec<u64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).expect("json")["step"]
                    .as_u64()
                    .expect("s")
            })
            .collect();
        assert_eq!(steps, (1..=10).chain([10]).collect::<Vec<_>>());
        assert_eq!(last_value(&p, "loss"), Some(10.5));
        // A fresh start keeps an absent file absent until the first line.
        let q = tmp.path().join("new.jsonl");
        let (_m, dropped) = Metrics::open(&q, 0).expect("open");
        assert_eq!(dropped, 0);
        assert_eq!(std::fs::read_to_string(&q).expect("r"), "");
    }
}
