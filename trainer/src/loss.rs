//! Token-level losses.
//!
//! [`masked_nll`] is the SFT loss: the summed negative log-likelihood of next tokens whose
//! loss-mask is 1. On the CPU it runs as one fused custom op (log-softmax, pick, weight,
//! and the matching backward `w·(softmax − onehot)`), which avoids the half-dozen
//! vocabulary-sized temporaries of the composed form; elsewhere it uses the composed form.
//! Both are checked against each other and against PyTorch.
//!
//! [`masked_nll_from_hidden`] is what training uses: the same loss from the final hidden
//! states and the LM head's weight, with the head's matmul fused in over row chunks so the
//! `(tokens, vocab)` logits and their gradient are never formed (see `HeadNll`).
//!
//! [`neg_log_sigmoid`] is the pair losses' −log σ (DPO, reward models).

use candle_core::{CpuStorage, CustomOp1, D, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::error::Result;
use crate::ops::{View, fastmath};

/// −log σ(x), finite for any x, with the right gradient at 0.
///
/// Written as (|x| − x)/2 + log(1 + e^−|x|). The usual max(−x, 0) + log(1 + e^−|x|) has the
/// same value, but candle's `relu` and `abs` both take the derivative 1 at 0, so its
/// gradient there is −1.5 instead of σ(0) − 1 = −0.5; and x = 0 is where a DPO run starts
/// (policy = reference) and where a reward model starts on identical rows. Here the first
/// term's derivative at 0 is (1 − 1)/2 = 0 under that convention (and under sign(0) = 0
/// too), so the gradient is −0.5.
pub fn neg_log_sigmoid(x: &Tensor) -> Result<Tensor> {
    let hinge = ((x.abs()? - x)? * 0.5)?;
    let tail = (x.abs()?.neg()?.exp()? + 1.0)?.log()?;
    Ok((hinge + tail)?)
}

/// Row maximum and `Σ exp(x − max)`.
fn max_and_sum_exp(row: &[f32]) -> (f32, f32) {
    let max = fastmath::max(row);
    (max, fastmath::sum_exp(row, max))
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

/// Shifted targets and weights: position `j` predicts `ids[j + 1]` with weight
/// `loss_mask[j + 1]`; the last position of each row gets weight 0.
fn shifted_targets(ids: &Tensor, loss_mask: &Tensor) -> Result<(Vec<u32>, Vec<f32>)> {
    let ids_v: Vec<Vec<u32>> = ids.to_vec2()?;
    let mask_v: Vec<Vec<f32>> = loss_mask.to_dtype(DType::F32)?.to_vec2()?;
    let mut targets = Vec::new();
    let mut weights = Vec::new();
    for (row_ids, row_mask) in ids_v.iter().zip(&mask_v) {
        let t = row_ids.len();
        for j in 0..t {
            targets.push(if j + 1 < t { row_ids[j + 1] } else { 0 });
            weights.push(if j + 1 < t { row_mask[j + 1] } else { 0.0 });
        }
    }
    Ok((targets, weights))
}

/// Logits per chunk of [`masked_nll_from_hidden`] (64 MB of f32: large enough for
/// full-speed matmuls, small next to a model).
pub(crate) const HEAD_CHUNK_LOGITS: usize = 16_777_216;

/// The LM head and the loss as one op over row chunks: `hidden (n, d) · Wᵀ` is computed
/// `rows` rows at a time, turned into the per-row loss and, when a gradient will be
/// wanted, straight into that chunk's gradients, so the `(n, vocab)` logits and their
/// gradient never exist whole (for SmolLM2's 49,152-word vocabulary and 4,096 tokens that
/// is 800 MB each). The gradients are computed for a unit output gradient during the
/// forward pass and kept; the backward pass scales them, or recomputes them when the
/// rows' output gradients differ (they do not for a summed loss).
struct HeadNll {
    targets: Vec<u32>,
    weights: Vec<f32>,
    need_dh: bool,
    need_dw: bool,
    /// Rows per chunk (a chunk's logits are `rows × vocab` floats).
    rows: usize,
    /// `(dh (n, d), dW (vocab, d))` for a unit output gradient.
    grads: std::sync::Mutex<Option<(Vec<f32>, Vec<f32>)>>,
}

impl HeadNll {
    /// Per-row losses, and the gradients for output gradient `scale[i]` on row `i`.
    #[allow(clippy::type_complexity, reason = "three buffers of one pass")]
    fn pass(
        &self,
        h: &[f32],
        w: &[f32],
        d: usize,
        scale: Option<&[f32]>,
    ) -> (Vec<f32>, Option<Vec<f32>>, Option<Vec<f32>>) {
        use crate::ops::gemm::{Mat, matmul_par};
        let n = self.targets.len();
        let v = w.len() / d;
        let grads = self.need_dh || self.need_dw;
        let rows = self.rows.max(1);
        let mut loss = vec![0f32; n];
        let mut dh = self.need_dh.then(|| vec![0f32; n * d]);
        let mut dw = self.need_dw.then(|| vec![0f32; v * d]);
        let mut logits = vec![0f32; rows.min(n) * v];
        let wt = Mat::rows(w, v, d, d).t();
        for r0 in (0..n).step_by(rows) {
            let r = rows.min(n - r0);
            let hc = Mat::rows(&h[r0 * d..(r0 + r) * d], r, d, d);
            let lc = &mut logits[..r * v];
            matmul_par(lc, v, hc, wt, false);
            lc.par_chunks_mut(v)
                .zip(loss[r0..r0 + r].par_iter_mut())
                .enumerate()
                .for_each(|(k, (row, l))| {
                    let i = r0 + k;
                    let wi = self.weights[i];
                    let t = self.targets[i] as usize;
                    let target = row[t];
                    let g = wi * scale.map_or(1.0, |s| s[i]);
                    if !grads || g == 0.0 {
                        let (max, sum) = max_and_sum_exp(row);
                        *l = if wi == 0.0 {
                            0.0
                        } else {
                            wi * (max + sum.ln() - target)
                        };
                        if grads {
                            row.fill(0.0);
                        }
                        return;
                    }
                    // The exponentials are kept in the row and scaled into the softmax:
                    // one exp pass per row instead of two.
                    let max = fastmath::max(row);
                    let sum = fastmath::exp_in_place_sum(row, max);
                    *l = wi * (max + sum.ln() - target);
                    let inv = g / sum;
                    row.iter_mut().for_each(|x| *x *= inv);
                    row[t] -= g;
                });
            let gc = Mat::rows(lc, r, v, v);
            if let Some(dh) = dh.as_mut() {
                matmul_par(
                    &mut dh[r0 * d..(r0 + r) * d],
                    d,
                    gc,
                    Mat::rows(w, v, d, d),
                    false,
                );
            }
            if let Some(dw) = dw.as_mut() {
                matmul_par(dw, d, gc.t(), hc, true);
            }
        }
        (loss, dh, dw)
    }
}

impl candle_core::CustomOp2 for HeadNll {
    fn name(&self) -> &'static str {
        "fused-lm-head-nll"
    }

    fn cpu_fwd(
        &self,
        hs: &CpuStorage,
        hl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, d) = hl.shape().dims2()?;
        let (_, wd) = wl.shape().dims2()?;
        if wd != d || n != self.targets.len() {
            candle_core::bail!("{}: hidden ({n}, {d}), head width {wd}", self.name())
        }
        let (CpuStorage::F32(h), CpuStorage::F32(w)) = (hs, ws) else {
            candle_core::bail!("{}: expects f32", self.name())
        };
        let (Some((h0, h1)), Some((w0, w1))) = (hl.contiguous_offsets(), wl.contiguous_offsets())
        else {
            candle_core::bail!("{}: expects contiguous inputs", self.name())
        };
        let (loss, dh, dw) = self.pass(&h[h0..h1], &w[w0..w1], d, None);
        if self.need_dh || self.need_dw {
            *self
                .grads
                .lock()
                .map_err(|_| candle_core::Error::Msg("poisoned gradient stash".into()))? =
                Some((dh.unwrap_or_default(), dw.unwrap_or_default()));
        }
        Ok((CpuStorage::F32(loss), Shape::from(n)))
    }

    fn bwd(
        &self,
        hidden: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let g: Vec<f32> = grad.to_vec1()?;
        // A summed loss gives every row the same output gradient: scale the kept gradients.
        let uniform = g.windows(2).all(|p| p[0] == p[1]);
        let kept = if uniform {
            self.grads
                .lock()
                .map_err(|_| candle_core::Error::Msg("poisoned gradient stash".into()))?
                .take()
        } else {
            None
        };
        let (dh, dw) = match kept {
            Some((mut dh, mut dw)) => {
                let s = g.first().copied().unwrap_or(1.0);
                if s != 1.0 {
                    dh.iter_mut().chain(dw.iter_mut()).for_each(|x| *x *= s);
                }
                (dh, dw)
            }
            None => {
                let (hc, wc) = (hidden.contiguous()?, weight.contiguous()?);
                let (hv, wv) = (View::new(&hc)?, View::new(&wc)?);
                let (_, dh, dw) = self.pass(hv.slice()?, wv.slice()?, hidden.dim(1)?, Some(&g));
                (dh.unwrap_or_default(), dw.unwrap_or_default())
            }
        };
        let dev = hidden.device();
        Ok((
            self.need_dh
                .then(|| Tensor::from_vec(dh, hidden.shape(), dev))
                .transpose()?,
            self.need_dw
                .then(|| Tensor::from_vec(dw, weight.shape(), dev))
                .transpose()?,
        ))
    }
}

/// The fused head-and-loss op over rows `hidden (n, d)`: the weighted NLL of each row's
/// target, with gradients only for the inputs that track them (and only `with_grad`).
fn head_nll_rows(
    hidden: &Tensor,
    head: &Tensor,
    targets: Vec<u32>,
    weights: Vec<f32>,
    with_grad: bool,
) -> Result<Tensor> {
    let op = HeadNll {
        targets,
        weights,
        need_dh: with_grad && hidden.track_op(),
        need_dw: with_grad && head.track_op(),
        rows: (HEAD_CHUNK_LOGITS / head.dim(0)?.max(1)).max(16),
        grads: std::sync::Mutex::new(None),
    };
    Ok(hidden.contiguous()?.apply_op2(&head.contiguous()?, op)?)
}

/// [`masked_nll`] of the logits `hidden (b, t, d) · head (vocab, d)ᵀ`, without forming the
/// logits on the CPU (f32): see `HeadNll`. `with_grad` is false for evaluation, where
/// computing gradients during the forward pass would be wasted. Elsewhere (CUDA, bf16)
/// it is the LM head followed by [`masked_nll`].
pub fn masked_nll_from_hidden(
    hidden: &Tensor,
    head: &Tensor,
    ids: &Tensor,
    loss_mask: &Tensor,
    with_grad: bool,
) -> Result<(Tensor, f32)> {
    let (b, t, d) = hidden.dims3()?;
    let cpu_f32 = |x: &Tensor| x.device().is_cpu() && x.dtype() == DType::F32;
    if !(cpu_f32(hidden) && cpu_f32(head)) {
        let logits = crate::ops::linear(&hidden.reshape((b * t, d))?, head, None)?;
        return masked_nll(&logits.reshape((b, t, ()))?, ids, loss_mask);
    }
    let (targets, weights) = shifted_targets(ids, loss_mask)?;
    let count: f32 = weights.iter().sum();
    let per_row = head_nll_rows(
        &hidden.reshape((b * t, d))?,
        head,
        targets,
        weights,
        with_grad,
    )?;
    Ok((per_row.sum_all()?, count))
}

/// Per-token log-probabilities of the next tokens, `(b, t)`: entry `j` is
/// `log p(ids[j + 1] | ids[..=j])` where `loss_mask[j + 1]` is 1, and 0 elsewhere (and at the
/// last position). It is differentiable (the RL losses are non-linear in it: ratios, KL) and,
/// on the CPU in f32, runs on the same fused head-and-loss op as [`masked_nll_from_hidden`],
/// whose backward takes per-row output gradients; `with_grad = false` skips the gradients
/// (reference and old-policy passes).
pub fn token_logprobs_from_hidden(
    hidden: &Tensor,
    head: &Tensor,
    ids: &Tensor,
    loss_mask: &Tensor,
    with_grad: bool,
) -> Result<Tensor> {
    let (b, t, d) = hidden.dims3()?;
    let cpu_f32 = |x: &Tensor| x.device().is_cpu() && x.dtype() == DType::F32;
    let (targets, weights) = shifted_targets(ids, loss_mask)?;
    if !(cpu_f32(hidden) && cpu_f32(head)) {
        let dev = hidden.device().clone();
        let logits =
            crate::ops::linear(&hidden.reshape((b * t, d))?, head, None)?.to_dtype(DType::F32)?;
        let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let targets = Tensor::from_vec(targets, (b * t, 1), &dev)?;
        let picked = logp.gather(&targets, 1)?.squeeze(1)?;
        let weights = Tensor::from_vec(weights, b * t, &dev)?;
        return Ok((picked * weights)?.reshape((b, t))?);
    }
    let per_row = head_nll_rows(
        &hidden.reshape((b * t, d))?,
        head,
        targets,
        weights,
        with_grad,
    )?;
    Ok(per_row.neg()?.reshape((b, t))?)
}

/// Next-token NLL over positions whose target has `loss_mask` 1: position `j` predicts
/// `ids[j + 1]`. `logits (b, t, V)`, `ids (b, t)` u32, `loss_mask (b, t)` f32.
/// Returns the summed loss (a scalar tensor, differentiable) and the number of targets.
pub fn masked_nll(logits: &Tensor, ids: &Tensor, loss_mask: &Tensor) -> Result<(Tensor, f32)> {
    let (b, t, v) = logits.dims3()?;
    let (targets, weights) = shifted_targets(ids, loss_mask)?;
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
    fn neg_log_sigmoid_has_sigma_minus_one_as_its_gradient_even_at_zero() {
        let xs = [-800.0f64, -3.0, 0.0, 2.5, 800.0];
        let x = Var::from_slice(&xs, 5, &Device::Cpu).expect("x");
        let y = neg_log_sigmoid(x.as_tensor()).expect("nls");
        let v: Vec<f64> = y.to_vec1().expect("v");
        let g: Vec<f64> = y
            .sum_all()
            .expect("sum")
            .backward()
            .expect("grad")
            .get(&x)
            .expect("g")
            .to_vec1()
            .expect("g");
        for ((&x, v), g) in xs.iter().zip(v).zip(g) {
            let sigma = 1.0 / (1.0 + (-x).exp());
            let want = if x < -30.0 { -x } else { -(sigma.ln()) };
            assert!((v - want).abs() < 1e-9, "value at {x}: {v} vs {want}");
            assert!(
                (g - (sigma - 1.0)).abs() < 1e-12,
                "gradient at {x}: {g} vs {}",
                sigma - 1.0
            );
        }
    }

    /// Hidden states, an LM head and a batch with a partial loss mask.
    fn head_case(dev: &Device) -> Result<(Var, Var, Tensor, Tensor)> {
        let h: Vec<f32> = (0..2 * 5 * 6)
            .map(|i| ((i * 29 % 17) as f32 - 8.0) / 5.0)
            .collect();
        let w: Vec<f32> = (0..11 * 6)
            .map(|i| ((i * 13 % 19) as f32 - 9.0) / 7.0)
            .collect();
        let h = Var::from_tensor(&Tensor::from_vec(h, (2, 5, 6), dev)?)?;
        let w = Var::from_tensor(&Tensor::from_vec(w, (11, 6), dev)?)?;
        let ids = Tensor::new(&[[1u32, 2, 3, 4, 5], [6, 0, 10, 2, 3]], dev)?;
        let mask = Tensor::new(&[[0f32, 1., 1., 0., 1.], [0., 0., 1., 1., 1.]], dev)?;
        Ok((h, w, ids, mask))
    }

    #[test]
    fn token_logprobs_match_the_composed_log_softmax_in_value_and_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let (h, w, ids, mask) = head_case(&dev)?;
        // A non-uniform upstream gradient, as the RL losses give.
        let coef = Tensor::new(
            &[[0.3f32, -1.2, 0.7, 2.0, -0.4], [1.1, 0.2, -0.9, 0.5, 1.5]],
            &dev,
        )?;
        let fused = token_logprobs_from_hidden(h.as_tensor(), w.as_tensor(), &ids, &mask, true)?;
        let g_fused = (&fused * &coef)?.sum_all()?.backward()?;
        let logits = h.as_tensor().broadcast_matmul(&w.as_tensor().t()?)?;
        let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let (b, t, v) = logp.dims3()?;
        let ids_v: Vec<Vec<u32>> = ids.to_vec2()?;
        let mask_v: Vec<Vec<f32>> = mask.to_vec2()?;
        let mut onehot = vec![0f32; b * t * v];
        for i in 0..b {
            for j in 0..t - 1 {
                if mask_v[i][j + 1] == 1.0 {
                    onehot[(i * t + j) * v + ids_v[i][j + 1] as usize] = 1.0;
                }
            }
        }
        let onehot = Tensor::from_vec(onehot, (b, t, v), &dev)?;
        let composed = (logp * onehot)?.sum(D::Minus1)?;
        let g_composed = (&composed * &coef)?.sum_all()?.backward()?;
        assert!(max_diff(&fused, &composed)? < 1e-5);
        for var in [&h, &w] {
            let (a, c) = (
                g_fused.get(var.as_tensor()).expect("fused grad"),
                g_composed.get(var.as_tensor()).expect("composed grad"),
            );
            assert!(max_diff(a, c)? < 1e-5, "{}", max_diff(a, c)?);
        }
        Ok(())
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
    }

    #[test]
    fn the_fused_lm_head_loss_equals_logits_then_loss() -> Result<()> {
        let dev = Device::Cpu;
        let (h, w, ids, mask) = head_case(&dev)?;
        let (fused, count) = masked_nll_from_hidden(&h, &w, &ids, &mask, true)?;
        let logits = h.as_tensor().broadcast_matmul(&w.as_tensor().t()?)?;
        let (plain, count2) = masked_nll(&logits, &ids, &mask)?;
        assert_eq!(count, count2);
        assert!((fused.to_scalar::<f32>()? - plain.to_scalar::<f32>()?).abs() < 1e-5);
        // A scaled loss (as the mean over targets is) scales both gradients.
        let (gf, gp) = ((fused * 0.25)?.backward()?, (&plain * 0.25)?.backward()?);
        for v in [&h, &w] {
            let d = max_diff(gf.get(v).expect("fused grad"), gp.get(v).expect("grad"))?;
            assert!(d < 1e-6, "gradients differ by {d}");
        }
        // Evaluation: the same value, and no gradient kept or computed.
        let (eval, _) = masked_nll_from_hidden(&h.as_tensor().detach(), &w, &ids, &mask, false)?;
        assert_eq!(eval.to_scalar::<f32>()?, plain.to_scalar::<f32>()?);
        Ok(())
    }

    #[test]
    fn the_fused_lm_head_in_chunks_recomputes_for_rows_with_different_output_gradients()
    -> Result<()> {
        let dev = Device::Cpu;
        let (h, w, ids, mask) = head_case(&dev)?;
        let (targets, weights) = shifted_targets(&ids, &mask)?;
        let op = HeadNll {
            targets,
            weights,
            need_dh: true,
            need_dw: true,
            rows: 3, // 10 rows: chunks of 3, 3, 3 and 1
            grads: std::sync::Mutex::new(None),
        };
        let per_row = h
            .as_tensor()
            .reshape((10, 6))?
            .apply_op2(w.as_tensor(), op)?;
        let scales = Tensor::arange(1f32, 11., &dev)?;
        let gf = (per_row * &scales)?.sum_all()?.backward()?;
        let logits = h
            .as_tensor()
            .reshape((10, 6))?
            .matmul(&w.as_tensor().t()?)?;
        let lp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        let (t, wt) = shifted_targets(&ids, &mask)?;
        let picked = lp
            .gather(&Tensor::from_vec(t, (10, 1), &dev)?, 1)?
            .squeeze(1)?;
        let per_row_plain = (picked * Tensor::from_vec(wt, 10, &dev)?)?.neg()?;
        let gp = (per_row_plain * &scales)?.sum_all()?.backward()?;
        for v in [&h, &w] {
            let d = max_diff(gf.get(v).expect("fused grad"), gp.get(v).expect("grad"))?;
            assert!(d < 1e-5, "gradients differ by {d}");
        }
        Ok(())
    }

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
