//! A sandboxed wasmtime host for `reward:wasm@0.1.0` modules.
//!
//! Reward and metric functions arrive as untrusted WebAssembly: a component built
//! against `reward-wasm/wit/reward.wit`, or the core module `wit-bindgen` produces
//! (it carries its world in a custom section and is componentized on load). The same
//! [`Host`] serves the evaluation service and the trainer's RL loop.
//!
//! ```no_run
//! # fn main() -> Result<(), reward_host::Error> {
//! use reward_host::{Host, HostConfig, Sample};
//!
//! let host = Host::new(HostConfig::default())?;
//! let module = host.load(&std::fs::read("diversity.wasm").unwrap())?;
//! let rows = module.score(&[Sample::new("Q?", "A b c. So the answer is yes.")])?;
//! println!("{} = {:?}", module.info().metrics[0].name, rows[0][0]);
//! # Ok(()) }
//! ```
//!
//! # Guarantees
//! - Compilation is bounded too: a module's shape is checked against
//!   [`CompileLimits`] before Cranelift sees it, and a service compiles in a
//!   child process under a memory and a wall-clock budget ([`CompileConfig`]).
//! - Every call runs in a fresh `Store` under a wall-clock deadline (epoch
//!   interruption), a deterministic fuel budget, and caps on linear memory, table
//!   elements, instances and wasm stack ([`Limits`], [`HostConfig`]).
//! - Execution is deterministic: NaN canonicalization on, relaxed SIMD and threads
//!   off, and the worlds import nothing (no clock, no randomness). A module that
//!   imports anything is refused at load.
//! - Outputs are checked: one row per sample, one column per declared metric, every
//!   value finite or null; for span scorers ([`RewardModule::score_spans_with`]),
//!   one list of [`Span`]s per sample, each within its response, on a character
//!   boundary, of a declared metric and finite, and at most [`max_spans`] of them.
//! - Each failure is a typed [`Error`] naming its cause; guest behaviour never
//!   panics or aborts the host.
//!
//! # Layout
//! - [`config`]: [`HostConfig`] (engine-wide settings) and [`Limits`] (per call).
//! - [`host`]: [`Host`] — the engine, its epoch ticker and the compiled-module cache.
//! - [`precheck`]: the shape check ([`CompileLimits`]) before anything compiles.
//! - [`compiler`]: compilation within budgets, in process or in a child process
//!   ([`compiler::serve`] is the child's side); `cache`: compiled code on disk.
//! - [`module`]: [`RewardModule`] — load-time validation, calls, output checks.
//! - [`error`]: [`Error`] and the trap classification.
//! - `bindings`: the `bindgen!` output for the worlds; its types are re-exported.

mod bindings;
mod cache;
pub mod compiler;
pub mod config;
pub mod error;
pub mod host;
pub mod module;
pub mod precheck;

pub use bindings::{Direction, Info, Metric, Sample, Span, Verdict};
pub use config::{CompileConfig, HostConfig, Isolation, Limits};
pub use error::{Error, Result, SpanRule};
pub use host::{CompileStats, Host};
pub use module::{Kind, PairOutcome, RewardModule, Row, max_spans};
pub use precheck::{CompileLimits, Shape};
// The packed-batch encoder, for the codec's fuzz target (not API).
#[doc(hidden)]
pub use module::pack as __pack;

impl Sample {
    /// A sample with a prompt and a response, no reference and no extra fields.
    pub fn new(prompt: impl Into<String>, response: impl Into<String>) -> Self {
        Sample {
            prompt: prompt.into(),
            response: response.into(),
            reference: None,
            fields: Vec::new(),
        }
    }

    /// Sets the gold reference.
    pub fn with_reference(mut self, reference: impl Into<String>) -> Self {
        self.reference = Some(reference.into());
        self
    }

    /// Appends an extra field.
    pub fn with_field(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.push((key.into(), value.into()));
        self
    }
}

impl Direction {
    /// The WIT spelling: `higher-is-better` or `lower-is-better`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::HigherIsBetter => "higher-is-better",
            Direction::LowerIsBetter => "lower-is-better",
        }
    }
}
