//! One step's update: the rollouts as micro-batches, the no-gradient passes (sampling
//! policy, reference), the advantages of the configured algorithm, and `num_iterations`
//! optimizer steps over all micro-batches.

use candle_core::{Device, Tensor};

use super::advantage::{
    GrpoAdvantageConfig, KlEstimator, ReinforceConfig, RlooAdvantageConfig, approx_kl,
    grpo_advantages, reinforce_baseline_advantages, rloo_advantages, sequence_k1,
};
use super::config::{Algorithm, RlConfig};
use super::policy::Policy;
use super::policy_loss::{
    GrpoLossConfig, PolicyBatch, ReinforceLossConfig, RlooLossConfig, grpo_loss, reinforce_loss,
    rloo_loss, sequence_logp,
};
use super::rollout::{self, Batch, Rollout};
use crate::error::{Error, Result};
use crate::optim::GradAccumulator;
use crate::reward::Scored;

/// What one step measured.
pub(super) struct StepStats {
    pub(super) reward_mean: f64,
    pub(super) kl: f64,
    pub(super) loss: f64,
    pub(super) clip_fraction: f64,
    pub(super) grad_norm: f64,
    pub(super) completion_tokens: usize,
    pub(super) truncated: usize,
    /// The algorithm's own metrics (PPO's value loss, entropy, β...), logged as they are.
    pub(super) extra: serde_json::Map<String, serde_json::Value>,
}

/// PPO's step is [`super::ppo_step`]; reaching this is a bug in the loop.
fn ppo_elsewhere() -> Error {
    Error::InvalidArgument("PPO's update runs in rl::ppo_step, not rl::update".into())
}

/// One step's rollouts as micro-batches, with the no-gradient passes done.
pub(super) struct Update {
    batches: Vec<(Batch, std::ops::Range<usize>)>,
    /// Per micro-batch: the sampling policy's log-probs (μ > 1, or RLOO/REINFORCE++ KL).
    old: Vec<Option<Tensor>>,
    /// Per micro-batch: the reference's log-probs (β > 0).
    reference: Vec<Option<Tensor>>,
    tokens: usize,
    truncated: usize,
    lengths: Vec<Vec<u32>>,
}

impl Update {
    pub(super) fn prepare(
        cfg: &RlConfig,
        policy: &mut Policy,
        rollouts: &[Rollout],
        device: &Device,
    ) -> Result<Self> {
        let pad = policy.tokenizer.pad_id;
        let mut batches = Vec::new();
        for start in (0..rollouts.len()).step_by(cfg.micro_batch) {
            let range = start..(start + cfg.micro_batch).min(rollouts.len());
            let rows: Vec<&Rollout> = rollouts[range.clone()].iter().collect();
            batches.push((
                rollout::collate(&rows, pad, cfg.mask_truncated_completions, device)?,
                range,
            ));
        }
        let need_old = cfg.num_iterations > 1;
        let mut old = Vec::with_capacity(batches.len());
        let mut reference = Vec::with_capacity(batches.len());
        for (b, _) in &batches {
            old.push(
                need_old
                    .then(|| rollout::token_logprobs(&policy.model, b, cfg.temperature, false))
                    .transpose()?,
            );
            reference.push(
                (cfg.beta > 0.0)
                    .then(|| policy.reference_logprobs(b, cfg.temperature))
                    .transpose()?,
            );
        }
        let mut tokens = 0;
        for (b, _) in &batches {
            tokens += b.mask.sum_all()?.to_scalar::<f32>()? as usize;
        }
        Ok(Self {
            batches,
            old,
            reference,
            tokens,
            truncated: rollouts.iter().filter(|r| r.truncated).count(),
            lengths: rollouts.iter().map(|r| r.tokens.clone()).collect(),
        })
    }

    /// The advantages (one per completion; REINFORCE++'s per-token ones averaged for the
    /// log) and `num_iterations` optimizer steps.
    pub(super) fn run(
        &self,
        cfg: &RlConfig,
        policy: &mut Policy,
        scored: &Scored,
        weights: &[f64],
    ) -> Result<(Vec<f64>, StepStats)> {
        let g = cfg.num_generations;
        let n = self.lengths.len();
        let combined = super::advantage::combined_rewards(&scored.value, weights)?;
        let valid: Vec<f64> = combined.iter().flatten().copied().collect();
        let reward_mean = valid.iter().sum::<f64>() / valid.len().max(1) as f64;
        // Sequence-level KL terms for the algorithms that fold KL into the reward, from the
        // no-gradient passes (the sampling policy = the current one before the update).
        let (old_flat, ref_flat, mask_flat, width) = self.flat_logprobs(cfg, policy)?;
        let seq_adv: Vec<f64>;
        let mut token_adv: Option<Vec<Vec<f64>>> = None;
        match cfg.algorithm {
            Algorithm::Grpo => {
                let c = GrpoAdvantageConfig {
                    aggregation: cfg.aggregation,
                    scale_rewards: cfg.scale_rewards,
                    ..GrpoAdvantageConfig::default()
                };
                seq_adv = grpo_advantages(&scored.value, weights, g, &c)?;
            }
            Algorithm::Rloo => {
                let kl = match (&old_flat, &ref_flat) {
                    (Some(o), Some(r)) => Some(sequence_k1(o, r, &mask_flat, width)?),
                    _ => None,
                };
                let c = RlooAdvantageConfig {
                    beta: cfg.beta,
                    ..RlooAdvantageConfig::default()
                };
                seq_adv = rloo_advantages(&scored.value, weights, g, kl.as_deref(), &c)?;
            }
            Algorithm::Ppo => return Err(ppo_elsewhere()),
            Algorithm::ReinforceBaseline => {
                let token_kl = match (&old_flat, &ref_flat) {
                    (Some(o), Some(r)) => Some(approx_kl(o, r, KlEstimator::K1)?),
                    _ => None,
                };
                let c = ReinforceConfig {
                    beta: cfg.beta,
                    ..ReinforceConfig::default()
                };
                let flat = reinforce_baseline_advantages(
                    &combined,
                    g,
                    token_kl.as_deref(),
                    &mask_flat,
                    width,
                    &c,
                )?;
                let rows: Vec<Vec<f64>> = flat.chunks(width).map(<[f64]>::to_vec).collect();
                seq_adv = rows
                    .iter()
                    .zip(mask_flat.chunks(width))
                    .map(|(a, m)| {
                        let k = m.iter().sum::<f64>();
                        a.iter().zip(m).map(|(a, m)| a * m).sum::<f64>() / k.max(1.0)
                    })
                    .collect();
                token_adv = Some(rows);
            }
        }
        debug_assert_eq!(seq_adv.len(), n);
        let (mut kl_sum, mut loss_sum, mut clip_sum, mut grad_norm) = (0.0, 0.0, 0.0, 0.0);
        policy.model.set_training(true);
        let micro = self.batches.len();
        for _ in 0..cfg.num_iterations {
            let mut acc = GradAccumulator::default();
            for (k, (b, range)) in self.batches.iter().enumerate() {
                let logp = rollout::token_logprobs(&policy.model, b, cfg.temperature, true)?;
                let device = logp.device().clone();
                let adv = Tensor::from_vec(
                    seq_adv[range.clone()]
                        .iter()
                        .map(|&a| a as f32)
                        .collect::<Vec<_>>(),
                    range.len(),
                    &device,
                )?;
                let out = match cfg.algorithm {
                    Algorithm::Grpo => grpo_loss(
                        &PolicyBatch {
                            logp: &logp,
                            old_logp: self.old[k].as_ref(),
                            ref_logp: self.reference[k].as_ref(),
                            mask: &b.mask,
                            advantages: &adv,
                            generation_batch_tokens: Some(self.tokens as f64),
                        },
                        &GrpoLossConfig {
                            loss_type: cfg.loss_type,
                            epsilon_low: cfg.epsilon,
                            epsilon_high: cfg.epsilon_high(),
                            beta: cfg.beta,
                            kl_bias_correction: cfg.kl_bias_correction,
                            max_completion_length: cfg.max_new_tokens,
                            gradient_accumulation_steps: micro,
                        },
                    )?,
                    Algorithm::Rloo => {
                        let old = self.old[k].clone().unwrap_or_else(|| logp.detach());
                        rloo_loss(
                            &logp,
                            &sequence_logp(&old, &b.mask)?,
                            &b.mask,
                            &adv,
                            &RlooLossConfig {
                                epsilon_low: cfg.epsilon,
                                epsilon_high: cfg.epsilon_high(),
                                gradient_accumulation_steps: micro,
                            },
                        )?
                    }
                    Algorithm::Ppo => return Err(ppo_elsewhere()),
                    Algorithm::ReinforceBaseline => {
                        let rows = token_adv.as_ref().map_or(&[][..], |v| &v[range.clone()]);
                        let t = b.mask.dim(1)?;
                        let flat: Vec<f32> = rows
                            .iter()
                            .flat_map(|r| (0..t).map(|j| r.get(j).copied().unwrap_or(0.0) as f32))
                            .collect();
                        let adv_t = Tensor::from_vec(flat, (range.len(), t), &device)?;
                        let old = self.old[k].clone().unwrap_or_else(|| logp.detach());
                        reinforce_loss(
                            &logp,
                            &old,
                            &b.mask,
                            &adv_t,
                            Some(self.tokens as f64),
                            &ReinforceLossConfig {
                                epsilon_low: cfg.epsilon,
                                epsilon_high: cfg.epsilon_high(),
                                dual_clip: None,
                            },
                        )?
                    }
                };
                let value = out.loss.to_scalar::<f32>()?;
                if !value.is_finite() {
                    // The caller names the step and the checkpoint.
                    return Err(Error::NonFiniteLoss {
                        step: 0,
                        loss: value,
                        last_checkpoint: None,
                    });
                }
                loss_sum += f64::from(value);
                kl_sum += out.metrics.kl.unwrap_or(0.0) * range.len() as f64;
                clip_sum += out.metrics.clip_fraction * range.len() as f64;
                acc.add(policy.opt.vars().map(|(_, v)| v), &out.loss.backward()?)?;
            }
            grad_norm = acc.norm()?;
            if cfg.grad_clip > 0.0 && grad_norm > cfg.grad_clip {
                acc.scale(cfg.grad_clip / (grad_norm + 1e-6))?;
            }
            policy.opt.step(&acc.take())?;
        }
        policy.model.set_training(false);
        let iters = (cfg.num_iterations * n) as f64;
        Ok((
            seq_adv,
            StepStats {
                reward_mean,
                kl: kl_sum / iters,
                loss: loss_sum / cfg.num_iterations as f64,
                clip_fraction: clip_sum / iters,
                grad_norm,
                completion_tokens: self.lengths.iter().map(Vec::len).sum(),
                truncated: self.truncated,
                extra: serde_json::Map::new(),
            },
        ))
    }

    /// The no-gradient log-probs and the mask as flat row-major `f64`, all micro-batches
    /// padded to one width (for the advantage functions that take per-token values).
    #[allow(clippy::type_complexity, reason = "four parallel views of one batch")]
    fn flat_logprobs(
        &self,
        cfg: &RlConfig,
        policy: &Policy,
    ) -> Result<(Option<Vec<f64>>, Option<Vec<f64>>, Vec<f64>, usize)> {
        let width = self
            .batches
            .iter()
            .map(|(b, _)| b.mask.dim(1))
            .collect::<candle_core::Result<Vec<_>>>()?
            .into_iter()
            .max()
            .unwrap_or(1);
        let flat = |t: &Tensor| -> Result<Vec<f64>> {
            let rows: Vec<Vec<f32>> = t.to_vec2()?;
            Ok(rows
                .into_iter()
                .flat_map(|r| {
                    let pad = width - r.len();
                    r.into_iter()
                        .map(f64::from)
                        .chain(std::iter::repeat_n(0.0, pad))
                })
                .collect())
        };
        let mut mask = Vec::new();
        for (b, _) in &self.batches {
            mask.extend(flat(&b.mask)?);
        }
        let needs_kl = cfg.beta > 0.0 && cfg.algorithm != Algorithm::Grpo;
        if !needs_kl {
            return Ok((None, None, mask, width));
        }
        let (mut old, mut reference) = (Vec::new(), Vec::new());
        for (k, (b, _)) in self.batches.iter().enumerate() {
            let o = match &self.old[k] {
                Some(o) => o.clone(),
                None => rollout::token_logprobs(&policy.model, b, cfg.temperature, false)?,
            };
            old.extend(flat(&o)?);
            if let Some(r) = &self.reference[k] {
                reference.extend(flat(r)?);
            }
        }
        Ok((Some(old), Some(reference), mask, width))
    }
}
