//! The real binary as separate processes on a real PostgreSQL: a worker killed
//! with SIGKILL in the middle of a job, and the client commands against
//! `evaluator serve`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestDb, push, upload};
use evaluator::db::teams;
use reward_builtins::test_module;

fn evaluator() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_evaluator"));
    command.env("RUST_LOG", "warn");
    command
}

fn spawn_worker(db: &TestDb) -> Child {
    evaluator()
        .args(["worker", "--workers", "1", "--lease-secs", "1"])
        .env("DATABASE_URL", &db.url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn job_state(db: &TestDb, id: i64) -> (String, i32, i32) {
    sqlx::query_as("SELECT state, done_chunks, total_chunks FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_job_survives_a_worker_killed_mid_chunk_with_exactly_one_score_per_generation() {
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "crash").await.unwrap();
    // Every sample asks the test module for ~1M steps of honest work, so each
    // chunk of 1,024 takes a while and a kill lands inside one.
    let generations = 3 * evaluator::jobs::SCORE_CHUNK;
    let lines: Vec<String> = (0..generations)
        .map(|i| {
            serde_json::json!({"id": i, "prompt": "slow 1", "response": format!("r{i}")})
                .to_string()
        })
        .collect();
    let (status, summary) = push(&db, &token, "slow", "sys", "canonical", &lines.join("\n")).await;
    assert!(status.is_success(), "{summary}");
    let module = upload(&db, &token, test_module("hostile").unwrap().wasm).await;
    let (_, job) = common::post_json(
        &db,
        "/api/v1/jobs/score",
        &token,
        serde_json::json!({"dataset": "slow", "modules": [module.to_string()]}),
    )
    .await;
    let id = job["id"].as_i64().unwrap();
    assert_eq!(job["total_chunks"], 3, "{job}");

    let mut doomed = spawn_worker(&db);
    // Wait until it has finished one chunk and is inside the next.
    let deadline = Instant::now() + Duration::from_secs(120);
    let victim: (i64, i32) = loop {
        assert!(Instant::now() < deadline, "the worker made no progress");
        let (_, done, _) = job_state(&db, id).await;
        let running: Option<(i64, i32)> = sqlx::query_as(
            "SELECT id, attempts FROM job_chunks WHERE job_id = $1 AND state = 'running'",
        )
        .bind(id)
        .fetch_optional(&db.pool)
        .await
        .unwrap();
        if let (1.., Some(chunk)) = (done, running) {
            break chunk;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    doomed.kill().unwrap(); // SIGKILL: no chance to clean up
    doomed.wait().unwrap();
    let (state, chunk_state): (String, String) = sqlx::query_as(
        "SELECT j.state, c.state FROM jobs j JOIN job_chunks c ON c.job_id = j.id WHERE c.id = $1",
    )
    .bind(victim.0)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        (state.as_str(), chunk_state.as_str()),
        ("running", "running"),
        "the kill landed inside a chunk"
    );

    let mut survivor = spawn_worker(&db);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (state, _, _) = job_state(&db, id).await;
        if state == "succeeded" {
            break;
        }
        assert!(
            state == "running" && Instant::now() < deadline,
            "job {id} ended {state}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    survivor.kill().unwrap();
    survivor.wait().unwrap();

    let (rows, distinct, ones): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT (generation_id, metric)), count(*) FILTER (WHERE value = 1.0) \
         FROM scores WHERE module_id = $1",
    )
    .bind(module)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        (rows, distinct, ones),
        (generations as i64, generations as i64, generations as i64),
        "exactly one score per (generation, metric), none lost"
    );
    let summarized: i64 = sqlx::query_scalar(
        "SELECT sum(n + nulls)::bigint FROM score_summaries WHERE module_id = $1",
    )
    .bind(module)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        summarized, generations as i64,
        "the running summary counted each score once"
    );
    let (attempts, chunk_state): (i32, String) =
        sqlx::query_as("SELECT attempts, state FROM job_chunks WHERE id = $1")
            .bind(victim.0)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        (attempts, chunk_state.as_str()),
        (victim.1 + 1, "done"),
        "the killed worker's chunk was reclaimed once and finished"
    );
    db.finish().await;
}

/// `evaluator serve` on a free port; returns the process and its URL.
fn serve(db: &TestDb) -> (Child, String) {
    let mut child = evaluator()
        .args(["serve", "--bind", "127.0.0.1:0", "--workers", "2"])
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("serve exited before listening")
            .unwrap();
        if let Some(url) = line.strip_prefix("evaluator: listening on ") {
            break url.to_string();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

fn client(url: &str, token: &str, args: &[&str]) -> (i32, String, String) {
    let out = evaluator()
        .args(args)
        .env("EVALUATOR_URL", url)
        .env("EVALUATOR_TOKEN", token)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn the_client_commands_drive_a_running_service() {
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "ci").await.unwrap();
    let (mut server, url) = serve(&db);
    let dir = tempfile::tempdir().unwrap();
    let systems = [
        ("strong", ["yes", "no", "yes"]),
        ("weak", ["no", "no", "no"]),
    ];
    for (system, answers) in systems {
        let lines: Vec<String> = answers
            .iter()
            .zip(["yes", "no", "yes"])
            .enumerate()
            .map(|(i, (answer, gold))| {
                serde_json::json!({"prompt": format!("Q{i}?"), "reference": gold,
                    "response": format!("Because. So the answer is {answer}.")})
                .to_string()
            })
            .collect();
        let file = dir.path().join(format!("{system}.jsonl"));
        std::fs::write(&file, lines.join("\n")).unwrap();
        let (code, stdout, stderr) = client(
            &url,
            &token,
            &[
                "push-generations",
                "--dataset",
                "demo",
                "--system",
                system,
                "--meta",
                "lambda=0.5",
                file.to_str().unwrap(),
                "--json",
            ],
        );
        assert_eq!(code, 0, "{stderr}");
        let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(summary["generations_created"], 3, "{stdout}");
    }

    let (code, stdout, stderr) = client(
        &url,
        &token,
        &[
            "run",
            "--dataset",
            "demo",
            "--module",
            "builtin:accuracy",
            "--wait",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let job: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(job["state"], "succeeded", "{stdout}");

    let (code, stdout, stderr) = client(&url, &token, &["results", "--dataset", "demo", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let results: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(results["dataset"], "demo");
    let strong = &results["systems"][0];
    assert_eq!(strong["system"], "strong");
    assert_eq!(strong["metadata"]["lambda"], 0.5);
    assert_eq!(strong["metrics"]["accuracy/accuracy"]["mean"], 1.0);
    assert_eq!(strong["metrics"]["accuracy/accuracy"]["n"], 3);
    let weak = &results["systems"][1]["metrics"]["accuracy/accuracy"];
    assert!(
        (weak["mean"].as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-12,
        "{weak}"
    );

    let (code, stdout, stderr) = client(
        &url,
        &token,
        &[
            "compare",
            "--dataset",
            "demo",
            "--judge",
            "builtin:label-judge",
            "--wait",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let compared: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let pair = &compared["pairs"][0];
    assert_eq!(
        (pair["a"].as_str(), pair["b"].as_str()),
        (Some("strong"), Some("weak"))
    );
    // strong is right where weak is wrong on two items; on the third both are right.
    assert!(pair["wins"].as_u64().unwrap() >= 2, "{pair}");
    assert_eq!(pair["losses"], 0, "{pair}");
    let total = pair["wins"].as_f64().unwrap() + pair["ties"].as_f64().unwrap();
    let rate = (pair["wins"].as_f64().unwrap() + pair["ties"].as_f64().unwrap() / 2.0) / total;
    assert_eq!(pair["win_rate"].as_f64(), Some(rate));
    let ci = pair["ci"].as_array().unwrap();
    assert!(ci[0].as_f64().unwrap() <= rate && rate <= ci[1].as_f64().unwrap());

    assert!(pair["lc_win_rate"].is_number(), "{pair}");
    let (code, stdout, stderr) = client(
        &url,
        &token,
        &[
            "leaderboard",
            "--dataset",
            "demo",
            "--judge",
            "builtin:label-judge",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let board: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let first = &board["systems"][0];
    assert_eq!(
        (first["system"].as_str(), first["rank"].as_u64()),
        (Some("strong"), Some(1)),
        "{board}"
    );
    assert!(first["rating"].as_f64().unwrap() > board["systems"][1]["rating"].as_f64().unwrap());
    assert_eq!(first["ci"].as_array().map(Vec::len), Some(2));

    let id = compared["job"]["id"].as_i64().unwrap().to_string();
    let (code, stdout, _) = client(&url, &token, &["status", &id]);
    assert_eq!(code, 0);
    assert!(stdout.contains("succeeded"), "{stdout}");

    // Errors: the server's cause on stderr, a non-zero status, nothing on stdout.
    let (code, stdout, stderr) = client(&url, &token, &["results", "--dataset", "nope"]);
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert!(
        stderr.contains("404 not_found") && stderr.contains("no dataset `nope`"),
        "{stderr}"
    );
    let (code, _, stderr) = client(&url, "mrt_wrong", &["results", "--dataset", "demo"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("401"), "{stderr}");
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"prompt\": \"q\"}\n").unwrap();
    let (code, _, stderr) = client(
        &url,
        &token,
        &[
            "push-generations",
            "--dataset",
            "demo",
            "--system",
            "x",
            bad.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains("line 1: missing field `response`"),
        "{stderr}"
    );

    // A module fault that fails a waited-for job exits 2 with the cause.
    let hostile = dir.path().join("hostile.wasm");
    std::fs::write(&hostile, test_module("hostile").unwrap().wasm).unwrap();
    let panics = dir.path().join("panics.jsonl");
    std::fs::write(&panics, "{\"prompt\": \"panic\", \"response\": \"r\"}\n").unwrap();
    let (code, _, stderr) = client(
        &url,
        &token,
        &[
            "push-generations",
            "--dataset",
            "faults",
            "--system",
            "x",
            panics.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = client(
        &url,
        &token,
        &[
            "run",
            "--dataset",
            "faults",
            "--module",
            hostile.to_str().unwrap(),
            "--wait",
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("guest_panic"), "{stderr}");
    // Named by system and item key, not by internal generation ids.
    assert!(
        stderr.contains("failed on system `x`, item \"panic\": guest panicked"),
        "{stderr}"
    );

    server.kill().unwrap();
    server.wait().unwrap();
    db.finish().await;
}
