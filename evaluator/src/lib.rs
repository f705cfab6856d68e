//! The evaluator: scores model generations with sandboxed reward modules.
//!
//! This crate is the `evaluator` binary's library: the offline command-line path
//! (`evaluator score`, `evaluator modules`, `evaluator inspect`), the
//! PostgreSQL-backed service (`evaluator serve`, `evaluator worker`, `evaluator
//! admin`) and the client commands that drive it (`push-module`,
//! `push-generations`, `run`, `compare`, `status`, `cancel`, `results`).
//!
//! # Layout
//! - [`input`]: JSON Lines input parsed into [`reward_host::Sample`]s at the edge,
//!   with line-numbered errors.
//! - [`import`]: generation files (canonical, MaRio, ALaRM) parsed into rows keyed
//!   by dataset item, errors naming line and field.
//! - [`jobs`]: scoring runs and comparisons as durable jobs: planning, the
//!   PostgreSQL queue ([`jobs::queue`]) and the workers ([`jobs::worker`]).
//! - [`client`], [`remote`]: the HTTP client and what the client commands print.
//! - [`modules`]: resolving `builtin:NAME` or a file path into a loaded module.
//! - [`score`]: batching samples through a scorer and writing one JSON object per
//!   input line.
//! - [`cli`]: the clap command line and exit codes (`main.rs` only calls it).
//! - [`error`]: [`Error`], which separates module faults (exit 2) from everything else.
//! - [`db`]: PostgreSQL pool and migrations ([`db::MIGRATOR`]), teams and tokens,
//!   modules, datasets and generations, aggregated results, and the embedded
//!   default server.
//! - [`api`]: the axum router ([`api::app`]), error format and authentication.
//! - [`pages`]: the web pages (sign-in, overview, modules, results, win rates,
//!   Pareto, side by side), rendered with the `web` crate's templates.
//! - [`server`]: `serve` and `worker` — database, listener, workers, graceful shutdown.

pub mod api;
pub mod cli;
pub mod client;
pub mod db;
pub mod error;
pub mod import;
pub mod input;
pub mod jobs;
pub mod modules;
pub mod pages;
pub mod remote;
pub mod score;
pub mod server;

pub use error::{Error, Result};
