//! PPO's numerics: per-token rewards with the KL penalty, GAE, whitening, the clipped
//! policy and value losses, the KL controller and the early stop.
//!
//! They follow legacy TRL's `PPOTrainer` (v0.11: `compute_rewards`, `compute_advantages`,
//! `loss`, `_early_stop`, `AdaptiveKLController`), the trainer Rewarded Soups, RLLR and
//! ALaRM built on, rather than TRL's current experimental one: legacy TRL puts a sequence's
//! score on its last real token (the experimental one puts it one slot after EOS), which is
//! also where token-level rewards need the sequence reward to sit, and it has the adaptive
//! KL controller and the early stop those methods use. `trainer/reference/ppo_reference.py`
//! runs TRL 0.11.4's own methods on fixed cases and `trainer/tests/ppo_reference.rs` replays
//! them here within 1e-6.
//!
//! Shapes: every per-token quantity is a `(B, T)` grid (rows of one width, `mask` 1 at the
//! positions holding a response token's log-prob), as `f64` on the host for the rollout
//! quantities (a few thousand numbers per step) and as candle tensors for the losses, so
//! gradients flow through composed ops only.
//!
//! Where this differs from TRL, and why:
//! - A row with no response token gets no score (TRL's `mask.nonzero()[-1]` raises).
//! - Whitening over fewer than two tokens returns zeros (TRL raises on none and gives 0 for
//!   one token anyway: Bessel's n/(n−1) is infinite and `rsqrt` of it 0).
//! - A micro-batch with no response token has loss 0 (TRL's masked mean is 0/0).

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How the per-token KL penalty is estimated from the policy's and the reference's
/// log-probs of the sampled token (TRL's `kl_penalty`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlPenalty {
    /// `ℓ − ℓ_ref` (k1, TRL's default "kl").
    #[default]
    Kl,
    /// `|ℓ − ℓ_ref|`.
    Abs,
    /// `½(ℓ − ℓ_ref)²`.
    Mse,
}

impl KlPenalty {
    /// The penalty of one token.
    pub fn of(self, logp: f64, ref_logp: f64) -> f64 {
        let d = logp - ref_logp;
        match self {
            Self::Kl => d,
            Self::Abs => d.abs(),
            Self::Mse => 0.5 * d * d,
        }
    }
}

/// The KL coefficient β: fixed, or moved towards a target KL (Ziegler et al.; TRL's
/// `AdaptiveKLController`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct KlController {
    /// The current β.
    pub value: f64,
    /// The target of the batch's mean per-sequence KL (summed over tokens); `None` keeps β
    /// fixed.
    pub target: Option<f64>,
    /// Sequences over which a full proportional correction is applied.
    pub horizon: f64,
}

impl KlController {
    /// A fixed β.
    pub fn fixed(beta: f64) -> Self {
        Self {
            value: beta,
            target: None,
            horizon: 1.0,
        }
    }

    /// β starting at `init`, adapted towards `target`.
    pub fn adaptive(init: f64, target: f64, horizon: f64) -> Self {
        Self {
            value: init,
            target: Some(target),
            horizon,
        }
    }

    /// After a batch of `n_steps` sequences whose mean summed KL was `current`:
    /// e = clip(current/target − 1, ±0.2), β ← β·(1 + e·n_steps/horizon).
    pub fn update(&mut self, current: f64, n_steps: usize) {
        if let Some(target) = self.target {
            let e = (current / target - 1.0).clamp(-0.2, 0.2);
            self.value *= 1.0 + e * n_steps as f64 / self.horizon;
        }
    }
}

/// A `(B, T)` grid of per-token values, as rows.
pub type Grid = Vec<Vec<f64>>;

/// Each row's score on its last real token (TRL's rule); a row without one gets nothing.
pub fn place_scores(scores: &[f64], mask: &[Vec<f64>]) -> Result<Vec<Vec<f64>>> {
    same_rows("scores", scores.len(), mask.len())?;
    Ok(mask
        .iter()
        .zip(scores)
        .map(|(m, &s)| {
            let mut row = vec![0.0; m.len()];
            if let Some(last) = m.iter().rposition(|&v| v > 0.0) {
                row[last] = s;
            }
            row
        })
        .collect())
}

/// Per-token rewards `r_t = placed_t − β·kl_t` and the KL terms `kl_t` (TRL's
/// `compute_rewards`, with the task rewards already placed on their tokens; like TRL the
/// KL is not masked here, [`gae`] masks).
pub fn token_rewards(
    logp: &[Vec<f64>],
    ref_logp: &[Vec<f64>],
    placed: &[Vec<f64>],
    beta: f64,
    penalty: KlPenalty,
) -> Result<(Grid, Grid)> {
    same_grid("reference log-probs", ref_logp, logp)?;
    same_grid("placed rewards", placed, logp)?;
    let kls: Vec<Vec<f64>> = logp
        .iter()
        .zip(ref_logp)
        .map(|(l, r)| l.iter().zip(r).map(|(&a, &b)| penalty.of(a, b)).collect())
        .collect();
    let rewards = kls
        .iter()
        .zip(placed)
        .map(|(k, p)| k.iter().zip(p).map(|(&k, &p)| p - beta * k).collect())
        .collect();
    Ok((rewards, kls))
}

/// `Σ m·x / Σ m` over a grid (0 when Σ m = 0).
pub fn masked_mean(x: &[Vec<f64>], mask: &[Vec<f64>]) -> f64 {
    let (s, n) = x
        .iter()
        .flatten()
        .zip(mask.iter().flatten())
        .fold((0.0, 0.0), |(s, n), (x, m)| (s + x * m, n + m));
    if n > 0.0 { s / n } else { 0.0 }
}

/// TRL's `masked_whiten`: `(x − μ)·rsqrt(var + 1e-8)` with the masked mean μ and Bessel's
/// variance, plus μ back when `shift_mean` is false. Fewer than two tokens: zeros (μ kept
/// when not shifting).
pub fn masked_whiten(x: &[Vec<f64>], mask: &[Vec<f64>], shift_mean: bool) -> Vec<Vec<f64>> {
    let n: f64 = mask.iter().flatten().sum();
    let mean = masked_mean(x, mask);
    let back = if shift_mean { 0.0 } else { mean };
    if n < 2.0 {
        return x.iter().map(|r| r.iter().map(|_| back).collect()).collect();
    }
    let centred: Vec<Vec<f64>> = x
        .iter()
        .map(|r| r.iter().map(|v| (v - mean) * (v - mean)).collect())
        .collect();
    let var = masked_mean(&centred, mask) * n / (n - 1.0);
    let scale = 1.0 / (var + 1e-8).sqrt();
    x.iter()
        .map(|r| r.iter().map(|v| (v - mean) * scale + back).collect())
        .collect()
}

/// What [`gae`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Gae {
    /// Whitened advantages.
    pub advantages: Vec<Vec<f64>>,
    /// `A + V` before whitening: the value targets.
    pub returns: Vec<Vec<f64>>,
}

/// Generalised advantage estimation (TRL's `compute_advantages`): V and r masked,
/// optionally r whitened without shifting its mean, δ_t = r_t + γ·V_{t+1} − V_t (V past the
/// end 0), A_t = δ_t + γλ·A_{t+1}, R = A + V, then A whitened over the masked tokens of the
/// whole batch.
pub fn gae(
    values: &[Vec<f64>],
    rewards: &[Vec<f64>],
    mask: &[Vec<f64>],
    gamma: f64,
    lam: f64,
    whiten_rewards: bool,
) -> Result<Gae> {
    same_grid("values", values, mask)?;
    same_grid("rewards", rewards, mask)?;
    let times = |a: &[Vec<f64>]| -> Vec<Vec<f64>> {
        a.iter()
            .zip(mask)
            .map(|(r, m)| r.iter().zip(m).map(|(x, m)| x * m).collect())
            .collect()
    };
    let values = times(values);
    let mut rewards = times(rewards);
    if whiten_rewards {
        rewards = masked_whiten(&rewards, mask, false);
    }
    let mut advantages = Vec::with_capacity(values.len());
    let mut returns = Vec::with_capacity(values.len());
    for (v, r) in values.iter().zip(&rewards) {
        let t = v.len();
        let mut a = vec![0.0; t];
        let mut last = 0.0;
        for i in (0..t).rev() {
            let next = if i + 1 < t { v[i + 1] } else { 0.0 };
            let delta = r[i] + gamma * next - v[i];
            last = delta + gamma * lam * last;
            a[i] = last;
        }
        returns.push(a.iter().zip(v).map(|(a, v)| a + v).collect());
        advantages.push(a);
    }
    Ok(Gae {
        advantages: masked_whiten(&advantages, mask, true),
        returns,
    })
}

/// PPO loss settings; the defaults are TRL's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PpoLossConfig {
    /// Policy ratio clip ε (`cliprange`, 0.2).
    pub cliprange: f64,
    /// Value clip around the rollout's values (`cliprange_value`, 0.2).
    pub cliprange_value: f64,
    /// Weight of the value loss (`vf_coef`, 0.1).
    pub vf_coef: f64,
    /// A micro-batch whose mean ratio exceeds this gets zero loss (`ratio_threshold`, 10).
    pub ratio_threshold: f64,
}

impl Default for PpoLossConfig {
    fn default() -> Self {
        Self {
            cliprange: 0.2,
            cliprange_value: 0.2,
            vf_coef: 0.1,
            ratio_threshold: 10.0,
        }
    }
}

/// One micro-batch of PPO's update: the current policy's and value model's outputs
/// (carrying gradients) and the rollout's fixed quantities, all `(B, T)`.
#[derive(Debug, Clone, Copy)]
pub struct PpoBatch<'a> {
    /// Log-probs of the sampled tokens under the policy being trained.
    pub logp: &'a Tensor,
    /// Value predictions of the value model being trained.
    pub values: &'a Tensor,
    /// Log-probs under the policy that sampled.
    pub old_logp: &'a Tensor,
    /// Values of the rollout (before any update).
    pub old_values: &'a Tensor,
    /// 1 at response tokens.
    pub mask: &'a Tensor,
    /// Whitened advantages.
    pub advantages: &'a Tensor,
    /// Value targets.
    pub returns: &'a Tensor,
}

/// The loss of one micro-batch and what TRL logs about it.
#[derive(Debug, Clone)]
pub struct PpoLoss {
    /// `pg + vf_coef·vf`, or zero when the mean ratio passed `ratio_threshold`.
    pub loss: Tensor,
    /// Masked mean of `max(−Aρ, −A·clip(ρ, 1 ± ε))`.
    pub pg_loss: f64,
    /// `½·` masked mean of `max((V − R)², (V_clipped − R)²)`.
    pub vf_loss: f64,
    /// Share of tokens where the ratio clip bound.
    pub pg_clipfrac: f64,
    /// Share of tokens where the value clip bound.
    pub vf_clipfrac: f64,
    /// `½·` masked mean of `(ℓ − ℓ_old)²`.
    pub approxkl: f64,
    /// Masked mean of `ℓ_old − ℓ` (what the early stop reads).
    pub policykl: f64,
    /// Masked mean of ρ.
    pub ratio_mean: f64,
    /// The loss was zeroed by `ratio_threshold`.
    pub zeroed: bool,
}

/// TRL's PPO loss (policy clip, value clip) for one micro-batch.
pub fn ppo_loss(batch: &PpoBatch<'_>, config: &PpoLossConfig) -> Result<PpoLoss> {
    let (b, t) = batch.logp.dims2()?;
    let dtype = batch.logp.dtype();
    let fixed = |x: &Tensor, what: &str| -> Result<Tensor> {
        if x.dims() != [b, t] {
            return Err(Error::InvalidArgument(format!(
                "{what} has shape {:?}, expected [{b}, {t}]",
                x.dims()
            )));
        }
        Ok(x.to_dtype(dtype)?.detach())
    };
    let mask = fixed(batch.mask, "mask")?;
    let old_logp = fixed(batch.old_logp, "old log-probs")?;
    let old_values = fixed(batch.old_values, "old values")?;
    let adv = fixed(batch.advantages, "advantages")?;
    let ret = fixed(batch.returns, "returns")?;
    let values = batch.values.to_dtype(dtype)?;
    if values.dims() != [b, t] {
        return Err(Error::InvalidArgument(format!(
            "values have shape {:?}, expected [{b}, {t}]",
            values.dims()
        )));
    }
    let n = mask.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    let mean = |x: &Tensor| -> Result<Tensor> {
        let s = (x * &mask)?.sum_all()?;
        Ok(if n > 0.0 { (s / n)? } else { (s * 0.0)? })
    };
    let scalar =
        |x: &Tensor| -> Result<f64> { Ok(mean(x)?.to_dtype(DType::F64)?.to_scalar::<f64>()?) };
    // Value loss: the prediction clipped to old ± cliprange_value.
    let lo = (&old_values - config.cliprange_value)?;
    let hi = (&old_values + config.cliprange_value)?;
    let v_clipped = values.maximum(&lo)?.minimum(&hi)?;
    let vf1 = (&values - &ret)?.sqr()?;
    let vf2 = (&v_clipped - &ret)?.sqr()?;
    let vf_loss = (mean(&vf1.maximum(&vf2)?)? * 0.5)?;
    let vf_clipfrac = scalar(&vf2.gt(&vf1)?.to_dtype(dtype)?)?;
    // Policy loss: the clipped surrogate.
    let log_ratio = (batch.logp - &old_logp)?;
    let ratio = log_ratio.exp()?;
    let pg1 = (adv.neg()? * &ratio)?;
    let pg2 = (adv.neg()? * ratio.clamp(1.0 - config.cliprange, 1.0 + config.cliprange)?)?;
    let pg_loss = mean(&pg1.maximum(&pg2)?)?;
    let pg_clipfrac = scalar(&pg2.gt(&pg1)?.to_dtype(dtype)?)?;
    let mut loss = (&pg_loss + (&vf_loss * config.vf_coef)?)?;
    let ratio_mean = scalar(&ratio)?;
    let zeroed = ratio_mean > config.ratio_threshold;
    if zeroed {
        loss = (loss * 0.0)?;
    }
    let value = |x: &Tensor| -> Result<f64> { Ok(x.to_dtype(DType::F64)?.to_scalar::<f64>()?) };
    let (pg, vf) = if zeroed {
        (0.0, 0.0)
    } else {
        (value(&pg_loss)?, value(&vf_loss)?)
    };
    let log_ratio = log_ratio.detach();
    Ok(PpoLoss {
        loss,
        pg_loss: pg,
        vf_loss: vf,
        pg_clipfrac,
        vf_clipfrac,
        approxkl: 0.5 * scalar(&log_ratio.sqr()?)?,
        policykl: scalar(&log_ratio.neg()?)?,
        ratio_mean,
        zeroed,
    })
}

/// The entropy of `softmax(logits)` per row of `(n, V)` logits (TRL's
/// `entropy_from_logits`), from composed ops.
pub fn entropy(logits: &Tensor) -> Result<Tensor> {
    let z = logits.broadcast_sub(&logits.max_keepdim(1)?)?;
    let logp = z.broadcast_sub(&z.exp()?.sum_keepdim(1)?.log()?)?;
    Ok((logp.exp()? * &logp)?.sum(1)?.neg()?)
}

/// Whether the PPO epochs stop: the policy KL of the last minibatch passed `bound` (legacy
/// TRL stops at 1.5·`target_kl`; ALaRM at 0.15). `None` never stops.
pub fn stop_early(policykl: f64, bound: Option<f64>) -> bool {
    bound.is_some_and(|b| policykl > b)
}

fn same_rows(what: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(Error::InvalidArgument(format!(
            "{what}: {got} rows for a batch of {want}"
        )));
    }
    Ok(())
}

fn same_grid(what: &str, a: &[Vec<f64>], like: &[Vec<f64>]) -> Result<()> {
    same_rows(what, a.len(), like.len())?;
    for (i, (x, y)) in a.iter().zip(like).enumerate() {
        if x.len() != y.len() {
            return Err(Error::InvalidArgument(format!(
                "{what}: row {i} has {} entries, expected {}",
                x.len(),
                y.len()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }

    #[test]
    fn the_adaptive_controller_moves_beta_by_the_clipped_proportional_error() {
        // rl.md [5d], worked by hand: e = clip(8/6 − 1, ±.2) = .2, β = .2·(1 + .2·128/1e4).
        for (kl, want) in [(8.0, 0.200512), (6.6, 0.200256), (3.0, 0.199488)] {
            let mut c = KlController::adaptive(0.2, 6.0, 10_000.0);
            c.update(kl, 128);
            close(c.value, want);
        }
        let mut f = KlController::fixed(0.05);
        f.update(100.0, 128);
        assert_eq!(f.value, 0.05);
    }

    #[test]
    fn whitening_uses_bessel_and_handles_tiny_batches() {
        // [1, 2, 3, 4]: μ 2.5, var 5/3 → (1 − 2.5)/√(5/3) = −1.161895.
        let w = masked_whiten(&[vec![1.0, 2.0, 3.0, 4.0]], &[vec![1.0; 4]], true);
        close(w[0][0], -1.161895);
        close(w[0][1], -0.3872983);
        let one = masked_whiten(&[vec![5.0, 7.0]], &[vec![1.0, 0.0]], false);
        assert_eq!(one, vec![vec![5.0, 5.0]]);
    }

    #[test]
    fn gae_with_gamma_one_and_lambda_one_is_the_return_minus_the_value() {
        // One row, no whitening check: A_raw_t = Σ_{t'≥t} r − V_t when γ = λ = 1.
        let v = vec![vec![0.5, 0.25, 0.0]];
        let r = vec![vec![0.0, 0.0, 1.0]];
        let m = vec![vec![1.0, 1.0, 1.0]];
        let g = gae(&v, &r, &m, 1.0, 1.0, false).unwrap();
        let raw: Vec<f64> = g.returns[0].iter().zip(&v[0]).map(|(r, v)| r - v).collect();
        assert_eq!(raw, vec![0.5, 0.75, 1.0]);
        assert_eq!(g.returns[0], vec![1.0, 1.0, 1.0]);
    }

    #[test]
    fn scores_sit_on_the_last_real_token_and_empty_rows_get_none() {
        let p = place_scores(&[2.0, 3.0], &[vec![0.0, 1.0, 1.0, 0.0], vec![0.0; 4]]).unwrap();
        assert_eq!(p, vec![vec![0.0, 0.0, 2.0, 0.0], vec![0.0; 4]]);
    }

    #[test]
    fn the_loss_clips_the_ratio_and_the_value() {
        // rl.md [5c]: ρ = 4, A = −1 → pg 4; V_old .5, V 1, R 1.5, clip .2 → vf .32.
        let dev = candle_core::Device::Cpu;
        let t = |v: f64| Tensor::new(&[[v]], &dev).unwrap();
        let cfg = PpoLossConfig {
            vf_coef: 1.0,
            ..PpoLossConfig::default()
        };
        let out = ppo_loss(
            &PpoBatch {
                logp: &t(4f64.ln()),
                values: &t(1.0),
                old_logp: &t(0.0),
                old_values: &t(0.5),
                mask: &t(1.0),
                advantages: &t(-1.0),
                returns: &t(1.5),
            },
            &cfg,
        )
        .unwrap();
        close(out.pg_loss, 4.0);
        close(out.vf_loss, 0.32);
        close(out.pg_clipfrac, 0.0);
        close(out.vf_clipfrac, 1.0);
        assert!(!out.zeroed);
        assert!(stop_early(0.2, Some(0.15)) && !stop_early(0.2, None));
    }
}
