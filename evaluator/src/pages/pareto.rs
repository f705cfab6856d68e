//! `/datasets/{dataset}/pareto?x=METRIC&y=METRIC`: the systems on two metrics
//! (`<module>/<metric>` as in the results), the Pareto front under the metrics'
//! directions, an interpolation sweep (systems with a numeric `lambda` or `λ`
//! in their metadata) in λ order, and the front's hypervolume against the
//! worst value on each axis.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use evaluator_stats::{hypervolume, pareto_front};
use serde::Deserialize;
use sqlx::PgPool;
use web::charts::{Scatter, ScatterPoint, scatter_svg};
use web::format::{href, number};
use web::paths;
use web::views::{ParetoPage, ParetoRow, SelectOption, dataset_tabs};

use super::results::metric_keys;
use super::{PageError, SignedIn, dataset, html};
use crate::domain::{Direction, stats_direction};
use crate::results::{self, Z95};

#[derive(Debug, Deserialize)]
pub(super) struct AxesQuery {
    x: Option<String>,
    y: Option<String>,
}

/// A system's interpolation weight: `lambda` or `λ`, a number or a numeric string.
pub(super) fn lambda(metadata: &serde_json::Value) -> Option<f64> {
    ["lambda", "λ"]
        .iter()
        .find_map(|key| match metadata.get(key)? {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
        .filter(|v: &f64| v.is_finite())
}

/// `GET /datasets/{dataset}/pareto?x=METRIC&y=METRIC`.
pub(super) async fn page(
    State(db): State<PgPool>,
    SignedIn(team): SignedIn,
    name: Result<Path<String>, PathRejection>,
    Query(query): Query<AxesQuery>,
) -> Result<Response, PageError> {
    let dataset = dataset(&db, &team, name).await?;
    let results = results::dataset_results(&db, dataset.id, &dataset.name).await?;
    let keys = metric_keys(&results);
    let names: Vec<&String> = keys.keys().collect();
    let pick = |asked: &Option<String>, default: usize| -> Result<Option<String>, PageError> {
        match asked.as_deref().filter(|s| !s.is_empty()) {
            Some(key) if keys.contains_key(key) => Ok(Some(key.to_string())),
            Some(key) => Err(PageError::not_found(
                &team,
                format!("`{}` has no metric `{key}`.", dataset.name),
            )),
            None => Ok(names.get(default).or(names.first()).map(|s| s.to_string())),
        }
    };
    let x = pick(&query.x, 0)?;
    let y = pick(&query.y, 1)?;
    let options = |chosen: &Option<String>| -> Vec<SelectOption> {
        keys.iter()
            .map(|(key, dir)| SelectOption {
                value: key.clone(),
                label: format!(
                    "{key} ({})",
                    match dir {
                        Direction::LowerIsBetter => "↓",
                        Direction::HigherIsBetter => "↑",
                    }
                ),
                selected: chosen.as_deref() == Some(key.as_str()),
            })
            .collect()
    };
    let mut page = ParetoPage {
        team: team.name.clone(),
        dataset: dataset.name.clone(),
        tabs: dataset_tabs(&dataset.name, "Pareto"),
        action: paths::pareto(&dataset.name),
        x_options: options(&x),
        y_options: options(&y),
        chart: String::new(),
        rows: Vec::new(),
        hypervolume: String::new(),
        units: String::new(),
        reference: String::new(),
        message: None,
    };
    let (Some(x), Some(y)) = (x, y) else {
        page.message = Some("No scores yet: run a scorer from the Results tab.".into());
        return html(&page);
    };
    let directions = [stats_direction(keys[&x]), stats_direction(keys[&y])];
    // Systems with a value on both axes.
    let systems: Vec<(&str, f64, f64, Option<f64>)> = results
        .systems
        .iter()
        .filter_map(|s| {
            Some((
                s.system.as_str(),
                s.metrics.get(&x)?.mean,
                s.metrics.get(&y)?.mean,
                lambda(&s.metadata),
            ))
        })
        .filter(|(_, a, b, _)| a.is_finite() && b.is_finite())
        .collect();
    // Each mean's 95% interval (mean ± 1.96·stderr), for the error bars.
    let interval = |system: &str, key: &str| {
        results
            .systems
            .iter()
            .find(|s| s.system == system)
            .and_then(|s| s.metrics.get(key))
            .map(|m| [m.mean - Z95 * m.stderr, m.mean + Z95 * m.stderr])
    };
    if systems.is_empty() {
        page.message = Some(format!("No system has values for both `{x}` and `{y}`."));
        return html(&page);
    }
    let points: Vec<Vec<f64>> = systems.iter().map(|s| vec![s.1, s.2]).collect();
    let front = pareto_front(&points, &directions).map_err(PageError::internal)?;
    // The reference: the worst value on each axis.
    let worst = |axis: usize| {
        let values = points.iter().map(|p| p[axis]);
        match directions[axis] {
            evaluator_stats::Direction::HigherIsBetter => values.fold(f64::INFINITY, f64::min),
            evaluator_stats::Direction::LowerIsBetter => values.fold(f64::NEG_INFINITY, f64::max),
        }
    };
    let reference = [worst(0), worst(1)];
    let volume = hypervolume(&points, &directions, &reference).map_err(PageError::internal)?;
    // Clicking a point compares that system with the best other front system.
    let partner = |i: usize| -> Option<&str> {
        front
            .iter()
            .copied()
            .find(|&j| j != i)
            .or_else(|| (0..systems.len()).find(|&j| j != i))
            .map(|j| systems[j].0)
    };
    let compare_href = |i: usize| {
        let a = systems[i].0;
        match partner(i) {
            Some(b) => href(&paths::compare(&dataset.name), &[("a", a), ("b", b)]),
            None => href(&paths::compare(&dataset.name), &[("a", a)]),
        }
    };
    let scatter = Scatter {
        x_label: x.clone(),
        y_label: y.clone(),
        x_higher_is_better: keys[&x] == Direction::HigherIsBetter,
        y_higher_is_better: keys[&y] == Direction::HigherIsBetter,
        points: systems
            .iter()
            .enumerate()
            .map(|(i, s)| ScatterPoint {
                label: s.0.to_string(),
                x: s.1,
                y: s.2,
                on_front: front.contains(&i),
                lambda: s.3,
                href: Some(compare_href(i)),
                x_ci: interval(s.0, &x),
                y_ci: interval(s.0, &y),
            })
            .collect(),
    };
    page.chart = scatter_svg(&scatter);
    page.rows = systems
        .iter()
        .enumerate()
        .map(|(i, s)| ParetoRow {
            system: s.0.to_string(),
            x: number(s.1),
            y: number(s.2),
            on_front: front.contains(&i),
            lambda: s.3.map(|l| l.to_string()).unwrap_or_default(),
            href: compare_href(i),
        })
        .collect();
    page.hypervolume = number(volume);
    page.reference = format!(
        "(x = {}, y = {})",
        number(reference[0]),
        number(reference[1])
    );
    page.units = format!("{x} × {y}");
    html(&page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_is_read_from_either_key_as_number_or_numeric_text() {
        assert_eq!(lambda(&serde_json::json!({"lambda": 0.3})), Some(0.3));
        assert_eq!(lambda(&serde_json::json!({"λ": "0.7"})), Some(0.7));
        assert_eq!(lambda(&serde_json::json!({"lambda": "high"})), None);
        assert_eq!(lambda(&serde_json::json!({})), None);
    }
}
