//! The host's error type: one variant per cause a user can act on.

use std::time::Duration;

/// Guest error strings longer than this are cut (on a character boundary) before
/// they reach logs, databases or terminals.
pub const MAX_GUEST_MESSAGE: usize = 1024;

/// Why a module could not be loaded or a call did not produce a valid result.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // === Load-time errors ===
    /// The bytes are not a usable module (not wasm, fails validation, cannot be
    /// componentized, or exports neither world).
    #[error("invalid module: {reason}")]
    InvalidModule {
        /// What is wrong, in words.
        reason: String,
    },
    /// The module imports something outside the reward worlds (which import nothing).
    #[error("module imports {names:?}, which the reward:wasm worlds do not provide")]
    ForbiddenImport {
        /// The offending import names.
        names: Vec<String>,
    },
    /// A scorer was used as a judge or the other way round.
    #[error("module `{module}` is a {actual}, not a {wanted}")]
    WrongKind {
        /// The module's declared name.
        module: String,
        /// What the caller needed.
        wanted: &'static str,
        /// What the module is.
        actual: &'static str,
    },

    // === Compile-time limits ===
    /// The module's shape passes a [`crate::CompileLimits`] bound; refused
    /// before compiling.
    #[error("module too large to compile: {value} {what}, over the limit of {limit}")]
    TooLarge {
        /// What was counted (`functions`, `bytes of code`, ...).
        what: &'static str,
        /// The module's figure (or the first figure past the limit while counting).
        value: u64,
        /// The limit that applied.
        limit: u64,
    },
    /// Compiling took longer than the compile budget; the compiler was stopped.
    #[error("compiling took longer than its budget of {limit:?} and was stopped")]
    CompileTimeout {
        /// The wall-clock budget.
        limit: Duration,
    },
    /// Compiling needed more memory than the compile budget.
    #[error("compiling needed more than its memory budget of {limit_mib} MiB and was stopped")]
    CompileMemory {
        /// The budget, in MiB.
        limit_mib: u64,
    },

    // === Limits ===
    /// The wall-clock deadline passed.
    #[error("timed out after {limit:?}")]
    Timeout {
        /// The deadline that applied.
        limit: Duration,
    },
    /// The deterministic fuel budget ran out.
    #[error("ran out of fuel (budget {budget} units)")]
    OutOfFuel {
        /// The budget that applied.
        budget: u64,
    },
    /// The guest tried to grow its linear memory past the cap.
    #[error("memory limit exceeded: tried to grow to {requested} bytes, limit {limit}")]
    MemoryLimit {
        /// The size the guest asked for.
        requested: usize,
        /// The cap that applied.
        limit: usize,
    },
    /// The guest tried to grow a table past the cap.
    #[error("table limit exceeded: tried to grow to {requested} elements, limit {limit}")]
    TableLimit {
        /// The size the guest asked for.
        requested: usize,
        /// The cap that applied.
        limit: usize,
    },
    /// The guest exhausted its wasm stack (usually unbounded recursion).
    #[error("wasm stack overflow")]
    StackOverflow,

    // === Guest faults ===
    /// The guest panicked (Rust guests abort on panic, which traps).
    #[error("guest panicked (in {location})")]
    GuestPanic {
        /// The innermost guest function outside the panic machinery.
        location: String,
    },
    /// The guest trapped for another reason (out-of-bounds access, division by
    /// zero, unreachable code, ...).
    #[error("guest trapped: {trap}")]
    GuestTrap {
        /// The trap and where it happened.
        trap: String,
    },
    /// The guest returned an error string (truncated to [`MAX_GUEST_MESSAGE`]).
    #[error("module returned an error: {message}")]
    Guest {
        /// The guest's message.
        message: String,
    },
    /// The guest returned something that breaks the contract.
    #[error("invalid output: {reason}")]
    InvalidOutput {
        /// Which rule was broken.
        reason: String,
    },
    /// One span of `score-spans` breaks the contract (the whole call is refused).
    #[error(
        "invalid span: sample {sample}, span {index} (end {}, metric {}, value {}): {rule}",
        span.end, span.metric, span.value
    )]
    InvalidSpan {
        /// Index of the sample in the batch.
        sample: usize,
        /// Index of the span in that sample's list.
        index: usize,
        /// The span as the guest returned it.
        span: crate::Span,
        /// Which rule it breaks.
        rule: SpanRule,
    },
    /// A sample got more spans than the contract allows: (response bytes + 1) ×
    /// metrics, enough for a value of every metric at every byte offset.
    #[error(
        "too many spans: sample {sample} has {count}, more than the limit of {limit} ((response bytes + 1) × metrics)"
    )]
    TooManySpans {
        /// Index of the sample in the batch.
        sample: usize,
        /// How many spans the guest returned for it.
        count: usize,
        /// The bound that applied.
        limit: usize,
    },
    /// `score-spans` was called on a module that does not export it.
    #[error(
        "module `{module}` exports no spans (it does not export `score-spans`, world scorer-spans)"
    )]
    NoSpans {
        /// The module's declared name.
        module: String,
    },

    // === Host ===
    /// A setting of the host or of a call is unusable.
    #[error("invalid host configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// The compile subprocess could not run or failed for a reason that is not
    /// the module's (it could not start, crashed, or wrote an unusable artifact).
    #[error("the module compiler failed: {reason}")]
    Compiler {
        /// What happened, with the subprocess's last words when there are any.
        reason: String,
    },
    /// wasmtime failed for a reason that is not the guest's (e.g. all pool slots busy).
    #[error("wasm runtime error: {0:#}")]
    Runtime(#[source] Box<wasmtime::Error>),
}

/// The rule of the span contract (`reward.wit`, world `scorer-spans`) that a span
/// breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SpanRule {
    /// `end` is past the end of the sample's response.
    #[error("end is past the response's {response_bytes} bytes")]
    PastEnd {
        /// Length of the response in bytes.
        response_bytes: usize,
    },
    /// `end` falls inside a multi-byte UTF-8 character of the response.
    #[error("end is inside a multi-byte character of the response (not a char boundary)")]
    NotCharBoundary,
    /// `metric` is not an index of a declared metric.
    #[error("metric index is not below the {metrics} declared metrics")]
    UndeclaredMetric {
        /// How many metrics the module declared.
        metrics: usize,
    },
    /// The value is NaN or infinite.
    #[error("value is not finite")]
    NotFinite,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A short machine-readable name of the variant, for logs, APIs and exit codes.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidModule { .. } => "invalid_module",
            Error::ForbiddenImport { .. } => "forbidden_import",
            Error::WrongKind { .. } => "wrong_kind",
            Error::TooLarge { .. } => "module_too_large",
            Error::CompileTimeout { .. } => "compile_timeout",
            Error::CompileMemory { .. } => "compile_memory",
            Error::Timeout { .. } => "timeout",
            Error::OutOfFuel { .. } => "out_of_fuel",
            Error::MemoryLimit { .. } => "memory_limit",
            Error::TableLimit { .. } => "table_limit",
            Error::StackOverflow => "stack_overflow",
            Error::GuestPanic { .. } => "guest_panic",
            Error::GuestTrap { .. } => "guest_trap",
            Error::Guest { .. } => "guest_error",
            Error::InvalidOutput { .. } => "invalid_output",
            Error::InvalidSpan { .. } => "invalid_span",
            Error::TooManySpans { .. } => "too_many_spans",
            Error::NoSpans { .. } => "no_spans",
            Error::Config { .. } => "config",
            Error::Compiler { .. } => "compiler",
            Error::Runtime(_) => "runtime",
        }
    }

    /// Whether the module (rather than the host or the caller) is at fault.
    pub fn is_module_fault(&self) -> bool {
        !matches!(
            self,
            Error::Config { .. }
                | Error::Compiler { .. }
                | Error::Runtime(_)
                | Error::WrongKind { .. }
                | Error::NoSpans { .. }
        )
    }
}

/// Cuts a guest-provided message to [`MAX_GUEST_MESSAGE`] bytes on a character
/// boundary, saying how long it was.
pub(crate) fn truncate_message(message: &str) -> String {
    if message.len() <= MAX_GUEST_MESSAGE {
        return message.to_string();
    }
    let mut end = MAX_GUEST_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &message[..end], message.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_messages_are_kept_whole() {
        assert_eq!(truncate_message("nope"), "nope");
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let long = "é".repeat(MAX_GUEST_MESSAGE); // 2 bytes each
        let cut = truncate_message(&long);
        assert!(cut.ends_with(&format!("({} bytes in all)", 2 * MAX_GUEST_MESSAGE)));
        assert!(cut.len() < MAX_GUEST_MESSAGE + 40);
    }
}
