//! The evaluator: scores model generations with sandboxed reward modules.
//!
//! This crate is the `evaluator` binary's library. Today it holds the offline
//! command-line path (`evaluator score`, `evaluator modules`, `evaluator inspect`);
//! the PostgreSQL-backed service builds on the same pieces.
//!
//! # Layout
//! - [`input`]: JSON Lines input parsed into [`reward_host::Sample`]s at the edge,
//!   with line-numbered errors.
//! - [`modules`]: resolving `builtin:NAME` or a file path into a loaded module.
//! - [`score`]: batching samples through a scorer and writing one JSON object per
//!   input line.
//! - [`cli`]: the clap command line and exit codes (`main.rs` only calls it).
//! - [`error`]: [`Error`], which separates module faults (exit 2) from everything else.

pub mod cli;
pub mod error;
pub mod input;
pub mod modules;
pub mod score;

pub use error::{Error, Result};
