//! The service under a compile-time attack (issue 22): modules past the shape
//! limits are refused at upload in milliseconds, the compile queue turns a
//! burst into 503s with a retry hint (and keeps one team from filling it), and a
//! job whose module no longer fits the limits fails with that cause.

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{TestDb, post, post_json, push, start_workers, upload, wait_for_job};
use evaluator::db::teams;
use evaluator::modules::{QueueConfig, Sandbox};
use evaluator::startup::app;
use evaluator::state::AppState;
use http_body_util::BodyExt;
use reward_builtins::pad::{Padding, pad};
use reward_builtins::{builtin, test_module};
use reward_host::{CompileConfig, CompileLimits, Host, HostConfig};
use tower::ServiceExt;

/// The template scorer padded with functions: valid, and slow to compile.
fn slow_module(seed: i32) -> Vec<u8> {
    pad(
        test_module("template").unwrap().wasm,
        &Padding {
            functions: 3_000,
            body_bytes: 600,
            seed,
            ..Padding::default()
        },
    )
}

fn sandbox(limits: CompileLimits, queue: QueueConfig) -> std::sync::Arc<Sandbox> {
    let host = Host::new(HostConfig {
        compile: CompileConfig {
            limits,
            ..CompileConfig::default()
        },
        ..HostConfig::default()
    })
    .unwrap();
    Sandbox::new(std::sync::Arc::new(host), queue)
}

/// A module upload, as the client sends it.
fn upload_request(token: &str, wasm: Vec<u8>) -> Request<Body> {
    Request::post("/api/v1/modules")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/wasm")
        .body(Body::from(wasm))
        .unwrap()
}

/// Uploads through the router; status, `Retry-After` and the body.
async fn upload_raw(
    db: &TestDb,
    token: &str,
    wasm: Vec<u8>,
) -> (StatusCode, Option<String>, serde_json::Value) {
    let response = app(AppState {
        db: db.pool.clone(),
        sandbox: db.sandbox.clone(),
    })
    .oneshot(upload_request(token, wasm))
    .await
    .unwrap();
    let status = response.status();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, retry, serde_json::from_slice(&bytes).unwrap())
}

/// An upload left running in the background; its status when awaited.
fn spawn_upload(db: &TestDb, token: &str, wasm: Vec<u8>) -> tokio::task::JoinHandle<StatusCode> {
    let state = AppState {
        db: db.pool.clone(),
        sandbox: db.sandbox.clone(),
    };
    let request = upload_request(token, wasm);
    tokio::spawn(async move { app(state).oneshot(request).await.unwrap().status() })
}

/// Waits until `n` uploads hold a place in the queue.
async fn until_in_queue(sandbox: &Sandbox, n: usize) {
    let started = Instant::now();
    while sandbox.uploads_in_queue() < n {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "upload never queued"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_module_past_the_limits_is_refused_at_upload_by_name() {
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "hostile").await.unwrap();
    // The module: a real scorer with 200,000 extra functions, ~23 MB.
    let wasm = pad(
        test_module("template").unwrap().wasm,
        &Padding {
            functions: 200_000,
            body_bytes: 112,
            ..Padding::default()
        },
    );
    assert!(
        wasm.len() > 20 << 20 && wasm.len() < 32 << 20,
        "{}",
        wasm.len()
    );
    let started = Instant::now();
    let (status, body) = post(&db, "/api/v1/modules", &token, wasm).await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "module_too_large", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("functions, over the limit of 20000"),
        "{message}"
    );
    assert!(took < Duration::from_secs(1), "refused in {took:?}");
    assert_eq!(db.sandbox.host().compile_stats().compiled, 0);
    db.finish().await;
}

#[tokio::test]
async fn a_full_queue_answers_503_with_a_retry_hint() {
    let mut db = TestDb::new().await;
    db.sandbox = sandbox(
        CompileLimits::default(),
        QueueConfig {
            concurrent: 1,
            waiting: 1,
            per_team: 1,
            retry_after: Duration::from_secs(7),
        },
    );
    let a = teams::create_team(&db.pool, "team-a").await.unwrap();
    let b = teams::create_team(&db.pool, "team-b").await.unwrap();
    let c = teams::create_team(&db.pool, "team-c").await.unwrap();

    // Team A's first upload compiles; its second is over its share.
    let first = spawn_upload(&db, &a, slow_module(1));
    until_in_queue(&db.sandbox, 1).await;
    let (status, retry, body) = upload_raw(&db, &a, slow_module(2)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "busy");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("your team already has 1"),
        "{body}"
    );
    assert_eq!(retry.as_deref(), Some("7"));

    // Team B waits (the one waiting place); team C finds the queue full.
    let second = spawn_upload(&db, &b, slow_module(3));
    until_in_queue(&db.sandbox, 2).await;
    let (status, retry, body) = upload_raw(&db, &c, slow_module(4)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 waiting, its most"),
        "{body}"
    );
    assert_eq!(retry.as_deref(), Some("7"));
    // A module already compiled needs no place.
    let (status, _, body) = upload_raw(&db, &c, slow_module(1)).await;
    assert!(
        status == StatusCode::SERVICE_UNAVAILABLE || status.is_success(),
        "{status} {body}"
    );

    assert_eq!(first.await.unwrap(), StatusCode::CREATED);
    assert_eq!(second.await.unwrap(), StatusCode::CREATED);
    assert_eq!(db.sandbox.uploads_in_queue(), 0, "places are given back");
    // Once the burst is over, team C's upload goes through.
    let (status, _, body) = upload_raw(&db, &c, slow_module(4)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    db.finish().await;
}

#[tokio::test]
async fn a_job_whose_module_no_longer_fits_the_limits_fails_with_that_cause() {
    let mut db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "shrunk").await.unwrap();
    let lines: Vec<String> = ["a", "b"]
        .iter()
        .map(|p| {
            serde_json::json!({"prompt": p, "response": "r. So the answer is yes."}).to_string()
        })
        .collect();
    push(&db, &token, "toy", "sys", "canonical", &lines.join("\n")).await;
    let id = upload(&db, &token, builtin("length").unwrap().wasm).await;
    // The service restarts with tighter limits than when the module was stored.
    db.sandbox = sandbox(
        CompileLimits {
            max_functions: 10,
            ..CompileLimits::default()
        },
        QueueConfig::default(),
    );
    let (_, job) = post_json(
        &db,
        "/api/v1/jobs/score",
        &token,
        serde_json::json!({"dataset": "toy", "modules": [id.to_string()]}),
    )
    .await;
    let workers = start_workers(&db, 1);
    let failed = wait_for_job(&db, &token, job["id"].as_i64().unwrap()).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    assert_eq!(failed["error_code"], "module_too_large", "{failed}");
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("functions, over the limit of 10"), "{error}");
    workers.stop().await;
    db.finish().await;
}
