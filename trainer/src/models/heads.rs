//! Heads on top of a backbone's hidden states: a scalar value head (PPO critics) and a
//! sequence-score head (reward models, scored at each row's last non-pad token).

use candle_core::{D, Tensor};
use candle_nn::VarBuilder;

use crate::error::{Error, Result};

/// `v_head`: hidden `(b, t, d)` → one value per token `(b, t)` (TRL's value head layout).
#[derive(Debug)]
pub struct ValueHead {
    weight: Tensor,
    bias: Tensor,
}

impl ValueHead {
    /// Reads `weight (1, d)` and `bias (1)` under `vb` (conventionally `vb.pp("v_head")`).
    pub fn new(hidden: usize, vb: VarBuilder<'_>) -> Result<Self> {
        Ok(Self {
            weight: vb.get((1, hidden), "weight")?,
            bias: vb.get(1, "bias")?,
        })
    }

    /// `(b, t, d)` → `(b, t)`.
    pub fn forward(&self, hidden: &Tensor) -> Result<Tensor> {
        let v = hidden
            .broadcast_matmul(&self.weight.t()?)?
            .broadcast_add(&self.bias)?;
        Ok(v.squeeze(D::Minus1)?)
    }
}

/// `score`: HF `*ForSequenceClassification`'s bias-free `(labels, d)` projection, read at the
/// last non-pad token of each row.
#[derive(Debug)]
pub struct ScoreHead {
    weight: Tensor,
}

impl ScoreHead {
    /// Reads `weight (labels, d)` under `vb` (conventionally `vb.pp("score")`).
    pub fn new(hidden: usize, labels: usize, vb: VarBuilder<'_>) -> Result<Self> {
        Ok(Self {
            weight: vb.get((labels, hidden), "weight")?,
        })
    }

    /// `(b, t, d)` and a `(b, t)` 0/1 mask → `(b, labels)`, each row scored at its last
    /// real token (works for left and right padding).
    pub fn forward(&self, hidden: &Tensor, mask: &[Vec<u32>]) -> Result<Tensor> {
        let (b, _t, _d) = hidden.dims3()?;
        if mask.len() != b {
            return Err(Error::InvalidArgument(format!(
                "{} mask rows for a batch of {b}",
                mask.len()
            )));
        }
        let mut rows = Vec::with_capacity(b);
        for (i, m) in mask.iter().enumerate() {
            let last = m
                .iter()
                .rposition(|&x| x == 1)
                .ok_or_else(|| Error::InvalidArgument(format!("row {i} has no tokens")))?;
            rows.push(hidden.get(i)?.get(last)?);
        }
        let h = Tensor::stack(&rows, 0)?; // (b, d)
        Ok(h.matmul(&self.weight.t()?)?)
    }
}
