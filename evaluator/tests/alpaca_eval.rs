//! The evaluator on AlpacaEval 2.0's real files (`../shared/data/alpaca_eval`):
//! the 29 systems' outputs and the GPT-4-turbo judge's annotations imported
//! through the API as they are, and the leaderboard against
//! `gpt4_1106_preview` checked column by column against the published
//! `leaderboard.csv` (AlpacaEval's own numbers). Without the data folder the
//! tests print SKIPPED and pass.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use axum::http::StatusCode;
use common::{TestDb, get, post_as};
use evaluator::db::teams;

const BASELINE: &str = "gpt4_1106_preview";
const JUDGE: &str = "weighted_alpaca_eval_gpt4_turbo";

fn data() -> Option<PathBuf> {
    let dir = std::env::var_os("SHARED_DATA")
        .map(|d| PathBuf::from(d).join("alpaca_eval"))
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/alpaca_eval")
        });
    if dir.join("leaderboard.csv").is_file() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: {} is absent (AlpacaEval's data)", dir.display());
        None
    }
}

/// The published rows: system → column → value (blank cells left out).
fn published(dir: &std::path::Path) -> HashMap<String, HashMap<String, String>> {
    let text = std::fs::read_to_string(dir.join("leaderboard.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let row = header
                .iter()
                .zip(&cells)
                .skip(1)
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            (cells[0].to_string(), row)
        })
        .collect()
}

fn systems(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("model_outputs"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Imports every system's outputs and every annotation file; returns the
/// seconds it took.
async fn import_all(db: &TestDb, token: &str, dir: &std::path::Path) -> f64 {
    let started = Instant::now();
    let names = systems(dir);
    // The baseline first, so items are stored in AlpacaEval's order.
    let mut ordered = vec![BASELINE.to_string()];
    ordered.extend(names.iter().filter(|n| *n != BASELINE).cloned());
    for name in &ordered {
        let body = std::fs::read(dir.join(format!("model_outputs/{name}.json"))).unwrap();
        let (status, summary) = post_as(
            db,
            &format!("/api/v1/datasets/alpaca_eval/generations?system={name}&format=alpaca_eval"),
            token,
            "application/json",
            body,
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {summary}");
        assert_eq!(summary["rows"], 805, "{name}");
    }
    for name in &ordered {
        let body = std::fs::read(dir.join(format!("annotations/{name}.json"))).unwrap();
        let (status, summary) = post_as(
            db,
            &format!(
                "/api/v1/datasets/alpaca_eval/judgments?judge={JUDGE}&format=alpaca_eval&system={name}"
            ),
            token,
            "application/json",
            body,
        )
        .await;
        assert!(status.is_success(), "{name}: {status} {summary}");
        if name == BASELINE {
            // The baseline judged against itself: nothing to store.
            assert_eq!(summary["self_judgments"], 805, "{summary}");
            assert_eq!(summary["created"], 0, "{summary}");
        } else {
            assert_eq!(summary["created"], 805, "{name}: {summary}");
        }
    }
    started.elapsed().as_secs_f64()
}

/// Average ranks (ties share the mean rank), for Spearman's correlation.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
            j += 1;
        }
        for k in i..=j {
            ranks[order[k]] = (i + j) as f64 / 2.0 + 1.0;
        }
        i = j + 1;
    }
    ranks
}

fn pearson(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = y.iter().map(|b| (b - my).powi(2)).sum();
    cov / (vx * vy).sqrt()
}

#[tokio::test]
async fn the_leaderboard_reproduces_alpaca_evals_published_columns() {
    let Some(dir) = data() else { return };
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "alpaca").await.unwrap();
    let seconds = import_all(&db, &token, &dir).await;
    eprintln!("imported 29 systems' outputs and annotations in {seconds:.1} s");

    let path = format!(
        "/api/v1/datasets/alpaca_eval/baseline-leaderboard?judge={JUDGE}&baseline={BASELINE}"
    );
    let started = Instant::now();
    let (status, board) = get(&db, &path, Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{board}");
    eprintln!(
        "leaderboard computed in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let published = published(&dir);
    let rows = board["systems"].as_array().unwrap();
    assert_eq!(rows.len(), 29, "{board}");

    // The plain columns: AlpacaEval's numbers to 1e-6 (the published NullModel
    // row predates the 10-decimal rounding of its preferences: 1.4e-10 off).
    let mut checked = 0;
    let mut largest: f64 = 0.0;
    let (mut ours_lc, mut their_lc, mut differences) = (Vec::new(), Vec::new(), Vec::new());
    for row in rows {
        let system = row["system"].as_str().unwrap();
        let expected = &published[system];
        let number = |key: &str| expected[key].parse::<f64>().unwrap();
        for key in ["win_rate", "standard_error", "discrete_win_rate"] {
            let ours = row[key].as_f64().unwrap();
            largest = largest.max((ours - number(key)).abs());
            assert!(
                (ours - number(key)).abs() < 1e-6,
                "{system} {key}: ours {ours}, published {}",
                number(key)
            );
            checked += 1;
        }
        for key in ["n_wins", "n_wins_base", "n_draws", "n_total", "avg_length"] {
            assert_eq!(row[key].as_f64().unwrap(), number(key), "{system} {key}");
            checked += 1;
        }
        assert_eq!(
            board["length_control_error"],
            serde_json::Value::Null,
            "{}",
            board["length_control_error"]
        );
        let lc = row["length_controlled_winrate"].as_f64().unwrap();
        if system == BASELINE {
            assert!((lc - 50.0).abs() < 1e-9, "the baseline's LC is 50: {lc}");
            continue;
        }
        ours_lc.push(lc);
        their_lc.push(number("length_controlled_winrate"));
        differences.push((system.to_string(), lc - number("length_controlled_winrate")));
    }
    assert_eq!(checked, 29 * 8);
    eprintln!("plain columns: largest difference from the published rows {largest:.1e}");

    // The length-controlled column is re-estimated (the instruction
    // difficulties and the gamed baselines' rows are not in these files); the
    // goals of the issue, and what this implementation reached.
    let spearman = pearson(&ranks(&ours_lc), &ranks(&their_lc));
    let mae = differences.iter().map(|(_, d)| d.abs()).sum::<f64>() / differences.len() as f64;
    differences.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
    for (system, d) in &differences {
        eprintln!("  LC {system:<34} {d:+.2}");
    }
    eprintln!(
        "LC against the published column: Spearman {spearman:.4}, mean |Δ| {mae:.2} points, worst {} ({:+.2})",
        differences[0].0, differences[0].1
    );
    // The issue's goals are Spearman >= 0.98 and a mean |difference| <= 3
    // points; these bounds are what this implementation reached (0.9956,
    // 1.08), so a regression fails here first.
    assert!(spearman >= 0.99, "Spearman {spearman}");
    assert!(mae <= 1.2, "mean absolute difference {mae}");

    // Served from the cache the second time, the same numbers.
    let started = Instant::now();
    let (_, again) = get(&db, &path, Some(&token)).await;
    assert_eq!(again, board);
    assert!(started.elapsed().as_secs_f64() < 1.0);
    db.finish().await;
}

#[tokio::test]
async fn a_judgment_file_naming_what_the_dataset_lacks_is_refused_whole() {
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "judges").await.unwrap();
    for (system, outputs) in [("base", ["b1", "b2"]), ("mine", ["m1", "m2"])] {
        let body = format!(
            r#"[{{"instruction": "one", "output": "{}", "generator": "{system}", "dataset": "x"}},
                {{"instruction": "two", "output": "{}", "generator": "{system}"}}]"#,
            outputs[0], outputs[1]
        );
        let (status, summary) = post_as(
            &db,
            &format!("/api/v1/datasets/d/generations?system={system}&format=alpaca_eval"),
            &token,
            "application/json",
            body.into_bytes(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{summary}");
    }
    let push = |body: &'static str, judge: &'static str| {
        let db = &db;
        let token = token.clone();
        async move {
            post_as(
                db,
                &format!("/api/v1/datasets/d/judgments?judge={judge}"),
                &token,
                "application/x-ndjson",
                body.as_bytes().to_vec(),
            )
            .await
        }
    };
    let unknown_system = "{\"id\": \"one\", \"a\": \"base\", \"b\": \"mine\", \"preference\": 0.9}\n{\"id\": \"two\", \"a\": \"base\", \"b\": \"yours\", \"verdict\": \"b\"}\n";
    let (status, body) = push(unknown_system, "j").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["error"]["message"],
        "line 2: system `yours` has no generations on dataset `d` (push them first, or rename it with --system/--baseline); nothing was stored"
    );
    let unknown_item = "{\"id\": \"one\", \"a\": \"base\", \"b\": \"mine\", \"preference\": 0.9}\n{\"id\": \"three\", \"a\": \"base\", \"b\": \"mine\", \"verdict\": \"b\"}\n";
    let (status, body) = push(unknown_item, "j").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["error"]["message"],
        "line 2: dataset `d` has no item \"three\"; nothing was stored"
    );
    let (_, judges) = get(&db, "/api/v1/datasets/d/judges", Some(&token)).await;
    assert_eq!(judges["judges"], serde_json::json!([]), "nothing stored");

    // A good file, its repeat, and a changed verdict.
    let good = "{\"id\": \"one\", \"a\": \"base\", \"b\": \"mine\", \"preference\": 0.9}\n{\"id\": \"two\", \"a\": \"mine\", \"b\": \"base\", \"verdict\": \"tie\", \"order\": \"ab\"}\n";
    let (status, summary) = push(good, "j").await;
    assert_eq!(status, StatusCode::CREATED, "{summary}");
    assert_eq!(
        (summary["created"].as_u64(), summary["unchanged"].as_u64()),
        (Some(2), Some(0))
    );
    let (status, summary) = push(good, "j").await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["unchanged"], 2);
    let changed = "{\"id\": \"one\", \"a\": \"base\", \"b\": \"mine\", \"preference\": 0.2}\n";
    let (status, body) = push(changed, "j").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 1: judge `j` already has a different preference for base vs mine"),
        "{body}"
    );

    // The leaderboard orients both rows against the baseline: P(mine wins)
    // = 0.9 and ½.
    let (status, board) = get(
        &db,
        "/api/v1/datasets/d/baseline-leaderboard?judge=j&baseline=base",
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{board}");
    let mine = board["systems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["system"] == "mine")
        .unwrap();
    assert!(
        (mine["win_rate"].as_f64().unwrap() - 70.0).abs() < 1e-9,
        "{mine}"
    );
    assert_eq!(
        (mine["n_wins"].as_u64(), mine["n_draws"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(mine["avg_length"], 2);
    let (status, body) = get(
        &db,
        "/api/v1/datasets/d/baseline-leaderboard?judge=nobody&baseline=base",
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        body["error"]["message"],
        "dataset `d` has no judge `nobody` (`evaluator push-judgments` adds one)"
    );
    db.finish().await;
}
