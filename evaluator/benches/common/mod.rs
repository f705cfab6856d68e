//! What the bench binaries share: a database of their own, built-in modules
//! stored for a team, two in-process workers, waiting for a job, and a
//! loopback load generator with percentiles.
#![allow(
    dead_code,
    reason = "shared by several bench binaries: each uses part of it"
)]

use std::time::{Duration, Instant};

use evaluator::db;
use evaluator::domain::{JobId, JobState, TeamId};
use evaluator::jobs;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh, migrated database on `DATABASE_URL` (default: the local server).
pub(crate) struct BenchDb {
    /// Connected to the fresh database.
    pub(crate) pool: sqlx::PgPool,
    server: String,
    name: String,
}

impl BenchDb {
    /// Creates `<prefix>_<pid>`, replacing a leftover of the same name.
    pub(crate) async fn fresh(prefix: &str) -> BenchDb {
        let server = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_string());
        let admin = sqlx::PgPool::connect(&server)
            .await
            .unwrap_or_else(|e| panic!("the benchmark needs PostgreSQL at {server}: {e}"));
        let name = format!("{prefix}_{}", std::process::id());
        for statement in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::query(&statement).execute(&admin).await.unwrap();
        }
        admin.close().await;
        let url = format!("{}/{name}", &server[..server.rfind('/').unwrap()]);
        BenchDb {
            pool: db::connect(&url).await.unwrap(),
            server,
            name,
        }
    }

    /// The fresh database's URL, for a server process of its own.
    pub(crate) fn url(&self) -> String {
        format!(
            "{}/{}",
            &self.server[..self.server.rfind('/').unwrap()],
            self.name
        )
    }

    /// Closes the pool and drops the database.
    pub(crate) async fn drop_database(self) {
        self.pool.close().await;
        let admin = sqlx::PgPool::connect(&self.server).await.unwrap();
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&admin)
            .await
            .unwrap();
    }
}

/// A bench binary's `main`: `-- --quick` for the smaller run, on a
/// multi-threaded runtime.
pub(crate) fn main<F: std::future::Future<Output = ()>>(run: impl FnOnce(bool) -> F) {
    let quick = std::env::args().any(|a| a == "--quick");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(quick));
}

/// Stores the named built-in modules for the team.
pub(crate) async fn store_builtins(
    pool: &sqlx::PgPool,
    host: &reward_host::Host,
    team: TeamId,
    names: &[&str],
) {
    for name in names {
        let wasm = reward_builtins::builtin(name).unwrap().wasm;
        let module = host.load(wasm).unwrap();
        evaluator::db::modules::store(pool, team, wasm, &module)
            .await
            .unwrap();
    }
}

/// Two worker loops in this process, as `evaluator worker --workers 2` runs
/// them, polling every 20 ms when idle.
pub(crate) struct Workers {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<evaluator::Result<()>>,
}

impl Workers {
    pub(crate) fn start(pool: &sqlx::PgPool, host: &std::sync::Arc<reward_host::Host>) -> Workers {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let config = jobs::worker::WorkerConfig {
            concurrency: 2,
            idle_poll: Duration::from_millis(20),
            ..Default::default()
        };
        let task = tokio::spawn(jobs::worker::run(
            pool.clone(),
            evaluator::modules::Sandbox::new(host.clone(), Default::default()),
            config,
            stopped,
        ));
        Workers { stop, task }
    }

    /// Stops both loops and waits for them; they must have ended cleanly.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap().unwrap();
    }
}

/// Polls a job until it finishes; it must succeed.
pub(crate) async fn wait_for_job(pool: &sqlx::PgPool, team: TeamId, id: JobId, poll: Duration) {
    loop {
        let job = jobs::get(pool, team, id).await.unwrap().unwrap();
        if job.is_finished() {
            assert_eq!(job.state, JobState::Succeeded, "{job:?}");
            return;
        }
        tokio::time::sleep(poll).await;
    }
}

/// `clients` threads each sending `requests` GETs with one header (after one
/// unmeasured warm-up request each when `warm_up`); every latency in seconds.
pub(crate) fn load(
    url: &str,
    header: (&'static str, String),
    clients: usize,
    requests: usize,
    warm_up: bool,
) -> Vec<f64> {
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let url = url.to_string();
            let (name, value) = header.clone();
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder().build().into();
                let fetch = || {
                    let start = Instant::now();
                    let mut response = agent.get(&url).header(name, &value).call().unwrap();
                    let body = response.body_mut().read_to_string().unwrap();
                    assert!(response.status().is_success(), "{body}");
                    start.elapsed().as_secs_f64()
                };
                if warm_up {
                    fetch();
                }
                (0..requests).map(|_| fetch()).collect::<Vec<f64>>()
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect()
}

/// The `q` quantile (nearest rank).
pub(crate) fn percentile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[rank]
}

/// The words the benches' responses are made of.
const WORDS: [&str; 16] = [
    "the",
    "river",
    "flows",
    "north",
    "because",
    "mountains",
    "block",
    "its",
    "path",
    "and",
    "water",
    "always",
    "finds",
    "lower",
    "ground",
    "quickly",
];

/// A MaRio-style response: `length` words from the first `vocabulary` of
/// [`WORDS`], varied by item and system, then `So the answer is <answer>.`
pub(crate) fn response(
    item: usize,
    system: usize,
    vocabulary: usize,
    length: usize,
    answer_no: bool,
) -> String {
    let words = &WORDS[..vocabulary.clamp(1, WORDS.len())];
    let body: Vec<&str> = (0..length)
        .map(|k| words[(item * 31 + system * 17 + k * 13) % words.len()])
        .collect();
    let answer = if answer_no { "no" } else { "yes" };
    format!("{}. So the answer is {answer}.", body.join(" "))
}
