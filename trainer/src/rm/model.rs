//! A trained reward model as a scorer: `rm:RUN_DIR` in `[[reward]]` tables and
//! `trainer score --rm RUN_DIR`.
//!
//! [`RewardModel::load`] reads what `trainer rm` wrote to `final/`: `reward_model.json`
//! (base model, rendering, truncation), the adapter (folded into the base weights, since
//! nothing trains them here) or the whole model, and `score.safetensors`. A sample is
//! rendered and truncated exactly as training rendered a pair's response
//! ([`crate::sft::data::tokenize_scored`]) and scored at its last token, in batches, without
//! gradients. The metric is `reward`, higher is better.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::train::{HEAD, last_token_scores};
use crate::error::{Error, Result};
use crate::load::{self, tokenizer::Tokenizer};
use crate::models::CausalLm;
use crate::reward::{RewardSource, Sample};
use crate::sft::data::{Tokenized, tokenize_scored};
use crate::sft::train::collate;

/// `final/reward_model.json`.
#[derive(Debug, Clone, Deserialize)]
struct Meta {
    base_model: PathBuf,
    lora: bool,
    chat: bool,
    max_len: usize,
    max_prompt_len: usize,
}

/// A loaded reward model.
pub struct RewardModel {
    model: CausalLm,
    tokenizer: Tokenizer,
    head: Tensor,
    meta: Meta,
    /// SHA-256 over the head and the adapter (or model) files: which model scored.
    pub hash: String,
    /// The directory it was read from.
    pub dir: PathBuf,
    /// Rows per forward pass.
    pub batch_size: usize,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

impl RewardModel {
    /// Loads a `trainer rm` run directory (or its `final/`) onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let fin = if dir.join("final/reward_model.json").is_file() {
            dir.join("final")
        } else {
            dir.to_path_buf()
        };
        let meta_path = fin.join("reward_model.json");
        if !meta_path.is_file() {
            return Err(Error::config(
                "reward.source",
                format!(
                    "rm:{}: no reward_model.json in it or in its final/: expected a finished \
                     `trainer rm` run directory",
                    dir.display()
                ),
            ));
        }
        let meta: Meta = serde_json::from_slice(&read(&meta_path)?).map_err(|e| Error::Json {
            path: meta_path.clone(),
            source: e,
        })?;
        let weights = if meta.lora {
            fin.join("adapter_model.safetensors")
        } else {
            fin.join("model.safetensors")
        };
        let mut hasher = Sha256::new();
        hasher.update(read(&fin.join("score.safetensors"))?);
        hasher.update(read(&weights)?);
        let hash = format!("{:x}", hasher.finalize());
        let (mut model, tokenizer) = if meta.lora {
            let l = load::load_as(&meta.base_model, false, DType::F32, device)?;
            (l.model, l.tokenizer)
        } else {
            let l = load::load_as(&fin, false, DType::F32, device)?;
            (l.model, l.tokenizer)
        };
        if meta.lora {
            crate::lora::load(&mut model, &fin, &VarMap::new())?;
            crate::lora::merge(&mut model)?;
        }
        model.set_training(false);
        let tokenizer = tokenizer.ok_or_else(|| {
            Error::config(
                "reward.source",
                format!("rm:{}: its base model has no tokenizer", dir.display()),
            )
        })?;
        let head = candle_core::safetensors::load(fin.join("score.safetensors"), device)?
            .remove(HEAD)
            .ok_or_else(|| {
                Error::checkpoint(fin.join("score.safetensors"), format!("no `{HEAD}` tensor"))
            })?;
        Ok(Self {
            model,
            tokenizer,
            head,
            meta,
            hash,
            dir: fin,
            batch_size: 8,
        })
    }

    /// One score per (prompt, response).
    pub fn score_texts(&self, items: &[(&str, &str)]) -> Result<Vec<f64>> {
        let rows: Vec<Tokenized> = items
            .iter()
            .map(|(p, r)| {
                tokenize_scored(
                    p,
                    r,
                    &self.tokenizer,
                    self.meta.chat,
                    self.meta.max_len,
                    self.meta.max_prompt_len,
                )
            })
            .collect::<Result<_>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(self.batch_size.max(1)) {
            let refs: Vec<&Tokenized> = chunk.iter().collect();
            let (inputs, _, _) = collate(&refs, self.tokenizer.pad_id, self.model.device())?;
            let hidden = self.model.forward_hidden(&inputs, None)?.detach();
            let s: Vec<f32> = last_token_scores(&hidden, &refs, &self.head)?.to_vec1()?;
            out.extend(s.into_iter().map(f64::from));
        }
        Ok(out)
    }
}

impl RewardSource for RewardModel {
    fn metrics(&self) -> Vec<(String, bool)> {
        vec![("reward".to_string(), false)]
    }

    fn score(&self, batch: &[Sample]) -> std::result::Result<Vec<Vec<Option<f64>>>, String> {
        let items: Vec<(&str, &str)> = batch
            .iter()
            .map(|s| (s.prompt.as_str(), s.response.as_str()))
            .collect();
        let scores = self.score_texts(&items).map_err(|e| e.to_string())?;
        Ok(scores.into_iter().map(|s| vec![Some(s)]).collect())
    }
}

/// One scored line of a generations file.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredLine {
    /// The line's `id`, when it has one.
    pub id: Option<serde_json::Value>,
    /// The line's prompt, so a reader without ids (the evaluator keys items by id, else
    /// by prompt) can find the item each score belongs to.
    pub prompt: String,
    /// The reward model's score.
    pub score: f64,
}

/// Scores every line `{"id"?, "prompt", "response", ...}` of a JSON Lines file (the
/// evaluator's sample form; other keys are ignored). A malformed line names its file and
/// line, and nothing is scored until the whole file reads.
pub fn score_file(rm: &RewardModel, input: &Path) -> Result<Vec<ScoredLine>> {
    let text = std::fs::read_to_string(input).map_err(|e| Error::io(input, e))?;
    let mut items: Vec<(Option<serde_json::Value>, String, String)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |message: String| Error::Data {
            path: input.to_path_buf(),
            line: i + 1,
            message,
        };
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| {
            bad(format!(
                "not JSON ({e}); expected {{\"prompt\", \"response\", \"id\"?}}"
            ))
        })?;
        let text_of = |key: &str| match v.get(key) {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(bad(format!("`{key}` must be a string, found {other}"))),
            None => Err(bad(format!(
                "missing `{key}`; expected {{\"prompt\", \"response\", \"id\"?}}"
            ))),
        };
        items.push((
            v.get("id").cloned(),
            text_of("prompt")?,
            text_of("response")?,
        ));
    }
    let pairs: Vec<(&str, &str)> = items
        .iter()
        .map(|(_, p, r)| (p.as_str(), r.as_str()))
        .collect();
    let scores = rm.score_texts(&pairs)?;
    Ok(items
        .into_iter()
        .zip(scores)
        .map(|((id, prompt, _), score)| ScoredLine { id, prompt, score })
        .collect())
}
