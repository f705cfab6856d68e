//! `trainer`: the command line over the `trainer` library.
//!
//! - `trainer sft --config FILE.toml [--KEY VALUE ...]`: every key of the TOML file is also a
//!   flag (`lr` ↔ `--lr`, derived from `trainer::sft::config::KEYS`); flags override the file.
//!   A run stopped by the memory guard (or a non-finite loss) prints the error, which names
//!   the last usable checkpoint, and exits 1; one stopped by SIGINT / SIGTERM also prints the
//!   command that resumes it and exits 130 / 143.
//!
//! Errors are printed as one line (`error: ...`, the causes joined); `--verbose` or
//! `RUST_LOG` print the whole chain and, with `RUST_BACKTRACE=1`, a backtrace.
//! - `trainer generate --model PATH [--adapter DIR] --prompt TEXT [--chat] [--max-new-tokens N]
//!   [--temperature T] [--dtype f32|bf16]`

use std::path::PathBuf;
use std::process::ExitCode;

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
    /// On an error, print its full chain and (with RUST_BACKTRACE=1) a backtrace.
    #[arg(long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Supervised fine-tuning (full or LoRA) with checkpoints and resumption.
    #[command(after_help = trainer::run::config::help(trainer::sft::config::KEYS))]
    Sft(Box<RunArgs>),
    /// RL against several sandboxed rewards (GRPO, RLOO, REINFORCE++); rewards are
    /// `[[reward]]` tables of the --config file.
    #[command(after_help = trainer::run::config::help(trainer::rl::config::KEYS))]
    Rl(Box<RunArgs>),
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

/// A training command's arguments: a TOML file and/or flags, one flag per config key.
#[derive(clap::Args)]
struct RunArgs {
    /// TOML file with the run's settings (flags override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print no progress (neither the bar nor, without a terminal, the progress lines).
    #[arg(long)]
    no_progress: bool,
    /// Settings as `--key value` (listed below).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "--KEY VALUE"
    )]
    settings: Vec<String>,
}

impl RunArgs {
    /// The `--config` file with the flags laid over it, as the command's config. `--config`
    /// and `--no-progress` may also come after the settings, where clap leaves them in
    /// `settings`.
    fn resolve<T: serde::de::DeserializeOwned>(
        &mut self,
        keys: &[trainer::run::config::Key],
    ) -> anyhow::Result<T> {
        let mut rest = Vec::with_capacity(self.settings.len());
        let mut args = std::mem::take(&mut self.settings).into_iter();
        while let Some(a) = args.next() {
            match a.as_str() {
                "--no-progress" => self.no_progress = true,
                "--config" => self.config = args.next().map(PathBuf::from),
                _ => match a.strip_prefix("--config=") {
                    Some(p) => self.config = Some(PathBuf::from(p)),
                    None => rest.push(a),
                },
            }
        }
        let sources = trainer::run::config::Sources::read(self.config.as_deref(), &rest, keys)?;
        Ok(sources.resolve()?)
    }
}

/// The command line that resumes this run: the same one.
fn resume_command() -> String {
    let quote = |a: String| {
        if a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,".contains(c))
        {
            a
        } else {
            format!("'{}'", a.replace('\'', "'\\''"))
        }
    };
    let mut args = std::env::args();
    let bin = args.next().unwrap_or_else(|| "trainer".into());
    let bin = if bin.ends_with("/trainer") {
        "trainer".to_string()
    } else {
        bin
    };
    std::iter::once(bin)
        .chain(args.map(quote))
        .collect::<Vec<_>>()
        .join(" ")
}

fn run_sft(mut a: RunArgs) -> anyhow::Result<()> {
    let cfg: trainer::sft::SftConfig = a.resolve(trainer::sft::config::KEYS)?;
    let opts = trainer::sft::TrainOptions {
        progress: !a.no_progress,
        stop_after: None,
        interrupt: trainer::run::Interrupt::install()?,
    };
    let s = trainer::sft::train(&cfg, &opts)?;
    if s.already_finished {
        eprintln!(
            "{} is finished: {} of {} steps, last loss {}, final weights {}. To train further, \
             re-run with a larger --max-steps.",
            cfg.output_dir.display(),
            s.steps,
            cfg.max_steps,
            if s.last_loss.is_finite() {
                format!("{:.4}", s.last_loss)
            } else {
                "-".into()
            },
            s.final_dir.map_or("-".into(), |p| p.display().to_string()),
        );
        return Ok(());
    }
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

fn run_rl(mut a: RunArgs) -> anyhow::Result<()> {
    let cfg: trainer::rl::RlConfig = a.resolve(trainer::rl::config::KEYS)?;
    let opts = trainer::rl::RlOptions {
        progress: !a.no_progress,
        interrupt: trainer::run::Interrupt::install()?,
        stop_after: None,
    };
    let s = trainer::rl::train(&cfg, &opts)?;
    let reward = s.last_reward.map_or("-".into(), |r| format!("{r:.4}"));
    if s.already_finished {
        eprintln!(
            "{} is finished: {} of {} steps, last mean reward {reward}, final adapter {}. To \
             train further, re-run with a larger --max-steps.",
            cfg.output_dir.display(),
            s.steps,
            cfg.max_steps,
            s.final_dir.map_or("-".into(), |p| p.display().to_string()),
        );
        return Ok(());
    }
    eprintln!(
        "done: {} steps (resumed from {}), last mean reward {reward}, final {}; metrics in {}",
        s.steps,
        s.resumed_from,
        s.final_dir.map_or("-".into(), |p| p.display().to_string()),
        cfg.output_dir.join("metrics.jsonl").display(),
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
        "[{} tokens in {secs:.2}s, {:.1} tok/s, stopped by: {}]",
        g.tokens.len(),
        g.tokens.len() as f64 / secs,
        g.finish.describe()
    );
    Ok(())
}

fn main() -> ExitCode {
    // Training frees and reallocates its activations every step; keep them in the heap.
    trainer::malloc::keep_freed_memory();
    let cli = Cli::parse();
    let verbose = cli.verbose || std::env::var_os("RUST_LOG").is_some();
    let result = match cli.command {
        Command::Sft(a) => run_sft(*a),
        Command::Rl(a) => run_rl(*a),
        Command::Generate(a) => run_generate(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(trainer::Error::Interrupted { signal, .. }) = e.downcast_ref() {
                eprintln!("{e}. Resume with: {}", resume_command());
                return ExitCode::from(signal.exit_code());
            }
            if verbose {
                eprintln!("error: {e:?}");
            } else {
                // One line: the causes joined, no backtrace.
                eprintln!("error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}
