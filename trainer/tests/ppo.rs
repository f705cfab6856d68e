//! `trainer rl` with `algorithm = "ppo"` on a tiny model against built-in modules run in the
//! sandbox: the value head (TRL's names) and the separate critic, the adaptive KL carried
//! through an exact resume, token-level rewards from a span scorer combined hierarchically,
//! and the settings' errors.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::Value;
use trainer::rl::{RlConfig, RlOptions, train};

/// A tiny GPT-2, six prompts with passages, and a PPO config against `rewards` (TOML).
fn setup(d: &Path, extra: &str, rewards: &str) -> RlConfig {
    common::write_tiny(&d.join("model"), &common::tiny_gpt2_json(), 11);
    let prompts: String = (0..6)
        .map(|i| {
            format!(
                "{{\"id\": \"p{i}\", \"prompt\": \"say {i}\", \"reference\": \"{i} apples\", \
                 \"fields\": {{\"passages\": \"apples are red. {i} apples grow on trees.\"}}}}\n"
            )
        })
        .collect();
    std::fs::write(d.join("prompts.jsonl"), prompts).expect("prompts");
    let base = format!(
        "model = {:?}\nprompts = {:?}\neval_prompts = {:?}\noutput_dir = {:?}\n\
         algorithm = \"ppo\"\nnum_generations = 2\nprompts_per_step = 2\nmax_new_tokens = 10\n\
         micro_batch = 2\nppo_mini_batch = 2\nppo_epochs = 2\nbeta = 0.1\n\
         lr = 0.02\nlora_rank = 4\nlora_targets = [\"c_attn\", \"c_proj\"]\nmax_steps = 6\n\
         eval_every = 3\nsave_every = 2\nseed = 5\n",
        d.join("model"),
        d.join("prompts.jsonl"),
        d.join("prompts.jsonl"),
        d.join("run"),
    );
    let mut table: toml::Table = base.parse().expect("base");
    table.extend(extra.parse::<toml::Table>().expect("extra"));
    let text = format!("{}\n{rewards}", toml::to_string(&table).expect("toml"));
    RlConfig::from_toml(&text, Path::new("rl.toml")).expect("config")
}

const LENGTH: &str = "[[reward]]\nsource = \"builtin:length\"\nmetric = \"words\"\nweight = 0.5\n";

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

fn steps(run: &Path) -> Vec<Value> {
    lines(&run.join("metrics.jsonl"))
        .into_iter()
        .filter(|m| m.get("reward").is_some())
        .collect()
}

fn load(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).expect("safetensors")
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
fn ppo_with_a_value_head_logs_trls_metrics_and_saves_the_head_under_trls_names() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = setup(dir.path(), "kl_target = 0.5\nkl_horizon = 10", LENGTH);
    let out = train(&cfg, &RlOptions::default()).expect("ppo");
    assert_eq!(out.steps, 6);
    let s = steps(&cfg.output_dir);
    assert_eq!(s.len(), 6);
    for m in &s {
        for k in [
            "pg_loss", "vf_loss", "approxkl", "policykl", "entropy", "kl_coef",
        ] {
            assert!(m[k].as_f64().is_some_and(f64::is_finite), "{k} in {m}");
        }
        assert!(
            m["entropy"].as_f64().unwrap() > 0.0,
            "a sampling distribution has entropy"
        );
        assert_eq!(m["ppo_epochs_done"], 2);
    }
    // The adaptive controller moved β from its start, by TRL's rule, step after step.
    let beta: Vec<f64> = s.iter().map(|m| m["kl_coef"].as_f64().unwrap()).collect();
    assert_eq!(beta[0], 0.1);
    for (m, next) in s.iter().zip(&beta[1..]) {
        let mut c =
            trainer::rl::ppo::KlController::adaptive(m["kl_coef"].as_f64().unwrap(), 0.5, 10.0);
        c.update(m["kl"].as_f64().unwrap(), 4);
        assert!((c.value - next).abs() < 1e-12, "{} vs {next}", c.value);
    }
    assert!(beta.windows(2).any(|w| w[0] != w[1]), "{beta:?}");
    let head = load(&cfg.output_dir.join("final/value_head.safetensors"));
    assert_eq!(head["v_head.summary.weight"].dims(), &[1, 32]);
    assert_eq!(head["v_head.summary.bias"].dims(), &[1]);
    // The head trained: its bias started at 0.
    let b = head["v_head.summary.bias"].to_vec1::<f32>().unwrap()[0];
    assert!(b != 0.0, "the value head's bias never moved");
    // The adapter holds the policy's tensors only.
    let adapter = load(&cfg.output_dir.join("final/adapter_model.safetensors"));
    assert!(
        adapter
            .keys()
            .all(|k| !k.starts_with("v_head") && !k.starts_with("critic"))
    );
}

#[test]
fn a_stopped_and_resumed_ppo_run_with_adaptive_kl_ends_bit_identical() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = setup(dir.path(), "kl_target = 0.5\nkl_horizon = 10", LENGTH);
    train(&cfg, &RlOptions::default()).expect("straight");
    let reference = load(&cfg.output_dir.join("final/value_head.safetensors"));
    let reference_adapter = load(&cfg.output_dir.join("final/adapter_model.safetensors"));
    let beta_straight: Vec<Value> = steps(&cfg.output_dir)
        .iter()
        .map(|m| m["kl_coef"].clone())
        .collect();
    cfg.output_dir = dir.path().join("stopped");
    let stop = RlOptions {
        stop_after: Some(3),
        ..Default::default()
    };
    train(&cfg, &stop).expect("first leg");
    let resumed = train(&cfg, &RlOptions::default()).expect("second leg");
    assert_eq!(resumed.resumed_from, 2);
    let head = load(&cfg.output_dir.join("final/value_head.safetensors"));
    let adapter = load(&cfg.output_dir.join("final/adapter_model.safetensors"));
    for (k, t) in reference.iter().chain(&reference_adapter) {
        let other = head.get(k).or_else(|| adapter.get(k)).expect(k);
        assert!(bits(t) == bits(other), "{k} differs after stop + resume");
    }
    let beta_resumed: Vec<Value> = steps(&cfg.output_dir)
        .iter()
        .map(|m| m["kl_coef"].clone())
        .collect();
    assert_eq!(
        beta_resumed, beta_straight,
        "β continued from the checkpoint"
    );
}

#[test]
fn a_separate_critic_trains_its_own_adapter() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = setup(
        dir.path(),
        "value_model = \"critic\"\nmax_steps = 2",
        LENGTH,
    );
    train(&cfg, &RlOptions::default()).expect("critic");
    let critic = load(
        &cfg.output_dir
            .join("final/critic/adapter_model.safetensors"),
    );
    assert!(!critic.is_empty());
    // LoRA B starts at zero; the critic's moved.
    assert!(
        critic
            .iter()
            .filter(|(k, _)| k.contains("lora_B"))
            .any(|(_, t)| bits(t).iter().any(|&b| b != 0)),
        "the critic's adapter never moved"
    );
    assert!(
        cfg.output_dir
            .join("final/value_head.safetensors")
            .is_file()
    );
}

#[test]
fn token_level_grounding_gated_by_a_holistic_reward_trains() {
    let dir = tempfile::tempdir().expect("tmp");
    let rewards = "[[reward]]\nsource = \"builtin:rouge\"\nmetric = \"rougeL\"\nweight = 5.0\n\
                   holistic = true\n\
                   [[reward]]\nsource = \"builtin:grounding\"\nmetric = \"grounding\"\n\
                   level = \"token\"\n";
    let cfg = setup(
        dir.path(),
        "combine = \"hierarchical\"\nholistic_threshold = 0.1\nshort_response_penalty = true\n\
         max_steps = 2",
        rewards,
    );
    train(&cfg, &RlOptions::default()).expect("hierarchical");
    let s = steps(&cfg.output_dir);
    assert_eq!(s.len(), 2);
    // The per-reward means are logged for both; the task reward is their combination.
    for m in &s {
        assert!(m["rewards"].get("grounding").is_some(), "{m}");
        assert!(m["reward"].as_f64().is_some_and(f64::is_finite));
    }
}

#[test]
fn settings_that_cannot_work_are_refused_by_name() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let cases = [
        (
            "combine = \"hierarchical\"",
            LENGTH.to_string(),
            "needs exactly one [[reward]] with holistic = true",
        ),
        (
            "algorithm = \"grpo\"\nnum_generations = 2\ncombine = \"holistic_only\"",
            LENGTH.to_string(),
            "needs algorithm = \"ppo\"",
        ),
        (
            "algorithm = \"grpo\"",
            format!("{LENGTH}level = \"token\"\n"),
            "token-level rewards need algorithm = \"ppo\"",
        ),
        ("num_iterations = 2", LENGTH.to_string(), "ppo_epochs"),
        (
            "critic_init = \"rm-run\"",
            LENGTH.to_string(),
            "value_model = \"critic\"",
        ),
    ];
    for (extra, rewards, want) in cases {
        let cfg = setup(d, extra, &rewards);
        let e = train(&cfg, &RlOptions::default()).expect_err(extra);
        assert!(e.to_string().contains(want), "{extra}: {e}");
    }
    // A module without spans cannot be token-level.
    let cfg = setup(d, "", &format!("{LENGTH}level = \"token\"\n"));
    let e = train(&cfg, &RlOptions::default()).expect_err("no spans");
    assert!(e.to_string().contains("reports no spans"), "{e}");
}

#[test]
fn a_critic_starts_from_a_reward_model_run() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    // PPO's tiny GPT-2 first (setup writes it), then a reward model on it.
    let mut cfg = setup(
        d,
        "value_model = \"critic\"\nmax_steps = 1\nlr = 1e-12",
        LENGTH,
    );
    let pairs: String = (0..8)
        .map(|i| {
            format!(
                "{{\"prompt\": \"say {i}\", \"chosen\": \"{i} apples\", \"rejected\": \"no\"}}\n"
            )
        })
        .collect();
    std::fs::write(d.join("pairs.jsonl"), pairs).expect("pairs");
    let rm_text = format!(
        "model = {:?}\ntrain_data = {:?}\noutput_dir = {:?}\nbatch_size = 4\nmax_steps = 3\n\
         lr = 1e-2\nmax_len = 24\nmax_prompt_len = 8\nlora_rank = 4\nlora_alpha = 8\n\
         lora_targets = [\"c_attn\", \"c_proj\"]\nseed = 1\n",
        d.join("model"),
        d.join("pairs.jsonl"),
        d.join("rm"),
    );
    let rm = trainer::rm::RmConfig::from_toml(&rm_text, Path::new("rm.toml")).expect("rm config");
    trainer::rm::train(&rm, &trainer::sft::TrainOptions::default()).expect("rm");
    cfg.critic_init = Some(d.join("rm"));
    train(&cfg, &RlOptions::default()).expect("ppo from the rm");
    // One step at a negligible learning rate: the critic is still the reward model.
    let score = load(&d.join("rm/final/score.safetensors"));
    let head = load(&cfg.output_dir.join("final/value_head.safetensors"));
    let diff = (&score["score.weight"] - &head["v_head.summary.weight"])
        .and_then(|t| t.abs())
        .and_then(|t| t.max_all())
        .and_then(|t| t.to_scalar::<f32>())
        .expect("diff");
    assert!(
        diff < 1e-6,
        "the value head is not the reward model's head: {diff}"
    );
    let rm_adapter = load(&d.join("rm/final/adapter_model.safetensors"));
    let critic = load(
        &cfg.output_dir
            .join("final/critic/adapter_model.safetensors"),
    );
    assert_eq!(rm_adapter.len(), critic.len());
    for (k, t) in &rm_adapter {
        let c = critic.get(k).unwrap_or_else(|| panic!("critic lacks {k}"));
        let diff = (t - c)
            .and_then(|t| t.abs())
            .and_then(|t| t.max_all())
            .and_then(|t| t.to_scalar::<f32>())
            .expect("diff");
        assert!(diff < 1e-6, "{k} moved by {diff}");
    }
    // A run that is not an RM run is refused by name.
    cfg.critic_init = Some(d.join("model"));
    cfg.output_dir = d.join("run2");
    let e = train(&cfg, &RlOptions::default()).expect_err("not an rm run");
    assert!(e.to_string().contains("critic_init"), "{e}");
}
