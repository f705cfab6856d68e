//! Causal self-attention as one op: rotary embedding, `QKᵀ`, masks, softmax, `PV`, and
//! the whole backward pass, for a full sequence (training, scoring, prefill).
//!
//! Inputs stay in the projections' token-major layout (`(b, t, heads · head_dim)`, or
//! GPT-2's packed `(b, t, 3d)` straight out of `c_attn`), so no head transposes, no
//! `narrow` of the packed projection (whose backward would allocate three zero-padded
//! copies) and no repeated keys for grouped-query attention are ever materialised.
//! Work is split over (batch row, key/value head) pairs; each task runs the query heads
//! that share its key/value head, which is also what lets it sum their key and value
//! gradients without synchronisation.
//!
//! The backward pass recomputes the attention probabilities from `Q` and `K` instead of
//! keeping them, so memory stays linear in sequence length (PyTorch eager keeps a
//! `(b, h, t, t)` tensor per layer); recomputation repeats the forward arithmetic
//! exactly, so the probabilities are bit-identical to the forward ones.

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::gemm::{Mat, matmul};
use super::softmax::{softmax_row, softmax_row_bwd};
use super::{View, f32_slice};

/// Rotary tables, `(b, t, head_dim)` each, HF's rotate-half layout. Built once per forward
/// pass and shared by every layer (cloning shares the tables).
#[derive(Debug, Clone)]
pub struct Rope {
    cos: std::sync::Arc<[f32]>,
    sin: std::sync::Arc<[f32]>,
}

impl Rope {
    /// From `cos`/`sin` tensors of shape `(b, [1,] t, head_dim)`.
    pub fn new(cos: &Tensor, sin: &Tensor) -> candle_core::Result<Self> {
        let flat = |t: &Tensor| -> candle_core::Result<std::sync::Arc<[f32]>> {
            Ok(t.to_dtype(candle_core::DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?
                .into())
        };
        Ok(Self {
            cos: flat(cos)?,
            sin: flat(sin)?,
        })
    }
}

/// The problem's shape. Keys are the same `t` positions as the queries (no cache).
#[derive(Debug, Clone, Copy)]
struct Geom {
    b: usize,
    t: usize,
    h: usize,
    kvh: usize,
    hd: usize,
}

impl Geom {
    fn rep(&self) -> usize {
        self.h / self.kvh
    }
}

/// Where q, k or v live: head `n` of token `tok` in batch row `bi` starts at
/// `(bi·t + tok)·row + off + n·hd`.
#[derive(Clone, Copy)]
struct Part<'a> {
    data: &'a [f32],
    row: usize,
    off: usize,
}

impl<'a> Part<'a> {
    fn head(&self, g: &Geom, bi: usize, n: usize) -> Mat<'a> {
        Mat::rows(
            &self.data[bi * g.t * self.row + self.off + n * g.hd..],
            g.t,
            g.hd,
            self.row,
        )
    }
}

/// Copies one head into a contiguous `(t, hd)` buffer, rotating it when `rope` is given.
fn gather(dst: &mut [f32], src: Mat<'_>, rope: Option<&Rope>, g: &Geom, bi: usize) {
    let hd = g.hd;
    let half = hd / 2;
    for tok in 0..g.t {
        let x = &src.data[tok * src.rs..tok * src.rs + hd];
        let y = &mut dst[tok * hd..(tok + 1) * hd];
        match rope {
            None => y.copy_from_slice(x),
            Some(r) => {
                let base = (bi * g.t + tok) * hd;
                let (c, s) = (&r.cos[base..base + hd], &r.sin[base..base + hd]);
                for j in 0..half {
                    y[j] = x[j] * c[j] - x[j + half] * s[j];
                    y[j + half] = x[j + half] * c[j + half] + x[j] * s[j + half];
                }
            }
        }
    }
}

/// The transpose of [`gather`]'s rotation, in place on a `(t, hd)` gradient.
fn unrotate(buf: &mut [f32], rope: &Rope, g: &Geom, bi: usize) {
    let hd = g.hd;
    let half = hd / 2;
    for tok in 0..g.t {
        let base = (bi * g.t + tok) * hd;
        let (c, s) = (&rope.cos[base..base + hd], &rope.sin[base..base + hd]);
        let y = &mut buf[tok * hd..(tok + 1) * hd];
        for j in 0..half {
            let (a, b) = (y[j], y[j + half]);
            y[j] = a * c[j] + b * s[j + half];
            y[j + half] = b * c[j + half] - a * s[j];
        }
    }
}

/// Writes a `(t, hd)` block into head `n` of batch row `bi` of a token-major buffer.
fn scatter(dst: &mut [f32], row: usize, off: usize, g: &Geom, bi: usize, n: usize, src: &[f32]) {
    for tok in 0..g.t {
        let at = (bi * g.t + tok) * row + off + n * g.hd;
        dst[at..at + g.hd].copy_from_slice(&src[tok * g.hd..(tok + 1) * g.hd]);
    }
}

/// The fused computation, shared by the packed and the split entry points.
struct Core<'a> {
    g: Geom,
    scale: f32,
    key_mask: Option<&'a [f32]>,
    rope: Option<&'a Rope>,
}

impl Core<'_> {
    /// `P = softmax(scale · QKᵀ)` with masks, into `p (t, t)`.
    fn probs(&self, p: &mut [f32], q: &[f32], k: &[f32], bi: usize) {
        let (t, hd) = (self.g.t, self.g.hd);
        matmul(
            p,
            t,
            Mat::rows(q, t, hd, hd),
            Mat::rows(k, t, hd, hd).t(),
            false,
        );
        let mask = self.key_mask.map(|m| &m[bi * t..(bi + 1) * t]);
        for (i, row) in p.chunks_exact_mut(t).enumerate() {
            softmax_row(row, i + 1, mask, self.scale);
        }
    }

    /// A task's keys (rotated, contiguous `(t, hd)`) and values (a view of the input).
    fn key_value<'v>(&self, k: Part<'_>, v: Part<'v>, bi: usize, kv: usize) -> (Vec<f32>, Mat<'v>) {
        let g = &self.g;
        let mut kbuf = vec![0f32; g.t * g.hd];
        gather(&mut kbuf, k.head(g, bi, kv), self.rope, g, bi);
        (kbuf, v.head(g, bi, kv))
    }

    /// Per (batch row, kv head) task: the `rep` query heads' outputs, `(rep, t, hd)`.
    fn forward(&self, q: Part<'_>, k: Part<'_>, v: Part<'_>) -> Vec<Vec<f32>> {
        let g = self.g;
        (0..g.b * g.kvh)
            .into_par_iter()
            .map(|task| {
                let (bi, kv) = (task / g.kvh, task % g.kvh);
                let (t, hd) = (g.t, g.hd);
                let (kbuf, vmat) = self.key_value(k, v, bi, kv);
                let mut qbuf = vec![0f32; t * hd];
                let mut p = vec![0f32; t * t];
                let mut out = vec![0f32; g.rep() * t * hd];
                for (r, o) in out.chunks_exact_mut(t * hd).enumerate() {
                    gather(
                        &mut qbuf,
                        q.head(&g, bi, kv * g.rep() + r),
                        self.rope,
                        &g,
                        bi,
                    );
                    self.probs(&mut p, &qbuf, &kbuf, bi);
                    matmul(o, hd, Mat::rows(&p, t, t, t), vmat, false);
                }
                out
            })
            .collect()
    }

    /// Per task: `(dq (rep, t, hd), dk (t, hd), dv (t, hd))`, given `dout (b, t, h·hd)`.
    fn backward(
        &self,
        q: Part<'_>,
        k: Part<'_>,
        v: Part<'_>,
        dout: &[f32],
    ) -> Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> {
        let g = self.g;
        let dout = Part {
            data: dout,
            row: g.h * g.hd,
            off: 0,
        };
        (0..g.b * g.kvh)
            .into_par_iter()
            .map(|task| {
                let (bi, kv) = (task / g.kvh, task % g.kvh);
                let (t, hd) = (g.t, g.hd);
                let (kbuf, vmat) = self.key_value(k, v, bi, kv);
                let (mut dk, mut dv) = (vec![0f32; t * hd], vec![0f32; t * hd]);
                let mut dq = vec![0f32; g.rep() * t * hd];
                let mut qbuf = vec![0f32; t * hd];
                let (mut p, mut ds) = (vec![0f32; t * t], vec![0f32; t * t]);
                for (r, dqr) in dq.chunks_exact_mut(t * hd).enumerate() {
                    let n = kv * g.rep() + r;
                    gather(&mut qbuf, q.head(&g, bi, n), self.rope, &g, bi);
                    self.probs(&mut p, &qbuf, &kbuf, bi);
                    let d_o = dout.head(&g, bi, n);
                    let pm = Mat::rows(&p, t, t, t);
                    matmul(&mut ds, t, d_o, vmat.t(), false); // dP = dO Vᵀ
                    matmul(&mut dv, hd, pm.t(), d_o, true); // dV += Pᵀ dO
                    for (i, (dsr, pr)) in ds.chunks_exact_mut(t).zip(p.chunks_exact(t)).enumerate()
                    {
                        softmax_row_bwd(dsr, pr, i + 1, self.scale);
                    }
                    let dsm = Mat::rows(&ds, t, t, t);
                    matmul(dqr, hd, dsm, Mat::rows(&kbuf, t, hd, hd), false); // dQ = dS K
                    matmul(&mut dk, hd, dsm.t(), Mat::rows(&qbuf, t, hd, hd), true); // dK += dSᵀ Q
                    if let Some(rope) = self.rope {
                        unrotate(dqr, rope, &g, bi);
                    }
                }
                if let Some(rope) = self.rope {
                    unrotate(&mut dk, rope, &g, bi);
                }
                (dq, dk, dv)
            })
            .collect()
    }

    /// Assembles per-task forward outputs into `(b, t, h·hd)`.
    fn assemble(&self, parts: Vec<Vec<f32>>) -> Vec<f32> {
        let g = self.g;
        let mut out = vec![0f32; g.b * g.t * g.h * g.hd];
        for (task, heads) in parts.iter().enumerate() {
            let (bi, kv) = (task / g.kvh, task % g.kvh);
            for (r, o) in heads.chunks_exact(g.t * g.hd).enumerate() {
                scatter(&mut out, g.h * g.hd, 0, &g, bi, kv * g.rep() + r, o);
            }
        }
        out
    }
}

/// Validates the geometry against a token-major input's shape.
fn geometry(b: usize, t: usize, h: usize, kvh: usize, hd: usize) -> candle_core::Result<Geom> {
    if h == 0 || kvh == 0 || !h.is_multiple_of(kvh) || hd == 0 {
        candle_core::bail!("fused attention: {h} query heads, {kvh} key/value heads")
    }
    Ok(Geom { b, t, h, kvh, hd })
}

/// The key mask as `b·t` f32s.
fn mask_vec(mask: Option<&Tensor>, b: usize, t: usize) -> candle_core::Result<Option<Vec<f32>>> {
    mask.map(|m| {
        m.to_dtype(candle_core::DType::F32)?
            .reshape(b * t)?
            .to_vec1()
    })
    .transpose()
}

/// GPT-2's packed `(b, t, 3·h·hd)` projection → `(b, t, h·hd)`.
struct Packed {
    heads: usize,
    scale: f32,
    key_mask: Option<Vec<f32>>,
}

impl Packed {
    fn parts<'a>(&self, data: &'a [f32], hd: usize) -> (Part<'a>, Part<'a>, Part<'a>) {
        let w = 3 * self.heads * hd;
        let part = |i: usize| Part {
            data,
            row: w,
            off: i * self.heads * hd,
        };
        (part(0), part(1), part(2))
    }

    fn core(&self, b: usize, t: usize, w: usize) -> candle_core::Result<Core<'_>> {
        if !w.is_multiple_of(3 * self.heads) {
            candle_core::bail!("fused attention: width {w} is not 3 × {} heads", self.heads)
        }
        Ok(Core {
            g: geometry(b, t, self.heads, self.heads, w / (3 * self.heads))?,
            scale: self.scale,
            key_mask: self.key_mask.as_deref(),
            rope: None,
        })
    }
}

impl CustomOp1 for Packed {
    fn name(&self) -> &'static str {
        "fused-attention-packed"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l, self.name())?;
        let (b, t, w) = l.shape().dims3()?;
        let core = self.core(b, t, w)?;
        let (q, k, v) = self.parts(x, core.g.hd);
        let out = core.assemble(core.forward(q, k, v));
        Ok((CpuStorage::F32(out), Shape::from((b, t, w / 3))))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (b, t, w) = x.dims3()?;
        let core = self.core(b, t, w)?;
        let (xc, gc) = (x.contiguous()?, grad.contiguous()?);
        let (xv, gv) = (View::new(&xc)?, View::new(&gc)?);
        let (q, k, v) = self.parts(xv.slice()?, core.g.hd);
        let g = core.g;
        let mut dx = vec![0f32; b * t * w];
        for (task, (dq, dk, dv)) in core.backward(q, k, v, gv.slice()?).iter().enumerate() {
            let (bi, n) = (task / g.kvh, task % g.kvh);
            scatter(&mut dx, w, 0, &g, bi, n, dq);
            scatter(&mut dx, w, g.h * g.hd, &g, bi, n, dk);
            scatter(&mut dx, w, 2 * g.h * g.hd, &g, bi, n, dv);
        }
        Ok(Some(Tensor::from_vec(dx, x.shape(), x.device())?))
    }
}

/// Llama-style separate `q (b, t, h·hd)`, `k`/`v (b, t, kvh·hd)`, with rotary embedding.
struct Split {
    heads: usize,
    kv_heads: usize,
    scale: f32,
    key_mask: Option<Vec<f32>>,
    rope: Option<Rope>,
}

impl Split {
    fn core(&self, ql: &Layout, kl: &Layout, vl: &Layout) -> candle_core::Result<Core<'_>> {
        let (b, t, wq) = ql.shape().dims3()?;
        let (kb, kt, wk) = kl.shape().dims3()?;
        if (kb, kt, wk) != vl.shape().dims3()? || (kb, kt) != (b, t) {
            candle_core::bail!(
                "fused attention: q {:?}, k {:?}, v {:?} do not match",
                ql.shape(),
                kl.shape(),
                vl.shape()
            )
        }
        let hd = wq / self.heads.max(1);
        if hd * self.heads != wq || hd * self.kv_heads != wk || !hd.is_multiple_of(2) {
            candle_core::bail!(
                "fused attention: widths {wq}/{wk} for {}/{} heads",
                self.heads,
                self.kv_heads
            )
        }
        Ok(Core {
            g: geometry(b, t, self.heads, self.kv_heads, hd)?,
            scale: self.scale,
            key_mask: self.key_mask.as_deref(),
            rope: self.rope.as_ref(),
        })
    }
}

fn part(data: &[f32], row: usize) -> Part<'_> {
    Part { data, row, off: 0 }
}

impl CustomOp3 for Split {
    fn name(&self) -> &'static str {
        "fused-attention"
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
        let core = self.core(l1, l2, l3)?;
        let g = core.g;
        let (q, k, v) = (
            part(f32_slice(s1, l1, self.name())?, g.h * g.hd),
            part(f32_slice(s2, l2, self.name())?, g.kvh * g.hd),
            part(f32_slice(s3, l3, self.name())?, g.kvh * g.hd),
        );
        let out = core.assemble(core.forward(q, k, v));
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (qc, kc, vc, gc) = (
            q.contiguous()?,
            k.contiguous()?,
            v.contiguous()?,
            grad.contiguous()?,
        );
        let core = self.core(qc.layout(), kc.layout(), vc.layout())?;
        let g = core.g;
        let (qv, kv, vv, gv) = (
            View::new(&qc)?,
            View::new(&kc)?,
            View::new(&vc)?,
            View::new(&gc)?,
        );
        let (wq, wk) = (g.h * g.hd, g.kvh * g.hd);
        let tasks = core.backward(
            part(qv.slice()?, wq),
            part(kv.slice()?, wk),
            part(vv.slice()?, wk),
            gv.slice()?,
        );
        let mut dq = vec![0f32; g.b * g.t * wq];
        let (mut dk, mut dv) = (vec![0f32; g.b * g.t * wk], vec![0f32; g.b * g.t * wk]);
        for (task, (tq, tk, tv)) in tasks.iter().enumerate() {
            let (bi, n) = (task / g.kvh, task % g.kvh);
            for (r, block) in tq.chunks_exact(g.t * g.hd).enumerate() {
                scatter(&mut dq, wq, 0, &g, bi, n * g.rep() + r, block);
            }
            scatter(&mut dk, wk, 0, &g, bi, n, tk);
            scatter(&mut dv, wk, 0, &g, bi, n, tv);
        }
        let dev = q.device();
        Ok((
            Some(Tensor::from_vec(dq, q.shape(), dev)?),
            Some(Tensor::from_vec(dk, k.shape(), dev)?),
            Some(Tensor::from_vec(dv, v.shape(), dev)?),
        ))
    }
}

/// Whether the fused attention can take these inputs (CPU, f32).
pub fn fusable(ts: &[&Tensor]) -> bool {
    super::fusable(ts)
}

/// Causal attention over GPT-2's packed `qkv (b, t, 3·heads·hd)` → `(b, t, heads·hd)`,
/// never attending keys whose `key_mask (b, t)` is 0. CPU, f32 ([`fusable`]).
pub fn attention_packed(
    qkv: &Tensor,
    heads: usize,
    key_mask: Option<&Tensor>,
) -> candle_core::Result<Tensor> {
    let (b, t, w) = qkv.dims3()?;
    let hd = w / (3 * heads.max(1));
    qkv.contiguous()?.apply_op1(Packed {
        heads,
        scale: 1.0 / (hd as f32).sqrt(),
        key_mask: mask_vec(key_mask, b, t)?,
    })
}

/// Causal attention over `q (b, t, heads·hd)`, `k`/`v (b, t, kv_heads·hd)` with optional
/// rotary embedding applied to q and k → `(b, t, heads·hd)`. CPU, f32 ([`fusable`]).
pub fn attention_split(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    kv_heads: usize,
    key_mask: Option<&Tensor>,
    rope: Option<Rope>,
) -> candle_core::Result<Tensor> {
    let (b, t, w) = q.dims3()?;
    let hd = w / heads.max(1);
    q.contiguous()?.apply_op3(
        &k.contiguous()?,
        &v.contiguous()?,
        Split {
            heads,
            kv_heads,
            scale: 1.0 / (hd as f32).sqrt(),
            key_mask: mask_vec(key_mask, b, t)?,
            rope,
        },
    )
}

#[cfg(test)]
mod tests {
    use candle_core::{D, DType, Device, Var};

    use super::*;
    use crate::ops::tests::{assert_same_function, grads, sample};

    /// Composed reference in f64 (where no fused kernel applies): heads split and
    /// transposed, rotate-half RoPE on q and k, keys and values repeated per group,
    /// masked softmax, values.
    fn reference(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        (h, kvh): (usize, usize),
        mask: Option<&Tensor>,
        rope: Option<(&Tensor, &Tensor)>,
    ) -> candle_core::Result<Tensor> {
        let (b, t, w) = q.dims3()?;
        let hd = w / h;
        let heads = |x: &Tensor,
                     n: usize,
                     rope: Option<(&Tensor, &Tensor)>|
         -> candle_core::Result<Tensor> {
            let x = x
                .to_dtype(DType::F64)?
                .reshape((b, t, n, hd))?
                .transpose(1, 2)?;
            let x = match rope {
                None => x,
                Some((cos, sin)) => {
                    let (cos, sin) = (
                        cos.to_dtype(DType::F64)?.reshape((b, 1, t, hd))?,
                        sin.to_dtype(DType::F64)?.reshape((b, 1, t, hd))?,
                    );
                    let x1 = x.narrow(D::Minus1, 0, hd / 2)?;
                    let x2 = x.narrow(D::Minus1, hd / 2, hd / 2)?;
                    let rot = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
                    (x.broadcast_mul(&cos)? + rot.broadcast_mul(&sin)?)?
                }
            };
            let rep = h / n;
            x.unsqueeze(2)?
                .broadcast_as((b, n, rep, t, hd))?
                .reshape((b, h, t, hd))
        };
        let (qh, kh, vh) = (
            heads(q, h, rope)?,
            heads(k, kvh, rope)?,
            heads(v, kvh, None)?,
        );
        let scores = qh.matmul(&kh.t()?)?;
        let p = crate::ops::masked_softmax(&scores, 1.0 / (hd as f64).sqrt(), mask)?;
        p.matmul(&vh)?
            .transpose(1, 2)?
            .reshape((b, t, w))?
            .to_dtype(DType::F32)
    }

    #[test]
    fn split_attention_with_rope_gqa_and_padding_matches_the_composed_form()
    -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let (b, t, h, kvh, hd) = (2, 6, 4, 2, 8);
        let q = Var::from_tensor(&sample(&[b, t, h * hd], 31, &dev)?)?;
        let k = Var::from_tensor(&sample(&[b, t, kvh * hd], 32, &dev)?)?;
        let v = Var::from_tensor(&sample(&[b, t, kvh * hd], 33, &dev)?)?;
        let up = sample(&[b, t, h * hd], 34, &dev)?;
        let angles = (sample(&[b, t, hd], 35, &dev)? * 3.0)?;
        let (cos, sin) = (angles.cos()?, angles.sin()?);
        // Row 1 is left-padded by two tokens.
        let mask = Tensor::new(&[[1f32; 6], [0., 0., 1., 1., 1., 1.]], &dev)?;
        for m in [None, Some(&mask)] {
            let fused = attention_split(&q, &k, &v, h, kvh, m, Some(Rope::new(&cos, &sin)?))?;
            let slow = reference(&q, &k, &v, (h, kvh), m, Some((&cos, &sin)))?;
            assert_same_function(&fused, &slow, &up, &[&q, &k, &v], 1e-5, 1e-5)?;
        }
        Ok(())
    }

    #[test]
    fn packed_attention_matches_the_composed_form() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let (b, t, h, hd) = (3, 5, 2, 4);
        let qkv = Var::from_tensor(&(sample(&[b, t, 3 * h * hd], 41, &dev)? * 2.0)?)?;
        let up = sample(&[b, t, h * hd], 42, &dev)?;
        let mask = Tensor::new(
            &[[1f32; 5], [0., 1., 1., 1., 1.], [0., 0., 0., 1., 1.]],
            &dev,
        )?;
        for m in [None, Some(&mask)] {
            let fused = attention_packed(&qkv, h, m)?;
            let part = |i: usize| qkv.narrow(2, i * h * hd, h * hd);
            let slow = reference(&part(0)?, &part(1)?, &part(2)?, (h, h), m, None)?;
            assert_same_function(&fused, &slow, &up, &[&qkv], 1e-5, 1e-5)?;
        }
        Ok(())
    }

    #[test]
    fn a_padding_query_attends_nothing_and_gets_no_gradient() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let qkv = Var::from_tensor(&sample(&[1, 3, 12], 51, &dev)?)?;
        let mask = Tensor::new(&[[0f32, 1., 1.]], &dev)?;
        let y = attention_packed(&qkv, 1, Some(&mask))?;
        assert!(
            y.get(0)?
                .get(0)?
                .to_vec1::<f32>()?
                .iter()
                .all(|&v| v == 0.0)
        );
        // The padded key's value never reaches a real query: its gradient is zero.
        let g = grads(&y.sum_all()?, &[&qkv])?;
        let dv_pad = g[0].get(0)?.get(0)?.narrow(0, 8, 4)?.to_vec1::<f32>()?;
        assert_eq!(dv_pad, vec![0.0; 4]);
        Ok(())
    }
}
