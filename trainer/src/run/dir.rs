//! The run directory: its lock, what an earlier run left in it, and atomic writes.
//!
//! Nothing is created before a run has validated its inputs: [`RunDir::inspect`] only reads
//! (and, for a directory that already exists, takes its lock so that no other process starts
//! in it meanwhile); [`RunDir::create`] makes the directory once the model and data have
//! loaded. A failed start therefore leaves no half-made directory behind.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use super::checkpoint;

/// The file a run's resolved settings are written to.
pub const CONFIG_FILE: &str = "config.toml";
/// The metrics log.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// What an earlier run left in a directory.
#[derive(Debug, Clone, Default)]
pub struct Prior {
    /// The settings it was run with (`config.toml`), as a TOML table.
    pub config: Option<toml::Table>,
    /// Its newest whole checkpoint: step and directory.
    pub newest: Option<(usize, PathBuf)>,
    /// It wrote its final weights (`final/`).
    pub finished: bool,
}

impl Prior {
    /// The directory holds training state: a checkpoint or final weights.
    pub fn has_run(&self) -> bool {
        self.newest.is_some() || self.finished
    }
}

/// A run directory, locked for the lifetime of this value once it exists.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    /// An exclusive lock on `path/.lock`; the kernel drops it when the holder dies, even by
    /// SIGKILL, so resuming after a kill is unaffected.
    lock: Option<File>,
}

impl RunDir {
    /// Looks at `path` without creating anything: when it exists, locks it (another live run
    /// there is [`Error::RunDirBusy`]) and reads what an earlier run left.
    pub fn inspect(path: &Path) -> Result<(Self, Prior)> {
        let mut dir = Self {
            path: path.to_path_buf(),
            lock: None,
        };
        if !path.exists() {
            return Ok((dir, Prior::default()));
        }
        if !path.is_dir() {
            return Err(Error::config(
                "output_dir",
                format!("{} exists and is not a directory", path.display()),
            ));
        }
        dir.lock = Some(lock(path)?);
        let config_path = path.join(CONFIG_FILE);
        let config = match std::fs::read_to_string(&config_path) {
            Ok(text) => Some(text.parse::<toml::Table>().map_err(|e| {
                Error::checkpoint(
                    &config_path,
                    format!("unreadable settings: {}", e.message()),
                )
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(config_path, e)),
        };
        let prior = Prior {
            config,
            newest: checkpoint::list(&dir.checkpoints()).pop(),
            finished: path.join("final").is_dir(),
        };
        Ok((dir, prior))
    }

    /// Creates the directory (when new) and takes its lock.
    pub fn create(&mut self) -> Result<()> {
        std::fs::create_dir_all(&self.path).map_err(|e| Error::io(&self.path, e))?;
        if self.lock.is_none() {
            self.lock = Some(lock(&self.path)?);
        }
        Ok(())
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where checkpoints go.
    pub fn checkpoints(&self) -> PathBuf {
        self.path.join("checkpoints")
    }

    /// Writes `name` in the directory through a temporary file and a rename, so a reader (or a
    /// kill) never sees half of it.
    pub fn write_atomic(&self, name: &str, contents: &[u8]) -> Result<()> {
        write_atomic(&self.path.join(name), contents)
    }
}

/// Writes `path` through a temporary sibling and a rename.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map_or_else(|| "file".to_string(), |n| n.to_string_lossy().to_string());
    let tmp = path.with_file_name(format!(".tmp-{name}"));
    std::fs::write(&tmp, contents).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

fn lock(dir: &Path) -> Result<File> {
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::RunDirBusy {
            path: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}

/// Writes a learned reward's score lines to `path` and, beside it, the
/// `<path>.provenance.json` that `evaluator push-scores` requires: the scoring model's
/// directory and SHA-256, this command line, the input and the line count. `trainer score`
/// and `trainer armo score` both write through here, so the two files always agree.
pub fn write_scores(
    path: &Path,
    text: &str,
    lines: usize,
    model_dir: &Path,
    sha256: &str,
    input: &Path,
) -> Result<()> {
    write_atomic(path, text.as_bytes())?;
    let provenance = serde_json::json!({
        "reward_model": model_dir, "sha256": sha256, "command": super::command_line(),
        "input": input, "lines": lines,
    });
    let mut side = path.as_os_str().to_os_string();
    side.push(".provenance.json");
    write_atomic(Path::new(&side), provenance.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspecting_a_new_directory_creates_nothing_and_a_held_one_is_busy() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("run");
        let (mut dir, prior) = RunDir::inspect(&path).expect("inspect");
        assert!(!path.exists(), "inspect wrote nothing");
        assert!(!prior.has_run());
        dir.create().expect("create");
        assert!(path.is_dir());
        let err = RunDir::inspect(&path).expect_err("held");
        assert!(matches!(err, Error::RunDirBusy { .. }), "{err}");
        drop(dir);
        let (_dir, prior) = RunDir::inspect(&path).expect("released");
        assert!(prior.config.is_none() && prior.newest.is_none() && !prior.finished);
    }

    #[test]
    fn atomic_writes_leave_no_temporary_file() {
        let tmp = tempfile::tempdir().expect("tmp");
        let p = tmp.path().join("a.json");
        write_atomic(&p, b"1").expect("w");
        write_atomic(&p, b"22").expect("w");
        assert_eq!(std::fs::read(&p).expect("r"), b"22");
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .expect("ls")
            .map(|e| e.expect("e").file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }
}
