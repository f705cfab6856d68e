//! `trainer dpo`: Direct Preference Optimization on preference pairs.
//!
//! - [`loss`]: the pair losses (sigmoid, robust, IPO, hinge) on summed log-probs and the
//!   rewards TRL logs, pinned to TRL 1.16's `DPOTrainer` (`trainer/tests/dpo_reference.rs`).
//! - [`config`]: the settings: `trainer sft`'s keys plus `beta`, `loss_type`,
//!   `label_smoothing`, `max_prompt_len`.
//! - [`train`](mod@train): the objective (pairs as rows, the reference's log-probs kept per
//!   pair) on SFT's loop, so the run directory, resume, checkpoints, memory guard,
//!   interrupts and final adapter are SFT's.
//!
//! Pairs come from [`crate::data::pairs`]. The metrics lines carry `loss`, `rewards/chosen`,
//! `rewards/rejected`, `rewards/margins` and `rewards/accuracies` (TRL's names, means over
//! the step's pairs); eval lines the same with an `eval_` prefix, over the held-out pairs.

pub mod config;
pub mod loss;
pub mod train;

pub use config::{DpoConfig, DpoOptions};
pub use loss::{DpoLoss, PairLogps, PairLoss, dpo_loss};
pub use train::train;
