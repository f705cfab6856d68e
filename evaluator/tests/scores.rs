//! Learned-reward scores pushed with their provenance (`POST
//! /api/v1/datasets/{d}/scores`, what `push-scores` sends), on a real
//! PostgreSQL: what is stored, the refusals (each one line naming the file,
//! the line and the field, nothing written), the re-push rule, and the
//! results page marking them apart from the sandboxed modules' metrics.

mod common;

use axum::http::StatusCode;
use common::{TestDb, get, post_json, push, start_workers, upload, wait_for_job};
use evaluator::db::teams;
use reward_builtins::builtin;

const MODEL_A: &str = "aaaaaaaaaaaa0123456789abcdef0123456789abcdef0123456789abcdef0123";
const MODEL_B: &str = "bbbbbbbbbbbb0123456789abcdef0123456789abcdef0123456789abcdef0123";

/// Two systems on three items, `q1` and `q2` pushed with ids and the third
/// keyed by its prompt.
async fn dataset(db: &TestDb) -> String {
    let token = teams::create_team(&db.pool, "lab").await.unwrap();
    for system in ["base", "tuned"] {
        let lines = [
            serde_json::json!({"id": "q1", "prompt": "Is ice cold?", "response": format!("Yes, by {system}.")}),
            serde_json::json!({"id": "q2", "prompt": "Is fire cold?", "response": format!("No, by {system}.")}),
            serde_json::json!({"prompt": "Name  a\tcolour.", "response": format!("Blue, by {system}.")}),
        ];
        let body: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        let (status, summary) = push(db, &token, "qa", system, "canonical", &body.join("\n")).await;
        assert_eq!(status, StatusCode::CREATED, "{summary}");
    }
    token
}

fn provenance(sha: &str, lines: usize, command: &str) -> serde_json::Value {
    serde_json::json!({
        "reward_model": "runs/rm-helpful/final", "sha256": sha, "command": command,
        "input": "gens/tuned.jsonl", "lines": lines,
    })
}

/// The scores file `trainer score` writes for these (id, prompt, score) lines.
fn scores(lines: &[(Option<&str>, &str, f64)]) -> String {
    lines
        .iter()
        .map(|(id, prompt, score)| match id {
            Some(id) => serde_json::json!({"id": id, "prompt": prompt, "score": score}),
            None => serde_json::json!({"prompt": prompt, "score": score}),
        })
        .map(|v| v.to_string() + "\n")
        .collect()
}

async fn push_scores(
    db: &TestDb,
    token: &str,
    system: &str,
    metric: &str,
    provenance: serde_json::Value,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    post_json(
        db,
        &format!("/api/v1/datasets/qa/scores?system={system}&metric={metric}"),
        token,
        serde_json::json!({"file": "out/tuned.scores.jsonl", "provenance": provenance, "scores": body}),
    )
    .await
}

const THREE: [(Option<&str>, &str, f64); 3] = [
    (Some("q1"), "Is ice cold?", 1.5),
    (Some("q2"), "Is fire cold?", -0.5),
    // Another spelling of the prompt: keyed after normalisation.
    (None, "Name a colour.", 0.25),
];

async fn stored_rows(db: &TestDb) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM external_metrics), (SELECT count(*) FROM external_score_sets), \
                (SELECT count(*) FROM external_scores)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_push_stores_the_scores_with_their_provenance_and_the_results_report_them() {
    let db = TestDb::new().await;
    let token = dataset(&db).await;
    let command = "trainer score --rm runs/rm-helpful --input gens/tuned.jsonl --output out/tuned.scores.jsonl";
    let (status, summary) = push_scores(
        &db,
        &token,
        "tuned",
        "helpful",
        provenance(&MODEL_A.to_uppercase(), 3, command),
        &scores(&THREE),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{summary}");
    assert_eq!(summary["scores"], 3);
    assert_eq!(summary["generations"], 3);
    assert_eq!(summary["replaced"], false);
    assert_eq!(summary["sha256"], MODEL_A, "stored in lower case");

    // Each value on its generation, found through the item's key.
    let values: Vec<(String, f64)> = sqlx::query_as(
        "SELECT i.key, x.value FROM external_scores x JOIN generations g ON g.id = x.generation_id \
         JOIN items i ON i.id = g.item_id JOIN systems s ON s.id = g.system_id \
         WHERE s.name = 'tuned' ORDER BY i.key",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        values,
        [
            ("Name a colour.".to_string(), 0.25),
            ("q1".to_string(), 1.5),
            ("q2".to_string(), -0.5)
        ]
    );
    let (model, sha, stored_command, input, lines, file, by): (
        String,
        String,
        String,
        String,
        i64,
        String,
        String,
    ) = sqlx::query_as(
        "SELECT e.model, m.sha256, e.command, e.input, e.lines, e.file, e.imported_by \
         FROM external_score_sets e JOIN external_metrics m ON m.id = e.metric_id",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        (model.as_str(), sha.as_str(), stored_command.as_str()),
        ("runs/rm-helpful/final", MODEL_A, command)
    );
    assert_eq!(
        (input.as_str(), lines, file.as_str()),
        ("gens/tuned.jsonl", 3, "out/tuned.scores.jsonl")
    );
    assert_eq!(
        by,
        token[..12],
        "the pushing token's prefix, never the token"
    );

    // The results: the mean and the n − 1 standard error of 1.5, −0.5, 0.25,
    // computed here by hand; the metric carries its provenance.
    let (status, results) = get(&db, "/api/v1/datasets/qa/results", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{results}");
    let tuned = results["systems"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["system"] == "tuned")
        .unwrap();
    let metric = &tuned["metrics"]["helpful"];
    let mean = (1.5 - 0.5 + 0.25) / 3.0;
    let ss = [1.5f64, -0.5, 0.25]
        .iter()
        .map(|v| (v - mean).powi(2))
        .sum::<f64>();
    let stderr = (ss / 2.0).sqrt() / 3f64.sqrt();
    assert!(
        (metric["mean"].as_f64().unwrap() - mean).abs() < 1e-12,
        "{metric}"
    );
    assert!(
        (metric["stderr"].as_f64().unwrap() - stderr).abs() < 1e-12,
        "{metric}"
    );
    assert_eq!(metric["n"], 3);
    assert_eq!(metric["direction"], "higher-is-better");
    assert_eq!(metric["learned"]["sha256"], MODEL_A);
    assert_eq!(metric["learned"]["command"], command);
    assert_eq!(metric["learned"]["source"], "reward_model");
    assert!(
        results["systems"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["system"] == "tuned" || s["metrics"].get("helpful").is_none()),
        "only the pushed system has the metric: {results}"
    );
    db.finish().await;
}

#[tokio::test]
async fn a_refused_push_says_which_file_line_and_field_and_stores_nothing() {
    let db = TestDb::new().await;
    let token = dataset(&db).await;
    let good = provenance(MODEL_A, 3, "trainer score");
    let cases: Vec<(&str, serde_json::Value, String, &str)> = vec![
        (
            "unknown item",
            good.clone(),
            scores(&[THREE[0], (Some("q9"), "Is it?", 1.0), THREE[2]]),
            "out/tuned.scores.jsonl: line 2: field `id`: dataset `qa` has no item with id \"q9\" (items are keyed by the canonical `id` when the generations had one, else by the prompt); nothing was stored",
        ),
        (
            "unknown prompt",
            good.clone(),
            scores(&[THREE[0], THREE[1], (None, "Name a color.", 1.0)]),
            "out/tuned.scores.jsonl: line 3: field `prompt`: dataset `qa` has no item with prompt \"Name a color.\"",
        ),
        (
            "bad line",
            good.clone(),
            format!(
                "{}{}",
                scores(&THREE[..2]),
                "{\"prompt\": \"Name a colour.\", \"score\": \"high\"}\n"
            ),
            "out/tuned.scores.jsonl: line 3: field `score`: invalid type: string \"high\", expected f64",
        ),
        (
            "a NaN",
            good.clone(),
            format!(
                "{}{}",
                scores(&THREE[..2]),
                "{\"prompt\": \"Name a colour.\", \"score\": null}\n"
            ),
            "out/tuned.scores.jsonl: line 3: field `score` is null (the model gave NaN?); expected a finite number",
        ),
        (
            "a provenance without its hash",
            serde_json::json!({"reward_model": "r", "command": "c", "input": "i", "lines": 3}),
            scores(&THREE),
            "out/tuned.scores.jsonl.provenance.json: missing field `sha256`; expected {\"reward_model\", \"sha256\", \"command\", \"input\", \"lines\"}, the provenance `trainer score --output FILE` writes beside FILE",
        ),
        (
            "another run's provenance",
            provenance(MODEL_A, 4, "trainer score"),
            scores(&THREE),
            "out/tuned.scores.jsonl.provenance.json: field `lines` is 4 but out/tuned.scores.jsonl has 3 score lines",
        ),
    ];
    for (what, provenance, body, expected) in cases {
        let (status, error) = push_scores(&db, &token, "tuned", "helpful", provenance, &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {error}");
        assert_eq!(error["error"]["code"], "invalid_scores", "{what}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(expected), "{what}: {message}");
        assert_eq!(message.lines().count(), 1, "{what}: one line");
        assert_eq!(stored_rows(&db).await, (0, 0, 0), "{what}: nothing stored");
    }
    let (status, error) = push_scores(
        &db,
        &token,
        "nobody",
        "helpful",
        good.clone(),
        &scores(&THREE),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("system `nobody` has no generations on dataset `qa`"),
        "{error}"
    );
    let (status, error) =
        push_scores(&db, &token, "tuned", "rm%2Fhelpful", good, &scores(&THREE)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("metric name \"rm/helpful\" is invalid"),
        "{error}"
    );
    assert_eq!(stored_rows(&db).await, (0, 0, 0));
    db.finish().await;
}

#[tokio::test]
async fn the_same_model_replaces_a_systems_scores_and_another_model_is_refused() {
    let db = TestDb::new().await;
    let token = dataset(&db).await;
    let (status, _) = push_scores(
        &db,
        &token,
        "tuned",
        "helpful",
        provenance(MODEL_A, 3, "trainer score --device cpu"),
        &scores(&THREE),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    // The same model again, on two of the items with one value changed:
    // replaced, provenance and all.
    let (status, summary) = push_scores(
        &db,
        &token,
        "tuned",
        "helpful",
        provenance(MODEL_A, 2, "trainer score --device cuda"),
        &scores(&[THREE[0], (Some("q2"), "Is fire cold?", -0.75)]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["replaced"], true);
    assert_eq!(
        summary["changed"], 2,
        "q2's value, and the item no longer scored"
    );
    assert_eq!(summary["scores"], 2);
    assert_eq!(stored_rows(&db).await, (1, 1, 2));
    let (_, results) = get(&db, "/api/v1/datasets/qa/results", Some(&token)).await;
    assert_eq!(
        results["systems"].as_array().unwrap().len(),
        1,
        "base has no scores: {results}"
    );
    let metric = &results["systems"][0]["metrics"]["helpful"];
    assert_eq!(results["systems"][0]["system"], "tuned");
    assert!(
        (metric["mean"].as_f64().unwrap() - 0.375).abs() < 1e-12,
        "{metric}"
    );
    assert_eq!(metric["learned"]["command"], "trainer score --device cuda");

    // Another model under the same name, for another system: refused.
    let (status, error) = push_scores(
        &db,
        &token,
        "base",
        "helpful",
        provenance(MODEL_B, 3, "trainer score"),
        &scores(&THREE),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert_eq!(
        error["error"]["message"],
        "metric `helpful` on dataset `qa` holds the scores of reward model sha256 aaaaaaaaaaaa… \
         (runs/rm-helpful/final, pushed for `tuned`), and out/tuned.scores.jsonl's come from sha256 \
         bbbbbbbbbbbb…; one metric name is one model, so that its means are on one scale: push these \
         under another --metric (e.g. helpful-bbbbbbbbbbbb)"
    );
    assert_eq!(stored_rows(&db).await, (1, 1, 2), "nothing written");
    // Under its own name it is a second metric.
    let (status, _) = push_scores(
        &db,
        &token,
        "base",
        "helpful-bbbbbbbbbbbb",
        provenance(MODEL_B, 3, "trainer score"),
        &scores(&THREE),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(stored_rows(&db).await, (2, 2, 5));
    db.finish().await;
}

#[tokio::test]
async fn the_results_page_marks_learned_rewards_and_shows_their_provenance() {
    let db = TestDb::new().await;
    let token = dataset(&db).await;
    upload(&db, &token, builtin("length").unwrap().wasm).await;
    let workers = start_workers(&db, 1);
    let (_, job) = post_json(
        &db,
        "/api/v1/jobs/score",
        &token,
        serde_json::json!({"dataset": "qa", "modules": ["length"]}),
    )
    .await;
    assert_eq!(
        wait_for_job(&db, &token, job["id"].as_i64().unwrap()).await["state"],
        "succeeded"
    );
    workers.stop().await;
    let command = "trainer score --rm runs/rm-helpful --input gens/tuned.jsonl --output out/tuned.scores.jsonl";
    let (status, _) = push_scores(
        &db,
        &token,
        "tuned",
        "helpful",
        provenance(MODEL_A, 3, command),
        &scores(&THREE),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    let cookie = common::sign_in(&db, &token).await;
    let (status, html) = common::html(&db, "/datasets/qa", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    let header_of = |key: &str| {
        let at = html
            .find(&format!("data-key=\"{key}\""))
            .unwrap_or_else(|| panic!("{key} column: {html}"));
        let start = html[..at].rfind("<th").unwrap();
        let end = at + html[at..].find("</th>").unwrap();
        html[start..end].to_string()
    };
    let learned = header_of("helpful");
    assert!(learned.contains("class=\"num learned\""), "{learned}");
    assert!(learned.contains("class=\"badge learned\""), "{learned}");
    assert!(learned.contains("sha256 aaaaaaaaaaaa…"), "{learned}");
    let module = header_of("length/characters");
    assert!(
        !module.contains("learned"),
        "a module's column is not marked: {module}"
    );
    assert!(
        html.find("data-key=\"length/characters\"").unwrap()
            < html.find("data-key=\"helpful\"").unwrap(),
        "learned columns come after the modules'"
    );
    // The tuned row's learned cell: the API's mean, tinted, its interval as
    // for a module.
    let (_, results) = get(&db, "/api/v1/datasets/qa/results", Some(&token)).await;
    let mean = results["systems"][1]["metrics"]["helpful"]["mean"]
        .as_f64()
        .unwrap();
    let row_start = html.find("<tr data-system=\"tuned\"").unwrap();
    let row = &html[row_start..row_start + html[row_start..].find("</tr>").unwrap()];
    assert!(
        row.contains(&format!(" learned\" data-mean=\"{mean}\"")),
        "{row}"
    );
    assert!(
        row.contains("learned reward, model sha256 aaaaaaaaaaaa…"),
        "{row}"
    );
    // The provenance table: model, hash prefix (all 64 on hover), command, input.
    let section = &html[html
        .find("id=\"learned-rewards\"")
        .expect("a provenance section")..];
    for wanted in [
        "data-metric=\"helpful\" data-system=\"tuned\"",
        "reward model <code>runs/rm-helpful/final</code>",
        &format!("<code class=\"sha\" title=\"{MODEL_A}\">aaaaaaaaaaaa</code>"),
        &format!("<code class=\"command\">{command}</code>"),
        "gens/tuned.jsonl (3 lines, out/tuned.scores.jsonl)",
        &format!("by {}", &token[..12]),
    ] {
        assert!(section.contains(wanted), "{wanted} in {section}");
    }
    // Side by side, each item shows the learned reward beside the modules'
    // metrics, named apart; `base` has no scores under it.
    let (status, html) = common::html(&db, "/datasets/qa/compare?a=base&b=tuned", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    let item = &html[html.find("data-key=\"q1\"").expect("item q1")..];
    let item = &item[..item.find("</article>").unwrap()];
    assert!(
        item.contains("<tr><td><code>helpful (learned)</code></td><td class=\"num\">—</td><td class=\"num\">1.500</td></tr>"),
        "{item}"
    );
    assert!(item.find("length/characters").unwrap() < item.find("helpful (learned)").unwrap());
    // Without learned rewards there is no such section.
    let bare = TestDb::new().await;
    let other = dataset(&bare).await;
    let cookie = common::sign_in(&bare, &other).await;
    let (_, html) = common::html(&bare, "/datasets/qa", &cookie).await;
    assert!(!html.contains("learned-rewards"), "{html}");
    bare.finish().await;
    db.finish().await;
}
