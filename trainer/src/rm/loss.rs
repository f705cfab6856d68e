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
//! RLLR's loss ([`divergence_loss`]) reads the head at every token instead: per pair, the
//! mean of −log σ((v^c_t − v^r_t)/T) over the tokens t from the first position where the two
//! rows differ to the end of the longer one ([`divergence_window`]), so every token after
//! the shared prefix is trained to rank the pair. Source: `PairwiseTrainer.compute_loss` in
//! MagiaSN/ACL2024_RLLR (`src/llmtuner/tuner/rm/trainer.py`), pinned through a direct
//! transcription by `trainer/reference/rllr_reference.py` and `trainer/tests/rm_reference.rs`.
//!
//! In f64, with −log σ written as a softplus (see [`crate::dpo::loss`]) so a pair scored far
//! apart keeps a finite loss and gradient.

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};
use crate::loss::neg_log_sigmoid;

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
    let nls = neg_log_sigmoid;
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

/// RLLR's token window `[div, end)` of a pair of rows (prompt + response ids, unpadded).
///
/// `div` is the first position where the rows differ and `end` the longer row's length, so
/// the window runs over the shorter row's padding too, as RLLR's does. A position past one
/// row's end differs from every token: RLLR compares the rows padded with the pad id, which
/// is the same unless the pad id is itself the longer row's next token (as EOS-as-pad can
/// be), where RLLR would move `div` later. Identical rows give `(len − 1, len)`: the last
/// token only, whose loss is ln 2 at any score.
pub fn divergence_window(chosen: &[u32], rejected: &[u32]) -> (usize, usize) {
    let end = chosen.len().max(rejected.len());
    match (0..end).find(|&t| chosen.get(t) != rejected.get(t)) {
        Some(div) => (div, end),
        None => (chosen.len().saturating_sub(1), chosen.len()),
    }
}

/// RLLR's divergence-averaged loss over per-token values `chosen`, `rejected` `(B, T)`
/// (differentiable; rows right-padded to T) with each pair's [`divergence_window`] and
/// real lengths `(len_c, len_r)`, at temperature T (RLLR's `bpr_temperature`, 1 there).
/// The pair's scores (for accuracy and margin) are the values at each row's last real
/// token, which is what the trained model is read at.
pub fn divergence_loss(
    chosen: &Tensor,
    rejected: &Tensor,
    windows: &[(usize, usize)],
    lens: &[(usize, usize)],
    temperature: f64,
) -> Result<RewardLoss> {
    let (b, t) = chosen.dims2()?;
    let bad_window = windows.iter().zip(lens).any(|(&(div, end), &(lc, lr))| {
        div >= end || end > t || lc == 0 || lr == 0 || lc.max(lr) > t
    });
    if rejected.dims2()? != (b, t) || windows.len() != b || lens.len() != b || bad_window {
        return Err(Error::InvalidArgument(format!(
            "divergence_loss: values {:?} and {:?}, {} windows, {} lengths (each window \
             non-empty and inside the rows)",
            chosen.dims(),
            rejected.dims(),
            windows.len(),
            lens.len()
        )));
    }
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(Error::InvalidArgument(format!(
            "divergence_loss: temperature must be > 0, got {temperature}"
        )));
    }
    let c = chosen.to_dtype(DType::F64)?;
    let r = rejected.to_dtype(DType::F64)?;
    let per_token = neg_log_sigmoid(&((&c - &r)? / temperature)?)?;
    // Each pair's mean over its window, as one weighted sum.
    let mut weights = vec![0f64; b * t];
    for (i, &(div, end)) in windows.iter().enumerate() {
        let w = 1.0 / (end - div) as f64;
        weights[i * t + div..i * t + end].fill(w);
    }
    let weights = Tensor::from_vec(weights, (b, t), c.device())?;
    let per_pair = (per_token * weights)?.sum(1)?;
    let at = |v: &Tensor, last: Vec<usize>| -> Result<Vec<f64>> {
        let flat: Vec<f64> = v.detach().flatten_all()?.to_vec1()?;
        Ok(last
            .iter()
            .enumerate()
            .map(|(i, &l)| flat[i * t + l - 1])
            .collect())
    };
    Ok(RewardLoss {
        per_pair,
        chosen: at(&c, lens.iter().map(|l| l.0).collect())?,
        rejected: at(&r, lens.iter().map(|l| l.1).collect())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_window_starts_where_the_rows_part_and_ends_with_the_longer() {
        assert_eq!(divergence_window(&[5, 6, 7, 8], &[5, 6, 9]), (2, 4));
        // One row a prefix of the other: the window starts past the shorter row's end.
        assert_eq!(divergence_window(&[5, 6], &[5, 6, 7]), (2, 3));
        assert_eq!(divergence_window(&[5, 6, 7], &[5, 6, 7]), (2, 3));
    }

    #[test]
    fn an_identical_pair_costs_ln_2_whatever_its_scores() {
        let v = Tensor::new(&[[0.3f64, -2.0, 7.0]], &Device::Cpu).expect("t");
        let out = divergence_loss(&v, &v, &[(2, 3)], &[(3, 3)], 1.0).expect("loss");
        let l: f64 = out.mean().expect("mean").to_scalar().expect("s");
        assert!((l - std::f64::consts::LN_2).abs() < 1e-12, "{l}");
        let err = divergence_loss(&v, &v, &[(3, 3)], &[(3, 3)], 1.0).expect_err("empty window");
        assert!(err.to_string().contains("window"), "{err}");
    }
}
