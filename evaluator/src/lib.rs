//! The evaluator: scores model generations with sandboxed reward modules.
//!
//! This crate is the `evaluator` binary's library: the offline command-line path
//! (`evaluator score`, `evaluator modules`, `evaluator inspect`) and the start of
//! the PostgreSQL-backed service (`evaluator serve`, `evaluator admin`).
//!
//! # Layout
//! - [`input`]: JSON Lines input parsed into [`reward_host::Sample`]s at the edge,
//!   with line-numbered errors.
//! - [`modules`]: resolving `builtin:NAME` or a file path into a loaded module.
//! - [`score`]: batching samples through a scorer and writing one JSON object per
//!   input line.
//! - [`cli`]: the clap command line and exit codes (`main.rs` only calls it).
//! - [`error`]: [`Error`], which separates module faults (exit 2) from everything else.
//! - [`db`]: PostgreSQL pool and migrations ([`db::MIGRATOR`]), teams and tokens,
//!   and the embedded default server.
//! - [`api`]: the axum router ([`api::app`]), error format and authentication.
//! - [`server`]: `serve` — database, listener, graceful shutdown.

pub mod api;
pub mod cli;
pub mod db;
pub mod error;
pub mod input;
pub mod modules;
pub mod score;
pub mod server;

pub use error::{Error, Result};
