//! The evaluator at AlpacaEval's size (a bench binary, not a timed test), on
//! the real files in `../shared/data/alpaca_eval` and a fresh database on
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`):
//!
//! 1. import: the 29 systems' `model_outputs` and the judge's 29 annotation
//!    files pushed over loopback HTTP, as the CLI sends them (goal: < 30 s);
//! 2. scoring: every generation (29 × 805) through built-in scorers by a real
//!    job on in-process workers, in generations per second;
//! 3. the leaderboard against `gpt4_1106_preview` computed once (the
//!    length-controlled fit over all systems), then served from its cache;
//! 4. a comparison against the baseline decided by a scorer's metric (28
//!    pairs), and one of every pair (406) for the heatmap;
//! 5. the pages at this size fetched by 8 concurrent clients with a session
//!    cookie: p50 and p99 each (goal: p99 < 100 ms).
//!
//! `cargo bench -p evaluator --bench alpaca` (`-- --quick`: 100 requests per
//! client instead of 200). Without the data folder it says SKIPPED.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{BenchDb, Workers, load, percentile, store_builtins, wait_for_job};
use evaluator::db::{sessions, teams};
use evaluator::jobs;
use reward_host::{Host, HostConfig};

const BASELINE: &str = "gpt4_1106_preview";
const JUDGE: &str = "weighted_alpaca_eval_gpt4_turbo";
const SCORERS: [&str; 3] = ["length", "diversity", "readability"];

fn main() {
    common::main(run);
}

fn data() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/alpaca_eval");
    dir.join("leaderboard.csv").is_file().then_some(dir)
}

fn post(url: &str, token: &str, body: Vec<u8>) -> serde_json::Value {
    let mut response = ureq::post(url)
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .config()
        .http_status_as_error(false)
        .build()
        .send(&body[..])
        .unwrap();
    let status = response.status();
    let text = response.body_mut().read_to_string().unwrap();
    assert!(status.is_success(), "{url}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

async fn run(quick: bool) {
    let Some(dir) = data() else {
        println!("alpaca bench: SKIPPED (../shared/data/alpaca_eval is absent)");
        return;
    };
    let database = BenchDb::fresh("evaluator_alpaca_bench").await;
    let pool = database.pool.clone();
    let host = Arc::new(Host::new(HostConfig::default()).unwrap());
    let token = teams::create_team(&pool, "bench").await.unwrap();
    let team = teams::authenticate(&pool, &token).await.unwrap().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = evaluator::startup::app(evaluator::state::AppState {
        db: pool.clone(),
        sandbox: evaluator::modules::Sandbox::new(host.clone(), Default::default()),
    });
    let server_task = tokio::spawn(async move { axum::serve(listener, app).await });

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
        .filter(|n| n != BASELINE)
        .collect();
    names.sort();
    names.insert(0, BASELINE.to_string());
    let base = format!("http://{addr}/api/v1/datasets/alpaca");
    let started = Instant::now();
    let (token_in, names_in, dir_in, base_in) =
        (token.clone(), names.clone(), dir.clone(), base.clone());
    let (outputs, judged) = tokio::task::spawn_blocking(move || {
        let mut bytes = 0;
        for name in &names_in {
            let body = std::fs::read(dir_in.join(format!("model_outputs/{name}.json"))).unwrap();
            bytes += body.len();
            post(
                &format!("{base_in}/generations?system={name}&format=alpaca_eval"),
                &token_in,
                body,
            );
        }
        let outputs = started.elapsed().as_secs_f64();
        for name in &names_in {
            let body = std::fs::read(dir_in.join(format!("annotations/{name}.json"))).unwrap();
            bytes += body.len();
            post(
                &format!("{base_in}/judgments?judge={JUDGE}&format=alpaca_eval&system={name}"),
                &token_in,
                body,
            );
        }
        (outputs, (started.elapsed().as_secs_f64(), bytes))
    })
    .await
    .unwrap();
    let (total, bytes) = judged;
    println!(
        "import over HTTP: {} systems x 805 items, outputs {outputs:.1} s + judgments {:.1} s = {total:.1} s ({:.1} MB; goal < 30 s) on {} cores",
        names.len(),
        total - outputs,
        bytes as f64 / 1e6,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    store_builtins(&pool, &host, team.id, &SCORERS).await;
    let workers = Workers::start(&pool, &host);
    let scoring = Instant::now();
    let score = jobs::create_score_job(
        &pool,
        team.id,
        &jobs::ScoreRequest {
            dataset: "alpaca".into(),
            modules: SCORERS.iter().map(|s| s.to_string()).collect(),
            systems: None,
        },
    )
    .await
    .unwrap();
    wait_for_job(&pool, team.id, score.id, Duration::from_millis(50)).await;
    let seconds = scoring.elapsed().as_secs_f64();
    let generations = names.len() * 805;
    println!(
        "scoring: {generations} generations x {} built-in scorers in {seconds:.1} s ({:.0} generations/s, 2 workers)",
        SCORERS.len(),
        generations as f64 / seconds
    );
    let compare = jobs::create_compare_job(
        &pool,
        team.id,
        &jobs::CompareRequest {
            dataset: "alpaca".into(),
            judge: "readability".into(),
            metric: None,
            systems: None,
            baseline: Some(BASELINE.into()),
        },
    )
    .await;
    let started = Instant::now();
    wait_for_job(
        &pool,
        team.id,
        compare.unwrap().id,
        Duration::from_millis(50),
    )
    .await;
    println!(
        "comparison against the baseline by readability/fk_grade: {} pairs x 805 items in {:.1} s",
        names.len() - 1,
        started.elapsed().as_secs_f64()
    );
    // Every pair, for the heatmap at this size (newest, so the Win rates tab
    // shows it).
    let started = Instant::now();
    let all = jobs::create_compare_job(
        &pool,
        team.id,
        &jobs::CompareRequest {
            dataset: "alpaca".into(),
            judge: "diversity".into(),
            metric: None,
            systems: None,
            baseline: None,
        },
    )
    .await
    .unwrap();
    wait_for_job(&pool, team.id, all.id, Duration::from_millis(50)).await;
    println!(
        "comparison of every pair by diversity: {} pairs x 805 items in {:.1} s",
        names.len() * (names.len() - 1) / 2,
        started.elapsed().as_secs_f64()
    );
    workers.stop().await;
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();

    let board_url = format!("{base}/baseline-leaderboard?judge={JUDGE}&baseline={BASELINE}");
    let (first, cached) = {
        let (url, token) = (board_url.clone(), token.clone());
        tokio::task::spawn_blocking(move || {
            let fetch = || {
                let start = Instant::now();
                ureq::get(&url)
                    .header("Authorization", &format!("Bearer {token}"))
                    .call()
                    .unwrap()
                    .body_mut()
                    .read_to_string()
                    .unwrap();
                start.elapsed().as_secs_f64()
            };
            (fetch(), fetch())
        })
        .await
        .unwrap()
    };
    println!(
        "leaderboard against {BASELINE}: computed in {first:.2} s (length-controlled fit over {} systems), then {:.1} ms from the cache",
        names.len(),
        cached * 1e3
    );

    let (session, _) = sessions::open(&pool, &token).await.unwrap().unwrap();
    let cookie = format!("{}={session}", evaluator::pages::SESSION_COOKIE);
    let requests = if quick { 100 } else { 200 };
    println!("\nGET latency over loopback, 8 concurrent clients, {requests} requests each:");
    let mut worst: f64 = 0.0;
    for path in [
        format!("/datasets/alpaca/leaderboard?judge={JUDGE}&baseline={BASELINE}"),
        format!("/datasets/alpaca/leaderboard?judge={JUDGE}&baseline={BASELINE}&sort=length"),
        "/datasets/alpaca".to_string(),
        "/datasets/alpaca/winrates".to_string(),
        "/datasets/alpaca/pareto?x=length/characters&y=readability/fk_grade".to_string(),
        format!("/datasets/alpaca/compare?a={BASELINE}&b=claude-2"),
        format!("/api/v1/datasets/alpaca/baseline-leaderboard?judge={JUDGE}&baseline={BASELINE}"),
    ] {
        let url = format!("http://{addr}{path}");
        let header = if path.starts_with("/api/") {
            ("Authorization", format!("Bearer {token}"))
        } else {
            ("Cookie", cookie.clone())
        };
        let latencies = tokio::task::spawn_blocking(move || load(&url, header, 8, requests, true))
            .await
            .unwrap();
        let (p50, p99) = (percentile(&latencies, 0.50), percentile(&latencies, 0.99));
        worst = worst.max(p99);
        println!(
            "  {path:<92} p50 {:>7.2} ms  p99 {:>7.2} ms",
            p50 * 1e3,
            p99 * 1e3
        );
    }
    println!("worst p99 {:.1} ms (goal < 100 ms)", worst * 1e3);
    server_task.abort();
    if std::env::var_os("ALPACA_BENCH_KEEP").is_some() {
        // For looking into a page afterwards: `evaluator serve` on this URL.
        let name: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&pool)
            .await
            .unwrap();
        println!("kept database {name} (ALPACA_BENCH_KEEP): token {token}");
        return;
    }
    database.drop_database().await;
}
