//! Activations: GELU in its tanh form (GPT-2's `gelu_new`) and SwiGLU's `silu(g) · u`.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{View, f32_slice, fastmath, fusable};

/// Elements per rayon task.
const CHUNK: usize = 16_384;
/// √(2/π).
const C: f32 = 0.797_884_6;
const K: f32 = 0.044_715;

struct GeluTanh;

impl CustomOp1 for GeluTanh {
    fn name(&self) -> &'static str {
        "fused-gelu-tanh"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, self.name())?;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(y, x)| {
                for (o, &v) in y.iter_mut().zip(x) {
                    *o = 0.5 * v * (1.0 + fastmath::tanh(C * (v + K * v * v * v)));
                }
            });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (xc, gc) = (x.contiguous()?, grad.contiguous()?);
        let (xv, gv) = (View::new(&xc)?, View::new(&gc)?);
        let (xs, gs) = (xv.slice()?, gv.slice()?);
        let mut dx = vec![0f32; xs.len()];
        dx.par_chunks_mut(CHUNK)
            .zip(xs.par_chunks(CHUNK))
            .zip(gs.par_chunks(CHUNK))
            .for_each(|((dx, x), g)| {
                for ((o, &v), &g) in dx.iter_mut().zip(x).zip(g) {
                    let t = fastmath::tanh(C * (v + K * v * v * v));
                    let dinner = C * (1.0 + 3.0 * K * v * v);
                    *o = g * (0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * dinner);
                }
            });
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

/// GELU, tanh approximation: `½x(1 + tanh(√(2/π)(x + 0.044715x³)))`.
pub fn gelu_tanh(x: &Tensor) -> candle_core::Result<Tensor> {
    if fusable(&[x]) {
        x.contiguous()?.apply_op1(GeluTanh)
    } else {
        x.gelu()
    }
}

struct SiluMul;

#[inline(always)]
fn sigmoid(g: f32) -> f32 {
    1.0 / (1.0 + fastmath::exp(-g))
}

impl CustomOp2 for SiluMul {
    fn name(&self) -> &'static str {
        "fused-silu-mul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = f32_slice(s1, l1, self.name())?;
        let u = f32_slice(s2, l2, self.name())?;
        if l1.shape() != l2.shape() {
            candle_core::bail!(
                "{}: shapes {:?} and {:?} differ",
                self.name(),
                l1.shape(),
                l2.shape()
            )
        }
        let mut y = vec![0f32; g.len()];
        y.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .zip(u.par_chunks(CHUNK))
            .for_each(|((y, g), u)| {
                for ((o, &g), &u) in y.iter_mut().zip(g).zip(u) {
                    *o = g * sigmoid(g) * u;
                }
            });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        g: &Tensor,
        u: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (gc, uc, dc) = (g.contiguous()?, u.contiguous()?, grad.contiguous()?);
        let (gv, uv, dv) = (View::new(&gc)?, View::new(&uc)?, View::new(&dc)?);
        let (gs, us, ds) = (gv.slice()?, uv.slice()?, dv.slice()?);
        let mut dg = vec![0f32; gs.len()];
        let mut du = vec![0f32; gs.len()];
        dg.par_chunks_mut(CHUNK)
            .zip(du.par_chunks_mut(CHUNK))
            .zip(gs.par_chunks(CHUNK))
            .zip(us.par_chunks(CHUNK).zip(ds.par_chunks(CHUNK)))
            .for_each(|(((dg, du), g), (u, d))| {
                for i in 0..g.len() {
                    let s = sigmoid(g[i]);
                    du[i] = d[i] * g[i] * s;
                    dg[i] = d[i] * u[i] * s * (1.0 + g[i] * (1.0 - s));
                }
            });
        let dev = g.device();
        Ok((
            Some(Tensor::from_vec(dg, g.shape(), dev)?),
            Some(Tensor::from_vec(du, u.shape(), dev)?),
        ))
    }
}

/// SwiGLU's gated product `silu(g) · u` for equal shapes.
pub fn silu_mul(g: &Tensor, u: &Tensor) -> candle_core::Result<Tensor> {
    if fusable(&[g, u]) && g.shape() == u.shape() {
        g.contiguous()?.apply_op2(&u.contiguous()?, SiluMul)
    } else {
        candle_nn::ops::silu(g)? * u
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;
    use crate::ops::tests::{assert_same_function, sample};

    #[test]
    fn gelu_matches_candle_in_value_and_gradient() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&(sample(&[4, 33, 70], 11, &dev)? * 4.0)?)?;
        let up = sample(&[4, 33, 70], 12, &dev)?;
        let fused = gelu_tanh(&x)?;
        let slow = x.gelu()?;
        assert_same_function(&fused, &slow, &up, &[&x], 2e-6, 2e-6)
    }

    #[test]
    fn silu_mul_matches_candle_in_value_and_gradient() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let g = Var::from_tensor(&(sample(&[3, 9, 40], 13, &dev)? * 6.0)?)?;
        let u = Var::from_tensor(&sample(&[3, 9, 40], 14, &dev)?)?;
        let up = sample(&[3, 9, 40], 15, &dev)?;
        let fused = silu_mul(&g, &u)?;
        let slow = (candle_nn::ops::silu(&g)? * u.as_tensor())?;
        assert_same_function(&fused, &slow, &up, &[&g, &u], 2e-6, 2e-6)?;
        Ok(())
    }
}
