//! `/datasets/{dataset}/pareto?x=METRIC&y=METRIC`: the systems on two metrics
//! (`<module>/<metric>` as in the results; by default the first two), the
//! overall Pareto front under the metrics' directions, and the sweeps overlaid:
//! systems grouped by their metadata `sweep` (the trainer's `soup` and `morl`),
//! or with a numeric `lambda`/`λ` and no `sweep` as one unnamed "λ sweep", each
//! with its own marker shape, colour and dashed line in λ order, and a legend.
//! Hovering a point (or a table row) names its values, front status, sweep, λ
//! and MORL weights. Each sweep's own front and hypervolume are listed beside
//! the overall hypervolume, all measured from one reference point (each axis's
//! worst value over the systems shown) so that they compare. The numbers come
//! from [`crate::pareto::pareto`], which the API and the CLI also use.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use sqlx::PgPool;
use web::charts::{Scatter, ScatterPoint, scatter_svg, sweep_marker_svg};
use web::format::{href, number};
use web::paths;
use web::views::{ParetoPage, ParetoRow, ParetoSweepRow, SelectOption, dataset_tabs};

use super::{PageError, SignedIn, dataset, html};
use crate::domain::Direction;
use crate::pareto::{Better, ParetoError, UNNAMED_SWEEP, pareto};
use crate::results;

#[derive(Debug, Deserialize)]
pub(super) struct AxesQuery {
    x: Option<String>,
    y: Option<String>,
}

/// How the legend, the hover text and the tables name a sweep: `sweep soup`,
/// or the unnamed one as it is.
fn sweep_label(name: &str) -> String {
    if name == UNNAMED_SWEEP {
        name.to_string()
    } else {
        format!("sweep {name}")
    }
}

/// A system's metadata `weights` (MORL's reward weights), as `rougeL 0.75 ·
/// fk_grade 0.25` when it is a JSON object or the text of one (the trainer
/// pushes metadata as strings), else as written.
fn weights(metadata: &serde_json::Value) -> Option<String> {
    let value = metadata.get("weights")?;
    let parsed = match value {
        serde_json::Value::String(text) => serde_json::from_str(text).ok(),
        other => Some(other.clone()),
    };
    let text = match parsed {
        Some(serde_json::Value::Object(map)) if !map.is_empty() => map
            .iter()
            .map(|(reward, w)| match w {
                serde_json::Value::String(s) => format!("{reward} {s}"),
                other => format!("{reward} {other}"),
            })
            .collect::<Vec<_>>()
            .join(" · "),
        _ => match value {
            serde_json::Value::String(s) => s.trim().to_string(),
            other => other.to_string(),
        },
    };
    (!text.is_empty()).then_some(text)
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
    let keys = results::metric_keys(&results);
    let view = pareto(&results, query.x.as_deref(), query.y.as_deref());
    let (x, y) = match &view {
        Ok(v) => (Some(v.x.clone()), Some(v.y.clone())),
        Err(_) => (None, None),
    };
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
        show_weights: false,
        sweeps: Vec::new(),
        hypervolume: String::new(),
        units: String::new(),
        reference: String::new(),
        message: None,
    };
    let view = match view {
        Ok(view) => view,
        Err(ParetoError::NoMetrics { .. }) => {
            page.message = Some("No scores yet: run a scorer from the Results tab.".into());
            return html(&page);
        }
        Err(error @ ParetoError::UnknownMetric { .. }) => {
            return Err(PageError::not_found(&team, error.to_string()));
        }
        Err(error @ ParetoError::Stats(_)) => return Err(PageError::internal(error)),
    };
    let Some(reference) = view.reference else {
        page.message = view.message.clone();
        return html(&page);
    };
    let points = &view.points;
    let sweep_index = |name: &Option<String>| {
        name.as_ref()
            .and_then(|n| view.sweeps.iter().position(|s| &s.name == n))
    };
    // Clicking a point compares that system with the first other front system.
    let partner = |i: usize| -> Option<&str> {
        let others = || points.iter().enumerate().filter(move |&(j, _)| j != i);
        others()
            .find(|(_, p)| p.on_front)
            .or_else(|| others().next())
            .map(|(_, p)| p.system.as_str())
    };
    let compare_href = |i: usize| {
        let a = points[i].system.as_str();
        match partner(i) {
            Some(b) => href(&paths::compare(&dataset.name), &[("a", a), ("b", b)]),
            None => href(&paths::compare(&dataset.name), &[("a", a)]),
        }
    };
    let scatter = Scatter {
        x_label: view.x.clone(),
        y_label: view.y.clone(),
        x_higher_is_better: view.directions.x == Better::Higher,
        y_higher_is_better: view.directions.y == Better::Higher,
        points: points
            .iter()
            .enumerate()
            .map(|(i, p)| ScatterPoint {
                label: p.system.clone(),
                x: p.x,
                y: p.y,
                on_front: p.on_front,
                sweep: sweep_index(&p.sweep),
                lambda: p.lambda,
                notes: weights(&p.metadata)
                    .map(|w| vec![format!("weights {w}")])
                    .unwrap_or_default(),
                href: Some(compare_href(i)),
                x_ci: Some(p.x_ci),
                y_ci: Some(p.y_ci),
            })
            .collect(),
        sweeps: view.sweeps.iter().map(|s| sweep_label(&s.name)).collect(),
    };
    page.chart = scatter_svg(&scatter);
    page.rows = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let sweep = sweep_index(&p.sweep);
            let weights = weights(&p.metadata).unwrap_or_default();
            let mut about = vec![
                if p.on_front {
                    "on the front"
                } else {
                    "dominated"
                }
                .to_string(),
            ];
            about.extend(p.sweep.as_deref().map(sweep_label));
            about.extend(p.lambda.map(|l| format!("λ = {l}")));
            if !weights.is_empty() {
                about.push(format!("weights {weights}"));
            }
            ParetoRow {
                system: p.system.clone(),
                sweep: p.sweep.as_deref().map(sweep_label).unwrap_or_default(),
                marker: sweep.map(sweep_marker_svg).unwrap_or_default(),
                x: number(p.x),
                y: number(p.y),
                on_front: p.on_front,
                lambda: p.lambda.map(|l| l.to_string()).unwrap_or_default(),
                title: format!(
                    "{}: {} = {}, {} = {} ({})",
                    p.system,
                    view.x,
                    number(p.x),
                    view.y,
                    number(p.y),
                    about.join(", ")
                ),
                weights,
                href: compare_href(i),
            }
        })
        .collect();
    page.show_weights = page.rows.iter().any(|r| !r.weights.is_empty());
    page.sweeps = view
        .sweeps
        .iter()
        .enumerate()
        .map(|(i, s)| ParetoSweepRow {
            label: sweep_label(&s.name),
            marker: sweep_marker_svg(i),
            points: s.points.len(),
            on_front: s.front.len(),
            hypervolume: number(s.hypervolume),
        })
        .collect();
    page.hypervolume = number(view.hypervolume);
    page.reference = format!(
        "(x = {}, y = {})",
        number(reference[0]),
        number(reference[1])
    );
    page.units = format!("{} × {}", view.x, view.y);
    html(&page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_read_from_json_text_or_an_object_and_kept_otherwise() {
        use serde_json::json;
        assert_eq!(
            weights(&json!({"weights": "{\"rougeL\":0.75,\"fk_grade\":0.25}"})).as_deref(),
            Some("rougeL 0.75 · fk_grade 0.25")
        );
        assert_eq!(
            weights(&json!({"weights": {"a": "0.5"}})).as_deref(),
            Some("a 0.5")
        );
        assert_eq!(
            weights(&json!({"weights": "0.75/0.25"})).as_deref(),
            Some("0.75/0.25")
        );
        assert_eq!(weights(&json!({"weights": ""})), None);
        assert_eq!(weights(&json!({})), None);
    }
}
