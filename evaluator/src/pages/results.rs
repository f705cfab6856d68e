//! `/datasets/{dataset}`: systems × metrics (mean ± 1.96·stderr), sortable by
//! any column through the address (`?sort=KEY&order=asc|desc`), its CSV and
//! JSON exports, and the forms that start a scoring run or a comparison.
//! Learned rewards (`push-scores`) get columns of their own after the
//! modules', badged and tinted, and a table of their provenance below.

use std::collections::BTreeMap;

use axum::Form;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use sqlx::PgPool;
use web::format::{href, number, plus_minus};
use web::paths;
use web::views::{
    LearnedRewardRow, ResultCell, ResultColumn, ResultRow, ResultsPage, SelectOption, dataset_tabs,
};

use super::{Dataset, PageError, SignedIn, dataset, html};
use crate::db::{modules, review};
use crate::domain::{DatasetResults, Direction, LearnedReward, Module, ModuleKind, Team};
use crate::jobs::{self, CompareRequest, JobRefused, ScoreRequest};
use crate::results::{self, Z95};

#[derive(Debug, Default, Deserialize)]
pub(super) struct SortQuery {
    #[serde(default)]
    sort: String,
    #[serde(default)]
    order: String,
}

/// A module as the selects name it: its name and version, and the start of
/// its SHA-256 when another module of the team has the same name. (Module ids
/// are global across teams; the pages do not show them.)
fn module_label(module: &Module, all: &[Module]) -> String {
    if all.iter().filter(|m| m.name == module.name).count() > 1 {
        format!("{} {} · {}", module.name, module.version, short_sha(module))
    } else {
        format!("{} {}", module.name, module.version)
    }
}

fn short_sha(module: &Module) -> String {
    format!("sha {}", module.sha256.chars().take(8).collect::<String>())
}

async fn build(
    db: &PgPool,
    team: &Team,
    dataset: &Dataset,
    sort: &SortQuery,
    error: Option<String>,
) -> Result<ResultsPage, PageError> {
    let mut results = results::dataset_results(db, dataset.id, &dataset.name).await?;
    let mut keys: Vec<(String, Direction)> = results::metric_keys(&results).into_iter().collect();
    // A learned reward's provenance, by its key: the newest push's (all of a
    // metric's pushes share the model's sha256).
    let mut learned: BTreeMap<String, &LearnedReward> = BTreeMap::new();
    let mut provenance: Vec<LearnedRewardRow> = Vec::new();
    for system in &results.systems {
        for (key, summary) in &system.metrics {
            let Some(about) = &summary.learned else {
                continue;
            };
            learned
                .entry(key.clone())
                .and_modify(|newest| {
                    if about.imported_at > newest.imported_at {
                        *newest = about;
                    }
                })
                .or_insert(about);
            provenance.push(LearnedRewardRow {
                metric: key.clone(),
                system: system.system.clone(),
                source: about.source.replace('_', " "),
                model: about.model.clone(),
                sha: about.sha256.chars().take(12).collect(),
                sha256: about.sha256.clone(),
                command: about.command.clone(),
                input: format!("{} ({} lines, {})", about.input, about.lines, about.file),
                imported: format!("{} UTC by {}", about.imported_at, about.imported_by),
            });
        }
    }
    provenance.sort_by(|a, b| (&a.metric, &a.system).cmp(&(&b.metric, &b.system)));
    // The modules' columns first, then the learned rewards', so the two kinds
    // stand apart.
    keys.sort_by_key(|(key, _)| learned.contains_key(key));
    let learned: BTreeMap<String, String> = learned
        .into_iter()
        .map(|(key, about)| {
            let label = format!(
                "learned reward: {} {}, sha256 {}…, pushed with push-scores (not a sandboxed module)",
                about.source.replace('_', " "),
                about.model,
                about.sha256.chars().take(12).collect::<String>()
            );
            (key, label)
        })
        .collect();
    let base = paths::dataset(&dataset.name);
    let descending = sort.order == "desc";
    if let Some((key, _)) = keys.iter().find(|(k, _)| *k == sort.sort) {
        // Systems without the metric go last whatever the order.
        results.systems.sort_by(|a, b| {
            let (x, y) = (a.metrics.get(key), b.metrics.get(key));
            match (x, y) {
                (Some(x), Some(y)) => {
                    let o = x.mean.total_cmp(&y.mean);
                    if descending { o.reverse() } else { o }
                }
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            }
            .then_with(|| a.system.cmp(&b.system))
        });
    } else if sort.sort == "system" && descending {
        results.systems.reverse();
    }
    let columns = keys
        .iter()
        .map(|(key, direction)| {
            let sorted = *key == sort.sort;
            let lower = *direction == Direction::LowerIsBetter;
            // First click: best first; a second click flips.
            let next = match (sorted, descending) {
                (true, true) => "asc",
                (true, false) => "desc",
                (false, _) if lower => "asc",
                (false, _) => "desc",
            };
            ResultColumn {
                key: key.clone(),
                arrow: if lower { "↓" } else { "↑" },
                direction: if lower {
                    "lower is better"
                } else {
                    "higher is better"
                },
                sort_href: href(&base, &[("sort", key), ("order", next)]),
                aria_sort: match (sorted, descending) {
                    (true, true) => "descending",
                    (true, false) => "ascending",
                    (false, _) => "none",
                },
                learned: learned.get(key).cloned(),
            }
        })
        .collect();
    // Each column's best mean, by the metric's direction (several on a tie).
    let best: BTreeMap<&String, f64> = keys
        .iter()
        .filter_map(|(key, direction)| {
            let means = results
                .systems
                .iter()
                .filter_map(|s| s.metrics.get(key))
                .map(|m| m.mean)
                .filter(|m| m.is_finite());
            let best = match direction {
                Direction::HigherIsBetter => means.fold(f64::NEG_INFINITY, f64::max),
                Direction::LowerIsBetter => means.fold(f64::INFINITY, f64::min),
            };
            best.is_finite().then_some((key, best))
        })
        .collect();
    let rows = results
        .systems
        .iter()
        .map(|system| ResultRow {
            system: system.system.clone(),
            metadata: match &system.metadata {
                serde_json::Value::Object(map) if map.is_empty() => String::new(),
                other => other.to_string(),
            },
            cells: keys
                .iter()
                .map(|(key, _)| match system.metrics.get(key) {
                    Some(m) => {
                        let half = Z95 * m.stderr;
                        ResultCell {
                            best: best.get(key) == Some(&m.mean) && results.systems.len() > 1,
                            text: plus_minus(m.mean, half),
                            mean: m.mean.to_string(),
                            title: format!(
                                "n = {}, nulls = {}, 95% interval {} to {}{}",
                                m.n,
                                m.nulls,
                                number(m.mean - half),
                                number(m.mean + half),
                                m.learned.as_ref().map_or(String::new(), |about| format!(
                                    "; learned reward, model sha256 {}…",
                                    about.sha256.chars().take(12).collect::<String>()
                                ))
                            ),
                            learned: m.learned.is_some(),
                        }
                    }
                    None => ResultCell {
                        best: false,
                        text: "—".into(),
                        mean: String::new(),
                        title: "not scored".into(),
                        learned: learned.contains_key(key),
                    },
                })
                .collect(),
        })
        .collect();
    let stored = modules::list(db, team.id).await?;
    let scorers = stored
        .iter()
        .filter(|m| m.kind == ModuleKind::Scorer)
        .map(|m| SelectOption {
            value: m.id.to_string(),
            label: module_label(m, &stored),
            selected: false,
        })
        .collect();
    let mut judges: Vec<SelectOption> = stored
        .iter()
        .filter(|m| m.kind == ModuleKind::Judge)
        .map(|m| SelectOption {
            value: m.id.to_string(),
            label: format!("{} (judge)", module_label(m, &stored)),
            selected: false,
        })
        .collect();
    for m in stored.iter().filter(|m| m.kind == ModuleKind::Scorer) {
        for metric in &m.metrics {
            judges.push(SelectOption {
                value: format!("{}:{}", m.id, metric.name),
                label: format!(
                    "{}/{} ({}{})",
                    m.name,
                    metric.name,
                    super::overview::direction_label(metric.direction),
                    if stored.iter().filter(|o| o.name == m.name).count() > 1 {
                        format!(", {} {}", m.version, short_sha(m))
                    } else {
                        String::new()
                    }
                ),
                selected: false,
            });
        }
    }
    let name_order = if sort.sort == "system" && !descending {
        "desc"
    } else {
        "asc"
    };
    Ok(ResultsPage {
        team: team.name.clone(),
        dataset: dataset.name.clone(),
        tabs: dataset_tabs(&dataset.name, "Results"),
        summary: format!(
            "{} items, {} systems scored",
            review::item_count(db, dataset.id).await?,
            results.systems.len()
        ),
        columns,
        rows,
        name_sort_href: href(&base, &[("sort", "system"), ("order", name_order)]),
        csv_href: paths::results_csv(&dataset.name),
        json_href: paths::results_json(&dataset.name),
        jobs_action: paths::jobs_form(&dataset.name),
        scorers,
        judges,
        error,
        learned: provenance,
    })
}

/// `GET /datasets/{dataset}[?sort=KEY&order=asc|desc]`.
pub(super) async fn page(
    State(db): State<PgPool>,
    SignedIn(team): SignedIn,
    name: Result<Path<String>, PathRejection>,
    Query(sort): Query<SortQuery>,
) -> Result<Response, PageError> {
    let dataset = dataset(&db, &team, name).await?;
    html(&build(&db, &team, &dataset, &sort, None).await?)
}

/// `GET /datasets/{dataset}/results.json`: the same document as
/// `GET /api/v1/datasets/{dataset}/results`.
pub(super) async fn json(
    State(db): State<PgPool>,
    SignedIn(team): SignedIn,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, PageError> {
    let dataset = dataset(&db, &team, name).await?;
    let results = results::dataset_results(&db, dataset.id, &dataset.name).await?;
    Ok(axum::Json(results).into_response())
}

/// One CSV field, quoted when it needs to be (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The results as CSV, one row per system and metric.
pub(super) fn results_csv(results: &DatasetResults) -> String {
    let mut out = String::from("system,metric,direction,mean,stderr,ci_low,ci_high,n,nulls\r\n");
    for system in &results.systems {
        for (key, m) in &system.metrics {
            let half = Z95 * m.stderr;
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{}\r\n",
                csv_field(&system.system),
                csv_field(key),
                m.direction.as_str(),
                m.mean,
                m.stderr,
                m.mean - half,
                m.mean + half,
                m.n,
                m.nulls
            ));
        }
    }
    out
}

/// `GET /datasets/{dataset}/results.csv`: `system,metric,direction,mean,stderr,
/// ci_low,ci_high,n,nulls`, the interval being mean ± 1.96·stderr.
pub(super) async fn csv(
    State(db): State<PgPool>,
    SignedIn(team): SignedIn,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, PageError> {
    let dataset = dataset(&db, &team, name).await?;
    let results = results::dataset_results(&db, dataset.id, &dataset.name).await?;
    let disposition = HeaderValue::from_str(&format!(
        "attachment; filename=\"{}-results.csv\"",
        dataset.name
    ))
    .map_err(PageError::internal)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        results_csv(&results),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct JobForm {
    kind: String,
    module: String,
}

/// `POST /datasets/{dataset}/jobs` (`kind=score|compare`, `module=ID` or, for
/// a scorer judging a comparison, `ID:METRIC`): a job over every system of the
/// dataset; `303` to the overview (score) or the comparison's win-rate page,
/// or the results page again with the refusal (`422`).
pub(super) async fn create_job(
    State(db): State<PgPool>,
    SignedIn(team): SignedIn,
    name: Result<Path<String>, PathRejection>,
    Form(form): Form<JobForm>,
) -> Result<Response, PageError> {
    let dataset = dataset(&db, &team, name).await?;
    let created = match form.kind.as_str() {
        "score" => jobs::create_score_job(
            &db,
            team.id,
            &ScoreRequest {
                dataset: dataset.name.clone(),
                modules: vec![form.module.clone()],
                systems: None,
            },
        )
        .await
        .map(|_| Redirect::to("/").into_response()),
        "compare" => {
            let (judge, metric) = match form.module.split_once(':') {
                Some((id, metric)) => (id.to_string(), Some(metric.to_string())),
                None => (form.module.clone(), None),
            };
            jobs::create_compare_job(
                &db,
                team.id,
                &CompareRequest {
                    dataset: dataset.name.clone(),
                    judge,
                    metric,
                    systems: None,
                    baseline: None,
                },
            )
            .await
            .map(|job| {
                Redirect::to(&format!(
                    "{}?job={}",
                    paths::winrates(&dataset.name),
                    job.id
                ))
                .into_response()
            })
        }
        other => Err(JobRefused::Invalid(format!("unknown job kind `{other}`"))),
    };
    match created {
        Ok(response) => Ok(response),
        Err(JobRefused::Database(e)) => Err(e.into()),
        Err(refusal) => {
            let page = build(
                &db,
                &team,
                &dataset,
                &SortQuery::default(),
                Some(refusal.to_string()),
            )
            .await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, html(&page)?).into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_with_commas_or_quotes_are_quoted() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
