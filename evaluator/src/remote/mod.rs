//! What the service commands print: progress while waiting, job summaries,
//! pairwise tables and results tables, or JSON for scripts. Judgments made
//! elsewhere and the leaderboard against a baseline are in [`judgments`];
//! learned-reward scores pushed with their provenance in [`scores`].

pub mod judgments;
pub mod scores;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::api::types::{
    Better, DatasetLeaderboard, DatasetResults, ImportSummary, Job, JobPairs, LeaderboardEntry,
    PairResult, Pareto, SystemList,
};
use crate::client::{Client, encode};
use crate::domain::{JobKind, JobState};
use crate::error::{Error, Result};
use crate::import::Format;
use web::format::number;

fn out(line: &str) -> Result<()> {
    writeln!(std::io::stdout().lock(), "{line}").map_err(|source| Error::Io {
        action: "cannot write to",
        path: "stdout".into(),
        source,
    })
}

fn pretty(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).expect("serializable")
}

/// `push-generations`: uploads the file, then sets metadata if asked.
pub fn push_generations(
    client: &Client,
    json: bool,
    dataset: &str,
    system: &str,
    format: Format,
    meta: &[String],
    file: &Path,
) -> Result<()> {
    // Checked before the upload, so a typo costs nothing.
    let metadata = parse_meta(meta)?;
    check_upload_size(
        file,
        "generations files",
        crate::state::MAX_IMPORT_BYTES,
        "split it and push the parts one after another with the same --dataset and --system \
         (each push adds to the system's generations)",
    )?;
    let previous_metadata = match metadata {
        Some(_) => Some(stored_metadata(client, system)?),
        None => None,
    };
    let body = std::fs::read(file).map_err(|source| Error::Io {
        action: "cannot read",
        path: file.to_path_buf(),
        source,
    })?;
    let summary: ImportSummary = client.post_bytes(
        &format!(
            "/api/v1/datasets/{}/generations?system={}&format={}",
            encode(dataset),
            encode(system),
            format.as_str()
        ),
        "application/x-ndjson",
        &body,
    )?;
    let metadata_change = match (metadata, previous_metadata) {
        (Some(metadata), Some(previous)) => {
            let _: serde_json::Value = client.put_json(
                &format!("/api/v1/systems/{}/metadata", encode(system)),
                &metadata,
            )?;
            Some(describe_metadata_change(&previous, &metadata))
        }
        _ => None,
    };
    if json {
        if let Some(change) = metadata_change {
            // On stderr: stdout stays the import summary scripts parse.
            eprintln!("{system}: {change}");
        }
        return out(&pretty(&summary));
    }
    let mut report = describe_import(&summary);
    if let Some(change) = metadata_change {
        report.push_str(&format!("\n  {change}"));
    }
    out(&report)
}

/// The system's metadata before this push (`{}` for a system not yet stored),
/// so that the report can say what `--meta` replaced: PUT replaces the whole
/// object, and a re-push with other values would otherwise change it silently.
fn stored_metadata(client: &Client, system: &str) -> Result<serde_json::Value> {
    let SystemList { systems } = client.get("/api/v1/systems")?;
    Ok(systems
        .into_iter()
        .find(|s| s.name == system)
        .map_or_else(|| serde_json::json!({}), |s| s.metadata))
}

/// `metadata unchanged` or `metadata: {old} -> {new}`.
fn describe_metadata_change(previous: &serde_json::Value, new: &serde_json::Value) -> String {
    if previous == new {
        "metadata unchanged".to_string()
    } else {
        format!("metadata: {previous} -> {new}")
    }
}

/// Refuses a file over the service's limit before anything is sent, naming
/// the file, its size, the limit and what to do.
pub fn check_upload_size(
    path: &Path,
    what: &'static str,
    limit: usize,
    advice: &'static str,
) -> Result<()> {
    let size = std::fs::metadata(path)
        .map_err(|source| Error::Io {
            action: "cannot read",
            path: path.to_path_buf(),
            source,
        })?
        .len();
    if size > limit as u64 {
        return Err(Error::UploadTooLarge {
            path: path.to_path_buf(),
            what,
            size,
            limit: limit as u64,
            advice,
        });
    }
    Ok(())
}

/// `push-generations`' report: what was stored, how the rows met the dataset's
/// items, and which other systems it shares nothing with.
fn describe_import(summary: &ImportSummary) -> String {
    let mut text = format!(
        "{}/{}: {}, {}, {} already stored\n  items: {} new, {} matched, {} of other systems missing here",
        summary.dataset,
        summary.system,
        count(summary.rows, "row", "rows"),
        count(
            summary.generations_created,
            "new generation",
            "new generations"
        ),
        summary.generations_unchanged,
        summary.items_created,
        summary.items_matched,
        summary.items_missing,
    );
    if summary.reference_mismatches > 0 {
        text.push_str(&format!(
            "\n  {} a reference that differs from the item's first one (kept)",
            count(summary.reference_mismatches, "row gives", "rows give")
        ));
    }
    if !summary.systems_without_common_items.is_empty() {
        text.push_str(&format!(
            "\n  warning: no item in common with {}; items are matched by `id`, else by the prompt \
             (Unicode NFC, whitespace collapsed, case kept), so these files ask different questions \
             and comparisons with those systems will be refused",
            summary
                .systems_without_common_items
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    text
}

/// `1 row`, `2 rows`.
fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn parse_meta(meta: &[String]) -> Result<Option<serde_json::Value>> {
    if meta.is_empty() {
        return Ok(None);
    }
    let mut map = serde_json::Map::new();
    for entry in meta {
        let (key, value) = entry
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| Error::Usage(format!("--meta {entry:?}: expected KEY=VALUE")))?;
        // Numbers and booleans stay typed (λ = 0.3 is a number to plot).
        let value = serde_json::from_str::<serde_json::Value>(value)
            .ok()
            .filter(|v| v.is_number() || v.is_boolean())
            .unwrap_or_else(|| serde_json::Value::String(value.to_string()));
        map.insert(key.to_string(), value);
    }
    Ok(Some(serde_json::Value::Object(map)))
}

/// Prints a job, or waits for it (progress bar on a terminal) and prints its
/// outcome: a compare job's pairs, a score job's summary. A failed job is an
/// error (exit 2 for a module fault).
pub fn follow(client: &Client, job: Job, wait: bool, json: bool) -> Result<()> {
    if !wait {
        return if json {
            out(&pretty(&job))
        } else {
            out(&describe(&job))
        };
    }
    let job = wait_for(client, job)?;
    match job.state {
        JobState::Failed => {
            return Err(Error::JobFailed {
                id: job.id,
                code: job.error_code.unwrap_or_default(),
                message: job.error.unwrap_or_default(),
            });
        }
        JobState::Cancelled => {
            return Err(Error::Usage(format!("job {} was cancelled", job.id)));
        }
        _ => {}
    }
    if job.kind == JobKind::Compare {
        let JobPairs { pairs, .. } = client.get(&format!("/api/v1/jobs/{}/pairs", job.id))?;
        if json {
            return out(&pretty(&serde_json::json!({ "job": job, "pairs": pairs })));
        }
        out(&describe(&job))?;
        return out(&pair_table(&pairs));
    }
    if json {
        out(&pretty(&job))
    } else {
        out(&describe(&job))
    }
}

fn describe(job: &Job) -> String {
    let unit = if job.kind == JobKind::Compare {
        "item pairs"
    } else {
        "samples"
    };
    let mut line = format!(
        "job {} ({}, dataset {}): {}, {}/{} {unit}, {}/{} chunks",
        job.id,
        job.kind,
        job.dataset,
        job.state,
        job.done_units,
        job.total_units,
        job.done_chunks,
        job.total_chunks
    );
    if let (Some(code), Some(error)) = (&job.error_code, &job.error) {
        line.push_str(&format!("\n  failed ({code}): {error}"));
    }
    line
}

fn wait_for(client: &Client, mut job: Job) -> Result<Job> {
    let bar = indicatif::ProgressBar::new(job.total_units.max(0) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} job {msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
        )
        .expect("valid template"),
    );
    bar.set_message(format!("{} {}", job.id, job.state));
    let started = Instant::now();
    let mut delay = Duration::from_millis(100);
    while !job.is_finished() {
        std::thread::sleep(delay);
        // Poll quickly at first, then settle at one request per second.
        delay = (delay * 2).min(Duration::from_secs(1));
        job = client.get(&format!("/api/v1/jobs/{}", job.id))?;
        bar.set_position(job.done_units.max(0) as u64);
        bar.set_message(format!("{} {}", job.id, job.state));
    }
    bar.finish_and_clear();
    tracing::debug!(elapsed = ?started.elapsed(), "job finished");
    Ok(job)
}

fn pair_table(pairs: &[PairResult]) -> String {
    let width = pairs
        .iter()
        .map(|p| p.a.len().max(p.b.len()))
        .max()
        .unwrap_or(1);
    let mut table = format!(
        "{:<width$}  {:<width$}  {:>6} {:>6} {:>6} {:>6}  {:>8}  {:<17} {:>7} {:>12}",
        "a", "b", "n", "wins", "losses", "ties", "win rate", "95% CI", "LC rate", "inconsistent"
    );
    for p in pairs {
        let rate = p.win_rate.map_or("-".to_string(), |r| format!("{:.3}", r));
        let ci =
            p.ci.map_or("-".to_string(), |[lo, hi]| format!("[{lo:.3}, {hi:.3}]"));
        let lc = p.lc_win_rate.map_or("-".to_string(), |r| format!("{r:.3}"));
        table.push_str(&format!(
            "\n{:<width$}  {:<width$}  {:>6} {:>6} {:>6} {:>6}  {:>8}  {:<17} {:>7} {:>12}",
            p.a, p.b, p.n, p.wins, p.losses, p.ties, rate, ci, lc, p.inconsistent
        ));
    }
    let partial: Vec<String> = pairs
        .iter()
        .filter(|p| p.n < p.a_items.max(p.b_items))
        .map(|p| {
            format!(
                "{}/{} on {} of {} and {} items",
                p.a, p.b, p.n, p.a_items, p.b_items
            )
        })
        .collect();
    if !partial.is_empty() {
        table.push_str(&format!(
            "\npartial overlap (compared on the items both answered): {}",
            partial.join("; ")
        ));
    }
    table
}

/// `leaderboard`: rank, system, rating and interval, or the JSON document.
pub fn leaderboard(
    client: &Client,
    dataset: &str,
    judge: &str,
    metric: Option<&str>,
    json: bool,
) -> Result<()> {
    let mut path = format!(
        "/api/v1/datasets/{}/leaderboard?judge={}",
        encode(dataset),
        encode(judge)
    );
    if let Some(metric) = metric {
        path.push_str(&format!("&metric={}", encode(metric)));
    }
    let board: DatasetLeaderboard = client.get(&path)?;
    if let Some(warning) = &board.leaderboard.warning {
        // On stderr, so it reaches a person even when a script reads stdout.
        eprintln!("warning: {warning}");
    }
    if json {
        return out(&pretty(&board));
    }
    out(&leaderboard_table(
        &board.job.to_string(),
        dataset,
        &board.leaderboard.systems,
        board.leaderboard.connected,
    ))
}

fn leaderboard_table(
    job: &str,
    dataset: &str,
    entries: &[LeaderboardEntry],
    connected: bool,
) -> String {
    let width = entries
        .iter()
        .map(|e| e.system.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut table = format!("comparison job {job} on {dataset}");
    let mut group = 0;
    for e in entries {
        if e.group != group {
            group = e.group;
            if !connected {
                table.push_str(&format!(
                    "\ngroup {group} (its own scale: never compared with the other groups)"
                ));
            }
            table.push_str(&format!(
                "\n{:>4}  {:<width$}  {:>8}  95% CI",
                "rank", "system", "rating"
            ));
        }
        table.push_str(&format!(
            "\n{:>4}  {:<width$}  {:>8.1}  [{:.1}, {:.1}]",
            e.rank, e.system, e.rating, e.ci[0], e.ci[1]
        ));
    }
    table
}

/// `datasets`: id, name and sizes; the id works wherever the name does.
pub fn dataset_table(datasets: &[crate::domain::Dataset]) -> String {
    if datasets.is_empty() {
        return "no datasets yet (`evaluator push-generations --dataset D --system S FILE` creates one)"
            .to_string();
    }
    let width = datasets
        .iter()
        .map(|d| d.name.len())
        .max()
        .unwrap_or(0)
        .max(7);
    let mut table = format!(
        "{:>5}  {:<width$}  {:>8}  {:>7}  {:>11}",
        "id", "dataset", "items", "systems", "generations"
    );
    for d in datasets {
        table.push_str(&format!(
            "\n{:>5}  {:<width$}  {:>8}  {:>7}  {:>11}",
            d.id, d.name, d.items, d.systems, d.generations
        ));
    }
    table
}

/// `systems`: id, name, generations over all datasets, and metadata.
pub fn system_table(systems: &[crate::domain::System]) -> String {
    if systems.is_empty() {
        return "no systems yet (`evaluator push-generations` creates them)".to_string();
    }
    let width = systems
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(0)
        .max(6);
    let mut table = format!(
        "{:>5}  {:<width$}  {:>11}  metadata",
        "id", "system", "generations"
    );
    for s in systems {
        table.push_str(&format!(
            "\n{:>5}  {:<width$}  {:>11}  {}",
            s.id, s.name, s.generations, s.metadata
        ));
    }
    table
}

/// `list-modules`: id, declared name (what `run --module` takes), version,
/// kind and metrics.
pub fn module_table(modules: &[crate::domain::Module]) -> String {
    if modules.is_empty() {
        return "no modules yet (`evaluator push-module FILE.wasm|builtin:NAME` uploads one)"
            .to_string();
    }
    let width = modules
        .iter()
        .map(|m| m.name.len())
        .max()
        .unwrap_or(0)
        .max(4);
    let mut table = format!(
        "{:>5}  {:<width$}  {:<10}  {:<6}  metrics",
        "id", "name", "version", "kind"
    );
    for m in modules {
        let metrics: Vec<&str> = m.metrics.iter().map(|x| x.name.as_str()).collect();
        table.push_str(&format!(
            "\n{:>5}  {:<width$}  {:<10}  {:<6}  {}",
            m.id,
            m.name,
            m.version,
            m.kind.as_str(),
            metrics.join(", ")
        ));
    }
    table
}

/// `admin list-tokens`: id, prefix, created, revoked.
pub fn token_table(tokens: &[crate::db::teams::TokenRecord]) -> String {
    let mut table = format!("{:>5}  {:<12}  {:<20}  revoked", "id", "prefix", "created");
    for t in tokens {
        table.push_str(&format!(
            "\n{:>5}  {:<12}  {:<20}  {}",
            t.id,
            t.prefix,
            t.created,
            t.revoked.as_deref().unwrap_or("-")
        ));
    }
    table
}

/// `results`: the results table, or the JSON document.
pub fn results(client: &Client, dataset: &str, json: bool) -> Result<()> {
    let results: DatasetResults =
        client.get(&format!("/api/v1/datasets/{}/results", encode(dataset)))?;
    if json {
        return out(&pretty(&results));
    }
    let mut keys: Vec<&String> = results
        .systems
        .iter()
        .flat_map(|s| s.metrics.keys())
        .collect();
    keys.sort();
    keys.dedup();
    if keys.is_empty() {
        return out(&format!(
            "dataset {dataset}: no scores yet (run `evaluator run --dataset {dataset} --module ...`)"
        ));
    }
    let mut text = results_table(&results, &keys);
    text.push_str(&learned_note(&results));
    out(&text)
}

/// Under the results table, the learned rewards (`push-scores`) with the
/// model each is: they are not sandboxed modules, and the table alone would
/// not say so.
fn learned_note(results: &DatasetResults) -> String {
    let mut models: std::collections::BTreeMap<&str, &crate::domain::LearnedReward> =
        std::collections::BTreeMap::new();
    for system in &results.systems {
        for (key, metric) in &system.metrics {
            if let Some(learned) = &metric.learned {
                models.entry(key).or_insert(learned);
            }
        }
    }
    models
        .into_iter()
        .map(|(key, learned)| {
            format!(
                "\n{key}: a learned reward (push-scores), not a sandboxed module: {} {}, sha256 {}",
                learned.source.replace('_', " "),
                learned.model,
                learned.sha256.chars().take(12).collect::<String>()
            )
        })
        .collect()
}

/// `pareto`: the API's Pareto view (axes defaulting as on the page), as JSON
/// or as [`pareto_table`].
pub fn pareto(
    client: &Client,
    dataset: &str,
    x: Option<&str>,
    y: Option<&str>,
    json: bool,
) -> Result<()> {
    let query: Vec<String> = [("x", x), ("y", y)]
        .into_iter()
        .filter_map(|(axis, metric)| metric.map(|m| format!("{axis}={}", encode(m))))
        .collect();
    let mut path = format!("/api/v1/datasets/{}/pareto", encode(dataset));
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query.join("&"));
    }
    let view: Pareto = client.get(&path)?;
    if json {
        return out(&pretty(&view));
    }
    out(&pareto_table(&view))
}

/// The axes with their directions; each point (system, sweep, λ, x, y, `◆`
/// on the overall front); then each sweep's points, own front and
/// hypervolume, the overall ones, and the common reference point.
fn pareto_table(view: &Pareto) -> String {
    let better = |b: Better| match b {
        Better::Higher => "higher is better",
        Better::Lower => "lower is better",
    };
    let mut text = format!(
        "dataset {}: x = {} ({}), y = {} ({})",
        view.dataset,
        view.x,
        better(view.directions.x),
        view.y,
        better(view.directions.y)
    );
    let Some(reference) = view.reference else {
        text.push('\n');
        text.push_str(view.message.as_deref().unwrap_or("nothing to plot"));
        return text;
    };
    let width = |header: &str, cells: &mut dyn Iterator<Item = usize>| {
        cells.fold(header.chars().count(), usize::max)
    };
    let chars = |s: &str| s.chars().count();
    let lambda = |l: Option<f64>| l.map_or("-".to_string(), |l| l.to_string());
    let ws = width("system", &mut view.points.iter().map(|p| chars(&p.system)));
    let wsw = width(
        "sweep",
        &mut view
            .points
            .iter()
            .map(|p| p.sweep.as_deref().map_or(1, chars)),
    );
    let wl = width(
        "λ",
        &mut view.points.iter().map(|p| chars(&lambda(p.lambda))),
    );
    let wx = width("x", &mut view.points.iter().map(|p| number(p.x).len()));
    let wy = width("y", &mut view.points.iter().map(|p| number(p.y).len()));
    text.push_str(&format!(
        "\n{:<ws$}  {:<wsw$}  {:>wl$}  {:>wx$}  {:>wy$}  front",
        "system", "sweep", "λ", "x", "y"
    ));
    for p in &view.points {
        let row = format!(
            "\n{:<ws$}  {:<wsw$}  {:>wl$}  {:>wx$}  {:>wy$}  {}",
            p.system,
            p.sweep.as_deref().unwrap_or("-"),
            lambda(p.lambda),
            number(p.x),
            number(p.y),
            if p.on_front { "◆" } else { "" }
        );
        text.push_str(row.trim_end());
    }
    let wn = width("overall", &mut view.sweeps.iter().map(|s| chars(&s.name)));
    text.push_str(&format!(
        "\n\n{:<wn$}  {:>6}  {:>12}  hypervolume",
        "sweep", "points", "on its front"
    ));
    let rows = view
        .sweeps
        .iter()
        .map(|s| {
            (
                s.name.as_str(),
                s.points.len(),
                s.front.len(),
                s.hypervolume,
            )
        })
        .chain([(
            "overall",
            view.points.len(),
            view.front.len(),
            view.hypervolume,
        )]);
    for (name, points, front, volume) in rows {
        text.push_str(&format!(
            "\n{name:<wn$}  {points:>6}  {front:>12}  {}",
            number(volume)
        ));
    }
    text.push_str(&format!(
        "\nreference point: x = {}, y = {} (each axis's worst value; every hypervolume is measured from it)",
        number(reference[0]),
        number(reference[1])
    ));
    text
}

/// Systems × metrics, each cell the mean ± the 95% interval's half-width
/// (1.96 standard errors, as on the pages) and n; the header says so, since a
/// bare ± is read as either.
fn results_table(results: &DatasetResults, keys: &[&String]) -> String {
    let width = results
        .systems
        .iter()
        .map(|s| s.system.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let mut table = format!("{:<width$}", "system");
    for key in keys {
        table.push_str(&format!("  {:>26}", key));
    }
    table.push_str(&format!("\n{:<width$}", ""));
    for _ in keys {
        table.push_str(&format!("  {:>26}", "mean ± 95% CI (n)"));
    }
    for system in &results.systems {
        table.push_str(&format!("\n{:<width$}", system.system));
        for key in keys {
            // The pages' rounding: the half-width to two significant digits,
            // the mean to the same decimals.
            let cell = system.metrics.get(*key).map_or("-".to_string(), |m| {
                format!(
                    "{} (n={})",
                    web::format::plus_minus(m.mean, crate::results::Z95 * m.stderr),
                    m.n
                )
            });
            table.push_str(&format!("  {:>26}", cell));
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_import_report_says_what_matched_and_warns_about_disjoint_systems() {
        let mut summary = ImportSummary {
            dataset: "qa".into(),
            system: "llama-65b".into(),
            rows: 229,
            items_created: 229,
            items_matched: 0,
            items_missing: 229,
            systems_without_common_items: vec!["flant5-xl".into(), "gpt3".into()],
            generations_created: 229,
            generations_unchanged: 0,
            reference_mismatches: 0,
        };
        let text = describe_import(&summary);
        assert!(
            text.contains("items: 229 new, 0 matched, 229 of other systems missing here"),
            "{text}"
        );
        assert!(
            text.contains("warning: no item in common with `flant5-xl`, `gpt3`"),
            "{text}"
        );
        summary.systems_without_common_items.clear();
        assert!(!describe_import(&summary).contains("warning"));
    }

    #[test]
    fn a_disconnected_leaderboard_prints_one_table_per_group() {
        let entry = |system: &str, group: usize| LeaderboardEntry {
            system: system.into(),
            rating: 1000.0,
            ci: [990.0, 1010.0],
            rank: 1,
            group,
        };
        let entries = [entry("a", 1), entry("b", 1), entry("c", 2)];
        let table = leaderboard_table("7", "qa", &entries, false);
        assert_eq!(table.matches("group ").count(), 2, "{table}");
        assert!(table.contains("group 2 (its own scale"), "{table}");
        let table = leaderboard_table("7", "qa", &entries[..2], true);
        assert!(!table.contains("group"), "{table}");
        assert_eq!(table.matches("rank").count(), 1, "{table}");
    }

    #[test]
    fn results_print_the_95_percent_half_width_and_say_so() {
        let results: DatasetResults = serde_json::from_value(serde_json::json!({
            "dataset": "qa",
            "systems": [{"system": "a", "metadata": {}, "metrics": {"m/x": {
                "mean": 0.5, "stderr": 0.1, "n": 4, "nulls": 0, "direction": "higher-is-better"}}}]
        }))
        .unwrap();
        let key = "m/x".to_string();
        let table = results_table(&results, &[&key]);
        assert!(table.contains("mean ± 95% CI (n)"), "{table}");
        assert!(table.contains("0.50 ± 0.20 (n=4)"), "{table}");
    }

    #[test]
    fn counts_of_one_are_singular_and_metadata_changes_are_reported() {
        let summary = ImportSummary {
            dataset: "qa".into(),
            system: "s".into(),
            rows: 1,
            items_created: 1,
            items_matched: 0,
            items_missing: 0,
            systems_without_common_items: vec![],
            generations_created: 1,
            generations_unchanged: 0,
            reference_mismatches: 1,
        };
        let text = describe_import(&summary);
        assert!(
            text.starts_with("qa/s: 1 row, 1 new generation, 0 already stored"),
            "{text}"
        );
        assert!(text.contains("1 row gives a reference"), "{text}");
        let old = serde_json::json!({"lambda": 0.3});
        assert_eq!(
            describe_metadata_change(&old, &serde_json::json!({"lambda": 0.5})),
            r#"metadata: {"lambda":0.3} -> {"lambda":0.5}"#
        );
        assert_eq!(describe_metadata_change(&old, &old), "metadata unchanged");
    }

    #[test]
    fn metadata_values_keep_their_type() {
        let meta = parse_meta(&["lambda=0.3".into(), "base=llama".into(), "x=true".into()])
            .unwrap()
            .unwrap();
        assert_eq!(
            meta,
            serde_json::json!({"lambda": 0.3, "base": "llama", "x": true})
        );
        assert!(parse_meta(&["novalue".into()]).is_err());
        assert!(parse_meta(&["=1".into()]).is_err());
    }
}
