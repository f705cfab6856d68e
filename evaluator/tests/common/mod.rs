//! What the service tests share: a database of their own on a real PostgreSQL,
//! and requests through the router with `oneshot`.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "a test helper module: each test binary uses part of it"
)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use evaluator::db;
use evaluator::startup::app;
use evaluator::state::AppState;
use http_body_util::BodyExt;
use tower::ServiceExt;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database of its own for one test, migrated; dropped by `finish`.
pub struct TestDb {
    pub pool: sqlx::PgPool,
    pub host: std::sync::Arc<reward_host::Host>,
    /// The host behind a compile queue, as the service uses it.
    pub sandbox: std::sync::Arc<evaluator::modules::Sandbox>,
    pub url: String,
    name: String,
    server_url: String,
}

impl TestDb {
    pub async fn new() -> Self {
        Self::create(None).await
    }

    /// A database with only the migrations before `version` applied, to test
    /// what a later migration does to data stored before it; the pool does not
    /// migrate (run `evaluator::db::MIGRATOR` to finish).
    pub async fn migrated_before(version: i64) -> Self {
        Self::create(Some(version)).await
    }

    async fn create(before: Option<i64>) -> Self {
        let server_url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_string());
        let admin = sqlx::PgPool::connect(&server_url).await.unwrap_or_else(|e| {
            panic!(
                "these tests need a PostgreSQL server at {server_url} (set DATABASE_URL to another): {e}"
            )
        });
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).unwrap();
        let name = format!("evaluator_test_{}", hex::encode(suffix));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let url = match server_url.rfind('/') {
            Some(slash) => format!("{}/{name}", &server_url[..slash]),
            None => panic!("DATABASE_URL has no database path: {server_url}"),
        };
        let pool = match before {
            None => db::connect(&url).await.unwrap(),
            Some(version) => {
                // The earlier files, through sqlx's public migrator on a copy.
                let dir = tempfile::tempdir().unwrap();
                for migration in db::MIGRATOR.iter().filter(|m| m.version < version) {
                    let name = format!(
                        "{}_{}.sql",
                        migration.version,
                        migration.description.replace(' ', "_")
                    );
                    std::fs::write(dir.path().join(name), migration.sql.as_bytes()).unwrap();
                }
                let pool = sqlx::PgPool::connect(&url).await.unwrap();
                sqlx::migrate::Migrator::new(dir.path())
                    .await
                    .unwrap()
                    .run(&pool)
                    .await
                    .unwrap();
                pool
            }
        };
        let host = std::sync::Arc::new(
            reward_host::Host::new(reward_host::HostConfig::default()).unwrap(),
        );
        TestDb {
            pool,
            sandbox: evaluator::modules::Sandbox::new(host.clone(), Default::default()),
            host,
            url,
            name,
            server_url,
        }
    }

    pub async fn finish(self) {
        self.pool.close().await;
        let admin = sqlx::PgPool::connect(&self.server_url).await.unwrap();
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&admin)
            .await
            .unwrap();
    }
}

pub async fn get(db: &TestDb, path: &str, token: Option<&str>) -> (StatusCode, serde_json::Value) {
    let mut request = Request::get(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    send(db, request.body(Body::empty()).unwrap()).await
}

pub async fn post(
    db: &TestDb,
    path: &str,
    token: &str,
    body: Vec<u8>,
) -> (StatusCode, serde_json::Value) {
    post_as(db, path, token, "application/wasm", body).await
}

pub async fn post_json(
    db: &TestDb,
    path: &str,
    token: &str,
    body: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    post_as(
        db,
        path,
        token,
        "application/json",
        body.to_string().into_bytes(),
    )
    .await
}

pub async fn post_as(
    db: &TestDb,
    path: &str,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, serde_json::Value) {
    let request = Request::post(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap();
    send(db, request).await
}

/// Sends a request through the router; the response's body, decoded, after
/// checking it against the OpenAPI document (see [`check_documented`]), so
/// every API response of every test that sends through here is validated.
pub async fn send(db: &TestDb, request: Request<Body>) -> (StatusCode, serde_json::Value) {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let state = AppState {
        db: db.pool.clone(),
        sandbox: db.sandbox.clone(),
    };
    let response = app(state).oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    check_documented(&method, &path, status, &body);
    (status, body)
}

/// The generated OpenAPI document, as JSON.
static DOCUMENT: std::sync::LazyLock<serde_json::Value> = std::sync::LazyLock::new(|| {
    serde_json::to_value(evaluator::api::openapi()).expect("the document serializes")
});

/// Validators by (path template, method, documented status), built once.
static VALIDATORS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<jsonschema::Validator>>>,
> = std::sync::LazyLock::new(Default::default);

/// The documented path template `path` falls under: a `{param}` segment
/// matches any segment, and the template with the most literal segments wins
/// (`/jobs/score` over `/jobs/{id}`).
pub fn path_template(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    DOCUMENT["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .filter_map(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            let matches = parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s);
            matches.then(|| {
                let literal = parts.iter().filter(|t| !t.starts_with('{')).count();
                (literal, template.clone())
            })
        })
        .max()
        .map(|(_, template)| template)
}

/// Asserts that an API response is documented: its path and method are in the
/// document, its status is among the operation's responses (or a documented
/// `default`), and its body validates against that response's JSON schema
/// (JSON Schema 2020-12, the dialect of OpenAPI 3.1, references resolved in
/// the document's components). Responses of unknown paths must be the error
/// body (the router's fallback 404).
#[track_caller]
pub fn check_documented(
    method: &axum::http::Method,
    path: &str,
    status: StatusCode,
    body: &serde_json::Value,
) {
    if !path.starts_with("/api/") {
        return;
    }
    let doc = &*DOCUMENT;
    let error_body = serde_json::json!({"$ref": "#/components/schemas/ErrorBody"});
    let (key, schema) = match path_template(path) {
        None => {
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{method} {path}: undocumented path"
            );
            (format!("fallback {status}"), error_body)
        }
        Some(template) => {
            let operation = &doc["paths"][&template][method.as_str().to_lowercase()];
            if operation.is_null() {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {template} is served but not documented"
                );
                return;
            }
            let responses = &operation["responses"];
            let response = if responses[status.as_str()].is_null() {
                &responses["default"]
            } else {
                &responses[status.as_str()]
            };
            // An undocumented error status still has to be the error body.
            let schema = if response.is_null() {
                assert!(
                    !status.is_success(),
                    "{method} {template}: status {status} is not documented"
                );
                error_body
            } else {
                response["content"]["application/json"]["schema"].clone()
            };
            assert!(
                !schema.is_null(),
                "{method} {template} {status}: documented without a JSON body"
            );
            (format!("{template} {method} {status}"), schema)
        }
    };
    let validator = VALIDATORS
        .lock()
        .unwrap()
        .entry(key.clone())
        .or_insert_with(|| {
            let root = serde_json::json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "components": doc["components"],
                "allOf": [schema],
            });
            std::sync::Arc::new(
                jsonschema::validator_for(&root)
                    .unwrap_or_else(|e| panic!("{key}: the documented schema is invalid: {e}")),
            )
        })
        .clone();
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{key}: the response does not match the OpenAPI document:\n  {}\nbody: {body}",
        errors.join("\n  ")
    );
}

/// Creates a comparison of the dataset's `pairs` (by system name) with a scorer
/// judge's first metric, the way the planner did before comparisons of systems
/// without common items were refused: only the pairs named, on the items both
/// answered. Workers run it like any other job; returns its id.
pub async fn legacy_compare_job(
    db: &TestDb,
    dataset: &str,
    judge: i64,
    pairs: &[(&str, &str)],
) -> i64 {
    let (a, b): (Vec<&str>, Vec<&str>) = pairs.iter().copied().unzip();
    let mut tx = db.pool.begin().await.unwrap();
    let job: i64 = sqlx::query_scalar(
        "INSERT INTO jobs (team_id, dataset_id, kind, judge_module_id, judge_metric, total_chunks, total_units) \
         SELECT team_id, id, 'compare', $2, 0, 0, 0 FROM datasets WHERE name = $1 RETURNING id",
    )
    .bind(dataset)
    .bind(judge)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO job_systems (job_id, system_id, items) \
         SELECT $1, s.id, (SELECT count(*) FROM generations g WHERE g.system_id = s.id) \
         FROM systems s WHERE s.name = ANY($2) OR s.name = ANY($3)",
    )
    .bind(job)
    .bind(&a)
    .bind(&b)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO job_chunks (job_id, system_a, system_b, item_ids, units) \
         SELECT $1, sa.id, sb.id, shared.items, cardinality(shared.items) \
         FROM UNNEST($2::text[], $3::text[]) AS p(a, b) \
         JOIN systems sa ON sa.name = p.a JOIN systems sb ON sb.name = p.b \
         CROSS JOIN LATERAL (SELECT ARRAY(SELECT g.item_id FROM generations g \
             JOIN generations h ON h.item_id = g.item_id AND h.system_id = sb.id \
             WHERE g.system_id = sa.id ORDER BY 1) AS items) shared",
    )
    .bind(job)
    .bind(&a)
    .bind(&b)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE jobs SET total_chunks = (SELECT count(*) FROM job_chunks WHERE job_id = $1), \
           total_units = (SELECT sum(units) FROM job_chunks WHERE job_id = $1) WHERE id = $1",
    )
    .bind(job)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(evaluator::jobs::CHANNEL)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    job
}

/// Signs in to the pages; returns the `name=value` to send back as `Cookie`.
pub async fn sign_in(db: &TestDb, token: &str) -> String {
    let request = Request::post("/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!("token={token}")))
        .unwrap();
    let response = app(AppState {
        db: db.pool.clone(),
        sandbox: db.sandbox.clone(),
    })
    .oneshot(request)
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let set = response.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_string()
}

/// A page's status and HTML.
pub async fn html(db: &TestDb, path: &str, cookie: &str) -> (StatusCode, String) {
    let request = Request::get(path)
        .header("cookie", cookie)
        .body(Body::empty())
        .unwrap();
    let response = app(AppState {
        db: db.pool.clone(),
        sandbox: db.sandbox.clone(),
    })
    .oneshot(request)
    .await
    .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// Job workers running in this process on the test's database.
pub struct Workers {
    stop: tokio::sync::watch::Sender<bool>,
    handle: tokio::task::JoinHandle<evaluator::Result<()>>,
}

/// Starts `concurrency` worker loops with a short idle poll.
pub fn start_workers(db: &TestDb, concurrency: usize) -> Workers {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let config = evaluator::jobs::worker::WorkerConfig {
        concurrency,
        idle_poll: std::time::Duration::from_millis(50),
        ..Default::default()
    };
    let handle = tokio::spawn(evaluator::jobs::worker::run(
        db.pool.clone(),
        db.sandbox.clone(),
        config,
        stopped,
    ));
    Workers { stop, handle }
}

impl Workers {
    /// Stops the loops after the chunks in hand.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.handle.await.unwrap().unwrap();
    }
}

/// Polls a job until it reaches a final state (at most two minutes).
pub async fn wait_for_job(db: &TestDb, token: &str, id: i64) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let (status, job) = get(db, &format!("/api/v1/jobs/{id}"), Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{job}");
        if matches!(
            job["state"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        ) {
            return job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job {id} did not finish: {job}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Uploads a module's bytes; returns its id.
pub async fn upload(db: &TestDb, token: &str, wasm: &[u8]) -> i64 {
    let (status, record) = post(db, "/api/v1/modules", token, wasm.to_vec()).await;
    assert!(status.is_success(), "{status}: {record}");
    record["id"].as_i64().unwrap()
}

/// Imports a generations file; returns the summary.
pub async fn push(
    db: &TestDb,
    token: &str,
    dataset: &str,
    system: &str,
    format: &str,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    post_as(
        db,
        &format!("/api/v1/datasets/{dataset}/generations?system={system}&format={format}"),
        token,
        "application/x-ndjson",
        body.as_bytes().to_vec(),
    )
    .await
}

/// Question → (response, gold label).
pub type Answers = std::collections::HashMap<String, (String, String)>;

/// A MaRio system's file read independently of the importer: question →
/// (response, gold label). LLaMA files are JSON Lines with `trunc_output`;
/// the others one JSON object whose response is "<rationale> So the answer is <label>.".
pub fn mario_answers(
    path: &std::path::Path,
) -> std::collections::HashMap<String, (String, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    if path.to_string_lossy().contains("/llama/") {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let field = |k: &str| v[k].as_str().unwrap().to_string();
                (field("question"), (field("trunc_output"), field("answer")))
            })
            .collect()
    } else {
        let v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
        v.values()
            .map(|e| {
                let field = |k: &str| e[k].as_str().unwrap().to_string();
                let response = format!(
                    "{} So the answer is {}.",
                    field("predicted_rationale").trim_end(),
                    field("predicted_label")
                );
                (field("question"), (response, field("gold_label")))
            })
            .collect()
    }
}
