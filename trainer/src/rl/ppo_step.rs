//! One PPO step over a sampled batch, as legacy TRL's `PPOTrainer.step` runs it:
//! 1. without gradients, per micro-batch: the sampling policy's log-probs and values, the
//!    reference's log-probs, the sampling distribution's entropy;
//! 2. the task rewards on their tokens ([`super::placement`]), minus β·KL per token
//!    ([`ppo::token_rewards`]), then GAE and whitening over the whole batch ([`ppo::gae`]);
//! 3. `ppo_epochs` passes over the batch in a seeded shuffled order, one optimizer step per
//!    minibatch of `ppo_mini_batch` sequences (micro-batches accumulate), stopping once a
//!    minibatch's policy KL passes `early_stop_kl`;
//! 4. the KL controller's update from the batch's mean summed KL.
//!
//! Every rollout-time quantity is kept per completion as a row over its own positions
//! (prompt + completion, `mask` 1 where a completion token's log-prob sits), so a
//! minibatch of any rows collates afresh and pads them with zeros.

use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::config::RlConfig;
use super::placement::{Combination, token_ends};
use super::policy::Policy;
use super::ppo::{self, KlController, PpoBatch, PpoLossConfig};
use super::rollout::{self, Batch, Rollout};
use super::update::StepStats;
use crate::error::{Error, Result};
use crate::optim::GradAccumulator;
use crate::reward::Scored;

/// One completion's rows over its positions.
struct Row {
    old_logp: Vec<f64>,
    ref_logp: Vec<f64>,
    old_values: Vec<f64>,
    mask: Vec<f64>,
}

/// The rollout-time passes of one step.
pub(super) struct PpoStep {
    rows: Vec<Row>,
    entropy: f64,
    tokens: usize,
    truncated: usize,
}

fn row_of(t: &Tensor, i: usize, len: usize) -> Result<Vec<f64>> {
    let r: Vec<f32> = t.get(i)?.to_vec1()?;
    Ok(r.into_iter().take(len).map(f64::from).collect())
}

/// Mean entropy per masked position of the (tempered) next-token distributions.
fn masked_entropy(
    policy: &Policy,
    hidden: &Tensor,
    batch: &Batch,
    temperature: f64,
) -> Result<(f64, f64)> {
    let (b, t, d) = hidden.dims3()?;
    let mask: Vec<f32> = batch.mask.flatten_all()?.to_vec1()?;
    let idx: Vec<u32> = (0..b * t)
        .filter(|&i| mask[i] > 0.0)
        .map(|i| i as u32)
        .collect();
    if idx.is_empty() {
        return Ok((0.0, 0.0));
    }
    let n = idx.len();
    let idx = Tensor::from_vec(idx, n, hidden.device())?;
    let rows = (hidden.reshape((b * t, d))?.index_select(&idx, 0)? / temperature)?;
    let logits = policy
        .model
        .lm_logits(&rows.unsqueeze(0)?)?
        .squeeze(0)?
        .to_dtype(DType::F32)?;
    let ent = ppo::entropy(&logits)?.sum_all()?.to_scalar::<f32>()?;
    Ok((f64::from(ent), n as f64))
}

impl PpoStep {
    pub(super) fn prepare(
        cfg: &RlConfig,
        policy: &mut Policy,
        rollouts: &[Rollout],
        device: &Device,
    ) -> Result<Self> {
        let pad = policy.tokenizer.pad_id;
        let mut rows = Vec::with_capacity(rollouts.len());
        let (mut ent_sum, mut ent_n) = (0.0, 0.0);
        let need_ref = cfg.beta > 0.0 || cfg.kl_target.is_some();
        for chunk in rollouts.chunks(cfg.micro_batch) {
            let refs: Vec<&Rollout> = chunk.iter().collect();
            let b = rollout::collate(&refs, pad, cfg.mask_truncated_completions, device)?;
            let (logp, hidden) =
                rollout::token_logprobs_and_hidden(&policy.model, &b, cfg.temperature, false)?;
            let value = policy.value()?;
            let values = if value.shares_backbone() {
                value.head(&hidden)?
            } else {
                value.critic_values(&b, false)?
            };
            let reference = if need_ref {
                Some(policy.reference_logprobs(&b, cfg.temperature)?)
            } else {
                None
            };
            let (e, n) = masked_entropy(policy, &hidden, &b, cfg.temperature)?;
            ent_sum += e;
            ent_n += n;
            for (i, r) in chunk.iter().enumerate() {
                let len = r.prompt_ids.len() + r.tokens.len();
                let old_logp = row_of(&logp, i, len)?;
                rows.push(Row {
                    ref_logp: match &reference {
                        Some(t) => row_of(t, i, len)?,
                        None => old_logp.clone(),
                    },
                    old_logp,
                    old_values: row_of(&values, i, len)?,
                    mask: row_of(&b.mask, i, len)?,
                });
            }
        }
        Ok(Self {
            rows,
            entropy: if ent_n > 0.0 { ent_sum / ent_n } else { 0.0 },
            tokens: rollouts.iter().map(|r| r.tokens.len()).sum(),
            truncated: rollouts.iter().filter(|r| r.truncated).count(),
        })
    }

    /// The task rewards, GAE and the epochs of updates; returns each completion's mean
    /// advantage (for the rollout log) and the step's metrics.
    #[allow(
        clippy::too_many_arguments,
        reason = "one step's inputs, each distinct"
    )]
    pub(super) fn run(
        &self,
        cfg: &RlConfig,
        policy: &mut Policy,
        rollouts: &[Rollout],
        scored: &Scored,
        combination: &Combination,
        kl: &mut KlController,
        step: usize,
        device: &Device,
    ) -> Result<(Vec<f64>, StepStats)> {
        let n = rollouts.len();
        // 2. Task rewards on their tokens, the KL penalty, GAE.
        let mut placed = Vec::with_capacity(n);
        let mut task_sums = Vec::with_capacity(n);
        for (i, r) in rollouts.iter().enumerate() {
            let ends = token_ends(&policy.tokenizer, &r.tokens)?;
            let task = combination.place(&scored.value[i], &scored.spans[i], &ends);
            task_sums.push(task.iter().sum::<f64>());
            let p = r.prompt_ids.len();
            let mut row = vec![0.0; p + r.tokens.len()];
            for (j, v) in task.into_iter().enumerate() {
                row[p - 1 + j] = v;
            }
            placed.push(row);
        }
        let old: Vec<Vec<f64>> = self.rows.iter().map(|r| r.old_logp.clone()).collect();
        let refs: Vec<Vec<f64>> = self.rows.iter().map(|r| r.ref_logp.clone()).collect();
        let masks: Vec<Vec<f64>> = self.rows.iter().map(|r| r.mask.clone()).collect();
        let values: Vec<Vec<f64>> = self.rows.iter().map(|r| r.old_values.clone()).collect();
        let beta = kl.value;
        let (rewards, kls) = ppo::token_rewards(&old, &refs, &placed, beta, cfg.kl_penalty)?;
        let gae = ppo::gae(
            &values,
            &rewards,
            &masks,
            cfg.gamma,
            cfg.lam,
            cfg.whiten_rewards,
        )?;
        let seq_kl: Vec<f64> = kls
            .iter()
            .zip(&masks)
            .map(|(k, m)| k.iter().zip(m).map(|(k, m)| k * m).sum())
            .collect();
        let mean_kl = seq_kl.iter().sum::<f64>() / n.max(1) as f64;
        // 3. Epochs over shuffled minibatches.
        let loss_cfg = PpoLossConfig {
            cliprange: cfg.epsilon,
            cliprange_value: cfg.cliprange_value,
            vf_coef: cfg.vf_coef,
            ratio_threshold: cfg.ratio_threshold,
        };
        let mini = cfg.ppo_mini_batch.unwrap_or(n).min(n).max(1);
        let pad = policy.tokenizer.pad_id;
        let mut sums = Sums::default();
        let mut epochs_done = 0;
        let mut early_stopped = false;
        let mut grad_norm = 0.0;
        policy.set_training(true);
        'epochs: for epoch in 0..cfg.ppo_epochs {
            let mut order: Vec<usize> = (0..n).collect();
            let mut rng = StdRng::seed_from_u64(
                cfg.seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ epoch as u64,
            );
            order.shuffle(&mut rng);
            epochs_done += 1;
            for minibatch in order.chunks(mini) {
                let mut acc = GradAccumulator::default();
                let micro: Vec<&[usize]> = minibatch.chunks(cfg.micro_batch).collect();
                let mut mb = Sums::default();
                for ids in &micro {
                    let chosen: Vec<&Rollout> = ids.iter().map(|&i| &rollouts[i]).collect();
                    let b = rollout::collate(&chosen, pad, cfg.mask_truncated_completions, device)?;
                    let t = b.mask.dim(1)?;
                    let rows = |f: &dyn Fn(usize) -> Vec<f64>| -> Vec<Vec<f64>> {
                        ids.iter().map(|&i| f(i)).collect()
                    };
                    let old_logp = padded(&rows(&|i| self.rows[i].old_logp.clone()), t, device)?;
                    let old_values =
                        padded(&rows(&|i| self.rows[i].old_values.clone()), t, device)?;
                    let mask = padded(&rows(&|i| self.rows[i].mask.clone()), t, device)?;
                    let adv = padded(&rows(&|i| gae.advantages[i].clone()), t, device)?;
                    let ret = padded(&rows(&|i| gae.returns[i].clone()), t, device)?;
                    let (logp, hidden) = rollout::token_logprobs_and_hidden(
                        &policy.model,
                        &b,
                        cfg.temperature,
                        true,
                    )?;
                    let value = policy.value()?;
                    let vpred = if value.shares_backbone() {
                        value.head(&hidden)?
                    } else {
                        value.critic_values(&b, true)?
                    };
                    let out = ppo::ppo_loss(
                        &PpoBatch {
                            logp: &logp,
                            values: &vpred,
                            old_logp: &old_logp,
                            old_values: &old_values,
                            mask: &mask,
                            advantages: &adv,
                            returns: &ret,
                        },
                        &loss_cfg,
                    )?;
                    let loss = (&out.loss / micro.len() as f64)?;
                    let value_f = loss.to_scalar::<f32>()?;
                    if !value_f.is_finite() {
                        return Err(Error::NonFiniteLoss {
                            step: 0,
                            loss: value_f,
                            last_checkpoint: None,
                        });
                    }
                    let tokens: f64 = ids
                        .iter()
                        .map(|&i| self.rows[i].mask.iter().sum::<f64>())
                        .sum();
                    mb.add(&out, tokens, f64::from(value_f));
                    acc.add(policy.opt.vars().map(|(_, v)| v), &loss.backward()?)?;
                }
                grad_norm = acc.norm()?;
                if cfg.grad_clip > 0.0 && grad_norm > cfg.grad_clip {
                    acc.scale(cfg.grad_clip / (grad_norm + 1e-6))?;
                }
                policy.opt.step(&acc.take())?;
                let stop = ppo::stop_early(mb.policykl(), cfg.early_stop_kl);
                sums.merge(&mb);
                if stop {
                    early_stopped = true;
                    break 'epochs;
                }
            }
        }
        policy.set_training(false);
        // 4. The KL controller, from the batch's mean summed KL.
        kl.update(mean_kl, n);
        let seq_adv: Vec<f64> = gae
            .advantages
            .iter()
            .zip(&masks)
            .map(|(a, m)| {
                let k: f64 = m.iter().sum();
                a.iter().zip(m).map(|(a, m)| a * m).sum::<f64>() / k.max(1.0)
            })
            .collect();
        let value_mean = ppo::masked_mean(&values, &masks);
        let returns_mean = ppo::masked_mean(&gae.returns, &masks);
        let mut extra = serde_json::Map::new();
        for (k, v) in [
            ("pg_loss", sums.mean(|s| s.pg)),
            ("vf_loss", sums.mean(|s| s.vf)),
            ("vf_clipfrac", sums.mean(|s| s.vf_clip)),
            ("approxkl", sums.mean(|s| s.approxkl)),
            ("policykl", sums.policykl()),
            ("ratio_mean", sums.mean(|s| s.ratio)),
            ("entropy", self.entropy),
            ("kl_coef", beta),
            ("kl_coef_next", kl.value),
            ("value_mean", value_mean),
            ("returns_mean", returns_mean),
        ] {
            extra.insert(k.into(), v.into());
        }
        extra.insert("ppo_epochs_done".into(), epochs_done.into());
        extra.insert("early_stopped".into(), early_stopped.into());
        extra.insert("zeroed_micro_batches".into(), sums.zeroed.into());
        Ok((
            seq_adv,
            StepStats {
                reward_mean: task_sums.iter().sum::<f64>() / n.max(1) as f64,
                kl: mean_kl,
                loss: sums.loss / sums.minibatches.max(1) as f64,
                clip_fraction: sums.mean(|s| s.pg_clip),
                grad_norm,
                completion_tokens: self.tokens,
                truncated: self.truncated,
                extra,
            },
        ))
    }
}

/// Rows as a `(rows, t)` tensor, each cut or zero-padded to `t`.
fn padded(rows: &[Vec<f64>], t: usize, device: &Device) -> Result<Tensor> {
    let flat: Vec<f32> = rows
        .iter()
        .flat_map(|r| (0..t).map(|j| r.get(j).copied().unwrap_or(0.0) as f32))
        .collect();
    Ok(Tensor::from_vec(flat, (rows.len(), t), device)?)
}

/// Token-weighted sums of the loss metrics.
#[derive(Default, Clone, Copy)]
struct Sums {
    tokens: f64,
    pg: f64,
    vf: f64,
    pg_clip: f64,
    vf_clip: f64,
    approxkl: f64,
    policykl: f64,
    ratio: f64,
    loss: f64,
    minibatches: usize,
    zeroed: usize,
}

impl Sums {
    fn add(&mut self, out: &ppo::PpoLoss, tokens: f64, loss: f64) {
        self.tokens += tokens;
        self.pg += out.pg_loss * tokens;
        self.vf += out.vf_loss * tokens;
        self.pg_clip += out.pg_clipfrac * tokens;
        self.vf_clip += out.vf_clipfrac * tokens;
        self.approxkl += out.approxkl * tokens;
        self.policykl += out.policykl * tokens;
        self.ratio += out.ratio_mean * tokens;
        self.loss += loss;
        self.zeroed += usize::from(out.zeroed);
    }

    fn merge(&mut self, mb: &Sums) {
        let minibatches = self.minibatches + 1;
        *self = Sums {
            tokens: self.tokens + mb.tokens,
            pg: self.pg + mb.pg,
            vf: self.vf + mb.vf,
            pg_clip: self.pg_clip + mb.pg_clip,
            vf_clip: self.vf_clip + mb.vf_clip,
            approxkl: self.approxkl + mb.approxkl,
            policykl: self.policykl + mb.policykl,
            ratio: self.ratio + mb.ratio,
            loss: self.loss + mb.loss,
            minibatches,
            zeroed: self.zeroed + mb.zeroed,
        };
    }

    fn mean(&self, f: impl Fn(&Sums) -> f64) -> f64 {
        if self.tokens > 0.0 {
            f(self) / self.tokens
        } else {
            0.0
        }
    }

    fn policykl(&self) -> f64 {
        self.mean(|s| s.policykl)
    }
}
