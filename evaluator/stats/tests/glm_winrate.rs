//! `glm_winrate` pinned against upstream AlpacaEval's own code.
//!
//! The expected numbers are in `reference/alpaca_lc_expected.json`, written by
//!
//! ```text
//! /work/venv-ref/bin/python evaluator/stats/reference/alpaca_lc_reference.py
//! ```
//!
//! (alpaca-eval 0.6.6, scikit-learn 1.9.1; the JSON records the versions). The synthetic
//! inputs are in the JSON too. The real-data test reads the AlpacaEval 2.0 files from
//! `$SHARED_DATA` or `../shared/data/alpaca_eval` next to the workspace and prints
//! `SKIPPED: ...` when they are absent.
//!
//! Tolerances. The Rust solver converges to a relative minimum-norm subgradient of 1e-10;
//! the reference runs liblinear at `tol=1e-10` too, but liblinear's rule is relative to the
//! gradient at 0 of the *duplicated* problem and its inner solves are inexact, so its
//! coefficients agree with the optimum to about 1e-8 and its objective to about 1e-12
//! relative (both asserted with headroom: coefficients 1e-6, objectives 1e-9 relative). On
//! the real data, the difficulty fit has 862 coefficients, many exactly 0 at the L1 kink,
//! and liblinear stops earlier there, so the reference polishes that one fit with L-BFGS-B;
//! the difficulties are compared at 1e-5 (observed 3.2e-7) and the win rates and their
//! standard errors at 2e-5 = 0.002 points (observed: ≤ 1e-9 for 28 of the 29 systems,
//! 9.4e-6 for `gemma-2b-it`, not investigated further; consistent with liblinear stopping
//! short on that fit). Against the published leaderboard, which used upstream's
//! unavailable difficulties and gamed rows, the goals are Spearman ≥ 0.98 and mean absolute
//! difference ≤ 3 points over the 28 non-baseline systems; the achieved values (0.9956,
//! 1.08) are asserted with small headroom so that a regression fails.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use evaluator_stats::glm_winrate::{
    self, BaselineRegularization, Design, GamedRow, GlmOptions, JudgedItem, SystemJudgments,
};
use serde_json::Value;

const COEF_TOL: f64 = 1e-6;
const OBJECTIVE_REL_TOL: f64 = 1e-9;
const REAL_DIFFICULTY_TOL: f64 = 1e-5;
const REAL_LC_TOL: f64 = 2e-5;
const SPEARMAN_MIN: f64 = 0.99;
const MAE_MAX_POINTS: f64 = 1.2;

fn expected() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("reference/alpaca_lc_expected.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("expected JSON")).expect("JSON")
}

fn f(v: &Value) -> f64 {
    v.as_f64().expect("number")
}

fn fv(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(f).collect()
}

#[track_caller]
fn close(actual: f64, expected: f64, tol: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tol,
        "{what}: got {actual:.15}, expected {expected:.15} (tolerance {tol:e})"
    );
}

#[test]
fn synthetic_l1_fits_match_liblinear() {
    let e = expected();
    let s = &e["synthetic"];
    let x: Vec<Vec<f64>> = s["x"].as_array().unwrap().iter().map(fv).collect();
    let (y, w) = (fv(&s["y"]), fv(&s["weight"]));
    let design = Design::from_dense_rows(&x).unwrap();
    for fit in s["fits"].as_array().unwrap() {
        let c = f(&fit["c"]);
        let ours = glm_winrate::l1_logistic(&design, &y, &w, c, 1e-12, 1000, None).unwrap();
        for (j, (a, b)) in ours.coef.iter().zip(fv(&fit["coef"])).enumerate() {
            close(*a, b, COEF_TOL, &format!("C={c} coef[{j}]"));
        }
        let obj = f(&fit["objective"]);
        close(
            ours.objective,
            obj,
            OBJECTIVE_REL_TOL * obj,
            &format!("C={c} objective"),
        );
        // Ours is the optimum: never above liblinear's objective beyond rounding.
        assert!(ours.objective <= obj * (1.0 + 1e-14), "C={c}");
    }
    let cv = &s["cv"];
    let opts = GlmOptions::default();
    for (a, b) in opts.cs.iter().zip(fv(&cv["cs"])) {
        close(*a, b, 1e-15 * b, "C grid");
    }
    let ours = glm_winrate::l1_logistic_cv(&design, &y, &w, &opts).unwrap();
    assert_eq!(ours.c, f(&cv["c"]), "chosen C");
    for (j, (a, b)) in ours.fit.coef.iter().zip(fv(&cv["coef"])).enumerate() {
        close(*a, b, COEF_TOL, &format!("CV coef[{j}]"));
    }
    for (i, (a, b)) in ours.scores.iter().zip(fv(&cv["mean_scores"])).enumerate() {
        // The CV fits stop at a relative gap of 1e-4 (as liblinear's default in upstream's CV),
        // the reference ran them tight: the scores agree to about 1e-7.
        close(a / opts.n_folds as f64, b, 1e-6, &format!("CV score[{i}]"));
    }
}

#[test]
fn synthetic_system_matches_upstream_code_path() {
    let e = expected();
    let s = &e["synthetic"]["system"];
    let difficulty = fv(&s["difficulty"]);
    let items: Vec<JudgedItem> = fv(&s["length_delta"])
        .into_iter()
        .zip(s["preference"].as_array().unwrap())
        .enumerate()
        .map(|(item, (length_delta, p))| JudgedItem {
            item,
            preference: p.as_f64(),
            length_delta,
        })
        .collect();
    let gamed: Vec<GamedRow> = serde_json::from_value(s["gamed"].clone()).unwrap();
    for (key, rows) in [("reg", &gamed[..]), ("noreg", &[][..])] {
        let r = glm_winrate::system_glm(&items, &difficulty, rows, &GlmOptions::default()).unwrap();
        let x = &s[key];
        assert_eq!(r.n_judged, 39);
        close(r.win_rate, f(&x["lc"]), COEF_TOL, &format!("{key} lc"));
        close(
            r.standard_error,
            f(&x["se"]),
            COEF_TOL,
            &format!("{key} se"),
        );
        close(
            r.length_coef,
            f(&x["length_coef"]),
            COEF_TOL,
            &format!("{key} w"),
        );
        close(
            r.difficulty_coef,
            f(&x["difficulty_coef"]),
            COEF_TOL,
            &format!("{key} phi"),
        );
        close(
            r.quality,
            f(&x["quality"]),
            COEF_TOL,
            &format!("{key} theta"),
        );
    }
}

// ------------------------------------------------------------------------------ real data

fn data_dir() -> PathBuf {
    std::env::var_os("SHARED_DATA").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/alpaca_eval"),
        PathBuf::from,
    )
}

fn read_json(path: PathBuf) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}")),
    )
    .unwrap()
}

fn outputs(dir: &std::path::Path, name: &str) -> Vec<String> {
    read_json(dir.join(format!("model_outputs/{name}.json")))
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["output"].as_str().unwrap().to_string())
        .collect()
}

/// Spearman's rank correlation (average ranks for ties).
fn spearman(a: &[f64], b: &[f64]) -> f64 {
    fn ranks(v: &[f64]) -> Vec<f64> {
        let mut idx: Vec<usize> = (0..v.len()).collect();
        idx.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
        let mut r = vec![0.0; v.len()];
        let mut i = 0;
        while i < idx.len() {
            let mut j = i;
            while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
                j += 1;
            }
            for k in i..=j {
                r[idx[k]] = (i + j) as f64 / 2.0;
            }
            i = j + 1;
        }
        r
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let cov: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = ra.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = rb.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

#[test]
fn real_alpaca_eval_data() {
    let dir = data_dir();
    if !dir.join("annotations").is_dir() {
        println!("SKIPPED: AlpacaEval data not found at {}", dir.display());
        eprintln!("SKIPPED: AlpacaEval data not found at {}", dir.display());
        return;
    }
    let baseline = "gpt4_1106_preview";
    let mut names: Vec<String> = std::fs::read_dir(dir.join("annotations"))
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "json")
                .then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    let base_out = outputs(&dir, baseline);
    let n_items = base_out.len();
    let judged: Vec<Vec<JudgedItem>> = names
        .iter()
        .map(|name| {
            let outs = outputs(&dir, name);
            let ann = read_json(dir.join(format!("annotations/{name}.json")));
            let ann = ann.as_array().unwrap();
            assert_eq!((outs.len(), ann.len()), (n_items, n_items), "{name}");
            ann.iter()
                .zip(outs.iter().zip(&base_out))
                .enumerate()
                .map(|(item, (a, (o, b)))| {
                    // AlpacaEval: preference in [1, 2], 0 = draw; NaN/null = not judged.
                    let preference = a["preference"].as_f64().and_then(|p| {
                        let p = if p == 0.0 { 1.5 } else { p };
                        (1.0..=2.0).contains(&p).then_some(p - 1.0)
                    });
                    JudgedItem {
                        item,
                        preference,
                        length_delta: b.chars().count() as f64 - o.chars().count() as f64,
                    }
                })
                .collect()
        })
        .collect();
    let systems: Vec<SystemJudgments<'_>> = names
        .iter()
        .zip(&judged)
        .map(|(name, items)| SystemJudgments { name, items })
        .collect();

    let start = Instant::now();
    let report =
        glm_winrate::length_controlled_all(&systems, n_items, &GlmOptions::default()).unwrap();
    let elapsed = start.elapsed();
    println!(
        "length_controlled_all: {elapsed:.2?} for {} systems x {n_items} items",
        names.len()
    );
    assert_eq!(report.regularization_pairs.len(), 2);

    // (1) Against upstream's code fed the same difficulties and stand-in rows.
    let e = expected();
    let x = &e["real_tight"];
    close(
        report.difficulty_c,
        f(&x["difficulty_c"]),
        1e-12 * f(&x["difficulty_c"]),
        "difficulty C",
    );
    let max_dd = report
        .difficulty
        .iter()
        .zip(fv(&x["difficulty"]))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    println!("max |difficulty - sklearn| = {max_dd:.2e}");
    assert!(
        max_dd <= REAL_DIFFICULTY_TOL,
        "difficulties differ by {max_dd:e}"
    );
    let mut max_dlc = 0.0f64;
    for (name, r) in names.iter().zip(&report.systems) {
        let up = &x["systems"][name]["reg"];
        let d = (r.win_rate - f(&up["lc"])).abs();
        if d > max_dlc {
            max_dlc = d;
            println!("LC vs upstream code: {name} differs by {d:.2e}");
        }
        close(
            r.win_rate,
            f(&up["lc"]),
            REAL_LC_TOL,
            &format!("{name} LC vs upstream code"),
        );
        close(
            r.standard_error,
            f(&up["se"]),
            REAL_LC_TOL,
            &format!("{name} SE vs upstream code"),
        );
    }
    println!("max |LC - upstream code| = {max_dlc:.2e}");

    // (2) Against the published column.
    let lb = std::fs::read_to_string(dir.join("leaderboard.csv")).unwrap();
    let mut lines = lb.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "length_controlled_winrate")
        .unwrap();
    let published: BTreeMap<&str, f64> = lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            (cells[0], cells[col].parse().unwrap())
        })
        .collect();
    let mut rows: Vec<(&str, f64, f64)> = names
        .iter()
        .zip(&report.systems)
        .filter(|(n, _)| n.as_str() != baseline)
        .map(|(n, r)| (n.as_str(), published[n.as_str()], 100.0 * r.win_rate))
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!(
        "{:<36} {:>9} {:>9} {:>7}",
        "system", "published", "ours", "diff"
    );
    for (n, p, o) in &rows {
        println!("{n:<36} {p:>9.2} {o:>9.2} {:>+7.2}", o - p);
    }
    let (p, o): (Vec<f64>, Vec<f64>) = rows.iter().map(|r| (r.1, r.2)).unzip();
    let rho = spearman(&p, &o);
    let mae = rows.iter().map(|r| (r.2 - r.1).abs()).sum::<f64>() / rows.len() as f64;
    let worst = rows
        .iter()
        .max_by(|a, b| (a.2 - a.1).abs().total_cmp(&(b.2 - b.1).abs()))
        .unwrap();
    println!(
        "Spearman {rho:.4}, MAE {mae:.3} points, worst {} ({:+.2})",
        worst.0,
        worst.2 - worst.1
    );
    assert_eq!(
        report.systems[names.iter().position(|n| n == baseline).unwrap()].win_rate,
        0.5
    );
    assert!(rho >= SPEARMAN_MIN, "Spearman {rho}");
    assert!(mae <= MAE_MAX_POINTS, "MAE {mae}");

    // The no-regularisation variant against upstream's `length_controlled_noreg`.
    let noreg = GlmOptions {
        regularization: BaselineRegularization::None,
        ..GlmOptions::default()
    };
    for (name, items) in names.iter().zip(&judged) {
        let r = glm_winrate::system_glm(items, &report.difficulty, &[], &noreg).unwrap();
        let up = &x["systems"][name]["noreg"];
        close(
            r.win_rate,
            f(&up["lc"]),
            REAL_LC_TOL,
            &format!("{name} noreg LC vs upstream code"),
        );
    }
}
