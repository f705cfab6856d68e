//! The Pareto view of a dataset on two metrics, computed once for the page
//! (`/datasets/{d}/pareto`), the API (`GET /api/v1/datasets/{d}/pareto`) and
//! the CLI (`evaluator pareto`), so the three cannot disagree: [`pareto`] is a
//! pure function of the dataset's results.
//!
//! Choices, stated here because every reader of the numbers depends on them:
//! - **Points**: every system with a finite mean on both metrics.
//! - **Sweeps**: systems are grouped by the metadata key `sweep` (a string, or
//!   a number read as its text; the trainer pushes `"soup"` for Rewarded Soups
//!   and `"morl"` for MORL weight sweeps). Systems with a numeric `lambda`/`λ`
//!   but no `sweep` form one unnamed sweep, [`UNNAMED_SWEEP`], as before
//!   sweeps had names. A sweep's systems are listed in λ order (ties by name);
//!   members without a λ follow by name and are left off its line.
//! - **Reference**: one point for every hypervolume, the worst value on each
//!   axis over all the points shown, so the sweeps' hypervolumes and the
//!   overall one are comparable. The worst system on an axis adds nothing
//!   (its box is flat), as before.
//! - **Fronts**: the overall front over all points, and each sweep's own front
//!   over its members only.

use std::collections::BTreeMap;

use evaluator_stats::{hypervolume, pareto_front};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{DatasetResults, Direction, stats_direction};
use crate::results::{Z95, metric_keys};

/// The name of the sweep formed by systems with a λ and no `sweep` metadata.
pub const UNNAMED_SWEEP: &str = "λ sweep";

/// Whether larger or smaller values of an axis are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Larger is better.
    Higher,
    /// Smaller is better.
    Lower,
}

impl From<Direction> for Better {
    fn from(direction: Direction) -> Self {
        match direction {
            Direction::HigherIsBetter => Better::Higher,
            Direction::LowerIsBetter => Better::Lower,
        }
    }
}

/// Each axis's direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Directions {
    /// The x metric's.
    pub x: Better,
    /// The y metric's.
    pub y: Better,
}

/// One system on the plot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ParetoPoint {
    /// The system.
    pub system: String,
    /// Its mean on the x metric.
    pub x: f64,
    /// Its mean on the y metric.
    pub y: f64,
    /// The x mean's 95% interval (mean ± 1.96 standard errors).
    pub x_ci: [f64; 2],
    /// The y mean's 95% interval.
    pub y_ci: [f64; 2],
    /// Whether no other shown system dominates it.
    pub on_front: bool,
    /// The sweep it belongs to (a [`Sweep::name`]), if any.
    pub sweep: Option<String>,
    /// Its metadata `lambda` (or `λ`) as a number, if it has one.
    pub lambda: Option<f64>,
    /// Its metadata, as stored.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
}

/// A sweep: systems sharing a `sweep` value (or the unnamed λ sweep).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Sweep {
    /// The metadata `sweep` value, or [`UNNAMED_SWEEP`].
    pub name: String,
    /// Its systems, in λ order (those without a λ last, by name).
    pub points: Vec<String>,
    /// Those of its systems that no other system of the sweep dominates, in
    /// the same order.
    pub front: Vec<String>,
    /// The area its points dominate, from the common `reference`.
    pub hypervolume: f64,
}

/// `GET /api/v1/datasets/{dataset}/pareto`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Pareto {
    /// The dataset's name.
    pub dataset: String,
    /// The x metric, `<module>/<metric>`.
    pub x: String,
    /// The y metric.
    pub y: String,
    /// Which way each axis is better.
    pub directions: Directions,
    /// The worst value on each axis over the points, `[x, y]`: where every
    /// hypervolume is measured from. Null when there are no points.
    pub reference: Option<[f64; 2]>,
    /// The area all the points dominate (0 without points).
    pub hypervolume: f64,
    /// The systems on the overall front, in `points` order.
    pub front: Vec<String>,
    /// The systems with values on both metrics, by name.
    pub points: Vec<ParetoPoint>,
    /// The sweeps: named ones by name, then the unnamed λ sweep.
    pub sweeps: Vec<Sweep>,
    /// Why the result is empty, when it is (no system has both metrics).
    pub message: Option<String>,
}

/// Why [`pareto`] has nothing to compute.
#[derive(Debug, thiserror::Error)]
pub enum ParetoError {
    /// The dataset has no scores at all.
    #[error(
        "`{dataset}` has no scores yet: run a scorer on it first (`evaluator run --dataset {dataset} --module ...`)"
    )]
    NoMetrics {
        /// The dataset.
        dataset: String,
    },
    /// An axis names a metric the dataset does not have.
    #[error("`{dataset}` has no metric `{metric}`; its metrics are {}", list(.available))]
    UnknownMetric {
        /// The dataset.
        dataset: String,
        /// What was asked for.
        metric: String,
        /// What there is, `<module>/<metric>`, sorted.
        available: Vec<String>,
    },
    /// The statistics refused the points (not expected: they are checked
    /// finite and two-dimensional first).
    #[error("Pareto computation: {0}")]
    Stats(#[from] evaluator_stats::Error),
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        return "none yet (nothing is scored)".into();
    }
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A system's interpolation weight: `lambda` or `λ`, a number or a numeric string.
pub fn lambda(metadata: &serde_json::Value) -> Option<f64> {
    ["lambda", "λ"]
        .iter()
        .find_map(|key| match metadata.get(key)? {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
        .filter(|v: &f64| v.is_finite())
}

/// A system's sweep: its metadata `sweep` (non-empty text, or a number as
/// text), else [`UNNAMED_SWEEP`] when it has a λ, else none.
pub fn sweep_of(metadata: &serde_json::Value) -> Option<String> {
    let named = match metadata.get("sweep") {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    named.or_else(|| lambda(metadata).map(|_| UNNAMED_SWEEP.to_string()))
}

/// The Pareto view of `results` on metrics `x` and `y`; an axis not given is
/// the dataset's first metric by name (x) or its second (y; the first again
/// when there is only one).
///
/// # Errors
/// [`ParetoError::UnknownMetric`] for an axis the dataset lacks,
/// [`ParetoError::NoMetrics`] when it has no scores and an axis is left to default.
pub fn pareto(
    results: &DatasetResults,
    x: Option<&str>,
    y: Option<&str>,
) -> Result<Pareto, ParetoError> {
    let keys = metric_keys(results);
    let names: Vec<&String> = keys.keys().collect();
    let pick = |asked: Option<&str>, default: usize| -> Result<String, ParetoError> {
        match asked.filter(|s| !s.is_empty()) {
            Some(key) if keys.contains_key(key) => Ok(key.to_string()),
            Some(key) => Err(ParetoError::UnknownMetric {
                dataset: results.dataset.clone(),
                metric: key.to_string(),
                available: names.iter().map(|s| s.to_string()).collect(),
            }),
            None => names
                .get(default)
                .or(names.first())
                .map(|s| s.to_string())
                .ok_or_else(|| ParetoError::NoMetrics {
                    dataset: results.dataset.clone(),
                }),
        }
    };
    let (x, y) = (pick(x, 0)?, pick(y, 1)?);
    let directions = [stats_direction(keys[&x]), stats_direction(keys[&y])];
    let points: Vec<ParetoPoint> = results
        .systems
        .iter()
        .filter_map(|s| {
            let (mx, my) = (s.metrics.get(&x)?, s.metrics.get(&y)?);
            (mx.mean.is_finite() && my.mean.is_finite()).then(|| ParetoPoint {
                system: s.system.clone(),
                x: mx.mean,
                y: my.mean,
                x_ci: [mx.mean - Z95 * mx.stderr, mx.mean + Z95 * mx.stderr],
                y_ci: [my.mean - Z95 * my.stderr, my.mean + Z95 * my.stderr],
                on_front: false,
                sweep: sweep_of(&s.metadata),
                lambda: lambda(&s.metadata),
                metadata: s.metadata.clone(),
            })
        })
        .collect();
    let mut view = Pareto {
        dataset: results.dataset.clone(),
        directions: Directions {
            x: keys[&x].into(),
            y: keys[&y].into(),
        },
        reference: None,
        hypervolume: 0.0,
        front: Vec::new(),
        points,
        sweeps: Vec::new(),
        message: None,
        x,
        y,
    };
    if view.points.is_empty() {
        view.message = Some(format!(
            "No system has values for both `{}` and `{}`.",
            view.x, view.y
        ));
        return Ok(view);
    }
    let all: Vec<Vec<f64>> = view.points.iter().map(|p| vec![p.x, p.y]).collect();
    let coordinates =
        |members: &[usize]| -> Vec<Vec<f64>> { members.iter().map(|&i| all[i].clone()).collect() };
    let worst = |axis: usize| {
        let values = all.iter().map(|p| p[axis]);
        match directions[axis] {
            evaluator_stats::Direction::HigherIsBetter => values.fold(f64::INFINITY, f64::min),
            evaluator_stats::Direction::LowerIsBetter => values.fold(f64::NEG_INFINITY, f64::max),
        }
    };
    let reference = [worst(0), worst(1)];
    for i in pareto_front(&all, &directions)? {
        view.points[i].on_front = true;
    }
    view.hypervolume = hypervolume(&all, &directions, &reference)?;
    view.front = view
        .points
        .iter()
        .filter(|p| p.on_front)
        .map(|p| p.system.clone())
        .collect();
    // Named sweeps by name, the unnamed one last.
    let mut groups: BTreeMap<(bool, String), Vec<usize>> = BTreeMap::new();
    for (i, point) in view.points.iter().enumerate() {
        if let Some(name) = &point.sweep {
            groups
                .entry((name == UNNAMED_SWEEP, name.clone()))
                .or_default()
                .push(i);
        }
    }
    for ((_, name), mut members) in groups {
        let points = &view.points;
        members.sort_by(|&a, &b| {
            let (pa, pb) = (&points[a], &points[b]);
            match (pa.lambda, pb.lambda) {
                (Some(la), Some(lb)) => la.total_cmp(&lb),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            }
            .then_with(|| pa.system.cmp(&pb.system))
        });
        let own = coordinates(&members);
        let front = pareto_front(&own, &directions)?;
        view.sweeps.push(Sweep {
            name,
            points: members.iter().map(|&i| points[i].system.clone()).collect(),
            front: front
                .iter()
                .map(|&k| points[members[k]].system.clone())
                .collect(),
            hypervolume: hypervolume(&own, &directions, &reference)?,
        });
    }
    view.reference = Some(reference);
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{MetricSummary, SystemResults};

    fn system(name: &str, x: f64, y: f64, metadata: serde_json::Value) -> SystemResults {
        let metric = |mean: f64, direction| MetricSummary {
            mean,
            stderr: 0.5,
            n: 4,
            nulls: 0,
            direction,
            learned: None,
        };
        SystemResults {
            system: name.into(),
            metadata,
            metrics: BTreeMap::from([
                ("m/a".to_string(), metric(x, Direction::HigherIsBetter)),
                ("m/b".to_string(), metric(y, Direction::LowerIsBetter)),
            ]),
        }
    }

    fn results(systems: Vec<SystemResults>) -> DatasetResults {
        DatasetResults {
            dataset: "d".into(),
            systems,
        }
    }

    #[test]
    fn lambda_is_read_from_either_key_as_number_or_numeric_text() {
        assert_eq!(lambda(&serde_json::json!({"lambda": 0.3})), Some(0.3));
        assert_eq!(lambda(&serde_json::json!({"λ": "0.7"})), Some(0.7));
        assert_eq!(lambda(&serde_json::json!({"lambda": "high"})), None);
        assert_eq!(lambda(&serde_json::json!({})), None);
    }

    #[test]
    fn sweeps_are_named_by_metadata_or_unnamed_with_a_lambda_only() {
        use serde_json::json;
        assert_eq!(
            sweep_of(&json!({"sweep": "soup", "lambda": "0.3"})).as_deref(),
            Some("soup")
        );
        assert_eq!(sweep_of(&json!({"sweep": 2})).as_deref(), Some("2"));
        assert_eq!(
            sweep_of(&json!({"sweep": " ", "lambda": 1})).as_deref(),
            Some(UNNAMED_SWEEP)
        );
        assert_eq!(sweep_of(&json!({"step": "10"})), None);
    }

    #[test]
    fn each_sweep_has_its_own_front_and_hypervolume_from_the_common_reference() {
        use serde_json::json;
        // a: higher is better; b: lower is better.
        let view = pareto(
            &results(vec![
                system("base", 1.0, 10.0, json!({})),
                system("m1", 3.0, 6.0, json!({"sweep": "morl", "lambda": "1"})),
                system("m0", 2.0, 4.0, json!({"sweep": "morl", "lambda": "0"})),
                system("s-mid", 2.0, 8.0, json!({"sweep": "soup", "lambda": "0.5"})),
                system("s-end", 4.0, 9.0, json!({"sweep": "soup", "lambda": "1"})),
                system("s-start", 1.5, 5.0, json!({"sweep": "soup", "lambda": "0"})),
                system("old", 1.0, 9.5, json!({"lambda": 0.2})),
            ]),
            Some("m/a"),
            Some("m/b"),
        )
        .unwrap();
        // The worst a is 1 (base, old), the worst b 10 (base).
        assert_eq!(view.reference, Some([1.0, 10.0]));
        assert_eq!(
            view.directions,
            Directions {
                x: Better::Higher,
                y: Better::Lower
            }
        );
        let names: Vec<&str> = view.sweeps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["morl", "soup", UNNAMED_SWEEP]);
        let soup = &view.sweeps[1];
        assert_eq!(soup.points, ["s-start", "s-mid", "s-end"], "λ order");
        // s-mid (2, 8) is dominated by neither (1.5, 5) nor (4, 9).
        assert_eq!(soup.front, ["s-start", "s-mid", "s-end"]);
        // Boxes from (1, 10): [1,1.5]×5 ∪ [1,2]×2 ∪ [1,4]×1, as a staircase:
        // x 1–1.5 at height 5, 1.5–2 at 2, 2–4 at 1.
        assert!((soup.hypervolume - (0.5 * 5.0 + 0.5 * 2.0 + 2.0 * 1.0)).abs() < 1e-12);
        let morl = &view.sweeps[0];
        assert_eq!(morl.points, ["m0", "m1"]);
        assert_eq!(morl.front, ["m0", "m1"]);
        // x 1–2 at 6, 2–3 at 4.
        assert!((morl.hypervolume - 10.0).abs() < 1e-12);
        // `old` only equals the reference in a: no area, and its own front.
        assert_eq!(view.sweeps[2].points, ["old"]);
        assert_eq!(view.sweeps[2].hypervolume, 0.0);
        // Overall: m0 (2, 4), m1 (3, 6) and s-end (4, 9) are not dominated;
        // s-start (1.5, 5) is, by m0.
        assert_eq!(view.front, ["m1", "m0", "s-end"], "in points order");
        let base = view.points.iter().find(|p| p.system == "base").unwrap();
        assert_eq!((base.sweep.as_deref(), base.on_front), (None, false));
        assert_eq!(base.x_ci, [1.0 - Z95 * 0.5, 1.0 + Z95 * 0.5]);
        // x 1–2 at 6, 2–3 at 4, 3–4 at 1.
        assert!((view.hypervolume - 11.0).abs() < 1e-12);
    }

    #[test]
    fn axes_default_to_the_first_two_metrics_and_unknown_ones_name_the_choices() {
        let data = results(vec![system("a", 1.0, 2.0, serde_json::json!({}))]);
        let view = pareto(&data, None, None).unwrap();
        assert_eq!((view.x.as_str(), view.y.as_str()), ("m/a", "m/b"));
        let error = pareto(&data, Some("m/a"), Some("m/zz")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "`d` has no metric `m/zz`; its metrics are `m/a`, `m/b`"
        );
        assert!(matches!(
            pareto(&results(vec![]), None, None),
            Err(ParetoError::NoMetrics { .. })
        ));
    }

    #[test]
    fn no_system_with_both_metrics_is_an_empty_result_with_a_message() {
        let mut only_a = system("a", 1.0, 2.0, serde_json::json!({"sweep": "soup"}));
        let b = only_a.metrics.remove("m/b").unwrap();
        let mut only_b = system("b", 1.0, 2.0, serde_json::json!({}));
        only_b.metrics = BTreeMap::from([("m/b".to_string(), b)]);
        let view = pareto(&results(vec![only_a, only_b]), None, None).unwrap();
        assert!(view.points.is_empty() && view.sweeps.is_empty());
        assert_eq!((view.reference, view.hypervolume), (None, 0.0));
        assert_eq!(
            view.message.as_deref(),
            Some("No system has values for both `m/a` and `m/b`.")
        );
    }
}
