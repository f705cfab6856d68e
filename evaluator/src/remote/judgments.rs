//! What `push-judgments` and `leaderboard --baseline` print.

use std::path::Path;

use super::{out, pretty};
use crate::api::types::{BaselineLeaderboard, BaselineRow, JudgmentFormat, JudgmentSummary};
use crate::client::{Client, encode};
use crate::error::{Error, Result};

/// What `push-judgments` sends besides the file.
#[derive(Debug, Clone)]
pub struct JudgmentPush<'a> {
    /// The dataset, by name or id.
    pub dataset: &'a str,
    /// The judge's name.
    pub judge: &'a str,
    /// The file's format.
    pub format: JudgmentFormat,
    /// AlpacaEval files: the system `generator_2` stands for.
    pub system: Option<&'a str>,
    /// AlpacaEval files: the system `generator_1` stands for.
    pub baseline: Option<&'a str>,
}

/// `push-judgments`: uploads the file and reports what was stored.
pub fn push_judgments(
    client: &Client,
    json: bool,
    push: &JudgmentPush<'_>,
    file: &Path,
) -> Result<()> {
    super::check_upload_size(
        file,
        "judgment files",
        crate::state::MAX_IMPORT_BYTES,
        "split it and push the parts one after another with the same --dataset and --judge",
    )?;
    let body = std::fs::read(file).map_err(|source| Error::Io {
        action: "cannot read",
        path: file.to_path_buf(),
        source,
    })?;
    let mut path = format!(
        "/api/v1/datasets/{}/judgments?judge={}&format={}",
        encode(push.dataset),
        encode(push.judge),
        push.format.as_str()
    );
    for (key, value) in [("system", push.system), ("baseline", push.baseline)] {
        if let Some(value) = value {
            path.push_str(&format!("&{key}={}", encode(value)));
        }
    }
    let summary: JudgmentSummary = client.post_bytes(&path, "application/json", &body)?;
    if json {
        return out(&pretty(&summary));
    }
    out(&describe_push(&summary))
}

fn describe_push(summary: &JudgmentSummary) -> String {
    let mut text = format!(
        "judge `{}` on {}: {} judgments stored, {} unchanged ({})",
        summary.judge,
        summary.dataset,
        summary.created,
        summary.unchanged,
        summary.systems.join(", ")
    );
    if summary.self_judgments > 0 {
        text.push_str(&format!(
            "\n  skipped {} rows judging a system against itself (the baseline's own row is computed, as AlpacaEval does)",
            summary.self_judgments
        ));
    }
    text
}

/// `leaderboard --baseline`: AlpacaEval's columns, or the JSON document.
pub fn baseline_leaderboard(
    client: &Client,
    dataset: &str,
    judge: &str,
    baseline: &str,
    json: bool,
) -> Result<()> {
    let board: BaselineLeaderboard = client.get(&format!(
        "/api/v1/datasets/{}/baseline-leaderboard?judge={}&baseline={}",
        encode(dataset),
        encode(judge),
        encode(baseline)
    ))?;
    if json {
        return out(&pretty(&board));
    }
    out(&baseline_table(&board))
}

fn optional(value: Option<f64>, digits: usize) -> String {
    value.map_or_else(|| "—".to_string(), |v| format!("{v:.digits$}"))
}

/// Best length-controlled win rate first, the way AlpacaEval prints it.
pub fn baseline_table(board: &BaselineLeaderboard) -> String {
    let width = board
        .systems
        .iter()
        .map(|r| r.system.chars().count())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut table = format!(
        "judge `{}` against `{}` on {} (win rates in %; ± is the 95% half-width)\n{:<width$}  {:>7}  {:>15}  {:>9}  {:>10}  {:>6}",
        board.judge,
        board.baseline,
        board.dataset,
        "system",
        "LC",
        "win rate",
        "wins",
        "avg length",
        "rating"
    );
    for BaselineRow {
        system,
        win_rate,
        standard_error,
        n_wins,
        n_total,
        avg_length,
        length_controlled_winrate,
        rating,
        ..
    } in &board.systems
    {
        table.push_str(&format!(
            "\n{system:<width$}  {:>7}  {:>15}  {:>9}  {avg_length:>10}  {rating:>6.0}",
            optional(*length_controlled_winrate, 2),
            format!(
                "{win_rate:.2} ± {:.2}",
                crate::results::Z95 * standard_error
            ),
            format!("{n_wins}/{n_total}"),
        ));
    }
    table.push_str(&format!("\nLC: {}.", board.length_control));
    if let Some(error) = &board.length_control_error {
        table.push_str(&format!("\nLC is empty: {error}."));
    }
    table
}

/// `judges`: name, judgments and where they came from.
pub fn judge_table(list: &crate::api::types::JudgeList) -> String {
    if list.judges.is_empty() {
        return format!(
            "no judges on {} yet (`evaluator push-judgments --dataset {} --judge NAME FILE` adds one)",
            list.dataset, list.dataset
        );
    }
    let width = list
        .judges
        .iter()
        .map(|j| j.name.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut table = format!("{:<width$}  {:>9}  provenance", "judge", "judgments");
    for judge in &list.judges {
        table.push_str(&format!(
            "\n{:<width$}  {:>9}  {}",
            judge.name, judge.judgments, judge.provenance
        ));
    }
    table
}

/// The dataset's judge when it has exactly one; otherwise a usage error
/// listing them.
pub fn only_judge(client: &Client, dataset: &str) -> Result<String> {
    let list: crate::api::types::JudgeList =
        client.get(&format!("/api/v1/datasets/{}/judges", encode(dataset)))?;
    match list.judges.as_slice() {
        [one] => Ok(one.name.clone()),
        [] => Err(Error::Usage(format!(
            "dataset `{dataset}` has no judges; push judgments first (`evaluator push-judgments`)"
        ))),
        many => Err(Error::Usage(format!(
            "dataset `{dataset}` has {} judges; name one with --judge ({})",
            many.len(),
            many.iter()
                .map(|j| j.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
