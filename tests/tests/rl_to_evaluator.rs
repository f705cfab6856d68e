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

/// Trains two GRPO steps in `d/run` with an eval before and after; returns the config.
fn train(d: &Path) -> trainer::rl::RlConfig {
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
    let cfg = trainer::rl::RlConfig::from_toml(&text, Path::new("e2e.toml")).expect("config");
    trainer::rl::train(&cfg, &trainer::rl::RlOptions::default()).expect("train");
    cfg
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
}

#[test]
fn eval_generations_pushed_to_the_service_are_scored_there_exactly_as_the_trainer_scored_them() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let cfg = train(d);

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let admin_url = std::env::var("DATABASE_URL").unwrap_or_else(|_| ADMIN_URL.to_string());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!("e2e_rl_{}_{nanos}", std::process::id());
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
        token: token.clone(),
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
    let wasm = reward_builtins::builtin("length").expect("length").wasm;
    api.call("POST", "/api/v1/modules", "application/wasm", wasm);
    let job = api.call(
        "POST",
        "/api/v1/jobs/score",
        "application/json",
        json!({"dataset": "e2e", "modules": ["length"]})
            .to_string()
            .as_bytes(),
    );
    let id = job["id"].as_i64().expect("job id");
    let t0 = Instant::now();
    loop {
        let state = api.call("GET", &format!("/api/v1/jobs/{id}"), "", b"");
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

    // The stored scores, per system and item, against the trainer's raw values.
    let stored: Vec<(String, String, i32, Option<f64>)> = rt.block_on(async {
        sqlx::query_as(
            "SELECT sy.name, i.key, s.metric, s.value FROM scores s \
             JOIN generations g ON g.id = s.generation_id \
             JOIN items i ON i.id = g.item_id JOIN systems sy ON sy.id = g.system_id",
        )
        .fetch_all(&pool)
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

    rt.block_on(async {
        pool.close().await;
        let admin = sqlx::PgPool::connect(&admin_url).await.expect("PostgreSQL");
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&admin)
            .await
            .expect("drop database");
    });
    rt.shutdown_background();
}
