//! What an RL run writes besides its metrics: `rollouts.jsonl` (every sampled completion
//! with its rewards and advantage) and `eval/step-N.jsonl` (greedy completions of the eval
//! prompts, in the evaluator's canonical generation form, scored by the same rewards).
//!
//! A `rollouts.jsonl` line: `{"step", "prompt_id", "completion", "tokens", "truncated",
//! "rewards": {name: transformed}, "rewards_raw": {name: raw}, "reward": combined,
//! "advantage"}`. `reward` is Σ weight·value over the rewards that are not `None` (null when
//! all are); with the run's algorithm settings anyone can recompute the advantages from it.
//!
//! An eval line: `{"id"?, "prompt", "response", "reference"?, "fields"?}`, exactly the
//! evaluator's canonical form (which refuses other keys), with the ids the prompt file gave
//! (none: the evaluator keys the item by its prompt, as it keys MaRio's files), so
//! `evaluator push-generations` aligns checkpoints with each other and with systems pushed
//! from other files. The trainer's scores of the same lines go beside it, in the same
//! order, `eval/step-N.rewards.jsonl`: `{"id", "rewards", "rewards_raw"}` (`id` the
//! prompt's, given or positional).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::config::RlConfig;
use super::rollout::{self, Rollout};
use crate::data::prompts::Prompt;
use crate::error::{Error, Result};
use crate::generate::GenerationConfig;
use crate::load::tokenizer::Tokenizer;
use crate::models::CausalLm;
use crate::reward::{Rewards, Scored};
use crate::run::Metrics;

/// The mean of each reward's non-`None` values (`None` when it has none).
pub fn means(values: &[Vec<Option<f64>>]) -> Vec<Option<f64>> {
    let k = values.first().map_or(0, Vec::len);
    (0..k)
        .map(|j| {
            let v: Vec<f64> = values.iter().filter_map(|r| r[j]).collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        })
        .collect()
}

fn named(names: &[String], values: &[Option<f64>]) -> Map<String, Value> {
    names
        .iter()
        .cloned()
        .zip(values.iter().map(|v| json!(v)))
        .collect()
}

/// `rollouts.jsonl`, kept to one history across resumes like the metrics.
pub struct RolloutLog {
    file: Metrics,
    names: Vec<String>,
}

impl RolloutLog {
    /// Opens the log of the run in `dir` that starts after step `start`.
    pub fn open(dir: &Path, start: usize, names: &[String]) -> Result<Self> {
        let (file, _) = Metrics::open(&dir.join("rollouts.jsonl"), start)?;
        Ok(Self {
            file,
            names: names.to_vec(),
        })
    }

    /// One line per rollout of `step`.
    pub fn write(
        &mut self,
        step: usize,
        rollouts: &[Rollout],
        prompts: &[Prompt],
        scored: &Scored,
        advantages: &[f64],
        weights: &[f64],
    ) -> Result<()> {
        for (i, r) in rollouts.iter().enumerate() {
            let combined = scored.value[i]
                .iter()
                .zip(weights)
                .filter_map(|(v, w)| v.map(|v| v * w))
                .fold(None, |acc: Option<f64>, x| Some(acc.unwrap_or(0.0) + x));
            self.file.write(&json!({
                "step": step, "prompt_id": prompts[r.prompt].id, "completion": r.text,
                "tokens": r.tokens.len(), "truncated": r.truncated,
                "rewards": named(&self.names, &scored.value[i]),
                "rewards_raw": named(&self.names, &scored.raw[i]),
                "reward": combined, "advantage": advantages[i],
            }))?;
        }
        Ok(())
    }
}

/// The periodic greedy eval.
pub struct Evaluator {
    dir: PathBuf,
    prompts: Vec<Prompt>,
    format: rollout::PromptFormat,
    max_new_tokens: usize,
    stop: Vec<String>,
    batch: usize,
}

impl Evaluator {
    /// Evaluates `prompts` into `run_dir/eval/`.
    pub fn new(run_dir: &Path, prompts: Vec<Prompt>, cfg: &RlConfig) -> Self {
        Self::into_dir(run_dir.join("eval"), prompts, cfg)
    }

    /// Evaluates `prompts` with `cfg`'s prompt format and sampling limits into `dir`.
    pub fn into_dir(dir: PathBuf, prompts: Vec<Prompt>, cfg: &RlConfig) -> Self {
        Self {
            dir,
            prompts,
            format: cfg.prompt_format(),
            max_new_tokens: cfg.max_new_tokens,
            stop: cfg.stop.clone(),
            batch: (cfg.prompts_per_step * cfg.num_generations).max(1),
        }
    }

    /// Generates greedily for every eval prompt, scores, writes `eval/step-N.jsonl` and
    /// returns the metrics line (`{"step", "eval": {name: mean}, "eval_reward"}`).
    pub fn run(
        &self,
        step: usize,
        model: &CausalLm,
        tok: &Tokenizer,
        rewards: &Rewards,
    ) -> Result<Value> {
        let means = self.write(&format!("step-{step}"), model, tok, rewards)?;
        let weights = rewards.weights();
        let eval_reward: f64 = means
            .iter()
            .zip(&weights)
            .filter_map(|(m, w)| m.map(|m| m * w))
            .sum();
        Ok(
            json!({"step": step, "eval": named(&rewards.names(), &means), "eval_reward": eval_reward,
                  "eval_file": format!("eval/step-{step}.jsonl")}),
        )
    }

    /// Generates greedily for every eval prompt, scores, writes `NAME.jsonl` and
    /// `NAME.rewards.jsonl` in the eval directory, and returns each reward's mean.
    pub fn write(
        &self,
        name: &str,
        model: &CausalLm,
        tok: &Tokenizer,
        rewards: &Rewards,
    ) -> Result<Vec<Option<f64>>> {
        let gen_cfg = GenerationConfig {
            max_new_tokens: self.max_new_tokens,
            temperature: 0.0,
            stop_strings: self.stop.clone(),
            ..GenerationConfig::default()
        };
        let mut texts = Vec::with_capacity(self.prompts.len());
        for chunk in self.prompts.chunks(self.batch) {
            let ids: Vec<(usize, Vec<u32>)> = chunk
                .iter()
                .enumerate()
                .map(|(i, p)| Ok((i, rollout::encode_prompt(tok, p, &self.format)?)))
                .collect::<Result<_>>()?;
            for r in rollout::sample(model, tok, &ids, 1, &gen_cfg)? {
                texts.push(r.text);
            }
        }
        let samples: Vec<_> = self
            .prompts
            .iter()
            .zip(&texts)
            .map(|(p, t)| rollout::reward_sample(p, t))
            .collect();
        let scored = rewards.score(&samples)?;
        let names = rewards.names();
        let (mut out, mut scores) = (String::new(), String::new());
        for (i, p) in self.prompts.iter().enumerate() {
            let score = json!({"id": p.id, "rewards": named(&names, &scored.value[i]),
                "rewards_raw": named(&names, &scored.raw[i])});
            scores.push_str(&score.to_string());
            scores.push('\n');
            let mut line = match p.given_id {
                true => json!({"id": p.id, "prompt": p.text, "response": texts[i]}),
                false => json!({"prompt": p.text, "response": texts[i]}),
            };
            if let Some(r) = &p.reference {
                line["reference"] = json!(r);
            }
            if !p.fields.is_empty() {
                line["fields"] = Value::Object(
                    p.fields
                        .iter()
                        .map(|(k, v)| (k.clone(), json!(v)))
                        .collect(),
                );
            }
            out.push_str(&line.to_string());
            out.push('\n');
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let write = |name: String, text: &str| {
            crate::run::dir::write_atomic(&self.dir.join(name), text.as_bytes())
        };
        write(format!("{name}.rewards.jsonl"), &scores)?;
        write(format!("{name}.jsonl"), &out)?;
        Ok(means(&scored.value))
    }

    /// The file [`Evaluator::write`] writes the generations of `name` to.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.jsonl"))
    }
}

/// One line for the terminal: `eval at step N: reward R (name m, ...)`.
pub fn describe(line: &Value) -> String {
    let parts: Vec<String> = line["eval"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    format!(
                        "{k} {}",
                        v.as_f64().map_or("-".into(), |v| format!("{v:.3}"))
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    format!(
        "eval at step {}: reward {:.3} ({})",
        line["step"],
        line["eval_reward"].as_f64().unwrap_or(f64::NAN),
        parts.join(", ")
    )
}
