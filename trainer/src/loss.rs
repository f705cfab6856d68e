//! Token-level losses.
//!
//! [`masked_nll`] is the SFT loss: the summed negative log-likelihood of next tokens whose
//! loss-mask is 1. On the CPU it runs as one fused custom op (log-softmax, pick, weight,
//! and the matching backward `w·(softmax − onehot)`), which avoids the half-dozen
//! vocabulary-sized temporaries of the composed form; elsewhere it uses the composed form.
//! Both are checked against each other and against PyTorch.

use candle_core::{CpuStorage, CustomOp1, D, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::error::Result;
use crate::ops::{View, fastmath};

/// Row maximum and `Σ exp(x − max)`.
fn max_and_sum_exp(row: &[f32]) -> (f32, f32) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    (max, row.iter().map(|&x| fastmath::exp(x - max)).sum())
}

/// Fused weighted cross-entropy over rows of logits `(n, vocab)`, parallel over rows.
struct WeightedNll {
    targets: Vec<u32>,
    weights: Vec<f32>,
}

impl CustomOp1 for WeightedNll {
    fn name(&self) -> &'static str {
        "weighted-nll"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, v) = layout.shape().dims2()?;
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("weighted-nll expects f32 logits")
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("weighted-nll expects contiguous logits")
        };
        let data = &data[start..end];
        let mut out = vec![0f32; n];
        out.par_iter_mut().enumerate().for_each(|(i, o)| {
            let w = self.weights[i];
            if w != 0.0 {
                let row = &data[i * v..(i + 1) * v];
                let (max, sum) = max_and_sum_exp(row);
                *o = w * (max + sum.ln() - row[self.targets[i] as usize]);
            }
        });
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (n, v) = arg.dims2()?;
        let (xc, gc) = (arg.contiguous()?, grad_res.contiguous()?);
        let (xv, gv) = (View::new(&xc)?, View::new(&gc)?);
        let (x, g) = (xv.slice()?, gv.slice()?);
        let mut out = vec![0f32; n * v];
        out.par_chunks_mut(v).enumerate().for_each(|(i, o)| {
            let scale = g[i] * self.weights[i];
            if scale == 0.0 {
                return;
            }
            let row = &x[i * v..(i + 1) * v];
            let (max, sum) = max_and_sum_exp(row);
            let inv = scale / sum;
            for (oj, &xj) in o.iter_mut().zip(row) {
                *oj = inv * fastmath::exp(xj - max);
            }
            o[self.targets[i] as usize] -= scale;
        });
        Ok(Some(Tensor::from_vec(out, (n, v), arg.device())?))
    }
}

/// Next-token NLL over positions whose target has `loss_mask` 1: position `j` predicts
/// `ids[j + 1]`. `logits (b, t, V)`, `ids (b, t)` u32, `loss_mask (b, t)` f32.
/// Returns the summed loss (a scalar tensor, differentiable) and the number of targets.
pub fn masked_nll(logits: &Tensor, ids: &Tensor, loss_mask: &Tensor) -> Result<(Tensor, f32)> {
    let (b, t, v) = logits.dims3()?;
    // Shift by building per-position targets/weights; the last position gets weight 0.
    let ids_v: Vec<Vec<u32>> = ids.to_vec2()?;
    let mask_v: Vec<Vec<f32>> = loss_mask.to_dtype(DType::F32)?.to_vec2()?;
    let mut targets = Vec::with_capacity(b * t);
    let mut weights = Vec::with_capacity(b * t);
    for (row_ids, row_mask) in ids_v.iter().zip(&mask_v) {
        for j in 0..t {
            targets.push(if j + 1 < t { row_ids[j + 1] } else { 0 });
            weights.push(if j + 1 < t { row_mask[j + 1] } else { 0.0 });
        }
    }
    let count: f32 = weights.iter().sum();
    let flat = logits.to_dtype(DType::F32)?.reshape((b * t, v))?;
    if flat.device().is_cpu() {
        let per_row = flat
            .contiguous()?
            .apply_op1(WeightedNll { targets, weights })?;
        return Ok((per_row.sum_all()?, count));
    }
    let dev = flat.device().clone();
    let logp = candle_nn::ops::log_softmax(&flat, D::Minus1)?;
    let targets = Tensor::from_vec(targets, (b * t, 1), &dev)?;
    let picked = logp.gather(&targets, 1)?.squeeze(1)?;
    let weights = Tensor::from_vec(weights, b * t, &dev)?;
    Ok(((picked * weights)?.sum_all()?.neg()?, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn fused_loss_and_gradient_equal_the_composed_form() -> Result<()> {
        let dev = Device::Cpu;
        let vals: Vec<f32> = (0..2 * 5 * 7)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 3.0)
            .collect();
        let x = Var::from_tensor(&Tensor::from_vec(vals, (2, 5, 7), &dev)?)?;
        let ids = Tensor::new(&[[1u32, 2, 3, 4, 5], [6, 0, 1, 2, 3]], &dev)?;
        let mask = Tensor::new(&[[0f32, 1., 1., 0., 1.], [0., 0., 1., 1., 1.]], &dev)?;
        let (fused, count) = masked_nll(x.as_tensor(), &ids, &mask)?;
        assert_eq!(count, 6.0);
        let g_fused = fused.backward()?.get(&x).cloned().expect("grad");
        // Composed reference on the shifted views.
        let logp = candle_nn::ops::log_softmax(&x.as_tensor().narrow(1, 0, 4)?, D::Minus1)?;
        let picked = logp
            .gather(&ids.narrow(1, 1, 4)?.contiguous()?.unsqueeze(2)?, 2)?
            .squeeze(2)?;
        let composed = (picked * mask.narrow(1, 1, 4)?)?.sum_all()?.neg()?;
        let g_comp = composed.backward()?.get(&x).cloned().expect("grad");
        assert!((fused.to_scalar::<f32>()? - composed.to_scalar::<f32>()?).abs() < 1e-5);
        let d = (g_fused - g_comp)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()?;
        assert!(d < 1e-6, "gradients differ by {d}");
        Ok(())
    }
}
