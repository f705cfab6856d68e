//! `trainer rm`: reward models trained on preference pairs.
//!
//! - [`loss`]: Bradley–Terry with per-pair margins and TRL's centring term, pinned to TRL
//!   1.16's `RewardTrainer`, and RLLR's divergence-averaged per-token loss, pinned to a
//!   transcription of RLLR's trainer (both in `trainer/tests/rm_reference.rs`).
//! - [`config`]: the settings: `trainer sft`'s keys plus `center_rewards_coefficient`,
//!   `max_prompt_len`, `loss_type` and `rllr_temperature`.
//! - [`train`](mod@train): the objective (a score head on the backbone, read at each
//!   response's last token) on SFT's loop; the final directory holds the adapter (or
//!   model), `score.safetensors` and `reward_model.json`.
//! - [`rewardbench`]: RewardBench's per-subset accuracy and section-weighted scores, for
//!   eval pairs that name their `subset`.
//! - [`model`]: a trained reward model as a scorer ([`RewardModel`]): `rm:RUN_DIR` as a
//!   reward source of `trainer rl`, and `trainer score --rm RUN_DIR`.
//!
//! Metrics lines carry `loss`, `accuracy`, `margin` and `mean_reward` (TRL's names, means over
//! the step's pairs); eval lines the same with an `eval_` prefix: `eval_accuracy` is the
//! held-out pairwise accuracy. When eval pairs name a `subset` (RewardBench's column), eval
//! lines also carry `eval_subset_<name>` (accuracy per subset), `eval_section_<name>`
//! (RewardBench's section-weighted scores, [`rewardbench`]) and `eval_sections_mean`.

pub mod config;
pub mod loss;
pub mod model;
pub mod rewardbench;
pub mod train;

pub use config::{RmConfig, RmLoss, RmOptions};
pub use loss::{RewardLoss, divergence_loss, divergence_window, reward_loss};
pub use model::RewardModel;
pub use train::train;
