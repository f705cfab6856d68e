//! `exp` and `tanh` in straight-line f32 arithmetic, so loops over slices vectorise.
//!
//! The standard library calls scalar libm for these, which the compiler cannot
//! vectorise; on this CPU that made GELU and softmax a tenth of a training step. The
//! polynomial is Cephes' `expf` (range reduction by ln 2 split in two constants, degree-5
//! minimax on [−ln2/2, ln2/2]); its error is within 2 ulp of the exact value over the
//! clamped range, which the tests check against `f32::exp`.

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split so that `n · LN2_HI` is exact for the `n` that occur.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding and subtracting 1.5 · 2²³ rounds to the nearest integer without a libm call.
const ROUND: f32 = 12_582_912.0;

/// `e^x`; inputs are clamped to [−87, 88], where the result is a normal f32.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n built from its exponent bits; n is in [−126, 127] after the clamp.
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `tanh(x) = 1 − 2 / (e^{2x} + 1)`; absolute error below 2e-7 (it loses relative
/// precision only where |tanh x| < 1e-7, which no caller here distinguishes).
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

/// Accumulator lanes for reductions: one AVX-512 register of f32.
const LANES: usize = 16;

/// `Σ f(i)` over `0..n` in [`LANES`] interleaved partial sums. A plain `sum()` is a
/// sequential chain the compiler may not reorder, so it stays scalar; the lanes make
/// the order explicit (and fixed, so results are reproducible) and let it vectorise.
#[inline(always)]
pub(crate) fn lane_sum(n: usize, f: impl Fn(usize) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let full = n - n % LANES;
    for i in (0..full).step_by(LANES) {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f(i + l);
        }
    }
    let tail: f32 = (full..n).map(&f).sum();
    acc.iter().sum::<f32>() + tail
}

/// `Σ xs`.
#[inline]
pub(crate) fn sum(xs: &[f32]) -> f32 {
    lane_sum(xs.len(), |i| xs[i])
}

/// `Σ a·b` over equal lengths.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let b = &b[..a.len()];
    lane_sum(a.len(), |i| a[i] * b[i])
}

/// `Σ e^(x − shift)`.
#[inline]
pub(crate) fn sum_exp(xs: &[f32], shift: f32) -> f32 {
    lane_sum(xs.len(), |i| exp(xs[i] - shift))
}

/// In place `x ← e^(x − shift)`, returning the sum of the results.
#[inline]
pub(crate) fn exp_in_place_sum(xs: &mut [f32], shift: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = xs.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c.iter_mut()) {
            *v = exp(*v - shift);
            *a += *v;
        }
    }
    let mut tail = 0f32;
    for v in chunks.into_remainder() {
        *v = exp(*v - shift);
        tail += *v;
    }
    acc.iter().sum::<f32>() + tail
}

/// The largest element (−∞ for an empty slice); NaNs are skipped.
#[inline]
pub(crate) fn max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            // A compare-and-select, not `f32::max`, so it maps onto one vector instruction.
            *a = if v > *a { v } else { *a };
        }
    }
    let m = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    acc.iter().fold(m, |m, &v| m.max(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_reductions_match_the_sequential_ones() {
        for n in [0, 1, 15, 16, 17, 100, 1000] {
            let xs: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let ys: Vec<f32> = (0..n).map(|i| ((i * 13 % 29) as f32) / 29.0).collect();
            let close = |a: f32, b: f32| (a - b).abs() <= 1e-4 * (1.0 + b.abs());
            assert!(close(sum(&xs), xs.iter().sum()), "sum, n {n}");
            assert!(close(
                dot(&xs, &ys),
                xs.iter().zip(&ys).map(|(a, b)| a * b).sum()
            ));
            let m = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(max(&xs), m, "max, n {n}");
            let se: f32 = xs.iter().map(|&x| (x - 1.0).exp()).sum();
            assert!(close(sum_exp(&xs, 1.0), se), "sum_exp, n {n}");
            let mut ex = xs.clone();
            assert_eq!(exp_in_place_sum(&mut ex, 1.0), sum_exp(&xs, 1.0), "n {n}");
            assert!(ex.iter().zip(&xs).all(|(e, x)| *e == exp(x - 1.0)));
        }
    }

    #[test]
    fn exp_is_within_two_ulp_of_libm() {
        let mut worst = 0u32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (a, b) = (exp(x), x.exp());
            worst = worst.max(a.to_bits().abs_diff(b.to_bits()));
            x += 0.000_731;
        }
        assert!(worst <= 2, "worst error {worst} ulp");
        assert_eq!(exp(-1000.0), (-87.0f32).exp());
        assert!(exp(0.0) == 1.0);
    }

    #[test]
    fn tanh_is_within_2e7_of_libm() {
        let mut worst = 0f32;
        let mut x = -20.0f32;
        while x < 20.0 {
            worst = worst.max((tanh(x) - x.tanh()).abs());
            x += 0.000_377;
        }
        assert!(worst < 2e-7, "worst error {worst}");
        assert_eq!(tanh(100.0), 1.0);
        assert_eq!(tanh(-100.0), -1.0);
    }
}
