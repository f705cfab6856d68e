//! AdamW with checkpointable state, gradient accumulation and clipping, LR schedules.
//!
//! The update is candle-nn's `AdamW` (and PyTorch's `torch.optim.AdamW`) exactly:
//! `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `θ ← θ(1 − lr·λ) − lr·m̂/(√v̂ + ε)` with
//! bias-corrected `m̂`, `v̂`. It is re-implemented here only because candle-nn's optimizer
//! keeps its moments and step count private, and resuming a run after a kill needs them.
//! A test checks the two produce identical parameters.
//!
//! # Mixed precision
//!
//! A variable that is not f32 (a bf16 model's weights, in full fine-tuning) gets an f32
//! *master copy*: the moments are f32, the update is applied to the master, and the
//! variable receives the master's rounding to its own dtype. Without it, any update smaller
//! than half a bf16 ulp of the weight (|Δθ| < 2⁻⁹|θ|, typical at fine-tuning learning rates)
//! would round away and the weight would never move. The master is part of [`AdamW::state`],
//! so a resumed run continues from the exact f32 values. [`GradAccumulator`] sums gradients
//! in f32 for the same reason (bf16 sums over micro-batches lose the small ones). f32
//! variables take the plain path: no copy, and the same arithmetic as before.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
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
    /// f32 master copies of the variables that are not f32 (`None` for f32 ones): the
    /// weights the updates accumulate in, of which the variables hold the rounding.
    master: Vec<Option<Tensor>>,
    /// First moments, f32.
    m: Vec<Tensor>,
    /// Second moments, f32.
    v: Vec<Tensor>,
    step: usize,
    /// Current hyper-parameters.
    pub params: AdamWParams,
}

impl AdamW {
    /// An optimizer over `vars`, sorted by name so the order is reproducible. Variables that
    /// are not f32 get an f32 master copy (see the module docs).
    pub fn new(mut vars: Vec<(String, Var)>, params: AdamWParams) -> Result<Self> {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let m = vars
            .iter()
            .map(|(_, v)| Tensor::zeros(v.shape(), DType::F32, v.device()))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let master = vars
            .iter()
            .map(|(_, v)| {
                (v.dtype() != DType::F32)
                    .then(|| v.as_tensor().detach().to_dtype(DType::F32))
                    .transpose()
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let v = m.clone();
        let (names, vars) = vars.into_iter().unzip();
        Ok(Self {
            names,
            vars,
            master,
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

    /// Bytes of the optimizer's own tensors: moments and master copies.
    pub fn state_bytes(&self) -> u64 {
        let bytes = |t: &Tensor| (t.elem_count() * t.dtype().size_in_bytes()) as u64;
        self.m.iter().chain(&self.v).map(bytes).sum::<u64>()
            + self.master.iter().flatten().map(bytes).sum::<u64>()
    }

    /// Applies one update; `grads[i]` belongs to the i-th variable (`None`: left unchanged).
    /// Gradients of any float dtype are taken in f32.
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
            let g = g.to_dtype(DType::F32)?;
            let var = &self.vars[i];
            let theta = match &self.master[i] {
                Some(master) => master.clone(),
                None => var.as_tensor().clone(),
            };
            let k = Coeffs {
                b1: p.beta1 as f32,
                c1: (1.0 - p.beta1) as f32,
                b2: p.beta2 as f32,
                c2: (1.0 - p.beta2) as f32,
                sm: scale_m as f32,
                sv: scale_v as f32,
                eps: p.eps as f32,
                decay: (1.0 - p.lr * p.weight_decay) as f32,
                lr: p.lr as f32,
            };
            let (m, v, next) = match fused_update(&theta, &self.m[i], &self.v[i], &g, &k)? {
                Some(out) => out,
                None => {
                    let m = ((&self.m[i] * p.beta1)? + (&g * (1.0 - p.beta1))?)?;
                    let v = ((&self.v[i] * p.beta2)? + (g.sqr()? * (1.0 - p.beta2))?)?;
                    let update = ((&m * scale_m)? / ((&v * scale_v)?.sqrt()? + p.eps)?)?;
                    let next = ((theta * (1.0 - p.lr * p.weight_decay))? - (update * p.lr)?)?;
                    (m, v, next)
                }
            };
            match &mut self.master[i] {
                Some(master) => {
                    // Round to nearest (even) into the variable; the master keeps the rest.
                    var.set(&next.to_dtype(var.dtype())?)?;
                    *master = next.detach();
                }
                None => var.set(&next)?,
            }
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }

    /// Moments as named tensors (`m.<var>`, `v.<var>`) and master copies
    /// (`master.<var>`, for the variables that have one), for a checkpoint.
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, n) in self.names.iter().enumerate() {
            out.insert(format!("m.{n}"), self.m[i].clone());
            out.insert(format!("v.{n}"), self.v[i].clone());
            if let Some(master) = &self.master[i] {
                out.insert(format!("master.{n}"), master.clone());
            }
        }
        out
    }

    /// Restores what [`AdamW::state`] saved, and the step count. A variable with a master
    /// copy needs its `master.<var>` (the variable alone lacks the bits the master keeps).
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>, step: usize) -> Result<()> {
        for (i, n) in self.names.iter().enumerate() {
            let shape = self.vars[i].shape().clone();
            let get = |k: String| {
                let t = state.get(&k).ok_or_else(|| {
                    Error::InvalidArgument(format!("optimizer state lacks `{k}`"))
                })?;
                if t.shape() != &shape || t.dtype() != DType::F32 {
                    return Err(Error::InvalidArgument(format!(
                        "optimizer state `{k}` is {:?} {:?}; expected f32 {shape:?}",
                        t.dtype(),
                        t.shape(),
                    )));
                }
                Ok(t.clone())
            };
            self.m[i] = get(format!("m.{n}"))?;
            self.v[i] = get(format!("v.{n}"))?;
            if self.master[i].is_some() {
                self.master[i] = Some(get(format!("master.{n}"))?);
            }
        }
        self.step = step;
        Ok(())
    }
}

/// The update's constants in f32, as candle's scalar ops apply them.
struct Coeffs {
    b1: f32,
    c1: f32,
    b2: f32,
    c2: f32,
    sm: f32,
    sv: f32,
    eps: f32,
    decay: f32,
    lr: f32,
}

/// One pass over a CPU f32 parameter for the whole update: `(m, v, θ')`. `None` when
/// the tensors are not CPU f32 (the composed form then runs). The arithmetic is the
/// composed form's, operation for operation: candle's `tensor * c` is `x·c + 0` (the
/// `+ 0` only turns −0 into +0, and is kept so the two paths agree bit for bit).
fn fused_update(
    theta: &Tensor,
    m: &Tensor,
    v: &Tensor,
    g: &Tensor,
    k: &Coeffs,
) -> Result<Option<(Tensor, Tensor, Tensor)>> {
    use rayon::prelude::*;
    const CHUNK: usize = 1 << 14;
    let all = [theta, m, v, g];
    if !all
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
    {
        return Ok(None);
    }
    let (tc, mc, vc, gc) = (
        theta.contiguous()?,
        m.contiguous()?,
        v.contiguous()?,
        g.contiguous()?,
    );
    let (tv, mv, vv, gv) = (
        crate::ops::View::new(&tc)?,
        crate::ops::View::new(&mc)?,
        crate::ops::View::new(&vc)?,
        crate::ops::View::new(&gc)?,
    );
    let (ms, vs, gs) = (mv.slice()?, vv.slice()?, gv.slice()?);
    let mut next = tv.slice()?.to_vec();
    let n = next.len();
    let (mut m2, mut v2) = (vec![0f32; n], vec![0f32; n]);
    m2.par_chunks_mut(CHUNK)
        .zip(v2.par_chunks_mut(CHUNK))
        .zip(next.par_chunks_mut(CHUNK))
        .zip(
            ms.par_chunks(CHUNK)
                .zip(vs.par_chunks(CHUNK))
                .zip(gs.par_chunks(CHUNK)),
        )
        .for_each(|(((m2, v2), th), ((m, v), g))| {
            for i in 0..th.len() {
                let mi = (m[i] * k.b1 + 0.0) + (g[i] * k.c1 + 0.0);
                let vi = (v[i] * k.b2 + 0.0) + ((g[i] * g[i]) * k.c2 + 0.0);
                let u = (mi * k.sm + 0.0) / ((vi * k.sv + 0.0).sqrt() + k.eps);
                th[i] = (th[i] * k.decay + 0.0) - (u * k.lr + 0.0);
                m2[i] = mi;
                v2[i] = vi;
            }
        });
    let (shape, dev) = (theta.shape(), theta.device());
    Ok(Some((
        Tensor::from_vec(m2, shape, dev)?,
        Tensor::from_vec(v2, shape, dev)?,
        Tensor::from_vec(next, shape, dev)?,
    )))
}

/// Sums gradients over micro-batches in f32, aligned with an optimizer's variables.
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
                // Summed in f32 whatever the variable's dtype (a no-op for f32 gradients).
                let g = g.detach().to_dtype(DType::F32)?;
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
                .to_dtype(DType::F64)?
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

    /// Deterministic, irregular, positive gradients for step `k` (each weight keeps moving
    /// the same way, by about `lr` a step).
    fn grad(k: usize, n: usize, dev: &Device) -> candle_core::Result<Tensor> {
        let g: Vec<f32> = (0..n)
            .map(|j| (1.0 + ((j * 7 + k * 13) % 11) as f32) * 1e-3)
            .collect();
        Tensor::from_vec(g, n, dev)
    }

    #[test]
    fn a_bf16_variable_holds_the_rounding_of_an_f32_master_that_tracks_the_f32_optimizer()
    -> Result<()> {
        let dev = Device::Cpu;
        // bf16-representable start values, so both optimizers start from the same weights.
        let init = Tensor::new(&[0.5f32, -1.0, 2.0, 0.25, 1.5, -0.75], &dev)?;
        let params = AdamWParams {
            lr: 1e-4,
            ..AdamWParams::default()
        };
        let f32_var = Var::from_tensor(&init)?;
        let bf16_var = Var::from_tensor(&init.to_dtype(DType::BF16)?)?;
        let mut f32_opt = AdamW::new(vec![("w".into(), f32_var.clone())], params)?;
        let mut bf16_opt = AdamW::new(vec![("w".into(), bf16_var.clone())], params)?;
        assert_eq!(
            bf16_opt.state_bytes(),
            3 * 6 * 4,
            "m, v and the master, all f32"
        );
        assert_eq!(f32_opt.state_bytes(), 2 * 6 * 4);
        for k in 0..30 {
            let g = grad(k, 6, &dev)?;
            f32_opt.step(&[Some(g.clone())])?;
            // The bf16 model's gradient arrives in bf16.
            bf16_opt.step(&[Some(g.to_dtype(DType::BF16)?)])?;
        }
        let master = bf16_opt.state()["master.w"].to_vec1::<f32>()?;
        let reference = f32_var.as_tensor().to_vec1::<f32>()?;
        // Same updates up to the gradients' bf16 rounding: Adam normalises the gradient, so
        // that rounding moves the result by far less than one step (lr = 1e-4).
        for (a, b) in master.iter().zip(&reference) {
            assert!((a - b).abs() < 1e-5, "master {a} vs f32 {b}");
        }
        // (bf16 → f32 is exact, so comparing as f32 compares the bf16 values.)
        let widen = |t: &Tensor| t.to_dtype(DType::F32)?.to_vec1::<f32>();
        assert_eq!(
            widen(bf16_var.as_tensor())?,
            widen(&bf16_opt.state()["master.w"].to_dtype(DType::BF16)?)?,
            "the variable holds the master's rounding"
        );
        // Why the master exists: 30 steps of ~1e-4 moved the weights by ~3e-3, which is
        // below half a bf16 ulp of 2.0 (2⁻⁷) but above that of 0.25 (2⁻¹⁰)...
        let start = init.to_vec1::<f32>()?;
        let now = widen(bf16_var.as_tensor())?;
        assert_eq!(now[2], start[2], "2.0 has not moved a bf16 ulp yet");
        assert_ne!(now[3], start[3], "0.25 has");
        // ...and each single step (~1e-4) is below half an ulp of every weight here, so
        // updating the bf16 weights directly would never have moved any of them.
        let stepped = (&init - 1e-4)?.to_dtype(DType::BF16)?;
        assert_eq!(widen(&stepped)?, start);
        Ok(())
    }

    #[test]
    fn a_bf16_optimizer_restored_from_its_state_continues_bit_identically() -> Result<()> {
        let dev = Device::Cpu;
        let init = Tensor::new(&[0.5f32, -1.0, 2.0, 0.25], &dev)?.to_dtype(DType::BF16)?;
        let params = AdamWParams {
            lr: 1e-3,
            ..AdamWParams::default()
        };
        let straight = Var::from_tensor(&init)?;
        let mut opt = AdamW::new(vec![("w".into(), straight.clone())], params)?;
        for k in 0..3 {
            opt.step(&[Some(grad(k, 4, &dev)?)])?;
        }
        let (saved_w, saved_state) = (straight.as_tensor().copy()?, opt.state());
        for k in 3..6 {
            opt.step(&[Some(grad(k, 4, &dev)?)])?;
        }
        let resumed = Var::from_tensor(&init)?;
        let mut again = AdamW::new(vec![("w".into(), resumed.clone())], params)?;
        // Without the master copy the state is refused, naming what is missing.
        let mut partial = saved_state.clone();
        partial.remove("master.w");
        let err = again.load_state(&partial, 3).expect_err("no master");
        assert!(err.to_string().contains("`master.w`"), "{err}");
        resumed.set(&saved_w)?;
        again.load_state(&saved_state, 3)?;
        for k in 3..6 {
            again.step(&[Some(grad(k, 4, &dev)?)])?;
        }
        let bits = |v: &Var| -> Result<Vec<u32>> {
            Ok(v.as_tensor()
                .to_dtype(DType::F32)?
                .to_vec1::<f32>()?
                .iter()
                .map(|x| x.to_bits())
                .collect())
        };
        assert_eq!(bits(&straight)?, bits(&resumed)?);
        assert_eq!(
            opt.state()["master.w"].to_vec1::<f32>()?,
            again.state()["master.w"].to_vec1::<f32>()?
        );
        Ok(())
    }

    #[test]
    fn gradients_are_summed_in_f32() -> Result<()> {
        let dev = Device::Cpu;
        let w = Var::from_tensor(&Tensor::new(&[1f32, 2.0], &dev)?.to_dtype(DType::BF16)?)?;
        let mut acc = GradAccumulator::default();
        // 256 + 1 + 1 is 258 in f32 but 256 in bf16 (8-bit significand): sums stay f32.
        for c in [256f64, 1.0, 1.0] {
            let loss = (w.as_tensor() * c)?.sum_all()?;
            acc.add([&w].into_iter(), &loss.backward()?)?;
        }
        let g = acc.take().pop().flatten().expect("gradient");
        assert_eq!(g.dtype(), DType::F32);
        assert_eq!(g.to_vec1::<f32>()?, vec![258.0, 258.0]);
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
