//! Errors of the evaluator library.

use std::path::PathBuf;

/// What went wrong, with enough context to act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An input line is not a valid sample.
    #[error("{source_name} line {line}: {message}")]
    Input {
        /// The input's name (a path, or `stdin`).
        source_name: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done (`cannot read module file`, ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `builtin:NAME` names no built-in module.
    #[error("no built-in module named `{name}` (available: {available})")]
    UnknownBuiltin {
        /// The name asked for.
        name: String,
        /// The names that exist, comma-separated.
        available: String,
    },
    /// The module failed: it is invalid, broke a limit, trapped, or returned an
    /// error or invalid output.
    #[error("module `{module}` {context}: {source}")]
    Module {
        /// The module as the user named it.
        module: String,
        /// Where it failed (`failed to load`, `failed on input lines 1-256`, ...).
        context: String,
        /// The sandbox's typed error.
        #[source]
        source: reward_host::Error,
    },
    /// A database query failed; `context` says what was being done.
    #[error("database: {context}: {source}")]
    Database {
        /// What was being done (`insert module`, `claim chunk`, ...).
        context: &'static str,
        /// sqlx's error, kept for its kind and the server's words.
        #[source]
        source: sqlx::Error,
    },
    /// The database could not be reached.
    #[error("database: cannot connect to {url}: {source}")]
    Connect {
        /// The URL, password redacted.
        url: String,
        /// sqlx's error.
        #[source]
        source: sqlx::Error,
    },
    /// The embedded migrations could not be applied.
    #[error("database: cannot apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The embedded PostgreSQL server could not be set up or started.
    #[error("embedded PostgreSQL: {message}")]
    Embedded {
        /// What failed, with the tool's own words.
        message: String,
    },
    /// A stored row broke an invariant the code relies on (a row that vanished
    /// inside a transaction, a value of an unknown kind).
    #[error("database: {0}")]
    Inconsistent(String),
    /// A column held a value this version does not know.
    #[error("database: {0}")]
    UnknownValue(#[from] crate::domain::UnknownValue),
    /// The operating system had no randomness to give (tokens, session ids).
    #[error("no randomness for {what}: {source}")]
    Randomness {
        /// What it was for.
        what: &'static str,
        /// getrandom's error.
        #[source]
        source: getrandom::Error,
    },
    /// A part of the service that should run until shutdown stopped early.
    #[error("{what} stopped unexpectedly")]
    Stopped {
        /// Which part.
        what: &'static str,
    },
    /// A background task (a blocking compile or fit, a worker loop) panicked.
    #[error("{task} panicked: {source}")]
    TaskPanicked {
        /// The task.
        task: &'static str,
        /// tokio's report of the panic.
        #[source]
        source: tokio::task::JoinError,
    },
    /// A statistic could not be computed from the data.
    #[error("statistics: {0}")]
    Statistics(#[from] evaluator_stats::Error),
    /// A usage problem that is nobody's fault but the command line's.
    #[error("{0}")]
    Usage(String),
    /// A file is over what the service accepts for its kind. Checked before
    /// anything is sent: otherwise the server answers 413 mid-upload and closes
    /// the connection, which the client sees only as a broken pipe.
    #[error(
        "{} is {} and the service accepts {what} of at most {} MiB; {advice}",
        .path.display(),
        mebibytes(*.size),
        .limit >> 20
    )]
    UploadTooLarge {
        /// The file.
        path: PathBuf,
        /// What kind of upload (`modules`, `generations files`).
        what: &'static str,
        /// Its size in bytes.
        size: u64,
        /// The service's limit in bytes.
        limit: u64,
        /// What to do about it.
        advice: &'static str,
    },
    /// The service could not be reached, or answered with something unreadable.
    #[error("{url}: {message}")]
    Http {
        /// The request's URL.
        url: String,
        /// What failed.
        message: String,
    },
    /// The service refused a request.
    #[error("the service answered {}", refusal(*.status, .code, .message))]
    Api {
        /// The HTTP status.
        status: u16,
        /// The error code from the body.
        code: String,
        /// The message from the body.
        message: String,
    },
    /// A job the command waited for failed.
    #[error("job {id} failed ({code}): {message}")]
    JobFailed {
        /// The job.
        id: crate::domain::JobId,
        /// The cause's code.
        code: String,
        /// The cause.
        message: String,
    },
}

/// `422 invalid_module: ...`, without the code when the message already
/// begins with it in words (the sandbox's `invalid module: ...` would otherwise
/// read `invalid_module: invalid module: ...`).
fn refusal(status: u16, code: &str, message: &str) -> String {
    let words = code.replace('_', " ");
    if message
        .get(..words.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(&words))
    {
        format!("{status}: {message}")
    } else {
        format!("{status} {code}: {message}")
    }
}

/// `50.0 MiB`: a size as people read it.
fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Exit status for the CLI: 2 for a module fault (also one that failed a
    /// job waited for), 1 for anything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Module { source, .. } if source.is_module_fault() => 2,
            // The queue's own causes are not the module's fault.
            Error::JobFailed { code, .. }
                if code != "retries_exhausted" && code != "worker_lost" =>
            {
                2
            }
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_its_cause_once() {
        let api = |code: &str, message: &str| {
            Error::Api {
                status: 422,
                code: code.into(),
                message: message.into(),
            }
            .to_string()
        };
        assert_eq!(
            api("invalid_module", "invalid module: not a WebAssembly binary"),
            "the service answered 422: invalid module: not a WebAssembly binary"
        );
        assert_eq!(
            api("not_found", "no dataset `x`"),
            "the service answered 422 not_found: no dataset `x`"
        );
    }

    #[test]
    fn an_upload_over_the_limit_names_file_size_limit_and_remedy() {
        let error = Error::UploadTooLarge {
            path: "big.wasm".into(),
            what: "modules",
            size: 50 << 20,
            limit: 32 << 20,
            advice: "strip it",
        };
        assert_eq!(
            error.to_string(),
            "big.wasm is 50.0 MiB and the service accepts modules of at most 32 MiB; strip it"
        );
    }
}
