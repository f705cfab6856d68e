//! Pareto fronts and hypervolume over several rewards.
//!
//! Each point holds one score per reward; [`Direction`] says, per reward,
//! whether higher or lower is better. A point *dominates* another when it is at
//! least as good in every coordinate and strictly better in at least one.
//!
//! - [`pareto_front`] returns the points no other point dominates. Duplicates
//!   do not dominate each other, so every copy of a non-dominated point is in
//!   the front (callers that want one representative deduplicate first).
//! - [`hypervolume`] is the exact volume of the region that the points dominate
//!   and that dominates the reference point: the union of the boxes between
//!   the reference and each point. A point that is not strictly better than the
//!   reference in every coordinate contributes nothing.
//!
//! Hypervolume uses a sweep for two dimensions (O(n log n)) and slicing along
//! the last coordinate for more (roughly O(n^(d−1)) time): exact and fast for
//! the tens of points a leaderboard has, not meant for thousands of points in
//! many dimensions.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, check_finite};

/// Whether larger or smaller values of a coordinate are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// Larger is better (most rewards, win rates).
    HigherIsBetter,
    /// Smaller is better (error rates, cost, length).
    LowerIsBetter,
}

impl Direction {
    /// The value mapped so that larger is better.
    fn orient(self, v: f64) -> f64 {
        match self {
            Direction::HigherIsBetter => v,
            Direction::LowerIsBetter => -v,
        }
    }
}

/// Indices (ascending) of the points that no other point dominates.
///
/// An empty `points` gives an empty front.
///
/// # Errors
/// [`Error::Empty`] when `directions` is empty, [`Error::DimensionMismatch`]
/// when a point's length differs from `directions.len()`, [`Error::NonFinite`]
/// for a NaN or infinite coordinate.
pub fn pareto_front(points: &[Vec<f64>], directions: &[Direction]) -> Result<Vec<usize>> {
    let oriented = orient_all(points, directions)?;
    let front = (0..oriented.len())
        .filter(|&i| {
            !oriented
                .iter()
                .enumerate()
                .any(|(j, q)| j != i && dominates(q, &oriented[i]))
        })
        .collect();
    Ok(front)
}

/// The exact hypervolume dominated by `points` relative to `reference`.
///
/// # Errors
/// As [`pareto_front`], plus [`Error::LengthMismatch`] when `reference` has a
/// different dimension from `directions` and [`Error::NonFinite`] for a
/// non-finite reference coordinate.
pub fn hypervolume(
    points: &[Vec<f64>],
    directions: &[Direction],
    reference: &[f64],
) -> Result<f64> {
    let oriented = orient_all(points, directions)?;
    if reference.len() != directions.len() {
        return Err(Error::LengthMismatch {
            what: "reference vs directions",
            left: reference.len(),
            right: directions.len(),
        });
    }
    check_finite("reference", reference)?;
    let origin: Vec<f64> = reference
        .iter()
        .zip(directions)
        .map(|(&v, d)| d.orient(v))
        .collect();
    // Shift so that the reference is the origin; keep points strictly inside.
    let boxes: Vec<Vec<f64>> = oriented
        .into_iter()
        .map(|p| {
            p.iter()
                .zip(&origin)
                .map(|(v, o)| v - o)
                .collect::<Vec<f64>>()
        })
        .filter(|p| p.iter().all(|&v| v > 0.0))
        .collect();
    Ok(union_volume(boxes, directions.len()))
}

/// Validates the points and maps them so that larger is better everywhere.
fn orient_all(points: &[Vec<f64>], directions: &[Direction]) -> Result<Vec<Vec<f64>>> {
    if directions.is_empty() {
        return Err(Error::Empty { what: "directions" });
    }
    points
        .iter()
        .enumerate()
        .map(|(index, p)| {
            if p.len() != directions.len() {
                return Err(Error::DimensionMismatch {
                    index,
                    expected: directions.len(),
                    found: p.len(),
                });
            }
            if let Some(k) = p.iter().position(|v| !v.is_finite()) {
                return Err(Error::NonFinite {
                    what: "point coordinate",
                    index,
                    value: p[k],
                });
            }
            Ok(p.iter()
                .zip(directions)
                .map(|(&v, d)| d.orient(v))
                .collect())
        })
        .collect()
}

/// Whether `p` dominates `q` (both oriented so larger is better).
fn dominates(p: &[f64], q: &[f64]) -> bool {
    p.iter().zip(q).all(|(a, b)| a >= b) && p.iter().zip(q).any(|(a, b)| a > b)
}

/// Volume of the union of the boxes [0, p] over `points` (positive coordinates;
/// only the first `d` coordinates of each point are used).
fn union_volume(mut points: Vec<Vec<f64>>, d: usize) -> f64 {
    if points.is_empty() {
        return 0.0;
    }
    match d {
        1 => points.iter().fold(0.0, |m, p| m.max(p[0])),
        2 => {
            // Sweep x from right to left, tracking the highest y seen so far.
            points.sort_by(|a, b| b[0].total_cmp(&a[0]));
            let mut area = 0.0;
            let mut top = 0.0_f64;
            for (i, p) in points.iter().enumerate() {
                top = top.max(p[1]);
                let next_x = points.get(i + 1).map_or(0.0, |q| q[0]);
                area += (p[0] - next_x) * top;
            }
            area
        }
        _ => {
            // Slice along the last coordinate, from the top down: between the
            // i-th and (i+1)-th highest values, the cross-section is the union
            // of the first i+1 points' boxes in the remaining d − 1 coordinates.
            let last = d - 1;
            points.sort_by(|a, b| b[last].total_cmp(&a[last]));
            let mut volume = 0.0;
            for i in 0..points.len() {
                let next = points.get(i + 1).map_or(0.0, |q| q[last]);
                let height = points[i][last] - next;
                if height > 0.0 {
                    let slice = non_dominated(&points[..=i], last);
                    volume += height * union_volume(slice, last);
                }
            }
            volume
        }
    }
}

/// The points of `points` not dominated in their first `d` coordinates (one
/// copy of duplicates), to keep the recursion small.
fn non_dominated(points: &[Vec<f64>], d: usize) -> Vec<Vec<f64>> {
    let mut kept: Vec<Vec<f64>> = Vec::new();
    for p in points {
        let p = &p[..d];
        if kept.iter().any(|k| k.iter().zip(p).all(|(a, b)| a >= b)) {
            continue;
        }
        kept.retain(|k| !k.iter().zip(p).all(|(a, b)| b >= a));
        kept.push(p.to_vec());
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    use Direction::{HigherIsBetter as Hi, LowerIsBetter as Lo};

    #[test]
    fn duplicates_of_a_front_point_are_all_kept() {
        let pts = vec![
            vec![1.0, 2.0],
            vec![1.0, 2.0],
            vec![0.5, 1.0],
            vec![2.0, 0.0],
        ];
        assert_eq!(pareto_front(&pts, &[Hi, Hi]).unwrap(), vec![0, 1, 3]);
    }

    #[test]
    fn a_point_equal_in_one_coordinate_and_worse_in_another_is_dominated() {
        let pts = vec![vec![1.0, 2.0], vec![1.0, 3.0]];
        assert_eq!(pareto_front(&pts, &[Hi, Hi]).unwrap(), vec![1]);
        assert_eq!(pareto_front(&pts, &[Hi, Lo]).unwrap(), vec![0]);
    }

    #[test]
    fn mismatched_directions_are_an_error() {
        let pts = vec![vec![1.0, 2.0], vec![1.0]];
        assert!(matches!(
            pareto_front(&pts, &[Hi, Hi]),
            Err(Error::DimensionMismatch {
                index: 1,
                expected: 2,
                found: 1
            })
        ));
        assert!(matches!(
            hypervolume(&[vec![1.0, 2.0]], &[Hi, Hi], &[0.0]),
            Err(Error::LengthMismatch { .. })
        ));
        assert!(matches!(pareto_front(&[], &[]), Err(Error::Empty { .. })));
        assert!(matches!(
            pareto_front(&[vec![f64::NAN]], &[Hi]),
            Err(Error::NonFinite { .. })
        ));
    }

    #[test]
    fn no_points_have_an_empty_front_and_zero_volume() {
        assert_eq!(pareto_front(&[], &[Hi, Lo]).unwrap(), Vec::<usize>::new());
        assert_eq!(hypervolume(&[], &[Hi, Lo], &[0.0, 0.0]).unwrap(), 0.0);
    }

    #[test]
    fn points_not_beating_the_reference_add_nothing() {
        let pts = vec![vec![2.0, 3.0], vec![5.0, 0.5], vec![-1.0, 10.0]];
        // Only the first point is strictly better than (0, 1) in both.
        assert_eq!(hypervolume(&pts, &[Hi, Hi], &[0.0, 1.0]).unwrap(), 4.0);
    }

    /// Union volume by inclusion–exclusion over all subsets (exponential; for
    /// checking only).
    fn inclusion_exclusion(boxes: &[Vec<f64>]) -> f64 {
        let mut total = 0.0;
        for mask in 1u32..(1 << boxes.len()) {
            let members: Vec<&Vec<f64>> = (0..boxes.len())
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| &boxes[i])
                .collect();
            let corner = (0..boxes[0].len())
                .map(|k| members.iter().map(|b| b[k]).fold(f64::INFINITY, f64::min));
            let sign = if members.len() % 2 == 1 { 1.0 } else { -1.0 };
            total += sign * corner.product::<f64>();
        }
        total
    }

    #[test]
    fn slicing_agrees_with_inclusion_exclusion_on_random_points() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for d in 2..=5 {
            for _ in 0..20 {
                let n = rng.random_range(1..=9);
                // Coarse grid values so that ties between coordinates occur.
                let pts: Vec<Vec<f64>> = (0..n)
                    .map(|_| {
                        (0..d)
                            .map(|_| f64::from(rng.random_range(0..6u8)))
                            .collect()
                    })
                    .collect();
                let reference = vec![0.5; d];
                let boxes: Vec<Vec<f64>> = pts
                    .iter()
                    .filter(|p| p.iter().all(|&v| v > 0.5))
                    .map(|p| p.iter().map(|v| v - 0.5).collect())
                    .collect();
                let expected = if boxes.is_empty() {
                    0.0
                } else {
                    inclusion_exclusion(&boxes)
                };
                let got = hypervolume(&pts, &vec![Hi; d], &reference).unwrap();
                assert!(
                    (got - expected).abs() < 1e-9,
                    "d={d} {pts:?}: {got} vs {expected}"
                );
            }
        }
    }

    #[test]
    fn two_overlapping_boxes_in_three_dimensions() {
        // [0,2]×[0,1]×[0,1] ∪ [0,1]×[0,2]×[0,1] = 2 + 2 − 1 = 3, stacked on
        // [0,1]³ up to z = 2 for the third point: + 1.
        let pts = vec![
            vec![2.0, 1.0, 1.0],
            vec![1.0, 2.0, 1.0],
            vec![1.0, 1.0, 2.0],
        ];
        let hv = hypervolume(&pts, &[Hi, Hi, Hi], &[0.0, 0.0, 0.0]).unwrap();
        assert!((hv - 4.0).abs() < 1e-12);
        // The same with every axis flipped.
        let neg: Vec<Vec<f64>> = pts.iter().map(|p| p.iter().map(|v| -v).collect()).collect();
        let hv = hypervolume(&neg, &[Lo, Lo, Lo], &[0.0, 0.0, 0.0]).unwrap();
        assert!((hv - 4.0).abs() < 1e-12);
    }
}
