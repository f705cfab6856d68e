//! The numerics of the RL algorithms: advantage estimators and policy losses, as pure
//! functions pinned against the reference implementations.
//!
//! An algorithm is one advantage estimator plus one policy loss:
//!
//! | algorithm | advantages ([`advantage`]) | loss ([`policy_loss`]) | follows |
//! |---|---|---|---|
//! | GRPO, Dr. GRPO, DAPO | [`advantage::grpo_advantages`] | [`policy_loss::grpo_loss`] | TRL 1.16.0 `GRPOTrainer` |
//! | RLOO | [`advantage::rloo_advantages`] | [`policy_loss::rloo_loss`] | TRL 1.16.0 `RLOOTrainer` |
//! | REINFORCE++-baseline | [`advantage::reinforce_baseline_advantages`] | [`policy_loss::reinforce_loss`] | OpenRLHF 0.11.2 `reinforce_baseline` + `PolicyLoss` |
//! | PPO | [`ppo::gae`] over per-token rewards ([`ppo::token_rewards`]) and a learned value | [`ppo::ppo_loss`] | legacy TRL 0.11 `PPOTrainer` |
//!
//! # Layout
//! - [`config`]: the `trainer rl` settings ([`RlConfig`]) and their flags.
//! - [`rollout`]: sampling completions, the padded batch, per-token log-probs.
//! - [`score`]: sampling with each completion scored on a thread as soon as it finishes.
//! - [`mod@train`]: the loop (sample → score → advantages → updates), on the run services
//!   of [`crate::run`]; [`policy`] holds the model, optimizer and reference, [`update`] one
//!   step's advantages and optimizer steps.
//! - [`eval`]: `rollouts.jsonl` and the greedy eval files.
//! - [`push`]: eval generations to an evaluation service, over HTTP.
//! - [`advantage`]: rewards (per sample, per reward, `None` = "not applicable") → one
//!   advantage per sample (GRPO, RLOO) or per token (REINFORCE++); plain `f64` slices, no
//!   tensors, because these are a few thousand numbers computed once per rollout batch.
//! - [`ppo`]: PPO's numerics (per-token rewards with the KL penalty, GAE, whitening, the
//!   clipped policy and value losses, the KL controller, the early stop), pinned against
//!   legacy TRL by `trainer/tests/ppo_reference.rs`; `ppo_step` runs one PPO step with
//!   them, and [`value`] holds the value model (a head on the policy, or a critic).
//! - [`placement`]: task rewards on tokens (span ends → tokens, sequence rewards on the
//!   last token) and ALaRM's combinations.
//! - [`policy_loss`]: per-token log-probs (candle tensors, so gradients flow) → the scalar
//!   loss of one micro-batch plus its metrics (clip fractions, mean KL); built from composed,
//!   differentiable ops only (candle-nn's fused ops have no backward pass).
//!
//! Dr. GRPO is GRPO with [`advantage::ScaleRewards::None`] and
//! [`policy_loss::LossType::DrGrpo`], as TRL configures it.
//!
//! # How they are pinned
//! `trainer/reference/rl_reference.py` runs the real TRL trainers (their
//! `_generate_and_score_completions` and `_compute_loss`, with the generator and the model
//! forward replaced by fixed numbers) and OpenRLHF's own functions on fixed cases, and writes
//! the results to `trainer/reference/data/rl/cases.json`; `trainer/tests/rl_reference.rs`
//! replays every case through this module and requires agreement within 1e-6 (advantages,
//! losses, gradients with respect to the log-probs, KL and clip metrics). The unit tests
//! here check edge cases against values derived independently of TRL.
//!
//! # Where this differs from the references, and why
//! - A sample with no reward at all ("unscorable") gets advantage 0 everywhere, which is
//!   TRL's rule for GRPO and RLOO too. OpenRLHF has no "none": its REINFORCE++ expects a
//!   score per sample; here an unscorable sample is left out of its group's mean and of the
//!   whitening statistics and gets advantage 0 at every token.
//! - TRL computes rewards in float32 (it casts each reward function's output); this module
//!   computes in `f64`. The reference script hands TRL float32-exact rewards so that the
//!   comparison measures the formulas, not the rounding.
//! - The loss functions divide by the gradient-accumulation steps themselves for RLOO too
//!   (TRL leaves that division to the Hugging Face `Trainer` there), so every loss here is
//!   "the value to back-propagate for one micro-batch".
//! - `dapo`'s normaliser is the active-token count of the whole generation batch
//!   ([`policy_loss::PolicyBatch::generation_batch_tokens`]); TRL's is the same number
//!   times `gradient_accumulation_steps / steps_per_generation`, which is 1 with TRL's
//!   defaults and with this trainer (one generation batch per optimizer step).

pub mod advantage;
pub mod config;
pub mod eval;
pub mod placement;
pub mod policy;
pub mod policy_loss;
pub mod ppo;
mod ppo_step;
pub mod push;
pub mod rollout;
pub mod score;
pub mod train;
pub mod update;
pub mod value;

pub use config::RlConfig;
pub use train::{RlOptions, RlSummary, train};
