//! `trainer soup`: Rewarded Soups' weight interpolation, and `trainer sweep`: its baseline,
//! one RL run per weighting of the rewards (MORL).
//!
//! Rewarded Soups (Ramé et al., 2023) fine-tunes one model per reward and then mixes the
//! weights, θ_λ = (1 − λ)·θ_A + λ·θ_B, tracing a front of trade-offs for the cost of N
//! trainings instead of one per trade-off. Here:
//! - [`grid`]: the weightings (`0:1:0.1`, `uniform`, `simplex:0.25`, explicit vectors);
//! - [`ingredient`]: what goes in (a run directory, an adapter or a model directory), the
//!   checks that make two of them mixable (base, LoRA rank, alpha and targets, tensor names
//!   and shapes), and the interpolation itself;
//! - [`soup()`]: writes one adapter (or model) directory per weighting, and
//!   with an eval set generates greedily with each, scores with the rewards' modules,
//!   writes canonical generations and pushes them to an evaluation service;
//! - [`sweep`]: the MORL baseline over a `trainer rl` config.
//!
//! For adapters the A and B matrices are interpolated separately, as the seed does (not
//! the products B·A); full fine-tunes go through the same code path with every tensor.
//!
//! A soup directory:
//! ```text
//! OUT/soup.json                  the ingredients, base and weightings
//! OUT/lambda-0.3/                adapter_model.safetensors + adapter_config.json
//!                                (or config.json + model.safetensors + tokenizer.json)
//! OUT/lambda-0.3/mix.json        this weighting and its ingredients
//! OUT/eval/lambda-0.3.jsonl      greedy generations (canonical form), with --eval
//! OUT/eval/lambda-0.3.rewards.jsonl
//! OUT/eval.jsonl                 one line per weighting: its rewards' means
//! ```
//! A mix is a pure function of its ingredients, so re-running a soup rewrites the same
//! files; every file is written through a temporary file and a rename.

pub mod grid;
pub mod ingredient;
pub mod sweep;

use std::path::{Path, PathBuf};

use candle_nn::VarMap;
use serde_json::{Value, json};

pub use grid::Mix;
pub use ingredient::{Ingredient, Kind};

use crate::data::prompts;
use crate::error::{Error, Result};
use crate::load;
use crate::reward::{RewardSpec, Rewards};
use crate::rl::eval::Evaluator;
use crate::rl::{RlConfig, push};
use crate::run::dir::write_atomic;

/// What `trainer soup` is asked to do.
#[derive(Debug, Clone)]
pub struct SoupOptions {
    /// The ingredients, in the order the weights refer to.
    pub inputs: Vec<PathBuf>,
    /// The weightings.
    pub mixes: Vec<Mix>,
    /// Where the mixes go.
    pub output_dir: PathBuf,
    /// The base model, when no run records it (LoRA only).
    pub model: Option<PathBuf>,
    /// Prompts to generate for with each mix.
    pub eval: Option<PathBuf>,
    /// Only the first N eval prompts (0: all).
    pub eval_limit: usize,
    /// The rewards that score the eval (default: the ingredients' runs' rewards).
    pub rewards: Option<Vec<RewardSpec>>,
    /// Longest generation (default: the first RL run's `max_new_tokens`).
    pub max_new_tokens: Option<usize>,
    /// An evaluation service, team token and dataset to push each mix's generations to.
    pub push: Option<push::Target>,
    /// The sweep's name: systems are `<name>:lambda-0.3`, metadata `sweep = <name>`.
    pub name: String,
    /// `cpu` or `cuda[:N]`.
    pub device: String,
}

/// One written mix.
#[derive(Debug, Clone)]
pub struct Written {
    /// The weighting.
    pub mix: Mix,
    /// Its adapter (or model) directory.
    pub dir: PathBuf,
    /// Each reward's mean over the eval prompts, with `--eval`.
    pub means: Vec<(String, Option<f64>)>,
    /// The service's answer or what failed, with `--push-to`.
    pub pushed: Option<std::result::Result<String, String>>,
}

/// The rewards of the ingredients' runs, each once (by source, metric and terms).
fn union_of_rewards(ingredients: &[Ingredient]) -> Vec<RewardSpec> {
    let mut out: Vec<RewardSpec> = Vec::new();
    for spec in ingredients
        .iter()
        .filter_map(|i| i.rl.as_ref())
        .flat_map(|c| &c.reward)
    {
        let same = |o: &RewardSpec| {
            o.source == spec.source && o.metric == spec.metric && o.terms == spec.terms
        };
        if !out.iter().any(same) {
            out.push(spec.clone());
        }
    }
    out
}

/// Builds every mix of `opts` and, with an eval set, generates, scores and pushes each.
pub fn soup(opts: &SoupOptions) -> Result<Vec<Written>> {
    if opts.inputs.len() < 2 {
        return Err(Error::config(
            "adapters",
            "a soup needs at least two ingredients",
        ));
    }
    let ingredients: Vec<Ingredient> = opts
        .inputs
        .iter()
        .map(|p| ingredient::resolve(p))
        .collect::<Result<_>>()?;
    let base = ingredient::check(&ingredients, opts.model.as_deref())?;
    if let Some(m) = opts
        .mixes
        .iter()
        .find(|m| m.weights.len() != ingredients.len())
    {
        return Err(Error::config(
            "lambdas",
            format!(
                "{} weights for {} ingredients",
                m.weights.len(),
                ingredients.len()
            ),
        ));
    }
    if opts.push.is_some() && opts.eval.is_none() {
        return Err(Error::config(
            "push_to",
            "a soup pushes each mix's eval generations: give --eval PROMPTS",
        ));
    }
    // Everything the eval needs is checked before anything is written.
    let eval = match &opts.eval {
        Some(path) => Some(EvalPlan::new(path, opts, &ingredients)?),
        None => None,
    };
    std::fs::create_dir_all(&opts.output_dir).map_err(|e| Error::io(&opts.output_dir, e))?;
    let names: Vec<String> = ingredients.iter().map(Ingredient::name).collect();
    let summary = json!({
        "ingredients": ingredients.iter().map(|i| i.given.display().to_string()).collect::<Vec<_>>(),
        "kind": match &ingredients[0].kind { Kind::Lora(_) => "lora", Kind::Full(_) => "full" },
        "base": base.as_ref().map(|b| b.display().to_string()),
        "mixes": opts.mixes.iter().map(|m| json!({"label": m.label(), "weights": m.weights})).collect::<Vec<_>>(),
    });
    write_json(&opts.output_dir.join("soup.json"), &summary)?;
    let mut written = Vec::with_capacity(opts.mixes.len());
    for mix in &opts.mixes {
        let dir = opts.output_dir.join(mix.label());
        write_mix(&ingredients, mix, &dir)?;
        write_json(
            &dir.join("mix.json"),
            &json!({"weights": mix.weights, "lambda": mix.lambda(), "ingredients": names}),
        )?;
        written.push(Written {
            mix: mix.clone(),
            dir,
            means: Vec::new(),
            pushed: None,
        });
    }
    if let Some(plan) = eval {
        plan.run(opts, &ingredients, base.as_deref(), &names, &mut written)?;
    }
    Ok(written)
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        source: e,
    })?;
    write_atomic(path, text.as_bytes())
}

/// Writes one mix: its tensors and the files that make the directory loadable.
fn write_mix(ingredients: &[Ingredient], mix: &Mix, dir: &Path) -> Result<()> {
    let tensors = ingredient::interpolate(ingredients, &mix.weights)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let first = &ingredients[0];
    let weights_file = match &first.kind {
        Kind::Lora(_) => "adapter_model.safetensors",
        Kind::Full(_) => "model.safetensors",
    };
    let tmp = dir.join(format!(".tmp-{weights_file}"));
    candle_core::safetensors::save(&tensors, &tmp)?;
    std::fs::rename(&tmp, dir.join(weights_file)).map_err(|e| Error::io(dir, e))?;
    // The config (and, for a model, its tokenizer) are the first ingredient's: the check
    // made them equal where it matters.
    let companions: &[&str] = match &first.kind {
        Kind::Lora(_) => &["adapter_config.json"],
        Kind::Full(_) => &[
            "config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "generation_config.json",
            "special_tokens_map.json",
        ],
    };
    for name in companions {
        let from = first.weights_dir.join(name);
        if from.is_file() {
            let bytes = std::fs::read(&from).map_err(|e| Error::io(&from, e))?;
            write_atomic(&dir.join(name), &bytes)?;
        }
    }
    Ok(())
}

/// The eval of every mix: prompts, rewards and generation settings, resolved up front.
struct EvalPlan {
    prompts: Vec<prompts::Prompt>,
    specs: Vec<RewardSpec>,
    cfg: RlConfig,
    target: Option<push::Target>,
}

impl EvalPlan {
    fn new(path: &Path, opts: &SoupOptions, ingredients: &[Ingredient]) -> Result<Self> {
        let mut prompts = prompts::read(path)?;
        if opts.eval_limit > 0 {
            prompts.truncate(opts.eval_limit);
        }
        // The mixes are evaluated as their runs evaluated themselves: the first RL run's
        // prompt format, stop strings and length.
        let mut cfg = ingredients
            .iter()
            .find_map(|i| i.rl.clone())
            .ok_or_else(|| {
                Error::config(
                    "eval",
                    "the eval takes its prompt format from an RL run: give run directories \
                     made by `trainer rl`",
                )
            })?;
        if let Some(n) = opts.max_new_tokens {
            cfg.max_new_tokens = n;
        }
        let specs = match &opts.rewards {
            Some(s) => s.clone(),
            None => union_of_rewards(ingredients),
        };
        // Loading checks every source and metric now, not after the mixes are written.
        Rewards::load(&specs, reward_host::Limits::default())?;
        if opts.push.as_ref().is_some_and(|t| t.token.is_empty()) {
            return Err(Error::config(
                "push_to",
                "set EVALUATOR_TOKEN to a token of the team",
            ));
        }
        let target = opts.push.clone();
        Ok(Self {
            prompts,
            specs,
            cfg,
            target,
        })
    }

    fn run(
        self,
        opts: &SoupOptions,
        ingredients: &[Ingredient],
        base: Option<&Path>,
        names: &[String],
        written: &mut [Written],
    ) -> Result<()> {
        let device = crate::device(&opts.device)?;
        let rewards = Rewards::load(&self.specs, reward_host::Limits::default())?;
        let reward_names = rewards.names();
        let evaluator = Evaluator::into_dir(opts.output_dir.join("eval"), self.prompts, &self.cfg);
        let dtype = self.cfg.dtype.dtype();
        // LoRA: the base is loaded once and each mix's adapters replace the previous ones.
        let mut shared = match (&ingredients[0].kind, base) {
            (Kind::Lora(_), Some(b)) => Some(load::load_as(b, false, dtype, &device)?),
            _ => None,
        };
        let mut lines = String::new();
        for w in written.iter_mut() {
            let label = w.mix.label();
            let mut own;
            let loaded = match shared.as_mut() {
                Some(l) => {
                    crate::lora::load(&mut l.model, &w.dir, &VarMap::new())?;
                    l
                }
                None => {
                    own = load::load_as(&w.dir, false, dtype, &device)?;
                    &mut own
                }
            };
            let tok = loaded
                .tokenizer
                .as_ref()
                .ok_or_else(|| Error::checkpoint(&w.dir, "no tokenizer"))?;
            let means = evaluator.write(&label, &loaded.model, tok, &rewards)?;
            w.means = reward_names
                .iter()
                .cloned()
                .zip(means.iter().copied())
                .collect();
            eprintln!("{}", describe(&label, &w.means));
            lines.push_str(
                &json!({"label": label, "weights": w.mix.weights, "lambda": w.mix.lambda(),
                        "eval": w.means.iter().map(|(n, m)| (n.clone(), json!(m))).collect::<serde_json::Map<_, _>>()})
                .to_string(),
            );
            lines.push('\n');
            if let Some(target) = &self.target {
                let system = format!("{}:{label}", push::clean_name(&opts.name));
                let metadata = metadata(&opts.name, &w.mix, names);
                let result = push::push(target, &system, &evaluator.file(&label), &metadata)
                    .map(|_| system.clone());
                if let Err(e) = &result {
                    eprintln!("push of {system} failed: {e}");
                }
                w.pushed = Some(result);
            }
        }
        write_atomic(&opts.output_dir.join("eval.jsonl"), lines.as_bytes())
    }
}

/// The metadata a pushed mix carries: the sweep's name, λ (two ingredients) or the weights,
/// and the ingredients, as strings (the service's metadata is text).
pub fn metadata(sweep: &str, mix: &Mix, ingredients: &[String]) -> Value {
    let mut m = json!({
        "sweep": sweep,
        "weights": mix.weights.iter().map(|w| grid::short(*w)).collect::<Vec<_>>().join(","),
        "soup_of": ingredients.join(","),
        "trainer": "trainer soup",
    });
    if let Some(l) = mix.lambda() {
        m["lambda"] = json!(grid::short(l));
    }
    m
}

/// `lambda-0.3: rougeL 0.213, words -31.500`.
fn describe(label: &str, means: &[(String, Option<f64>)]) -> String {
    let parts: Vec<String> = means
        .iter()
        .map(|(n, m)| format!("{n} {}", m.map_or("-".into(), |m| format!("{m:.3}"))))
        .collect();
    format!("{label}: {}", parts.join(", "))
}
