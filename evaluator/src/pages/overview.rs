//! `/`: the team's datasets, systems, modules and recent jobs (with failures
//! and their causes), and `/fragments/jobs`, the jobs table htmx polls while a
//! job is unfinished.

use axum::extract::{Query, State};
use axum::http::HeaderValue;
use axum::response::Response;
use serde::Deserialize;
use sqlx::PgPool;
use web::paths;
use web::views::{DatasetRow, JobsFragment, MetricRow, ModuleRow, OverviewPage, SystemRow};

use super::{PageError, SignedIn, html, job_row};
use crate::db::{datasets, modules, review};
use crate::domain::{Direction, JobId, JobState, Module};
use crate::jobs;

/// Recent jobs shown.
const RECENT_JOBS: i64 = 20;

/// A module as the pages show it.
pub(super) fn module_row(m: &Module) -> ModuleRow {
    ModuleRow {
        id: m.id.0,
        name: m.name.clone(),
        version: m.version.clone(),
        kind: m.kind.as_str().into(),
        description: m.description.clone(),
        sha: m.sha256.chars().take(12).collect(),
        metrics: m
            .metrics
            .iter()
            .map(|metric| MetricRow {
                name: metric.name.clone(),
                direction: direction_label(metric.direction).into(),
                description: metric.description.clone(),
            })
            .collect(),
    }
}

/// `↑ higher is better` / `↓ lower is better`: an arrow and words, not a colour.
pub(super) fn direction_label(direction: Direction) -> &'static str {
    match direction {
        Direction::LowerIsBetter => "↓ lower is better",
        Direction::HigherIsBetter => "↑ higher is better",
    }
}

/// `GET /`.
pub(super) async fn overview(
    State(db): State<PgPool>,
    SignedIn(team): SignedIn,
) -> Result<Response, PageError> {
    let datasets = datasets::list(&db, team.id).await?;
    let systems = datasets::systems(&db, team.id).await?;
    let mut datasets_of: std::collections::HashMap<_, Vec<String>> = Default::default();
    for (system, dataset) in review::system_datasets(&db, team.id).await? {
        datasets_of.entry(system).or_default().push(dataset);
    }
    let modules = modules::list(&db, team.id).await?;
    let records = jobs::list(&db, team.id, RECENT_JOBS).await?;
    let live = records.iter().any(|j| !j.is_finished());
    let failures = records
        .iter()
        .filter(|j| j.state == JobState::Failed)
        .map(job_row)
        .collect();
    let jobs: Vec<_> = records.iter().map(job_row).collect();
    html(&OverviewPage {
        team: team.name,
        datasets: datasets
            .into_iter()
            .map(|d| DatasetRow {
                href: paths::dataset(&d.name),
                name: d.name,
                items: d.items,
                systems: d.systems,
                generations: d.generations,
            })
            .collect(),
        systems: systems
            .into_iter()
            .map(|s| SystemRow {
                datasets: datasets_of
                    .get(&s.id)
                    .map(|names| names.join(", "))
                    .unwrap_or_default(),
                metadata: s.metadata.to_string(),
                name: s.name,
                generations: s.generations,
            })
            .collect(),
        modules: modules.iter().map(module_row).collect(),
        jobs,
        live,
        poll_url: "/fragments/jobs".into(),
        failures,
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct FragmentQuery {
    job: Option<JobId>,
}

/// `GET /fragments/jobs[?job=ID]`: the recent jobs (or one job) as the table
/// alone. It keeps polling itself while a job is unfinished; when the one job
/// it follows finishes, `HX-Refresh` reloads the page around it (the win-rate
/// page then shows the finished comparison).
pub(super) async fn jobs_fragment(
    State(db): State<PgPool>,
    SignedIn(team): SignedIn,
    Query(query): Query<FragmentQuery>,
) -> Result<Response, PageError> {
    let (records, poll_url) = match query.job {
        Some(id) => (
            jobs::get(&db, team.id, id)
                .await?
                .into_iter()
                .collect::<Vec<_>>(),
            format!("/fragments/jobs?job={id}"),
        ),
        None => (
            jobs::list(&db, team.id, RECENT_JOBS).await?,
            "/fragments/jobs".to_string(),
        ),
    };
    if query.job.is_some() && records.is_empty() {
        return Err(PageError::not_found(&team, "No such job."));
    }
    let live = records.iter().any(|j| !j.is_finished());
    let mut response = html(&JobsFragment {
        jobs: records.iter().map(job_row).collect(),
        live,
        poll_url,
    })?;
    if query.job.is_some() && !live {
        response
            .headers_mut()
            .insert("hx-refresh", HeaderValue::from_static("true"));
    }
    Ok(response)
}
