//! Supervised fine-tuning: data formats and tokenization, preference pairs' rows included
//! ([`data`]), the run configuration and [`config::WithSft`] for commands that extend it
//! ([`config`]), and the training loop with checkpoints and resumption over an objective
//! ([`mod@train`]; DPO and reward models run on it); the memory guard that stops it cleanly
//! before the system's OOM killer would is a run service ([`crate::run::memory`]).

pub mod config;
pub mod data;
pub mod train;

pub use config::{Precision, SftConfig};
pub use train::{Summary, TrainOptions, train};
