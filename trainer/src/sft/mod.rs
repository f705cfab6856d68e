//! Supervised fine-tuning: data formats ([`data`]), the run configuration ([`config`]) and
//! the training loop with checkpoints and resumption ([`mod@train`]); the memory guard that
//! stops it cleanly before the system's OOM killer would is a run service
//! ([`crate::run::memory`]).

pub mod config;
pub mod data;
pub mod train;

pub use config::{Precision, SftConfig};
pub use train::{Summary, TrainOptions, train};
