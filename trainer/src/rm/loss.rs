//! The reward model's pair loss: Bradley–Terry on the two responses' scores.
//!
//! Per pair, with scores r_c and r_r and the pair's margin m (0 when the file gives none):
//! L = −log σ(r_c − r_r − m) + c·(r_c + r_r)², the mean over pairs. A soft-labelled pair
//! (probability q that `chosen` wins, AlpacaEval's judge) takes the cross-entropy against
//! q instead: −q log σ(Δ) − (1 − q) log σ(−Δ), which is PyTorch's
//! `binary_cross_entropy_with_logits(Δ, q)` and the plain loss at q = 1 (TRL has no soft
//! labels; the reference script pins this form to that PyTorch function). The second term is
//! TRL's `center_rewards_coefficient` (Eisenstein et al. 2023, Eq. 2: it pulls the scores
//! towards mean zero, so rewards from different models are on comparable scales; TRL adds
//! c·mean((r_c + r_r)²) to the mean loss, the same number). Source: TRL 1.16.0
//! `RewardTrainer.compute_loss` (`trl/trainer/reward_trainer.py`), pinned by
//! `trainer/reference/rm_reference.py` through `trainer/tests/rm_reference.rs`. Logged as
//! TRL logs them: `accuracy` (share of pairs with r_c > r_r, strictly) and `margin` (mean
//! r_c − r_r).
//!
//! In f64, with −log σ written as a softplus (see [`crate::dpo::loss`]) so a pair scored far
//! apart keeps a finite loss and gradient.

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};

/// One micro-batch's scores and what TRL logs of them.
#[derive(Debug, Clone)]
pub struct RewardLoss {
    /// Per-pair losses `(B,)`, f64; their mean is the batch loss.
    pub per_pair: Tensor,
    /// r_c per pair.
    pub chosen: Vec<f64>,
    /// r_r per pair.
    pub rejected: Vec<f64>,
}

impl RewardLoss {
    /// Mean of the per-pair losses.
    pub fn mean(&self) -> Result<Tensor> {
        Ok(self.per_pair.mean_all()?)
    }

    /// Share of pairs with r_c > r_r.
    pub fn accuracy(&self) -> f64 {
        let wins = self
            .chosen
            .iter()
            .zip(&self.rejected)
            .filter(|(c, r)| c > r)
            .count();
        wins as f64 / self.chosen.len().max(1) as f64
    }

    /// Mean r_c − r_r.
    pub fn margin(&self) -> f64 {
        let sum: f64 = self
            .chosen
            .iter()
            .zip(&self.rejected)
            .map(|(c, r)| c - r)
            .sum();
        sum / self.chosen.len().max(1) as f64
    }
}

/// The Bradley–Terry loss of scores `chosen`, `rejected` `(B,)` (differentiable), with
/// optional per-pair `margins`, soft `labels` and centring coefficient.
pub fn reward_loss(
    chosen: &Tensor,
    rejected: &Tensor,
    margins: Option<&[f64]>,
    labels: Option<&[f64]>,
    center_rewards_coefficient: Option<f64>,
) -> Result<RewardLoss> {
    let b = chosen.dims1()?;
    let bad = |x: Option<&[f64]>| x.is_some_and(|m| m.len() != b);
    if rejected.dims1()? != b || bad(margins) || bad(labels) {
        return Err(Error::InvalidArgument(format!(
            "reward_loss: {b} chosen scores, {} rejected, {} margins, {} labels",
            rejected.dims1()?,
            margins.map_or(b, <[f64]>::len),
            labels.map_or(b, <[f64]>::len)
        )));
    }
    let c = chosen.to_dtype(DType::F64)?;
    let r = rejected.to_dtype(DType::F64)?;
    let mut diff = (&c - &r)?;
    if let Some(m) = margins {
        diff = (diff - Tensor::from_slice(m, b, c.device())?)?;
    }
    // −log σ(x) = max(−x, 0) + log(1 + e^−|x|).
    let nls = |x: &Tensor| -> Result<Tensor> {
        Ok((x.neg()?.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?)
    };
    let mut per_pair = match labels {
        None => nls(&diff)?,
        Some(q) => {
            let q = Tensor::from_slice(q, b, c.device())?;
            ((nls(&diff)? * &q)? + (nls(&diff.neg()?)? * (q.neg()? + 1.0)?)?)?
        }
    };
    if let Some(coef) = center_rewards_coefficient {
        per_pair = (per_pair + ((&c + &r)?.sqr()? * coef)?)?;
    }
    Ok(RewardLoss {
        per_pair,
        chosen: c.detach().to_vec1()?,
        rejected: r.detach().to_vec1()?,
    })
}
