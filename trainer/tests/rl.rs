//! `trainer rl` on a tiny model against built-in reward modules run in the sandbox: the run
//! directory's files, advantages recomputable from `rollouts.jsonl`, an exact resume, the
//! three algorithms, a reward that rises, and the command line.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::Value;
use trainer::rl::advantage::{GrpoAdvantageConfig, grpo_advantages};
use trainer::rl::{RlConfig, RlOptions, train};

/// A tiny GPT-2 in `d/model`, six prompts in `d/prompts.jsonl` and a GRPO config against
/// two built-in rewards: fewer words (`builtin:length`, declared lower-is-better, so
/// negated) and readability.
fn setup(d: &Path, extra: &str) -> RlConfig {
    common::write_tiny(&d.join("model"), &common::tiny_gpt2_json(), 11);
    let prompts: String = (0..6)
        .map(|i| format!("{{\"id\": \"p{i}\", \"prompt\": \"say {i}\", \"reference\": \"{i}\"}}\n"))
        .collect();
    std::fs::write(d.join("prompts.jsonl"), prompts).expect("prompts");
    let base = format!(
        "model = {:?}\nprompts = {:?}\neval_prompts = {:?}\noutput_dir = {:?}\n\
         num_generations = 4\nprompts_per_step = 2\nmax_new_tokens = 10\nmicro_batch = 4\n\
         lr = 0.02\nlora_rank = 4\nlora_targets = [\"c_attn\", \"c_proj\"]\nmax_steps = 6\n\
         eval_every = 3\nsave_every = 2\nseed = 3\n",
        d.join("model"),
        d.join("prompts.jsonl"),
        d.join("prompts.jsonl"),
        d.join("run"),
    );
    // `extra` overrides the base keys.
    let mut table: toml::Table = base.parse().expect("base");
    table.extend(extra.parse::<toml::Table>().expect("extra"));
    let text = format!(
        "{}\n[[reward]]\nsource = \"builtin:length\"\nmetric = \"characters\"\nweight = 0.1\n\
         [[reward]]\nsource = \"builtin:length\"\nmetric = \"words\"\nweight = 0.5\n",
        toml::to_string(&table).expect("toml")
    );
    RlConfig::from_toml(&text, Path::new("rl.toml")).expect("config")
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

fn adapter(run: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(run.join("final/adapter_model.safetensors"), &Device::Cpu)
        .expect("adapter")
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .expect("values")
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

#[test]
fn a_grpo_run_writes_its_files_and_the_advantages_follow_from_the_rollouts() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = setup(dir.path(), "");
    let s = train(&cfg, &RlOptions::default()).expect("run");
    assert_eq!((s.steps, s.resumed_from), (6, 0));
    let run = &cfg.output_dir;
    let metrics = lines(&run.join("metrics.jsonl"));
    let steps: Vec<u64> = metrics
        .iter()
        .filter(|m| m.get("reward").is_some())
        .map(|m| m["step"].as_u64().expect("step"))
        .collect();
    assert_eq!(steps, [1, 2, 3, 4, 5, 6]);
    let first = &metrics
        .iter()
        .find(|m| m.get("reward").is_some())
        .expect("a step");
    for key in ["kl", "loss", "grad_norm", "completion_tokens", "time_s"] {
        assert!(first.get(key).is_some(), "{key} missing: {first}");
    }
    assert!(first["rewards"]["words"].is_number() && first["rewards"]["characters"].is_number());
    // Evals before the first step, at step 3 and at the end, in the canonical form.
    for step in [0, 3, 6] {
        let eval = lines(&run.join(format!("eval/step-{step}.jsonl")));
        assert_eq!(eval.len(), 6);
        assert_eq!(eval[0]["id"], "p0");
        assert_eq!(eval[0]["reference"], "0");
        assert!(eval[0]["response"].is_string());
        let keys: Vec<&String> = eval[0].as_object().expect("object").keys().collect();
        assert_eq!(
            keys,
            ["id", "prompt", "response", "reference"],
            "canonical keys only"
        );
        let scores = lines(&run.join(format!("eval/step-{step}.rewards.jsonl")));
        assert_eq!(scores[0]["id"], "p0");
        assert!(scores[0]["rewards"]["words"].is_number());
    }
    // rollouts.jsonl: 8 per step; the advantages are recomputed from its rewards.
    let rollouts = lines(&run.join("rollouts.jsonl"));
    assert_eq!(rollouts.len(), 6 * 8);
    for step in 1..=6u64 {
        let rows: Vec<&Value> = rollouts.iter().filter(|r| r["step"] == step).collect();
        let rewards: Vec<Vec<Option<f64>>> = rows
            .iter()
            .map(|r| {
                ["characters", "words"]
                    .iter()
                    .map(|k| r["rewards"][k].as_f64())
                    .collect()
            })
            .collect();
        let recomputed = grpo_advantages(&rewards, &[0.1, 0.5], 4, &GrpoAdvantageConfig::default())
            .expect("advantages");
        for (r, a) in rows.iter().zip(&recomputed) {
            let logged = r["advantage"].as_f64().expect("advantage");
            assert!((logged - a).abs() < 1e-12, "step {step}: {logged} vs {a}");
            let combined = 0.1 * r["rewards"]["characters"].as_f64().expect("c")
                + 0.5 * r["rewards"]["words"].as_f64().expect("w");
            assert!((r["reward"].as_f64().expect("reward") - combined).abs() < 1e-12);
            // Lower-is-better metrics enter negated; the raw value is the module's.
            assert_eq!(
                r["rewards"]["words"].as_f64(),
                r["rewards_raw"]["words"].as_f64().map(|w| -w)
            );
        }
    }
    assert!(run.join("final/adapter_model.safetensors").exists());
    assert!(run.join("checkpoints/step-00000006/state.json").exists());
}

#[test]
fn a_stopped_and_resumed_run_ends_bit_identical_to_an_uninterrupted_one() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = setup(dir.path(), "beta = 0.05\nnum_iterations = 2");
    let straight = train(&cfg, &RlOptions::default()).expect("straight");
    assert_eq!(straight.steps, 6);
    let reference = adapter(&cfg.output_dir);
    cfg.output_dir = dir.path().join("stopped");
    let stop = RlOptions {
        stop_after: Some(3),
        ..Default::default()
    };
    assert_eq!(train(&cfg, &stop).expect("first leg").steps, 3);
    let resumed = train(&cfg, &RlOptions::default()).expect("second leg");
    assert_eq!(resumed.resumed_from, 2, "the newest checkpoint is step 2");
    let after = adapter(&cfg.output_dir);
    for (k, t) in &reference {
        assert!(
            bits(t) == bits(&after[k]),
            "{k} differs after stop + resume"
        );
    }
    // One history: rollouts of step 3 were computed twice but are logged once.
    let rollouts = lines(&cfg.output_dir.join("rollouts.jsonl"));
    assert_eq!(rollouts.len(), 6 * 8);
    // A finished run re-run says so.
    let again = train(&cfg, &RlOptions::default()).expect("finished");
    assert!(again.already_finished);
}

#[test]
fn rloo_and_reinforce_baseline_train_with_a_kl_to_the_reference() {
    for algo in ["rloo", "reinforce_baseline"] {
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = setup(
            dir.path(),
            &format!("algorithm = \"{algo}\"\nbeta = 0.05\nmax_steps = 3"),
        );
        train(&cfg, &RlOptions::default()).expect(algo);
        let metrics = lines(&cfg.output_dir.join("metrics.jsonl"));
        let steps: Vec<&Value> = metrics
            .iter()
            .filter(|m| m.get("reward").is_some())
            .collect();
        assert_eq!(steps.len(), 3, "{algo}");
        // After the first update the policy has left the reference: the KL is positive.
        let kl = steps[2]["time_s"]["reference"].as_f64().expect("ref time");
        assert!(kl > 0.0, "{algo}: the reference pass ran");
        assert!(
            steps
                .iter()
                .all(|m| m["loss"].as_f64().is_some_and(f64::is_finite)),
            "{algo}"
        );
    }
}

/// One GRPO update through the loop's own pieces (sampling, the padded batch, the fused
/// per-token log-probs, the loss, AdamW) raises the log-probability of the completions with
/// a positive advantage and lowers that of the others: the signs of the whole chain agree.
#[test]
fn one_update_moves_the_policy_towards_positive_advantages() {
    use trainer::generate::GenerationConfig;
    use trainer::lora::{self, LoraConfig};
    use trainer::optim::{AdamW, AdamWParams};
    use trainer::rl::policy_loss::{GrpoLossConfig, PolicyBatch, grpo_loss};
    use trainer::rl::rollout::{Rollout, collate, sample, token_logprobs};

    let dir = tempfile::tempdir().expect("tmp");
    common::write_tiny(&dir.path().join("model"), &common::tiny_gpt2_json(), 5);
    let loaded = trainer::load::load(&dir.path().join("model"), false, &Device::Cpu).expect("load");
    let (mut model, tok) = (loaded.model, loaded.tokenizer.expect("tokenizer"));
    let vm = candle_nn::VarMap::new();
    let lc = LoraConfig {
        rank: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: vec!["c_attn".into(), "c_proj".into()],
        seed: 1,
    };
    lora::attach(&mut model, &lc, &vm).expect("lora");
    let prompts = vec![
        (0, tok.encode("say 1").expect("enc")),
        (1, tok.encode("say 2").expect("enc")),
    ];
    let cfg = GenerationConfig {
        max_new_tokens: 8,
        temperature: 1.0,
        seed: 4,
        ..GenerationConfig::default()
    };
    let rollouts = sample(&model, &tok, &prompts, 4, &cfg).expect("sample");
    let rows: Vec<&Rollout> = rollouts.iter().collect();
    let batch = collate(&rows, tok.pad_id, false, &Device::Cpu).expect("batch");
    let advantages: Vec<f32> = (0..8)
        .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    let seq_logp = |model: &trainer::models::CausalLm| -> Vec<f32> {
        let logp = token_logprobs(model, &batch, 1.0, false).expect("logp");
        (logp * &batch.mask)
            .expect("m")
            .sum(1)
            .expect("s")
            .to_vec1()
            .expect("v")
    };
    let before = seq_logp(&model);
    let vars: Vec<(String, candle_core::Var)> = vm
        .data()
        .lock()
        .expect("vars")
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut opt = AdamW::new(
        vars,
        AdamWParams {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        },
    )
    .expect("opt");
    model.set_training(true);
    let logp = token_logprobs(&model, &batch, 1.0, true).expect("logp");
    let adv = Tensor::from_vec(advantages.clone(), 8, &Device::Cpu).expect("adv");
    let loss = grpo_loss(
        &PolicyBatch {
            logp: &logp,
            old_logp: None,
            ref_logp: None,
            mask: &batch.mask,
            advantages: &adv,
            generation_batch_tokens: None,
        },
        &GrpoLossConfig::default(),
    )
    .expect("loss");
    let grads = loss.loss.backward().expect("backward");
    let grads: Vec<Option<Tensor>> = opt
        .vars()
        .map(|(_, v)| grads.get(v.as_tensor()).cloned())
        .collect();
    opt.step(&grads).expect("step");
    let after = seq_logp(&model);
    let moved: Vec<f32> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    let side = |positive: bool| -> f32 {
        let d: Vec<f32> = moved
            .iter()
            .zip(&advantages)
            .filter(|(_, a)| (**a > 0.0) == positive)
            .map(|(d, _)| *d)
            .collect();
        d.iter().sum::<f32>() / d.len() as f32
    };
    assert!(
        side(true) > 0.0 && side(false) < 0.0,
        "positive-advantage completions must gain log-probability: {moved:?}"
    );
}

#[test]
fn the_command_line_runs_rl_from_a_toml_file_and_names_bad_reward_tables() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let cfg = setup(d, "");
    std::fs::write(d.join("rl.toml"), cfg.to_toml()).expect("toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["rl", "--config"])
        .arg(d.join("rl.toml"))
        .args(["--max-steps", "2"])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("starting a run in")
            && err.contains("step 2/2")
            && err.contains("done: 2 steps"),
        "{err}"
    );
    let bad = cfg
        .to_toml()
        .replace("metric = \"words\"", "metric = \"wrds\"");
    std::fs::write(d.join("bad.toml"), bad).expect("toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(["rl", "--config"])
        .arg(d.join("bad.toml"))
        .args(["--output-dir"])
        .arg(d.join("bad-run"))
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("reward[1].metric")
            && err.contains("no metric `wrds`")
            && err.lines().count() == 1,
        "{err}"
    );
    assert!(!d.join("bad-run").exists(), "a failed start writes nothing");
}

#[test]
fn a_run_killed_with_sigkill_resumes_to_the_adapter_of_an_uninterrupted_run() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let cfg = setup(d, "max_steps = 24\neval_every = 100");
    std::fs::write(d.join("rl.toml"), cfg.to_toml()).expect("toml");
    let rl = |out: &str| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_trainer"));
        c.args(["rl", "--no-progress", "--config"])
            .arg(d.join("rl.toml"))
            .arg("--output-dir")
            .arg(d.join(out));
        c
    };
    let out = rl("straight").output().expect("straight");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut child = rl("killed")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let marker = d.join("killed/checkpoints/step-00000004/state.json");
    let t0 = std::time::Instant::now();
    while !marker.exists() && t0.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().expect("kill");
    child.wait().expect("wait");
    assert!(marker.exists(), "no checkpoint appeared");
    assert!(!d.join("killed/final").exists(), "killed before the end");
    let out = rl("killed").output().expect("resumed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.contains("resuming"), "{err}");
    let (a, b) = (adapter(&d.join("straight")), adapter(&d.join("killed")));
    for (k, t) in &a {
        assert!(bits(t) == bits(&b[k]), "{k} differs after kill + resume");
    }
    let steps: Vec<u64> = lines(&d.join("killed/metrics.jsonl"))
        .iter()
        .filter(|m| m.get("reward").is_some())
        .map(|m| m["step"].as_u64().expect("step"))
        .collect();
    assert_eq!(steps, (1..=24).collect::<Vec<_>>(), "one line per step");
}

/// A reward that sleeps 15 ms per host call and records each call's batch size, as a slow
/// module (a learned reward model, a remote judge) would behave.
struct Slow(std::sync::Arc<std::sync::Mutex<Vec<usize>>>);

impl trainer::reward::RewardSource for Slow {
    fn metrics(&self) -> Vec<(String, bool)> {
        vec![("chars".into(), false)]
    }
    fn score(&self, batch: &[trainer::reward::Sample]) -> Result<Vec<Vec<Option<f64>>>, String> {
        std::thread::sleep(std::time::Duration::from_millis(15));
        self.0.lock().expect("calls").push(batch.len());
        Ok(batch
            .iter()
            .map(|s| vec![Some(s.response.chars().count() as f64)])
            .collect())
    }
}

#[test]
fn completions_are_scored_while_the_batch_still_generates_with_the_same_values() {
    let d = tempfile::tempdir().expect("tmp");
    common::write_tiny(d.path(), &common::tiny_gpt2_json(), 11);
    let loaded = trainer::load::load(d.path(), false, &Device::Cpu).expect("load");
    let tok = loaded.tokenizer.expect("tokenizer");
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let spec: trainer::reward::RewardSpec = toml::from_str("source = \"slow\"").expect("spec");
    let source: Box<dyn trainer::reward::RewardSource> = Box::new(Slow(calls.clone()));
    let rewards = trainer::reward::Rewards::with_sources(&[spec], vec![("slow".into(), source)])
        .expect("rewards");
    // A sixth of the vocabulary ends a row, so rows stop at scattered steps.
    let vocab = loaded.model.lm_head_weight().dim(0).expect("vocab") as u32;
    let cfg = trainer::generate::GenerationConfig {
        max_new_tokens: 40,
        temperature: 1.0,
        stop_ids: (0..vocab / 6).collect(),
        seed: 5,
        ..Default::default()
    };
    let prompts = vec![(0, vec![72, 101, 108]), (1, vec![5, 6, 7, 8])];
    let sample_of = |p: usize, text: &str| trainer::reward::Sample::new(format!("p{p}"), text);
    let sampled = trainer::rl::score::sample_and_score(
        &loaded.model,
        &tok,
        &prompts,
        4,
        &cfg,
        &rewards,
        &sample_of,
    )
    .expect("sample");
    let during = calls.lock().expect("calls").clone();
    let lengths: std::collections::BTreeSet<usize> =
        sampled.rollouts.iter().map(|r| r.tokens.len()).collect();
    assert!(
        lengths.len() > 2,
        "rows should end at scattered steps: {lengths:?}"
    );
    // The same values as one call over the whole batch.
    let all: Vec<_> = sampled
        .rollouts
        .iter()
        .map(|r| sample_of(r.prompt, &r.text))
        .collect();
    let once = rewards.score(&all).expect("one call");
    assert_eq!(sampled.scored.expect("scored"), once);
    // Scoring began before the last row was done: the first call had fewer than the
    // batch's 8 completions (a call after generation would have found all 8 waiting).
    assert!(during.len() > 2 && during[0] < 8, "calls: {during:?}");
    assert_eq!(
        during.iter().sum::<usize>(),
        8,
        "each completion scored once"
    );
    assert_eq!(sampled.reward_calls, during.len());
    assert!(sampled.reward_busy_s >= 0.015 * during.len() as f64);
}
