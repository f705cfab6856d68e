//! The reward-model objective on SFT's loop.
//!
//! The model is the policy's backbone with a bias-free linear score head, `score.weight`
//! `(1, hidden)` (the layout of HF's `*ForSequenceClassification` with one label), read at
//! each row's last token: the end of the response (`<|im_end|>\n` in the chat template,
//! EOS in plain text). The head starts as HF initialises it, N(0, 0.02²), seeded by `seed`;
//! it trains with the backbone's LoRA adapters (or all its weights), joins the optimizer
//! and the checkpoints under its name, and is written to `final/score.safetensors` beside
//! the adapter (or model), with `final/reward_model.json` saying how to score.
//!
//! A micro-batch of B pairs is one forward pass over 2B rows (chosen rows, then rejected);
//! the loss is [`super::loss::reward_loss`] on the last tokens' scores, or with
//! `loss_type = "rllr"` [`super::loss::divergence_loss`] on the head read at every token
//! (a model trained either way is scored at the last token).

use std::path::Path;

use candle_core::{DType, Tensor, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::config::{RmConfig, RmLoss};
use super::loss::{divergence_loss, divergence_window, reward_loss};
use crate::error::{Error, Result};
use crate::load::tokenizer::Tokenizer;
use crate::models::CausalLm;
use crate::sft::data::{PairRows, Tokenized, pair_batch, tokenize_pairs};
use crate::sft::train::{
    EvalLine, MicroBatch, Objective, collate, eval_in_batches, train_extended,
};
use crate::sft::{Summary, TrainOptions};

/// The head's variable name, HF's.
pub const HEAD: &str = "score.weight";

/// Runs (or resumes) reward-model training as configured.
pub fn train(cfg: &RmConfig, opts: &TrainOptions) -> Result<Summary> {
    cfg.validate()?;
    train_extended(cfg, opts, &mut |tok, model| {
        let objective = RmObjective::new(cfg, tok, model)?;
        let report = objective.report.clone();
        Ok((Box::new(objective) as Box<dyn Objective>, report))
    })
}

struct RmObjective {
    train: Vec<PairRows>,
    eval: Option<Vec<PairRows>>,
    head: Var,
    pad: u32,
    center: Option<f64>,
    loss: RmLoss,
    temperature: f64,
    report: serde_json::Value,
    meta: serde_json::Value,
}

impl RmObjective {
    fn new(cfg: &RmConfig, tok: &Tokenizer, model: &CausalLm) -> Result<Self> {
        let device = model.device();
        let t = &cfg.train;
        let p = cfg.own.max_prompt_len;
        let (train, train_report) = tokenize_pairs(&t.train_data, tok, t.chat, t.max_len, p, 0)?;
        let (eval, eval_report) = match &t.eval_data {
            Some(path) => {
                let (rows, report) = tokenize_pairs(path, tok, t.chat, t.max_len, p, t.eval_limit)?;
                (Some(rows), Some(report))
            }
            None => (None, None),
        };
        if cfg.own.loss_type == RmLoss::Rllr {
            let files = [(&t.train_data, &train)]
                .into_iter()
                .chain(t.eval_data.iter().zip(eval.iter()));
            for (path, rows) in files {
                let n = rows
                    .iter()
                    .filter(|r| r.margin.is_some() || r.label.is_some())
                    .count();
                if n > 0 {
                    return Err(Error::config(
                        "loss_type",
                        format!(
                            "rllr reads plain pairs, but {n} pairs of {} carry a margin or a \
                             soft label; use loss_type = \"bradley_terry\" for those",
                            path.display()
                        ),
                    ));
                }
            }
        }
        let hidden = model.hidden_size();
        // N(0, 0.02²) by Box–Muller (HF's `_init_weights` for a linear layer).
        let mut rng = StdRng::seed_from_u64(t.seed ^ 0x5C0E_4EAD);
        let w: Vec<f32> = (0..hidden)
            .map(|_| {
                let (u1, u2): (f32, f32) = (rng.random_range(f32::EPSILON..1.0), rng.random());
                0.02 * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
            })
            .collect();
        let head = Var::from_tensor(&Tensor::from_vec(w, (1, hidden), device)?)?;
        Ok(Self {
            train,
            eval,
            head,
            pad: tok.pad_id,
            center: cfg.own.center_rewards_coefficient,
            loss: cfg.own.loss_type,
            temperature: cfg.own.rllr_temperature,
            report: serde_json::json!({"train": train_report, "eval": eval_report}),
            meta: serde_json::json!({
                "head": HEAD, "hidden_size": hidden, "score_at": "last token of the response",
                // Chat-form pairs are rendered with the template whatever `chat` says, so a
                // model trained on them scores in the template.
                "chat": t.chat || train_report["chat_prompts"].as_u64().unwrap_or(0) > 0,
                "max_len": t.max_len, "max_prompt_len": p,
                "base_model": t.model, "lora": t.lora_rank > 0, "dtype": t.dtype,
                "loss_type": cfg.own.loss_type.as_str(),
            }),
        })
    }

    /// The loss of pairs `idx` of `rows`: one forward pass over their chosen rows, then
    /// their rejected rows, read at the last tokens (Bradley–Terry) or at every token (RLLR).
    fn loss(
        &self,
        model: &CausalLm,
        rows: &[PairRows],
        idx: &[usize],
        grad: bool,
    ) -> Result<super::RewardLoss> {
        let batch = pair_batch(rows, idx);
        let (inputs, _, _) = collate(&batch, self.pad, model.device())?;
        let mut hidden = model.forward_hidden(&inputs, None)?;
        if !grad {
            hidden = hidden.detach();
        }
        let b = idx.len();
        match self.loss {
            RmLoss::BradleyTerry => {
                let s = last_token_scores(&hidden, &batch, self.head.as_tensor())?;
                let margins: Option<Vec<f64>> = idx
                    .iter()
                    .any(|&i| rows[i].margin.is_some())
                    .then(|| idx.iter().map(|&i| rows[i].margin.unwrap_or(0.0)).collect());
                let labels: Option<Vec<f64>> = idx
                    .iter()
                    .any(|&i| rows[i].label.is_some())
                    .then(|| idx.iter().map(|&i| rows[i].label.unwrap_or(1.0)).collect());
                reward_loss(
                    &s.narrow(0, 0, b)?,
                    &s.narrow(0, b, b)?,
                    margins.as_deref(),
                    labels.as_deref(),
                    self.center,
                )
            }
            RmLoss::Rllr => {
                let (n, t, d) = hidden.dims3()?;
                let values = hidden
                    .reshape((n * t, d))?
                    .to_dtype(DType::F32)?
                    .matmul(&self.head.as_tensor().t()?)?
                    .reshape((n, t))?;
                let pair = |i: usize| (&rows[i].chosen.ids, &rows[i].rejected.ids);
                let windows: Vec<(usize, usize)> = idx
                    .iter()
                    .map(|&i| divergence_window(pair(i).0, pair(i).1))
                    .collect();
                let lens: Vec<(usize, usize)> = idx
                    .iter()
                    .map(|&i| (pair(i).0.len(), pair(i).1.len()))
                    .collect();
                divergence_loss(
                    &values.narrow(0, 0, b)?,
                    &values.narrow(0, b, b)?,
                    &windows,
                    &lens,
                    self.temperature,
                )
            }
        }
    }

    fn pairs_loss(
        &self,
        model: &CausalLm,
        rows: &[PairRows],
        idx: &[usize],
        grad: bool,
    ) -> Result<(MicroBatch, super::RewardLoss)> {
        let b = idx.len();
        let out = self.loss(model, rows, idx, grad)?;
        let mean_reward: f64 = out.chosen.iter().chain(&out.rejected).sum::<f64>() / 2.0;
        let tokens = idx
            .iter()
            .map(|&i| rows[i].chosen.ids.len() + rows[i].rejected.ids.len())
            .sum();
        let micro = MicroBatch {
            sum: out.per_pair.sum_all()?,
            count: b as f32,
            tokens,
            extra: vec![
                ("accuracy", out.accuracy() * b as f64),
                ("margin", out.margin() * b as f64),
                ("mean_reward", mean_reward),
            ],
        };
        Ok((micro, out))
    }
}

/// The head `(1, d)` applied to each right-padded row's last token of `hidden (b, t, d)`:
/// `(b,)` f32 scores, differentiable.
pub(crate) fn last_token_scores(
    hidden: &Tensor,
    rows: &[&Tokenized],
    head: &Tensor,
) -> Result<Tensor> {
    let (b, t, d) = hidden.dims3()?;
    let last: Vec<u32> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (i * t + r.ids.len() - 1) as u32)
        .collect();
    let last = Tensor::from_vec(last, b, hidden.device())?;
    let h = hidden
        .reshape((b * t, d))?
        .index_select(&last, 0)?
        .to_dtype(DType::F32)?;
    Ok(h.matmul(&head.t()?)?.squeeze(1)?)
}

impl Objective for RmObjective {
    fn len(&self) -> usize {
        self.train.len()
    }

    fn estimate_rows(&self, batch_size: usize) -> (usize, usize) {
        let seq = self
            .train
            .iter()
            .map(|r| r.chosen.ids.len().max(r.rejected.ids.len()))
            .max()
            .unwrap_or(2);
        (2 * batch_size, seq)
    }

    fn forward(&mut self, model: &mut CausalLm, idx: &[usize]) -> Result<MicroBatch> {
        Ok(self.pairs_loss(model, &self.train, idx, true)?.0)
    }

    fn has_eval(&self) -> bool {
        self.eval.is_some()
    }

    fn eval(&mut self, model: &mut CausalLm, batch_size: usize) -> Result<EvalLine> {
        let rows = self.eval.as_deref().unwrap_or_default();
        // Each pair's subset and whether it was ranked right, for RewardBench's scores.
        let mut results: Vec<(Option<&str>, bool)> = Vec::with_capacity(rows.len());
        let mut line = eval_in_batches(rows.len(), batch_size, |idx| {
            let (micro, out) = self.pairs_loss(model, rows, idx, false)?;
            results.extend(
                idx.iter()
                    .zip(out.chosen.iter().zip(&out.rejected))
                    .map(|(&i, (c, r))| (rows[i].subset.as_deref(), c > r)),
            );
            Ok(micro)
        })?;
        if let Some(scores) = super::rewardbench::scores(results) {
            line.named = scores.metrics();
        }
        Ok(line)
    }

    fn eval_at_start(&self) -> bool {
        true
    }

    fn trainable(&self) -> Vec<(String, Var)> {
        vec![(HEAD.to_string(), self.head.clone())]
    }

    fn save_final(&self, dir: &Path) -> Result<()> {
        let head =
            std::collections::HashMap::from([(HEAD.to_string(), self.head.as_tensor().clone())]);
        candle_core::safetensors::save(&head, dir.join("score.safetensors"))?;
        let path = dir.join("reward_model.json");
        let text = serde_json::to_string_pretty(&self.meta).unwrap_or_default();
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))
    }
}
