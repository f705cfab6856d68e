//! The importers on MaRio's real files (`../shared/data/mario`), and the
//! service's results and win rates on them against an independent computation:
//! the native metric functions applied to the files as read here, aggregated here.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use axum::http::StatusCode;
use common::{TestDb, get, post_json, push, start_workers, upload, wait_for_job};
use evaluator::db::teams;
use reward_builtins::builtin;
use reward_metrics::accuracy::accuracy;

fn data() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/mario");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("SKIPPED: {} is absent (MaRio's data)", dir.display());
        None
    }
}

/// The six StrategyQA test systems: (name, file, one-object form?).
const SYSTEMS: [(&str, &str); 6] = [
    ("gpt3", "strategyqa/gpt3/test_gpt3_responses.jsonl"),
    (
        "flant5-large",
        "strategyqa/flant5/test_flant5large_responses.jsonl",
    ),
    (
        "flant5-xl",
        "strategyqa/flant5/test_flant5xl_responses.jsonl",
    ),
    (
        "flant5-xxl",
        "strategyqa/flant5/test_flant5xxl_responses.jsonl",
    ),
    (
        "llama-7b",
        "strategyqa/llama/llama-7b_strategyqa_test_output.jsonl",
    ),
    (
        "llama-65b",
        "strategyqa/llama/llama-65b_strategyqa_test_output.jsonl",
    ),
];

#[tokio::test]
async fn six_mario_systems_are_imported_scored_and_compared_as_computed_independently() {
    let Some(dir) = data() else { return };
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "mario").await.unwrap();
    let mut expected: Vec<(&str, common::Answers)> = Vec::new();
    for (system, file) in SYSTEMS {
        let path = dir.join(file);
        let body = std::fs::read_to_string(&path).unwrap();
        let (status, summary) = push(&db, &token, "strategyqa", system, "mario", &body).await;
        assert_eq!(status, StatusCode::CREATED, "{system}: {summary}");
        assert_eq!(summary["generations_created"], 458, "{summary}");
        assert_eq!(summary["reference_mismatches"], 0, "{summary}");
        expected.push((system, common::mario_answers(&path)));
    }
    let (_, dataset) = get(&db, "/api/v1/datasets/strategyqa", Some(&token)).await;
    assert_eq!(
        (
            &dataset["dataset"]["items"],
            &dataset["dataset"]["generations"]
        ),
        (&serde_json::json!(458), &serde_json::json!(6 * 458)),
        "the six files share their 458 questions: aligned by item, not position"
    );
    // Every stored LLaMA response is the one its file gives for that question.
    let stored: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.prompt, g.response FROM generations g JOIN items i ON i.id = g.item_id \
         JOIN systems s ON s.id = g.system_id WHERE s.name = 'llama-65b'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let llama = &expected[5].1;
    assert!(
        stored.iter().all(|(q, r)| llama[q].0 == *r),
        "responses are attached to the right questions"
    );

    upload(&db, &token, builtin("accuracy").unwrap().wasm).await;
    let workers = start_workers(&db, 2);
    let (_, job) = post_json(
        &db,
        "/api/v1/jobs/score",
        &token,
        serde_json::json!({"dataset": "strategyqa", "modules": ["accuracy"]}),
    )
    .await;
    let job = wait_for_job(&db, &token, job["id"].as_i64().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let (_, results) = get(&db, "/api/v1/datasets/strategyqa/results", Some(&token)).await;

    // The independent computation: native accuracy on the files, mean and
    // standard error computed here.
    let native: Vec<(&str, HashMap<&String, f64>)> = expected
        .iter()
        .map(|(system, rows)| {
            let scores = rows
                .iter()
                .map(|(q, (response, reference))| (q, accuracy(response, reference)))
                .collect();
            (*system, scores)
        })
        .collect();
    for (system, scores) in &native {
        let values: Vec<f64> = scores.values().copied().collect();
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let stderr = variance.sqrt() / n.sqrt();
        let got = results["systems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["system"] == *system)
            .unwrap()["metrics"]["accuracy/accuracy"]
            .clone();
        assert_eq!(got["n"], 458, "{system}: {got}");
        assert!(
            (got["mean"].as_f64().unwrap() - mean).abs() < 1e-12,
            "{system}: {got} vs {mean}"
        );
        assert!(
            (got["stderr"].as_f64().unwrap() - stderr).abs() < 1e-12,
            "{system}: {got} vs {stderr}"
        );
    }

    let (_, job) = post_json(
        &db,
        "/api/v1/jobs/compare",
        &token,
        serde_json::json!({"dataset": "strategyqa", "judge": "accuracy"}),
    )
    .await;
    let id = job["id"].as_i64().unwrap();
    assert_eq!(wait_for_job(&db, &token, id).await["state"], "succeeded");
    let (_, pairs) = get(&db, &format!("/api/v1/jobs/{id}/pairs"), Some(&token)).await;
    let pairs = pairs["pairs"].as_array().unwrap();
    assert_eq!(pairs.len(), 15, "all pairs of six systems");
    let by_name: HashMap<&str, &HashMap<&String, f64>> =
        native.iter().map(|(s, scores)| (*s, scores)).collect();
    for pair in pairs {
        let (a, b) = (
            by_name[pair["a"].as_str().unwrap()],
            by_name[pair["b"].as_str().unwrap()],
        );
        let (mut wins, mut losses, mut ties) = (0u64, 0u64, 0u64);
        for (question, x) in a {
            let y = b[question];
            match x.partial_cmp(&y).unwrap() {
                std::cmp::Ordering::Greater => wins += 1,
                std::cmp::Ordering::Less => losses += 1,
                std::cmp::Ordering::Equal => ties += 1,
            }
        }
        assert_eq!(
            (
                pair["wins"].as_u64(),
                pair["losses"].as_u64(),
                pair["ties"].as_u64()
            ),
            (Some(wins), Some(losses), Some(ties)),
            "{pair}"
        );
        let rate = (wins as f64 + ties as f64 / 2.0) / 458.0;
        assert!(
            (pair["win_rate"].as_f64().unwrap() - rate).abs() < 1e-12,
            "{pair}"
        );
    }
    workers.stop().await;
    db.finish().await;
}

#[tokio::test]
async fn labels_written_differently_across_files_are_reported_not_overwritten() {
    let Some(dir) = data() else { return };
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "quarel").await.unwrap();
    let gpt3 = std::fs::read_to_string(dir.join("quarel/gpt3/test_gpt3_responses.jsonl")).unwrap();
    let (status, _) = push(&db, &token, "quarel", "gpt3", "mario", &gpt3).await;
    assert_eq!(status, StatusCode::CREATED);
    // QuaRel's LLaMA file writes the gold labels in capitals: "(A)" for "(a)".
    let llama = std::fs::read_to_string(dir.join("quarel/llama/llama-7b_quarel_test_output.jsonl"))
        .unwrap();
    let (status, summary) = push(&db, &token, "quarel", "llama-7b", "mario", &llama).await;
    assert_eq!(status, StatusCode::CREATED, "{summary}");
    assert_eq!(
        (&summary["items_created"], &summary["reference_mismatches"]),
        (&serde_json::json!(0), &serde_json::json!(552)),
        "{summary}"
    );
    let capitals: i64 = sqlx::query_scalar("SELECT count(*) FROM items WHERE reference ~ '[A-Z]'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        capitals, 0,
        "items keep the reference they were created with"
    );
    db.finish().await;
}

/// A dataset's six test-set files: (system, path under the data directory).
fn six_files(dataset: &str) -> Vec<(String, String)> {
    let mut files = vec![(
        "gpt3".to_string(),
        format!("{dataset}/gpt3/test_gpt3_responses.jsonl"),
    )];
    for size in ["large", "xl", "xxl"] {
        files.push((
            format!("flant5-{size}"),
            format!("{dataset}/flant5/test_flant5{size}_responses.jsonl"),
        ));
    }
    for size in ["7b", "65b"] {
        files.push((
            format!("llama-{size}"),
            format!("{dataset}/llama/llama-{size}_{dataset}_test_output.jsonl"),
        ));
    }
    files
}

/// Rewrites every `question` of a MaRio file (either layout) with `respell`.
fn respelled(body: &str, respell: impl Fn(&str) -> String) -> String {
    let edit = |entry: &mut serde_json::Value| {
        let question = entry["question"].as_str().unwrap().to_string();
        entry["question"] = serde_json::Value::String(respell(&question));
    };
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(mut entries)) if entries.values().all(|v| v.is_object()) => {
            entries.values_mut().for_each(edit);
            serde_json::Value::Object(entries).to_string()
        }
        _ => body
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let mut entry: serde_json::Value = serde_json::from_str(line).unwrap();
                edit(&mut entry);
                entry.to_string()
            })
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// Pushes six files; checks that every file after the first meets all of the
/// first's items and adds none. Returns the number of items.
async fn push_aligned(db: &TestDb, token: &str, dataset: &str, files: &[(String, String)]) -> u64 {
    let mut items = None;
    for (system, body) in files {
        let (status, summary) = push(db, token, dataset, system, "mario", body).await;
        assert_eq!(status, StatusCode::CREATED, "{dataset}/{system}: {summary}");
        let rows = summary["rows"].as_u64().unwrap();
        assert_eq!(summary["generations_created"], rows, "{summary}");
        match items {
            None => items = Some(rows),
            Some(n) => assert_eq!(
                (
                    rows,
                    &summary["items_created"],
                    &summary["items_matched"],
                    &summary["items_missing"],
                    &summary["systems_without_common_items"]
                ),
                (
                    n,
                    &serde_json::json!(0),
                    &serde_json::json!(n),
                    &serde_json::json!(0),
                    &serde_json::json!([])
                ),
                "{dataset}/{system} meets every item: {summary}"
            ),
        }
    }
    let n = items.unwrap();
    let (_, record) = get(db, &format!("/api/v1/datasets/{dataset}"), Some(token)).await;
    assert_eq!(
        (
            &record["dataset"]["items"],
            &record["dataset"]["generations"]
        ),
        (&serde_json::json!(n), &serde_json::json!(6 * n)),
        "{dataset}: {record}"
    );
    n
}

#[tokio::test]
async fn the_six_systems_align_on_every_shared_dataset_and_when_respelt() {
    let Some(dir) = data() else { return };
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "mario").await.unwrap();
    let read = |path: &str| std::fs::read_to_string(dir.join(path)).unwrap();
    let mut sizes = Vec::new();
    for dataset in ["strategyqa", "quarel", "obqa"] {
        let files: Vec<(String, String)> = six_files(dataset)
            .into_iter()
            .map(|(system, path)| {
                // The item count, read independently of the importer.
                if system == "gpt3" {
                    sizes.push(common::mario_answers(&dir.join(&path)).len() as u64);
                }
                (system, read(&path))
            })
            .collect();
        let n = push_aligned(&db, &token, dataset, &files).await;
        assert_eq!(n, *sizes.last().unwrap(), "{dataset}");
        eprintln!("{dataset}: six systems aligned on {n} items");
    }
    assert_eq!(sizes, [458, 552, 498]);

    // QuaRel as another MaRio dataset spells it (the issue's files): GPT-3 and
    // FLAN-T5 put " \n " before the options, LLaMA "\n" and doubles a space.
    let files: Vec<(String, String)> = six_files("quarel")
        .into_iter()
        .map(|(system, path)| {
            let body = read(&path);
            let body = if system.starts_with("llama") {
                respelled(&body, |q| q.replacen(" (A) ", "\n(A)  ", 1))
            } else {
                respelled(&body, |q| q.replacen(" (A) ", " \n (A) ", 1))
            };
            (system, body)
        })
        .collect();
    assert!(
        files[4].1.contains(r"\n(A)  "),
        "the LLaMA file was respelt"
    );
    let n = push_aligned(&db, &token, "quarel-respelt", &files).await;
    assert_eq!(n, 552);
    db.finish().await;
}
