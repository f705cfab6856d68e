//! `/datasets/{dataset}/compare?a=S1&b=S2[&job=ID&filter=a|b|ties|inconsistent&q=TEXT&page=N]`:
//! the items both systems answered, side by side, with every score of both
//! generations (learned rewards' too, marked `(learned)`) and the judge's
//! verdicts in both presentation orders (from A's point of view, whichever
//! order the comparison stored the pair in), 50 a page.

use std::collections::HashMap;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use sqlx::PgPool;
use web::format::{fixed, href, number, verdict, verdict_long};
use web::paths;
use web::views::{CompareItem, ComparePage, ScorePair, SelectOption, dataset_tabs};

use super::winrates::{default_comparison, job_label};
use super::{PageError, SignedIn, dataset, html};
use crate::db::review::{self, Filter, ReviewQuery};
use crate::domain::{GenerationId, JobId, ModuleId, SystemId};

/// Items per page: 25 pairs of answers is already a long read side by side,
/// and at AlpacaEval's answer lengths (about 2,000 characters each) a page of
/// 50 weighed 0.3 MB and sat at the 100 ms latency goal under load.
pub(super) const PAGE_SIZE: i64 = 25;

/// Responses longer than this many characters show a preview, the whole
/// text behind a disclosure: fifty long answers side by side made pages tens
/// of thousands of pixels tall.
const PREVIEW_CHARS: usize = 400;

/// The first [`PREVIEW_CHARS`] characters (cut at a word) and an ellipsis, or
/// `None` for a text short enough to show whole.
fn preview(text: &str) -> Option<String> {
    if text.chars().count() <= PREVIEW_CHARS + PREVIEW_CHARS / 4 {
        return None;
    }
    let cut: String = text.chars().take(PREVIEW_CHARS).collect();
    let at_word = cut
        .rfind(char::is_whitespace)
        .filter(|&i| i > PREVIEW_CHARS / 2);
    Some(format!(
        "{}…",
        cut[..at_word.unwrap_or(cut.len())].trim_end()
    ))
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct CompareQuery {
    #[serde(default)]
    a: String,
    #[serde(default)]
    b: String,
    #[serde(default)]
    job: String,
    #[serde(default)]
    filter: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: String,
}

/// `GET /datasets/{dataset}/compare?...`.
pub(super) async fn page(
    State(db): State<PgPool>,
    SignedIn(team): SignedIn,
    name: Result<Path<String>, PathRejection>,
    Query(query): Query<CompareQuery>,
) -> Result<Response, PageError> {
    let dataset = dataset(&db, &team, name).await?;
    let systems = review::dataset_systems(&db, dataset.id).await?;
    let find = |name: &str, default: usize| -> Result<Option<(SystemId, String)>, PageError> {
        if name.is_empty() {
            return Ok(systems.get(default).cloned());
        }
        systems
            .iter()
            .find(|s| s.1 == name)
            .map(|s| Some(s.clone()))
            .ok_or_else(|| {
                PageError::not_found(&team, format!("`{}` has no system `{name}`.", dataset.name))
            })
    };
    let a = find(&query.a, 0)?;
    let b = find(&query.b, 1)?;
    let filter = Filter::parse(&query.filter);
    let options = |chosen: &Option<(SystemId, String)>| -> Vec<SelectOption> {
        systems
            .iter()
            .map(|s| SelectOption {
                value: s.1.clone(),
                label: s.1.clone(),
                selected: chosen.as_ref().is_some_and(|c| c.0 == s.0),
            })
            .collect()
    };
    let filter_options = [
        (Filter::All, "all items"),
        (Filter::AWins, "A wins"),
        (Filter::BWins, "B wins"),
        (Filter::Ties, "ties"),
        (Filter::Inconsistent, "position-inconsistent"),
    ]
    .iter()
    .map(|(f, label)| SelectOption {
        value: f.as_str().into(),
        label: (*label).into(),
        selected: *f == filter,
    })
    .collect();
    let mut page = ComparePage {
        team: team.name.clone(),
        dataset: dataset.name.clone(),
        tabs: dataset_tabs(&dataset.name, "Compare"),
        action: paths::compare(&dataset.name),
        a_options: options(&a),
        b_options: options(&b),
        job_options: Vec::new(),
        filter_options,
        q: query.q.clone(),
        a: a.as_ref().map(|s| s.1.clone()).unwrap_or_default(),
        b: b.as_ref().map(|s| s.1.clone()).unwrap_or_default(),
        items: Vec::new(),
        range: String::new(),
        prev_href: None,
        next_href: None,
        message: None,
        metric_judge: None,
    };
    let (Some((a_id, a_name)), Some((b_id, b_name))) = (a, b) else {
        page.message = Some("This dataset needs two systems to compare.".into());
        return html(&page);
    };
    if a_id == b_id {
        page.message = Some("Pick two different systems.".into());
        return html(&page);
    }
    let jobs = review::pair_jobs(&db, team.id, dataset.id, a_id, b_id).await?;
    let job = if query.job.is_empty() {
        default_comparison(&jobs)
    } else {
        let id: Option<JobId> = query.job.parse().ok();
        Some(jobs.iter().find(|j| Some(j.id) == id).ok_or_else(|| {
            PageError::not_found(
                &team,
                "No such comparison of these two systems.".to_string(),
            )
        })?)
    };
    page.metric_judge = job.and_then(|j| {
        j.metric
            .as_ref()
            .map(|metric| format!("{}/{metric}", j.judge))
    });
    page.job_options = jobs
        .iter()
        .map(|j| SelectOption {
            value: j.id.to_string(),
            label: job_label(j),
            selected: job.is_some_and(|c| c.id == j.id),
        })
        .collect();
    let number_of_page: i64 = query.page.parse().unwrap_or(1).max(1);
    // PostgreSQL text cannot hold U+0000: such a search would fail, not find nothing.
    let cleaned = query.q.replace('\0', "");
    let search = cleaned.trim();
    let (total, rows) = review::items(
        &db,
        &ReviewQuery {
            dataset_id: dataset.id,
            system_a: a_id,
            system_b: b_id,
            job: job.map(|j| (j.id, j.forward)),
            filter,
            search: Some(search).filter(|s| !s.is_empty()),
            limit: PAGE_SIZE,
            offset: (number_of_page - 1) * PAGE_SIZE,
        },
    )
    .await?;
    let generations: Vec<GenerationId> = rows
        .iter()
        .flat_map(|r| [r.generation_a, r.generation_b])
        .collect();
    let scores = review::scores(&db, &generations).await?;
    let item_ids: Vec<_> = rows.iter().map(|r| r.item_id).collect();
    let mut preferences: HashMap<_, Vec<String>> = HashMap::new();
    for (item, judge, preference) in
        crate::db::judgments::preferences_for(&db, &item_ids, a_id, b_id).await?
    {
        let said = match preference {
            Some(p) => format!("{judge}: P(B better) = {}", fixed(p, 2)),
            None => format!("{judge}: no verdict"),
        };
        preferences.entry(item).or_default().push(said);
    }
    // Module names as in the results: `name#id` when two modules share a name.
    let mut ids_by_name: HashMap<&str, Vec<ModuleId>> = HashMap::new();
    for s in &scores {
        let ids = ids_by_name.entry(&s.module).or_default();
        if !ids.contains(&s.module_id) {
            ids.push(s.module_id);
        }
    }
    let key = |s: &review::GenerationScore| {
        if ids_by_name
            .get(s.module.as_str())
            .is_some_and(|ids| ids.len() > 1)
        {
            format!("{}#{}/{}", s.module, s.module_id, s.metric)
        } else {
            format!("{}/{}", s.module, s.metric)
        }
    };
    let mut by_generation: HashMap<GenerationId, Vec<(String, Option<f64>)>> = HashMap::new();
    let mut metric_order: Vec<String> = Vec::new();
    for s in &scores {
        let k = key(s);
        if !metric_order.contains(&k) {
            metric_order.push(k.clone());
        }
        by_generation
            .entry(s.generation_id)
            .or_default()
            .push((k, s.value));
    }
    // Learned rewards after the modules' metrics, named apart: they are a
    // reward model's scores, pushed from outside the sandbox.
    for (generation, metric, value) in crate::db::scores::values_of(&db, &generations).await? {
        let k = format!("{metric} (learned)");
        if !metric_order.contains(&k) {
            metric_order.push(k.clone());
        }
        by_generation
            .entry(generation)
            .or_default()
            .push((k, Some(value)));
    }
    let value = |generation: GenerationId, metric: &str| -> String {
        by_generation
            .get(&generation)
            .and_then(|list| list.iter().find(|(k, _)| k == metric))
            .map(|(_, v)| v.map(number).unwrap_or_else(|| "null".into()))
            .unwrap_or_else(|| "—".into())
    };
    page.items = rows
        .iter()
        .map(|r| CompareItem {
            key: r.key.clone(),
            prompt: r.prompt.clone(),
            reference: r.reference.clone(),
            preview_a: preview(&r.response_a),
            preview_b: preview(&r.response_b),
            response_a: r.response_a.clone(),
            response_b: r.response_b.clone(),
            scores: metric_order
                .iter()
                .filter(|m| {
                    by_generation
                        .get(&r.generation_a)
                        .is_some_and(|l| l.iter().any(|(k, _)| k == *m))
                        || by_generation
                            .get(&r.generation_b)
                            .is_some_and(|l| l.iter().any(|(k, _)| k == *m))
                })
                .map(|m| ScorePair {
                    metric: m.clone(),
                    a: value(r.generation_a, m),
                    b: value(r.generation_b, m),
                })
                .collect(),
            a_first: verdict(r.a_first),
            b_first: verdict(r.b_first),
            outcome: verdict(r.outcome),
            outcome_long: if job.is_some() {
                verdict_long(r.outcome)
            } else {
                "no comparison"
            },
            inconsistent: r.b_first.is_some_and(|b| Some(b) != r.a_first),
            judge_preferences: preferences.remove(&r.item_id).unwrap_or_default(),
        })
        .collect();
    let job_param = job.map(|j| j.id.to_string()).unwrap_or_default();
    let link = |n: i64| {
        let n = n.to_string();
        href(
            &paths::compare(&dataset.name),
            &[
                ("a", &a_name),
                ("b", &b_name),
                ("job", &job_param),
                ("filter", filter.as_str()),
                ("q", search),
                ("page", if n == "1" { "" } else { &n }),
            ],
        )
    };
    let first = (number_of_page - 1) * PAGE_SIZE;
    if rows.is_empty() {
        page.range = if number_of_page > 1 {
            "No items on this page.".into()
        } else {
            "No items match.".into()
        };
    } else {
        page.range = format!(
            "Items {}–{} of {total}{}",
            first + 1,
            first + rows.len() as i64,
            if job.is_none() {
                " · no comparison of this pair yet, so no verdicts"
            } else {
                ""
            }
        );
    }
    if number_of_page > 1 {
        page.prev_href = Some(link(number_of_page - 1));
    }
    if first + (rows.len() as i64) < total {
        page.next_href = Some(link(number_of_page + 1));
    }
    html(&page)
}
