//! `/datasets/{dataset}/leaderboard?judge=NAME&baseline=SYSTEM&sort=COLUMN`:
//! an external judge's judgments against one baseline, AlpacaEval's way: a
//! sortable table (LC win rate, win rate, discrete win rate, wins, average
//! length, Bradley–Terry rating) and the LC win rate against average length.
//! Without `judge`, the dataset's first judge; without `baseline`, the one
//! its file named (AlpacaEval's `generator_1`), else the first system.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use evaluator_stats::{Direction, pareto_front};
use serde::Deserialize;
use sqlx::PgPool;
use web::charts::{Scatter, ScatterPoint, scatter_svg};
use web::format::{href, plus_minus};
use web::paths;
use web::views::{BaselinePage, BaselineRowView, SelectOption, SortHeader, dataset_tabs};

use super::{PageError, SignedIn, dataset, html};
use crate::baseline::{self, Missing};
use crate::db::judgments;
use crate::domain::BaselineRow;
use crate::results::Z95;

#[derive(Debug, Deserialize)]
pub(super) struct BaselineQuery {
    #[serde(default)]
    judge: String,
    #[serde(default)]
    baseline: String,
    #[serde(default)]
    sort: String,
}

/// The sortable columns: (query value, header, numeric).
const COLUMNS: [(&str, &str, bool); 7] = [
    ("system", "System", false),
    ("lc", "LC win rate", true),
    ("win_rate", "Win rate", true),
    ("discrete", "Discrete", true),
    ("wins", "W / D / L", false),
    ("length", "Avg length", true),
    ("rating", "Rating", true),
];

/// Orders rows by a column: names ascending, lengths ascending (shorter
/// first), everything else best first.
fn sort_rows(rows: &mut [BaselineRow], column: &str) {
    let lc = |r: &BaselineRow| r.length_controlled_winrate.unwrap_or(f64::NEG_INFINITY);
    rows.sort_by(|x, y| {
        let order = match column {
            "system" => x.system.cmp(&y.system),
            "win_rate" => y.win_rate.total_cmp(&x.win_rate),
            "discrete" => y.discrete_win_rate.total_cmp(&x.discrete_win_rate),
            "wins" => y.n_wins.cmp(&x.n_wins),
            "length" => x.avg_length.cmp(&y.avg_length),
            "rating" => y.rating.total_cmp(&x.rating),
            _ => lc(y).total_cmp(&lc(x)),
        };
        order.then(x.system.cmp(&y.system))
    });
}

/// `GET /datasets/{dataset}/leaderboard`.
pub(super) async fn page(
    State(db): State<PgPool>,
    SignedIn(team): SignedIn,
    name: Result<Path<String>, PathRejection>,
    Query(query): Query<BaselineQuery>,
) -> Result<Response, PageError> {
    let dataset = dataset(&db, &team, name).await?;
    let judges = judgments::list(&db, dataset.id).await?;
    let systems = judgments::system_names_on(&db, team.id, dataset.id).await?;
    let sort = if COLUMNS.iter().any(|(key, ..)| *key == query.sort) {
        query.sort.clone()
    } else {
        "lc".to_string()
    };
    let mut page = BaselinePage {
        team: team.name.clone(),
        dataset: dataset.name.clone(),
        tabs: dataset_tabs(&dataset.name, "Leaderboard"),
        action: paths::baseline(&dataset.name),
        judge_options: Vec::new(),
        baseline_options: Vec::new(),
        sort: sort.clone(),
        headers: Vec::new(),
        rows: Vec::new(),
        chart: String::new(),
        length_control: baseline::LENGTH_CONTROL.to_string(),
        message: None,
    };
    let Some(judge) = (if query.judge.is_empty() {
        judges.first()
    } else {
        judges.iter().find(|j| j.name == query.judge)
    }) else {
        if !query.judge.is_empty() {
            return Err(PageError::not_found(
                &team,
                format!("`{}` has no judge `{}`.", dataset.name, query.judge),
            ));
        }
        page.message = Some(format!(
            "No external judgments yet. Push a judge's verdicts with `evaluator push-judgments --dataset {} --judge NAME FILE` (AlpacaEval's annotations: `--format alpaca_eval`).",
            dataset.name
        ));
        return html(&page);
    };
    let named = judge
        .provenance
        .get("baseline")
        .and_then(|b| b.as_str())
        .filter(|b| systems.iter().any(|s| s == b));
    let baseline_name = if query.baseline.is_empty() {
        named
            .or(systems.first().map(String::as_str))
            .unwrap_or_default()
            .to_string()
    } else {
        query.baseline.clone()
    };
    page.judge_options = judges
        .iter()
        .map(|j| SelectOption {
            value: j.name.clone(),
            label: format!("{} · {} judgments", j.name, j.judgments),
            selected: j.name == judge.name,
        })
        .collect();
    page.baseline_options = systems
        .iter()
        .map(|s| SelectOption {
            value: s.clone(),
            label: s.clone(),
            selected: *s == baseline_name,
        })
        .collect();
    let link = |column: &str| {
        href(
            &paths::baseline(&dataset.name),
            &[
                ("judge", &judge.name),
                ("baseline", &baseline_name),
                ("sort", column),
            ],
        )
    };
    page.headers = COLUMNS
        .iter()
        .map(|&(key, label, numeric)| SortHeader {
            label,
            href: link(key),
            current: key == sort,
            numeric,
            // Names and lengths sort up (shorter first); the rest best first.
            order: if matches!(key, "system" | "length") {
                "ascending"
            } else {
                "descending"
            },
        })
        .collect();
    let mut board = match baseline::leaderboard(
        &db,
        (dataset.id, &dataset.name),
        &judge.name,
        &baseline_name,
    )
    .await
    {
        Ok(board) => board,
        Err(Missing::Failed(e)) => return Err(e.into()),
        Err(Missing::Baseline { .. }) if !query.baseline.is_empty() => {
            return Err(PageError::not_found(
                &team,
                format!("`{}` has no system `{}`.", dataset.name, query.baseline),
            ));
        }
        Err(other) => {
            page.message = Some(format!("{other}; pick another baseline."));
            return html(&page);
        }
    };
    page.length_control = match &board.length_control_error {
        Some(error) => format!("{} (empty here: {error})", board.length_control),
        None => board.length_control.clone(),
    };
    sort_rows(&mut board.systems, &sort);
    let compare = |system: &str| {
        href(
            &paths::compare(&dataset.name),
            &[("a", &board.baseline), ("b", system)],
        )
    };
    let percent = |value: f64, se: f64| plus_minus(value, Z95 * se);
    page.rows = board
        .systems
        .iter()
        .enumerate()
        .map(|(i, r)| BaselineRowView {
            position: i + 1,
            system: r.system.clone(),
            is_baseline: r.system == board.baseline,
            lc: match (r.length_controlled_winrate, r.lc_standard_error) {
                (Some(lc), Some(se)) => percent(lc, se),
                _ => "—".into(),
            },
            win_rate: percent(r.win_rate, r.standard_error),
            discrete: format!("{:.1}", r.discrete_win_rate),
            counts: format!("{} / {} / {}", r.n_wins, r.n_draws, r.n_wins_base),
            avg_length: r.avg_length.to_string(),
            rating: format!(
                "{:.0} [{:.0}, {:.0}]",
                r.rating, r.rating_ci[0], r.rating_ci[1]
            ),
            href: compare(&r.system),
        })
        .collect();
    // LC against length: shorter and better is the corner to be in.
    let plotted: Vec<(&BaselineRow, f64)> = board
        .systems
        .iter()
        .filter_map(|r| Some((r, r.length_controlled_winrate?)))
        .collect();
    if !plotted.is_empty() {
        let points: Vec<Vec<f64>> = plotted
            .iter()
            .map(|(r, lc)| vec![r.avg_length as f64, *lc])
            .collect();
        let front = pareto_front(
            &points,
            &[Direction::LowerIsBetter, Direction::HigherIsBetter],
        )
        .map_err(PageError::internal)?;
        page.chart = scatter_svg(&Scatter {
            x_label: "average length (characters)".into(),
            y_label: "LC win rate (%)".into(),
            x_higher_is_better: false,
            y_higher_is_better: true,
            points: plotted
                .iter()
                .enumerate()
                .map(|(i, (r, lc))| ScatterPoint {
                    label: r.system.clone(),
                    x: r.avg_length as f64,
                    y: *lc,
                    on_front: front.contains(&i),
                    sweep: None,
                    lambda: None,
                    notes: Vec::new(),
                    href: Some(compare(&r.system)),
                    x_ci: None,
                    y_ci: r.lc_standard_error.map(|se| [lc - Z95 * se, lc + Z95 * se]),
                })
                .collect(),
            sweeps: Vec::new(),
        });
    }
    html(&page)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(system: &str, lc: Option<f64>, length: i64) -> BaselineRow {
        BaselineRow {
            system: system.into(),
            win_rate: 10.0,
            standard_error: 1.0,
            n_wins: 1,
            n_wins_base: 1,
            n_draws: 0,
            n_total: 2,
            discrete_win_rate: 50.0,
            avg_length: length,
            length_controlled_winrate: lc,
            lc_standard_error: None,
            rating: 1000.0,
            rating_ci: [900.0, 1100.0],
        }
    }

    #[test]
    fn rows_sort_best_first_lengths_shortest_first_and_unfitted_last() {
        let mut rows = vec![
            row("b", Some(20.0), 900),
            row("a", None, 100),
            row("c", Some(30.0), 500),
        ];
        sort_rows(&mut rows, "lc");
        let names: Vec<_> = rows.iter().map(|r| r.system.as_str()).collect();
        assert_eq!(names, ["c", "b", "a"]);
        sort_rows(&mut rows, "length");
        let names: Vec<_> = rows.iter().map(|r| r.system.as_str()).collect();
        assert_eq!(names, ["a", "c", "b"]);
        sort_rows(&mut rows, "system");
        let names: Vec<_> = rows.iter().map(|r| r.system.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }
}
