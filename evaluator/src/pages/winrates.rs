//! `/datasets/{dataset}/winrates[?job=ID]`: a comparison's pairwise win rates
//! as an N×N heatmap (intervals on hover), its pairs as a table, and its
//! Bradley–Terry leaderboard. Without `job`, the newest succeeded comparison.

use std::collections::HashMap;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use sqlx::PgPool;
use web::charts::{HeatCell, Heatmap, heat_colour, heatmap_svg};
use web::format::{fixed, href};
use web::paths;
use web::views::{LeaderRow, PairRow, SelectOption, WinratesPage, dataset_tabs};

use super::{PageError, SignedIn, dataset, html, job_row};
use crate::db::review::{self, CompareJob};
use crate::domain::{JobId, JobState, PairResult};
use crate::{jobs, results};

#[derive(Debug, Deserialize)]
pub(super) struct JobQuery {
    job: Option<String>,
}

/// How a comparison job is named in selects: by its judge, size, state and
/// time (job ids are global across teams; the pages do not show them).
pub(super) fn job_label(job: &CompareJob) -> String {
    let judge = match &job.metric {
        Some(metric) => format!("{}/{}", job.judge, metric),
        None => format!("{} (judge)", job.judge),
    };
    format!(
        "{judge} · {} systems · {} · {}",
        job.systems, job.state, job.created
    )
}

/// Whether a comparison is decided by a length metric (the `length` module, or
/// a metric named for words, characters or tokens): its length-controlled rate
/// would control for the very thing that decides it.
pub(super) fn decided_by_length(job: &CompareJob) -> bool {
    job.metric.as_deref().is_some_and(|metric| {
        job.judge == "length"
            || ["length", "words", "chars", "characters", "tokens"]
                .iter()
                .any(|word| metric.to_lowercase().contains(word))
    })
}

/// The comparison a page shows when none is asked for: the newest succeeded
/// one with a judge module, else the newest succeeded one, else the newest.
/// (A judge module's verdicts are what a comparison is usually run for; pairs
/// decided by a scorer's metric are a view of scores the results page shows.)
pub(super) fn default_comparison(jobs: &[CompareJob]) -> Option<&CompareJob> {
    let succeeded = || jobs.iter().filter(|j| j.state == JobState::Succeeded);
    succeeded()
        .find(|j| j.metric.is_none())
        .or_else(|| succeeded().next())
        .or(jobs.first())
}

/// The heatmap of a comparison's pairs, systems in `order` (others appended
/// by name).
pub(super) fn heatmap(pairs: &[PairResult], order: &[String]) -> Heatmap {
    let mut systems: Vec<String> = order.to_vec();
    let mut extra: Vec<String> = pairs
        .iter()
        .flat_map(|p| [p.a.clone(), p.b.clone()])
        .filter(|s| !systems.contains(s))
        .collect();
    extra.sort();
    extra.dedup();
    systems.extend(extra);
    let index: HashMap<&str, usize> = systems
        .iter()
        .enumerate()
        .map(|(i, s)| (s.as_str(), i))
        .collect();
    let n = systems.len();
    let mut cells = vec![vec![None; n]; n];
    for pair in pairs {
        let (Some(&i), Some(&j), Some(rate)) = (
            index.get(pair.a.as_str()),
            index.get(pair.b.as_str()),
            pair.win_rate,
        ) else {
            continue;
        };
        let cell = HeatCell {
            win_rate: rate,
            ci: pair.ci,
            wins: pair.wins,
            losses: pair.losses,
            ties: pair.ties,
        };
        cells[j][i] = Some(cell.flipped());
        cells[i][j] = Some(cell);
    }
    Heatmap { systems, cells }
}

fn rate(value: Option<f64>) -> String {
    value.map(|v| fixed(v, 3)).unwrap_or_else(|| "—".into())
}

/// `GET /datasets/{dataset}/winrates[?job=ID]`.
pub(super) async fn page(
    State(db): State<PgPool>,
    SignedIn(team): SignedIn,
    name: Result<Path<String>, PathRejection>,
    Query(query): Query<JobQuery>,
) -> Result<Response, PageError> {
    let dataset = dataset(&db, &team, name).await?;
    let comparisons = review::compare_jobs(&db, team.id, dataset.id).await?;
    let chosen = match query.job.as_deref().filter(|j| !j.is_empty()) {
        Some(text) => {
            let id: Option<JobId> = text.parse().ok();
            let found = comparisons.iter().find(|j| Some(j.id) == id);
            Some(found.ok_or_else(|| {
                PageError::not_found(&team, format!("No such comparison on `{}`.", dataset.name))
            })?)
        }
        None => default_comparison(&comparisons),
    };
    let mut page = WinratesPage {
        show_lc: chosen.is_none_or(|job| !decided_by_length(job)),
        legend: [
            (0.1, "the row system loses more often"),
            (0.5, "even"),
            (0.9, "the row system wins more often"),
        ]
        .into_iter()
        .map(|(rate, meaning)| (heat_colour(rate), meaning))
        .collect(),
        team: team.name.clone(),
        dataset: dataset.name.clone(),
        tabs: dataset_tabs(&dataset.name, "Win rates"),
        action: paths::winrates(&dataset.name),
        job_options: comparisons
            .iter()
            .map(|j| SelectOption {
                value: j.id.to_string(),
                label: job_label(j),
                selected: chosen.is_some_and(|c| c.id == j.id),
            })
            .collect(),
        job_label: String::new(),
        heatmap: String::new(),
        leaderboard: Vec::new(),
        leaderboard_warning: None,
        overlap_note: None,
        pairs: Vec::new(),
        jobs: Vec::new(),
        live: false,
        poll_url: String::new(),
        message: None,
    };
    let Some(job) = chosen else {
        page.message = Some(
            "No comparison on this dataset yet: start one from the Results tab \
             (Compare every pair) or with `evaluator compare`."
                .into(),
        );
        return html(&page);
    };
    page.job_label = format!("Comparison {}", job_label(job));
    if job.state != JobState::Succeeded {
        if let Some(record) = jobs::get(&db, team.id, job.id).await? {
            page.live = !record.is_finished();
            page.jobs = vec![job_row(&record)];
            page.poll_url = format!("/fragments/jobs?job={}", job.id);
            page.message = Some(match record.state {
                JobState::Failed => format!(
                    "This comparison failed: {}",
                    page.jobs[0].error.clone().unwrap_or_default()
                ),
                JobState::Cancelled => "This comparison was cancelled.".to_string(),
                state => {
                    format!("This comparison is {state}; its results appear here when it succeeds.")
                }
            });
        }
        return html(&page);
    }
    // Job ids are per database, and one process may serve several (the
    // tests do): the database's name is part of the key.
    let key = (
        db.connect_options()
            .get_database()
            .unwrap_or_default()
            .to_string(),
        job.id,
    );
    let shown = match finished::get(&key) {
        Some(shown) => shown,
        None => {
            let shown = std::sync::Arc::new(render(&db, job.id, &dataset.name).await?);
            finished::put(key, shown.clone());
            shown
        }
    };
    page.heatmap = shown.heatmap.clone();
    page.leaderboard = shown.leaderboard.clone();
    page.leaderboard_warning = shown.leaderboard_warning.clone();
    page.overlap_note = shown.overlap_note.clone();
    page.pairs = shown.pairs.clone();
    html(&page)
}

/// What the page shows of a succeeded comparison: computed once per job and
/// kept (see [`finished`]), since nothing about it changes any more.
#[derive(Debug)]
struct Finished {
    heatmap: String,
    leaderboard: Vec<LeaderRow>,
    leaderboard_warning: Option<String>,
    overlap_note: Option<String>,
    pairs: Vec<PairRow>,
}

async fn render(db: &PgPool, job_id: JobId, dataset: &str) -> Result<Finished, PageError> {
    let pairs = results::pair_results(db, job_id).await?;
    let leaderboard = results::leaderboard(db, job_id).await?;
    let order: Vec<String> = leaderboard
        .systems
        .iter()
        .map(|e| e.system.clone())
        .collect();
    let heatmap = heatmap_svg(&heatmap(&pairs, &order));
    let rows = leaderboard
        .systems
        .iter()
        .map(|e| LeaderRow {
            rank: e.rank,
            system: e.system.clone(),
            rating: fixed(e.rating, 1),
            ci: format!("{} to {}", fixed(e.ci[0], 1), fixed(e.ci[1], 1)),
            group: e.group,
        })
        .collect();
    let leaderboard_warning = leaderboard.warning.clone();
    let partial = pairs
        .iter()
        .filter(|p| p.n < p.a_items.max(p.b_items))
        .count();
    let overlap_note = (partial > 0).then(|| {
        format!(
            "{partial} of {} pairs were compared on part of their systems' items: only items both \
             systems answered count (n), so those win rates cover fewer items than the systems' means.",
            pairs.len()
        )
    });
    let job_id = job_id.to_string();
    let pair_rows = pairs
        .iter()
        .map(|p| PairRow {
            a: p.a.clone(),
            b: p.b.clone(),
            win_rate: rate(p.win_rate),
            ci: p
                .ci
                .map(|[lo, hi]| format!("{} to {}", fixed(lo, 3), fixed(hi, 3)))
                .unwrap_or_else(|| "—".into()),
            excluding_ties: rate(p.win_rate_excluding_ties),
            lc: rate(p.lc_win_rate),
            n: p.n,
            partial: (p.n < p.a_items.max(p.b_items))
                .then(|| format!("of {} / {} answered", p.a_items, p.b_items)),
            counts: format!("{} / {} / {}", p.wins, p.losses, p.ties),
            inconsistent: p.inconsistent,
            href: href(
                &paths::compare(dataset),
                &[("a", &p.a), ("b", &p.b), ("job", &job_id)],
            ),
        })
        .collect();
    Ok(Finished {
        heatmap,
        leaderboard: rows,
        leaderboard_warning,
        overlap_note,
        pairs: pair_rows,
    })
}

/// Succeeded comparisons as rendered, by job: their pairs, leaderboard and
/// LC rates are final, and at thirty systems (406 pairs, a 0.6 MB page)
/// reading and drawing them again was most of a request. Bounded; the oldest
/// entry goes first. A job is only looked up here after the team's own
/// comparisons were listed, so an entry never reaches another team.
mod finished {
    use std::collections::{HashMap, VecDeque};
    use std::sync::{Arc, LazyLock, Mutex};

    use super::Finished;
    use crate::domain::JobId;

    const CAPACITY: usize = 32;

    /// (database name, job).
    pub(super) type Key = (String, JobId);

    type Cache = (VecDeque<Key>, HashMap<Key, Arc<Finished>>);

    static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(Mutex::default);

    pub(super) fn get(key: &Key) -> Option<Arc<Finished>> {
        CACHE.lock().ok()?.1.get(key).cloned()
    }

    pub(super) fn put(key: Key, shown: Arc<Finished>) {
        let Ok(mut cache) = CACHE.lock() else { return };
        let (order, map) = &mut *cache;
        if map.insert(key.clone(), shown).is_none() {
            order.push_back(key);
        }
        while order.len() > CAPACITY {
            if let Some(oldest) = order.pop_front() {
                map.remove(&oldest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: i64, state: JobState, judge: &str, metric: Option<&str>) -> CompareJob {
        CompareJob {
            id: JobId(id),
            state,
            judge: judge.into(),
            metric: metric.map(Into::into),
            systems: 2,
            created: String::new(),
            forward: true,
        }
    }

    #[test]
    fn the_default_is_the_newest_succeeded_judge_comparison() {
        // Newest first, as review::compare_jobs lists them.
        let jobs = [
            job(9, JobState::Running, "label-judge", None),
            job(8, JobState::Succeeded, "length", Some("words")),
            job(7, JobState::Succeeded, "label-judge", None),
            job(6, JobState::Succeeded, "label-judge", None),
        ];
        assert_eq!(default_comparison(&jobs).map(|j| j.id), Some(JobId(7)));
        assert_eq!(default_comparison(&jobs[..2]).map(|j| j.id), Some(JobId(8)));
        assert_eq!(default_comparison(&jobs[..1]).map(|j| j.id), Some(JobId(9)));
        assert!(default_comparison(&[]).is_none());
    }

    #[test]
    fn length_metrics_have_no_length_controlled_rate() {
        assert!(decided_by_length(&job(
            1,
            JobState::Succeeded,
            "length",
            Some("chars")
        )));
        assert!(decided_by_length(&job(
            1,
            JobState::Succeeded,
            "mine",
            Some("Words")
        )));
        assert!(!decided_by_length(&job(
            1,
            JobState::Succeeded,
            "accuracy",
            Some("accuracy")
        )));
        assert!(!decided_by_length(&job(
            1,
            JobState::Succeeded,
            "length-judge",
            None
        )));
    }
}
