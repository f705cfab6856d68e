//! Policy losses on candle tensors: one micro-batch's log-probs in, the scalar loss to
//! back-propagate and its metrics out.
//!
//! Shapes: `logp`, `old_logp`, `ref_logp` and `mask` are `(B, T)` (completion tokens,
//! right-padded; positions with mask 0 must still hold finite numbers, e.g. 0), advantages
//! `(B,)` for GRPO and RLOO and `(B, T)` for REINFORCE++. The loss is computed in `logp`'s
//! dtype with composed, differentiable ops only (exp, clamp, minimum, where): the gradient
//! reaches `logp` and through it the policy; the old, reference and mask tensors are
//! treated as constants (detached).
//!
//! # Sources (read in the installed versions)
//! - [`grpo_loss`]: TRL 1.16.0 `GRPOTrainer._compute_loss` (`trl/trainer/grpo_trainer.py`)
//!   with `importance_sampling_level="token"`: ρₜ = exp(ℓₜ − ℓᵒˡᵈₜ), Lₜ = −min(ρA, clip(ρ, 1 −
//!   ε_low, 1 + ε_high)·A), plus β·k3ₜ with k3 = e^{ℓʳᵉᶠ−ℓ} − (ℓʳᵉᶠ − ℓ) − 1 against the
//!   current ℓ (so the KL carries a gradient), times ρ when `kl_bias_correction` (TRL 1.16's
//!   `use_bias_correction_kl`, default on). Aggregation ([`LossType`]):
//!   `grpo` mean over sequences of Σₜ mL / max(1, Σₜ m), divided by GA; `bnpo` Σ mL / max(1,
//!   Σ m) over the micro-batch, divided by GA; `dr_grpo` Σ mL / (B·max_completion_length),
//!   divided by GA; `dapo` Σ mL / max(1, active tokens of the whole generation batch), not
//!   divided by GA. So `bnpo` and `dapo` differ only when a generation batch is split into
//!   several micro-batches: `bnpo` averages per micro-batch, `dapo` over the whole batch.
//!   Metrics as TRL logs them: `clip_ratio/low_mean` (ρ < 1 − ε_low with A < 0),
//!   `high_mean` (ρ > 1 + ε_high with A > 0), `region_mean` (either), and `kl` (mean of the
//!   KL term over the micro-batch's completion tokens), all token means.
//! - [`rloo_loss`]: TRL 1.16.0 `RLOOTrainer._compute_loss` (`trl/trainer/rloo_trainer.py`):
//!   one ratio per *sequence*, ρ = exp(Σₜ mℓ − Σₜ mℓᵒˡᵈ), L = −min(ρA, clip(ρ)A), mean over
//!   sequences; no KL term (RLOO's KL is in the reward). Divided by GA here (TRL leaves that
//!   to the HF `Trainer`).
//! - [`reinforce_loss`]: OpenRLHF 0.11.2 `PolicyLoss` with `policy_loss_type="ppo"` and
//!   token-level aggregation (`openrlhf/models/loss.py`): log ρ clamped to ±20, per-token
//!   advantages, optional dual clip, token mean; metrics `clip_ratio` (the clipped surrogate
//!   strictly smaller) and `ppo_kl` (mean of ℓᵒˡᵈ − ℓ).
//! - [`mask_truncated_completions`]: TRL's `mask_truncated_completions`: a completion whose
//!   last id is neither an EOS id nor the pad id gets mask 0 (its reward still counts in the
//!   group statistics, and under `grpo` it still counts in the batch mean, with loss 0).

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};

/// How per-token losses become one number (TRL's `loss_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossType {
    /// Per-sequence token mean, then the mean over sequences (the GRPO paper).
    Grpo,
    /// Token mean over the micro-batch.
    Bnpo,
    /// Token mean over the whole generation batch (TRL's default).
    #[default]
    Dapo,
    /// Token sum over `B · max_completion_length` (Dr. GRPO's constant normaliser).
    DrGrpo,
}

/// GRPO loss settings; the default is TRL 1.16's `GRPOConfig`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GrpoLossConfig {
    /// Aggregation.
    pub loss_type: LossType,
    /// Lower clip: ρ ≥ 1 − ε_low (TRL's `epsilon`, default 0.2).
    pub epsilon_low: f64,
    /// Upper clip: ρ ≤ 1 + ε_high (TRL's `epsilon_high`, default = `epsilon`).
    pub epsilon_high: f64,
    /// Weight of the k3 KL to the reference; 0 skips the term and needs no reference.
    pub beta: f64,
    /// Multiply the KL term by ρ (TRL's `use_bias_correction_kl`, default true since it was
    /// added: the unbiased reverse-KL gradient; it changes the gradient even on-policy).
    pub kl_bias_correction: bool,
    /// `dr_grpo`'s constant normaliser per sequence (TRL's `max_completion_length`, 512).
    pub max_completion_length: usize,
    /// Micro-batches per optimizer step; `grpo`, `bnpo` and `dr_grpo` divide by it.
    pub gradient_accumulation_steps: usize,
}

impl Default for GrpoLossConfig {
    fn default() -> Self {
        Self {
            loss_type: LossType::default(),
            epsilon_low: 0.2,
            epsilon_high: 0.2,
            beta: 0.0,
            kl_bias_correction: true,
            max_completion_length: 512,
            gradient_accumulation_steps: 1,
        }
    }
}

/// One micro-batch for [`grpo_loss`].
#[derive(Debug, Clone, Copy)]
pub struct PolicyBatch<'a> {
    /// Per-token log-probs of the policy being trained, `(B, T)`; carries the gradient.
    pub logp: &'a Tensor,
    /// Per-token log-probs of the policy that sampled, `(B, T)`; `None` when that is the
    /// current policy (one update per batch: ρ = 1 but the gradient still flows, as TRL's
    /// `per_token_logps.detach()`).
    pub old_logp: Option<&'a Tensor>,
    /// Per-token log-probs of the reference model, `(B, T)`; needed when β ≠ 0.
    pub ref_logp: Option<&'a Tensor>,
    /// Completion mask, `(B, T)`, 1 for tokens in the loss (see [`mask_truncated_completions`]).
    pub mask: &'a Tensor,
    /// One advantage per sequence, `(B,)`.
    pub advantages: &'a Tensor,
    /// `dapo`'s normaliser: the active tokens of the whole generation batch this
    /// micro-batch belongs to; `None` means this micro-batch is the whole batch.
    pub generation_batch_tokens: Option<f64>,
}

/// A loss and what the logs report about it.
#[derive(Debug, Clone)]
pub struct PolicyLoss {
    /// The scalar to back-propagate for this micro-batch (already divided for gradient
    /// accumulation where the loss type says so).
    pub loss: Tensor,
    /// Metrics of this micro-batch.
    pub metrics: LossMetrics,
}

/// Metrics of one micro-batch, as the reference implementation logs them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LossMetrics {
    /// Mean KL term to the reference over the completion tokens (k3, bias-corrected when
    /// configured); `None` when β = 0.
    pub kl: Option<f64>,
    /// Fraction clipped at the lower bound (ρ < 1 − ε_low where A < 0); TRL losses only.
    pub clip_low: Option<f64>,
    /// Fraction clipped at the upper bound (ρ > 1 + ε_high where A > 0); TRL losses only.
    pub clip_high: Option<f64>,
    /// Fraction whose gradient the clip removed: TRL's `clip_ratio/region_mean`, OpenRLHF's
    /// `clip_ratio` (per token, or per sequence for RLOO).
    pub clip_fraction: f64,
    /// OpenRLHF's `ppo_kl`, the mean of ℓᵒˡᵈ − ℓ over the tokens; REINFORCE++ only.
    pub ppo_kl: Option<f64>,
    /// Completion tokens in the loss (Σ mask).
    pub tokens: f64,
}

/// REINFORCE++ (OpenRLHF `PolicyLoss`) settings; the default is OpenRLHF's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReinforceLossConfig {
    /// Lower clip ε (`eps_clip_low`, 0.2).
    pub epsilon_low: f64,
    /// Upper clip ε (`eps_clip_high`, 0.2).
    pub epsilon_high: f64,
    /// Dual-clip constant c > 1 for negative advantages (off by default).
    pub dual_clip: Option<f64>,
}

impl Default for ReinforceLossConfig {
    fn default() -> Self {
        Self {
            epsilon_low: 0.2,
            epsilon_high: 0.2,
            dual_clip: None,
        }
    }
}

/// RLOO loss settings; the default is TRL's `RLOOConfig`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RlooLossConfig {
    /// Lower clip ε (0.2).
    pub epsilon_low: f64,
    /// Upper clip ε (= ε_low by default).
    pub epsilon_high: f64,
    /// Micro-batches per optimizer step; the loss is divided by it.
    pub gradient_accumulation_steps: usize,
}

impl Default for RlooLossConfig {
    fn default() -> Self {
        Self {
            epsilon_low: 0.2,
            epsilon_high: 0.2,
            gradient_accumulation_steps: 1,
        }
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

/// `t` as a detached tensor of `dtype`, checked to have `dims`.
fn constant(t: &Tensor, what: &str, dims: &[usize], dtype: DType) -> Result<Tensor> {
    if t.dims() != dims {
        return Err(invalid(format!(
            "{what} has shape {:?}, expected {dims:?}",
            t.dims()
        )));
    }
    Ok(t.to_dtype(dtype)?.detach())
}

fn host2(t: &Tensor) -> Result<Vec<Vec<f64>>> {
    Ok(t.to_dtype(DType::F64)?.to_vec2()?)
}

fn host1(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_dtype(DType::F64)?.to_vec1()?)
}

/// `Σ m·x / max(Σ m, 1)` over a `(B, T)` grid, on the host.
fn masked_mean(x: &[Vec<f64>], mask: &[Vec<f64>]) -> f64 {
    let (s, n) = x
        .iter()
        .flatten()
        .zip(mask.iter().flatten())
        .fold((0.0, 0.0), |(s, n), (x, m)| (s + x * m, n + m));
    s / f64::max(n, 1.0)
}

/// The ratio-derived clip metrics over a `(B, T)` grid of ratios and per-row advantages.
fn clip_fractions(
    ratio: &[Vec<f64>],
    adv: &[f64],
    mask: &[Vec<f64>],
    lo: f64,
    hi: f64,
) -> (f64, f64, f64) {
    let grid = |f: &dyn Fn(f64, f64) -> bool| -> Vec<Vec<f64>> {
        ratio
            .iter()
            .zip(adv)
            .map(|(row, &a)| row.iter().map(|&r| f64::from(u8::from(f(r, a)))).collect())
            .collect()
    };
    let low = |r: f64, a: f64| r < lo && a < 0.0;
    let high = |r: f64, a: f64| r > hi && a > 0.0;
    (
        masked_mean(&grid(&low), mask),
        masked_mean(&grid(&high), mask),
        masked_mean(&grid(&|r, a| low(r, a) || high(r, a)), mask),
    )
}

/// The clipped surrogate `−min(ρA, clip(ρ, 1 − ε_low, 1 + ε_high)·A)`, elementwise
/// (`adv` broadcast to `ratio`'s shape).
fn clipped_surrogate(
    ratio: &Tensor,
    adv: &Tensor,
    epsilon_low: f64,
    epsilon_high: f64,
) -> Result<Tensor> {
    let clipped = ratio.clamp(1.0 - epsilon_low, 1.0 + epsilon_high)?;
    let l1 = ratio.broadcast_mul(adv)?;
    let l2 = clipped.broadcast_mul(adv)?;
    Ok(l1.minimum(&l2)?.neg()?)
}

/// TRL's GRPO loss (and Dr. GRPO / DAPO / BNPO through [`LossType`]) for one micro-batch.
pub fn grpo_loss(batch: &PolicyBatch<'_>, config: &GrpoLossConfig) -> Result<PolicyLoss> {
    let logp = batch.logp;
    let (b, t) = logp.dims2()?;
    if b == 0 {
        return Err(invalid("an empty micro-batch has no loss"));
    }
    let dtype = logp.dtype();
    let mask = constant(batch.mask, "mask", &[b, t], dtype)?;
    let adv = constant(batch.advantages, "advantages", &[b], dtype)?.reshape((b, 1))?;
    let old = match batch.old_logp {
        Some(old) => constant(old, "old log-probs", &[b, t], dtype)?,
        None => logp.detach(),
    };
    let ratio = (logp - &old)?.exp()?;
    let mut per_token = clipped_surrogate(&ratio, &adv, config.epsilon_low, config.epsilon_high)?;
    let mask_h = host2(&mask)?;
    let mut kl = None;
    if config.beta != 0.0 {
        let reference = batch
            .ref_logp
            .ok_or_else(|| invalid("beta != 0 needs the reference log-probs"))?;
        let d = (constant(reference, "reference log-probs", &[b, t], dtype)? - logp)?;
        let mut k3 = ((d.exp()? - &d)? - 1.0)?;
        if config.kl_bias_correction {
            k3 = (k3 * &ratio)?;
        }
        kl = Some(masked_mean(&host2(&k3)?, &mask_h));
        per_token = (per_token + (k3 * config.beta)?)?;
    }
    let masked = (per_token * &mask)?;
    let tokens: f64 = mask_h.iter().flatten().sum();
    let ga = config.gradient_accumulation_steps.max(1) as f64;
    let loss = match config.loss_type {
        LossType::Grpo => {
            let per_seq = masked.sum(1)?.div(&mask.sum(1)?.maximum(1.0)?)?;
            (per_seq.mean(0)? / ga)?
        }
        LossType::Bnpo => (masked.sum_all()? / (tokens.max(1.0) * ga))?,
        LossType::DrGrpo => {
            (masked.sum_all()? / ((b * config.max_completion_length.max(1)) as f64 * ga))?
        }
        LossType::Dapo => {
            let n = batch.generation_batch_tokens.unwrap_or(tokens);
            (masked.sum_all()? / n.max(1.0))?
        }
    };
    let (clip_low, clip_high, clip_fraction) = clip_fractions(
        &host2(&ratio)?,
        &host1(batch.advantages)?,
        &mask_h,
        1.0 - config.epsilon_low,
        1.0 + config.epsilon_high,
    );
    Ok(PolicyLoss {
        loss,
        metrics: LossMetrics {
            kl,
            clip_low: Some(clip_low),
            clip_high: Some(clip_high),
            clip_fraction,
            ppo_kl: None,
            tokens,
        },
    })
}

/// `Σₜ mask·logp` per sequence, `(B,)`: RLOO's sequence log-prob (use it on the sampling
/// policy's log-probs at generation time for [`rloo_loss`]'s `old_logp_sum`).
pub fn sequence_logp(logp: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let mask = constant(mask, "mask", logp.dims(), logp.dtype())?;
    Ok((logp * mask)?.sum(1)?)
}

/// TRL's RLOO loss: the clipped surrogate with one ratio per sequence, mean over sequences.
///
/// `old_logp_sum` is [`sequence_logp`] of the sampling policy, `(B,)`; `advantages` `(B,)`.
pub fn rloo_loss(
    logp: &Tensor,
    old_logp_sum: &Tensor,
    mask: &Tensor,
    advantages: &Tensor,
    config: &RlooLossConfig,
) -> Result<PolicyLoss> {
    let (b, t) = logp.dims2()?;
    if b == 0 {
        return Err(invalid("an empty micro-batch has no loss"));
    }
    let dtype = logp.dtype();
    let mask_t = constant(mask, "mask", &[b, t], dtype)?;
    let old = constant(old_logp_sum, "old sequence log-probs", &[b], dtype)?;
    let adv = constant(advantages, "advantages", &[b], dtype)?;
    let ratio = (sequence_logp(logp, &mask_t)? - old)?.exp()?;
    let per_seq = clipped_surrogate(&ratio, &adv, config.epsilon_low, config.epsilon_high)?;
    let loss = (per_seq.mean(0)? / config.gradient_accumulation_steps.max(1) as f64)?;
    let ones = vec![vec![1.0]; b];
    let ratio_h: Vec<Vec<f64>> = host1(&ratio)?.into_iter().map(|r| vec![r]).collect();
    let (clip_low, clip_high, clip_fraction) = clip_fractions(
        &ratio_h,
        &host1(&adv)?,
        &ones,
        1.0 - config.epsilon_low,
        1.0 + config.epsilon_high,
    );
    Ok(PolicyLoss {
        loss,
        metrics: LossMetrics {
            kl: None,
            clip_low: Some(clip_low),
            clip_high: Some(clip_high),
            clip_fraction,
            ppo_kl: None,
            tokens: host2(&mask_t)?.iter().flatten().sum(),
        },
    })
}

/// OpenRLHF's PPO-clip policy loss with per-token advantages `(B, T)` (REINFORCE++), as a
/// token mean: over this micro-batch's completion tokens, or over `batch_tokens` when the
/// step spans several micro-batches (OpenRLHF's `batch_num_tokens`). A micro-batch with no
/// completion token has loss 0 (OpenRLHF's masked mean would be 0/0).
pub fn reinforce_loss(
    logp: &Tensor,
    old_logp: &Tensor,
    mask: &Tensor,
    advantages: &Tensor,
    batch_tokens: Option<f64>,
    config: &ReinforceLossConfig,
) -> Result<PolicyLoss> {
    let (b, t) = logp.dims2()?;
    let dtype = logp.dtype();
    let mask_t = constant(mask, "mask", &[b, t], dtype)?;
    let old = constant(old_logp, "old log-probs", &[b, t], dtype)?;
    let adv = constant(advantages, "advantages", &[b, t], dtype)?;
    let raw_log_ratio = (logp - &old)?;
    let ratio = raw_log_ratio.clamp(-20.0, 20.0)?.exp()?;
    let surr1 = (&ratio * &adv)?;
    let surr2 = (ratio.clamp(1.0 - config.epsilon_low, 1.0 + config.epsilon_high)? * &adv)?;
    let clip1 = surr1.minimum(&surr2)?;
    let objective = match config.dual_clip {
        None => clip1,
        Some(c) => {
            if c <= 1.0 {
                return Err(invalid(format!("dual_clip must be > 1, got {c}")));
            }
            let clip2 = clip1.maximum(&(&adv * c)?)?;
            adv.lt(0.0)?.where_cond(&clip2, &clip1)?
        }
    };
    let mask_h = host2(&mask_t)?;
    let tokens: f64 = mask_h.iter().flatten().sum();
    let n = batch_tokens.unwrap_or(tokens);
    let loss = if n > 0.0 {
        ((objective.neg()? * &mask_t)?.sum_all()? / n)?
    } else {
        (objective.sum_all()? * 0.0)?
    };
    let clipped: Vec<Vec<f64>> = host2(&surr2.lt(&surr1)?)?;
    let neg_log_ratio: Vec<Vec<f64>> = host2(&raw_log_ratio.neg()?)?;
    Ok(PolicyLoss {
        loss,
        metrics: LossMetrics {
            kl: None,
            clip_low: None,
            clip_high: None,
            clip_fraction: masked_mean(&clipped, &mask_h),
            ppo_kl: Some(masked_mean(&neg_log_ratio, &mask_h)),
            tokens,
        },
    })
}

/// Whether a completion was cut off by the length limit: its last id is neither an EOS id
/// nor the pad id (TRL's test). An empty completion counts as truncated (it has no tokens
/// to mask either way; TRL would fail on it).
pub fn is_truncated(completion: &[u32], eos_ids: &[u32], pad_id: u32) -> bool {
    completion
        .last()
        .is_none_or(|id| !eos_ids.contains(id) && *id != pad_id)
}

/// The completion mask `(B, T)` with every truncated completion's row set to 0 (TRL's
/// `mask_truncated_completions`).
pub fn mask_truncated_completions(
    mask: &Tensor,
    completions: &[Vec<u32>],
    eos_ids: &[u32],
    pad_id: u32,
) -> Result<Tensor> {
    let (b, _) = mask.dims2()?;
    if completions.len() != b {
        return Err(invalid(format!(
            "{} completions for a mask of {b} rows",
            completions.len()
        )));
    }
    let keep: Vec<f32> = completions
        .iter()
        .map(|c| {
            if is_truncated(c, eos_ids, pad_id) {
                0.0
            } else {
                1.0
            }
        })
        .collect();
    let keep = Tensor::from_vec(keep, (b, 1), mask.device())?.to_dtype(mask.dtype())?;
    Ok(mask.broadcast_mul(&keep)?)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    fn t2(rows: &[&[f64]]) -> Tensor {
        let b = rows.len();
        let t = rows[0].len();
        Tensor::from_vec(rows.concat(), (b, t), &Device::Cpu).expect("tensor")
    }

    fn t1(v: &[f64]) -> Tensor {
        Tensor::new(v, &Device::Cpu).expect("tensor")
    }

    fn scalar(t: &Tensor) -> f64 {
        t.to_dtype(DType::F64)
            .expect("f64")
            .to_scalar::<f64>()
            .expect("scalar")
    }

    /// The loss as a plain function of the policy's log-probs, for finite differences.
    fn loss_at(values: &[f64], shape: (usize, usize), f: &dyn Fn(&Tensor) -> Tensor) -> f64 {
        scalar(&f(
            &Tensor::from_vec(values.to_vec(), shape, &Device::Cpu).expect("t")
        ))
    }

    /// Checks the autograd gradient of `f` at `values` against central differences.
    fn check_gradient(values: &[f64], shape: (usize, usize), f: &dyn Fn(&Tensor) -> Tensor) {
        let var =
            Var::from_tensor(&Tensor::from_vec(values.to_vec(), shape, &Device::Cpu).expect("t"))
                .expect("var");
        let grads = f(var.as_tensor()).backward().expect("backward");
        let g: Vec<f64> = grads
            .get(&var)
            .expect("gradient reaches the log-probs")
            .flatten_all()
            .expect("flat")
            .to_vec1()
            .expect("vec");
        let h = 1e-6;
        for i in 0..values.len() {
            let mut up = values.to_vec();
            let mut down = values.to_vec();
            up[i] += h;
            down[i] -= h;
            let fd = (loss_at(&up, shape, f) - loss_at(&down, shape, f)) / (2.0 * h);
            assert!(
                (fd - g[i]).abs() < 1e-6,
                "d/dlogp[{i}]: autograd {} vs {fd}",
                g[i]
            );
        }
    }

    #[test]
    fn on_policy_grpo_without_kl_is_minus_the_mean_advantage_and_its_gradient() {
        let logp = Var::from_tensor(&t2(&[&[-1.0, -2.0, 0.0], &[-0.5, -0.1, -3.0]])).expect("var");
        let mask = t2(&[&[1.0, 1.0, 0.0], &[1.0, 1.0, 1.0]]);
        let adv = t1(&[0.5, -1.5]);
        let batch = PolicyBatch {
            logp: logp.as_tensor(),
            old_logp: None,
            ref_logp: None,
            mask: &mask,
            advantages: &adv,
            generation_batch_tokens: None,
        };
        let cfg = GrpoLossConfig {
            loss_type: LossType::Grpo,
            ..Default::default()
        };
        let out = grpo_loss(&batch, &cfg).expect("loss");
        assert!((scalar(&out.loss) - 0.5).abs() < 1e-12); // -(0.5 - 1.5) / 2
        let g = out.loss.backward().expect("bwd");
        let g: Vec<Vec<f64>> = g.get(&logp).expect("grad").to_vec2().expect("v");
        // dL/dℓ_it = -A_i / (n_i · B) on live tokens.
        let want = [[-0.125, -0.125, 0.0], [0.25, 0.25, 0.25]];
        for (gr, wr) in g.iter().zip(want) {
            for (x, y) in gr.iter().zip(wr) {
                assert!((x - y).abs() < 1e-12, "{g:?}");
            }
        }
        assert_eq!(out.metrics.clip_fraction, 0.0);
        assert_eq!(out.metrics.kl, None);
        assert_eq!(out.metrics.tokens, 5.0);
    }

    #[test]
    fn every_grpo_loss_type_has_the_gradient_of_its_formula() {
        let old = t2(&[&[-1.2, -0.6, -2.0], &[-0.9, -1.0, -0.2]]);
        let reference = t2(&[&[-1.0, -0.9, -1.5], &[-0.7, -1.3, -0.4]]);
        let mask = t2(&[&[1.0, 1.0, 1.0], &[1.0, 1.0, 0.0]]);
        let adv = t1(&[0.7, -0.4]);
        let values = [-1.0, -0.4, -1.5, -1.4, -1.1, -0.3];
        for loss_type in [
            LossType::Grpo,
            LossType::Bnpo,
            LossType::Dapo,
            LossType::DrGrpo,
        ] {
            for bias in [false, true] {
                let cfg = GrpoLossConfig {
                    loss_type,
                    beta: 0.1,
                    epsilon_high: 0.28,
                    kl_bias_correction: bias,
                    max_completion_length: 4,
                    gradient_accumulation_steps: 2,
                    ..Default::default()
                };
                let f = |logp: &Tensor| {
                    let batch = PolicyBatch {
                        logp,
                        old_logp: Some(&old),
                        ref_logp: Some(&reference),
                        mask: &mask,
                        advantages: &adv,
                        generation_batch_tokens: Some(10.0),
                    };
                    grpo_loss(&batch, &cfg).expect("loss").loss
                };
                check_gradient(&values, (2, 3), &f);
            }
        }
    }

    #[test]
    fn the_clip_removes_the_gradient_only_on_the_side_the_advantage_pushes() {
        // ρ = e^{0.5} > 1.2: clipped (no gradient) for A > 0, not for A < 0.
        let old = t2(&[&[-1.5], &[-1.5]]);
        let mask = t2(&[&[1.0], &[1.0]]);
        let adv = t1(&[1.0, -1.0]);
        let logp = Var::from_tensor(&t2(&[&[-1.0], &[-1.0]])).expect("var");
        let batch = PolicyBatch {
            logp: logp.as_tensor(),
            old_logp: Some(&old),
            ref_logp: None,
            mask: &mask,
            advantages: &adv,
            generation_batch_tokens: None,
        };
        let out = grpo_loss(&batch, &GrpoLossConfig::default()).expect("loss");
        let rho = 0.5f64.exp();
        assert!((scalar(&out.loss) - (-1.2 + rho) / 2.0).abs() < 1e-12);
        let g: Vec<Vec<f64>> = out
            .loss
            .backward()
            .expect("b")
            .get(&logp)
            .expect("g")
            .to_vec2()
            .expect("v");
        assert_eq!(g[0][0], 0.0);
        assert!((g[1][0] - rho / 2.0).abs() < 1e-12);
        assert_eq!(out.metrics.clip_high, Some(0.5));
        assert_eq!(out.metrics.clip_low, Some(0.0));
        assert_eq!(out.metrics.clip_fraction, 0.5);
    }

    #[test]
    fn the_k3_term_is_nonnegative_and_zero_at_the_reference() {
        let logp = t2(&[&[-1.0, -2.0], &[-0.3, -0.3]]);
        let mask = t2(&[&[1.0, 1.0], &[1.0, 1.0]]);
        let adv = t1(&[0.0, 0.0]);
        let kl_of = |reference: &Tensor| {
            let batch = PolicyBatch {
                logp: &logp,
                old_logp: None,
                ref_logp: Some(reference),
                mask: &mask,
                advantages: &adv,
                generation_batch_tokens: None,
            };
            let cfg = GrpoLossConfig {
                beta: 0.5,
                ..Default::default()
            };
            let out = grpo_loss(&batch, &cfg).expect("loss");
            (scalar(&out.loss), out.metrics.kl.expect("kl"))
        };
        assert_eq!(kl_of(&logp), (0.0, 0.0));
        let (loss, kl) = kl_of(&t2(&[&[-1.5, -1.0], &[-0.3, 0.0]]));
        let k3 = |d: f64| d.exp() - d - 1.0;
        let want = (k3(-0.5) + k3(1.0) + k3(0.0) + k3(0.3)) / 4.0;
        assert!(kl > 0.0 && (kl - want).abs() < 1e-12);
        assert!((loss - 0.5 * want).abs() < 1e-12);
    }

    #[test]
    fn empty_completions_contribute_nothing_and_an_all_empty_batch_is_zero() {
        let logp = t2(&[&[-1.0, -2.0], &[-0.3, -0.7]]);
        let adv = t1(&[1.0, -1.0]);
        let reference = t2(&[&[-1.1, -2.5], &[-0.2, -0.1]]);
        for loss_type in [
            LossType::Grpo,
            LossType::Bnpo,
            LossType::Dapo,
            LossType::DrGrpo,
        ] {
            let cfg = GrpoLossConfig {
                loss_type,
                beta: 0.04,
                max_completion_length: 2,
                ..Default::default()
            };
            let run = |mask: &Tensor| {
                let batch = PolicyBatch {
                    logp: &logp,
                    old_logp: None,
                    ref_logp: Some(&reference),
                    mask,
                    advantages: &adv,
                    generation_batch_tokens: None,
                };
                grpo_loss(&batch, &cfg).expect("loss")
            };
            let none = run(&t2(&[&[0.0, 0.0], &[0.0, 0.0]]));
            assert_eq!(scalar(&none.loss), 0.0, "{loss_type:?}");
            assert_eq!(none.metrics.kl, Some(0.0));
            // Row 1 empty: under grpo it still counts in the mean over sequences.
            let half = run(&t2(&[&[1.0, 1.0], &[0.0, 0.0]]));
            let k3 = |d: f64| d.exp() - d - 1.0;
            let row0 = -1.0 + 0.04 * (k3(-0.1) + k3(-0.5)) / 2.0;
            let want = match loss_type {
                LossType::Grpo => row0 / 2.0,
                LossType::Bnpo | LossType::Dapo => row0,
                LossType::DrGrpo => 2.0 * row0 / 4.0,
            };
            assert!((scalar(&half.loss) - want).abs() < 1e-12, "{loss_type:?}");
        }
    }

    #[test]
    fn rloo_uses_one_ratio_per_sequence() {
        let mask = t2(&[&[1.0, 1.0], &[1.0, 0.0]]);
        let old = sequence_logp(&t2(&[&[-1.0, -1.0], &[-1.0, 5.0]]), &mask).expect("old");
        let adv = t1(&[0.6, -0.6]);
        // Sequence 0: ρ = e^{0.3} > 1.2 with A > 0: clipped to 1.2. Sequence 1: ρ = 1.
        let logp = t2(&[&[-0.85, -0.85], &[-1.0, 9.0]]);
        let out = rloo_loss(&logp, &old, &mask, &adv, &RlooLossConfig::default()).expect("loss");
        assert!((scalar(&out.loss) - (-0.72 + 0.6) / 2.0).abs() < 1e-12);
        assert_eq!(out.metrics.clip_fraction, 0.5);
        let f = |logp: &Tensor| {
            rloo_loss(logp, &old, &mask, &adv, &RlooLossConfig::default())
                .expect("l")
                .loss
        };
        check_gradient(&[-0.95, -0.8, -1.1, 9.0], (2, 2), &f);
    }

    #[test]
    fn reinforce_loss_matches_its_formula_with_and_without_dual_clip() {
        let old = t2(&[&[-1.0, -2.0, -0.5], &[-0.3, -1.0, -1.0]]);
        let mask = t2(&[&[1.0, 1.0, 0.0], &[1.0, 1.0, 1.0]]);
        let adv = t2(&[&[0.4, -2.0, 1.0], &[-0.3, 0.8, -1.1]]);
        for dual_clip in [None, Some(1.5)] {
            let cfg = ReinforceLossConfig {
                epsilon_high: 0.28,
                dual_clip,
                ..Default::default()
            };
            let f = |logp: &Tensor| {
                reinforce_loss(logp, &old, &mask, &adv, None, &cfg)
                    .expect("l")
                    .loss
            };
            check_gradient(&[-0.2, -1.9, -0.5, -1.6, -0.7, -1.2], (2, 3), &f);
        }
        // ρ = 4 with A = -1: −ρA = 4; dual clip c = 3 caps the loss at −cA = 3.
        let one = |c| {
            let cfg = ReinforceLossConfig {
                dual_clip: c,
                ..Default::default()
            };
            let out = reinforce_loss(
                &t2(&[&[4f64.ln()]]),
                &t2(&[&[0.0]]),
                &t2(&[&[1.0]]),
                &t2(&[&[-1.0]]),
                None,
                &cfg,
            )
            .expect("l");
            scalar(&out.loss)
        };
        assert!((one(None) - 4.0).abs() < 1e-12 && (one(Some(3.0)) - 3.0).abs() < 1e-12);
    }

    #[test]
    fn truncated_completions_are_masked_out() {
        let mask = t2(&[
            &[1.0, 1.0, 0.0],
            &[1.0, 1.0, 1.0],
            &[1.0, 0.0, 0.0],
            &[0.0, 0.0, 0.0],
        ]);
        let completions = vec![vec![3, 9], vec![3, 4, 5], vec![0], vec![]];
        let out = mask_truncated_completions(&mask, &completions, &[9], 0).expect("mask");
        let got: Vec<Vec<f64>> = out.to_vec2().expect("v");
        assert_eq!(
            got,
            vec![
                vec![1.0, 1.0, 0.0],
                vec![0.0; 3],
                vec![1.0, 0.0, 0.0],
                vec![0.0; 3]
            ]
        );
        assert!(is_truncated(&[], &[9], 0));
    }

    #[test]
    fn shapes_that_do_not_fit_are_invalid_arguments() {
        let logp = t2(&[&[-1.0, -2.0]]);
        let batch = PolicyBatch {
            logp: &logp,
            old_logp: None,
            ref_logp: None,
            mask: &t2(&[&[1.0, 1.0, 1.0]]),
            advantages: &t1(&[1.0]),
            generation_batch_tokens: None,
        };
        assert!(matches!(
            grpo_loss(&batch, &Default::default()),
            Err(Error::InvalidArgument(_))
        ));
        let batch = PolicyBatch {
            mask: &t2(&[&[1.0, 1.0]]),
            ..batch
        };
        let cfg = GrpoLossConfig {
            beta: 0.1,
            ..Default::default()
        };
        assert!(matches!(
            grpo_loss(&batch, &cfg),
            Err(Error::InvalidArgument(_))
        ));
    }
}
