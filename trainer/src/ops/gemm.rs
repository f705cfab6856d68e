//! A bounds-checked matrix product on strided f32 views, over the `gemm` crate.
//!
//! `gemm` is the kernel library candle's CPU matmul already runs on (so it adds no
//! code to the build); calling it directly lets the fused attention multiply strided
//! views of its inputs, one head at a time, without building a tensor per head.

/// A read-only strided matrix: element `(i, j)` is `data[i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub(crate) data: &'a [f32],
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) rs: usize,
    pub(crate) cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `rows × cols` matrix whose rows are `rs` apart.
    pub(crate) fn rows(data: &'a [f32], rows: usize, cols: usize, rs: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs,
            cs: 1,
        }
    }

    /// The transpose (a view).
    pub(crate) fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

    /// Whether every element lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// `dst (m × n, row-major, rows dst_rs apart) = [dst +] a · b`, single-threaded (callers
/// parallelise over heads).
///
/// # Panics
/// When the shapes disagree or a view reaches outside its slice.
pub(super) fn matmul(dst: &mut [f32], dst_rs: usize, a: Mat<'_>, b: Mat<'_>, accumulate: bool) {
    product(dst, dst_rs, a, b, accumulate, 1.0, gemm::Parallelism::None);
}

/// [`matmul`] on all cores (rayon), for products large enough to split.
pub(crate) fn matmul_par(dst: &mut [f32], dst_rs: usize, a: Mat<'_>, b: Mat<'_>, accumulate: bool) {
    product(dst, dst_rs, a, b, accumulate, 1.0, all_cores());
}

/// `dst = [dst +] scale · a · b` on all cores.
pub(crate) fn matmul_scaled_par(
    dst: &mut [f32],
    dst_rs: usize,
    a: Mat<'_>,
    b: Mat<'_>,
    accumulate: bool,
    scale: f32,
) {
    product(dst, dst_rs, a, b, accumulate, scale, all_cores());
}

impl<'a> Mat<'a> {
    /// A 2-D CPU f32 storage of any strides, as `CustomOp::cpu_fwd` receives it.
    pub(crate) fn of_storage(
        storage: &'a candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<Self> {
        let candle_core::CpuStorage::F32(data) = storage else {
            candle_core::bail!("matmul: expects an f32 matrix")
        };
        let (rows, cols) = layout.shape().dims2()?;
        let m = Mat {
            data: data.get(layout.start_offset()..).unwrap_or_default(),
            rows,
            cols,
            rs: layout.stride()[0],
            cs: layout.stride()[1],
        };
        if !m.in_bounds() {
            candle_core::bail!("matmul: a ({rows}, {cols}) view reaches past its storage")
        }
        Ok(m)
    }
}

/// Runs `f` on a 2-D CPU f32 tensor of any strides, viewed as a [`Mat`] (no copy).
pub(crate) fn with_mat<R>(
    t: &candle_core::Tensor,
    f: impl FnOnce(Mat<'_>) -> R,
) -> candle_core::Result<R> {
    let (guard, layout) = t.storage_and_layout();
    let candle_core::Storage::Cpu(storage) = &*guard else {
        candle_core::bail!("matmul: expects a CPU tensor")
    };
    Ok(f(Mat::of_storage(storage, layout)?))
}

fn all_cores() -> gemm::Parallelism {
    match rayon::current_num_threads() {
        0 | 1 => gemm::Parallelism::None,
        n => gemm::Parallelism::Rayon(n),
    }
}

#[allow(
    unsafe_code,
    reason = "gemm's entry point takes raw pointers; the views are bounds-checked here"
)]
fn product(
    dst: &mut [f32],
    dst_rs: usize,
    a: Mat<'_>,
    b: Mat<'_>,
    accumulate: bool,
    scale: f32,
    parallelism: gemm::Parallelism,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "inner dimensions differ");
    let out = Mat::rows(dst, m, n, dst_rs);
    assert!(
        a.in_bounds() && b.in_bounds() && out.in_bounds(),
        "matrix view out of bounds"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                dst[i * dst_rs..i * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: every element gemm reads or writes lies inside its slice (checked above);
    // `dst` is borrowed mutably, so it cannot overlap `a` or `b`; strides fit in isize
    // because the offsets they produce index existing slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0f32,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strided_products_equal_the_naive_ones() {
        // a: 3×4 inside rows of 6; b: 4×2 given as the transpose of a 2×4 block.
        let a_data: Vec<f32> = (0..18).map(|i| i as f32 * 0.5 - 3.0).collect();
        let bt_data: Vec<f32> = (0..8).map(|i| (i as f32).sin()).collect();
        let a = Mat::rows(&a_data, 3, 4, 6);
        let b = Mat::rows(&bt_data, 2, 4, 4).t();
        let mut dst = vec![1.0f32; 3 * 5];
        matmul(&mut dst, 5, a, b, true);
        for i in 0..3 {
            for j in 0..2 {
                let want: f32 = 1.0
                    + (0..4)
                        .map(|p| a_data[i * 6 + p] * bt_data[j * 4 + p])
                        .sum::<f32>();
                assert!((dst[i * 5 + j] - want).abs() < 1e-5);
            }
            // Columns outside the product are untouched.
            assert_eq!(&dst[i * 5 + 2..i * 5 + 5], &[1.0, 1.0, 1.0]);
        }
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn a_view_past_its_slice_panics() {
        let a = vec![0f32; 5];
        let mut dst = vec![0f32; 4];
        matmul(
            &mut dst,
            2,
            Mat::rows(&a, 2, 3, 3),
            Mat::rows(&a, 3, 2, 1),
            false,
        );
    }
}
