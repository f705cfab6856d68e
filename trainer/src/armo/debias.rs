//! Verbosity debiasing: how much of the verbosity reward to subtract from each other
//! attribute.
//!
//! On a reference set of probe rewards `r` (rows × attributes), for each attribute j other
//! than verbosity v, λ_j is the smallest value of [`LAMBDAS`] (the grid of ArmoRM's stage-2
//! script) for which Spearman(r_j − λ_j·r_v, r_v) ≤ the threshold, and 1 if none is. The
//! debiased rewards are r̃_j = r_j − λ_j·r_v (r̃_v = r_v): `r·Tᵀ` with `T = I` whose row j has
//! −λ_j in column v.
//!
//! [`spearman`] ranks with average ranks for ties and takes Pearson's correlation of the
//! ranks, as `scipy.stats.spearmanr`; it is NaN when either side is constant (scipy's
//! answer too), which never passes the threshold. Both are pinned to scipy in
//! `trainer/tests/armo_reference.rs`.

/// The λ grid: 0, 0.01, then 0.025 to 0.95 in steps of 0.025.
pub const LAMBDAS: [f64; 40] = [
    0.0, 0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.225, 0.25, 0.275, 0.3, 0.325,
    0.35, 0.375, 0.4, 0.425, 0.45, 0.475, 0.5, 0.525, 0.55, 0.575, 0.6, 0.625, 0.65, 0.675, 0.7,
    0.725, 0.75, 0.775, 0.8, 0.825, 0.85, 0.875, 0.9, 0.925, 0.95,
];

/// The correlation threshold.
pub const THRESHOLD: f64 = 0.03;

/// 1-based ranks of `x`, ties sharing their average rank (scipy's `rankdata(method="average")`).
pub fn average_ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; x.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        // Positions i..=j (0-based) hold ranks i+1..=j+1; their mean is (i + j)/2 + 1.
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = r;
        }
        i = j + 1;
    }
    ranks
}

/// Pearson's correlation; NaN when either side has no spread.
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa == 0.0 || sbb == 0.0 {
        return f64::NAN;
    }
    (sab / (saa.sqrt() * sbb.sqrt())).clamp(-1.0, 1.0)
}

/// Spearman's rank correlation with average ranks for ties.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    pearson(&average_ranks(a), &average_ranks(b))
}

/// One attribute's penalty.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Penalty {
    /// λ_j.
    pub lambda: f64,
    /// Spearman(r_j − λ_j·r_v, r_v) at that λ (at λ = 1 when no grid value passed).
    pub spearman: f64,
    /// Whether a grid value met the threshold (else λ = 1).
    pub met: bool,
}

/// The penalty of attribute values `r_j` against verbosity values `r_v`.
pub fn penalty(r_j: &[f64], r_v: &[f64], threshold: f64) -> Penalty {
    let at = |lambda: f64| {
        let d: Vec<f64> = r_j.iter().zip(r_v).map(|(j, v)| j - lambda * v).collect();
        spearman(&d, r_v)
    };
    for &lambda in &LAMBDAS {
        let rho = at(lambda);
        if rho <= threshold {
            return Penalty {
                lambda,
                spearman: rho,
                met: true,
            };
        }
    }
    Penalty {
        lambda: 1.0,
        spearman: at(1.0),
        met: false,
    }
}

/// λ for every attribute of `rewards` (one `Vec` per attribute, all of the same length);
/// the verbosity attribute's own entry is 0 (it is left as it is).
pub fn penalties(rewards: &[Vec<f64>], verbosity: usize, threshold: f64) -> Vec<Penalty> {
    rewards
        .iter()
        .enumerate()
        .map(|(j, r)| {
            if j == verbosity {
                Penalty {
                    lambda: 0.0,
                    spearman: f64::NAN,
                    met: true,
                }
            } else {
                penalty(r, &rewards[verbosity], threshold)
            }
        })
        .collect()
}

/// The debiased rewards of one row: r̃_j = r_j − λ_j·r_v.
pub fn debias_row(r: &[f64], lambdas: &[f64], verbosity: usize) -> Vec<f64> {
    r.iter()
        .zip(lambdas)
        .enumerate()
        .map(|(j, (x, l))| {
            if j == verbosity {
                *x
            } else {
                x - l * r[verbosity]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_share_their_average_rank() {
        assert_eq!(
            average_ranks(&[3.0, 1.0, 3.0, 2.0, 3.0]),
            [4.0, 1.0, 4.0, 2.0, 4.0]
        );
        assert!((spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 25.0]) - 1.0).abs() < 1e-15);
        assert!(spearman(&[1.0, 1.0], &[1.0, 2.0]).is_nan());
    }

    #[test]
    fn the_smallest_passing_lambda_is_chosen_and_one_when_none_passes() {
        // r_j = r_v + noise: λ must remove most of r_v before the rank correlation drops.
        let r_v: Vec<f64> = (0..50).map(|i| i as f64).collect();
        let noise: Vec<f64> = (0..50).map(|i| ((i * 37) % 50) as f64 - 25.0).collect();
        let r_j: Vec<f64> = r_v.iter().zip(&noise).map(|(v, n)| v + n).collect();
        let p = penalty(&r_j, &r_v, THRESHOLD);
        assert!(p.met && p.lambda > 0.0 && p.spearman <= THRESHOLD, "{p:?}");
        let i = LAMBDAS
            .iter()
            .position(|&l| l == p.lambda)
            .expect("on the grid");
        let prev: Vec<f64> = r_j
            .iter()
            .zip(&r_v)
            .map(|(j, v)| j - LAMBDAS[i - 1] * v)
            .collect();
        assert!(spearman(&prev, &r_v) > THRESHOLD, "the previous λ fails");
        // r_j = 2·r_v stays perfectly correlated for every λ < 2.
        let doubled: Vec<f64> = r_v.iter().map(|v| 2.0 * v).collect();
        let p = penalty(&doubled, &r_v, THRESHOLD);
        assert_eq!((p.lambda, p.met), (1.0, false));
        assert_eq!(
            debias_row(&[5.0, 2.0, 1.0], &[0.5, 0.0, 1.0], 1),
            [4.0, 2.0, -1.0]
        );
    }
}
