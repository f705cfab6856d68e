//! Service benchmarks (a bench binary, not a timed test), on a fresh database on
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`):
//!
//! 1. End-to-end scoring throughput: a scoring run over 10 systems × 5,000 items,
//!    claimed, scored in the sandbox and stored by two in-process workers; score
//!    rows stored per second, best of 3. Beside it, in the same run, the same
//!    samples scored by the sandbox alone (one thread, no queue, no database): the
//!    ratio is what durability costs.
//! 2. Latency of `GET /api/v1/datasets/{d}/results` (and of a comparison's
//!    `/pairs`) over loopback HTTP, 8 concurrent clients: p50 and p99.
//!
//! `cargo bench -p evaluator --bench service` (`-- --quick` for a smaller run).

use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{BenchDb, Workers, load, percentile, wait_for_job};
use evaluator::db::{datasets, modules, teams};
use evaluator::import::Row;
use evaluator::jobs;
use reward_host::{Host, HostConfig, Limits, Sample};

fn main() {
    common::main(run);
}

/// Sentences in the style of MaRio's rationales, varied by item and system.
fn response(item: usize, system: usize) -> String {
    let length = 12 + (item * 7 + system * 3) % 20;
    common::response(item, system, 16, length, (item + system).is_multiple_of(3))
}

async fn run(quick: bool) {
    let (systems, items) = if quick { (4, 1_000) } else { (10, 5_000) };
    let database = BenchDb::fresh("evaluator_bench").await;
    let pool = database.pool.clone();
    let host = Arc::new(Host::new(HostConfig::default()).unwrap());
    let token = teams::create_team(&pool, "bench").await.unwrap();
    let team = teams::authenticate(&pool, &token).await.unwrap().unwrap();

    let mut all_samples = Vec::new();
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
        all_samples.extend(rows.iter().map(|r| Sample {
            prompt: r.prompt.clone(),
            response: r.response.clone(),
            reference: r.reference.clone(),
            fields: Vec::new(),
        }));
        datasets::import(&pool, team.id, "bench", &format!("system-{system}"), &rows)
            .await
            .unwrap();
    }
    let generations = systems * items;
    println!(
        "dataset: {systems} systems x {items} items = {generations} generations ({} cores)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    let mut module_ids = Vec::new();
    for name in ["accuracy", "length"] {
        let wasm = reward_builtins::builtin(name).unwrap().wasm;
        let module = host.load(wasm).unwrap();
        let (record, _) = modules::store(&pool, team.id, wasm, &module).await.unwrap();
        module_ids.push((name, record.id, module));
    }

    // Two worker loops in this process, as `evaluator worker --workers 2` runs them.
    let workers = Workers::start(&pool, &host);

    println!("\nend-to-end scoring (claim + sandbox + store), 2 workers, best of 3:");
    for (name, id, module) in &module_ids {
        let metrics = module.info().metrics.len();
        let mut best = f64::MAX;
        for _ in 0..3 {
            for table in ["scores", "score_summaries"] {
                sqlx::query(&format!("DELETE FROM {table} WHERE module_id = $1"))
                    .bind(id)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            let start = Instant::now();
            let job = jobs::create_score_job(
                &pool,
                team.id,
                &jobs::ScoreRequest {
                    dataset: "bench".into(),
                    modules: vec![id.to_string()],
                    systems: None,
                },
            )
            .await
            .unwrap();
            wait_for_job(&pool, team.id, job.id, Duration::from_millis(5)).await;
            best = best.min(start.elapsed().as_secs_f64());
        }
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM scores WHERE module_id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(stored as usize, generations * metrics);

        // The same samples through the sandbox alone, one thread.
        let limits = Limits::default();
        let mut sandbox_best = f64::MAX;
        for _ in 0..3 {
            let start = Instant::now();
            for batch in all_samples.chunks(256) {
                std::hint::black_box(module.score_with(batch, &limits).unwrap());
            }
            sandbox_best = sandbox_best.min(start.elapsed().as_secs_f64());
        }
        let rows_per_s = stored as f64 / best;
        println!(
            "  {name:<9} {metrics} metric(s): {:>9.0} score rows/s = {:>8.0} samples/s ({:.2} s); \
             sandbox alone, 1 thread: {:>8.0} samples/s; service/sandbox {:.2}",
            rows_per_s,
            generations as f64 / best,
            best,
            generations as f64 / sandbox_best,
            (generations as f64 / best) / (generations as f64 / sandbox_best),
        );
    }

    // A comparison, so /pairs has data.
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
    wait_for_job(&pool, team.id, compare.id, Duration::from_millis(20)).await;
    workers.stop().await;

    // The API on loopback, 8 client threads.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = evaluator::startup::app(evaluator::state::AppState {
        db: pool.clone(),
        sandbox: evaluator::modules::Sandbox::new(host.clone(), Default::default()),
    });
    let server_task = tokio::spawn(async move { axum::serve(listener, app).await });
    let requests = if quick { 100 } else { 400 };
    println!("\nGET latency over loopback, 8 concurrent clients, {requests} requests each:");
    for path in [
        "/api/v1/datasets/bench/results".to_string(),
        format!("/api/v1/jobs/{}/pairs", compare.id),
    ] {
        let url = format!("http://{addr}{path}");
        let header = ("Authorization", format!("Bearer {token}"));
        let latencies = tokio::task::spawn_blocking(move || load(&url, header, 8, requests, false))
            .await
            .unwrap();
        let (p50, p99) = (percentile(&latencies, 0.50), percentile(&latencies, 0.99));
        println!(
            "  {path:<34} p50 {:>7.2} ms  p99 {:>7.2} ms  ({} requests)",
            p50 * 1e3,
            p99 * 1e3,
            latencies.len()
        );
    }
    server_task.abort();
    database.drop_database().await;
}
