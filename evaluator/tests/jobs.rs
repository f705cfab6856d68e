//! Datasets, generations, scoring runs and comparisons through the API, with
//! workers running in-process, against a real PostgreSQL (a database per test).

mod common;

use axum::http::StatusCode;
use common::{TestDb, get, post_json, push, start_workers, upload, wait_for_job};
use evaluator::db::teams;
use reward_builtins::{builtin, test_module};

/// Four items; `good` answers all correctly, `half` two of four (in another line
/// order, and keyed by id rather than by prompt position), `bad` none.
fn toy_system(system: &str) -> String {
    let items = [("q1", "yes"), ("q2", "no"), ("q3", "yes"), ("q4", "no")];
    let flip = |label: &str| if label == "yes" { "no" } else { "yes" };
    let mut lines: Vec<String> = items
        .iter()
        .enumerate()
        .map(|(i, (id, label))| {
            let answer = match system {
                "good" => label.to_string(),
                "half" if i < 2 => label.to_string(),
                _ => flip(label).to_string(),
            };
            serde_json::json!({
                "id": id,
                "prompt": format!("Question {id}?"),
                "reference": label,
                "response": format!("Some reasoning for {id} by {system}. So the answer is {answer}."),
            })
            .to_string()
        })
        .collect();
    if system == "half" {
        lines.reverse();
    }
    lines.join("\n")
}

async fn toy_dataset(db: &TestDb, token: &str) {
    for system in ["good", "half", "bad"] {
        let (status, summary) =
            push(db, token, "toy", system, "canonical", &toy_system(system)).await;
        assert_eq!(status, StatusCode::CREATED, "{summary}");
        assert_eq!(summary["generations_created"], 4, "{summary}");
    }
}

/// The 95% Wilson interval, written out independently of the service's code.
fn wilson(successes: f64, n: f64) -> (f64, f64) {
    let z = 1.959_963_984_540_054_f64;
    let p = successes / n;
    let denominator = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denominator;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denominator;
    (centre - half, centre + half)
}

fn pair<'a>(pairs: &'a serde_json::Value, a: &str, b: &str) -> &'a serde_json::Value {
    pairs["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["a"] == a && p["b"] == b)
        .unwrap_or_else(|| panic!("no pair {a}/{b} in {pairs}"))
}

#[tokio::test]
async fn generations_are_scored_and_compared_by_item_with_exact_aggregates() {
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "lab").await.unwrap();
    toy_dataset(&db, &token).await;
    // A repeated push changes nothing and says so.
    let (status, again) = push(&db, &token, "toy", "good", "canonical", &toy_system("good")).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["generations_unchanged"], 4);
    let (_, dataset) = get(&db, "/api/v1/datasets/toy", Some(&token)).await;
    assert_eq!(dataset["dataset"]["items"], 4, "{dataset}");
    assert_eq!(dataset["systems"].as_array().unwrap().len(), 3);

    let accuracy = upload(&db, &token, builtin("accuracy").unwrap().wasm).await;
    upload(&db, &token, builtin("length").unwrap().wasm).await;
    let workers = start_workers(&db, 2);

    let (status, job) = post_json(
        &db,
        "/api/v1/jobs/score",
        &token,
        serde_json::json!({"dataset": "toy", "modules": [accuracy.to_string(), "length"]}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["total_units"], 24, "2 modules x 3 systems x 4 items");
    let job = wait_for_job(&db, &token, job["id"].as_i64().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["done_units"], 24);

    let (status, results) = get(&db, "/api/v1/datasets/toy/results", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{results}");
    assert_eq!(results["dataset"], "toy");
    let metric = |system: &str, key: &str| {
        results["systems"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["system"] == system)
            .unwrap()["metrics"][key]
            .clone()
    };
    assert_eq!(metric("good", "accuracy/accuracy")["mean"], 1.0);
    assert_eq!(metric("good", "accuracy/accuracy")["stderr"], 0.0);
    assert_eq!(metric("bad", "accuracy/accuracy")["mean"], 0.0);
    let half = metric("half", "accuracy/accuracy");
    assert_eq!(
        (half["mean"].as_f64(), half["n"].as_i64()),
        (Some(0.5), Some(4))
    );
    // Values 1, 1, 0, 0: sample SD sqrt(1/3), over sqrt(4).
    let expected = (1.0f64 / 3.0).sqrt() / 2.0;
    assert!(
        (half["stderr"].as_f64().unwrap() - expected).abs() < 1e-12,
        "{half}"
    );
    assert_eq!(
        metric("good", "length/words")["direction"],
        "lower-is-better"
    );

    // Scores already stored are not computed again.
    let (_, rerun) = post_json(
        &db,
        "/api/v1/jobs/score",
        &token,
        serde_json::json!({"dataset": "toy", "modules": ["accuracy"]}),
    )
    .await;
    assert_eq!(
        (rerun["state"].as_str(), rerun["total_units"].as_i64()),
        (Some("succeeded"), Some(0))
    );

    // A scorer as judge: accuracy decides, ties where equal.
    let (status, job) = post_json(
        &db,
        "/api/v1/jobs/compare",
        &token,
        serde_json::json!({"dataset": "toy", "judge": "accuracy"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_i64().unwrap();
    assert_eq!(wait_for_job(&db, &token, id).await["state"], "succeeded");
    let (_, pairs) = get(&db, &format!("/api/v1/jobs/{id}/pairs"), Some(&token)).await;
    let good_half = pair(&pairs, "good", "half");
    assert_eq!(
        (&good_half["wins"], &good_half["losses"], &good_half["ties"]),
        (
            &serde_json::json!(2),
            &serde_json::json!(0),
            &serde_json::json!(2)
        )
    );
    assert_eq!(good_half["win_rate"], 0.75);
    let (lo, hi) = wilson(3.0, 4.0);
    assert!(
        (good_half["ci"][0].as_f64().unwrap() - lo).abs() < 1e-9,
        "{good_half}"
    );
    assert!(
        (good_half["ci"][1].as_f64().unwrap() - hi).abs() < 1e-9,
        "{good_half}"
    );
    assert_eq!(pair(&pairs, "bad", "good")["losses"], 4);
    assert_eq!(pair(&pairs, "bad", "half")["win_rate"], 0.25);
    let one_order: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pair_outcomes WHERE job_id = $1 AND b_first IS NULL",
    )
    .bind(id)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(one_order, 12, "a metric judge gives one verdict per item");

    // Every pair has a length-controlled win rate and ALaRM's ties-excluded rate.
    for p in pairs["pairs"].as_array().unwrap() {
        let lc = p["lc_win_rate"].as_f64().unwrap_or(f64::NAN);
        assert!((0.0..=1.0).contains(&lc), "{p}");
    }
    assert_eq!(good_half["win_rate_excluding_ties"], 1.0);

    // The Bradley–Terry leaderboard: good > half > bad, intervals around the
    // ratings, the same rows when asked again (stored once the job finished), and
    // the same through the dataset's "newest comparison with this judge".
    let (status, board) = get(&db, &format!("/api/v1/jobs/{id}/leaderboard"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{board}");
    let order: Vec<&str> = board["systems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["system"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["good", "half", "bad"], "{board}");
    for s in board["systems"].as_array().unwrap() {
        let (rating, lo, hi) = (
            s["rating"].as_f64().unwrap(),
            s["ci"][0].as_f64().unwrap(),
            s["ci"][1].as_f64().unwrap(),
        );
        assert!(lo <= rating && rating <= hi, "{s}");
    }
    let (_, again) = get(&db, &format!("/api/v1/jobs/{id}/leaderboard"), Some(&token)).await;
    assert_eq!(again["systems"], board["systems"]);
    let (status, by_judge) = get(
        &db,
        "/api/v1/datasets/toy/leaderboard?judge=accuracy",
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{by_judge}");
    assert_eq!(
        (&by_judge["job"], &by_judge["systems"]),
        (&serde_json::json!(id), &board["systems"])
    );

    // A judge module is asked in both orders; a position-biased judge's verdicts
    // all become ties, and each is recorded as inconsistent.
    upload(&db, &token, test_module("first-wins").unwrap().wasm).await;
    let (_, job) = post_json(
        &db,
        "/api/v1/jobs/compare",
        &token,
        serde_json::json!({"dataset": "toy", "judge": "first-wins", "systems": ["good", "bad"]}),
    )
    .await;
    let id = job["id"].as_i64().unwrap();
    assert_eq!(wait_for_job(&db, &token, id).await["state"], "succeeded");
    let (_, pairs) = get(&db, &format!("/api/v1/jobs/{id}/pairs"), Some(&token)).await;
    let biased = pair(&pairs, "good", "bad");
    assert_eq!(
        (
            &biased["ties"],
            &biased["inconsistent"],
            &biased["win_rate"]
        ),
        (
            &serde_json::json!(4),
            &serde_json::json!(4),
            &serde_json::json!(0.5)
        )
    );
    let orders: Vec<(i16, Option<i16>, i16)> =
        sqlx::query_as("SELECT a_first, b_first, outcome FROM pair_outcomes WHERE job_id = $1")
            .bind(id)
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert!(orders.iter().all(|o| *o == (1, Some(-1), 0)), "{orders:?}");

    // A consistent judge: the correct label wins in both orders.
    upload(&db, &token, builtin("label-judge").unwrap().wasm).await;
    let (_, job) = post_json(
        &db,
        "/api/v1/jobs/compare",
        &token,
        serde_json::json!({"dataset": "toy", "judge": "label-judge", "systems": ["good", "bad"]}),
    )
    .await;
    let id = job["id"].as_i64().unwrap();
    assert_eq!(wait_for_job(&db, &token, id).await["state"], "succeeded");
    let (_, pairs) = get(&db, &format!("/api/v1/jobs/{id}/pairs"), Some(&token)).await;
    // Pairs follow the order the systems were named in.
    let judged = pair(&pairs, "good", "bad");
    assert_eq!(
        (&judged["wins"], &judged["inconsistent"]),
        (&serde_json::json!(4), &serde_json::json!(0))
    );

    // The rebuild of the summaries from the rows (a migration) agrees with the
    // chunk-by-chunk merge.
    let (_, results_before) = get(&db, "/api/v1/datasets/toy/results", Some(&token)).await;
    let (_, pairs_before) = get(&db, &format!("/api/v1/jobs/{id}/pairs"), Some(&token)).await;
    let rebuild = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../migrations/20261122000008_rebuild_summaries.sql"
    ))
    .unwrap();
    sqlx::raw_sql(&rebuild).execute(&db.pool).await.unwrap();
    let (_, results_after) = get(&db, "/api/v1/datasets/toy/results", Some(&token)).await;
    let (_, pairs_after) = get(&db, &format!("/api/v1/jobs/{id}/pairs"), Some(&token)).await;
    for (system_before, system_after) in results_before["systems"]
        .as_array()
        .unwrap()
        .iter()
        .zip(results_after["systems"].as_array().unwrap())
    {
        for (key, before) in system_before["metrics"].as_object().unwrap() {
            let after = &system_after["metrics"][key];
            assert_eq!(before["n"], after["n"], "{key}");
            for field in ["mean", "stderr"] {
                let (x, y) = (
                    before[field].as_f64().unwrap(),
                    after[field].as_f64().unwrap(),
                );
                assert!((x - y).abs() < 1e-12, "{key} {field}: {x} vs {y}");
            }
        }
    }
    for field in ["wins", "losses", "ties", "inconsistent"] {
        assert_eq!(
            pairs_before["pairs"][0][field],
            pairs_after["pairs"][0][field]
        );
    }

    workers.stop().await;
    db.finish().await;
}

#[tokio::test]
async fn bad_requests_name_their_cause_and_write_nothing() {
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "careful").await.unwrap();
    let malformed =
        "{\"prompt\": \"a\", \"response\": \"b\"}\n\n{\"prompt\": \"c\", \"response\": 3}\n";
    let (status, error) = push(&db, &token, "ds", "sys", "canonical", malformed).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["error"]["code"], "invalid_generations");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("line 3: field `response`"), "{message}");

    let (status, error) = push(
        &db,
        &token,
        "ds",
        "sys",
        "mario",
        "{\"0\": {\"question\": \"q\"}}",
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("entry \"0\""),
        "{error}"
    );
    let (status, error) = push(&db, &token, "bad%20name", "sys", "canonical", "{}").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    let (status, error) = push(&db, &token, "ds", "sys", "yaml", "{}").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("format"),
        "{error}"
    );
    // U+0000 cannot be stored by PostgreSQL: refused at the edge with the field
    // (found by schemathesis against the OpenAPI document), and names holding it
    // name nothing.
    let (status, error) = push(
        &db,
        &token,
        "ds",
        "sys",
        "canonical",
        "{\"prompt\": \"q\", \"response\": \"a\\u0000\"}",
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("field `response`"),
        "{error}"
    );
    let (status, _) = get(&db, "/api/v1/datasets/a%00b/results", Some(&token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = post_json(
        &db,
        "/api/v1/jobs/score",
        &token,
        serde_json::json!({"dataset": "a\u{0}", "modules": ["x"]}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let counts: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM datasets), (SELECT count(*) FROM items), \
         (SELECT count(*) FROM systems), (SELECT count(*) FROM generations)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(counts, (0, 0, 0, 0), "refused imports write nothing");

    // Generations are immutable: a different response for a stored one is a
    // conflict, and the whole file is refused.
    let (status, _) = push(
        &db,
        &token,
        "ds",
        "sys",
        "canonical",
        "{\"id\": 1, \"prompt\": \"p\", \"response\": \"r\"}",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let changed = "{\"id\": 2, \"prompt\": \"p2\", \"response\": \"new\"}\n{\"id\": 1, \"prompt\": \"p\", \"response\": \"other\"}";
    let (status, error) = push(&db, &token, "ds", "sys", "canonical", changed).await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 2:"),
        "{error}"
    );
    let items: i64 = sqlx::query_scalar("SELECT count(*) FROM items")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(items, 1, "the refused file's new item was rolled back");

    // Jobs: unknown names are 404, impossible requests 422, malformed bodies 422.
    for (path, body, expected) in [
        (
            "/api/v1/jobs/score",
            serde_json::json!({"dataset": "nope", "modules": ["x"]}),
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/v1/jobs/score",
            serde_json::json!({"dataset": "ds", "modules": ["nope"]}),
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/v1/jobs/score",
            serde_json::json!({"dataset": "ds", "modules": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v1/jobs/score",
            serde_json::json!({"dataset": "ds"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "/api/v1/jobs/score",
            serde_json::json!({"dataset": "ds", "modules": ["length"], "extra": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        if expected != StatusCode::NOT_FOUND || path.is_empty() {
            upload(&db, &token, builtin("length").unwrap().wasm).await;
        }
        let (status, error) = post_json(&db, path, &token, body.clone()).await;
        assert_eq!(status, expected, "{body} -> {error}");
        assert!(error["error"]["message"].is_string(), "{error}");
    }
    let (status, error) = post_json(
        &db,
        "/api/v1/jobs/compare",
        &token,
        serde_json::json!({"dataset": "ds", "judge": "length"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("words, sentences, characters"),
        "{error}"
    );
    let (status, error) = post_json(
        &db,
        "/api/v1/jobs/compare",
        &token,
        serde_json::json!({"dataset": "ds", "judge": "length", "metric": "words"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at least two systems"),
        "{error}"
    );
    let (status, _) = get(&db, "/api/v1/jobs/999999", Some(&token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(&db, "/api/v1/jobs/not-a-number", Some(&token)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    db.finish().await;
}

#[tokio::test]
async fn teams_see_and_touch_only_their_own_data() {
    let db = TestDb::new().await;
    let owner = teams::create_team(&db.pool, "owner").await.unwrap();
    let other = teams::create_team(&db.pool, "other").await.unwrap();
    toy_dataset(&db, &owner).await;
    upload(&db, &owner, builtin("accuracy").unwrap().wasm).await;
    let (_, job) = post_json(
        &db,
        "/api/v1/jobs/compare",
        &owner,
        serde_json::json!({"dataset": "toy", "judge": "accuracy"}),
    )
    .await;
    let id = job["id"].as_i64().unwrap();

    for path in [
        format!("/api/v1/jobs/{id}"),
        format!("/api/v1/jobs/{id}/pairs"),
        "/api/v1/datasets/toy".to_string(),
        "/api/v1/datasets/toy/results".to_string(),
    ] {
        let (status, body) = get(&db, &path, Some(&other)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    let (status, _) = post_json(
        &db,
        &format!("/api/v1/jobs/{id}/cancel"),
        &other,
        serde_json::json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The other team's module names resolve only within the other team.
    let (status, _) = post_json(
        &db,
        "/api/v1/jobs/score",
        &other,
        serde_json::json!({"dataset": "toy", "modules": ["accuracy"]}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for (path, key) in [
        ("/api/v1/jobs", "jobs"),
        ("/api/v1/datasets", "datasets"),
        ("/api/v1/systems", "systems"),
    ] {
        let (_, list) = get(&db, path, Some(&other)).await;
        assert_eq!(
            list[key].as_array().map(Vec::len),
            Some(0),
            "{path}: {list}"
        );
        let (_, list) = get(&db, path, Some(&owner)).await;
        assert!(!list[key].as_array().unwrap().is_empty(), "{path}: {list}");
    }
    // The same dataset and system names are free for another team.
    let (status, summary) = push(&db, &other, "toy", "good", "canonical", &toy_system("bad")).await;
    assert_eq!(status, StatusCode::CREATED, "{summary}");
    assert_eq!(
        get(&db, &format!("/api/v1/jobs/{id}"), Some(&owner))
            .await
            .0,
        StatusCode::OK
    );
    db.finish().await;
}

#[tokio::test]
async fn a_module_fault_fails_its_job_with_the_cause_while_other_jobs_finish() {
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "faults").await.unwrap();
    let lines: Vec<String> = ["panic", "b", "c"]
        .iter()
        .map(|p| serde_json::json!({"prompt": p, "response": "r"}).to_string())
        .collect();
    push(&db, &token, "faulty", "sys", "canonical", &lines.join("\n")).await;
    toy_dataset(&db, &token).await;
    let hostile = upload(&db, &token, test_module("hostile").unwrap().wasm).await;
    upload(&db, &token, builtin("accuracy").unwrap().wasm).await;

    let (_, failing) = post_json(
        &db,
        "/api/v1/jobs/score",
        &token,
        serde_json::json!({"dataset": "faulty", "modules": [hostile.to_string()]}),
    )
    .await;
    let (_, fine) = post_json(
        &db,
        "/api/v1/jobs/score",
        &token,
        serde_json::json!({"dataset": "toy", "modules": ["accuracy"]}),
    )
    .await;
    let workers = start_workers(&db, 2);
    let failed = wait_for_job(&db, &token, failing["id"].as_i64().unwrap()).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(failed["error_code"], "guest_panic", "{failed}");
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("module `hostile`") && error.contains("panicked"),
        "{error}"
    );
    let done = wait_for_job(&db, &token, fine["id"].as_i64().unwrap()).await;
    assert_eq!(done["state"], "succeeded", "{done}");
    workers.stop().await;
    db.finish().await;
}

#[tokio::test]
async fn a_cancelled_job_runs_no_further_chunks() {
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "cancels").await.unwrap();
    toy_dataset(&db, &token).await;
    upload(&db, &token, builtin("accuracy").unwrap().wasm).await;
    let (_, job) = post_json(
        &db,
        "/api/v1/jobs/score",
        &token,
        serde_json::json!({"dataset": "toy", "modules": ["accuracy"]}),
    )
    .await;
    let id = job["id"].as_i64().unwrap();
    let (status, cancelled) = post_json(
        &db,
        &format!("/api/v1/jobs/{id}/cancel"),
        &token,
        serde_json::json!({}),
    )
    .await;
    assert_eq!(
        (status, cancelled["state"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    // Workers started afterwards find nothing to do.
    let workers = start_workers(&db, 1);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    workers.stop().await;
    let scores: i64 = sqlx::query_scalar("SELECT count(*) FROM scores")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(scores, 0);
    let (_, after) = get(&db, &format!("/api/v1/jobs/{id}"), Some(&token)).await;
    assert_eq!(
        (after["state"].as_str(), after["done_chunks"].as_i64()),
        (Some("cancelled"), Some(0))
    );
    db.finish().await;
}

#[tokio::test]
async fn every_route_in_the_openapi_document_is_served() {
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "docs").await.unwrap();
    let (status, doc) = get(&db, "/api/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 17, "{}", paths.len());
    for (path, methods) in paths {
        for method in methods.as_object().unwrap().keys() {
            let concrete = path
                .replace("{id}", "999999")
                .replace("{dataset}", "nope")
                .replace("{system}", "nope");
            let request = axum::http::Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&concrete)
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(axum::body::Body::from("{}"))
                .unwrap();
            let (status, body) = common::send(&db, request).await;
            // Any answer but the router's own "no such endpoint" / "method not
            // allowed" means the route exists.
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_ne!(
                body["error"]["message"].as_str(),
                Some("no such endpoint"),
                "{method} {path} is documented but not routed"
            );
        }
    }
    db.finish().await;
}

/// The validation every API test runs (`common::check_documented`) can fail:
/// a job without its state, a score job with an unknown state, an undocumented
/// success status and an unknown path are all refused, while a real job body
/// passes. (A check that cannot fail would make the suite's validation empty.)
#[tokio::test]
async fn responses_that_break_the_document_are_refused() {
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "strict").await.unwrap();
    let id = upload(&db, &token, builtin("accuracy").unwrap().wasm).await;
    let (status, module) = get(&db, &format!("/api/v1/modules/{id}"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    let get = axum::http::Method::GET;
    let path = format!("/api/v1/modules/{id}");
    common::check_documented(&get, &path, StatusCode::OK, &module);
    let refused = |body: serde_json::Value, status: StatusCode, path: &str| {
        let path = path.to_string();
        let method = get.clone();
        std::panic::catch_unwind(move || common::check_documented(&method, &path, status, &body))
            .is_err()
    };
    let mut no_kind = module.clone();
    no_kind.as_object_mut().unwrap().remove("kind");
    assert!(refused(no_kind, StatusCode::OK, &path), "a missing field");
    let mut bad_direction = module.clone();
    bad_direction["metrics"][0]["direction"] = "sideways".into();
    assert!(
        refused(bad_direction, StatusCode::OK, &path),
        "an unknown enum value"
    );
    assert!(
        refused(module.clone(), StatusCode::CREATED, &path),
        "an undocumented success status"
    );
    assert!(
        refused(module.clone(), StatusCode::OK, "/api/v1/nothing/here"),
        "an undocumented path"
    );
    let doc = serde_json::to_value(evaluator::api::openapi()).unwrap();
    assert_eq!(
        doc["components"]["schemas"]["Job"]["properties"]["state"]["$ref"],
        "#/components/schemas/JobState",
        "job states are an enum in the document"
    );
    db.finish().await;
}

/// A span built-in scored by the service stores, per generation, exactly the mean
/// of the spans the host reports for the same sample (what a trainer's
/// `score_spans` sees), with the passages taken from the item's fields. So an
/// evaluation of a span reward is comparable with training on it.
#[tokio::test]
async fn a_span_builtins_stored_score_is_the_mean_of_its_spans() {
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "lab").await.unwrap();
    let lines = [
        serde_json::json!({
            "id": "q1",
            "prompt": "Where is the tower?",
            "response": "The Eiffel Tower is in Paris. Aliens built it! Really?",
            "fields": {"passages": "The Eiffel Tower is a tower in Paris, France."},
        }),
        // No passages: grounded against the prompt.
        serde_json::json!({
            "id": "q2",
            "prompt": "Dr. Who measured 3.5 litres of rain.",
            "response": "Dr. Who measured 3.5 litres. Rain is wet.\nNo terminator",
        }),
        // Only stop words: no grounding span, so a null score.
        serde_json::json!({"id": "q3", "prompt": "q", "response": "It is what it is."}),
    ];
    let body = lines
        .iter()
        .map(|l| l.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    let (status, summary) = push(&db, &token, "grounded", "sys", "canonical", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{summary}");
    let names = ["grounding", "sentence-readability"];
    let mut ids = Vec::new();
    for name in names {
        ids.push(upload(&db, &token, builtin(name).unwrap().wasm).await);
    }
    let workers = start_workers(&db, 1);
    let (status, job) = post_json(
        &db,
        "/api/v1/jobs/score",
        &token,
        serde_json::json!({"dataset": "grounded", "modules": names}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let job = wait_for_job(&db, &token, job["id"].as_i64().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    workers.stop().await;

    let samples: Vec<reward_host::Sample> = lines
        .iter()
        .map(|l| {
            let mut sample = reward_host::Sample::new(
                l["prompt"].as_str().unwrap(),
                l["response"].as_str().unwrap(),
            );
            if let Some(passages) = l["fields"]["passages"].as_str() {
                sample = sample.with_field("passages", passages);
            }
            sample
        })
        .collect();
    let mut nulls = 0;
    for (name, id) in names.into_iter().zip(ids) {
        let stored: Vec<(String, Option<f64>)> = sqlx::query_as(
            "SELECT g.response, s.value FROM scores s JOIN generations g ON g.id = s.generation_id \
             WHERE s.module_id = $1 AND s.metric = 0",
        )
        .bind(id)
        .fetch_all(&db.pool)
        .await
        .unwrap();
        assert_eq!(stored.len(), samples.len(), "{name}");
        let module = db.host.load(builtin(name).unwrap().wasm).unwrap();
        assert!(module.has_spans());
        let spans = module.score_spans(&samples).unwrap();
        for (sample, spans) in samples.iter().zip(&spans) {
            let mean = (!spans.is_empty())
                .then(|| spans.iter().map(|s| s.value).sum::<f64>() / spans.len() as f64);
            let value = stored
                .iter()
                .find(|(response, _)| *response == sample.response)
                .unwrap_or_else(|| panic!("{name}: no score for {:?}", sample.response))
                .1;
            assert_eq!(
                value.map(f64::to_bits),
                mean.map(f64::to_bits),
                "{name} on {:?}: stored {value:?}, spans {spans:?}",
                sample.response
            );
            nulls += usize::from(value.is_none());
        }
    }
    // q3 has no grounding span; every sample has a sentence to grade.
    assert_eq!(nulls, 1);
}
