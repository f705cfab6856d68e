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
//! - `trainer dpo --config FILE.toml [--KEY VALUE ...]`: `trainer sft`'s keys plus DPO's
//!   (`trainer::dpo::DpoConfig::keys()`); pairs in `train_data` / `eval_data`.
//! - `trainer rm --config FILE.toml [--KEY VALUE ...]`: the same with the reward model's keys.
//! - `trainer score --rm RUN_DIR --input gens.jsonl [--output scores.jsonl]`: one reward
//!   model score per line.
//! - `trainer armo embed | label | fit-probes | debias | fit-gating | score ...`: the
//!   ArmoRM pipeline (`trainer::armo::cli`).
//! - `trainer rllr label-pairs | rationale-pairs ...`: RLLR's pairs (`trainer::rllr`).
//! - `trainer merge --adapter RUN_OR_ADAPTER [--model BASE] --output DIR`: an adapter folded
//!   into its base, as an HF directory (`trainer::merge`).
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
    about = "Align language models with several rewards: SFT, RL against sandboxed and learned rewards, DPO, reward models, soups"
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
    /// Direct Preference Optimization on preference pairs (sigmoid, robust, IPO, hinge);
    /// `trainer sft`'s settings plus DPO's.
    #[command(after_help = trainer::run::config::help(&trainer::dpo::DpoConfig::keys()))]
    Dpo(Box<RunArgs>),
    /// Train a reward model on preference pairs (Bradley–Terry with margins and centring):
    /// a score head on the backbone; `trainer sft`'s settings plus the reward model's.
    #[command(after_help = trainer::run::config::help(&trainer::rm::RmConfig::keys()))]
    Rm(Box<RunArgs>),
    /// Rewarded Soups: mix adapters (or models) by weight, θ_λ = (1 − λ)·θ_A + λ·θ_B, and
    /// optionally evaluate, score and push every mix.
    Soup(Box<SoupArgs>),
    /// The MORL baseline: one `trainer rl` run per weighting of the config's rewards
    /// (`--weights 0:1:0.25`, or Rewarded Soups reward formats with `--terms`); other
    /// settings as `trainer rl`'s.
    #[command(after_help = sweep_help())]
    Sweep(Box<RunArgs>),
    /// Score generations with a reward model trained by `trainer rm`: one JSON line
    /// `{"id"?, "score"}` per input line, in order.
    Score(ScoreArgs),
    /// ArmoRM: embed with a frozen backbone, fit one ridge probe per attribute, debias for
    /// verbosity, train the gating network, score (`trainer armo SUBCOMMAND --help`).
    Armo(trainer::armo::cli::ArmoArgs),
    /// RLLR's reward-model pairs from MaRio's files: label-sensitive (same rationale, gold
    /// vs wrong label) and rationale-sensitive (same label, best vs worst rationale).
    Rllr(trainer::rllr::RllrArgs),
    /// Fold a LoRA adapter into its base model and write an HF directory (PEFT's
    /// merge_and_unload): the start of a later run, or a model for tools without adapters.
    Merge(MergeArgs),
    /// Generate a continuation of one prompt.
    Generate(GenerateArgs),
}

#[derive(clap::Args)]
struct ScoreArgs {
    /// The reward model: a `trainer rm` run directory (or its final/).
    #[arg(long)]
    rm: PathBuf,
    /// JSON Lines of {"prompt", "response", "id"?} (the evaluator's sample form).
    #[arg(long)]
    input: PathBuf,
    /// Where to write the scores (default: stdout); a `.provenance.json` beside it records
    /// the model's hash and this command.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Rows per forward pass.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// cpu, or cuda / cuda:N in builds with the cuda feature.
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(clap::Args)]
struct SoupArgs {
    /// The ingredients: run directories (config.toml + final/), adapter or model directories.
    #[arg(long, num_args = 2.., required = true)]
    adapters: Vec<PathBuf>,
    /// The weightings: START:END:STEP or a,b,c (λ, two ingredients); uniform, simplex:STEP
    /// or w1/w2/w3,... (more). Default: 0:1:0.1 for two, uniform for more.
    #[arg(long)]
    lambdas: Option<String>,
    /// Where the mixes go (one directory per weighting).
    #[arg(long)]
    output_dir: PathBuf,
    /// The base model of the adapters, when no run directory records it.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Prompts to generate for greedily with each mix (the evaluator's sample form, chat or
    /// MaRio); scored by the rewards and written as canonical generations.
    #[arg(long)]
    eval: Option<PathBuf>,
    /// Only the first N eval prompts.
    #[arg(long, default_value_t = 0)]
    eval_limit: usize,
    /// A TOML file whose `[[reward]]` tables score the eval (default: the runs' rewards).
    #[arg(long)]
    rewards: Option<PathBuf>,
    /// Longest generation (default: the first run's max_new_tokens).
    #[arg(long)]
    max_new_tokens: Option<usize>,
    /// An evaluation service to push each mix's generations to (with EVALUATOR_TOKEN).
    #[arg(long)]
    push_to: Option<String>,
    /// The dataset to push to (default: the eval file's name).
    #[arg(long)]
    dataset: Option<String>,
    /// The sweep's name: systems `<name>:lambda-0.3` with metadata sweep = name.
    #[arg(long, default_value = "soup")]
    name: String,
    /// cpu, or cuda / cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(clap::Args)]
struct MergeArgs {
    /// A run directory (its final/ adapter; the base from its config.toml) or an adapter
    /// directory (adapter_config.json + adapter_model.safetensors).
    #[arg(long)]
    adapter: PathBuf,
    /// The base model (HF directory or .gguf), when the run does not record it.
    #[arg(long)]
    model: Option<PathBuf>,
    /// The HF directory to write (must not exist).
    #[arg(long)]
    output: PathBuf,
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

/// `trainer sweep --help`'s list: the sweep's own flags, then `trainer rl`'s settings.
fn sweep_help() -> String {
    format!(
        "Sweep flags:\n  --weights SPEC   weightings of the [[reward]] tables, multiplying their \
         weights: START:END:STEP or a,b,c (λ: (1 − λ, λ), two rewards); uniform, simplex:STEP or \
         w1/w2/...,... (more)\n  --terms FORMAT   a Rewarded Soups reward format for the single \
         reward, e.g. \"0x0.4 1-0x0.6\" (repeatable; one run each)\n  --name NAME      the sweep's \
         name: runs in output_dir/<label>/, pushed as <name>:<label> (default morl)\n\n{}",
        trainer::run::config::help(trainer::rl::config::KEYS)
    )
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
        Ok(self.sources(keys)?.resolve()?)
    }

    /// Where the settings come from, for commands that type them in parts.
    fn sources(
        &mut self,
        keys: &[trainer::run::config::Key],
    ) -> anyhow::Result<trainer::run::config::Sources> {
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
        Ok(trainer::run::config::Sources::read(
            self.config.as_deref(),
            &rest,
            keys,
        )?)
    }
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

fn run_dpo(mut a: RunArgs) -> anyhow::Result<()> {
    let sources = a.sources(&trainer::dpo::DpoConfig::keys())?;
    let cfg = trainer::dpo::DpoConfig::from_sources(&sources)?;
    let s = trainer::dpo::train(&cfg, &train_options(&a)?)?;
    report_pairs_run(&cfg.train, &s, "eval_rewards/accuracies", "final weights");
    Ok(())
}

fn run_rm(mut a: RunArgs) -> anyhow::Result<()> {
    let sources = a.sources(&trainer::rm::RmConfig::keys())?;
    let cfg = trainer::rm::RmConfig::from_sources(&sources)?;
    let s = trainer::rm::train(&cfg, &train_options(&a)?)?;
    report_pairs_run(&cfg.train, &s, "eval_accuracy", "final reward model");
    Ok(())
}

/// The options of a command on SFT's loop run from the command line.
fn train_options(a: &RunArgs) -> anyhow::Result<trainer::sft::TrainOptions> {
    Ok(trainer::sft::TrainOptions {
        progress: !a.no_progress,
        stop_after: None,
        interrupt: trainer::run::Interrupt::install()?,
    })
}

/// The last line of a DPO or reward-model run: its held-out accuracy (`accuracy_key` of
/// the metrics) and where the result is.
fn report_pairs_run(
    cfg: &trainer::sft::SftConfig,
    s: &trainer::sft::Summary,
    accuracy_key: &str,
    result: &str,
) {
    let metrics = cfg.output_dir.join(trainer::run::dir::METRICS_FILE);
    let accuracy = trainer::run::metrics::last_value(&metrics, accuracy_key)
        .map_or("-".into(), |v| format!("{v:.3}"));
    let state = if s.already_finished {
        "already finished"
    } else {
        "done"
    };
    eprintln!(
        "{state}: {} steps (resumed from {}), last loss {:.4}, eval loss {}, eval accuracy \
         {accuracy}, {result} {}",
        s.steps,
        s.resumed_from,
        s.last_loss,
        s.eval_loss.map_or("-".into(), |e| format!("{e:.4}")),
        s.final_dir
            .as_ref()
            .map_or("-".into(), |p| p.display().to_string()),
    );
}

fn run_score(a: &ScoreArgs) -> anyhow::Result<()> {
    let device = trainer::device(&a.device)?;
    let mut rm = trainer::rm::RewardModel::load(&a.rm, &device)
        .with_context(|| format!("flag --rm {}", a.rm.display()))?;
    rm.batch_size = a.batch_size.max(1);
    let scored = trainer::rm::model::score_file(&rm, &a.input)?;
    let mut text = String::new();
    for line in &scored {
        let v = match &line.id {
            Some(id) => serde_json::json!({"id": id, "prompt": line.prompt, "score": line.score}),
            None => serde_json::json!({"prompt": line.prompt, "score": line.score}),
        };
        text += &v.to_string();
        text.push('\n');
    }
    match &a.output {
        Some(path) => {
            trainer::run::dir::write_scores(
                path,
                &text,
                scored.len(),
                &rm.dir,
                &rm.hash,
                &a.input,
            )?;
            eprintln!(
                "scored {} lines with {} (sha256 {}): {}",
                scored.len(),
                rm.dir.display(),
                &rm.hash[..12],
                path.display()
            );
        }
        None => print!("{text}"),
    }
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

fn run_soup(a: SoupArgs) -> anyhow::Result<()> {
    use trainer::soup::{self, SoupOptions, grid};
    let spec = a.lambdas.clone().unwrap_or_else(|| {
        if a.adapters.len() == 2 {
            "0:1:0.1"
        } else {
            "uniform"
        }
        .to_string()
    });
    let mixes =
        grid::parse(&spec, a.adapters.len()).map_err(|e| anyhow::anyhow!("flag --lambdas: {e}"))?;
    let rewards = match &a.rewards {
        Some(p) => Some(trainer::reward::read_tables("--rewards", p)?),
        None => None,
    };
    // The token comes from the environment, never from a file or a flag.
    let push = a.push_to.map(|url| trainer::rl::push::Target {
        url,
        token: std::env::var("EVALUATOR_TOKEN").unwrap_or_default(),
        dataset: a.dataset.clone().unwrap_or_else(|| {
            a.eval
                .as_deref()
                .and_then(|p| p.file_stem())
                .map_or_else(|| "eval".into(), |s| s.to_string_lossy().into())
        }),
    });
    let written = soup::soup(&SoupOptions {
        inputs: a.adapters,
        mixes,
        output_dir: a.output_dir.clone(),
        model: a.model,
        eval: a.eval,
        eval_limit: a.eval_limit,
        rewards,
        max_new_tokens: a.max_new_tokens,
        push,
        name: a.name,
        device: a.device,
    })?;
    let failed = written
        .iter()
        .filter(|w| matches!(w.pushed, Some(Err(_))))
        .count();
    eprintln!(
        "done: {} mixes in {}",
        written.len(),
        a.output_dir.display()
    );
    if failed > 0 {
        bail!(
            "{failed} of {} pushes failed (the generations are in {}/eval)",
            written.len(),
            a.output_dir.display()
        );
    }
    Ok(())
}

fn run_sweep(mut a: RunArgs) -> anyhow::Result<()> {
    use trainer::soup::{grid, sweep};
    // --weights, --terms and --name are the sweep's own; the rest are `trainer rl`'s.
    let (mut weights, mut terms, mut name) = (None, Vec::new(), "morl".to_string());
    let mut rest = Vec::new();
    let mut args = std::mem::take(&mut a.settings).into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |flag: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| anyhow::anyhow!("flag {flag}: expected a value"))
        };
        match flag.as_str() {
            "--weights" => weights = Some(value("--weights")?),
            "--terms" => terms.push(value("--terms")?),
            "--name" => name = value("--name")?,
            _ => rest.push(arg),
        }
    }
    a.settings = rest;
    let base: trainer::rl::RlConfig = a.resolve(trainer::rl::config::KEYS)?;
    let mut points = Vec::new();
    if let Some(w) = &weights {
        let k = base.reward.len();
        if k < 2 {
            bail!(
                "flag --weights: the config has {k} [[reward]] table(s); a weighting needs at least two (or use --terms)"
            );
        }
        points.extend(
            grid::parse(w, k)
                .map_err(|e| anyhow::anyhow!("flag --weights: {e}"))?
                .into_iter()
                .map(sweep::Weighting::Mix),
        );
    }
    for t in &terms {
        points.push(sweep::parse_terms(t).map_err(|e| anyhow::anyhow!("flag --terms: {e}"))?);
    }
    let opts = trainer::rl::RlOptions {
        progress: !a.no_progress,
        interrupt: trainer::run::Interrupt::install()?,
        stop_after: None,
    };
    let runs = sweep::sweep(&base, &name, &points, base.push_target().as_ref(), &opts)?;
    for r in &runs {
        eprintln!(
            "{}: {} steps, {:.0} s of training, eval {}",
            r.weighting.label(),
            r.summary.steps,
            r.train_seconds,
            r.eval.as_ref().map_or("-".into(), |e| e.to_string())
        );
    }
    let failed = runs
        .iter()
        .filter(|r| matches!(r.pushed, Some(Err(_))))
        .count();
    if failed > 0 {
        bail!(
            "{failed} of {} pushes failed (each run's eval files are in its directory)",
            runs.len()
        );
    }
    Ok(())
}

fn run_merge(a: &MergeArgs) -> anyhow::Result<()> {
    let m = trainer::merge::merge(&a.adapter, a.model.as_deref(), &a.output)?;
    eprintln!(
        "merged {} projections of {} into {}: {}",
        m.projections,
        m.adapter.display(),
        m.base.display(),
        a.output.display()
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
        Command::Dpo(a) => run_dpo(*a),
        Command::Rm(a) => run_rm(*a),
        Command::Soup(a) => run_soup(*a),
        Command::Sweep(a) => run_sweep(*a),
        Command::Score(a) => run_score(&a),
        Command::Armo(a) => trainer::armo::cli::run(a).map_err(Into::into),
        Command::Rllr(a) => trainer::rllr::run(a).map_err(Into::into),
        Command::Merge(a) => run_merge(&a),
        Command::Generate(a) => run_generate(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(trainer::Error::Interrupted { signal, .. }) = e.downcast_ref() {
                eprintln!("{e}. Resume with: {}", trainer::run::command_line());
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
