//! The whole loop across the crates: a tiny policy trained with GRPO against built-in
//! reward modules; its eval generations pushed over HTTP (the trainer's `push`) to a real
//! `evaluator` service on PostgreSQL; scored there by the same module; and the service's
//! stored scores compared, value for value, with the ones the trainer logged.
//!
//! Needs the PostgreSQL at `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432`,
//! as the evaluator's tests); the test makes a database of its own and drops it.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use candle_core::Device;
use serde_json::{Value, json};

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A tiny GPT-2 with a byte-level ChatML tokenizer, written as an HF directory.
fn write_tiny_model(dir: &Path) {
    let config = r#"{"model_type": "gpt2", "vocab_size": 272, "n_positions": 64, "n_embd": 32,
        "n_layer": 2, "n_head": 4, "layer_norm_epsilon": 1e-5}"#;
    let (_, vm) = trainer::load::hf::random_model(config, 7, &Device::Cpu).expect("model");
    let tensors = trainer::load::hf::varmap_tensors(&vm).expect("tensors");
    let tok = trainer::load::tokenizer::tiny_tokenizer_json(&[
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
    ]);
    trainer::load::hf::save(dir, config, &tensors, Some(&tok)).expect("save");
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"eos_token": "<|endoftext|>"}"#,
    )
    .expect("tokenizer_config");
}

/// A tiny model, five prompts and a two-step GRPO config over two rewards (characters and
/// words of `builtin:length`) in `d`, training into `d/run`.
fn config(d: &Path) -> trainer::rl::RlConfig {
    write_tiny_model(&d.join("model"));
    let prompts: String = (0..5)
        .map(|i| {
            format!("{{\"id\": \"q{i}\", \"prompt\": \"count to {i}\", \"reference\": \"{i}\"}}\n")
        })
        .collect();
    std::fs::write(d.join("prompts.jsonl"), prompts).expect("prompts");
    let text = format!(
        "model = {:?}\nprompts = {:?}\neval_prompts = {:?}\noutput_dir = {:?}\n\
         num_generations = 2\nprompts_per_step = 2\nmax_new_tokens = 8\nmax_steps = 2\n\
         eval_every = 2\nlora_rank = 2\nlora_targets = [\"c_attn\"]\nlr = 0.01\n\
         [[reward]]\nsource = \"builtin:length\"\nmetric = \"characters\"\n\
         [[reward]]\nsource = \"builtin:length\"\nmetric = \"words\"\nweight = 0.5\n",
        d.join("model"),
        d.join("prompts.jsonl"),
        d.join("prompts.jsonl"),
        d.join("run"),
    );
    trainer::rl::RlConfig::from_toml(&text, Path::new("e2e.toml")).expect("config")
}

/// Trains two GRPO steps in `d/run` with an eval before and after; returns the config.
fn train(d: &Path) -> trainer::rl::RlConfig {
    let cfg = config(d);
    trainer::rl::train(&cfg, &trainer::rl::RlOptions::default()).expect("train");
    cfg
}

/// An evaluation service on a database of its own, with one team.
struct Service {
    rt: tokio::runtime::Runtime,
    pool: sqlx::PgPool,
    api: Api,
    admin_url: String,
    database: String,
}

impl Service {
    /// Creates database `e2e_<tag>_...`, migrates it, makes a team and serves on a free port.
    fn start(tag: &str) -> Self {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let admin_url = std::env::var("DATABASE_URL").unwrap_or_else(|_| ADMIN_URL.to_string());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("e2e_{tag}_{}_{nanos}", std::process::id());
        let (pool, token) = rt.block_on(async {
            let admin = sqlx::PgPool::connect(&admin_url).await.expect("PostgreSQL");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&admin)
                .await
                .expect("create database");
            let base = admin_url
                .rsplit_once('/')
                .map_or(admin_url.as_str(), |(b, _)| b);
            let db_url = format!("{base}/{name}");
            let pool = evaluator::db::connect(&db_url).await.expect("migrated");
            let token = evaluator::db::teams::create_team(&pool, "e2e")
                .await
                .expect("team");
            (pool, token)
        });
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let database = evaluator::startup::Database {
            pool: pool.clone(),
            embedded: None,
        };
        let workers = evaluator::jobs::worker::WorkerConfig {
            concurrency: 1,
            idle_poll: Duration::from_millis(100),
            ..Default::default()
        };
        rt.spawn(async move {
            let sandbox = evaluator::startup::SandboxConfig::default();
            evaluator::startup::serve(addr, database, workers, &sandbox).await
        });
        let api = Api {
            base: format!("http://127.0.0.1:{port}"),
            token,
        };
        let t0 = Instant::now();
        while ureq::get(&format!("{}/api/v1/health", api.base))
            .call()
            .is_err()
        {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the service did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            rt,
            pool,
            api,
            admin_url,
            database: name,
        }
    }

    /// Drops the database.
    fn stop(self) {
        let Self {
            rt,
            pool,
            admin_url,
            database,
            ..
        } = self;
        rt.block_on(async {
            pool.close().await;
            let admin = sqlx::PgPool::connect(&admin_url).await.expect("PostgreSQL");
            sqlx::query(&format!("DROP DATABASE {database} WITH (FORCE)"))
                .execute(&admin)
                .await
                .expect("drop database");
        });
        rt.shutdown_background();
    }
}

/// Blocking JSON requests to the service.
struct Api {
    base: String,
    token: String,
}

impl Api {
    fn call(&self, method: &str, path: &str, content_type: &str, body: &[u8]) -> Value {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let mut response = match method {
            "GET" => agent.get(&url).header("Authorization", &auth).call(),
            _ => agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", content_type)
                .send(body),
        }
        .expect("request");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().expect("body");
        assert!(status < 400, "{method} {path}: {status} {text}");
        serde_json::from_str(&text).expect("json")
    }

    /// Uploads `builtin:length`, scores `dataset` with it and waits for the job.
    fn score_with_length(&self, dataset: &str) {
        let wasm = reward_builtins::builtin("length").expect("length").wasm;
        self.call("POST", "/api/v1/modules", "application/wasm", wasm);
        let job = self.call(
            "POST",
            "/api/v1/jobs/score",
            "application/json",
            json!({"dataset": dataset, "modules": ["length"]})
                .to_string()
                .as_bytes(),
        );
        let id = job["id"].as_i64().expect("job id");
        let t0 = Instant::now();
        loop {
            let state = self.call("GET", &format!("/api/v1/jobs/{id}"), "", b"");
            match state["state"].as_str() {
                Some("succeeded") => break,
                Some("failed" | "cancelled") => panic!("job ended: {state}"),
                _ => assert!(
                    t0.elapsed() < Duration::from_secs(120),
                    "job stuck: {state}"
                ),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn eval_generations_pushed_to_the_service_are_scored_there_exactly_as_the_trainer_scored_them() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let cfg = train(d);

    let service = Service::start("rl");
    let (api, pool) = (&service.api, &service.pool);
    let token = api.token.clone();

    // The trainer's push of the evals before and after training.
    let target = trainer::rl::push::Target {
        url: api.base.clone(),
        token,
        dataset: "e2e".into(),
    };
    for step in [0, 2] {
        let system = trainer::rl::push::system_name("tiny", step);
        let meta = trainer::rl::push::metadata(step, "grpo", &[("characters".into(), 1.0)]);
        let file = cfg.output_dir.join(format!("eval/step-{step}.jsonl"));
        let summary = trainer::rl::push::push(&target, &system, &file, &meta).expect("push");
        assert!(summary.is_object(), "{summary}");
    }

    // Scored by the service with the same module.
    api.score_with_length("e2e");

    // The stored scores, per system and item, against the trainer's raw values.
    let stored: Vec<(String, String, i32, Option<f64>)> = service.rt.block_on(async {
        sqlx::query_as(
            "SELECT sy.name, i.key, s.metric, s.value FROM scores s \
             JOIN generations g ON g.id = s.generation_id \
             JOIN items i ON i.id = g.item_id JOIN systems sy ON sy.id = g.system_id",
        )
        .fetch_all(pool)
        .await
        .expect("scores")
    });
    // builtin:length declares words, sentences, characters, in that order.
    let metric = |m: i32| match m {
        0 => Some("words"),
        2 => Some("characters"),
        _ => None,
    };
    let mut checked = 0;
    for step in [0, 2] {
        let system = trainer::rl::push::system_name("tiny", step);
        let text = std::fs::read_to_string(
            cfg.output_dir
                .join(format!("eval/step-{step}.rewards.jsonl")),
        )
        .expect("trainer scores");
        let trainer_scores: HashMap<String, Value> = text
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("json");
                (
                    v["id"].as_str().expect("id").to_string(),
                    v["rewards_raw"].clone(),
                )
            })
            .collect();
        for (sys, key, m, value) in &stored {
            let Some(name) = metric(*m).filter(|_| *sys == system) else {
                continue;
            };
            let ours = trainer_scores[key][name].as_f64();
            assert_eq!(
                ours, *value,
                "{system} {key} {name}: trainer {ours:?}, service {value:?}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * 5 * 2, "two evals × five items × two metrics");

    service.stop();
}

#[test]
fn a_morl_sweep_and_a_soup_of_its_ends_are_two_fronts_of_the_pareto_page() {
    use trainer::soup::grid;
    use trainer::soup::sweep::{self, Weighting};
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let mut cfg = config(d);
    cfg.max_steps = 1;
    cfg.eval_every = 1;
    let service = Service::start("soup");
    let api = &service.api;
    let target = trainer::rl::push::Target {
        url: api.base.clone(),
        token: api.token.clone(),
        dataset: "qa".into(),
    };

    // MORL at λ = 0 and 1 (each reward alone), pushed by the sweep.
    let points: Vec<Weighting> = grid::parse("0,1", 2)
        .expect("weights")
        .into_iter()
        .map(Weighting::Mix)
        .collect();
    let runs = sweep::sweep(
        &cfg,
        "morl",
        &points,
        Some(&target),
        &trainer::rl::RlOptions::default(),
    )
    .expect("sweep");
    for r in &runs {
        assert!(matches!(r.pushed, Some(Ok(_))), "{:?}", r.pushed);
    }
    // The soup of those two runs at three λs, pushed by the soup.
    let mixes = trainer::soup::soup(&trainer::soup::SoupOptions {
        inputs: runs.iter().map(|r| r.cfg.output_dir.clone()).collect(),
        mixes: grid::parse("0:1:0.5", 2).expect("lambdas"),
        output_dir: d.join("soup"),
        model: None,
        eval: Some(d.join("prompts.jsonl")),
        eval_limit: 0,
        rewards: None,
        max_new_tokens: None,
        push: Some(target.clone()),
        name: "soup".into(),
        device: "cpu".into(),
    })
    .expect("soup");
    for m in &mixes {
        assert!(matches!(m.pushed, Some(Ok(_))), "{:?}", m.pushed);
    }

    // Scored there, the two sweeps are two fronts in λ order.
    api.score_with_length("qa");
    let p = api.call(
        "GET",
        "/api/v1/datasets/qa/pareto?x=length/characters&y=length/words",
        "",
        b"",
    );
    let sweep_points = |name: &str| -> Vec<String> {
        p["sweeps"]
            .as_array()
            .expect("sweeps")
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no sweep {name}: {p}"))["points"]
            .as_array()
            .expect("points")
            .iter()
            .map(|v| v.as_str().expect("system").to_string())
            .collect()
    };
    assert_eq!(
        sweep_points("soup"),
        ["soup:lambda-0", "soup:lambda-0.5", "soup:lambda-1"]
    );
    assert_eq!(sweep_points("morl"), ["morl:lambda-0", "morl:lambda-1"]);
    // A soup's λ = 1 is the λ = 1 run's own adapter: the service scores the same point.
    let at = |system: &str| -> (f64, f64) {
        let point = p["points"]
            .as_array()
            .expect("points")
            .iter()
            .find(|q| q["system"] == system)
            .unwrap_or_else(|| panic!("no point {system}: {p}"));
        (
            point["x"].as_f64().expect("x"),
            point["y"].as_f64().expect("y"),
        )
    };
    assert_eq!(at("soup:lambda-1"), at("morl:lambda-1"));
    assert_eq!(at("soup:lambda-0"), at("morl:lambda-0"));
    service.stop();
}
