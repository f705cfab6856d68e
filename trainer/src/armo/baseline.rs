//! What ArmoRM is measured against: a plain Bradley–Terry reward model on the same frozen
//! backbone and budget.
//!
//! The score is a linear head on the response's embedding, r = w·h (HF's one-label
//! `*ForSequenceClassification` head on a frozen backbone: no probes, no debiasing, no
//! gate), trained on the same pair embeddings with the gate's loss, optimizer, schedule,
//! steps and batches ([`super::gate::fit_pairs`]). `w` starts at 0: the problem is convex
//! (logistic regression on h_c − h_r), so the start only changes the path.
//!
//! `trainer armo fit-baseline` writes `baseline.safetensors` (`score.weight` `(1, d)`),
//! `baseline.json` and `baseline_metrics.jsonl` into the run directory, beside the gate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::embed::{Embeddings, Kind};
use super::gate::{self, GateTraining, LogLine, PairSet};
use crate::error::{Error, Result};

/// `baseline.safetensors`.
pub const BASELINE_FILE: &str = "baseline.safetensors";
/// `baseline.json`.
pub const BASELINE_META: &str = "baseline.json";
/// `baseline_metrics.jsonl`.
pub const BASELINE_METRICS: &str = "baseline_metrics.jsonl";

/// `baseline.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineMeta {
    /// How it was trained (the gate's settings).
    pub training: GateTraining,
    /// The training pairs' embeddings.
    pub train: PathBuf,
    /// The held-out pairs' embeddings.
    pub eval: Option<PathBuf>,
    /// Pairwise accuracy on all training pairs after training.
    pub train_accuracy: f64,
    /// Held-out loss after training.
    pub eval_loss: Option<f64>,
    /// Held-out pairwise accuracy after training.
    pub eval_accuracy: Option<f64>,
}

/// Pair embeddings as the linear head sees them: `chosen` and `rejected` are the two
/// responses' embeddings `(n, d)` (`prompt` is kept for [`PairSet`]'s row selection).
fn pair_set(dir: &Path, flag: &str, device: &Device) -> Result<(PairSet, Embeddings)> {
    let emb = Embeddings::read(dir)?;
    if emb.index.kind != Kind::Pairs {
        return Err(Error::InvalidArgument(format!(
            "flag {flag}: {} holds samples; the baseline trains on pairs (`trainer armo embed \
             --pairs`)",
            dir.display()
        )));
    }
    let on = |name: &str| -> Result<Tensor> { Ok(emb.get(name)?.to_device(device)?) };
    let set = PairSet {
        prompt: on("prompt")?,
        chosen: on("chosen")?,
        rejected: on("rejected")?,
    };
    Ok((set, emb))
}

/// The mean Bradley–Terry loss and accuracy of rows `idx` under head `w` `(1, d)`.
fn loss(w: &Tensor, set: &PairSet, idx: &[usize]) -> Result<(Tensor, f64)> {
    let (_, c, r) = set.rows(idx)?;
    let score = |h: &Tensor| -> Result<Tensor> { Ok(h.matmul(&w.t()?)?.squeeze(1)?) };
    let out = crate::rm::reward_loss(&score(&c)?, &score(&r)?, None, None, None)?;
    Ok((out.mean()?, out.accuracy()))
}

/// Held-out loss and accuracy, in chunks of `batch` pairs.
fn evaluate(w: &Tensor, set: &PairSet, batch: usize) -> Result<(f64, f64)> {
    let (mut total, mut right) = (0.0, 0.0);
    let idx: Vec<usize> = (0..set.len()).collect();
    for chunk in idx.chunks(batch.max(1)) {
        let (l, acc) = loss(w, set, chunk)?;
        total += l.to_dtype(DType::F64)?.to_scalar::<f64>()? * chunk.len() as f64;
        right += acc * chunk.len() as f64;
    }
    let n = set.len().max(1) as f64;
    Ok((total / n, right / n))
}

/// Trains the baseline on `train` (evaluating on `eval`) and writes its files into `run`.
pub fn fit_baseline(
    run: &Path,
    train: &Path,
    eval: Option<&Path>,
    t: &GateTraining,
    device: &Device,
    mut progress: impl FnMut(&LogLine),
) -> Result<BaselineMeta> {
    let (train_set, train_emb) = pair_set(train, "--train", device)?;
    let eval_set = match eval {
        Some(dir) => {
            let (set, emb) = pair_set(dir, "--eval", device)?;
            if emb.index.backbone != train_emb.index.backbone {
                return Err(Error::InvalidArgument(format!(
                    "flag --eval: {} was embedded with {:?}, the training pairs with {:?}; \
                     embed both with the same backbone flags",
                    dir.display(),
                    emb.index.backbone,
                    train_emb.index.backbone
                )));
            }
            Some(set)
        }
        None => None,
    };
    std::fs::create_dir_all(run).map_err(|e| Error::io(run, e))?;
    let (_, d) = train_set.chosen.dims2()?;
    let w = Var::from_tensor(&Tensor::zeros((1, d), DType::F32, device)?)?;
    let mut log = String::new();
    gate::fit_pairs(
        vec![(crate::rm::train::HEAD.to_string(), w.clone())],
        t,
        train_set.len(),
        |idx, _| loss(w.as_tensor(), &train_set, idx),
        || {
            eval_set
                .as_ref()
                .map(|e| evaluate(w.as_tensor(), e, t.batch_size))
                .transpose()
        },
        |l| {
            log += &serde_json::to_string(l).unwrap_or_default();
            log.push('\n');
            progress(l);
        },
    )?;
    let (_, train_accuracy) = evaluate(w.as_tensor(), &train_set, t.batch_size)?;
    let (eval_loss, eval_accuracy) = eval_set
        .as_ref()
        .map(|e| evaluate(w.as_tensor(), e, t.batch_size))
        .transpose()?
        .unzip();
    let tensors = HashMap::from([(crate::rm::train::HEAD.to_string(), w.as_tensor().clone())]);
    super::embed::save_atomic(&run.join(BASELINE_FILE), &tensors)?;
    crate::run::dir::write_atomic(&run.join(BASELINE_METRICS), log.as_bytes())?;
    let meta = BaselineMeta {
        training: t.clone(),
        train: train.to_path_buf(),
        eval: eval.map(Path::to_path_buf),
        train_accuracy,
        eval_loss,
        eval_accuracy,
    };
    let text =
        serde_json::to_vec_pretty(&meta).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    crate::run::dir::write_atomic(&run.join(BASELINE_META), &text)?;
    Ok(meta)
}
