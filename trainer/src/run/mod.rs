//! Services every training command shares, so that each loop only says its algorithm.
//!
//! - [`dir`]: the run directory: lock, what an earlier run left, atomic writes; nothing is
//!   created before the inputs are validated.
//! - [`settings`]: which settings may change when a run resumes, and the refusal naming the
//!   rest.
//! - [`config`]: a TOML file with `--key value` flags laid over it, parsed into a command's
//!   typed config; errors name the flag or the file and line.
//! - [`checkpoint`]: whole-or-nothing checkpoints of trainable tensors and optimizer state.
//! - [`metrics`]: `metrics.jsonl`, kept to one history across resumes.
//! - [`progress`]: a bar on a terminal, plain lines elsewhere.
//! - [`memory`]: the process's peak memory, the default limit, the pre-flight estimate.
//! - [`guard`]: the end-of-step checks: finite checkpoints, the memory limit.
//! - [`interrupt`]: Ctrl-C / SIGTERM as a request to stop with a checkpoint.
//!
//! [`open`] puts the first two together into the decision every command makes at start:
//! begin afresh, resume from a checkpoint, or report that the run is already finished.

pub mod checkpoint;
pub mod config;
pub mod dir;
pub mod guard;
pub mod interrupt;
pub mod memory;
pub mod metrics;
pub mod progress;
pub mod settings;

use std::path::PathBuf;

pub use checkpoint::Checkpoints;
pub use dir::RunDir;
pub use interrupt::{Interrupt, Signal};
pub use metrics::Metrics;
pub use progress::Progress;
pub use settings::Change;

use crate::error::{Error, Result};

/// This process's command line as a shell would re-run it (arguments quoted where needed,
/// an installed `…/trainer` shortened to `trainer`): what a resume message suggests and
/// what score provenance records.
pub fn command_line() -> String {
    let quote = |a: String| {
        if a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,".contains(c))
        {
            a
        } else {
            format!("'{}'", a.replace('\'', "'\\''"))
        }
    };
    let mut args = std::env::args();
    let bin = args.next().unwrap_or_else(|| "trainer".into());
    let bin = if bin.ends_with("/trainer") {
        "trainer".to_string()
    } else {
        bin
    };
    std::iter::once(bin)
        .chain(args.map(quote))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What [`open`] found in the output directory.
#[derive(Debug)]
pub enum Opening {
    /// The run there already reached `max_steps`: nothing to do.
    Finished {
        /// The step its newest checkpoint holds.
        steps: usize,
        /// Its final weights.
        final_dir: PathBuf,
    },
    /// Train: afresh, or resuming.
    Start(Start),
}

/// A run about to start in its (locked) directory.
#[derive(Debug)]
pub struct Start {
    /// The run directory (created by [`Start::begin`]).
    pub dir: RunDir,
    /// The checkpoint to resume from: step and directory.
    pub resume_from: Option<(usize, PathBuf)>,
    /// Settings that changed since the run on disk was started (all allowed).
    pub changes: Vec<Change>,
}

impl Start {
    /// Creates the directory if it is new, writes the resolved settings and opens the metrics
    /// from step `start` on, recording a resume event with the changed settings. Called once
    /// the model and data have loaded, so a failed start writes nothing.
    pub fn begin(&mut self, config_toml: &str, start: usize) -> Result<Metrics> {
        self.dir.create()?;
        self.dir
            .write_atomic(dir::CONFIG_FILE, config_toml.as_bytes())?;
        let (mut metrics, dropped) =
            Metrics::open(&self.dir.path().join(dir::METRICS_FILE), start)?;
        if let Some((step, from)) = &self.resume_from {
            let changed: serde_json::Map<String, serde_json::Value> = self
                .changes
                .iter()
                .map(|c| (c.key.clone(), serde_json::json!([c.before, c.after])))
                .collect();
            metrics.write(&serde_json::json!({
                "event": "resume", "step": step, "checkpoint": from.display().to_string(),
                "changed": changed, "superseded_lines_dropped": dropped,
            }))?;
        }
        Ok(metrics)
    }
}

/// Decides how a run in `out` starts. `config` is the run's resolved settings as a table;
/// `may_change` the keys a resume may change; `resume = false` refuses a directory that
/// already holds a run rather than overwrite it.
pub fn open(
    out: &std::path::Path,
    config: &toml::Table,
    resume: bool,
    max_steps: usize,
    may_change: &[&str],
) -> Result<Opening> {
    let (dir, prior) = RunDir::inspect(out)?;
    if !prior.has_run() {
        return Ok(Opening::Start(Start {
            dir,
            resume_from: None,
            changes: Vec::new(),
        }));
    }
    if !resume {
        return Err(Error::config(
            "resume",
            format!(
                "{} already holds a run ({}); resume = false would overwrite it: choose \
                 another output_dir, or remove this one",
                out.display(),
                prior.newest.as_ref().map_or_else(
                    || "final weights".to_string(),
                    |(s, _)| format!("checkpoint of step {s}")
                )
            ),
        ));
    }
    let changes = match &prior.config {
        Some(saved) => settings::check_resume(out, saved, config, may_change)?,
        None => Vec::new(),
    };
    if let (true, Some((steps, _))) = (prior.finished, &prior.newest)
        && *steps >= max_steps
    {
        return Ok(Opening::Finished {
            steps: *steps,
            final_dir: out.join("final"),
        });
    }
    Ok(Opening::Start(Start {
        dir,
        resume_from: prior.newest,
        changes,
    }))
}
