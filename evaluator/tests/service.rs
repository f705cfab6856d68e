//! The service against a real PostgreSQL: a fresh database per test on
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`), and the
//! embedded default cluster started in a temporary directory.

mod common;

use axum::http::StatusCode;
use common::{TestDb, get, post};
use evaluator::db::{self, embedded::EmbeddedPostgres, teams};

#[tokio::test]
async fn a_token_identifies_its_team_until_revoked() {
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "mario-lab").await.unwrap();
    let other = teams::create_team(&db.pool, "soups").await.unwrap();

    let (status, body) = get(&db, "/api/v1/whoami", Some(&token)).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, serde_json::json!({"team": "mario-lab"}))
    );
    let (_, body) = get(&db, "/api/v1/whoami", Some(&other)).await;
    assert_eq!(body["team"], "soups");

    let rotated = teams::create_token(&db.pool, "mario-lab").await.unwrap();
    teams::revoke_token(&db.pool, &token).await.unwrap();
    let (status, body) = get(&db, "/api/v1/whoami", Some(&token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, _) = get(&db, "/api/v1/whoami", Some(&rotated)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        teams::revoke_token(&db.pool, &token).await.is_err(),
        "revoking twice is reported"
    );
    db.finish().await;
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401_in_the_error_format() {
    let db = TestDb::new().await;
    for token in [None, Some("mrt_0000"), Some("not-even-prefixed")] {
        let (status, body) = get(&db, "/api/v1/whoami", token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert!(body["error"]["message"].is_string());
    }
    let (status, body) = get(&db, "/api/v1/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, body) = get(&db, "/api/v1/health", None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    db.finish().await;
}

#[tokio::test]
async fn team_names_are_validated_and_unique() {
    let db = TestDb::new().await;
    teams::create_team(&db.pool, "alarm").await.unwrap();
    let err = teams::create_team(&db.pool, "alarm").await.unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    assert!(teams::create_team(&db.pool, "no spaces").await.is_err());
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM api_tokens")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count, 1, "failed creations leave no token behind");
    db.finish().await;
}

#[tokio::test]
async fn admin_create_team_prints_the_token_alone() {
    let db = TestDb::new().await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_evaluator"))
        .args(["admin", "create-team", "ci-bot"])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.trim_end_matches('\n');
    assert!(
        token.starts_with("mrt_") && !token.contains(char::is_whitespace),
        "{stdout:?}"
    );
    let team = teams::authenticate(&db.pool, token).await.unwrap().unwrap();
    assert_eq!(team.name, "ci-bot");
    db.finish().await;
}

#[tokio::test]
async fn uploaded_modules_are_validated_stored_once_and_private_to_their_team() {
    let db = TestDb::new().await;
    let mario = teams::create_team(&db.pool, "mario").await.unwrap();
    let soups = teams::create_team(&db.pool, "soups").await.unwrap();
    let length = reward_builtins::builtin("length").unwrap().wasm.to_vec();

    let (status, first) = post(&db, "/api/v1/modules", &mario, length.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["name"], "length");
    assert_eq!(first["kind"], "scorer");
    let metrics: Vec<_> = first["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(metrics, ["words", "sentences", "characters"]);
    assert_eq!(first["metrics"][0]["direction"], "lower-is-better");

    // Same bytes again: the same record, not a second one.
    let (status, again) = post(&db, "/api/v1/modules", &mario, length.clone()).await;
    assert_eq!((status, &again["id"]), (StatusCode::OK, &first["id"]));

    let id = first["id"].as_i64().unwrap();
    let (status, fetched) = get(&db, &format!("/api/v1/modules/{id}"), Some(&mario)).await;
    assert_eq!((status, &fetched), (StatusCode::OK, &first));
    // Another team sees neither the module nor the list entry.
    let (status, body) = get(&db, &format!("/api/v1/modules/{id}"), Some(&soups)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (_, list) = get(&db, "/api/v1/modules", Some(&soups)).await;
    assert_eq!(list["modules"].as_array().unwrap().len(), 0);
    let (_, list) = get(&db, "/api/v1/modules", Some(&mario)).await;
    assert_eq!(list["modules"].as_array().unwrap().len(), 1);
    let (status, _) = get(&db, "/api/v1/modules/not-a-number", Some(&mario)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    db.finish().await;
}

#[tokio::test]
async fn invalid_uploads_are_refused_with_their_cause_and_nothing_is_stored() {
    let db = TestDb::new().await;
    let token = teams::create_team(&db.pool, "uploader").await.unwrap();
    let hostile_import = reward_builtins::test_module("hostile-import-func")
        .unwrap()
        .wasm
        .to_vec();
    for (body, code) in [
        (b"not wasm".to_vec(), "invalid_module"),
        (Vec::new(), "invalid_module"),
        (hostile_import, "forbidden_import"),
    ] {
        let (status, error) = post(&db, "/api/v1/modules", &token, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
        assert_eq!(error["error"]["code"], code, "{error}");
    }
    let oversized = vec![0u8; evaluator::state::MAX_MODULE_BYTES + 1];
    let (status, error) = post(&db, "/api/v1/modules", &token, oversized).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{error}");
    assert_eq!(error["error"]["code"], "payload_too_large");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM modules")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);
    db.finish().await;
}

#[test]
fn the_embedded_default_initializes_starts_and_stops_a_private_cluster() {
    // Under /tmp so that the `postgres` system user can reach it when tests run as root.
    let dir = tempfile::Builder::new()
        .prefix("evaluator-pg-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let data_dir = dir.path().join("postgres");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = {
        let cluster = EmbeddedPostgres::ensure_running(&data_dir).unwrap();
        let url = cluster.url();
        runtime.block_on(async {
            let pool = db::connect(&url).await.unwrap();
            let token = teams::create_team(&pool, "embedded").await.unwrap();
            assert!(teams::authenticate(&pool, &token).await.unwrap().is_some());
            pool.close().await;
        });
        // A second handle finds the running server instead of starting another.
        let again = EmbeddedPostgres::ensure_running(&data_dir).unwrap();
        assert_eq!(again.url(), url);
        url
    };
    // Dropping the handle that started it stopped the server.
    let refused = runtime.block_on(sqlx::PgPool::connect(&url));
    assert!(
        refused.is_err(),
        "the embedded server still answers after drop"
    );
    // The data survives for the next start.
    let cluster = EmbeddedPostgres::ensure_running(&data_dir).unwrap();
    runtime.block_on(async {
        let pool = db::connect(&cluster.url()).await.unwrap();
        let teams: i64 = sqlx::query_scalar("SELECT count(*) FROM teams")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(teams, 1);
        pool.close().await;
    });
}
