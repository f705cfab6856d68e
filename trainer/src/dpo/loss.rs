//! DPO's pair losses on sequence log-probs, and the metrics TRL logs with them.
//!
//! Inputs per pair: the policy's log-probs of the chosen and rejected responses summed over
//! their tokens, `ℓ_c`, `ℓ_r` (`(B,)` tensors, differentiable), the reference's, `ℓ_c^ref`,
//! `ℓ_r^ref` (constants) and the responses' token counts. With δ = ℓ − ℓ^ref and
//! Δ = δ_c − δ_r (TRL's default `f_divergence_type`, reverse KL):
//!
//! | [`DpoLoss`] | per pair |
//! |---|---|
//! | `sigmoid` | −log σ(βΔ) (the DPO paper; TRL ≥ 0.29 ignores `label_smoothing` here) |
//! | `robust` | [−(1−ε) log σ(βΔ) + ε log σ(−βΔ)] / (1 − 2ε) (noise-robust DPO, ε in [0, ½)) |
//! | `ipo` | (δ_c/\|y_c\| − δ_r/\|y_r\| − 1/(2β))²: IPO on per-token *averaged* log-probs, as TRL |
//! | `hinge` | max(0, 1 − βΔ) (SLiC) |
//!
//! The loss is the mean over pairs. Source: TRL 1.16.0 `DPOTrainer._compute_loss`
//! (`trl/trainer/dpo_trainer.py`), pinned by `trainer/reference/dpo_reference.py`, which
//! runs that method on fixed log-probs (`trainer/tests/dpo_reference.rs` replays them).
//! Logged, as TRL: `rewards/chosen` = mean β·δ_c, `rewards/rejected` = mean β·δ_r,
//! `rewards/margins` their mean difference, `rewards/accuracies` the share of pairs with
//! β·δ_c > β·δ_r (strictly).
//!
//! The arithmetic is in f64 (a handful of numbers per micro-batch): −log σ(x) is the
//! softplus of −x, written as max(−x, 0) + log(1 + e^−|x|) so large margins neither overflow
//! nor lose the gradient.

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::loss::neg_log_sigmoid;

/// Which pair loss (TRL's `loss_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DpoLoss {
    /// −log σ(βΔ).
    #[default]
    Sigmoid,
    /// Noise-robust DPO with `label_smoothing` ε.
    Robust,
    /// IPO on per-token averaged log-probs.
    Ipo,
    /// SLiC's hinge.
    Hinge,
}

impl DpoLoss {
    /// The name in configs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sigmoid => "sigmoid",
            Self::Robust => "robust",
            Self::Ipo => "ipo",
            Self::Hinge => "hinge",
        }
    }
}

/// One micro-batch of pairs.
#[derive(Debug, Clone)]
pub struct PairLogps<'a> {
    /// Policy, chosen: `(B,)` summed log-probs (differentiable).
    pub chosen: &'a Tensor,
    /// Policy, rejected.
    pub rejected: &'a Tensor,
    /// Reference, chosen (constants).
    pub ref_chosen: &'a [f64],
    /// Reference, rejected.
    pub ref_rejected: &'a [f64],
    /// Response token counts, chosen (IPO's averaging).
    pub len_chosen: &'a [usize],
    /// Response token counts, rejected.
    pub len_rejected: &'a [usize],
}

/// The loss and what TRL logs with it.
#[derive(Debug, Clone)]
pub struct PairLoss {
    /// Per-pair losses `(B,)` in f64; their mean is the batch loss.
    pub per_pair: Tensor,
    /// β·δ_c per pair.
    pub reward_chosen: Vec<f64>,
    /// β·δ_r per pair.
    pub reward_rejected: Vec<f64>,
}

impl PairLoss {
    /// Mean of the per-pair losses.
    pub fn mean(&self) -> Result<Tensor> {
        Ok(self.per_pair.mean_all()?)
    }

    /// The share of pairs whose chosen reward is strictly higher.
    pub fn accuracy(&self) -> f64 {
        let n = self.reward_chosen.len().max(1) as f64;
        let wins = self
            .reward_chosen
            .iter()
            .zip(&self.reward_rejected)
            .filter(|(c, r)| c > r)
            .count();
        wins as f64 / n
    }
}

/// The pair loss `kind` with `beta` and (for `robust`) `label_smoothing`.
pub fn dpo_loss(
    batch: &PairLogps<'_>,
    kind: DpoLoss,
    beta: f64,
    label_smoothing: f64,
) -> Result<PairLoss> {
    let b = batch.chosen.dims1()?;
    for (name, n) in [
        ("rejected", batch.rejected.dims1()?),
        ("ref_chosen", batch.ref_chosen.len()),
        ("ref_rejected", batch.ref_rejected.len()),
        ("len_chosen", batch.len_chosen.len()),
        ("len_rejected", batch.len_rejected.len()),
    ] {
        if n != b {
            return Err(Error::InvalidArgument(format!(
                "dpo_loss: {name} has {n} entries for {b} pairs"
            )));
        }
    }
    let dev = batch.chosen.device().clone();
    let c = batch.chosen.to_dtype(DType::F64)?;
    let r = batch.rejected.to_dtype(DType::F64)?;
    let ref_c = Tensor::from_slice(batch.ref_chosen, b, &dev)?;
    let ref_r = Tensor::from_slice(batch.ref_rejected, b, &dev)?;
    let delta_c = (&c - &ref_c)?;
    let delta_r = (&r - &ref_r)?;
    let per_pair = match kind {
        DpoLoss::Sigmoid => neg_log_sigmoid(&((&delta_c - &delta_r)? * beta)?)?,
        DpoLoss::Robust => {
            let eps = label_smoothing;
            let x = ((&delta_c - &delta_r)? * beta)?;
            let a = (neg_log_sigmoid(&x)? * (1.0 - eps))?;
            let b = (neg_log_sigmoid(&x.neg()?)? * eps)?;
            ((a - b)? / (1.0 - 2.0 * eps))?
        }
        DpoLoss::Ipo => {
            let per_token = |lens: &[usize]| -> Result<Tensor> {
                let inv: Vec<f64> = lens.iter().map(|&n| 1.0 / n.max(1) as f64).collect();
                Ok(Tensor::from_vec(inv, b, &dev)?)
            };
            let avg_c = (&delta_c * per_token(batch.len_chosen)?)?;
            let avg_r = (&delta_r * per_token(batch.len_rejected)?)?;
            ((avg_c - avg_r)? - 1.0 / (2.0 * beta))?.sqr()?
        }
        DpoLoss::Hinge => ((((&delta_c - &delta_r)? * beta)?.neg()? + 1.0)?).relu()?,
    };
    let scaled = |d: &Tensor| -> Result<Vec<f64>> { Ok((d * beta)?.to_vec1::<f64>()?) };
    Ok(PairLoss {
        per_pair,
        reward_chosen: scaled(&delta_c.detach())?,
        reward_rejected: scaled(&delta_r.detach())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// d/dx of −log σ(βx) is −β σ(−βx): a finite-difference-free check that the composed
    /// softplus carries the gradient, including at a margin where e^x would overflow f32.
    #[test]
    fn the_sigmoid_loss_has_the_analytic_gradient_at_any_margin() {
        let beta = 0.5;
        let chosen = Var::from_vec(vec![-3.0f32, 400.0, -400.0], 3, &Device::Cpu).expect("var");
        let rejected = Tensor::zeros(3, DType::F32, &Device::Cpu).expect("zeros");
        let zeros = [0.0; 3];
        let lens = [1usize; 3];
        let out = dpo_loss(
            &PairLogps {
                chosen: chosen.as_tensor(),
                rejected: &rejected,
                ref_chosen: &zeros,
                ref_rejected: &zeros,
                len_chosen: &lens,
                len_rejected: &lens,
            },
            DpoLoss::Sigmoid,
            beta,
            0.0,
        )
        .expect("loss");
        let per: Vec<f64> = out.per_pair.to_vec1().expect("vec");
        assert!(
            (per[0] - (1.0 + (1.5f64).exp()).ln()).abs() < 1e-12,
            "{per:?}"
        );
        assert!(
            per[1].abs() < 1e-12 && (per[2] - 200.0).abs() < 1e-9,
            "{per:?}"
        );
        let grads = out.per_pair.sum_all().expect("sum").backward().expect("bw");
        let g: Vec<f32> = grads.get(&chosen).expect("grad").to_vec1().expect("vec");
        let want = |x: f64| -beta / (1.0 + (beta * x).exp());
        for (got, x) in g.iter().zip([-3.0, 400.0, -400.0]) {
            assert!((f64::from(*got) - want(x)).abs() < 1e-6, "{g:?}");
        }
    }

    #[test]
    fn mismatched_lengths_are_refused() {
        let t = Tensor::zeros(2, DType::F32, &Device::Cpu).expect("t");
        let err = dpo_loss(
            &PairLogps {
                chosen: &t,
                rejected: &t,
                ref_chosen: &[0.0],
                ref_rejected: &[0.0, 0.0],
                len_chosen: &[1, 1],
                len_rejected: &[1, 1],
            },
            DpoLoss::Ipo,
            0.1,
            0.0,
        )
        .expect_err("mismatch");
        assert!(
            err.to_string()
                .contains("ref_chosen has 1 entries for 2 pairs"),
            "{err}"
        );
    }
}
