//! Supervised fine-tuning: data formats ([`data`]), the run configuration ([`config`]) and
//! the training loop with checkpoints and resumption ([`mod@train`]).

pub mod config;
pub mod data;
pub mod train;

pub use config::SftConfig;
pub use train::{Summary, TrainOptions, train};
