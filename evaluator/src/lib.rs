//! The evaluator: scores model generations with sandboxed reward modules.
//!
//! This crate is the `evaluator` binary's library: the offline command-line path
//! (`evaluator score`, `evaluator modules`, `evaluator inspect`), the
//! PostgreSQL-backed service (`evaluator serve`, `evaluator worker`, `evaluator
//! admin`) and the client commands that drive it (`push-module`,
//! `push-generations`, `run`, `compare`, `status`, `cancel`, `results`,
//! `pareto`, `leaderboard`, and the listings `datasets`, `systems`, `list-modules`).
//!
//! # Layout
//! The arrows run one way: [`startup`] puts [`api`] and [`pages`] together;
//! both call the services ([`jobs`], [`results`]) and [`db`]; everything
//! speaks [`domain`]. `web` (templates and charts) knows nothing of the
//! database; [`pages`] fills its views.
//!
//! - [`startup`]: the database (configured or embedded), [`startup::app`]
//!   (the API and the pages under one router, with tracing and error logging)
//!   and [`startup::Application`] (the HTTP server and the workers under one
//!   `select!`), `serve` and `worker`;
//! - [`state`]: [`state::AppState`] and the request-size limits;
//! - [`telemetry`]: logging set-up and the one layer that logs internal errors;
//! - [`api`]: the HTTP API under `/api/v1`, its wire types ([`api::types`]) and
//!   the OpenAPI document generated from them;
//! - [`pages`]: the web pages (sign-in, overview, modules, results, win rates,
//!   Pareto, side by side), rendered with the `web` crate's templates;
//! - [`jobs`]: scoring runs and comparisons as durable jobs: planning, the
//!   PostgreSQL queue ([`jobs::queue`]) and the workers ([`jobs::worker`]);
//! - [`results`]: the statistics reported (means and standard errors, win
//!   rates and intervals, length control, Bradley–Terry), over [`db`]'s rows;
//! - [`pareto`]: the Pareto view of two metrics (the overall front, the sweeps
//!   by metadata `sweep` in λ order, hypervolumes from one reference), shared
//!   by the page, the API and `evaluator pareto`;
//! - [`baseline`]: the leaderboard against a fixed baseline from a judge's
//!   soft preferences (AlpacaEval's columns, its length-controlled win rate),
//!   cached per judge version;
//! - [`db`]: PostgreSQL — pool and migrations ([`db::MIGRATOR`]), teams and
//!   tokens, sessions, modules, datasets and generations, external judges and
//!   their judgments, the aggregates' rows,
//!   the review queries, and the embedded default server;
//! - [`domain`]: ids, job kinds and states, directions, and the records the
//!   service hands out;
//! - [`import`]: generation files (canonical, MaRio, ALaRM, AlpacaEval) parsed
//!   into rows keyed by dataset item, and judgment files made elsewhere
//!   ([`import::judgments`]: canonical, AlpacaEval), errors naming line and field;
//! - [`input`]: JSON Lines input parsed into [`reward_host::Sample`]s at the
//!   edge, with line-numbered errors;
//! - [`modules`]: `builtin:NAME` or a file path into a loaded module, and the
//!   service's [`modules::Sandbox`]: the host behind one compile queue (a bound
//!   on concurrent compilations, a per-team share, 503 beyond) that uploads and
//!   job workers share;
//! - [`score`]: batching samples through a scorer and writing one JSON object
//!   per input line (offline `evaluator score`);
//! - [`client`], [`remote`]: the HTTP client and what the client commands print;
//! - [`cli`]: the clap command line and exit codes (`main.rs` only calls it),
//!   including the compile limits' flags and the hidden `compile-module` child;
//! - [`error`]: [`Error`], which separates module faults (exit 2) from
//!   everything else.

pub mod api;
pub mod baseline;
pub mod cli;
pub mod client;
pub mod db;
pub mod domain;
pub mod error;
pub mod import;
pub mod input;
pub mod jobs;
pub mod modules;
pub mod pages;
pub mod pareto;
pub mod remote;
pub mod results;
pub mod score;
pub mod startup;
pub mod state;
pub mod telemetry;

pub use error::{Error, Result};
