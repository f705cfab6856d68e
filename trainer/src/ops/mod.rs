//! Fused CPU kernels with hand-written backward passes, for the training graph.
//!
//! candle builds layer norm, RMSNorm, GELU and a masked softmax out of half a dozen
//! elementwise ops each; in a training step every one of them allocates a fresh
//! activation-sized buffer forward and several more backward, and on this CPU that
//! allocation churn and the scalar `exp`/`tanh` calls cost more than the matmuls
//! (`trainer/PERFORMANCE.md`). Each op here does one pass forward and one backward,
//! vectorisable (`fastmath`) and parallel over rows on rayon's global pool, the one
//! candle's matmuls already run on (so the two take turns rather than compete).
//!
//! Every public function checks whether the fused kernel applies (CPU, f32) and
//! otherwise falls back to the composed, differentiable candle form, so CUDA and bf16
//! graphs still train. The unit tests compare values and gradients of both forms.
//!
//! - [`norm`]: layer norm (GPT-2) and RMSNorm (Llama family);
//! - [`act`]: GELU (tanh form) and SwiGLU's `silu(g) · u`;
//! - [`softmax`]: scaled, causally and key-masked softmax for attention scores (the KV-cache
//!   path of generation);
//! - [`linear`](mod@linear): projections `x Wᵀ + b`, with or without a LoRA update, each one op whose
//!   backward computes only the tracked gradients;
//! - [`attention`]: causal self-attention over a whole sequence (RoPE, scores, masks, softmax,
//!   values) as one op with its backward pass, for training and scoring.

pub mod act;
pub mod attention;
pub(crate) mod fastmath;
pub(crate) mod gemm;
pub mod linear;
pub mod norm;
pub mod softmax;

use candle_core::{CpuStorage, DType, Layout, Storage, StorageRef, Tensor};

pub use act::{gelu_tanh, silu_mul};
pub use linear::{linear, lora_linear};
pub use norm::{layer_norm, rms_norm};
pub use softmax::masked_softmax;

/// Rows per rayon task: large enough that a task's overhead is noise.
fn rows_per_task(rows: usize, width: usize) -> usize {
    (16_384 / width.max(1)).clamp(1, rows.max(1))
}

/// Sums per-task partial vectors in task order.
fn sum_in_order(parts: Vec<Vec<f32>>, d: usize) -> Vec<f32> {
    let mut out = vec![0f32; d];
    for p in parts {
        for (o, v) in out.iter_mut().zip(p) {
            *o += v;
        }
    }
    out
}

/// Whether the fused CPU kernels can take these tensors.
fn fusable(ts: &[&Tensor]) -> bool {
    ts.iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

/// A contiguous f32 slice of a CPU storage, as handed to `CustomOp::cpu_fwd`.
fn f32_slice<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: expects f32 tensors")
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: expects contiguous tensors")
    };
    Ok(&data[start..end])
}

/// Read access to a CPU f32 tensor's data inside a backward pass, without copying it.
pub(crate) struct View<'a> {
    guard: StorageRef<'a>,
    start: usize,
    end: usize,
}

impl<'a> View<'a> {
    /// `t` must be contiguous (callers pass `.contiguous()?` results).
    pub(crate) fn new(t: &'a Tensor) -> candle_core::Result<Self> {
        let (guard, layout) = t.storage_and_layout();
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("fused op: expects a contiguous tensor")
        };
        Ok(Self { guard, start, end })
    }

    pub(crate) fn slice(&self) -> candle_core::Result<&[f32]> {
        match &*self.guard {
            Storage::Cpu(CpuStorage::F32(v)) => Ok(&v[self.start..self.end]),
            _ => candle_core::bail!("fused op: expects a CPU f32 tensor"),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use candle_core::{Device, Tensor, Var};

    /// A deterministic, irregular test tensor with values in about [−1, 1].
    pub(crate) fn sample(dims: &[usize], seed: u32, dev: &Device) -> candle_core::Result<Tensor> {
        let n: usize = dims.iter().product();
        let v: Vec<f32> = (0..n as u32)
            .map(|i| {
                let h = (i ^ seed.wrapping_mul(0x9E37_79B9)).wrapping_mul(2_654_435_761);
                (h >> 8) as f32 / (1u32 << 23) as f32 - 1.0
            })
            .collect();
        Tensor::from_vec(v, dims, dev)
    }

    /// Gradients of `loss` for each variable, in order.
    pub(crate) fn grads(loss: &Tensor, vars: &[&Var]) -> candle_core::Result<Vec<Tensor>> {
        let store = loss.backward()?;
        vars.iter()
            .map(|v| {
                store
                    .get(v.as_tensor())
                    .cloned()
                    .ok_or_else(|| candle_core::Error::Msg("missing gradient".into()))
            })
            .collect()
    }

    /// Asserts that `fused` and `slow`, the same function of `vars`, agree in value within
    /// `tol` and in the gradients of `Σ up ⊙ output` within `grad_tol`.
    pub(crate) fn assert_same_function(
        fused: &Tensor,
        slow: &Tensor,
        up: &Tensor,
        vars: &[&Var],
        tol: f32,
        grad_tol: f32,
    ) -> candle_core::Result<()> {
        assert_close(fused, slow, tol)?;
        let gf = grads(&(fused * up)?.sum_all()?, vars)?;
        let gs = grads(&(slow * up)?.sum_all()?, vars)?;
        assert_eq!(gf.len(), vars.len());
        for (f, s) in gf.iter().zip(&gs) {
            assert_close(f, s, grad_tol)?;
        }
        Ok(())
    }

    /// Asserts `max |a − b| ≤ tol`, naming the difference.
    pub(crate) fn assert_close(a: &Tensor, b: &Tensor, tol: f32) -> candle_core::Result<()> {
        assert_eq!(a.shape(), b.shape());
        let d = (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        assert!(d <= tol, "max difference {d} > {tol}");
        Ok(())
    }
}
