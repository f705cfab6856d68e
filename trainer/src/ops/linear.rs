//! Linear projections `y = x Wᵀ + b`, with or without a LoRA update, as single ops.
//!
//! candle composes a projection from a reshape, a transposed weight view, a matmul, a
//! broadcast and an add. Its backward pass then allocates a zero tensor plus an
//! accumulated copy for every one of those edges (activation-sized for four of them) and
//! sums the bias gradient with a strided reduction; on the GPT-2 bench that bookkeeping
//! cost about as much as the backward matmuls. Here the forward pass writes the bias
//! rows and accumulates the product onto them, and the backward pass is the products it
//! needs plus one column sum, computing only the gradients whose inputs are tracked (a
//! frozen base gets no weight gradient, which is a third of a projection's FLOPs).
//!
//! [`lora_linear`] adds `scale · (x Aᵀ) Bᵀ` over a frozen base in the same op; its backward
//! recomputes the `(rows, r)` product `x Aᵀ` instead of keeping it.
//!
//! Weights may have any strides (GPT-2's Conv1D weights are transposed views). Both
//! functions fall back to the composed candle form off the CPU, in bf16, and wherever
//! the fused op does not apply.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::gemm::{Mat, matmul_par, matmul_scaled_par, with_mat};
use super::{View, f32_slice, fusable, rows_per_task, sum_in_order};

/// `(.., in)` → the row count, `in`, and the output shape `(.., out)`.
fn shapes(x: &Layout, out: usize) -> candle_core::Result<(usize, usize, Shape)> {
    let mut dims = x.shape().dims().to_vec();
    let Some(inp) = dims.pop() else {
        candle_core::bail!("linear: the input is a scalar")
    };
    let rows = dims.iter().product();
    dims.push(out);
    Ok((rows, inp, Shape::from(dims)))
}

/// `x Wᵀ + b` into a new `(rows, out)` buffer: the bias rows first, the product on top.
fn project(x: &[f32], rows: usize, inp: usize, w: Mat<'_>, bias: Option<&[f32]>) -> Vec<f32> {
    let out = w.rows;
    let mut y = vec![0f32; rows * out];
    if let Some(b) = bias {
        y.par_chunks_mut(rows_per_task(rows, out) * out)
            .for_each(|c| c.chunks_exact_mut(out).for_each(|r| r.copy_from_slice(b)));
    }
    matmul_par(
        &mut y,
        out,
        Mat::rows(x, rows, inp, inp),
        w.t(),
        bias.is_some(),
    );
    y
}

/// Sums the rows of a `(rows, cols)` buffer, in a fixed order (bit-reproducible).
fn column_sums(g: &[f32], cols: usize) -> Vec<f32> {
    let chunk = rows_per_task(g.len() / cols, cols) * cols;
    let parts = g
        .par_chunks(chunk)
        .map(|c| {
            let mut s = vec![0f32; cols];
            for r in c.chunks_exact(cols) {
                for (a, v) in s.iter_mut().zip(r) {
                    *a += v;
                }
            }
            s
        })
        .collect();
    sum_in_order(parts, cols)
}

fn check_in(inp: usize, w: &Mat<'_>) -> candle_core::Result<()> {
    if w.cols != inp {
        candle_core::bail!(
            "linear: input width {inp} for a ({}, {}) weight",
            w.rows,
            w.cols
        )
    }
    Ok(())
}

/// The gradients of `x Wᵀ + b` that are tracked: `g W`, `gᵀ x`, the column sums of `g`.
fn linear_bwd(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    grad: &Tensor,
) -> candle_core::Result<[Option<Tensor>; 3]> {
    let (xc, gc) = (x.contiguous()?, grad.contiguous()?);
    let (xv, gv) = (View::new(&xc)?, View::new(&gc)?);
    let (xs, gs) = (xv.slice()?, gv.slice()?);
    let (out, inp) = w.dims2()?;
    let rows = xs.len() / inp.max(1);
    let (xm, gm) = (Mat::rows(xs, rows, inp, inp), Mat::rows(gs, rows, out, out));
    let dev = x.device();
    let dx = if x.track_op() {
        let mut dx = vec![0f32; rows * inp];
        with_mat(w, |wm| matmul_par(&mut dx, inp, gm, wm, false))?;
        Some(Tensor::from_vec(dx, x.shape(), dev)?)
    } else {
        None
    };
    let dw = if w.track_op() {
        let mut dw = vec![0f32; out * inp];
        if w.stride() == [1, out] {
            // A transposed view (GPT-2's Conv1D): the gradient in the same layout, so
            // candle carries it back through the transpose without a strided copy.
            matmul_par(&mut dw, out, xm.t(), gm, false);
            Some(Tensor::from_vec(dw, (inp, out), dev)?.t()?)
        } else {
            matmul_par(&mut dw, inp, gm.t(), xm, false);
            Some(Tensor::from_vec(dw, (out, inp), dev)?)
        }
    } else {
        None
    };
    let db = match b {
        Some(b) if b.track_op() => Some(Tensor::from_vec(column_sums(gs, out), out, dev)?),
        _ => None,
    };
    Ok([dx, dw, db])
}

/// `x Wᵀ` (no bias).
struct Linear;

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        "fused-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, self.name())?;
        let w = Mat::of_storage(s2, l2)?;
        let (rows, inp, shape) = shapes(l1, w.rows)?;
        check_in(inp, &w)?;
        Ok((CpuStorage::F32(project(x, rows, inp, w, None)), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let [dx, dw, _] = linear_bwd(x, w, None, grad)?;
        Ok((dx, dw))
    }
}

/// `x Wᵀ + b`.
struct LinearBias;

impl CustomOp3 for LinearBias {
    fn name(&self) -> &'static str {
        "fused-linear-bias"
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
        let w = Mat::of_storage(s2, l2)?;
        let b = f32_slice(s3, l3, self.name())?;
        let (rows, inp, shape) = shapes(l1, w.rows)?;
        check_in(inp, &w)?;
        if b.len() != w.rows {
            candle_core::bail!("linear: {} biases for {} outputs", b.len(), w.rows)
        }
        Ok((CpuStorage::F32(project(x, rows, inp, w, Some(b))), shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [dx, dw, db] = linear_bwd(x, w, Some(b), grad)?;
        Ok((dx, dw, db))
    }
}

/// The composed candle form: one 2-D matmul over the flattened leading dimensions (in a
/// backward pass that is cheaper than a batched matmul against a broadcast weight).
fn composed(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let mut dims = x.dims().to_vec();
    let inp = dims.pop().unwrap_or(1);
    dims.push(w.dim(0)?);
    let y = x.reshape(((), inp))?.matmul(&w.t()?)?;
    let y = match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    };
    y.reshape(dims)
}

/// `x Wᵀ + b` for `x (.., in)`, `W (out, in)` and `b (out)`, giving `(.., out)`.
///
/// Gradients reach whichever of the three are tracked; a frozen `W` costs no weight
/// gradient.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let mut ts = vec![x, w];
    ts.extend(b);
    if !fusable(&ts) || w.rank() != 2 {
        return composed(x, w, b);
    }
    let x = x.contiguous()?;
    match b {
        Some(b) => x.apply_op3(w, &b.contiguous()?, LinearBias),
        None => x.apply_op2(w, Linear),
    }
}

/// A frozen base `x Wᵀ + b` plus the LoRA update `scale · (x Aᵀ) Bᵀ`.
struct Lora {
    /// `(out, in)`, any strides; frozen.
    weight: Tensor,
    /// `(out)`; frozen.
    bias: Option<Tensor>,
    scale: f32,
}

impl Lora {
    /// `x Aᵀ`, `(rows, r)`.
    fn down(x: &[f32], rows: usize, inp: usize, a: Mat<'_>) -> Vec<f32> {
        let mut h = vec![0f32; rows * a.rows];
        matmul_par(&mut h, a.rows, Mat::rows(x, rows, inp, inp), a.t(), false);
        h
    }
}

impl CustomOp3 for Lora {
    fn name(&self) -> &'static str {
        "fused-lora-linear"
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
        let (a, bm) = (Mat::of_storage(s2, l2)?, Mat::of_storage(s3, l3)?);
        let bias = self.bias.as_ref().map(|b| b.contiguous()).transpose()?;
        let bias_view = bias.as_ref().map(View::new).transpose()?;
        let bias = bias_view.as_ref().map(|v| v.slice()).transpose()?;
        with_mat(&self.weight, |w| {
            let (rows, inp, shape) = shapes(l1, w.rows)?;
            check_in(inp, &w)?;
            check_in(inp, &a)?;
            if bm.rows != w.rows || bm.cols != a.rows {
                candle_core::bail!(
                    "lora: B is ({}, {}) for {} outputs and rank {}",
                    bm.rows,
                    bm.cols,
                    w.rows,
                    a.rows
                )
            }
            let mut y = project(x, rows, inp, w, bias);
            let h = Self::down(x, rows, inp, a);
            matmul_scaled_par(
                &mut y,
                w.rows,
                Mat::rows(&h, rows, a.rows, a.rows),
                bm.t(),
                true,
                self.scale,
            );
            Ok((CpuStorage::F32(y), shape))
        })?
    }

    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        bm: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (xc, ac, bc, gc) = (
            x.contiguous()?,
            a.contiguous()?,
            bm.contiguous()?,
            grad.contiguous()?,
        );
        let (xv, av, bv, gv) = (
            View::new(&xc)?,
            View::new(&ac)?,
            View::new(&bc)?,
            View::new(&gc)?,
        );
        let (xs, as_, bs, gs) = (xv.slice()?, av.slice()?, bv.slice()?, gv.slice()?);
        let (r, inp) = a.dims2()?;
        let out = bm.dim(0)?;
        let rows = xs.len() / inp.max(1);
        let (xm, gm) = (Mat::rows(xs, rows, inp, inp), Mat::rows(gs, rows, out, out));
        let (am, bmm) = (Mat::rows(as_, r, inp, inp), Mat::rows(bs, out, r, r));
        let h = Self::down(xs, rows, inp, am);
        let dev = x.device();
        let db = if bm.track_op() {
            let mut db = vec![0f32; out * r];
            matmul_scaled_par(
                &mut db,
                r,
                gm.t(),
                Mat::rows(&h, rows, r, r),
                false,
                self.scale,
            );
            Some(Tensor::from_vec(db, (out, r), dev)?)
        } else {
            None
        };
        // The gradient at `x Aᵀ`: `scale · g B`, `(rows, r)`.
        let mut gh = vec![0f32; rows * r];
        matmul_scaled_par(&mut gh, r, gm, bmm, false, self.scale);
        let ghm = Mat::rows(&gh, rows, r, r);
        let da = if a.track_op() {
            let mut da = vec![0f32; r * inp];
            matmul_par(&mut da, inp, ghm.t(), xm, false);
            Some(Tensor::from_vec(da, (r, inp), dev)?)
        } else {
            None
        };
        let dx = if x.track_op() {
            let mut dx = vec![0f32; rows * inp];
            with_mat(&self.weight, |w| matmul_par(&mut dx, inp, gm, w, false))?;
            matmul_par(&mut dx, inp, ghm, am, true);
            Some(Tensor::from_vec(dx, x.shape(), dev)?)
        } else {
            None
        };
        Ok((dx, da, db))
    }
}

/// A frozen projection `x Wᵀ + b` with a LoRA update `scale · (x Aᵀ) Bᵀ`, for
/// `A (r, in)` and `B (out, r)`, giving `(.., out)`.
///
/// Fused when the base is frozen (neither `W` nor `b` tracked); gradients reach `x`, `A`
/// and `B` where tracked.
pub fn lora_linear(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    a: &Tensor,
    bm: &Tensor,
    scale: f64,
) -> candle_core::Result<Tensor> {
    let mut ts = vec![x, w, a, bm];
    ts.extend(b);
    let frozen = !w.track_op() && b.is_none_or(|b| !b.track_op());
    if fusable(&ts) && frozen && w.rank() == 2 && a.rank() == 2 && bm.rank() == 2 {
        return x.contiguous()?.apply_op3(
            &a.contiguous()?,
            &bm.contiguous()?,
            Lora {
                weight: w.clone(),
                bias: b.cloned(),
                scale: scale as f32,
            },
        );
    }
    linear(x, w, b)? + lora_delta(x, a, bm, scale)?
}

/// The adapter's term alone, `scale · (x Aᵀ) Bᵀ`, in `x`'s dtype: adapters are f32
/// variables (their own master copy), cast for bf16 activations with the gradient flowing
/// back through the cast (a no-op for f32).
pub(crate) fn lora_delta(
    x: &Tensor,
    a: &Tensor,
    bm: &Tensor,
    scale: f64,
) -> candle_core::Result<Tensor> {
    let (a, bm) = (a.to_dtype(x.dtype())?, bm.to_dtype(x.dtype())?);
    linear(&linear(x, &a, None)?, &bm, None)? * scale
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;
    use crate::ops::tests::{assert_close, assert_same_function, sample};

    #[test]
    fn linear_matches_the_composed_form_in_value_and_gradient() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&sample(&[3, 7, 24], 1, &dev)?)?;
        // A transposed view, like GPT-2's Conv1D weights.
        let w_store = Var::from_tensor(&sample(&[24, 40], 2, &dev)?)?;
        let b = Var::from_tensor(&sample(&[40], 3, &dev)?)?;
        let up = sample(&[3, 7, 40], 4, &dev)?;
        let w = w_store.as_tensor().t()?;
        for bias in [Some(b.as_tensor()), None] {
            let fused = linear(&x, &w, bias)?;
            let slow = composed(&x, &w, bias)?;
            let vars = [&x, &w_store, &b];
            let vars = &vars[..2 + bias.is_some() as usize];
            assert_same_function(&fused, &slow, &up, vars, 1e-5, 1e-5)?;
        }
        Ok(())
    }

    #[test]
    fn a_frozen_weight_gets_no_gradient_and_the_input_still_does() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&sample(&[5, 16], 5, &dev)?)?;
        let w = sample(&[8, 16], 6, &dev)?;
        let store = linear(&x, &w, None)?.sum_all()?.backward()?;
        assert!(store.get(&w).is_none());
        let want = w.sum(0)?.unsqueeze(0)?.broadcast_as((5, 16))?;
        assert_close(
            store.get(x.as_tensor()).expect("dx"),
            &want.contiguous()?,
            1e-5,
        )
    }

    #[test]
    fn lora_matches_the_composed_form_in_value_and_gradient() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&sample(&[2, 9, 32], 7, &dev)?)?;
        let w = sample(&[32, 48], 8, &dev)?.t()?;
        let bias = sample(&[48], 9, &dev)?;
        let a = Var::from_tensor(&sample(&[4, 32], 10, &dev)?)?;
        let bm = Var::from_tensor(&sample(&[48, 4], 11, &dev)?)?;
        let up = sample(&[2, 9, 48], 12, &dev)?;
        for b in [Some(&bias), None] {
            let fused = lora_linear(&x, &w, b, &a, &bm, 2.5)?;
            let delta = x
                .reshape((18, 32))?
                .matmul(&a.t()?)?
                .matmul(&bm.t()?)?
                .reshape((2, 9, 48))?;
            let slow = (composed(&x, &w, b)? + (delta * 2.5)?)?;
            assert_same_function(&fused, &slow, &up, &[&x, &a, &bm], 1e-4, 1e-4)?;
        }
        Ok(())
    }

    #[test]
    fn a_wrong_input_width_is_an_error() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let x = sample(&[4, 10], 13, &dev)?;
        let w = sample(&[6, 12], 14, &dev)?;
        let err = linear(&x, &w, None).expect_err("width mismatch");
        assert!(err.to_string().contains("input width 10"), "{err}");
        Ok(())
    }
}
