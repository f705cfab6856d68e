//! The attention softmax: scale, causal mask, key (padding) mask and softmax in one op.
//!
//! Scores are `(b, h, t, k)` with `k = past + t` (queries are the last `t` positions).
//! Query `i` may attend key `j` when `j ≤ past + i` and the key is not padding. Masked
//! entries are exactly 0 and are never exponentiated, which also skips the upper
//! triangle's work. A query with no visible key (a padding row) gets all zeros.
//! The backward pass needs only the output: `dx = scale · p ⊙ (dp − Σ p ⊙ dp)`.

use candle_core::{CpuStorage, CustomOp1, D, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{View, f32_slice, fastmath, fusable, rows_per_task};

struct MaskedSoftmax {
    scale: f32,
    /// `(b, k)` with 1 for real keys; `None`: every key is real.
    key_mask: Option<Vec<f32>>,
}

impl MaskedSoftmax {
    /// The number of leading keys row `r` may see (causal bound), given the shape.
    fn visible(&self, r: usize, t: usize, k: usize) -> usize {
        (k - t) + r % t + 1
    }
}

/// In place: `row[..vis]` becomes `softmax(scale · row)` over the keys that are visible
/// (`j < vis`) and real (`mask[j] != 0`); every other entry becomes 0, and so does a row
/// with no such key.
pub(super) fn softmax_row(row: &mut [f32], vis: usize, mask: Option<&[f32]>, scale: f32) {
    let (head, tail) = row.split_at_mut(vis);
    tail.fill(0.0);
    let max = match mask {
        None => fastmath::max(head),
        Some(m) => head
            .iter()
            .zip(m)
            .filter(|(_, m)| **m != 0.0)
            .fold(f32::NEG_INFINITY, |a, (&v, _)| a.max(v)),
    };
    if max == f32::NEG_INFINITY {
        head.fill(0.0); // no visible key: a padding query
        return;
    }
    for o in head.iter_mut() {
        *o = fastmath::exp((*o - max) * scale);
    }
    if let Some(m) = mask {
        for (o, &m) in head.iter_mut().zip(m) {
            *o *= m;
        }
    }
    let sum = fastmath::sum(head);
    let inv = 1.0 / sum;
    head.iter_mut().for_each(|o| *o *= inv);
}

/// In place: `g` (the output's gradient on entry) becomes the scores' gradient
/// `scale · p ⊙ (g − Σ p ⊙ g)` over the first `vis` keys, 0 after them.
pub(super) fn softmax_row_bwd(g: &mut [f32], p: &[f32], vis: usize, scale: f32) {
    let (head, tail) = g.split_at_mut(vis);
    tail.fill(0.0);
    let p = &p[..vis];
    let dot = fastmath::dot(p, head);
    for (d, &p) in head.iter_mut().zip(p) {
        *d = scale * p * (*d - dot);
    }
}

impl CustomOp1 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "fused-masked-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, self.name())?;
        let (_, h, t, k) = l.shape().dims4()?;
        if t > k {
            candle_core::bail!("{}: {t} queries but {k} keys", self.name())
        }
        let mut y = x.to_vec();
        let rows = rows_per_task(x.len() / k, k);
        y.par_chunks_mut(rows * k).enumerate().for_each(|(c, y)| {
            for (n, yr) in y.chunks_exact_mut(k).enumerate() {
                let r = c * rows + n;
                let vis = self.visible(r, t, k);
                let mask = self
                    .key_mask
                    .as_ref()
                    .map(|m| &m[(r / (h * t)) * k..][..vis]);
                softmax_row(yr, vis, mask, self.scale);
            }
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (_, _, t, k) = x.dims4()?;
        let (pc, gc) = (res.contiguous()?, grad.contiguous()?);
        let (pv, gv) = (View::new(&pc)?, View::new(&gc)?);
        let ps = pv.slice()?;
        let mut dx = gv.slice()?.to_vec();
        let rows = rows_per_task(ps.len() / k, k);
        dx.par_chunks_mut(rows * k)
            .zip(ps.par_chunks(rows * k))
            .enumerate()
            .for_each(|(c, (dx, p))| {
                for (n, (dr, pr)) in dx.chunks_exact_mut(k).zip(p.chunks_exact(k)).enumerate() {
                    softmax_row_bwd(dr, pr, self.visible(c * rows + n, t, k), self.scale);
                }
            });
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

/// `softmax(scale · x)` over the last dimension of `(b, h, t, k)` scores, causally masked
/// (query `i` sees keys `0..=k−t+i`) and, with `key_mask (b, k)`, never attending padding.
pub fn masked_softmax(
    x: &Tensor,
    scale: f64,
    key_mask: Option<&Tensor>,
) -> candle_core::Result<Tensor> {
    let (b, _, t, k) = x.dims4()?;
    if fusable(&[x]) {
        let key_mask = match key_mask {
            Some(m) => Some(
                m.to_dtype(candle_core::DType::F32)?
                    .reshape((b, k))?
                    .flatten_all()?
                    .to_vec1()?,
            ),
            None => None,
        };
        return x.contiguous()?.apply_op1(MaskedSoftmax {
            scale: scale as f32,
            key_mask,
        });
    }
    // Composed form: an additive −1e9 bias where a key is not visible, computed in f32 at
    // least (as PyTorch's autocast does): a bf16 max/exp/sum loses the small weights.
    let dtype = x.dtype();
    let x = &x.to_dtype(if dtype == DType::F64 {
        DType::F64
    } else {
        DType::F32
    })?;
    let dev = x.device();
    let causal: Vec<f32> = (0..t)
        .flat_map(|i| (0..k).map(move |j| if j <= k - t + i { 1.0 } else { 0.0 }))
        .collect();
    let allowed = Tensor::from_vec(causal, (1, 1, t, k), dev)?.to_dtype(x.dtype())?;
    let allowed = match key_mask {
        None => allowed.broadcast_as((b, 1, t, k))?,
        Some(m) => allowed.broadcast_mul(&m.to_dtype(x.dtype())?.reshape((b, 1, 1, k))?)?,
    };
    let bias = ((&allowed - 1.0)? * 1e9)?;
    let p = candle_nn::ops::softmax(&(x * scale)?.broadcast_add(&bias)?, D::Minus1)?;
    // Rows with no visible key: zero, as in the fused kernel.
    let any = allowed.max_keepdim(D::Minus1)?;
    p.broadcast_mul(&any)?.to_dtype(dtype)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;
    use crate::ops::tests::{assert_same_function, sample};

    /// Reference: the composed form on f64, where the fused kernel does not apply.
    fn reference(x: &Tensor, scale: f64, m: Option<&Tensor>) -> candle_core::Result<Tensor> {
        masked_softmax(&x.to_dtype(candle_core::DType::F64)?, scale, m)?
            .to_dtype(candle_core::DType::F32)
    }

    #[test]
    fn masked_softmax_matches_the_composed_form() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        // 3 queries over 5 keys (2 cached), row 1 left-padded by 3 keys: its first query
        // sees only padding and must come out as zeros.
        let x = Var::from_tensor(&(sample(&[2, 2, 3, 5], 21, &dev)? * 5.0)?)?;
        let mask = Tensor::new(&[[1f32, 1., 1., 1., 1.], [0., 0., 0., 1., 1.]], &dev)?;
        let up = sample(&[2, 2, 3, 5], 22, &dev)?;
        for m in [None, Some(&mask)] {
            let fused = masked_softmax(&x, 0.5, m)?;
            let slow = reference(&x, 0.5, m)?;
            assert_same_function(&fused, &slow, &up, &[&x], 1e-6, 1e-6)?;
        }
        let p: Vec<Vec<Vec<Vec<f32>>>> = (0..2)
            .map(|bi| {
                masked_softmax(&x, 0.5, Some(&mask))?
                    .get(bi)?
                    .to_vec3::<f32>()
            })
            .collect::<candle_core::Result<_>>()?;
        // Causal: query 0 sees keys 0..=2, never 3 or 4.
        assert_eq!(&p[0][0][0][3..], &[0.0, 0.0]);
        // Padding query: all zero; padding keys: zero weight.
        assert!(p[1][1][0].iter().all(|&v| v == 0.0));
        assert_eq!(&p[1][0][1][..3], &[0.0, 0.0, 0.0]);
        let s: f32 = p[1][0][2].iter().sum();
        assert!((s - 1.0).abs() < 1e-6);
        Ok(())
    }
}
