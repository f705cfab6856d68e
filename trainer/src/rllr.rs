//! `trainer rllr SUBCOMMAND`: RLLR's data steps (the binary only forwards to [`run`]).
//!
//! - `label-pairs`: label-sensitive pairs from a MaRio file ([`crate::data::rllr`]).
//! - `rationale-pairs`: rationale-sensitive pairs, the rationales of a question ranked by the
//!   weighted sum of `[[reward]]` tables (built-in modules, `.wasm` scorers, `rm:`, `armo:`).
//! - `tau`: the cap τ of RLLR's mixed reward, chosen on held-out label pairs
//!   ([`crate::data::rllr::youden_threshold`]).
//!
//! Both write `trainer rm`'s plain pair form `{"id", "prompt", "chosen", "rejected",
//! "margin"?}` atomically and say on stderr what they kept and why the rest was left out.

use std::path::PathBuf;

use crate::data::rllr::{self, BuiltPair};
use crate::error::{Error, Result};
use crate::reward::{Rewards, Sample};

/// The subcommands.
#[derive(clap::Subcommand)]
pub enum RllrCommand {
    /// Label-sensitive pairs: each correct rationale with its gold label (chosen) and with a
    /// seeded wrong label (rejected).
    LabelPairs(LabelPairsArgs),
    /// Rationale-sensitive pairs: per question, its best correct rationale (chosen) against
    /// its worst (rejected), ranked by `--rewards`.
    RationalePairs(RationalePairsArgs),
    /// The cap τ of r = min(r_label, τ) + r_rationale: the label model's threshold that best
    /// separates correct from wrong labels on held-out label pairs (Youden's J). Prints τ
    /// on stdout.
    Tau(TauArgs),
}

/// `trainer rllr`.
#[derive(clap::Args)]
pub struct RllrArgs {
    #[command(subcommand)]
    command: RllrCommand,
}

/// `trainer rllr label-pairs`.
#[derive(clap::Args)]
pub struct LabelPairsArgs {
    /// A MaRio responses file or raw split (one JSON object of records).
    #[arg(long)]
    input: PathBuf,
    /// The pairs file to write (JSON Lines).
    #[arg(long)]
    output: PathBuf,
    /// Seeds the wrong-label draw (with each record's key).
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// `trainer rllr rationale-pairs`.
#[derive(clap::Args)]
pub struct RationalePairsArgs {
    /// A MaRio responses file or raw split (one JSON object of records).
    #[arg(long)]
    input: PathBuf,
    /// `[[reward]]` tables ranking the rationales (weighted sum, as `trainer rl` combines
    /// them); each response is scored with the question as prompt and the gold label as
    /// reference.
    #[arg(long)]
    rewards: PathBuf,
    /// The pairs file to write (JSON Lines).
    #[arg(long)]
    output: PathBuf,
    /// Keep a pair only when best − worst exceeds this.
    #[arg(long, default_value_t = 0.0)]
    min_gap: f64,
    /// Write the gap as each pair's `margin` (for `loss = "margin"` reward models).
    #[arg(long)]
    margin: bool,
    /// Samples per reward call.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
}

/// `trainer rllr tau`.
#[derive(clap::Args)]
pub struct TauArgs {
    /// The label-sensitive reward model (a `trainer rm` run directory).
    #[arg(long)]
    rm: PathBuf,
    /// Held-out label pairs (`label-pairs` of a dev split): chosen correct, rejected wrong.
    #[arg(long)]
    pairs: PathBuf,
    /// Rows per forward pass.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// Also write `{"tau", "tpr", "fpr", "pairwise_accuracy", "pairs", "rm", "sha256"}` here.
    #[arg(long)]
    output: Option<PathBuf>,
    /// cpu, or cuda / cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// Runs one subcommand.
pub fn run(args: RllrArgs) -> Result<()> {
    match args.command {
        RllrCommand::LabelPairs(a) => label_pairs(&a),
        RllrCommand::RationalePairs(a) => rationale_pairs(&a),
        RllrCommand::Tau(a) => tau(&a),
    }
}

fn tau(a: &TauArgs) -> Result<()> {
    let rm = crate::rm::RewardModel::load(&a.rm, &crate::device(&a.device)?)?;
    let file = crate::data::pairs::read(&a.pairs)?;
    let mut chosen = Vec::new();
    let mut rejected = Vec::new();
    for p in &file.pairs {
        let crate::data::pairs::PairPrompt::Text(prompt) = &p.prompt else {
            return Err(Error::Data {
                path: a.pairs.clone(),
                line: p.line,
                message: "a chat prompt; label pairs are plain text {\"prompt\", \"chosen\", \
                          \"rejected\"} (`trainer rllr label-pairs`)"
                    .into(),
            });
        };
        chosen.push((prompt.as_str(), p.chosen.as_str()));
        rejected.push((prompt.as_str(), p.rejected.as_str()));
    }
    let score = |items: &[(&str, &str)]| -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(items.len());
        for chunk in items.chunks(a.batch_size.max(1)) {
            out.extend(rm.score_texts(chunk)?);
        }
        Ok(out)
    };
    let (c, r) = (score(&chosen)?, score(&rejected)?);
    let t = rllr::youden_threshold(&c, &r).ok_or_else(|| Error::Data {
        path: a.pairs.clone(),
        line: 0,
        message: "a non-finite reward-model score: no threshold".into(),
    })?;
    let pairwise = c.iter().zip(&r).filter(|(c, r)| c > r).count() as f64 / c.len() as f64;
    eprintln!(
        "τ = {} on {} pairs of {}: {:.1}% of correct and {:.1}% of wrong labels score ≥ τ \
         (pairwise accuracy {:.3})",
        t.tau,
        c.len(),
        a.pairs.display(),
        100.0 * t.tpr,
        100.0 * t.fpr,
        pairwise
    );
    if let Some(path) = &a.output {
        let v = serde_json::json!({
            "tau": if t.tau.is_finite() { serde_json::json!(t.tau) } else { serde_json::json!("inf") },
            "tpr": t.tpr, "fpr": t.fpr, "pairwise_accuracy": pairwise, "pairs": c.len(),
            "rm": a.rm, "sha256": rm.hash,
        });
        crate::run::dir::write_atomic(path, v.to_string().as_bytes())?;
    }
    println!("{}", t.tau);
    Ok(())
}

fn label_pairs(a: &LabelPairsArgs) -> Result<()> {
    let records = rllr::read(&a.input)?;
    let pairs = rllr::label_pairs(&records, a.seed).ok_or_else(|| Error::Data {
        path: a.input.clone(),
        line: 0,
        message: format!(
            "one gold label in the whole file ({:?}): no wrong label to swap in",
            records.labels
        ),
    })?;
    let summary = format!(
        "{} label pairs from {} correct rationales of {} (labels {:?}; left out: {} wrong \
         predictions, {} empty, {} repeated rationales)",
        pairs.len(),
        records.rationales.len(),
        a.input.display(),
        records.labels,
        records.wrong_prediction,
        records.empty,
        records.rationales.len() - pairs.len(),
    );
    write(&a.output, &pairs, &summary)
}

fn rationale_pairs(a: &RationalePairsArgs) -> Result<()> {
    if !a.min_gap.is_finite() || a.min_gap < 0.0 {
        return Err(Error::InvalidArgument(format!(
            "flag --min-gap: expected a finite number ≥ 0, found {}",
            a.min_gap
        )));
    }
    let specs = crate::reward::read_tables("--rewards", &a.rewards)?;
    let rewards = Rewards::load(&specs, reward_host::Limits::default())?;
    let weights = rewards.weights();
    let records = rllr::read(&a.input)?;
    let groups = rllr::groups(&records);
    // One flat list of samples, scored in batches, then cut back into the groups.
    let samples: Vec<Sample> = groups
        .iter()
        .flat_map(|g| {
            g.rationales.iter().map(|r| {
                Sample::new(g.question, crate::sft::data::mario_completion(r, g.gold))
                    .with_reference(g.gold)
            })
        })
        .collect();
    let mut totals = Vec::with_capacity(samples.len());
    for chunk in samples.chunks(a.batch_size.max(1)) {
        let scored = rewards.score(chunk)?;
        totals.extend(crate::rl::advantage::combined_rewards(
            &scored.value,
            &weights,
        )?);
    }
    let mut pairs = Vec::new();
    let mut start = 0;
    for g in &groups {
        let scores = &totals[start..start + g.rationales.len()];
        start += g.rationales.len();
        pairs.extend(rllr::rationale_pair(g, scores, a.min_gap, a.margin));
    }
    let summary = format!(
        "{} rationale pairs from the {} questions of {} with two or more distinct correct \
         rationales ({} within --min-gap {} or unscored; records left out: {} wrong \
         predictions, {} empty)",
        pairs.len(),
        groups.len(),
        a.input.display(),
        groups.len() - pairs.len(),
        a.min_gap,
        records.wrong_prediction,
        records.empty,
    );
    write(&a.output, &pairs, &summary)
}

/// Writes the pairs and says what was kept; with none kept, writes nothing and says why.
fn write(path: &std::path::Path, pairs: &[BuiltPair], summary: &str) -> Result<()> {
    if pairs.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "nothing written to {}: {summary}",
            path.display()
        )));
    }
    let mut text = String::new();
    for p in pairs {
        text += &serde_json::to_string(p).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        text.push('\n');
    }
    crate::run::dir::write_atomic(path, text.as_bytes())?;
    eprintln!("{summary}: {}", path.display());
    Ok(())
}
