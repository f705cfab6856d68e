//! Reward-model training end to end on a tiny model the tests write: the score head learns
//! the preference, is checkpointed with the adapters and resumed exactly, and is saved.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use trainer::rm::{RmConfig, train};
use trainer::sft::TrainOptions;

fn write_pairs(path: &Path, n: usize) {
    let mut f = std::fs::File::create(path).expect("pairs");
    for i in 0..n {
        let k = i % 4;
        let margin = if i % 3 == 0 { r#", "margin": 0.5"# } else { "" };
        writeln!(
            f,
            r#"{{"prompt": "q{k}", "chosen": "yes {k}{k}", "rejected": "no {k}{k}"{margin}}}"#
        )
        .expect("w");
    }
}

fn config(dir: &Path) -> RmConfig {
    common::write_tiny(&dir.join("model"), &common::tiny_llama_json(), 4);
    write_pairs(&dir.join("train.jsonl"), 16);
    write_pairs(&dir.join("eval.jsonl"), 8);
    let text = format!(
        "model = {:?}\ntrain_data = {:?}\neval_data = {:?}\noutput_dir = {:?}\n\
         batch_size = 4\nmax_steps = 20\nlr = 2e-2\nsave_every = 8\neval_every = 10\nseed = 2\n\
         max_len = 32\nmax_prompt_len = 8\nlora_rank = 4\nlora_alpha = 8\n\
         center_rewards_coefficient = 0.01\n",
        dir.join("model"),
        dir.join("train.jsonl"),
        dir.join("eval.jsonl"),
        dir.join("run"),
    );
    RmConfig::from_toml(&text, Path::new("test.toml")).expect("config")
}

fn lines(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .expect("metrics")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

#[test]
fn the_reward_model_learns_the_preference_and_saves_its_head() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(dir.path());
    let s = train(&cfg, &TrainOptions::default()).expect("train");
    assert_eq!(s.steps, 20);
    let m = lines(&cfg.train.output_dir);
    let losses: Vec<f64> = m.iter().filter_map(|v| v["loss"].as_f64()).collect();
    assert_eq!(losses.len(), 20);
    assert!(
        losses[19] < 0.3 && losses[0] > 0.5,
        "loss {} → {}",
        losses[0],
        losses[19]
    );
    let evals: Vec<&serde_json::Value> = m.iter().filter(|v| v["eval_loss"].is_number()).collect();
    assert_eq!(evals.len(), 2);
    assert_eq!(
        evals[1]["eval_accuracy"].as_f64(),
        Some(1.0),
        "{:?}",
        evals[1]
    );
    assert!(evals[1]["eval_margin"].as_f64().expect("margin") > 1.0);
    let fin = s.final_dir.expect("final");
    assert!(fin.join("adapter_model.safetensors").is_file());
    let head =
        candle_core::safetensors::load(fin.join("score.safetensors"), &candle_core::Device::Cpu)
            .expect("head");
    assert_eq!(
        head["score.weight"].dims(),
        &[1, 32],
        "the tiny model's hidden size"
    );
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fin.join("reward_model.json")).expect("meta"),
    )
    .expect("json");
    assert_eq!(meta["head"], "score.weight");
}

#[test]
fn a_stopped_reward_model_run_resumes_with_its_head() {
    let whole = tempfile::tempdir().expect("tmp");
    let cfg = config(whole.path());
    train(&cfg, &TrainOptions::default()).expect("whole");
    let split = tempfile::tempdir().expect("tmp");
    let cfg2 = config(split.path());
    let stop = TrainOptions {
        stop_after: Some(9),
        ..TrainOptions::default()
    };
    train(&cfg2, &stop).expect("first part");
    let s = train(&cfg2, &TrainOptions::default()).expect("resumed");
    assert_eq!((s.steps, s.resumed_from), (20, 8));
    let losses = |run: &Path| -> Vec<f64> {
        lines(run)
            .iter()
            .filter_map(|v| v["loss"].as_f64())
            .collect()
    };
    // No reference log-probs to recompute: the resumed run is bit-identical.
    assert_eq!(
        losses(&cfg.train.output_dir),
        losses(&cfg2.train.output_dir)
    );
    let load = |run: &Path| {
        candle_core::safetensors::load(
            run.join("final/score.safetensors"),
            &candle_core::Device::Cpu,
        )
        .expect("head")["score.weight"]
            .to_vec2::<f32>()
            .expect("vec")
    };
    assert_eq!(load(&cfg.train.output_dir), load(&cfg2.train.output_dir));
}

#[test]
fn the_rm_command_trains_and_reports_the_held_out_accuracy() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(dir.path());
    std::fs::write(dir.path().join("rm.toml"), cfg.to_toml()).expect("toml");
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["rm", "--no-progress", "--config"])
        .arg(dir.path().join("rm.toml"))
        .args(["--max-steps", "10"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("done: 10 steps") && stderr.contains("eval accuracy"),
        "{stderr}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["rm", "--config"])
        .arg(dir.path().join("rm.toml"))
        .args(["--beta", "0.1"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--beta"), "{stderr}");
}
