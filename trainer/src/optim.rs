//! AdamW with checkpointable state, gradient accumulation and clipping, LR schedules.
//!
//! The update is candle-nn's `AdamW` (and PyTorch's `torch.optim.AdamW`) exactly:
//! `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `θ ← θ(1 − lr·λ) − lr·m̂/(√v̂ + ε)` with
//! bias-corrected `m̂`, `v̂`. It is re-implemented here only because candle-nn's optimizer
//! keeps its moments and step count private, and resuming a run after a kill needs them.
//! A test checks the two produce identical parameters.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// AdamW hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWParams {
    /// Learning rate (overwritten each step by the schedule).
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon.
    pub eps: f64,
    /// Decoupled weight decay λ.
    pub weight_decay: f64,
}

impl Default for AdamWParams {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// AdamW over named variables (names make the state checkpointable).
#[derive(Debug)]
pub struct AdamW {
    names: Vec<String>,
    vars: Vec<Var>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: usize,
    /// Current hyper-parameters.
    pub params: AdamWParams,
}

impl AdamW {
    /// An optimizer over `vars`, sorted by name so the order is reproducible.
    pub fn new(mut vars: Vec<(String, Var)>, params: AdamWParams) -> Result<Self> {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let m = vars
            .iter()
            .map(|(_, v)| v.zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let v = m.clone();
        let (names, vars) = vars.into_iter().unzip();
        Ok(Self {
            names,
            vars,
            m,
            v,
            step: 0,
            params,
        })
    }

    /// The trainable variables with their names, in optimizer order.
    pub fn vars(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.names.iter().map(String::as_str).zip(&self.vars)
    }

    /// Number of updates applied so far.
    pub fn step_count(&self) -> usize {
        self.step
    }

    /// Applies one update; `grads[i]` belongs to the i-th variable (`None`: left unchanged).
    pub fn step(&mut self, grads: &[Option<Tensor>]) -> Result<()> {
        if grads.len() != self.vars.len() {
            return Err(Error::InvalidArgument(format!(
                "{} gradients for {} variables",
                grads.len(),
                self.vars.len()
            )));
        }
        self.step += 1;
        let p = self.params;
        let scale_m = 1.0 / (1.0 - p.beta1.powi(self.step as i32));
        let scale_v = 1.0 / (1.0 - p.beta2.powi(self.step as i32));
        for (i, g) in grads.iter().enumerate() {
            let Some(g) = g else { continue };
            let theta = &self.vars[i];
            let m = ((&self.m[i] * p.beta1)? + (g * (1.0 - p.beta1))?)?;
            let v = ((&self.v[i] * p.beta2)? + (g.sqr()? * (1.0 - p.beta2))?)?;
            let update = ((&m * scale_m)? / ((&v * scale_v)?.sqrt()? + p.eps)?)?;
            let next = ((theta.as_tensor() * (1.0 - p.lr * p.weight_decay))? - (update * p.lr)?)?;
            theta.set(&next)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// Moments as named tensors (`m.<var>`, `v.<var>`), for a checkpoint.
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, n) in self.names.iter().enumerate() {
            out.insert(format!("m.{n}"), self.m[i].clone());
            out.insert(format!("v.{n}"), self.v[i].clone());
        }
        out
    }

    /// Restores moments saved by [`AdamW::state`] and the step count.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>, step: usize) -> Result<()> {
        for (i, n) in self.names.iter().enumerate() {
            let get = |k: String| {
                state
                    .get(&k)
                    .cloned()
                    .ok_or_else(|| Error::InvalidArgument(format!("optimizer state lacks `{k}`")))
            };
            self.m[i] = get(format!("m.{n}"))?;
            self.v[i] = get(format!("v.{n}"))?;
        }
        self.step = step;
        Ok(())
    }
}

/// Sums gradients over micro-batches, aligned with an optimizer's variables.
#[derive(Debug, Default)]
pub struct GradAccumulator {
    sums: Vec<Option<Tensor>>,
}

impl GradAccumulator {
    /// Adds the gradients of `vars` found in `grads`.
    pub fn add<'a>(
        &mut self,
        vars: impl Iterator<Item = &'a Var>,
        grads: &GradStore,
    ) -> Result<()> {
        let vars: Vec<&Var> = vars.collect();
        if self.sums.is_empty() {
            self.sums = vec![None; vars.len()];
        }
        for (i, var) in vars.iter().enumerate() {
            if let Some(g) = grads.get(var) {
                let g = g.detach();
                self.sums[i] = Some(match self.sums[i].take() {
                    None => g,
                    Some(s) => (s + g)?,
                });
            }
        }
        Ok(())
    }

    /// Global L2 norm of the summed gradients.
    pub fn norm(&self) -> Result<f64> {
        let mut sq = 0f64;
        for g in self.sums.iter().flatten() {
            sq += g
                .sqr()?
                .sum_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?;
        }
        Ok(sq.sqrt())
    }

    /// Multiplies every summed gradient by `s`.
    pub fn scale(&mut self, s: f64) -> Result<()> {
        for g in self.sums.iter_mut().flatten() {
            *g = (&*g * s)?;
        }
        Ok(())
    }

    /// Takes the gradients, leaving the accumulator empty.
    pub fn take(&mut self) -> Vec<Option<Tensor>> {
        std::mem::take(&mut self.sums)
    }
}

/// How the learning rate decays after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decay {
    /// Half a cosine from the peak to `min_lr`.
    Cosine,
    /// A straight line from the peak to `min_lr`.
    Linear,
    /// Stay at the peak.
    Constant,
}

/// Learning rate at optimizer step `step` (0-based): linear warmup to `peak` over `warmup`
/// steps, then `decay` to `min_lr` at `total`.
pub fn lr_at(
    step: usize,
    peak: f64,
    min_lr: f64,
    warmup: usize,
    total: usize,
    decay: Decay,
) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1);
    let frac = ((step - warmup) as f64 / span as f64).min(1.0);
    match decay {
        Decay::Constant => peak,
        Decay::Linear => peak + (min_lr - peak) * frac,
        Decay::Cosine => {
            min_lr + 0.5 * (peak - min_lr) * (1.0 + (std::f64::consts::PI * frac).cos())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::Optimizer;

    #[test]
    fn adamw_matches_candle_nn_adamw_exactly() -> Result<()> {
        let dev = Device::Cpu;
        let init = Tensor::new(&[[0.5f32, -1.0], [2.0, 0.25]], &dev)?;
        let ours_var = Var::from_tensor(&init)?;
        let theirs_var = Var::from_tensor(&init)?;
        let params = AdamWParams {
            lr: 0.1,
            beta1: 0.8,
            beta2: 0.95,
            eps: 1e-6,
            weight_decay: 0.1,
        };
        let mut ours = AdamW::new(vec![("w".into(), ours_var.clone())], params)?;
        let mut theirs = candle_nn::AdamW::new(
            vec![theirs_var.clone()],
            candle_nn::ParamsAdamW {
                lr: 0.1,
                beta1: 0.8,
                beta2: 0.95,
                eps: 1e-6,
                weight_decay: 0.1,
            },
        )?;
        for _ in 0..4 {
            let loss = |v: &Var| v.as_tensor().sqr()?.sum_all()?.affine(1.0, 0.0)?.exp();
            let g = loss(&ours_var)?.backward()?;
            ours.step(&[g.get(&ours_var).cloned()])?;
            theirs.backward_step(&loss(&theirs_var)?)?;
        }
        assert_eq!(
            ours_var.as_tensor().to_vec2::<f32>()?,
            theirs_var.as_tensor().to_vec2::<f32>()?
        );
        Ok(())
    }

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        assert!((lr_at(0, 1.0, 0.0, 4, 10, Decay::Cosine) - 0.25).abs() < 1e-12);
        assert!((lr_at(3, 1.0, 0.0, 4, 10, Decay::Cosine) - 1.0).abs() < 1e-12);
        assert!((lr_at(7, 1.0, 0.0, 4, 10, Decay::Cosine) - 0.5).abs() < 1e-12);
        assert!((lr_at(10, 1.0, 0.1, 4, 10, Decay::Linear) - 0.1).abs() < 1e-12);
        assert!((lr_at(7, 1.0, 0.0, 4, 10, Decay::Linear) - 0.5).abs() < 1e-12);
    }
}
