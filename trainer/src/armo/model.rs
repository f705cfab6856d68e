//! A finished ArmoRM run as a scorer: `trainer armo score` and the `armo:RUN_DIR` reward
//! source of `trainer rl`.
//!
//! [`ArmoModel::load`] reads the backbone named in `probes.json` (rendering as the probes'
//! embeddings were rendered), the probes, the debiasing and the gate, all onto one device.
//! A sample is one forward pass without gradients: the response's last-token embedding
//! gives the raw attribute rewards `r = h·Wᵀ`, debiased `r̃ = r·Tᵀ`; the prompt's
//! embedding gives the gate weights `g`; the score is Σ_k g_k·r̃_k.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::embed::{Backbone, read_samples};
use super::fit::{self, GatingMeta, ProbesMeta};
use super::gate::Gate;
use crate::error::{Error, Result};
use crate::reward::{RewardSource, Sample};

/// A loaded ArmoRM.
pub struct ArmoModel {
    backbone: Backbone,
    /// The attributes, in the probes' order.
    pub attributes: Vec<String>,
    weight: Tensor,
    debias: Tensor,
    gate: Gate,
    /// SHA-256 over the probes, the debiasing and the gate: which model scored.
    pub hash: String,
    /// The run directory.
    pub dir: PathBuf,
    /// Rows per forward pass.
    pub batch_size: usize,
}

/// One sample's scores.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmoScore {
    /// The probes' rewards `h·Wᵀ`, per attribute.
    pub raw: Vec<f64>,
    /// The debiased rewards the score combines, per attribute.
    pub rewards: Vec<f64>,
    /// The gate's weights, per attribute.
    pub gate: Vec<f64>,
    /// Σ_k gate_k·rewards_k.
    pub score: f64,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

impl ArmoModel {
    /// Loads a run directory that `fit-probes`, `debias` and `fit-gating` have written.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let probes: ProbesMeta = fit::read_meta(dir, fit::PROBES_META)?;
        let (debias, _) = fit::read_debias(dir, &probes, device)?;
        let gating: GatingMeta = fit::read_meta(dir, fit::GATING_META)?;
        let weight = fit::read_probes(dir, device)?;
        let gate = Gate::load(gating.config, &dir.join(fit::GATING_FILE), device)?;
        let mut hasher = Sha256::new();
        for name in [
            fit::PROBES_FILE,
            fit::PROBES_META,
            fit::DEBIAS_META,
            fit::GATING_FILE,
            fit::GATING_META,
        ] {
            hasher.update(read(&dir.join(name))?);
        }
        let backbone = Backbone::load(probes.backbone.clone(), device)?;
        if backbone.hidden_size() != weight.dims()[1] {
            return Err(Error::checkpoint(
                dir.join(fit::PROBES_FILE),
                format!(
                    "probes of width {} for a backbone of hidden size {}",
                    weight.dims()[1],
                    backbone.hidden_size()
                ),
            ));
        }
        Ok(Self {
            backbone,
            attributes: probes.attributes.into_iter().map(|a| a.name).collect(),
            weight,
            debias,
            gate,
            hash: format!("{:x}", hasher.finalize()),
            dir: dir.to_path_buf(),
            batch_size: 8,
        })
    }

    /// Scores from embeddings: prompts `(n, d)`, responses `(n, d)`.
    pub fn score_embeddings(&self, prompt: &Tensor, response: &Tensor) -> Result<Vec<ArmoScore>> {
        let dev = self.weight.device();
        let (raw, rewards) = fit::rewards(&response.to_device(dev)?, &self.weight, &self.debias)?;
        let g = self.gate.forward(&prompt.to_device(dev)?, None)?;
        let score = Gate::combine(&g, &rewards)?;
        let rows = |t: &Tensor| -> Result<Vec<Vec<f64>>> {
            Ok(t.to_dtype(candle_core::DType::F64)?.to_vec2()?)
        };
        let (raw, rewards, g) = (rows(&raw)?, rows(&rewards)?, rows(&g)?);
        let score: Vec<f64> = score.to_dtype(candle_core::DType::F64)?.to_vec1()?;
        Ok(raw
            .into_iter()
            .zip(rewards)
            .zip(g)
            .zip(score)
            .map(|(((raw, rewards), gate), score)| ArmoScore {
                raw,
                rewards,
                gate,
                score,
            })
            .collect())
    }

    /// Scores of `(prompt, response)` texts.
    pub fn score_texts(&self, items: &[(&str, &str)]) -> Result<Vec<ArmoScore>> {
        let mut out = Vec::with_capacity(items.len());
        // Bounded chunks keep the embeddings of a large file out of memory at once.
        for chunk in items.chunks(self.batch_size.max(1) * 16) {
            let (p, r) = self.backbone.embed_texts(chunk, self.batch_size)?;
            out.extend(self.score_embeddings(&p, &r)?);
        }
        Ok(out)
    }

    /// The position of attribute `name`, or an error listing them.
    pub fn attribute(&self, name: &str) -> Result<usize> {
        self.attributes
            .iter()
            .position(|a| a == name)
            .ok_or_else(|| {
                Error::config(
                    "reward.source",
                    format!(
                        "armo:{}#{name}: no attribute `{name}` (attributes: {})",
                        self.dir.display(),
                        self.attributes.join(", ")
                    ),
                )
            })
    }
}

/// `armo:RUN_DIR` (the gated score, metric `score`) or `armo:RUN_DIR#ATTRIBUTE` (that
/// attribute's debiased reward, metric named after it) as a reward source; higher is
/// better.
pub struct ArmoSource {
    model: ArmoModel,
    /// `None`: the score; else the attribute's index.
    attribute: Option<usize>,
}

impl ArmoSource {
    /// Loads the run in `dir` onto `device`, reading `attribute` (or the score).
    pub fn load(dir: &Path, attribute: Option<&str>, device: &Device) -> Result<Self> {
        let model = ArmoModel::load(dir, device)
            .map_err(|e| Error::config("reward.source", format!("armo:{}: {e}", dir.display())))?;
        let attribute = attribute.map(|a| model.attribute(a)).transpose()?;
        Ok(Self { model, attribute })
    }
}

impl RewardSource for ArmoSource {
    fn metrics(&self) -> Vec<(String, bool)> {
        let name = match self.attribute {
            Some(i) => self.model.attributes[i].clone(),
            None => "score".to_string(),
        };
        vec![(name, false)]
    }

    fn score(&self, batch: &[Sample]) -> std::result::Result<Vec<Vec<Option<f64>>>, String> {
        let items: Vec<(&str, &str)> = batch
            .iter()
            .map(|s| (s.prompt.as_str(), s.response.as_str()))
            .collect();
        let scores = self.model.score_texts(&items).map_err(|e| e.to_string())?;
        Ok(scores
            .into_iter()
            .map(|s| {
                vec![Some(match self.attribute {
                    Some(i) => s.rewards[i],
                    None => s.score,
                })]
            })
            .collect())
    }
}

/// Scores every line `{"id"?, "prompt", "response", ...}` of `input`: one JSON object per
/// line `{"id"?, "prompt", "score", "rewards": {attr: r̃}, "raw_rewards": {attr: r},
/// "gate": {attr: g}}`, in order.
pub fn score_file(model: &ArmoModel, input: &Path) -> Result<Vec<Value>> {
    let lines = read_samples(input)?;
    let items: Vec<(&str, &str)> = lines
        .iter()
        .map(|l| (l.prompt.as_str(), l.response.as_str()))
        .collect();
    let scores = model.score_texts(&items)?;
    let by_name = |v: &[f64]| -> Value {
        Value::Object(
            model
                .attributes
                .iter()
                .cloned()
                .zip(v.iter().map(|x| Value::from(*x)))
                .collect(),
        )
    };
    Ok(lines
        .iter()
        .zip(scores)
        .map(|(l, s)| {
            let mut o = serde_json::Map::new();
            if let Some(id) = &l.id {
                o.insert("id".into(), id.clone());
            }
            o.insert("prompt".into(), Value::from(l.prompt.clone()));
            o.insert("score".into(), Value::from(s.score));
            o.insert("rewards".into(), by_name(&s.rewards));
            o.insert("raw_rewards".into(), by_name(&s.raw));
            o.insert("gate".into(), by_name(&s.gate));
            Value::Object(o)
        })
        .collect())
}
