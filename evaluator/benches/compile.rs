//! The service under a compile-time attack (issue 22), as a separate
//! `evaluator serve` process with its default limits: how fast a module past
//! the limits is refused, what twenty concurrent uploads of the largest module
//! the limits allow do to the server's memory and to `/api/v1/health`, and how
//! long a restarted server takes to load a module it compiled before.
//!
//! `cargo bench -p evaluator --bench compile` (`-- --quick`: five uploads
//! instead of twenty). Needs PostgreSQL at `DATABASE_URL` (default: the local
//! server); the server runs on a database of its own.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{BenchDb, percentile};
use evaluator::db::teams;
use reward_builtins::pad::{Padding, pad};
use reward_builtins::test_module;
use reward_host::CompileLimits;

/// A valid scorer padded to just inside the default limits: the most a team
/// can make the service compile in one upload.
fn largest_allowed(seed: i32) -> Vec<u8> {
    let limits = CompileLimits::default();
    let template = test_module("template").unwrap().wasm;
    // Leave room for the template's own functions and code.
    let functions = (limits.max_functions - 200) as u32;
    let body_bytes = ((limits.max_code_bytes - (256 << 10)) / u64::from(functions)) as usize;
    pad(
        template,
        &Padding {
            functions,
            body_bytes: body_bytes.min(limits.max_function_bytes as usize) - 16,
            seed,
            ..Padding::default()
        },
    )
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(url: &str, cache: &std::path::Path) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_evaluator"))
            .args(["serve", "--workers", "0", "--bind"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--compile-cache")
            .arg(cache)
            .env("DATABASE_URL", url)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while ureq::get(&format!("{base}/api/v1/health")).call().is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Server { child, base }
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Resident memory of `pid`'s children (the compile subprocesses), in KiB.
/// Each thread has its own children list: the compilers are started from the
/// blocking pool's threads.
fn children_rss_kib(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|children| {
            children
                .split_whitespace()
                .filter_map(|c| c.parse().ok())
                .collect::<Vec<u32>>()
        })
        .map(rss_kib)
        .sum()
}

/// One upload: status and seconds (the error body printed, for a refusal
/// other than 503).
fn upload(base: &str, token: &str, wasm: &[u8]) -> (u16, f64) {
    let started = Instant::now();
    let mut response = ureq::post(&format!("{base}/api/v1/modules"))
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/wasm")
        .config()
        .http_status_as_error(false)
        .build()
        .send(wasm)
        .unwrap();
    let status = response.status().as_u16();
    let secs = started.elapsed().as_secs_f64();
    if status >= 400 && status != 503 && status != 422 {
        eprintln!(
            "upload: {status} {}",
            response.body_mut().read_to_string().unwrap_or_default()
        );
    } else if status == 422 && wasm.len() < 20 << 20 {
        eprintln!(
            "upload refused: {}",
            response.body_mut().read_to_string().unwrap_or_default()
        );
    }
    (status, secs)
}

fn main() {
    common::main(|quick| async move {
        let uploads = if quick { 5 } else { 20 };
        let db = BenchDb::fresh("bench_compile").await;
        let cache = tempfile::tempdir().unwrap();
        let mut tokens = Vec::new();
        for i in 0..uploads {
            tokens.push(
                teams::create_team(&db.pool, &format!("team-{i}"))
                    .await
                    .unwrap(),
            );
        }
        let url = db.url();
        let (cache_path, tokens) = (cache.path().to_path_buf(), Arc::new(tokens));
        let report = tokio::task::spawn_blocking(move || run(&url, &cache_path, &tokens, uploads))
            .await
            .unwrap();
        println!("{report}");
        db.drop_database().await;
    });
}

fn run(url: &str, cache: &std::path::Path, tokens: &[String], uploads: usize) -> String {
    let mut out = String::new();
    let server = Server::start(url, cache);
    let pid = server.child.id();
    let idle_rss = rss_kib(pid);

    // 1. The module: refused before compiling.
    let hostile = pad(
        test_module("template").unwrap().wasm,
        &Padding {
            functions: 200_000,
            body_bytes: 112,
            ..Padding::default()
        },
    );
    let refusals: Vec<f64> = (0..5)
        .map(|_| {
            let (status, secs) = upload(&server.base, &tokens[0], &hostile);
            assert_eq!(status, 422);
            secs * 1e3
        })
        .collect();
    out += &format!(
        "server: evaluator serve (compiling in its subprocess, default limits and budgets)\n\
         refusal of a {:.1} MB module with 200,000 functions: median {:.0} ms (5 tries, upload included)\n",
        hostile.len() as f64 / 1e6,
        percentile(&refusals, 0.5)
    );

    // 2. Twenty teams upload the largest module the limits allow, at once.
    let modules: Vec<Vec<u8>> = (0..uploads)
        .map(|i| largest_allowed(i as i32 + 1))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let peak_server = Arc::new(AtomicU64::new(0));
    let peak_total = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak_server, peak_total) =
            (stop.clone(), peak_server.clone(), peak_total.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let server = rss_kib(pid);
                peak_server.fetch_max(server, Ordering::Relaxed);
                peak_total.fetch_max(server + children_rss_kib(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let health = {
        let (stop, base) = (stop.clone(), server.base.clone());
        std::thread::spawn(move || {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let ok = ureq::get(&format!("{base}/api/v1/health")).call().is_ok();
                latencies.push((ok, started.elapsed().as_secs_f64() * 1e3));
                std::thread::sleep(Duration::from_millis(10));
            }
            latencies
        })
    };
    let started = Instant::now();
    let results: Vec<(u16, f64)> = std::thread::scope(|scope| {
        let handles: Vec<_> = modules
            .iter()
            .zip(tokens)
            .map(|(wasm, token)| {
                let base = server.base.clone();
                scope.spawn(move || upload(&base, token, wasm))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let burst = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let latencies = health.join().unwrap();
    let accepted: Vec<f64> = results.iter().filter(|r| r.0 == 201).map(|r| r.1).collect();
    let busy = results.iter().filter(|r| r.0 == 503).count();
    let other: Vec<u16> = results
        .iter()
        .map(|r| r.0)
        .filter(|s| *s != 201 && *s != 503)
        .collect();
    let failed_health = latencies.iter().filter(|l| !l.0).count();
    let health_ms: Vec<f64> = latencies.iter().map(|l| l.1).collect();
    out += &format!(
        "{uploads} concurrent uploads of the largest module the limits allow ({:.1} MB, {} functions):\n  \
         {} stored (each {:.1}-{:.1} s), {busy} answered 503 with Retry-After, other statuses {other:?}; {burst:.1} s in all\n  \
         server resident memory: {} MiB idle, peak {} MiB; with its compile subprocesses, peak {} MiB\n  \
         /api/v1/health meanwhile: {} requests, {failed_health} failed, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n",
        modules[0].len() as f64 / 1e6,
        CompileLimits::default().max_functions - 200,
        accepted.len(),
        accepted.iter().cloned().fold(f64::INFINITY, f64::min),
        accepted.iter().cloned().fold(0.0, f64::max),
        idle_rss >> 10,
        peak_server.load(Ordering::Relaxed) >> 10,
        peak_total.load(Ordering::Relaxed) >> 10,
        health_ms.len(),
        percentile(&health_ms, 0.5),
        percentile(&health_ms, 0.99),
        health_ms.iter().cloned().fold(0.0, f64::max),
    );

    // The bounds the README states; a regression fails the bench.
    assert!(
        other.is_empty(),
        "statuses other than 201 and 503: {other:?}"
    );
    assert_eq!(failed_health, 0, "the health check failed during the burst");
    assert!(
        percentile(&health_ms, 0.99) < 100.0,
        "health p99 {:.1} ms",
        percentile(&health_ms, 0.99)
    );
    assert!(
        peak_server.load(Ordering::Relaxed) < 1 << 20,
        "server resident memory passed 1 GiB"
    );

    // 3. A restart: the stored module's compiled code comes from the disk cache.
    let stored = results
        .iter()
        .position(|r| r.0 == 201)
        .expect("one upload stored");
    server.stop();
    let server = Server::start(url, cache);
    let (status, secs) = upload(&server.base, &tokens[stored], &modules[stored]);
    assert_eq!(status, 200, "the same bytes again: the stored record");
    out += &format!(
        "after a restart, the same module again: {:.0} ms (deserialized from the disk cache; compiling took {:.1} s)\n",
        secs * 1e3,
        accepted.iter().cloned().fold(f64::INFINITY, f64::min)
    );
    server.stop();
    out
}
