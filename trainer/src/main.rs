//! `trainer`: the command line over the `trainer` library.
//!
//! - `trainer sft --config FILE.toml [--KEY VALUE ...]`: every key of the TOML file is also a
//!   flag (`lr` ↔ `--lr`); flags override the file. A run stopped by the memory guard (or a
//!   non-finite loss) prints the error, which names the last usable checkpoint, and exits 1.
//! - `trainer generate --model PATH [--adapter DIR] --prompt TEXT [--chat] [--max-new-tokens N]
//!   [--temperature T] [--dtype f32|bf16]`

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use trainer::generate::{GenerationConfig, generate};
use trainer::load::tokenizer::Message;

#[derive(Parser)]
#[command(
    version,
    about = "Align language models with several rewards: models, LoRA, generation, SFT"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Supervised fine-tuning (full or LoRA) with checkpoints and resumption.
    Sft(Box<SftArgs>),
    /// Generate a continuation of one prompt.
    Generate(GenerateArgs),
}

#[derive(clap::Args)]
struct GenerateArgs {
    /// HF directory (config.json, *.safetensors, tokenizer.json) or a .gguf file.
    #[arg(long)]
    model: PathBuf,
    /// The prompt text.
    #[arg(long)]
    prompt: String,
    /// Wrap the prompt as a user turn with the model's chat template.
    #[arg(long)]
    chat: bool,
    /// Maximum number of generated tokens.
    #[arg(long, default_value_t = 128)]
    max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Keep only the k most likely tokens when sampling.
    #[arg(long)]
    top_k: Option<usize>,
    /// Nucleus sampling mass.
    #[arg(long)]
    top_p: Option<f32>,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu, or cuda / cuda:N (builds with the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Weights and activations in f32, or bf16 (half the memory; on CPUs slower than f32).
    #[arg(long, default_value = "f32", value_parser = ["f32", "bf16"])]
    dtype: String,
    /// A LoRA adapter directory (from `trainer sft` with `lora_rank > 0`) to apply to the model.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// Stop once the output contains this text (repeatable).
    #[arg(long)]
    stop: Vec<String>,
}

/// `trainer sft`: a TOML file and/or flags, one flag per config key.
#[derive(clap::Args)]
struct SftArgs {
    /// TOML file with the run's options (flags override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Do not draw the progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Base model: HF directory or .gguf file.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Training data: JSONL (prompt/completion or messages) or MaRio JSON.
    #[arg(long)]
    train_data: Option<PathBuf>,
    /// Held-out data for the periodic eval loss.
    #[arg(long)]
    eval_data: Option<PathBuf>,
    /// Run directory.
    #[arg(long)]
    output_dir: Option<PathBuf>,
    /// Render examples with the chat template.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    chat: Option<bool>,
    /// Longest tokenized example.
    #[arg(long)]
    max_len: Option<i64>,
    /// Examples per micro-batch.
    #[arg(long)]
    batch_size: Option<i64>,
    /// Micro-batches per optimizer step.
    #[arg(long)]
    grad_accum: Option<i64>,
    /// Optimizer steps.
    #[arg(long)]
    max_steps: Option<i64>,
    /// Peak learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Final learning rate.
    #[arg(long)]
    min_lr: Option<f64>,
    /// Warmup steps.
    #[arg(long)]
    warmup_steps: Option<i64>,
    /// cosine, linear or constant.
    #[arg(long)]
    decay: Option<String>,
    /// AdamW weight decay.
    #[arg(long)]
    weight_decay: Option<f64>,
    /// AdamW beta1.
    #[arg(long)]
    beta1: Option<f64>,
    /// AdamW beta2.
    #[arg(long)]
    beta2: Option<f64>,
    /// AdamW epsilon.
    #[arg(long)]
    eps: Option<f64>,
    /// Gradient-norm clip (0 disables).
    #[arg(long)]
    grad_clip: Option<f64>,
    /// Seed.
    #[arg(long)]
    seed: Option<i64>,
    /// Use only the first N eval examples (0: all).
    #[arg(long)]
    eval_limit: Option<i64>,
    /// Eval every N steps.
    #[arg(long)]
    eval_every: Option<i64>,
    /// Checkpoint every N steps.
    #[arg(long)]
    save_every: Option<i64>,
    /// Checkpoints kept.
    #[arg(long)]
    keep_last: Option<i64>,
    /// LoRA rank (0: full fine-tuning).
    #[arg(long)]
    lora_rank: Option<i64>,
    /// LoRA alpha.
    #[arg(long)]
    lora_alpha: Option<f64>,
    /// LoRA dropout.
    #[arg(long)]
    lora_dropout: Option<f64>,
    /// Comma-separated projection names for adapters.
    #[arg(long, value_delimiter = ',')]
    lora_targets: Option<Vec<String>>,
    /// cpu, or cuda / cuda:N (builds with the `cuda` feature).
    #[arg(long)]
    device: Option<String>,
    /// f32, or bf16 (mixed precision: bf16 weights and activations, f32 master weights).
    #[arg(long)]
    dtype: Option<String>,
    /// Resume from the newest checkpoint in the run directory.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    resume: Option<bool>,
    /// Stop with a checkpoint once peak resident memory exceeds this many MiB (default: 90% of
    /// the smaller of the cgroup limit and the memory available at start).
    #[arg(long)]
    memory_limit_mib: Option<i64>,
}

impl SftArgs {
    /// The TOML file's table with the flags laid over it.
    fn resolve(&self) -> anyhow::Result<trainer::sft::SftConfig> {
        use toml::Value;
        let (mut table, origin) = match &self.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                let table: toml::Table = text
                    .parse()
                    .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
                (table, p.clone())
            }
            None => (toml::Table::new(), PathBuf::from("<flags>")),
        };
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| Value::String(p.display().to_string()));
        let int = |v: Option<i64>| v.map(Value::Integer);
        let float = |v: Option<f64>| v.map(Value::Float);
        let flags: Vec<(&str, Option<Value>)> = vec![
            ("model", path(&self.model)),
            ("train_data", path(&self.train_data)),
            ("eval_data", path(&self.eval_data)),
            ("output_dir", path(&self.output_dir)),
            ("chat", self.chat.map(Value::Boolean)),
            ("max_len", int(self.max_len)),
            ("batch_size", int(self.batch_size)),
            ("grad_accum", int(self.grad_accum)),
            ("max_steps", int(self.max_steps)),
            ("lr", float(self.lr)),
            ("min_lr", float(self.min_lr)),
            ("warmup_steps", int(self.warmup_steps)),
            ("decay", self.decay.clone().map(Value::String)),
            ("weight_decay", float(self.weight_decay)),
            ("beta1", float(self.beta1)),
            ("beta2", float(self.beta2)),
            ("eps", float(self.eps)),
            ("grad_clip", float(self.grad_clip)),
            ("seed", int(self.seed)),
            ("eval_limit", int(self.eval_limit)),
            ("eval_every", int(self.eval_every)),
            ("save_every", int(self.save_every)),
            ("keep_last", int(self.keep_last)),
            ("lora_rank", int(self.lora_rank)),
            ("lora_alpha", float(self.lora_alpha)),
            ("lora_dropout", float(self.lora_dropout)),
            (
                "lora_targets",
                self.lora_targets
                    .clone()
                    .map(|v| Value::Array(v.into_iter().map(Value::String).collect())),
            ),
            ("device", self.device.clone().map(Value::String)),
            ("dtype", self.dtype.clone().map(Value::String)),
            ("resume", self.resume.map(Value::Boolean)),
            ("memory_limit_mib", int(self.memory_limit_mib)),
        ];
        for (k, v) in flags {
            if let Some(v) = v {
                table.insert(k.to_string(), v);
            }
        }
        Ok(trainer::sft::SftConfig::from_toml(
            &toml::to_string(&table)?,
            &origin,
        )?)
    }
}

fn run_sft(a: &SftArgs) -> anyhow::Result<()> {
    let cfg = a.resolve()?;
    let opts = trainer::sft::TrainOptions {
        progress: !a.no_progress,
        stop_after: None,
    };
    let s = trainer::sft::train(&cfg, &opts)?;
    eprintln!(
        "done: {} steps (resumed from {}), last loss {:.4}, eval loss {}, final weights {}",
        s.steps,
        s.resumed_from,
        s.last_loss,
        s.eval_loss.map_or("-".into(), |e| format!("{e:.4}")),
        s.final_dir.map_or("-".into(), |p| p.display().to_string()),
    );
    Ok(())
}

fn run_generate(a: GenerateArgs) -> anyhow::Result<()> {
    let dtype = match a.dtype.as_str() {
        "bf16" => candle_core::DType::BF16,
        _ => candle_core::DType::F32,
    };
    let mut loaded = trainer::load::load_as(&a.model, false, dtype, &trainer::device(&a.device)?)
        .with_context(|| format!("loading {}", a.model.display()))?;
    if let Some(dir) = &a.adapter {
        let vars = candle_nn::VarMap::new();
        trainer::lora::load(&mut loaded.model, dir, &vars)
            .with_context(|| format!("loading adapter {}", dir.display()))?;
    }
    let Some(tok) = loaded.tokenizer else {
        bail!("{} has no tokenizer", a.model.display())
    };
    let text = if a.chat {
        tok.apply_chat(&[Message::new("user", &a.prompt)], true)?
    } else {
        a.prompt.clone()
    };
    let ids = tok.encode(&text)?;
    let cfg = GenerationConfig {
        max_new_tokens: a.max_new_tokens,
        temperature: a.temperature,
        top_k: a.top_k,
        top_p: a.top_p,
        seed: a.seed,
        stop_strings: a.stop.clone(),
        ..GenerationConfig::default()
    };
    let start = std::time::Instant::now();
    let out = generate(&loaded.model, &[ids], &cfg, tok.pad_id, Some(&tok))?;
    let g = &out[0];
    println!("{}", g.text);
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "[{} tokens in {secs:.2}s, {:.1} tok/s, stop: {:?}]",
        g.tokens.len(),
        g.tokens.len() as f64 / secs,
        g.finish
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // Training frees and reallocates its activations every step; keep them in the heap.
    trainer::malloc::keep_freed_memory();
    match Cli::parse().command {
        Command::Sft(a) => run_sft(&a),
        Command::Generate(a) => run_generate(a),
    }
}
