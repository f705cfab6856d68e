//! `evaluator-stats` pinned against an independent SciPy implementation.
//!
//! Every constant below was printed by
//!
//! ```text
//! python3 evaluator/stats/reference/stats_reference.py
//! ```
//!
//! (numpy 2, scipy 1.17), which holds the same data sets. The script computes
//! each number its own way: `norm.ppf`; Wilson bounds by root-finding on the
//! score test; Bradley–Terry by L-BFGS-B on FastChat's weighted log-loss over
//! unique (a, b, outcome) rows, then polished by solving gradient = 0 with
//! MINPACK (`scipy.optimize.root`); the length-controlled fit by BFGS, polished
//! the same way; Pareto fronts by brute force; hypervolume by inclusion–exclusion
//! over all subsets of points.
//!
//! Tolerances (absolute):
//! - 1e-12 for closed forms: quantiles, means, standard errors, rates, Wilson
//!   bounds, hypervolumes (observed: below 4e-14);
//! - 1e-8 Elo points for fitted Bradley–Terry ratings (observed: 5e-11);
//! - 1e-10 for the length-controlled rate and coefficients (observed: 2e-15);
//! - 1e-3 Elo points between the prior-regularised fit and FastChat's
//!   unregularised MLE on connected data (observed: 9e-5), which bounds what the
//!   prior changes.
//!
//! Bootstrap numbers are not pinned to Python (the generators differ); their
//! determinism and coverage of the point estimate are tested instead.

use evaluator_stats::bradley_terry::{self, BtOptions, DEFAULT_PRIOR};
use evaluator_stats::{
    Battle, Direction, PairCounts, Summary, bootstrap_ci, hypervolume, length_controlled_win_rate,
    normal_quantile, pareto_front, z_for_confidence,
};

const CLOSED_FORM_TOL: f64 = 1e-12;
const BT_TOL_ELO: f64 = 1e-8;
const LC_TOL: f64 = 1e-10;

#[track_caller]
fn assert_close(actual: f64, expected: f64, tol: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tol,
        "{what}: got {actual:.17}, expected {expected:.17} (tolerance {tol:e})"
    );
}

#[track_caller]
fn assert_all_close(actual: &[f64], expected: &[f64], tol: f64, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert_close(*a, *e, tol, &format!("{what}[{i}]"));
    }
}

// ---------------------------------------------------------------- normal quantile

const PROBS: [f64; 11] = [
    1e-6, 0.001, 0.025, 0.1, 0.3, 0.5, 0.7, 0.9, 0.975, 0.995, 0.9995,
];
const PPF: [f64; 11] = [
    -4.753424308822899,
    -3.090232306167813,
    -1.9599639845400545,
    -1.2815515655446004,
    -0.5244005127080409,
    0.0,
    0.5244005127080407,
    1.2815515655446004,
    1.959963984540054,
    2.5758293035489004,
    3.2905267314919255,
];
const CONFIDENCES: [f64; 6] = [0.5, 0.8, 0.9, 0.95, 0.99, 0.999];
const Z: [f64; 6] = [
    0.6744897501960817,
    1.2815515655446004,
    1.6448536269514722,
    1.959963984540054,
    2.5758293035489004,
    3.2905267314919255,
];

#[test]
fn normal_quantiles_match_scipy_norm_ppf() {
    let ppf: Vec<f64> = PROBS.iter().map(|&p| normal_quantile(p).unwrap()).collect();
    assert_all_close(&ppf, &PPF, CLOSED_FORM_TOL, "ppf");
    let z: Vec<f64> = CONFIDENCES
        .iter()
        .map(|&c| z_for_confidence(c).unwrap())
        .collect();
    assert_all_close(&z, &Z, CLOSED_FORM_TOL, "z");
}

// ---------------------------------------------------------------- summary

const SUMMARY_A: [f64; 10] = [1.0, 0.5, 0.0, 1.0, 1.0, 0.5, 0.0, 1.0, 1.0, 0.5];
const SUMMARY_A_MEAN_SEM: [f64; 2] = [0.65, 0.13017082793177756];
const SUMMARY_B: [f64; 7] = [0.12, 3.4, -1.7, 2.25, 0.0, 5.5, -0.3];
const SUMMARY_B_MEAN_SEM: [f64; 2] = [1.3242857142857143, 0.9460541038159174];

#[test]
fn summary_matches_numpy_mean_and_scipy_sem() {
    for (values, expected) in [
        (&SUMMARY_A[..], SUMMARY_A_MEAN_SEM),
        (&SUMMARY_B[..], SUMMARY_B_MEAN_SEM),
    ] {
        let s = Summary::of(values).unwrap();
        assert_eq!(s.n, values.len() as u64);
        assert_all_close(&[s.mean, s.stderr], &expected, CLOSED_FORM_TOL, "summary");
    }
}

// ---------------------------------------------------------------- pair counts

/// (wins, losses, ties) and: win rate, ties-excluded rate (NaN = None), then
/// Wilson lower/upper at 0.95, 0.90 and 0.99.
const COUNTS: [((u64, u64, u64), [f64; 8]); 6] = [
    (
        (37, 21, 12),
        [
            0.6142857142857143,
            0.6379310344827587,
            0.49715735589304233,
            0.719523086984611,
            0.5160374867412962,
            0.7040282639548943,
            0.46082371185299736,
            0.7479584580153809,
        ],
    ),
    (
        (5, 0, 0),
        [
            1.0,
            1.0,
            0.5655175352168252,
            1.0,
            0.6488834992348987,
            1.0,
            0.42974167897299076,
            1.0,
        ],
    ),
    (
        (0, 0, 10),
        [
            0.5,
            f64::NAN,
            0.23659309051256397,
            0.763406909487436,
            0.26927182113826725,
            0.7307281788617328,
            0.18422551824723546,
            0.8157744817527646,
        ],
    ),
    (
        (1, 1, 0),
        [
            0.5,
            0.5,
            0.09453120573423075,
            0.9054687942657692,
            0.12086631942227384,
            0.8791336805777261,
            0.06171307677810182,
            0.9382869232218982,
        ],
    ),
    (
        (123, 456, 78),
        [
            0.2465753424657534,
            0.21243523316062177,
            0.2151534773318374,
            0.28094351302004544,
            0.21999270642470445,
            0.27523663747852545,
            0.20593760343028494,
            0.2922804654121672,
        ],
    ),
    (
        (0, 3, 1),
        [
            0.125,
            0.0,
            0.013191161823726563,
            0.6042269655172214,
            0.01741547030299553,
            0.535193498599033,
            0.008281631320745646,
            0.7096281789437072,
        ],
    ),
];

#[test]
fn win_rates_and_wilson_intervals_match_the_score_test_roots() {
    for ((wins, losses, ties), expected) in COUNTS {
        let c = PairCounts { wins, losses, ties };
        let what = format!("{wins}/{losses}/{ties}");
        assert_close(c.win_rate().unwrap(), expected[0], CLOSED_FORM_TOL, &what);
        match c.win_rate_excluding_ties() {
            Some(rate) => assert_close(rate, expected[1], CLOSED_FORM_TOL, &what),
            None => assert!(expected[1].is_nan(), "{what}: expected a rate"),
        }
        for (k, confidence) in [0.95, 0.9, 0.99].into_iter().enumerate() {
            let (lo, hi) = c.wilson_ci(confidence).unwrap();
            let what = format!("{what} wilson {confidence}");
            // The root finder stops at 1e-15; the bounds are O(1).
            assert_close(lo, expected[2 + 2 * k], CLOSED_FORM_TOL, &what);
            assert_close(hi, expected[3 + 2 * k], CLOSED_FORM_TOL, &what);
        }
    }
}

// ---------------------------------------------------------------- bootstrap

#[test]
fn bootstrap_is_deterministic_for_a_seed_and_covers_the_mean() {
    let per_item: Vec<f64> = (0..200)
        .map(|i| match i % 7 {
            0 | 3 | 5 => 1.0,
            1 => 0.5,
            _ => 0.0,
        })
        .collect();
    let mean = Summary::of(&per_item).unwrap().mean;
    let a = bootstrap_ci(&per_item, 500, 0.95, 42).unwrap();
    let b = bootstrap_ci(&per_item, 500, 0.95, 42).unwrap();
    let c = bootstrap_ci(&per_item, 500, 0.95, 43).unwrap();
    assert_eq!(a, b, "same seed, same interval");
    assert_ne!(a, c, "a different seed draws different resamples");
    assert!(a.0 < mean && mean < a.1, "{a:?} should contain {mean}");
    // About ±1.96 standard errors.
    let se = Summary::of(&per_item).unwrap().stderr;
    assert!(
        (a.1 - a.0) > 2.0 * se && (a.1 - a.0) < 6.0 * se,
        "{a:?}, se {se}"
    );
    assert_eq!(
        PairCounts::bootstrap_ci(&per_item, 500, 0.95, 42).unwrap(),
        a
    );
}

// ---------------------------------------------------------------- Bradley–Terry

/// (a, b, a wins, ties, b wins), as in the script.
const BT_CONNECTED: [(usize, usize, usize, usize, usize); 10] = [
    (0, 1, 12, 3, 5),
    (0, 2, 9, 4, 7),
    (0, 3, 15, 2, 3),
    (1, 2, 8, 5, 8),
    (1, 3, 11, 1, 6),
    (2, 3, 10, 6, 4),
    (3, 4, 7, 2, 9),
    (0, 4, 6, 3, 8),
    (2, 4, 5, 5, 5),
    (4, 1, 10, 2, 7),
];
/// L-BFGS-B + MINPACK polish with the same prior (λ = 1e-4).
const BT_CONNECTED_PRIOR: [f64; 5] = [
    1070.0434882998936,
    983.9009856763934,
    1013.4936226664196,
    905.0536030234639,
    1027.5083003338295,
];
/// L-BFGS-B without a prior (FastChat's objective), mean-centred.
const BT_CONNECTED_MLE: [f64; 5] = [
    1070.0435491338312,
    983.900974559643,
    1013.4936334299096,
    905.0535172266625,
    1027.5083256499536,
];
/// System 0 never loses (and never ties).
const BT_UNDEFEATED: [(usize, usize, usize, usize, usize); 3] =
    [(0, 1, 3, 0, 0), (2, 0, 0, 0, 3), (1, 2, 4, 2, 3)];
const BT_UNDEFEATED_PRIOR: [f64; 3] = [2240.4128571949223, 399.17519931982315, 360.41194348525437];

/// Expands a count table into individual battles, interleaving outcomes so the
/// order is not sorted by result.
fn battles(table: &[(usize, usize, usize, usize, usize)]) -> Vec<Battle> {
    let mut out = Vec::new();
    for &(a, b, wins, ties, losses) in table {
        let most = wins.max(ties).max(losses);
        for k in 0..most {
            if k < wins {
                out.push((a, b, 1.0));
            }
            if k < ties {
                out.push((a, b, 0.5));
            }
            if k < losses {
                out.push((a, b, 0.0));
            }
        }
    }
    out
}

#[test]
fn bradley_terry_matches_lbfgsb_with_the_same_prior() {
    let fit = bradley_terry::fit(5, &battles(&BT_CONNECTED), DEFAULT_PRIOR).unwrap();
    assert_all_close(&fit.ratings, &BT_CONNECTED_PRIOR, BT_TOL_ELO, "connected");
    let fit = bradley_terry::fit(3, &battles(&BT_UNDEFEATED), DEFAULT_PRIOR).unwrap();
    assert_all_close(&fit.ratings, &BT_UNDEFEATED_PRIOR, BT_TOL_ELO, "undefeated");
}

#[test]
fn the_prior_moves_connected_ratings_by_under_a_thousandth_of_a_point() {
    let fit = bradley_terry::fit(5, &battles(&BT_CONNECTED), DEFAULT_PRIOR).unwrap();
    assert_all_close(&fit.ratings, &BT_CONNECTED_MLE, 1e-3, "connected vs MLE");
}

#[test]
fn battle_order_and_orientation_do_not_change_the_fit() {
    let forward = battles(&BT_CONNECTED);
    let flipped: Vec<Battle> = forward
        .iter()
        .rev()
        .map(|&(a, b, y)| (b, a, 1.0 - y))
        .collect();
    let f = bradley_terry::fit(5, &forward, DEFAULT_PRIOR).unwrap();
    let g = bradley_terry::fit(5, &flipped, DEFAULT_PRIOR).unwrap();
    assert_all_close(&f.ratings, &g.ratings, 1e-9, "flipped");
}

#[test]
fn leaderboard_intervals_are_seeded_and_contain_the_ratings() {
    let battles = battles(&BT_CONNECTED);
    let options = BtOptions::default();
    let board = bradley_terry::leaderboard(5, &battles, &options).unwrap();
    let again = bradley_terry::leaderboard(5, &battles, &options).unwrap();
    assert_eq!(board, again);
    for (row, expected) in board.iter().zip(BT_CONNECTED_PRIOR) {
        assert_close(row.rating, expected, BT_TOL_ELO, "leaderboard rating");
        assert!(row.lower < row.rating && row.rating < row.upper, "{row:?}");
    }
    // Ranks follow FastChat's rule on the reported intervals.
    for row in &board {
        let above = board.iter().filter(|o| o.lower > row.upper).count();
        assert_eq!(row.rank, 1 + above);
    }
    let total: u64 = board.iter().map(|r| r.battles).sum();
    assert_eq!(total, 2 * battles.len() as u64);
}

#[test]
fn a_clear_winner_ranks_alone_at_the_top() {
    // System 0 beats 1 and 2 almost always; 1 and 2 are even.
    let table = [(0, 1, 40, 2, 3), (0, 2, 38, 4, 3), (1, 2, 20, 5, 20)];
    let board = bradley_terry::leaderboard(3, &battles(&table), &BtOptions::default()).unwrap();
    assert_eq!(board[0].rank, 1);
    assert_eq!(board[1].rank, 2);
    assert_eq!(board[2].rank, 2);
}

// ---------------------------------------------------------------- length control

const LC_OUTCOMES: [f64; 20] = [
    1.0, 1.0, 0.5, 0.0, 1.0, 0.0, 1.0, 1.0, 0.5, 1.0, 0.0, 1.0, 1.0, 0.0, 0.5, 1.0, 1.0, 0.0, 1.0,
    1.0,
];
const LC_MODEL_LEN: [f64; 20] = [
    820.0, 1500.0, 640.0, 300.0, 1210.0, 450.0, 990.0, 1720.0, 700.0, 1340.0, 520.0, 880.0, 1610.0,
    260.0, 760.0, 1100.0, 930.0, 610.0, 1480.0, 1050.0,
];
const LC_BASE_LEN: [f64; 20] = [
    700.0, 900.0, 650.0, 620.0, 800.0, 700.0, 1000.0, 880.0, 690.0, 760.0, 800.0, 900.0, 720.0,
    540.0, 780.0, 820.0, 1010.0, 640.0, 770.0, 990.0,
];
const LC_PENALTY: f64 = 0.01;
/// lc_rate, raw_rate, theta, psi, std(delta).
const LC: [f64; 5] = [
    0.7291505790926399,
    0.675,
    0.9903172423166178,
    6.473307310614721,
    382.5675035034237,
];

#[test]
fn length_controlled_fit_matches_bfgs() {
    let lc =
        length_controlled_win_rate(&LC_OUTCOMES, &LC_MODEL_LEN, &LC_BASE_LEN, LC_PENALTY).unwrap();
    assert_eq!(lc.n, 20);
    assert_close(lc.raw_win_rate, LC[1], CLOSED_FORM_TOL, "raw");
    assert_close(lc.length_scale, LC[4], 1e-9, "std(delta)");
    assert_close(lc.win_rate, LC[0], LC_TOL, "lc rate");
    assert_close(lc.intercept, LC[2], LC_TOL, "theta");
    assert_close(lc.length_coef, LC[3], LC_TOL, "psi");
}

// ---------------------------------------------------------------- Pareto

use Direction::{HigherIsBetter as Hi, LowerIsBetter as Lo};

fn points<const D: usize>(rows: &[[f64; D]]) -> Vec<Vec<f64>> {
    rows.iter().map(|r| r.to_vec()).collect()
}

const PARETO_2D: [[f64; 2]; 9] = [
    [0.9, 120.0],
    [0.8, 80.0],
    [0.8, 80.0],
    [0.95, 200.0],
    [0.7, 60.0],
    [0.85, 150.0],
    [0.6, 90.0],
    [0.95, 210.0],
    [0.5, 50.0],
];
const REF_2D: [f64; 2] = [0.55, 180.0];
const FRONT_2D: [usize; 6] = [0, 1, 2, 3, 4, 8];
const HV_2D: f64 = 34.000000000000014;

const PARETO_3D: [[f64; 3]; 8] = [
    [3.0, 1.0, 2.0],
    [1.0, 3.0, 2.0],
    [2.0, 2.0, 3.0],
    [2.0, 2.0, 3.0],
    [1.0, 1.0, 1.0],
    [3.0, 3.0, 0.5],
    [0.5, 4.0, 1.0],
    [2.5, 0.5, 2.5],
];
const REF_3D: [f64; 3] = [0.0, 0.0, 0.0];
const FRONT_3D: [usize; 7] = [0, 1, 2, 3, 5, 6, 7];
const HV_3D: f64 = 18.125;

const PARETO_4D: [[f64; 4]; 6] = [
    [0.2, 3.0, 5.0, 1.0],
    [0.4, 2.0, 4.0, 2.0],
    [0.1, 4.0, 3.0, 3.0],
    [0.3, 1.0, 6.0, 2.0],
    [0.5, 5.0, 1.0, 1.0],
    [0.6, 0.0, 7.0, 0.0],
];
const REF_4D: [f64; 4] = [0.55, 0.5, 0.5, 0.5];
const FRONT_4D: [usize; 6] = [0, 1, 2, 3, 4, 5];
const HV_4D: f64 = 11.318750000000001;

#[test]
fn pareto_fronts_match_brute_force() {
    assert_eq!(
        pareto_front(&points(&PARETO_2D), &[Hi, Lo]).unwrap(),
        FRONT_2D
    );
    assert_eq!(
        pareto_front(&points(&PARETO_3D), &[Hi, Hi, Hi]).unwrap(),
        FRONT_3D
    );
    assert_eq!(
        pareto_front(&points(&PARETO_4D), &[Lo, Hi, Hi, Hi]).unwrap(),
        FRONT_4D
    );
}

#[test]
fn hypervolumes_match_inclusion_exclusion() {
    let hv = hypervolume(&points(&PARETO_2D), &[Hi, Lo], &REF_2D).unwrap();
    assert_close(hv, HV_2D, CLOSED_FORM_TOL, "2d");
    let hv = hypervolume(&points(&PARETO_3D), &[Hi, Hi, Hi], &REF_3D).unwrap();
    assert_close(hv, HV_3D, CLOSED_FORM_TOL, "3d");
    let hv = hypervolume(&points(&PARETO_4D), &[Lo, Hi, Hi, Hi], &REF_4D).unwrap();
    assert_close(hv, HV_4D, CLOSED_FORM_TOL, "4d");
}
