//! Layer norm and RMSNorm over the last dimension, forward and backward in one pass each.
//!
//! The backward passes recompute each row's statistics from the input instead of saving
//! them (a row is one cache-resident vector; recomputing is cheaper than another buffer).
//! Weight and bias gradients are summed per task and then added in task order, so the
//! result does not depend on how rayon scheduled the tasks: runs stay bit-reproducible.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{View, f32_slice, fastmath, fusable, rows_per_task, sum_in_order};

/// `f(row, out_row)` over every row of width `d`, in parallel, into a new buffer.
fn map_rows(x: &[f32], d: usize, f: impl Fn(&[f32], &mut [f32]) + Sync) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    let chunk = rows_per_task(x.len() / d, d) * d;
    y.par_chunks_mut(chunk)
        .zip(x.par_chunks(chunk))
        .for_each(|(y, x)| {
            for (yr, xr) in y.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
                f(xr, yr);
            }
        });
    y
}

/// Mean and reciprocal standard deviation of a row (biased variance, like PyTorch).
#[inline]
fn moments(row: &[f32], eps: f32) -> (f32, f32) {
    let d = row.len() as f32;
    let mean = fastmath::sum(row) / d;
    let var = fastmath::lane_sum(row.len(), |i| (row[i] - mean) * (row[i] - mean)) / d;
    (mean, 1.0 / (var + eps).sqrt())
}

/// Reciprocal root mean square of a row.
#[inline]
fn rms(row: &[f32], eps: f32) -> f32 {
    let ms = fastmath::dot(row, row) / row.len() as f32;
    1.0 / (ms + eps).sqrt()
}

struct LayerNorm {
    eps: f32,
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "fused-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, self.name())?;
        let w = f32_slice(s2, l2, self.name())?;
        let b = f32_slice(s3, l3, self.name())?;
        let y = map_rows(x, w.len(), |xr, yr| {
            let (mean, rstd) = moments(xr, self.eps);
            for (((o, &v), &g), &bb) in yr.iter_mut().zip(xr).zip(w).zip(b) {
                *o = (v - mean) * rstd * g + bb;
            }
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (xc, wc, gc) = (x.contiguous()?, w.contiguous()?, grad.contiguous()?);
        let (xv, wv, gv) = (View::new(&xc)?, View::new(&wc)?, View::new(&gc)?);
        let (xs, ws, gs) = (xv.slice()?, wv.slice()?, gv.slice()?);
        let d = ws.len();
        let mut dx = vec![0f32; xs.len()];
        let chunk = rows_per_task(xs.len() / d, d) * d;
        let parts: Vec<(Vec<f32>, Vec<f32>)> = dx
            .par_chunks_mut(chunk)
            .zip(xs.par_chunks(chunk))
            .zip(gs.par_chunks(chunk))
            .map(|((dx, x), dy)| {
                let (mut dw, mut db) = (vec![0f32; d], vec![0f32; d]);
                let mut xhat = vec![0f32; d];
                for ((dxr, xr), dyr) in dx
                    .chunks_exact_mut(d)
                    .zip(x.chunks_exact(d))
                    .zip(dy.chunks_exact(d))
                {
                    let (mean, rstd) = moments(xr, self.eps);
                    for j in 0..d {
                        xhat[j] = (xr[j] - mean) * rstd;
                        dw[j] += dyr[j] * xhat[j];
                        db[j] += dyr[j];
                    }
                    // The two row reductions apart from the element loop, so both vectorise.
                    let a = fastmath::dot(dyr, ws) / d as f32;
                    let c = fastmath::lane_sum(d, |j| dyr[j] * ws[j] * xhat[j]) / d as f32;
                    for j in 0..d {
                        dxr[j] = rstd * (dyr[j] * ws[j] - a - xhat[j] * c);
                    }
                }
                (dw, db)
            })
            .collect();
        let (dws, dbs): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(sum_in_order(dws, d), w.shape(), dev)?),
            Some(Tensor::from_vec(sum_in_order(dbs, d), w.shape(), dev)?),
        ))
    }
}

/// Layer norm over the last dimension: `(x − mean) / √(var + eps) · w + b`.
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    if fusable(&[x, w, b]) {
        x.contiguous()?.apply_op3(
            &w.contiguous()?,
            &b.contiguous()?,
            LayerNorm { eps: eps as f32 },
        )
    } else {
        candle_nn::ops::layer_norm_slow(x, w, b, eps as f32)
    }
}

struct RmsNorm {
    eps: f32,
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "fused-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, self.name())?;
        let w = f32_slice(s2, l2, self.name())?;
        let y = map_rows(x, w.len(), |xr, yr| {
            let r = rms(xr, self.eps);
            for ((o, &v), &g) in yr.iter_mut().zip(xr).zip(w) {
                *o = v * r * g;
            }
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (xc, wc, gc) = (x.contiguous()?, w.contiguous()?, grad.contiguous()?);
        let (xv, wv, gv) = (View::new(&xc)?, View::new(&wc)?, View::new(&gc)?);
        let (xs, ws, gs) = (xv.slice()?, wv.slice()?, gv.slice()?);
        let d = ws.len();
        let mut dx = vec![0f32; xs.len()];
        let chunk = rows_per_task(xs.len() / d, d) * d;
        let dws: Vec<Vec<f32>> = dx
            .par_chunks_mut(chunk)
            .zip(xs.par_chunks(chunk))
            .zip(gs.par_chunks(chunk))
            .map(|((dx, x), dy)| {
                let mut dw = vec![0f32; d];
                for ((dxr, xr), dyr) in dx
                    .chunks_exact_mut(d)
                    .zip(x.chunks_exact(d))
                    .zip(dy.chunks_exact(d))
                {
                    let r = rms(xr, self.eps);
                    for j in 0..d {
                        dw[j] += dyr[j] * xr[j] * r;
                    }
                    let c = fastmath::lane_sum(d, |j| dyr[j] * ws[j] * xr[j]) * r / d as f32;
                    for j in 0..d {
                        dxr[j] = r * (dyr[j] * ws[j] - xr[j] * r * c);
                    }
                }
                dw
            })
            .collect();
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(sum_in_order(dws, d), w.shape(), dev)?),
        ))
    }
}

/// RMSNorm over the last dimension: `x / √(mean(x²) + eps) · w`, statistics in f32.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    if fusable(&[x, w]) {
        return x
            .contiguous()?
            .apply_op2(&w.contiguous()?, RmsNorm { eps: eps as f32 });
    }
    let dt = x.dtype();
    let x = x.to_dtype(candle_core::DType::F32)?;
    let ms = x.sqr()?.mean_keepdim(candle_core::D::Minus1)?;
    let x = x.broadcast_div(&(ms + eps)?.sqrt()?)?;
    x.to_dtype(dt)?.broadcast_mul(w)
}

#[cfg(test)]
mod tests {
    use candle_core::{D, Device, Var};

    use super::*;
    use crate::ops::tests::{assert_same_function, sample};

    fn composed_rms(x: &Tensor, w: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
        let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
        x.broadcast_div(&(ms + eps)?.sqrt()?)?.broadcast_mul(w)
    }

    #[test]
    fn layer_norm_matches_the_composed_form_in_value_and_gradient() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&sample(&[3, 5, 64], 1, &dev)?)?;
        let w = Var::from_tensor(&(sample(&[64], 2, &dev)? + 1.0)?)?;
        let b = Var::from_tensor(&sample(&[64], 3, &dev)?)?;
        let up = sample(&[3, 5, 64], 4, &dev)?;
        let fused = layer_norm(&x, &w, &b, 1e-5)?;
        let slow = candle_nn::ops::layer_norm_slow(&x, &w, &b, 1e-5)?;
        assert_same_function(&fused, &slow, &up, &[&x, &w, &b], 2e-6, 2e-5)?;
        Ok(())
    }

    #[test]
    fn rms_norm_matches_the_composed_form_in_value_and_gradient() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&sample(&[2, 7, 48], 5, &dev)?)?;
        let w = Var::from_tensor(&(sample(&[48], 6, &dev)? + 1.0)?)?;
        let up = sample(&[2, 7, 48], 7, &dev)?;
        let fused = rms_norm(&x, &w, 1e-6)?;
        let slow = composed_rms(&x, &w, 1e-6)?;
        assert_same_function(&fused, &slow, &up, &[&x, &w], 2e-6, 2e-5)?;
        Ok(())
    }
}
