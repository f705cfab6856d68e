//! `trainer armo SUBCOMMAND`: the command line of the ArmoRM pipeline (the binary only
//! forwards to [`run`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::baseline;
use super::embed::{self, BackboneSettings, EmbedJob, Kind};
use super::fit::{self, GatingJob, ProbeJob};
use super::gate::{self, GateTraining};
use super::model::{self, ArmoModel};
use crate::error::{Error, Result};

/// The subcommands.
#[derive(clap::Subcommand)]
pub enum ArmoCommand {
    /// Last-token final hidden states of a backbone over chat-formatted prompt + response,
    /// in resumable safetensors shards (re-run the same command to finish a killed run).
    Embed(EmbedArgs),
    /// Labels samples with `[[reward]]` tables (built-in modules, .wasm scorers, rm:, armo:):
    /// writes each input line with a `labels` object, one label per reward name.
    Label(LabelArgs),
    /// One ridge regression per attribute (no intercept, NaN labels skipped), α from
    /// 1e-4…1e4 by validation MSE on a seeded 80/20 split, refitted on all rows.
    FitProbes(FitProbesArgs),
    /// Verbosity debiasing: per attribute the smallest λ with Spearman(r_j − λ·r_v, r_v) ≤
    /// the threshold on reference embeddings.
    Debias(DebiasArgs),
    /// The gating network (MLP, ReLU, dropout, softmax(z/T)·s) trained with the
    /// Bradley–Terry loss on preference pairs' embeddings.
    FitGating(FitGatingArgs),
    /// The comparison at the same budget: a plain Bradley–Terry linear head on the same
    /// frozen embeddings, trained with the gate's loss, optimizer, steps and batches.
    FitBaseline(FitBaselineArgs),
    /// Per-attribute rewards, gate weights and the final score for each input line.
    Score(ScoreArgs),
}

/// The backbone flags `embed` records.
#[derive(clap::Args)]
pub struct BackboneArgs {
    /// HF directory or .gguf file.
    #[arg(long)]
    model: PathBuf,
    /// Render prompt and response as they are, not with the chat template.
    #[arg(long)]
    no_chat: bool,
    /// Longest row in tokens (the response is cut to fit).
    #[arg(long, default_value_t = 1024)]
    max_len: usize,
    /// Longest prompt in tokens (its last ones are kept).
    #[arg(long, default_value_t = 512)]
    max_prompt_len: usize,
}

/// `trainer armo embed`.
#[derive(clap::Args)]
pub struct EmbedArgs {
    #[command(flatten)]
    backbone: BackboneArgs,
    /// JSON Lines {"id"?, "prompt", "response", "labels"?}, or pairs with --pairs.
    #[arg(long)]
    input: PathBuf,
    /// The input is preference pairs (any form `trainer rm` reads, AlpacaEval annotations
    /// included).
    #[arg(long)]
    pairs: bool,
    /// The embeddings directory.
    #[arg(long)]
    output: PathBuf,
    /// Rows per forward pass.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Rows per shard (the unit a resumed run skips).
    #[arg(long, default_value_t = 256)]
    shard_size: usize,
    /// cpu, or cuda / cuda:N in builds with the cuda feature.
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// `trainer armo label`.
#[derive(clap::Args)]
pub struct LabelArgs {
    /// JSON Lines {"id"?, "prompt", "response", "reference"?}.
    #[arg(long)]
    input: PathBuf,
    /// A TOML file whose `[[reward]]` tables are the attributes (their names, transforms
    /// applied; a missing value becomes null).
    #[arg(long)]
    rewards: PathBuf,
    /// The labelled samples.
    #[arg(long)]
    output: PathBuf,
    /// Samples per reward call.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
}

/// `trainer armo fit-probes`.
#[derive(clap::Args)]
pub struct FitProbesArgs {
    /// An embeddings directory of labelled samples.
    #[arg(long)]
    embeddings: PathBuf,
    /// Labels from this samples file (line i labels row i) instead of the embedded input's.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Attributes in order, comma-separated (default: every label name, sorted).
    #[arg(long, value_delimiter = ',')]
    attributes: Vec<String>,
    /// Seed of the 80/20 split.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The ArmoRM run directory.
    #[arg(long)]
    run: PathBuf,
}

/// `trainer armo debias`.
#[derive(clap::Args)]
pub struct DebiasArgs {
    /// The run directory (after fit-probes).
    #[arg(long)]
    run: PathBuf,
    /// Reference embeddings (samples, or pairs: both responses).
    #[arg(long)]
    reference: PathBuf,
    /// The verbosity attribute.
    #[arg(long)]
    verbosity: String,
    /// Spearman threshold.
    #[arg(long, default_value_t = super::debias::THRESHOLD)]
    threshold: f64,
}

/// `trainer armo fit-gating`.
#[derive(clap::Args)]
pub struct FitGatingArgs {
    /// The run directory (after fit-probes and debias).
    #[arg(long)]
    run: PathBuf,
    /// Training pairs' embeddings (`embed --pairs`).
    #[arg(long)]
    train: PathBuf,
    /// Held-out pairs' embeddings.
    #[arg(long)]
    eval: Option<PathBuf>,
    /// Hidden layer sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1024,1024,1024")]
    hidden: Vec<usize>,
    /// Dropout after each hidden layer.
    #[arg(long, default_value_t = 0.2)]
    dropout: f64,
    /// Softmax temperature.
    #[arg(long, default_value_t = 10.0)]
    temperature: f64,
    #[command(flatten)]
    training: TrainingArgs,
    /// cpu, or cuda / cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// How a pair model trains (the gate, and the baseline at the same budget).
#[derive(clap::Args)]
pub struct TrainingArgs {
    /// Peak learning rate (cosine decay to 0).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 0.01)]
    weight_decay: f64,
    /// Optimizer steps.
    #[arg(long, default_value_t = 2000)]
    steps: usize,
    /// Pairs per step.
    #[arg(long, default_value_t = 1024)]
    batch_size: usize,
    /// Held-out evaluation every N steps (0: at the end only).
    #[arg(long, default_value_t = 100)]
    eval_every: usize,
    /// Seed of the initialisation, batches and dropout.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

impl TrainingArgs {
    fn training(&self) -> GateTraining {
        GateTraining {
            lr: self.lr,
            weight_decay: self.weight_decay,
            steps: self.steps,
            batch_size: self.batch_size,
            seed: self.seed,
            eval_every: self.eval_every,
        }
    }
}

/// `trainer armo fit-baseline`.
#[derive(clap::Args)]
pub struct FitBaselineArgs {
    /// The run directory the baseline's files go into (beside the gate's).
    #[arg(long)]
    run: PathBuf,
    /// Training pairs' embeddings (`embed --pairs`).
    #[arg(long)]
    train: PathBuf,
    /// Held-out pairs' embeddings.
    #[arg(long)]
    eval: Option<PathBuf>,
    #[command(flatten)]
    training: TrainingArgs,
    /// cpu, or cuda / cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// `trainer armo score`.
#[derive(clap::Args)]
pub struct ScoreArgs {
    /// The run directory (all stages done).
    #[arg(long)]
    run: PathBuf,
    /// JSON Lines {"id"?, "prompt", "response"}.
    #[arg(long)]
    input: PathBuf,
    /// Where to write (default: stdout); a `.provenance.json` beside it records the run,
    /// its hash and this command, for `evaluator push-scores`.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Rows per forward pass.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// cpu, or cuda / cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// `trainer armo ...`.
#[derive(clap::Args)]
pub struct ArmoArgs {
    #[command(subcommand)]
    command: ArmoCommand,
}

/// Runs one subcommand; progress and summaries go to stderr.
pub fn run(args: ArmoArgs) -> Result<()> {
    match args.command {
        ArmoCommand::Embed(a) => run_embed(&a),
        ArmoCommand::Label(a) => run_label(&a),
        ArmoCommand::FitProbes(a) => run_fit_probes(&a),
        ArmoCommand::Debias(a) => run_debias(&a),
        ArmoCommand::FitGating(a) => run_fit_gating(&a),
        ArmoCommand::FitBaseline(a) => run_fit_baseline(&a),
        ArmoCommand::Score(a) => run_score(&a),
    }
}

fn run_embed(a: &EmbedArgs) -> Result<()> {
    let job = EmbedJob {
        backbone: BackboneSettings {
            model: a.backbone.model.clone(),
            chat: !a.backbone.no_chat,
            max_len: a.backbone.max_len,
            max_prompt_len: a.backbone.max_prompt_len,
        },
        input: a.input.clone(),
        kind: if a.pairs { Kind::Pairs } else { Kind::Samples },
        output: a.output.clone(),
        batch_size: a.batch_size,
        shard_size: a.shard_size,
    };
    let start = std::time::Instant::now();
    let r = embed::embed(&job, &crate::device(&a.device)?, |done, total| {
        eprintln!(
            "shard {done}/{total} ({:.0} s)",
            start.elapsed().as_secs_f64()
        );
    })?;
    eprintln!(
        "embedded {} rows into {}: {} shards written, {} already done",
        r.rows,
        a.output.display(),
        r.written,
        r.skipped
    );
    Ok(())
}

fn run_label(a: &LabelArgs) -> Result<()> {
    let specs = crate::reward::read_tables("--rewards", &a.rewards)?;
    let rewards = crate::reward::Rewards::load(&specs, reward_host::Limits::default())?;
    let names = rewards.names();
    let input = std::fs::read_to_string(&a.input).map_err(|e| Error::io(&a.input, e))?;
    let mut lines: Vec<(
        serde_json::Map<String, serde_json::Value>,
        crate::reward::Sample,
    )> = Vec::new();
    for (i, line) in input.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| Error::Data {
            path: a.input.clone(),
            line: i + 1,
            message,
        };
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| {
            bad(format!(
                "not JSON ({e}); expected {{\"prompt\", \"response\", \"reference\"?}}"
            ))
        })?;
        let serde_json::Value::Object(o) = v else {
            return Err(bad("expected an object {\"prompt\", \"response\"}".into()));
        };
        let text_of = |k: &str| match o.get(k) {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            _ => Err(bad(format!("`{k}` must be a string"))),
        };
        let mut s = crate::reward::Sample::new(&text_of("prompt")?, &text_of("response")?);
        if let Some(serde_json::Value::String(r)) = o.get("reference") {
            s = s.with_reference(r);
        }
        lines.push((o, s));
    }
    let mut out = String::new();
    for chunk in lines.chunks(a.batch_size.max(1)) {
        let batch: Vec<crate::reward::Sample> = chunk.iter().map(|(_, s)| s.clone()).collect();
        let scored = rewards.score(&batch)?;
        for ((o, _), values) in chunk.iter().zip(&scored.value) {
            let mut o = o.clone();
            let labels: serde_json::Map<String, serde_json::Value> = names
                .iter()
                .cloned()
                .zip(
                    values
                        .iter()
                        .map(|v| v.map_or(serde_json::Value::Null, Into::into)),
                )
                .collect();
            o.insert("labels".into(), serde_json::Value::Object(labels));
            out += &serde_json::Value::Object(o).to_string();
            out.push('\n');
        }
    }
    crate::run::dir::write_atomic(&a.output, out.as_bytes())?;
    eprintln!(
        "labelled {} samples with {}: {}",
        lines.len(),
        names.join(", "),
        a.output.display()
    );
    Ok(())
}

fn run_fit_probes(a: &FitProbesArgs) -> Result<()> {
    let meta = fit::fit_probes(&ProbeJob {
        embeddings: a.embeddings.clone(),
        labels: a.labels.clone(),
        attributes: a.attributes.clone(),
        seed: a.seed,
        run: a.run.clone(),
    })?;
    for p in &meta.attributes {
        eprintln!(
            "{}: α = {:e}, validation R² {:.4} ({} train / {} validation rows)",
            p.name, p.alpha, p.val_r2, p.n_train, p.n_val
        );
    }
    eprintln!("probes written to {}", a.run.display());
    Ok(())
}

fn run_debias(a: &DebiasArgs) -> Result<()> {
    let meta = fit::debias(&a.run, &a.reference, &a.verbosity, a.threshold)?;
    let probes: fit::ProbesMeta = fit::read_meta(&a.run, fit::PROBES_META)?;
    for (i, p) in probes.attributes.iter().enumerate() {
        if p.name == meta.verbosity {
            continue;
        }
        eprintln!(
            "{}: λ = {}{} (Spearman with {} {})",
            p.name,
            meta.lambdas[i],
            if meta.met[i] {
                ""
            } else {
                ", none met the threshold"
            },
            meta.verbosity,
            meta.spearman[i].map_or("undefined".into(), |s| format!("{s:.4}"))
        );
    }
    Ok(())
}

fn run_fit_gating(a: &FitGatingArgs) -> Result<()> {
    let job = GatingJob {
        run: a.run.clone(),
        train: a.train.clone(),
        eval: a.eval.clone(),
        hidden: a.hidden.clone(),
        dropout: a.dropout,
        temperature: a.temperature,
        training: a.training.training(),
    };
    let meta = fit::fit_gating(&job, &crate::device(&a.device)?, progress(a.training.steps))?;
    eprintln!(
        "gate written to {}: train accuracy {:.3}, eval accuracy {}",
        a.run.display(),
        meta.train_accuracy,
        meta.eval_accuracy.map_or("-".into(), |e| format!("{e:.3}"))
    );
    Ok(())
}

/// Prints about twenty of the steps' lines, and every one with a held-out evaluation.
fn progress(steps: usize) -> impl FnMut(&gate::LogLine) {
    let every = (steps / 20).max(1);
    move |l| {
        if l.step % every == 0 || l.eval_accuracy.is_some() {
            eprintln!(
                "step {}: loss {:.4}, accuracy {:.3}{}",
                l.step,
                l.loss,
                l.accuracy,
                l.eval_accuracy
                    .map_or(String::new(), |e| format!(", eval accuracy {e:.3}"))
            );
        }
    }
}

fn run_fit_baseline(a: &FitBaselineArgs) -> Result<()> {
    let meta = baseline::fit_baseline(
        &a.run,
        &a.train,
        a.eval.as_deref(),
        &a.training.training(),
        &crate::device(&a.device)?,
        progress(a.training.steps),
    )?;
    eprintln!(
        "baseline written to {}: train accuracy {:.3}, eval accuracy {}",
        a.run.display(),
        meta.train_accuracy,
        meta.eval_accuracy.map_or("-".into(), |e| format!("{e:.3}"))
    );
    Ok(())
}

fn run_score(a: &ScoreArgs) -> Result<()> {
    let mut m = ArmoModel::load(&a.run, &crate::device(&a.device)?)?;
    m.batch_size = a.batch_size.max(1);
    let lines = model::score_file(&m, &a.input)?;
    let mut text = String::new();
    for l in &lines {
        text += &l.to_string();
        text.push('\n');
    }
    match &a.output {
        Some(path) => {
            // The same files `trainer score` writes, so `evaluator push-scores` takes an
            // ArmoRM's scores as it takes a reward model's.
            crate::run::dir::write_scores(path, &text, lines.len(), &m.dir, &m.hash, &a.input)?;
            eprintln!(
                "scored {} lines with {} (sha256 {}): {}",
                lines.len(),
                a.run.display(),
                &m.hash[..12],
                path.display()
            );
        }
        None => write_stdout(&text)?,
    }
    Ok(())
}

fn write_stdout(text: &str) -> Result<()> {
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(|e| Error::io(Path::new("<stdout>"), e))
}
