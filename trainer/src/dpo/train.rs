//! The DPO objective on SFT's loop.
//!
//! A micro-batch of B pairs is one forward pass over 2B rows (the chosen responses, then
//! the rejected ones, each after its prompt); each row's log-prob is summed over its
//! response tokens. The reference's log-probs are the same sums under the frozen model:
//! the base with its adapters switched off (LoRA; no second copy of the weights), or a
//! frozen copy loaded beside the trained one (full fine-tuning). They never change, so each
//! pair's are computed once, the first time the pair is drawn, and kept in memory; a
//! resumed run computes them again, in other batches, so equal up to float rounding. With
//! `precompute_ref_log_probs` (TRL's option) every pair's, training and held-out, are
//! computed in one pass before the first step or evaluation, in micro-batches, and a full
//! fine-tune's frozen copy is then dropped.
//!
//! Truncation: a prompt keeps its last `max_prompt_len` tokens (the turn being answered is
//! at its end), then each response is cut at the end so the row fits `max_len`; `data.json`
//! counts both.

use candle_core::{DType, Tensor};

use super::config::DpoConfig;
use super::loss::{PairLogps, dpo_loss};
use crate::error::{Error, Result};
use crate::load::{self, tokenizer::Tokenizer};
use crate::lora;
use crate::models::CausalLm;
use crate::sft::data::{PairRows, pair_batch, tokenize_pairs};
use crate::sft::train::{
    EvalLine, MicroBatch, Objective, collate, eval_in_batches, train_extended,
};
use crate::sft::{Summary, TrainOptions};

/// Runs (or resumes) DPO as configured.
pub fn train(cfg: &DpoConfig, opts: &TrainOptions) -> Result<Summary> {
    cfg.validate()?;
    train_extended(cfg, opts, &mut |tok, model| {
        let objective = DpoObjective::new(cfg, tok, model)?;
        let report = objective.report.clone();
        Ok((Box::new(objective) as Box<dyn Objective>, report))
    })
}

/// A set of pairs with their reference log-probs, filled as they are first needed.
struct PairSet {
    rows: Vec<PairRows>,
    reference: Vec<Option<(f64, f64)>>,
}

struct DpoObjective {
    train: PairSet,
    eval: Option<PairSet>,
    pad: u32,
    /// Full fine-tuning: the frozen reference (with LoRA it is the base, adapters off).
    reference: Option<CausalLm>,
    beta: f64,
    kind: super::DpoLoss,
    label_smoothing: f64,
    /// Precompute every pair's reference log-probs before the first step; cleared once done.
    precompute: bool,
    report: serde_json::Value,
}

/// A pair file, tokenized, with no reference log-probs yet.
fn read_set(
    path: &std::path::Path,
    cfg: &DpoConfig,
    tok: &Tokenizer,
    limit: usize,
) -> Result<(PairSet, serde_json::Value)> {
    let t = &cfg.train;
    let (mut rows, mut report) =
        tokenize_pairs(path, tok, t.chat, t.max_len, cfg.own.max_prompt_len, limit)?;
    // DPO learns hard preferences: a soft-labelled pair counts as won by its `chosen`
    // (the likelier winner), and a draw (label ½) says nothing and is left out.
    let before = rows.len();
    rows.retain(|r| r.label.is_none_or(|q| q > 0.5));
    report["skipped_draws"] = (before - rows.len()).into();
    report["pairs"] = rows.len().into();
    if rows.is_empty() {
        return Err(Error::Data {
            path: path.to_path_buf(),
            line: 0,
            message: "every pair is a draw (label ½): DPO needs a preferred response".into(),
        });
    }
    let n = rows.len();
    Ok((
        PairSet {
            rows,
            reference: vec![None; n],
        },
        report,
    ))
}

impl DpoObjective {
    fn new(cfg: &DpoConfig, tok: &Tokenizer, model: &CausalLm) -> Result<Self> {
        let device = model.device();
        let (train, train_report) = read_set(&cfg.train.train_data, cfg, tok, 0)?;
        let (eval, eval_report) = match &cfg.train.eval_data {
            Some(p) => {
                let (set, report) = read_set(p, cfg, tok, cfg.train.eval_limit)?;
                (Some(set), Some(report))
            }
            None => (None, None),
        };
        let reference = (cfg.train.lora_rank == 0)
            .then(|| {
                load::load_as(&cfg.train.model, false, cfg.train.dtype.dtype(), device)
                    .map(|l| l.model)
            })
            .transpose()?;
        Ok(Self {
            train,
            eval,
            pad: tok.pad_id,
            reference,
            beta: cfg.own.beta,
            kind: cfg.own.loss_type,
            label_smoothing: cfg.own.label_smoothing,
            precompute: cfg.own.precompute_ref_log_probs,
            report: serde_json::json!({"train": train_report, "eval": eval_report}),
        })
    }

    /// The reference's summed log-probs of the pairs `idx` of `set`, computed for those
    /// not yet known.
    fn reference_of(
        reference: Option<&CausalLm>,
        model: &mut CausalLm,
        set: &mut PairSet,
        idx: &[usize],
        pad: u32,
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        let missing: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|&i| set.reference[i].is_none())
            .collect();
        if !missing.is_empty() {
            let sums = match reference {
                Some(r) => row_logps(r, &set.rows, &missing, pad, false)?,
                None => {
                    lora::set_adapters_enabled(model, false);
                    let out = row_logps(model, &set.rows, &missing, pad, false);
                    lora::set_adapters_enabled(model, true);
                    out?
                }
            };
            let sums: Vec<f64> = sums.to_dtype(DType::F64)?.to_vec1()?;
            let n = missing.len();
            for (k, &i) in missing.iter().enumerate() {
                set.reference[i] = Some((sums[k], sums[n + k]));
            }
        }
        let known: Vec<(f64, f64)> = idx
            .iter()
            .map(|&i| set.reference[i].unwrap_or((f64::NAN, f64::NAN)))
            .collect();
        Ok(known.into_iter().unzip())
    }

    /// With `precompute_ref_log_probs`, the reference log-probs of every pair, in chunks of
    /// `batch`, the first time it is called; then the frozen copy is no longer needed.
    fn precompute_once(&mut self, model: &mut CausalLm, batch: usize) -> Result<()> {
        if !self.precompute {
            return Ok(());
        }
        for set in std::iter::once(&mut self.train).chain(self.eval.as_mut()) {
            let all: Vec<usize> = (0..set.rows.len()).collect();
            for chunk in all.chunks(batch.max(1)) {
                Self::reference_of(self.reference.as_ref(), model, set, chunk, self.pad)?;
            }
        }
        // Every pair's are known, so `reference_of` never runs a model again.
        self.reference = None;
        self.precompute = false;
        Ok(())
    }

    /// The loss over pairs `idx` of the training set (`eval`: of the held-out set, without
    /// gradients), and its metrics.
    fn pairs_loss(
        &mut self,
        model: &mut CausalLm,
        idx: &[usize],
        eval: bool,
    ) -> Result<MicroBatch> {
        let set = if eval {
            self.eval
                .as_mut()
                .ok_or_else(|| Error::InvalidArgument("DPO eval without eval pairs".into()))?
        } else {
            &mut self.train
        };
        let (ref_c, ref_r) =
            Self::reference_of(self.reference.as_ref(), model, set, idx, self.pad)?;
        let sums = row_logps(model, &set.rows, idx, self.pad, !eval)?;
        let b = idx.len();
        let (chosen, rejected) = (sums.narrow(0, 0, b)?, sums.narrow(0, b, b)?);
        let len_c: Vec<usize> = idx.iter().map(|&i| set.rows[i].len_chosen).collect();
        let len_r: Vec<usize> = idx.iter().map(|&i| set.rows[i].len_rejected).collect();
        let out = dpo_loss(
            &PairLogps {
                chosen: &chosen,
                rejected: &rejected,
                ref_chosen: &ref_c,
                ref_rejected: &ref_r,
                len_chosen: &len_c,
                len_rejected: &len_r,
            },
            self.kind,
            self.beta,
            self.label_smoothing,
        )?;
        let sum_c: f64 = out.reward_chosen.iter().sum();
        let sum_r: f64 = out.reward_rejected.iter().sum();
        let tokens = idx
            .iter()
            .map(|&i| set.rows[i].chosen.ids.len() + set.rows[i].rejected.ids.len())
            .sum();
        Ok(MicroBatch {
            sum: out.per_pair.sum_all()?,
            count: b as f32,
            tokens,
            extra: vec![
                ("rewards/chosen", sum_c),
                ("rewards/rejected", sum_r),
                ("rewards/margins", sum_c - sum_r),
                ("rewards/accuracies", out.accuracy() * b as f64),
            ],
        })
    }
}

/// Summed response log-probs of rows `idx` of `rows`, chosen rows then rejected rows:
/// `(2·len(idx),)`.
fn row_logps(
    model: &CausalLm,
    rows: &[PairRows],
    idx: &[usize],
    pad: u32,
    with_grad: bool,
) -> Result<Tensor> {
    let batch = pair_batch(rows, idx);
    let (inputs, ids, mask) = collate(&batch, pad, model.device())?;
    let mut hidden = model.forward_hidden(&inputs, None)?;
    if !with_grad {
        hidden = hidden.detach();
    }
    let logp = crate::loss::token_logprobs_from_hidden(
        &hidden,
        model.lm_head_weight(),
        &ids,
        &mask,
        with_grad,
    )?;
    Ok(logp.to_dtype(DType::F32)?.sum(1)?)
}

impl Objective for DpoObjective {
    fn len(&self) -> usize {
        self.train.rows.len()
    }

    fn estimate_rows(&self, batch_size: usize) -> (usize, usize) {
        let seq = self
            .train
            .rows
            .iter()
            .map(|r| r.chosen.ids.len().max(r.rejected.ids.len()))
            .max()
            .unwrap_or(2);
        (2 * batch_size, seq)
    }

    fn forward(&mut self, model: &mut CausalLm, idx: &[usize]) -> Result<MicroBatch> {
        self.precompute_once(model, idx.len())?;
        self.pairs_loss(model, idx, false)
    }

    fn has_eval(&self) -> bool {
        self.eval.is_some()
    }

    fn eval(&mut self, model: &mut CausalLm, batch_size: usize) -> Result<EvalLine> {
        self.precompute_once(model, batch_size)?;
        let n = self.eval.as_ref().map_or(0, |s| s.rows.len());
        eval_in_batches(n, batch_size, |idx| self.pairs_loss(model, idx, true))
    }
}
