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

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
