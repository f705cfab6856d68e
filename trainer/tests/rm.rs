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
    assert_eq!(
        evals.len(),
        3,
        "eval before the first step, at 10 and at 20"
    );
    assert_eq!(evals[0]["step"], 0);
    assert_eq!(
        evals[2]["eval_accuracy"].as_f64(),
        Some(1.0),
        "{:?}",
        evals[2]
    );
    assert!(evals[2]["eval_margin"].as_f64().expect("margin") > 1.0);
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

    // The saved model scores as training did: the held-out margin again, from the files
    // (the adapter now folded into the weights).
    let rm = trainer::rm::RewardModel::load(&cfg.train.output_dir, &candle_core::Device::Cpu)
        .expect("load the reward model");
    let eval: Vec<(String, String, String)> = (0..8)
        .map(|i| {
            let k = i % 4;
            (format!("q{k}"), format!("yes {k}{k}"), format!("no {k}{k}"))
        })
        .collect();
    let chosen = rm
        .score_texts(
            &eval
                .iter()
                .map(|(p, c, _)| (p.as_str(), c.as_str()))
                .collect::<Vec<_>>(),
        )
        .expect("score");
    let rejected = rm
        .score_texts(
            &eval
                .iter()
                .map(|(p, _, r)| (p.as_str(), r.as_str()))
                .collect::<Vec<_>>(),
        )
        .expect("score");
    let margin: f64 = chosen
        .iter()
        .zip(&rejected)
        .map(|(c, r)| c - r)
        .sum::<f64>()
        / 8.0;
    let trained = evals[2]["eval_margin"].as_f64().expect("margin");
    assert!(
        (margin - trained).abs() < 1e-4 * trained.abs().max(1.0),
        "{margin} vs {trained}"
    );

    // As a reward source of `trainer rl`: `rm:RUN_DIR`, metric `reward`.
    #[derive(serde::Deserialize)]
    struct Doc {
        reward: Vec<trainer::reward::RewardSpec>,
    }
    let doc: Doc = toml::from_str(&format!(
        "[[reward]]\nsource = \"rm:{}\"\n",
        cfg.train.output_dir.display()
    ))
    .expect("spec");
    let rewards =
        trainer::reward::Rewards::load(&doc.reward, reward_host::Limits::default()).expect("load");
    assert_eq!(rewards.names(), ["reward"]);
    let batch = [
        trainer::reward::Sample::new("q1", "yes 11"),
        trainer::reward::Sample::new("q1", "no 11"),
    ];
    let s = rewards.score(&batch).expect("score");
    let (good, bad) = (s.value[0][0].expect("v"), s.value[1][0].expect("v"));
    assert!(good > bad, "{good} vs {bad}");
    assert!(
        (good - chosen[1]).abs() < 1e-9,
        "the same scores as score_texts"
    );

    // `trainer score`: one line per input, in order, with the model's hash beside them.
    let gens = dir.path().join("gens.jsonl");
    std::fs::write(
        &gens,
        "{\"id\": \"a\", \"prompt\": \"q1\", \"response\": \"yes 11\"}\n\
         {\"prompt\": \"q1\", \"response\": \"no 11\"}\n",
    )
    .expect("gens");
    let out_path = dir.path().join("scores.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["score", "--rm"])
        .arg(&cfg.train.output_dir)
        .arg("--input")
        .arg(&gens)
        .arg("--output")
        .arg(&out_path)
        .output()
        .expect("score");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&out_path)
        .expect("scores")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], "a");
    assert!(lines[1].get("id").is_none());
    assert_eq!(lines[1]["prompt"], "q1");
    assert!((lines[0]["score"].as_f64().expect("s") - good).abs() < 1e-6);
    let prov: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("scores.jsonl.provenance.json")).expect("prov"),
    )
    .expect("json");
    assert_eq!(prov["sha256"].as_str().map(str::len), Some(64));
    std::fs::write(&gens, "{\"prompt\": \"q1\"}\n").expect("bad gens");
    let out = Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["score", "--rm"])
        .arg(&cfg.train.output_dir)
        .arg("--input")
        .arg(&gens)
        .output()
        .expect("score");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains(":1: missing `response`"),
        "{err}"
    );
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

#[test]
fn the_rllr_loss_trains_a_head_read_at_the_last_token_and_refuses_margins() {
    let dir = tempfile::tempdir().expect("tmp");
    let base = config(dir.path());
    // The same pairs without margins: RLLR's loss reads plain pairs.
    let plain = dir.path().join("plain.jsonl");
    let text = std::fs::read_to_string(&base.train.train_data).expect("pairs");
    std::fs::write(&plain, text.replace(r#", "margin": 0.5"#, "")).expect("plain");
    let mut cfg = base.clone();
    cfg.train.train_data = plain.clone();
    cfg.train.eval_data = Some(plain);
    cfg.own.loss_type = trainer::rm::RmLoss::Rllr;
    cfg.own.center_rewards_coefficient = None;
    let s = train(&cfg, &TrainOptions::default()).expect("train with rllr");
    assert_eq!(s.steps, 20);
    let m = lines(&cfg.train.output_dir);
    let evals: Vec<&serde_json::Value> = m.iter().filter(|v| v["eval_loss"].is_number()).collect();
    let (first, last) = (evals[0], evals[evals.len() - 1]);
    assert!(
        last["eval_loss"].as_f64() < first["eval_loss"].as_f64(),
        "{first} → {last}"
    );
    // Accuracy is measured at the last token, where the model is scored.
    assert_eq!(last["eval_accuracy"].as_f64(), Some(1.0), "{last}");
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(s.final_dir.expect("final").join("reward_model.json"))
            .expect("meta"),
    )
    .expect("json");
    assert_eq!(meta["loss_type"], "rllr");

    let mut with_margins = base;
    with_margins.train.output_dir = dir.path().join("run-margins");
    with_margins.own.loss_type = trainer::rm::RmLoss::Rllr;
    with_margins.own.center_rewards_coefficient = None;
    let err = train(&with_margins, &TrainOptions::default())
        .expect_err("margins with rllr")
        .to_string();
    assert!(
        err.contains("key `loss_type`") && err.contains("carry a margin"),
        "{err}"
    );
    assert!(
        !with_margins.train.output_dir.join("metrics.jsonl").exists(),
        "refused before anything is written"
    );
}

#[test]
fn eval_pairs_with_subsets_log_rewardbench_sections() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = config(dir.path());
    // Two RewardBench subsets from two sections, four pairs each.
    let mut f = std::fs::File::create(dir.path().join("eval.jsonl")).expect("eval");
    for i in 0..8 {
        let k = i % 4;
        let subset = if k < 2 { "hep-go" } else { "alpacaeval-easy" };
        writeln!(
            f,
            r#"{{"prompt": "q{k}", "chosen": "yes {k}{k}", "rejected": "no {k}{k}", "subset": "{subset}"}}"#
        )
        .expect("w");
    }
    drop(f);
    cfg.train.max_steps = 4;
    cfg.train.eval_every = 4;
    train(&cfg, &TrainOptions::default()).expect("train");
    let m = lines(&cfg.train.output_dir);
    let evals: Vec<&serde_json::Value> = m.iter().filter(|v| v["eval_loss"].is_number()).collect();
    assert_eq!(evals.len(), 2);
    for e in evals {
        let get = |k: &str| e[k].as_f64().unwrap_or_else(|| panic!("{k} in {e}"));
        let (go, easy) = (
            get("eval_subset_hep_go"),
            get("eval_subset_alpacaeval_easy"),
        );
        // Each subset alone in its section; equal subset sizes, so the overall accuracy is
        // their mean, and so is the sections' mean.
        assert_eq!(get("eval_section_reasoning"), go);
        assert_eq!(get("eval_section_chat"), easy);
        assert!(
            (get("eval_accuracy") - (go + easy) / 2.0).abs() < 1e-9,
            "{e}"
        );
        assert!(
            (get("eval_sections_mean") - (go + easy) / 2.0).abs() < 1e-12,
            "{e}"
        );
        assert!(
            e.get("eval_section_safety").is_none(),
            "absent sections are left out"
        );
    }
}
