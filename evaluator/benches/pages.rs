//! Web page latency (a bench binary, not a timed test), on a fresh database on
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`):
//! 10 systems × 5,000 items, scored by two built-in scorers (4 metrics) and
//! compared pairwise (45 pairs) by real jobs on in-process workers; then the
//! heaviest pages (win rates, Pareto, dataset results, compare page 1, and the
//! CSV export) fetched over loopback HTTP by 8 concurrent clients with a
//! session cookie: p50 and p99 per page. The goal is p99 < 100 ms. Tables are
//! analyzed before measuring (as autovacuum does shortly after an import).
//!
//! `cargo bench -p evaluator --bench pages` (`-- --quick`: 4 systems × 1,000 items).

use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{BenchDb, Workers, load, percentile, store_builtins, wait_for_job};
use evaluator::db::{datasets, sessions, teams};
use evaluator::import::Row;
use evaluator::jobs;
use reward_host::{Host, HostConfig};

fn main() {
    common::main(run);
}

/// A response whose length and final answer vary with item and system.
fn response(item: usize, system: usize) -> String {
    let length = 8 + (item * 7 + system * 5) % (10 + system * 3);
    let no = (item * 3 + system).is_multiple_of(4 + system % 3);
    common::response(item, system, 12, length, no)
}

async fn run(quick: bool) {
    let (systems, items) = if quick { (4, 1_000) } else { (10, 5_000) };
    let database = BenchDb::fresh("evaluator_pages_bench").await;
    let pool = database.pool.clone();
    let host = Arc::new(Host::new(HostConfig::default()).unwrap());
    let token = teams::create_team(&pool, "bench").await.unwrap();
    let team = teams::authenticate(&pool, &token).await.unwrap().unwrap();
    let setup = Instant::now();
    for system in 0..systems {
        let rows: Vec<Row> = (0..items)
            .map(|item: usize| Row {
                key: format!("item-{item}"),
                prompt: format!("Question {item}: does the river flow north?"),
                reference: Some(if item.is_multiple_of(2) { "yes" } else { "no" }.to_string()),
                fields: serde_json::Map::new(),
                response: response(item, system),
                extra: serde_json::Map::new(),
                origin: format!("line {}", item + 1),
            })
            .collect();
        let name = format!("system-{system}");
        datasets::import(&pool, team.id, "bench", &name, &rows)
            .await
            .unwrap();
        // Half the systems form an interpolation sweep.
        if system % 2 == 0 {
            let lambda = system as f64 / systems as f64;
            datasets::set_metadata(
                &pool,
                team.id,
                &name,
                &serde_json::json!({ "lambda": lambda }),
            )
            .await
            .unwrap();
        }
    }
    store_builtins(&pool, &host, team.id, &["accuracy", "length"]).await;
    let workers = Workers::start(&pool, &host);
    let score = jobs::create_score_job(
        &pool,
        team.id,
        &jobs::ScoreRequest {
            dataset: "bench".into(),
            modules: vec!["accuracy".into(), "length".into()],
            systems: None,
        },
    )
    .await
    .unwrap();
    wait_for_job(&pool, team.id, score.id, Duration::from_millis(50)).await;
    let compare = jobs::create_compare_job(
        &pool,
        team.id,
        &jobs::CompareRequest {
            dataset: "bench".into(),
            judge: "accuracy".into(),
            metric: None,
            systems: None,
            baseline: None,
        },
    )
    .await
    .unwrap();
    wait_for_job(&pool, team.id, compare.id, Duration::from_millis(50)).await;
    workers.stop().await;
    // The steady state: autovacuum analyzes freshly imported tables within a
    // minute or so; without statistics the planner takes 5,000 items for 16
    // and the compare view's joins become nested loops (~90 ms alone).
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    println!(
        "dataset: {systems} systems x {items} items, scored (4 metrics) and compared ({} pairs) in {:.1} s ({} cores)",
        systems * (systems - 1) / 2,
        setup.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let (session, _) = sessions::open(&pool, &token).await.unwrap().unwrap();
    let cookie = format!("{}={session}", evaluator::pages::SESSION_COOKIE);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = evaluator::startup::app(evaluator::state::AppState {
        db: pool.clone(),
        sandbox: evaluator::modules::Sandbox::new(host.clone(), Default::default()),
    });
    let server_task = tokio::spawn(async move { axum::serve(listener, app).await });
    let requests = if quick { 50 } else { 200 };
    println!("\nGET latency over loopback, 8 concurrent clients, {requests} requests each:");
    for path in [
        "/datasets/bench/winrates".to_string(),
        "/datasets/bench/pareto?x=accuracy/accuracy&y=length/words".to_string(),
        "/datasets/bench".to_string(),
        "/datasets/bench/compare?a=system-0&b=system-1".to_string(),
        "/datasets/bench/compare?a=system-0&b=system-1&filter=a&q=mountains".to_string(),
        "/datasets/bench/results.csv".to_string(),
    ] {
        let url = format!("http://{addr}{path}");
        // Signed in: a page, not the sign-in form.
        let page = ureq::get(&url)
            .header("Cookie", &cookie)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        assert!(!page.contains("/login\""), "{path}: not signed in");
        let header = ("Cookie", cookie.clone());
        let latencies = tokio::task::spawn_blocking(move || load(&url, header, 8, requests, true))
            .await
            .unwrap();
        let (p50, p99) = (percentile(&latencies, 0.50), percentile(&latencies, 0.99));
        println!(
            "  {path:<68} p50 {:>7.2} ms  p99 {:>7.2} ms",
            p50 * 1e3,
            p99 * 1e3,
        );
    }
    server_task.abort();
    database.drop_database().await;
}
