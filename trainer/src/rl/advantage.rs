//! Advantage estimators: rewards in, one advantage per sample (or per token) out.
//!
//! Inputs are plain `f64`s: `rewards[i][k]` is reward `k` of sample `i`, `None` when that
//! reward module answered "not applicable"; `weights[k]` weighs reward `k`; samples come in
//! contiguous groups of `group_size` completions of one prompt (`i / group_size` is the
//! prompt). Lengths that do not fit are an [`Error::InvalidArgument`].
//!
//! # The rule for `None` (TRL's, kept for every estimator)
//! - A `None` leaves that reward out of that sample's weighted sum (TRL's `nansum`: it
//!   counts as 0 in [`MultiObjectiveAggregation::SumThenNormalize`]; under
//!   [`MultiObjectiveAggregation::NormalizeThenSum`] it is left out of the reward's group
//!   statistics too, which puts the sample at that reward's group mean).
//! - A sample with no reward at all is *unscorable*: it is left out of its group's mean and
//!   standard deviation and of every batch statistic, and its advantage is 0.
//! - Any advantage that comes out undefined is 0 (TRL's final `nan_to_num`): with group
//!   scaling, a group with fewer than two scorable samples (the sample standard deviation
//!   of one value is undefined) gives 0 to all its members; in RLOO, a lone scorable sample
//!   has no leave-one-out baseline and gets 0.
//!
//! # Formulas and their sources
//! - [`grpo_advantages`]: TRL 1.16.0 `GRPOTrainer._generate_and_score_completions`
//!   (`trl/trainer/grpo_trainer.py`, the block after `_calculate_rewards`), with TRL's
//!   `nanstd` (`trl/trainer/utils.py`: Bessel-corrected, undefined below two values) and
//!   ε = 1e-4 added to σ.
//! - [`rloo_advantages`]: TRL 1.16.0 `RLOOTrainer._generate_and_score_completions`
//!   (`trl/trainer/rloo_trainer.py`): clip, subtract β·Σₜ(ℓᵒˡᵈ − ℓʳᵉᶠ) (k1 summed over the
//!   completion, see [`sequence_k1`]), leave-one-out baseline over scorable siblings,
//!   optional batch normalisation.
//! - [`reinforce_baseline_advantages`]: OpenRLHF 0.11.2
//!   `RemoteExperienceMaker.compute_advantages_and_returns` with estimator
//!   `reinforce_baseline` (`openrlhf/trainer/ppo_utils/experience_maker.py`) and
//!   `compute_reward` / `compute_approx_kl` (`openrlhf/models/utils.py`): score minus the
//!   group mean, clipped, placed on the last completion token, −β·KL on every token,
//!   undiscounted returns, then whitening over all completion tokens of the batch (biased
//!   variance, `rsqrt(max(var, 1e-8))`).

use crate::error::{Error, Result};

/// TRL's ε added to a standard deviation before dividing by it.
pub const TRL_STD_EPSILON: f64 = 1e-4;

/// How the group-relative advantage is scaled (TRL's `scale_rewards`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleRewards {
    /// Divide by the group's standard deviation (+ ε): TRL's default (`"group"`, `True`).
    #[default]
    Group,
    /// Divide by the standard deviation over the whole generation batch (+ ε); the mean
    /// stays per group (`"batch"`).
    Batch,
    /// Only subtract the group mean (`"none"`, `False`): Dr. GRPO.
    None,
}

/// How several rewards become one advantage (TRL's `multi_objective_aggregation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MultiObjectiveAggregation {
    /// Weighted sum of the raw rewards, then group normalisation (TRL's default).
    #[default]
    SumThenNormalize,
    /// GDPO: each reward normalised within its group (mean, σ + ε), the weighted sum of
    /// those, then normalised over the batch (mean, σ + ε). [`ScaleRewards`] is ignored, as
    /// in TRL. Summing first lets one high-variance reward drown the others.
    NormalizeThenSum,
}

/// GRPO advantage settings; the default is TRL's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GrpoAdvantageConfig {
    /// Multi-reward aggregation.
    pub aggregation: MultiObjectiveAggregation,
    /// Standard-deviation scaling (used by [`MultiObjectiveAggregation::SumThenNormalize`]).
    pub scale_rewards: ScaleRewards,
    /// Added to every standard deviation before dividing.
    pub epsilon: f64,
}

impl Default for GrpoAdvantageConfig {
    fn default() -> Self {
        Self {
            aggregation: MultiObjectiveAggregation::default(),
            scale_rewards: ScaleRewards::default(),
            epsilon: TRL_STD_EPSILON,
        }
    }
}

/// RLOO advantage settings; the default is TRL's `RLOOConfig`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RlooAdvantageConfig {
    /// Weight of the summed k1 KL subtracted from each reward (TRL default 0.05); 0 skips it.
    pub beta: f64,
    /// Clamp of the combined reward, applied before the KL term (`reward_clip_range`).
    pub reward_clip_range: Option<(f64, f64)>,
    /// Normalise the advantages over the batch (`normalize_advantages`, default off).
    pub normalize: bool,
    /// Added to the standard deviation when normalising.
    pub epsilon: f64,
}

impl Default for RlooAdvantageConfig {
    fn default() -> Self {
        Self {
            beta: 0.05,
            reward_clip_range: None,
            normalize: false,
            epsilon: TRL_STD_EPSILON,
        }
    }
}

/// REINFORCE++-baseline settings; the default is OpenRLHF's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReinforceConfig {
    /// Weight of the per-token KL penalty in the reward (`kl.init_coef`, default 0.01);
    /// values ≤ 0 disable it, as in OpenRLHF.
    pub beta: f64,
    /// Clamp of the baseline-subtracted score (`reward.clip_range`, default ±10).
    pub reward_clip_range: Option<(f64, f64)>,
    /// Divide by the batch standard deviation after centring (false = OpenRLHF's
    /// `no_std_norm`).
    pub whiten_std: bool,
}

impl Default for ReinforceConfig {
    fn default() -> Self {
        Self {
            beta: 0.01,
            reward_clip_range: Some((-10.0, 10.0)),
            whiten_std: true,
        }
    }
}

/// The KL estimators of OpenRLHF's `compute_approx_kl`, for `d = log p − log q`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KlEstimator {
    /// `d` (OpenRLHF's default for the KL in the reward).
    #[default]
    K1,
    /// `d² / 2`.
    K2,
    /// `e^{−d} + d − 1`.
    K3,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

/// Checks the reward table's shape; returns the number of samples.
fn check_table(rewards: &[Vec<Option<f64>>], weights: &[f64], group_size: usize) -> Result<usize> {
    if weights.is_empty() {
        return Err(invalid("at least one reward weight is needed"));
    }
    if group_size == 0 {
        return Err(invalid("group_size must be at least 1"));
    }
    if !rewards.len().is_multiple_of(group_size) {
        return Err(invalid(format!(
            "{} samples do not form groups of {group_size}",
            rewards.len()
        )));
    }
    if let Some((i, row)) = rewards
        .iter()
        .enumerate()
        .find(|(_, r)| r.len() != weights.len())
    {
        return Err(invalid(format!(
            "sample {i} has {} reward values, but there are {} weights",
            row.len(),
            weights.len()
        )));
    }
    Ok(rewards.len())
}

fn check_len(what: &str, got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(invalid(format!("{what} has {got} values, expected {want}")))
    }
}

/// Mean of the present values (`None` when there are none).
fn mean(values: impl Iterator<Item = Option<f64>> + Clone) -> Option<f64> {
    let (sum, n) = values
        .flatten()
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// Bessel-corrected standard deviation of the present values; undefined (`None`) below two
/// values, like TRL's `nanstd`.
fn sample_std(values: impl Iterator<Item = Option<f64>> + Clone) -> Option<f64> {
    let m = mean(values.clone())?;
    let (ss, n) = values
        .flatten()
        .fold((0.0, 0usize), |(s, n), v| (s + (v - m) * (v - m), n + 1));
    (n > 1).then(|| (ss / (n - 1) as f64).sqrt())
}

/// The weighted sum of each sample's present rewards; `None` for a sample with none.
///
/// This is the "combined reward" GRPO ([`MultiObjectiveAggregation::SumThenNormalize`]),
/// RLOO and the logs use.
pub fn combined_rewards(rewards: &[Vec<Option<f64>>], weights: &[f64]) -> Result<Vec<Option<f64>>> {
    check_table(rewards, weights, 1)?;
    Ok(rewards
        .iter()
        .map(|row| {
            row.iter().any(Option::is_some).then(|| {
                row.iter()
                    .zip(weights)
                    .filter_map(|(r, w)| r.map(|r| r * w))
                    .sum()
            })
        })
        .collect())
}

/// GRPO's group-relative advantages, one per sample (TRL's `GRPOTrainer`).
///
/// `SumThenNormalize`: `R = Σₖ wₖ rₖ`, `A = (R − mean_group R) / (σ + ε)` with σ per
/// group, over the batch, or no division ([`ScaleRewards`]). `NormalizeThenSum`:
/// `zₖ = (rₖ − mean_group rₖ) / (σ_group rₖ + ε)`, `R = Σₖ wₖ zₖ`,
/// `A = (R − mean_batch R) / (σ_batch R + ε)`. Undefined values become 0 (module docs).
pub fn grpo_advantages(
    rewards: &[Vec<Option<f64>>],
    weights: &[f64],
    group_size: usize,
    config: &GrpoAdvantageConfig,
) -> Result<Vec<f64>> {
    let n = check_table(rewards, weights, group_size)?;
    let eps = config.epsilon;
    let groups = |v: &[Option<f64>]| -> Vec<Vec<Option<f64>>> {
        v.chunks(group_size).map(<[_]>::to_vec).collect()
    };
    let advantages: Vec<Option<f64>> = match config.aggregation {
        MultiObjectiveAggregation::SumThenNormalize => {
            let combined = combined_rewards(rewards, weights)?;
            let batch_std = if n > 1 {
                sample_std(combined.iter().copied())
            } else {
                Some(0.0)
            };
            groups(&combined)
                .iter()
                .flat_map(|g| {
                    let mu = mean(g.iter().copied());
                    let std = match config.scale_rewards {
                        ScaleRewards::Group if group_size > 1 => sample_std(g.iter().copied()),
                        ScaleRewards::Group => Some(0.0),
                        ScaleRewards::Batch => batch_std,
                        ScaleRewards::None => Some(0.0),
                    };
                    g.iter()
                        .map(move |r| {
                            let centred = r.zip(mu).map(|(r, m)| r - m)?;
                            match config.scale_rewards {
                                ScaleRewards::None => Some(centred),
                                _ => std.map(|s| centred / (s + eps)),
                            }
                        })
                        .collect::<Vec<_>>()
                })
                .collect()
        }
        MultiObjectiveAggregation::NormalizeThenSum => {
            // zₖ per reward and group; None where the reward is absent or its group's σ is
            // undefined.
            let k_count = weights.len();
            let mut z = vec![vec![None; k_count]; n];
            for k in 0..k_count {
                let column: Vec<Option<f64>> = rewards.iter().map(|row| row[k]).collect();
                for (g, chunk) in column.chunks(group_size).enumerate() {
                    let mu = mean(chunk.iter().copied());
                    let std = if group_size > 1 {
                        sample_std(chunk.iter().copied())
                    } else {
                        Some(0.0)
                    };
                    for (j, r) in chunk.iter().enumerate() {
                        z[g * group_size + j][k] =
                            r.zip(mu).zip(std).map(|((r, m), s)| (r - m) / (s + eps));
                    }
                }
            }
            // The weighted sum of the defined zₖ: 0 when none is defined, unless the sample
            // has no reward at all (TRL: nansum, then NaN for unscorable rows).
            let summed: Vec<Option<f64>> = rewards
                .iter()
                .zip(&z)
                .map(|(row, zs)| {
                    row.iter().any(Option::is_some).then(|| {
                        zs.iter()
                            .zip(weights)
                            .filter_map(|(z, w)| z.map(|z| z * w))
                            .sum()
                    })
                })
                .collect();
            let mu = mean(summed.iter().copied());
            let std = if n > 1 {
                sample_std(summed.iter().copied())
            } else {
                Some(0.0)
            };
            summed
                .iter()
                .map(|r| r.zip(mu).zip(std).map(|((r, m), s)| (r - m) / (s + eps)))
                .collect()
        }
    };
    Ok(advantages
        .into_iter()
        .map(|a| a.filter(|a| a.is_finite()).unwrap_or(0.0))
        .collect())
}

/// `Σₜ mask·(old − reference)` per row: the summed k1 KL that RLOO folds into the reward.
///
/// `old`, `reference` and `mask` are row-major `(rows, width)`.
pub fn sequence_k1(old: &[f64], reference: &[f64], mask: &[f64], width: usize) -> Result<Vec<f64>> {
    check_len("reference log-probs", reference.len(), old.len())?;
    check_len("mask", mask.len(), old.len())?;
    if width == 0 || !old.len().is_multiple_of(width) {
        return Err(invalid(format!(
            "{} log-probs do not form rows of width {width}",
            old.len()
        )));
    }
    Ok(old
        .chunks(width)
        .zip(reference.chunks(width))
        .zip(mask.chunks(width))
        .map(|((o, r), m)| o.iter().zip(r).zip(m).map(|((o, r), m)| (o - r) * m).sum())
        .collect())
}

/// RLOO advantages, one per sample (TRL's `RLOOTrainer`).
///
/// `R = clip(Σₖ wₖ rₖ) − β·kl` with `kl` from [`sequence_k1`] (needed when β ≠ 0), then
/// `A = R − mean(R of the other scorable samples of the group)`, optionally normalised over
/// the batch. Undefined values become 0 (module docs).
pub fn rloo_advantages(
    rewards: &[Vec<Option<f64>>],
    weights: &[f64],
    group_size: usize,
    kl: Option<&[f64]>,
    config: &RlooAdvantageConfig,
) -> Result<Vec<f64>> {
    let n = check_table(rewards, weights, group_size)?;
    let mut r = combined_rewards(rewards, weights)?;
    if let Some((lo, hi)) = config.reward_clip_range {
        r.iter_mut().for_each(|v| *v = v.map(|v| v.clamp(lo, hi)));
    }
    if config.beta != 0.0 {
        let kl = kl.ok_or_else(|| invalid("RLOO with beta != 0 needs the summed KL"))?;
        check_len("kl", kl.len(), n)?;
        r.iter_mut()
            .zip(kl)
            .for_each(|(v, k)| *v = v.map(|v| v - config.beta * k));
    }
    let mut adv: Vec<Option<f64>> = if group_size > 1 {
        r.chunks(group_size)
            .flat_map(|g| {
                let count = g.iter().flatten().count();
                let sum: f64 = g.iter().flatten().sum();
                g.iter()
                    .map(move |v| {
                        let v = (*v)?;
                        (count > 1).then(|| v - (sum - v) / (count - 1) as f64)
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    } else {
        r.iter().map(|_| Some(0.0)).collect()
    };
    if config.normalize {
        let mu = mean(adv.iter().copied());
        let std = sample_std(adv.iter().copied());
        adv = adv
            .iter()
            .map(|a| {
                a.zip(mu)
                    .zip(std)
                    .map(|((a, m), s)| (a - m) / (s + config.epsilon))
            })
            .collect();
    }
    Ok(adv
        .into_iter()
        .map(|a| a.filter(|a| a.is_finite()).unwrap_or(0.0))
        .collect())
}

/// OpenRLHF's `compute_approx_kl`: the estimator of `logp − reference` per token, clamped
/// to ±10 (k1 included).
pub fn approx_kl(logp: &[f64], reference: &[f64], estimator: KlEstimator) -> Result<Vec<f64>> {
    check_len("reference log-probs", reference.len(), logp.len())?;
    Ok(logp
        .iter()
        .zip(reference)
        .map(|(p, q)| {
            let d = p - q;
            let k = match estimator {
                KlEstimator::K1 => d,
                KlEstimator::K2 => d * d / 2.0,
                KlEstimator::K3 => (-d).exp() - 1.0 + d,
            };
            k.clamp(-10.0, 10.0)
        })
        .collect())
}

/// REINFORCE++ with a group baseline (OpenRLHF's `reinforce_baseline`): one advantage per
/// completion token, row-major `(samples, width)` like `mask` and `token_kl`.
///
/// `scores` is each sample's combined reward ([`combined_rewards`]). Per sample,
/// `s = clip(score − mean of the group's scores)` is placed on the last token whose mask is
/// 1, every token gets `−β·token_kl` (from [`approx_kl`] of the sampling and reference
/// log-probs; `None` or β ≤ 0 means no KL), `Aₜ = Σ_{t' ≥ t} mask·rₜ'` (γ = 1), and the
/// advantages are whitened over every completion token of the batch:
/// `(A − μ) / sqrt(max(var, 1e-8))` with the biased variance. Positions with mask 0 get 0,
/// and so does every token of an unscorable sample (module docs).
pub fn reinforce_baseline_advantages(
    scores: &[Option<f64>],
    group_size: usize,
    token_kl: Option<&[f64]>,
    mask: &[f64],
    width: usize,
    config: &ReinforceConfig,
) -> Result<Vec<f64>> {
    let n = scores.len();
    if group_size == 0 || !n.is_multiple_of(group_size) {
        return Err(invalid(format!(
            "{n} samples do not form groups of {group_size}"
        )));
    }
    check_len("mask", mask.len(), n * width)?;
    if let Some(kl) = token_kl {
        check_len("token KL", kl.len(), n * width)?;
    }
    let beta = config.beta.max(0.0);
    let mut adv = vec![0.0; n * width];
    for (g, group) in scores.chunks(group_size).enumerate() {
        let mu = mean(group.iter().copied());
        for (j, score) in group.iter().enumerate() {
            let i = g * group_size + j;
            let (Some(score), Some(mu)) = (*score, mu) else {
                continue;
            };
            let mut s = score - mu;
            if let Some((lo, hi)) = config.reward_clip_range {
                s = s.clamp(lo, hi);
            }
            let m = &mask[i * width..(i + 1) * width];
            let last = m.iter().rposition(|&v| v != 0.0);
            let mut ret = 0.0;
            for t in (0..width).rev() {
                let kl = token_kl.map_or(0.0, |kl| kl[i * width + t]);
                let r = -beta * kl + if Some(t) == last { s } else { 0.0 };
                ret += m[t] * r;
                adv[i * width + t] = ret;
            }
        }
    }
    // Whitening over the completion tokens of the scorable samples.
    let counted = |i: usize| scores[i / width].is_some() && mask[i] != 0.0;
    let (sum, count) = (0..n * width)
        .filter(|&i| counted(i))
        .fold((0.0, 0.0), |(s, c), i| (s + mask[i] * adv[i], c + mask[i]));
    if count == 0.0 {
        return Ok(vec![0.0; n * width]);
    }
    let mu = sum / count;
    let rstd = if config.whiten_std {
        let var = (0..n * width)
            .filter(|&i| counted(i))
            .map(|i| mask[i] * (adv[i] - mu).powi(2))
            .sum::<f64>()
            / count;
        1.0 / var.max(1e-8).sqrt()
    } else {
        1.0
    };
    Ok((0..n * width)
        .map(|i| {
            if counted(i) {
                (adv[i] - mu) * rstd
            } else {
                0.0
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol, "index {i}: {x} vs {y}");
        }
    }

    fn single(values: &[f64]) -> Vec<Vec<Option<f64>>> {
        values.iter().map(|&v| vec![Some(v)]).collect()
    }

    #[test]
    fn an_all_equal_group_gets_zero_advantages_in_every_mode() {
        let r = single(&[0.3, 0.3, 0.3, 0.3, 1.0, 0.0, 0.5, 0.5]);
        for aggregation in [
            MultiObjectiveAggregation::SumThenNormalize,
            MultiObjectiveAggregation::NormalizeThenSum,
        ] {
            for scale_rewards in [ScaleRewards::Group, ScaleRewards::Batch, ScaleRewards::None] {
                let cfg = GrpoAdvantageConfig {
                    aggregation,
                    scale_rewards,
                    ..Default::default()
                };
                let a = grpo_advantages(&r, &[1.0], 4, &cfg).expect("advantages");
                if aggregation == MultiObjectiveAggregation::SumThenNormalize {
                    close(&a[..4], &[0.0; 4], 1e-12);
                }
                assert!(
                    a[4] > 0.0 && a[5] < 0.0,
                    "{aggregation:?}/{scale_rewards:?}: {a:?}"
                );
            }
        }
    }

    #[test]
    fn group_scaling_divides_the_centred_rewards_by_the_sample_std_plus_epsilon() {
        let values = [1.0, 0.0, 1.0, 0.5];
        let mu = values.iter().sum::<f64>() / 4.0;
        let sd = (values.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / 3.0).sqrt();
        let want: Vec<f64> = values.iter().map(|v| (v - mu) / (sd + 1e-4)).collect();
        let a = grpo_advantages(&single(&values), &[1.0], 4, &Default::default()).expect("a");
        close(&a, &want, 1e-12);
        let none = GrpoAdvantageConfig {
            scale_rewards: ScaleRewards::None,
            ..Default::default()
        };
        let a = grpo_advantages(&single(&values), &[1.0], 4, &none).expect("a");
        close(&a, &values.map(|v| v - mu), 1e-12);
    }

    #[test]
    fn an_unscorable_sample_gets_zero_and_is_left_out_of_its_group() {
        let r = vec![
            vec![Some(1.0), None],
            vec![None, None],
            vec![Some(0.0), Some(2.0)],
            vec![Some(3.0), Some(1.0)],
        ];
        let cfg = GrpoAdvantageConfig {
            scale_rewards: ScaleRewards::None,
            ..Default::default()
        };
        let a = grpo_advantages(&r, &[1.0, 0.5], 4, &cfg).expect("a");
        // Combined: 1, -, 1, 3.5 (a None counts as 0 in the sum); mean over the three: 11/6.
        let mu = (1.0 + 1.0 + 3.5) / 3.0;
        close(&a, &[1.0 - mu, 0.0, 1.0 - mu, 3.5 - mu], 1e-12);
        assert_eq!(combined_rewards(&r, &[1.0, 0.5]).expect("c")[1], None);
    }

    #[test]
    fn a_group_with_one_scorable_sample_gets_zero_under_group_scaling() {
        let r = vec![
            vec![Some(2.0)],
            vec![None],
            vec![Some(0.0)],
            vec![Some(1.0)],
        ];
        let a = grpo_advantages(&r, &[1.0], 2, &Default::default()).expect("a");
        assert_eq!(a[..2], [0.0, 0.0]);
        assert!(a[2] < 0.0 && a[3] > 0.0);
    }

    #[test]
    fn gdpo_with_one_reward_is_the_batch_normalised_group_z_score() {
        let values = [1.0, 0.0, 2.0, 4.0, 4.0, 0.0];
        let z: Vec<f64> = values
            .chunks(3)
            .flat_map(|g| {
                let mu = g.iter().sum::<f64>() / 3.0;
                let sd = (g.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / 2.0).sqrt();
                g.iter()
                    .map(move |v| (v - mu) / (sd + 1e-4))
                    .collect::<Vec<_>>()
            })
            .collect();
        let mz = z.iter().sum::<f64>() / 6.0;
        let sz = (z.iter().map(|v| (v - mz).powi(2)).sum::<f64>() / 5.0).sqrt();
        let want: Vec<f64> = z.iter().map(|v| (v - mz) / (sz + 1e-4)).collect();
        let cfg = GrpoAdvantageConfig {
            aggregation: MultiObjectiveAggregation::NormalizeThenSum,
            ..Default::default()
        };
        let a = grpo_advantages(&single(&values), &[1.0], 3, &cfg).expect("a");
        close(&a, &want, 1e-12);
    }

    #[test]
    fn rloo_equals_g_over_g_minus_one_times_the_centred_reward() {
        let values = [0.9, 0.05, 0.475, 0.6, 1.0, 3.0];
        let a = rloo_advantages(
            &single(&values),
            &[1.0],
            3,
            None,
            &RlooAdvantageConfig {
                beta: 0.0,
                ..Default::default()
            },
        )
        .expect("a");
        let want: Vec<f64> = values
            .chunks(3)
            .flat_map(|g| {
                let mu = g.iter().sum::<f64>() / 3.0;
                g.iter().map(move |v| 1.5 * (v - mu)).collect::<Vec<_>>()
            })
            .collect();
        close(&a, &want, 1e-12);
    }

    #[test]
    fn rloo_subtracts_beta_times_the_summed_k1_and_zeroes_lone_samples() {
        let kl = sequence_k1(
            &[-1.0, -2.0, -0.5, 0.0],
            &[-1.5, -1.0, -0.5, -3.0],
            &[1.0, 1.0, 1.0, 0.0],
            2,
        )
        .expect("kl");
        close(&kl, &[-0.5, 0.0], 1e-12);
        let r = single(&[1.0, 1.0]);
        let cfg = RlooAdvantageConfig::default();
        let a = rloo_advantages(&r, &[1.0], 2, Some(&kl), &cfg).expect("a");
        // R = [1.025, 1.0]: A = R - the other.
        close(&a, &[0.025, -0.025], 1e-12);
        let lone = vec![vec![Some(1.0)], vec![None]];
        assert_eq!(
            rloo_advantages(&lone, &[1.0], 2, Some(&kl), &cfg).expect("a"),
            [0.0, 0.0]
        );
        assert!(rloo_advantages(&r, &[1.0], 2, None, &cfg).is_err());
    }

    #[test]
    fn reinforce_advantages_are_whitened_over_the_completion_tokens() {
        let mask = [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let kl: Vec<f64> = (0..12).map(|i| 0.01 * i as f64 - 0.05).collect();
        let scores = [Some(1.0), Some(0.0), Some(0.2), Some(0.6)];
        let cfg = ReinforceConfig {
            beta: 0.05,
            ..Default::default()
        };
        let a = reinforce_baseline_advantages(&scores, 2, Some(&kl), &mask, 3, &cfg).expect("a");
        let live: Vec<f64> = a
            .iter()
            .zip(&mask)
            .filter(|(_, m)| **m != 0.0)
            .map(|(a, _)| *a)
            .collect();
        let n = live.len() as f64;
        let mu = live.iter().sum::<f64>() / n;
        let var = live.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / n;
        assert!(mu.abs() < 1e-12 && (var - 1.0).abs() < 1e-9, "{mu} {var}");
        assert!(a.iter().zip(&mask).all(|(a, m)| *m != 0.0 || *a == 0.0));
        // Without the KL each token of a sample carries the same return: the shaped score.
        let flat = reinforce_baseline_advantages(
            &scores,
            2,
            None,
            &mask,
            3,
            &ReinforceConfig {
                whiten_std: false,
                ..cfg
            },
        )
        .expect("a");
        // Shaped scores 0.5, -0.5, -0.2, 0.2 over 3, 2, 1 and 3 tokens; mean 0.5/9.
        let mu = (1.5 - 1.0 - 0.2 + 0.6) / 9.0;
        close(&flat[..3], &[0.5 - mu; 3], 1e-12);
        close(&flat[9..], &[0.2 - mu; 3], 1e-12);
    }

    #[test]
    fn an_unscorable_reinforce_sample_gets_zero_and_no_say_in_the_statistics() {
        let mask = [1.0; 6];
        let with = reinforce_baseline_advantages(
            &[Some(1.0), None, Some(0.0)],
            3,
            None,
            &mask,
            2,
            &Default::default(),
        )
        .expect("a");
        let without = reinforce_baseline_advantages(
            &[Some(1.0), Some(0.0)],
            2,
            None,
            &mask[..4],
            2,
            &Default::default(),
        )
        .expect("a");
        close(&with[2..4], &[0.0, 0.0], 0.0);
        close(&with[..2], &without[..2], 1e-12);
        close(&with[4..], &without[2..], 1e-12);
    }

    #[test]
    fn approx_kl_is_clamped_like_openrlhf() {
        let k = approx_kl(&[0.5, -0.5, 2.0, -15.0], &[0.0; 4], KlEstimator::K3).expect("k");
        close(
            &k[..3],
            &[
                (-0.5f64).exp() - 0.5,
                0.5f64.exp() - 1.5,
                (-2.0f64).exp() + 1.0,
            ],
            1e-12,
        );
        assert_eq!(k[3], 10.0);
        assert_eq!(
            approx_kl(&[20.0], &[0.0], KlEstimator::K1).expect("k"),
            [10.0]
        );
    }

    #[test]
    fn mismatched_lengths_are_invalid_arguments() {
        let r = single(&[1.0, 2.0, 3.0]);
        for err in [
            grpo_advantages(&r, &[1.0], 2, &Default::default()).expect_err("groups"),
            grpo_advantages(&r, &[1.0, 1.0], 3, &Default::default()).expect_err("weights"),
            grpo_advantages(&r, &[1.0], 0, &Default::default()).expect_err("zero"),
            sequence_k1(&[1.0; 4], &[1.0; 3], &[1.0; 4], 2).expect_err("ref"),
            reinforce_baseline_advantages(&[Some(1.0)], 1, None, &[1.0; 3], 2, &Default::default())
                .expect_err("mask"),
        ] {
            assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        }
    }
}
