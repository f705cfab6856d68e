//! DPO end to end on tiny models the tests write: the policy learns the preference, the
//! reference is the starting model (so the first loss is exactly ln 2), LoRA and full
//! fine-tuning, resume, and the `trainer dpo` command.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use trainer::dpo::{DpoConfig, train};
use trainer::sft::TrainOptions;

/// Pairs over four prompts: "yes k" is preferred to "no k".
fn write_pairs(path: &Path, n: usize) {
    let mut f = std::fs::File::create(path).expect("pairs");
    for i in 0..n {
        let k = i % 4;
        writeln!(
            f,
            r#"{{"prompt": "q{k}", "chosen": "yes {k}{k}", "rejected": "no {k}{k}"}}"#
        )
        .expect("w");
    }
}

/// Adapters on every projection, and a β that lets a tiny model reach a clear margin.
const LORA: &str = "lora_rank = 4\nlora_alpha = 8\nbeta = 0.5\n\
                    lora_targets = [\"q_proj\", \"k_proj\", \"v_proj\", \"o_proj\", \"gate_proj\", \"up_proj\", \"down_proj\"]\n";

fn config(dir: &Path, extra: &str) -> DpoConfig {
    common::write_tiny(&dir.join("model"), &common::tiny_llama_json(), 3);
    write_pairs(&dir.join("train.jsonl"), 16);
    write_pairs(&dir.join("eval.jsonl"), 4);
    let text = format!(
        "model = {:?}\ntrain_data = {:?}\neval_data = {:?}\noutput_dir = {:?}\n\
         batch_size = 4\nmax_steps = 24\nlr = 2e-2\nsave_every = 8\neval_every = 12\nseed = 1\n\
         max_len = 32\nmax_prompt_len = 8\n{extra}",
        dir.join("model"),
        dir.join("train.jsonl"),
        dir.join("eval.jsonl"),
        dir.join("run"),
    );
    DpoConfig::from_toml(&text, Path::new("test.toml")).expect("config")
}

fn metrics(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .expect("metrics")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

fn check_learned(m: &[serde_json::Value], what: &str) {
    let train: Vec<&serde_json::Value> = m.iter().filter(|v| v["loss"].is_number()).collect();
    assert_eq!(train.len(), 24, "{what}");
    // Step 1 scores the starting policy against itself: Δ = 0 and the sigmoid loss is ln 2.
    let first = train[0]["loss"].as_f64().expect("loss");
    assert!(
        (first - std::f64::consts::LN_2).abs() < 1e-5,
        "{what}: {first}"
    );
    assert_eq!(train[0]["rewards/margins"].as_f64(), Some(0.0), "{what}");
    let last = train[23]["loss"].as_f64().expect("loss");
    assert!(last < 0.2, "{what}: loss {first} → {last}");
    let evals: Vec<&serde_json::Value> = m.iter().filter(|v| v["eval_loss"].is_number()).collect();
    assert_eq!(evals.len(), 2, "{what}: eval at 12 and 24");
    let acc = evals[1]["eval_rewards/accuracies"].as_f64().expect("acc");
    let margin = evals[1]["eval_rewards/margins"].as_f64().expect("margin");
    assert_eq!(acc, 1.0, "{what}: held-out pairs all ranked right");
    assert!(margin > 1.0, "{what}: margin {margin}");
    // DPO raises the chosen response relative to the reference and lowers the rejected.
    assert!(
        evals[1]["eval_rewards/rejected"].as_f64().expect("r") < 0.0,
        "{what}"
    );
}

#[test]
fn lora_dpo_learns_the_preference_against_the_base_as_reference() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(dir.path(), LORA);
    let s = train(&cfg, &TrainOptions::default()).expect("train");
    assert_eq!(s.steps, 24);
    check_learned(&metrics(&cfg.train.output_dir), "lora");
    let final_dir = s.final_dir.expect("final");
    assert!(final_dir.join("adapter_model.safetensors").is_file());
    let data: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(cfg.train.output_dir.join("data.json")).expect("data.json"),
    )
    .expect("json");
    assert_eq!(data["train"]["pairs"], 16);
    assert_eq!(data["eval"]["pairs"], 4);
    // The saved config reads back as the same DPO config.
    let saved = std::fs::read_to_string(cfg.train.output_dir.join("config.toml")).expect("cfg");
    let again = DpoConfig::from_toml(&saved, Path::new("config.toml")).expect("saved");
    assert_eq!(again, cfg);
}

#[test]
fn full_dpo_keeps_a_frozen_reference() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = config(dir.path(), "");
    cfg.train.lr = 5e-3;
    let s = train(&cfg, &TrainOptions::default()).expect("train");
    assert_eq!(s.steps, 24);
    check_learned(&metrics(&cfg.train.output_dir), "full");
    assert!(
        s.final_dir
            .expect("final")
            .join("model.safetensors")
            .is_file()
    );
}

#[test]
fn a_stopped_run_resumes_to_the_same_metrics() {
    let whole = tempfile::tempdir().expect("tmp");
    let cfg = config(whole.path(), LORA);
    train(&cfg, &TrainOptions::default()).expect("whole");
    let split = tempfile::tempdir().expect("tmp");
    let cfg2 = config(split.path(), LORA);
    let opts = TrainOptions {
        stop_after: Some(10),
        ..TrainOptions::default()
    };
    let s = train(&cfg2, &opts).expect("first part");
    assert_eq!((s.steps, s.final_dir), (10, None));
    let s = train(&cfg2, &TrainOptions::default()).expect("resumed");
    assert_eq!(
        (s.steps, s.resumed_from),
        (24, 8),
        "from the step-8 checkpoint"
    );
    let losses = |run: &Path| -> Vec<f64> {
        metrics(run)
            .iter()
            .filter_map(|v| v["loss"].as_f64())
            .collect()
    };
    let (a, b) = (
        losses(&cfg.train.output_dir),
        losses(&cfg2.train.output_dir),
    );
    assert_eq!(a.len(), b.len());
    for (step, (x, y)) in a.iter().zip(&b).enumerate() {
        // The reference log-probs are recomputed after the resume, in other batches.
        assert!(
            (x - y).abs() <= 1e-6 * x.abs().max(1.0),
            "step {}: {x} vs {y}",
            step + 1
        );
    }
}

#[test]
fn the_dpo_command_trains_and_names_a_bad_setting() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(dir.path(), LORA);
    std::fs::write(dir.path().join("run.toml"), cfg.to_toml()).expect("toml");
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["dpo", "--no-progress", "--config"])
        .arg(dir.path().join("run.toml"))
        .args(["--max-steps", "12", "--loss-type", "ipo", "--beta", "0.5"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("done: 12 steps") && stderr.contains("eval accuracy"),
        "{stderr}"
    );
    let saved = std::fs::read_to_string(cfg.train.output_dir.join("config.toml")).expect("cfg");
    assert!(
        saved.contains("loss_type = \"ipo\"") && saved.contains("beta = 0.5"),
        "{saved}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["dpo", "--config"])
        .arg(dir.path().join("run.toml"))
        .args(["--loss-type", "kto"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--loss-type") && stderr.contains("kto"),
        "{stderr}"
    );
    let help = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["dpo", "--help"])
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--beta") && help.contains("--lora-rank"),
        "{help}"
    );
}

/// The worked configs of `examples/preference/` parse and validate with the flags the
/// README passes (`--model`, `--output-dir`, and for GRPO the prompt files).
#[test]
fn the_example_preference_configs_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/preference");
    let dir = tempfile::tempdir().expect("tmp");
    common::write_tiny(&dir.path().join("model"), &common::tiny_llama_json(), 1);
    let prompts = dir.path().join("p.jsonl");
    std::fs::write(&prompts, "{\"prompt\": \"hi\"}\n").expect("prompts");
    let (model, prompts) = (
        dir.path().join("model").display().to_string(),
        prompts.display().to_string(),
    );
    let flags = |extra: &[(&str, &str)]| {
        let mut t = toml::Table::new();
        let base = [("model", model.as_str()), ("output_dir", "out")];
        for (k, v) in base.iter().chain(extra) {
            t.insert((*k).into(), toml::Value::String((*v).into()));
        }
        t
    };
    let sources = |name: &str, extra: &[(&str, &str)]| trainer::run::config::Sources {
        file: Some((
            root.join(name),
            std::fs::read_to_string(root.join(name)).expect(name),
        )),
        flags: flags(extra),
    };
    DpoConfig::from_sources(&sources("hh-dpo.toml", &[]))
        .expect("hh-dpo.toml")
        .validate()
        .expect("valid");
    trainer::rm::RmConfig::from_sources(&sources("hh-rm.toml", &[]))
        .expect("hh-rm.toml")
        .validate()
        .expect("valid");
    let rl: trainer::rl::RlConfig = sources(
        "hh-grpo-rm.toml",
        &[("prompts", &prompts), ("eval_prompts", &prompts)],
    )
    .resolve()
    .expect("hh-grpo-rm.toml");
    rl.validate().expect("valid");
    assert_eq!(rl.reward[0].source, "rm:/tmp/hh-rm");
}

#[test]
fn precomputed_reference_log_probs_train_as_computed_ones() {
    // LoRA (the reference is the base, adapters off) and full fine-tuning (a frozen copy,
    // dropped once precomputed): the same losses as computing each pair's when drawn.
    for (what, extra, lr) in [("lora", LORA, 2e-2), ("full", "", 5e-3)] {
        let dir = tempfile::tempdir().expect("tmp");
        let mut plain = config(dir.path(), extra);
        plain.train.lr = lr;
        let mut pre = plain.clone();
        pre.own.precompute_ref_log_probs = true;
        pre.train.output_dir = dir.path().join("run-pre");
        train(&plain, &TrainOptions::default()).expect("train");
        train(&pre, &TrainOptions::default()).expect("train precomputed");
        let (a, b) = (
            metrics(&plain.train.output_dir),
            metrics(&pre.train.output_dir),
        );
        check_learned(&b, what);
        let losses = |m: &[serde_json::Value], key: &str| -> Vec<f64> {
            m.iter().filter_map(|v| v[key].as_f64()).collect()
        };
        for key in ["loss", "eval_loss", "rewards/margins"] {
            let (x, y) = (losses(&a, key), losses(&b, key));
            assert_eq!(x.len(), y.len(), "{what}: {key}");
            for (p, q) in x.iter().zip(&y) {
                assert!((p - q).abs() < 1e-4, "{what}: {key} {p} vs {q}");
            }
        }
    }
}
