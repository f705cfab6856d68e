//! `trainer`: the command line over the `trainer` library.
//!
//! - `trainer generate --model PATH --prompt TEXT [--chat] [--max-new-tokens N] [--temperature T]`

use std::path::PathBuf;

use anyhow::{Context, bail};
use candle_core::Device;
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
}

fn run_generate(a: GenerateArgs) -> anyhow::Result<()> {
    let loaded = trainer::load::load(&a.model, false, &Device::Cpu)
        .with_context(|| format!("loading {}", a.model.display()))?;
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
    match Cli::parse().command {
        Command::Generate(a) => run_generate(a),
    }
}
