//! `trainer sweep`: the MORL baseline of Rewarded Soups, one `trainer rl` run per weighting
//! of the rewards, each with the same budget.
//!
//! A weighting is either a [`Mix`] over the config's `[[reward]]` tables, whose weights
//! multiply the tables' own `weight`s (so those can keep putting the rewards on one scale:
//! with two rewards λ gives `(1 − λ)·w₀` and `λ·w₁`), or a Rewarded Soups reward format
//! (`0x0.4 1-0x0.6`) that replaces the `terms` of the config's single reward.
//!
//! Each run is a normal run directory, `OUTPUT_DIR/<label>/`, with the run services'
//! resume: re-running the sweep resumes the run that was stopped and passes over the
//! finished ones. With a push target (the CLI's `push_to`), the runs themselves push nothing; the sweep pushes each
//! run's final eval as system `<name>:<label>` with metadata `sweep`, `lambda` (two
//! rewards), the weights and the steps, so the evaluator's Pareto page draws the sweep as
//! one front. `OUTPUT_DIR/sweep.jsonl` has one line per run: its weighting, steps, training
//! seconds (the sum of its steps' times) and final eval means.

use serde_json::{Value, json};

use super::grid::{self, Mix};
use crate::error::{Error, Result};
use crate::reward::spec::parse_term;
use crate::rl::{self, RlConfig, RlOptions, push};
use crate::run::dir::write_atomic;

/// One point of the sweep.
#[derive(Debug, Clone, PartialEq)]
pub enum Weighting {
    /// Weights over the `[[reward]]` tables.
    Mix(Mix),
    /// A Rewarded Soups reward format for the single reward (`["0x0.4", "1-0x0.6"]`).
    Terms(Vec<String>),
}

impl Weighting {
    /// The run's directory and system label.
    pub fn label(&self) -> String {
        match self {
            Self::Mix(m) => m.label(),
            Self::Terms(t) => format!("terms-{}", t.join("_")),
        }
    }
}

/// Parses a Rewarded Soups reward format: terms separated by spaces (`0x0.4 1-0x0.6`).
pub fn parse_terms(spec: &str) -> std::result::Result<Weighting, String> {
    let terms: Vec<String> = spec.split_whitespace().map(str::to_string).collect();
    if terms.is_empty() {
        return Err("an empty reward format".into());
    }
    for t in &terms {
        parse_term(t)?;
    }
    Ok(Weighting::Terms(terms))
}

/// A finished (or already finished) run of the sweep.
#[derive(Debug, Clone)]
pub struct SweepRun {
    /// Its weighting.
    pub weighting: Weighting,
    /// Its configuration.
    pub cfg: RlConfig,
    /// The run's summary.
    pub summary: rl::RlSummary,
    /// The sum of its steps' times.
    pub train_seconds: f64,
    /// Its final eval's means by reward, when it has eval prompts.
    pub eval: Option<Value>,
    /// The pushed system or what failed, with `push_to`.
    pub pushed: Option<std::result::Result<String, String>>,
}

/// The run of `base` for `weighting`.
pub fn run_config(base: &RlConfig, name: &str, weighting: &Weighting) -> Result<RlConfig> {
    let mut cfg = base.clone();
    let label = weighting.label();
    match weighting {
        Weighting::Mix(mix) => {
            if mix.weights.len() != cfg.reward.len() {
                return Err(Error::config(
                    "weights",
                    format!(
                        "{} weights for {} [[reward]] tables",
                        mix.weights.len(),
                        cfg.reward.len()
                    ),
                ));
            }
            for (r, w) in cfg.reward.iter_mut().zip(&mix.weights) {
                r.weight *= w;
            }
        }
        Weighting::Terms(terms) => {
            let [reward] = &mut cfg.reward[..] else {
                return Err(Error::config(
                    "terms",
                    format!(
                        "a reward format sets the terms of one [[reward]] table; the config \
                         has {}",
                        cfg.reward.len()
                    ),
                ));
            };
            reward.terms = Some(terms.clone());
            reward.metric = None;
        }
    }
    cfg.output_dir = base.output_dir.join(&label);
    cfg.run_name = Some(format!("{name}-{label}"));
    cfg.push_to = None;
    Ok(cfg)
}

/// Runs (or resumes) every point of the sweep in turn; with `target`, pushes each run's
/// final eval there.
pub fn sweep(
    base: &RlConfig,
    name: &str,
    points: &[Weighting],
    target: Option<&push::Target>,
    opts: &RlOptions,
) -> Result<Vec<SweepRun>> {
    if points.is_empty() {
        return Err(Error::config("weights", "give --weights or --terms"));
    }
    // Every run's config is checked before the first one trains.
    let configs: Vec<RlConfig> = points
        .iter()
        .map(|w| {
            let cfg = run_config(base, name, w)?;
            cfg.validate()?;
            Ok(cfg)
        })
        .collect::<Result<_>>()?;
    if let Some(t) = target {
        if t.token.is_empty() {
            return Err(Error::config(
                "push_to",
                "set EVALUATOR_TOKEN to a token of the team",
            ));
        }
        if base.eval_prompts.is_none() {
            return Err(Error::config(
                "push_to",
                "a sweep pushes each run's final eval: set eval_prompts",
            ));
        }
    }
    std::fs::create_dir_all(&base.output_dir).map_err(|e| Error::io(&base.output_dir, e))?;
    let names: Vec<String> = base
        .reward
        .iter()
        .map(|r| {
            r.name
                .clone()
                .or(r.metric.clone())
                .unwrap_or_else(|| r.source.clone())
        })
        .collect();
    let mut runs = Vec::with_capacity(points.len());
    let mut lines = String::new();
    for (weighting, cfg) in points.iter().zip(configs) {
        eprintln!(
            "sweep {name}: {} ({})",
            weighting.label(),
            cfg.output_dir.display()
        );
        let summary = rl::train(&cfg, opts)?;
        let metrics = cfg.output_dir.join(crate::run::dir::METRICS_FILE);
        let (train_seconds, eval) = read_metrics(&metrics, summary.steps)?;
        let pushed = target.map(|t| {
            let label = weighting.label();
            let system = format!("{}:{label}", push::clean_name(name));
            let file = cfg
                .output_dir
                .join(format!("eval/step-{}.jsonl", summary.steps));
            let meta = metadata(name, weighting, &names, &cfg, summary.steps);
            let r = push::push(t, &system, &file, &meta).map(|_| system.clone());
            match &r {
                Ok(_) => eprintln!("pushed {system} to {} (dataset {})", t.url, t.dataset),
                Err(e) => eprintln!("push of {system} failed: {e}"),
            }
            r
        });
        let weights: Vec<f64> = cfg.reward.iter().map(|r| r.weight).collect();
        lines.push_str(
            &json!({"label": weighting.label(), "output_dir": cfg.output_dir, "weights": weights,
                    "terms": match weighting { Weighting::Terms(t) => json!(t), Weighting::Mix(_) => Value::Null },
                    "steps": summary.steps, "train_seconds": train_seconds, "eval": eval})
            .to_string(),
        );
        lines.push('\n');
        // Written after every run, so a stopped sweep still says what it has done.
        write_atomic(&base.output_dir.join("sweep.jsonl"), lines.as_bytes())?;
        runs.push(SweepRun {
            weighting: weighting.clone(),
            cfg,
            summary,
            train_seconds,
            eval,
            pushed,
        });
    }
    Ok(runs)
}

/// The sum of the step times and the eval means at `last` from a run's `metrics.jsonl`.
fn read_metrics(path: &std::path::Path, last: usize) -> Result<(f64, Option<Value>)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let (mut seconds, mut eval) = (0.0, None);
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if let Some(s) = v["time_s"]["step"].as_f64() {
            seconds += s;
        }
        if v["step"].as_u64() == Some(last as u64) && v.get("eval").is_some() {
            eval = Some(v["eval"].clone());
        }
    }
    Ok((seconds, eval))
}

/// A pushed run's metadata (strings, as the service keeps them).
fn metadata(name: &str, w: &Weighting, names: &[String], cfg: &RlConfig, steps: usize) -> Value {
    let weights: serde_json::Map<String, Value> = names
        .iter()
        .zip(&cfg.reward)
        .map(|(n, r)| (n.clone(), json!(r.weight)))
        .collect();
    let mut m = json!({
        "sweep": name,
        "weights": Value::Object(weights).to_string(),
        "steps": steps.to_string(),
        "algorithm": cfg.algorithm.as_str(),
        "trainer": "trainer sweep",
    });
    match w {
        Weighting::Mix(mix) => {
            if let Some(l) = mix.lambda() {
                m["lambda"] = json!(grid::short(l));
            }
        }
        Weighting::Terms(t) => m["terms"] = json!(t.join(" ")),
    }
    m
}
