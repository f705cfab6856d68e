//! How generations of different systems meet on a dataset's items, against a
//! real PostgreSQL (a database per test): prompts spelt with other whitespace or
//! another Unicode form are one item; an import reports what it matched; a
//! comparison of systems with nothing in common is refused; a leaderboard over a
//! disconnected comparison graph says so; items stored before the normalised key
//! are re-keyed by the migration; an item `id` pushed again with another prompt
//! is refused.

mod common;

use axum::http::StatusCode;
use common::{
    TestDb, get, html, legacy_compare_job, post_json, push, sign_in, start_workers, upload,
    wait_for_job,
};
use evaluator::db::teams;
use evaluator::import::prompt_key;
use reward_builtins::builtin;

/// A canonical file: one line per (prompt, reference, response).
fn lines(rows: &[(&str, &str, &str)]) -> String {
    rows.iter()
        .map(|(prompt, reference, response)| {
            serde_json::json!({"prompt": prompt, "reference": reference, "response": response})
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
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
async fn prompts_spelt_with_other_whitespace_and_unicode_forms_are_one_item() {
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "lab").await.unwrap();
    // As GPT-3's MaRio files write them: a space on each side of the newline; é
    // precomposed (NFC).
    let gpt3 = lines(&[
        (
            "Is the café open a week? \n (A) no (B) yes",
            "(b)",
            "So the answer is (b).",
        ),
        ("Can  a cat swim?", "yes", "So the answer is yes."),
        ("Is ice cold?", "yes", "So the answer is no."),
    ]);
    let (status, summary) = push(&db, &token, "qa", "gpt3", "canonical", &gpt3).await;
    assert_eq!(status, StatusCode::CREATED, "{summary}");
    assert_eq!(
        (
            &summary["items_created"],
            &summary["items_matched"],
            &summary["items_missing"]
        ),
        (
            &serde_json::json!(3),
            &serde_json::json!(0),
            &serde_json::json!(0)
        ),
        "{summary}"
    );
    // As LLaMA's write them: no spaces around the newline, é decomposed (NFD),
    // CRLF and a tab, a trailing space; and one question of its own.
    let llama = lines(&[
        (
            "Is the cafe\u{301} open a week?\n(A) no (B) yes",
            "(b)",
            "So the answer is (a).",
        ),
        ("Can a cat\tswim?\r\n", "yes", "So the answer is yes."),
        ("Is ice cold? ", "yes", "So the answer is yes."),
        ("Is fire hot?", "yes", "So the answer is yes."),
    ]);
    let (status, summary) = push(&db, &token, "qa", "llama", "canonical", &llama).await;
    assert_eq!(status, StatusCode::CREATED, "{summary}");
    assert_eq!(
        (
            &summary["items_created"],
            &summary["items_matched"],
            &summary["items_missing"],
            &summary["systems_without_common_items"]
        ),
        (
            &serde_json::json!(1),
            &serde_json::json!(3),
            &serde_json::json!(0),
            &serde_json::json!([])
        ),
        "{summary}"
    );
    // Case is kept: "IS ICE COLD?" is another question. This system lacks two
    // of the four items the others answered.
    let partial = lines(&[
        ("Is fire hot?", "yes", "So the answer is no."),
        ("IS ICE COLD?", "yes", "So the answer is yes."),
        ("Can a cat swim?", "yes", "So the answer is yes."),
    ]);
    let (_, summary) = push(&db, &token, "qa", "partial", "canonical", &partial).await;
    assert_eq!(
        (
            &summary["items_created"],
            &summary["items_matched"],
            &summary["items_missing"]
        ),
        (
            &serde_json::json!(1),
            &serde_json::json!(2),
            &serde_json::json!(2)
        ),
        "{summary}"
    );
    // A repeated push changes nothing and matches everything.
    let (status, summary) = push(&db, &token, "qa", "llama", "canonical", &llama).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["items_matched"], 4, "{summary}");

    let (_, dataset) = get(&db, "/api/v1/datasets/qa", Some(&token)).await;
    assert_eq!(dataset["dataset"]["items"], 5, "{dataset}");
    // The stored prompt is the first file's spelling; the key is the normalised one.
    let (prompt, key): (String, String) =
        sqlx::query_as("SELECT prompt, key FROM items WHERE key LIKE 'Is the caf%'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(prompt, "Is the café open a week? \n (A) no (B) yes");
    assert_eq!(key, "Is the café open a week? (A) no (B) yes");

    // Compared on the items both answered: n says how many, and how many each
    // system answered shows the partial overlap.
    upload(&db, &token, builtin("accuracy").unwrap().wasm).await;
    let workers = start_workers(&db, 2);
    let (status, job) = post_json(
        &db,
        "/api/v1/jobs/compare",
        &token,
        serde_json::json!({"dataset": "qa", "judge": "accuracy", "systems": ["gpt3", "llama", "partial"]}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_i64().unwrap();
    assert_eq!(wait_for_job(&db, &token, id).await["state"], "succeeded");
    workers.stop().await;
    let (_, pairs) = get(&db, &format!("/api/v1/jobs/{id}/pairs"), Some(&token)).await;
    let gpt3_llama = pair(&pairs, "gpt3", "llama");
    assert_eq!(
        (
            &gpt3_llama["n"],
            &gpt3_llama["a_items"],
            &gpt3_llama["b_items"]
        ),
        (
            &serde_json::json!(3),
            &serde_json::json!(3),
            &serde_json::json!(4)
        ),
        "{gpt3_llama}"
    );
    // Café: gpt3 right, llama wrong; cat: both right; ice: gpt3 wrong, llama right.
    assert_eq!(
        (
            &gpt3_llama["wins"],
            &gpt3_llama["losses"],
            &gpt3_llama["ties"]
        ),
        (
            &serde_json::json!(1),
            &serde_json::json!(1),
            &serde_json::json!(1)
        ),
        "{gpt3_llama}"
    );
    // Fire: llama right, partial wrong; cat: both right.
    let llama_partial = pair(&pairs, "llama", "partial");
    assert_eq!(
        (
            &llama_partial["n"],
            &llama_partial["wins"],
            &llama_partial["ties"]
        ),
        (
            &serde_json::json!(2),
            &serde_json::json!(1),
            &serde_json::json!(1)
        ),
        "{llama_partial}"
    );
    assert_eq!(pair(&pairs, "gpt3", "partial")["n"], 1, "{pairs}");
    let (_, board) = get(&db, &format!("/api/v1/jobs/{id}/leaderboard"), Some(&token)).await;
    assert_eq!(board["connected"], true, "{board}");
    assert_eq!(board["warning"], serde_json::Value::Null, "{board}");

    // The win-rates page shows n, each system's count for partial pairs, and a note.
    let cookie = sign_in(&db, &token).await;
    let (status, page) = html(&db, &format!("/datasets/qa/winrates?job={id}"), &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"id="overlap-note""#), "{page}");
    assert!(
        page.contains("3 of 3 pairs were compared on part"),
        "{page}"
    );
    assert!(page.contains("of 3 / 4 answered"), "{page}");
    assert!(!page.contains(r#"id="leaderboard-warning""#));
    db.finish().await;
}

#[tokio::test]
async fn a_comparison_of_systems_with_no_item_in_common_is_refused_naming_them() {
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "lab").await.unwrap();
    let first = lines(&[("Q1?", "yes", "yes"), ("Q2?", "no", "no")]);
    let other = lines(&[("Q3?", "yes", "yes"), ("Q4?", "no", "no")]);
    push(&db, &token, "qa", "gpt3", "canonical", &first).await;
    push(&db, &token, "qa", "flan", "canonical", &first).await;
    let (_, summary) = push(&db, &token, "qa", "llama-65b", "canonical", &other).await;
    assert_eq!(
        (
            &summary["items_matched"],
            &summary["items_missing"],
            &summary["systems_without_common_items"]
        ),
        (
            &serde_json::json!(0),
            &serde_json::json!(2),
            &serde_json::json!(["flan", "gpt3"])
        ),
        "the import says what it did not match: {summary}"
    );
    upload(&db, &token, builtin("accuracy").unwrap().wasm).await;
    let (status, body) = post_json(
        &db,
        "/api/v1/jobs/compare",
        &token,
        serde_json::json!({"dataset": "qa", "judge": "accuracy", "systems": ["gpt3", "llama-65b"]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "no_common_items", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "systems `gpt3` and `llama-65b`: no item in common on dataset `qa`, so nothing to compare"
        ),
        "{message}"
    );
    // All pairs: both pairs with llama-65b are named, and no job was created.
    let (status, body) = post_json(
        &db,
        "/api/v1/jobs/compare",
        &token,
        serde_json::json!({"dataset": "qa", "judge": "accuracy"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("systems `flan` and `llama-65b`, `gpt3` and `llama-65b`: no item"),
        "{message}"
    );
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(jobs, 0);
    // The overlapping pair alone is fine.
    let (status, body) = post_json(
        &db,
        "/api/v1/jobs/compare",
        &token,
        serde_json::json!({"dataset": "qa", "judge": "accuracy", "systems": ["gpt3", "flan"]}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    db.finish().await;
}

#[tokio::test]
async fn a_leaderboard_over_a_disconnected_comparison_graph_is_flagged() {
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "lab").await.unwrap();
    // {a, b} answered Q1-Q3, {c, d} Q4-Q6: two groups that never meet.
    let answers = |prompts: [&str; 3], right: usize| {
        let rows: Vec<(&str, &str, &str)> = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let answer = if i < right {
                    "So the answer is yes."
                } else {
                    "So the answer is no."
                };
                (*p, "yes", answer)
            })
            .collect();
        lines(&rows)
    };
    let first = ["Q1?", "Q2?", "Q3?"];
    let second = ["Q4?", "Q5?", "Q6?"];
    for (system, prompts, right) in [
        ("a", first, 3),
        ("b", first, 0),
        ("c", second, 2),
        ("d", second, 1),
    ] {
        let (status, _) = push(
            &db,
            &token,
            "qa",
            system,
            "canonical",
            &answers(prompts, right),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let judge = upload(&db, &token, builtin("accuracy").unwrap().wasm).await;
    // Such a comparison is refused now; one stored before the refusal existed
    // was planned like this: every pair with common items, the others skipped.
    let job = legacy_compare_job(&db, "qa", judge, &[("a", "b"), ("c", "d")]).await;
    let workers = start_workers(&db, 2);
    assert_eq!(wait_for_job(&db, &token, job).await["state"], "succeeded");
    workers.stop().await;

    let (status, board) = get(
        &db,
        &format!("/api/v1/jobs/{job}/leaderboard"),
        Some(&token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{board}");
    assert_eq!(board["connected"], false, "{board}");
    assert_eq!(board["groups"], serde_json::json!([["a", "b"], ["c", "d"]]));
    let warning = board["warning"].as_str().unwrap();
    assert!(
        warning.starts_with("the comparison graph is disconnected: 2 groups"),
        "{warning}"
    );
    // Each group is its own scale: centred on 1000, ranked among its members.
    let rows: Vec<(String, u64, u64, f64)> = board["systems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["system"].as_str().unwrap().to_string(),
                s["group"].as_u64().unwrap(),
                s["rank"].as_u64().unwrap(),
                s["rating"].as_f64().unwrap(),
            )
        })
        .collect();
    let names: Vec<(&str, u64)> = rows.iter().map(|r| (r.0.as_str(), r.1)).collect();
    assert_eq!(names, [("a", 1), ("b", 1), ("c", 2), ("d", 2)], "{board}");
    for group in [1, 2] {
        let ratings: Vec<f64> = rows.iter().filter(|r| r.1 == group).map(|r| r.3).collect();
        assert!(
            ((ratings[0] + ratings[1]) / 2.0 - 1000.0).abs() < 1e-6,
            "{board}"
        );
        assert!(rows.iter().any(|r| r.1 == group && r.2 == 1), "{board}");
        assert!(ratings[0] > ratings[1], "winner first: {board}");
    }
    // Stored once finished: the same answer again, and through the dataset.
    let (_, again) = get(
        &db,
        &format!("/api/v1/jobs/{job}/leaderboard"),
        Some(&token),
    )
    .await;
    assert_eq!(
        (&again["systems"], &again["groups"], &again["warning"]),
        (&board["systems"], &board["groups"], &board["warning"])
    );
    let (_, by_judge) = get(
        &db,
        "/api/v1/datasets/qa/leaderboard?judge=accuracy",
        Some(&token),
    )
    .await;
    assert_eq!(by_judge["connected"], false, "{by_judge}");

    // The page says so above the table and numbers the groups.
    let cookie = sign_in(&db, &token).await;
    let (status, page) = html(&db, &format!("/datasets/qa/winrates?job={job}"), &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"id="leaderboard-warning""#), "{page}");
    assert!(page.contains("Not one scale: the comparison graph is disconnected"));
    assert!(page.contains(r#"data-system="c" data-group="2""#), "{page}");
    db.finish().await;
}

#[tokio::test]
async fn items_stored_before_normalised_keys_are_re_keyed_by_the_migration() {
    const VERSION: i64 = 20261122000009;
    let db = TestDb::migrated_before(VERSION).await;
    let pool = &db.pool;
    let team: i64 = sqlx::query_scalar("INSERT INTO teams (name) VALUES ('lab') RETURNING id")
        .fetch_one(pool)
        .await
        .unwrap();
    let dataset: i64 =
        sqlx::query_scalar("INSERT INTO datasets (team_id, name) VALUES ($1, 'qa') RETURNING id")
            .bind(team)
            .fetch_one(pool)
            .await
            .unwrap();
    let mut systems = std::collections::HashMap::new();
    for name in ["gpt3", "llama", "twice"] {
        let id: i64 =
            sqlx::query_scalar("INSERT INTO systems (team_id, name) VALUES ($1, $2) RETURNING id")
                .bind(team)
                .bind(name)
                .fetch_one(pool)
                .await
                .unwrap();
        systems.insert(name, id);
    }
    // Items as the exact-prompt rule stored them: (key, prompt).
    let spellings = [
        ("Is it? \n (A) no", "gpt3"),
        ("Is it?\n(A) no", "llama"),
        ("Cafe\u{301}?", "llama"),
        ("Café?", "gpt3"),
        ("Same?", "twice"),
        ("Same? ", "twice"),
    ];
    let mut items = Vec::new();
    for (prompt, system) in spellings {
        let item: i64 = sqlx::query_scalar(
            "INSERT INTO items (dataset_id, key, prompt) VALUES ($1, $2, $2) RETURNING id",
        )
        .bind(dataset)
        .bind(prompt)
        .fetch_one(pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO generations (dataset_id, system_id, item_id, response) VALUES ($1, $2, $3, $4)",
        )
        .bind(dataset)
        .bind(systems[system])
        .bind(item)
        .bind(format!("{system} on {prompt}"))
        .execute(pool)
        .await
        .unwrap();
        items.push(item);
    }
    // An item keyed by its canonical id keeps its key.
    sqlx::query("INSERT INTO items (dataset_id, key, prompt) VALUES ($1, ' id 7 ', 'p')")
        .bind(dataset)
        .execute(pool)
        .await
        .unwrap();

    evaluator::db::MIGRATOR.run(pool).await.unwrap();

    let stored: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT id, key, prompt FROM items ORDER BY id")
            .fetch_all(pool)
            .await
            .unwrap();
    let keys: Vec<(&str, &str)> = stored
        .iter()
        .map(|(_, k, p)| (k.as_str(), p.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            // Merged into the older item, which keeps its prompt.
            ("Is it? (A) no", "Is it? \n (A) no"),
            // Merged into the item already holding the key ("Café?" in NFC).
            ("Café?", "Café?"),
            // One system answered both spellings: both stay; the second keeps
            // its old key, which stays valid.
            ("Same?", "Same?"),
            ("Same? ", "Same? "),
            (" id 7 ", "p"),
        ]
    );
    let on_first: i64 = sqlx::query_scalar("SELECT count(*) FROM generations WHERE item_id = $1")
        .bind(items[0])
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(on_first, 2, "gpt3 and llama now meet on one item");

    // The SQL rule is the Rust one.
    for text in [
        "  a\u{a0}b\u{3000}c\u{2028}d\u{85}e\r\n\tf  ",
        "A\u{30a}ngstro\u{308}m \u{212b}",
        "\u{1e9b}\u{323} \u{fb01}",
        "ＡＢＣ full width (kept: NFC, not NFKC)",
        "zero\u{200b}width space is not whitespace",
        "",
    ] {
        let sql: String = sqlx::query_scalar("SELECT item_prompt_key($1)")
            .bind(text)
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(sql, prompt_key(text), "{text:?}");
    }

    // A new import in a third spelling meets the re-keyed item.
    let token = teams::create_token(pool, "lab").await.unwrap();
    let (status, summary) = push(
        &db,
        &token,
        "qa",
        "flan",
        "canonical",
        &lines(&[("Is it?  (A) no", "(a)", "(a)")]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{summary}");
    assert_eq!(
        (&summary["items_created"], &summary["items_matched"]),
        (&serde_json::json!(0), &serde_json::json!(1)),
        "{summary}"
    );
    db.finish().await;
}

#[tokio::test]
async fn an_item_id_pushed_again_with_another_prompt_is_refused() {
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "lab").await.unwrap();
    let first = "{\"id\": \"q7\", \"prompt\": \"Is the sky blue?\", \"response\": \"yes\"}";
    let (status, summary) = push(&db, &token, "qa", "a", "canonical", first).await;
    assert_eq!(status, StatusCode::CREATED, "{summary}");

    // Another system's file reuses id q7 for another question: taking either
    // prompt would silently change what one of the systems answered.
    let long = "Is the grass green in every season of the year, even in a long dry summer?";
    let other = format!(
        "{{\"id\": \"q8\", \"prompt\": \"new\", \"response\": \"r\"}}\n\
         {{\"id\": \"q7\", \"prompt\": \"{long}\", \"response\": \"no\"}}"
    );
    let (status, error) = push(&db, &token, "qa", "b", "canonical", &other).await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "line 2: item \"q7\" already exists on dataset `qa` with the prompt \"Is the sky blue?\", \
             and this file gives it the prompt \"Is the grass green in every season of the year, even in a lo…\""
        ),
        "{message}"
    );
    let stored: (i64, String) = sqlx::query_as("SELECT count(*), min(prompt) FROM items")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        stored,
        (1, "Is the sky blue?".to_string()),
        "nothing of the refused file was written"
    );

    // The same question spelt with other whitespace is the same item, not a
    // conflict.
    let respelt = "{\"id\": \"q7\", \"prompt\": \"Is the  sky\\nblue?\", \"response\": \"no\"}";
    let (status, summary) = push(&db, &token, "qa", "b", "canonical", respelt).await;
    assert_eq!(status, StatusCode::CREATED, "{summary}");
    assert_eq!(summary["items_matched"], 1, "{summary}");
    db.finish().await;
}
