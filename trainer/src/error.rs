//! The library's one error type.

use std::path::PathBuf;

/// Everything the trainer library can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // === Tensor and numeric errors ===
    /// An error raised by candle (shapes, dtypes, devices, safetensors).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// The training loss stopped being a finite number.
    #[error(
        "loss is not finite ({loss}) at step {step}; training stopped. The last good checkpoint is {}",
        last_checkpoint.as_ref().map_or_else(|| "none (no checkpoint was written yet)".to_string(), |p| p.display().to_string())
    )]
    NonFiniteLoss {
        /// Optimizer step at which the loss was computed.
        step: usize,
        /// The offending value.
        loss: f32,
        /// The newest checkpoint written before the failure, usable with `--resume`.
        last_checkpoint: Option<PathBuf>,
    },

    // === Resources ===
    /// Training needs more memory than it may use. Raised before the system's OOM killer
    /// would end the process without a word: by the pre-flight estimate, by the measured peak
    /// resident memory against `memory_limit_mib`, or by a device's allocation failure.
    #[error("{}", out_of_memory_message(*.step, *.check, *.used_mib, *.limit_mib, .last_checkpoint.as_deref(), .hint))]
    OutOfMemory {
        /// The optimizer step (1-based) that was running, was about to run (pre-flight), or
        /// had just finished ([`MemoryCheck::AfterStep`]) when memory ran out.
        step: usize,
        /// Which check found it.
        check: MemoryCheck,
        /// Memory measured or estimated, in MiB (`None` when a device only reported failure).
        used_mib: Option<u64>,
        /// The limit it was compared with, in MiB.
        limit_mib: Option<u64>,
        /// The newest usable checkpoint, from which re-running the same command resumes.
        last_checkpoint: Option<PathBuf>,
        /// What to lower (or raise) so the run fits.
        hint: String,
    },

    // === Files and formats ===
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },

    /// A JSON file (config, tokenizer, data) could not be parsed.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The file involved.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },

    /// A data file has a malformed record.
    #[error("{path}:{line}: {message}")]
    Data {
        /// The data file.
        path: PathBuf,
        /// 1-based line number (0 when the file is one JSON document).
        line: usize,
        /// What is wrong with it.
        message: String,
    },

    /// A configuration value is missing or wrong.
    #[error("config: key `{key}`: {message}")]
    Config {
        /// The offending key, dotted for nested tables (`optim.lr`).
        key: String,
        /// What is wrong with it.
        message: String,
    },

    /// Another process is training into the same run directory.
    #[error(
        "{path}: another trainer run (`trainer sft`, `trainer rl`, ...) is using this \
         output_dir; let it finish (or stop it) before resuming, or choose another output_dir"
    )]
    RunDirBusy {
        /// The run directory.
        path: PathBuf,
    },

    /// A resumed run's settings differ from those its checkpoints were made with in keys that
    /// may not change.
    #[error(
        "{path} holds a run made with other settings: {}. These cannot change when a run \
         resumes (only {} can): restore them, or choose another output_dir",
        changes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        may_change.join(", ")
    )]
    SettingsChanged {
        /// The run directory.
        path: PathBuf,
        /// The refused changes.
        changes: Vec<crate::run::Change>,
        /// The keys that may change.
        may_change: Vec<String>,
    },

    /// SIGINT or SIGTERM stopped the run between two steps.
    #[error(
        "stopped by {} after step {step} of {max_steps}; {}",
        signal.name(),
        checkpoint.as_ref().map_or_else(
            || "no step had finished, so no checkpoint was written".to_string(),
            |p| format!("checkpoint {}", p.display())
        )
    )]
    Interrupted {
        /// The signal.
        signal: crate::run::Signal,
        /// The last finished step.
        step: usize,
        /// The run's length.
        max_steps: usize,
        /// The checkpoint holding that step, from which re-running the command resumes.
        checkpoint: Option<PathBuf>,
    },

    /// A reward source failed on a batch (a module's timeout, trap, fuel or bad output).
    #[error("reward {} ({source_name}): {message}", rewards.join(", "))]
    Reward {
        /// The source (`builtin:NAME` or a path).
        source_name: String,
        /// The rewards that read it.
        rewards: Vec<String>,
        /// The sandbox's message.
        message: String,
    },

    /// A reward fault stopped an RL run (`on_reward_error = "stop"`).
    #[error(
        "step {step}: {message}; training stopped. {} Set on_reward_error = \"skip\" to treat \
         a failing batch's values as missing instead",
        checkpoint.as_ref().map_or_else(|| "No checkpoint was written yet.".to_string(), |p| format!("The last checkpoint is {}; re-running the same command resumes from it.", p.display()))
    )]
    RewardStopped {
        /// The step whose rollouts were being scored.
        step: usize,
        /// The reward error.
        message: String,
        /// The checkpoint to resume from.
        checkpoint: Option<PathBuf>,
    },

    /// A checkpoint (model directory, GGUF file) lacks something the loader needs.
    #[error("{path}: {message}")]
    Checkpoint {
        /// The checkpoint path.
        path: PathBuf,
        /// What is missing or unsupported.
        message: String,
    },

    /// The `tokenizers` crate failed (building, encoding or decoding).
    #[error("tokenizer: {0}")]
    Tokenizer(String),

    // === API misuse ===
    /// An argument is outside what the function supports.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A checkpoint error for `path`.
    pub fn checkpoint(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Checkpoint {
            path: path.into(),
            message: message.into(),
        }
    }

    /// A configuration error naming `key`.
    pub fn config(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Config {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Which memory check stopped a run ([`Error::OutOfMemory`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryCheck {
    /// The estimate made before the first step: the run did not start.
    Estimate,
    /// Peak resident memory after the first forward pass of the run.
    FirstForward,
    /// Peak resident memory after an optimizer step.
    AfterStep,
    /// The accelerator reported an allocation failure (CUDA_ERROR_OUT_OF_MEMORY).
    Device,
}

fn out_of_memory_message(
    step: usize,
    check: MemoryCheck,
    used_mib: Option<u64>,
    limit_mib: Option<u64>,
    last_checkpoint: Option<&std::path::Path>,
    hint: &str,
) -> String {
    let mib = |v: Option<u64>| v.map_or_else(|| "?".to_string(), |v| format!("{v} MiB"));
    let (used, limit) = (mib(used_mib), mib(limit_mib));
    let what = match check {
        MemoryCheck::Estimate => format!(
            "out of memory: training needs an estimated {used}, over the limit of {limit} \
             (`memory_limit_mib`); step {step} did not start"
        ),
        MemoryCheck::FirstForward => format!(
            "out of memory: peak resident memory {used} after the first forward pass of step \
             {step} is over the limit of {limit} (`memory_limit_mib`); training stopped before \
             the system would kill it"
        ),
        MemoryCheck::AfterStep => format!(
            "out of memory: peak resident memory {used} after step {step} is over the limit of \
             {limit} (`memory_limit_mib`); training stopped before the system would kill it"
        ),
        MemoryCheck::Device => {
            format!("out of memory: the device could not allocate during step {step}")
        }
    };
    let ckpt = last_checkpoint.map_or_else(
        || "No usable checkpoint exists yet.".to_string(),
        |p| {
            format!(
                "The last usable checkpoint is {}; re-running the same command resumes from it.",
                p.display()
            )
        },
    );
    format!("{what}. {ckpt} To fit, {hint}.")
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
