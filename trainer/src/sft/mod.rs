//! Supervised fine-tuning: data formats ([`data`]), the run configuration ([`config`]), the
//! training loop with checkpoints and resumption ([`mod@train`]) and the memory guard that
//! stops it cleanly before the system's OOM killer would ([`memory`]).

pub mod config;
pub mod data;
pub mod memory;
pub mod train;

pub use config::{Precision, SftConfig};
pub use train::{Summary, TrainOptions, train};
