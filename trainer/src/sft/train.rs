//! The supervised fine-tuning loop.
//!
//! One optimizer step = `grad_accum` micro-batches of `batch_size` examples. The data order
//! is a pure function of the seed and the global micro-batch index (epoch `e` is a seeded
//! permutation), so a run resumed from a checkpoint sees exactly the batches it would have
//! seen. Checkpoints hold the trainable tensors (all weights, or only LoRA adapters), the
//! AdamW moments and the step; they are written to a temporary directory and renamed, so a
//! kill never leaves a half-written checkpoint, and only the newest `keep_last` are kept.
//! Parameters are checked to be finite before a checkpoint is written, so the newest one is
//! always usable; a non-finite loss stops the run with [`Error::NonFiniteLoss`] naming it.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::config::SftConfig;
use super::data::{self, Tokenized};
use crate::error::{Error, Result};
use crate::load::{self, tokenizer::Tokenizer};
use crate::lora::{self, LoraConfig};
use crate::models::{CausalLm, Inputs};
use crate::optim::{AdamW, AdamWParams, GradAccumulator, lr_at};

/// Options that are not part of the run's configuration.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// Return after this step as if killed (tests of resumption).
    pub stop_after: Option<usize>,
}

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Optimizer steps completed.
    pub steps: usize,
    /// Mean training loss of the last step.
    pub last_loss: f32,
    /// The last eval loss, when eval data was given.
    pub eval_loss: Option<f32>,
    /// The newest checkpoint.
    pub last_checkpoint: Option<PathBuf>,
    /// Final weights (HF directory, or LoRA adapter directory); `None` when stopped early.
    pub final_dir: Option<PathBuf>,
    /// The step the run resumed from (0 for a fresh run).
    pub resumed_from: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct CheckpointState {
    step: usize,
    lora: bool,
}

pub use crate::loss::masked_nll;

/// A right-padded batch: inputs with key mask, and the loss mask.
pub fn collate(
    examples: &[&Tokenized],
    pad_id: u32,
    device: &Device,
) -> Result<(Inputs, Tensor, Tensor)> {
    let t = examples
        .iter()
        .map(|e| e.ids.len())
        .max()
        .unwrap_or(1)
        .max(2);
    let b = examples.len();
    let mut ids = Vec::with_capacity(b * t);
    let mut mask = Vec::with_capacity(b);
    let mut loss = Vec::with_capacity(b * t);
    for e in examples {
        let pad = t - e.ids.len();
        ids.extend(&e.ids);
        ids.extend(std::iter::repeat_n(pad_id, pad));
        mask.push([vec![1u32; e.ids.len()], vec![0; pad]].concat());
        loss.extend(e.loss_mask.iter().map(|&x| x as f32));
        loss.extend(std::iter::repeat_n(0f32, pad));
    }
    let ids = Tensor::from_vec(ids, (b, t), device)?;
    let inputs = Inputs::with_mask(ids.clone(), &mask)?;
    Ok((inputs, ids, Tensor::from_vec(loss, (b, t), device)?))
}

/// Index of the examples of global micro-batch `k`.
fn micro_batch(k: usize, batch: usize, n: usize, seed: u64) -> Vec<usize> {
    let mut out = Vec::with_capacity(batch);
    let mut cache: Option<(usize, Vec<usize>)> = None;
    for j in 0..batch {
        let flat = k * batch + j;
        let (epoch, pos) = (flat / n, flat % n);
        if cache.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let mut perm: Vec<usize> = (0..n).collect();
            perm.shuffle(&mut StdRng::seed_from_u64(
                seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64),
            ));
            cache = Some((epoch, perm));
        }
        if let Some((_, perm)) = &cache {
            out.push(perm[pos]);
        }
    }
    out
}

fn checkpoints(dir: &Path) -> Vec<(usize, PathBuf)> {
    let mut out: Vec<(usize, PathBuf)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    let step = name.strip_prefix("step-")?.parse().ok()?;
                    e.path()
                        .join("state.json")
                        .exists()
                        .then(|| (step, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Trainable tensors by name.
fn trainable(opt: &AdamW) -> HashMap<String, Tensor> {
    opt.vars()
        .map(|(n, v)| (n.to_string(), v.as_tensor().clone()))
        .collect()
}

fn all_finite(opt: &AdamW) -> Result<bool> {
    for (_, v) in opt.vars() {
        let s = v
            .as_tensor()
            .abs()?
            .sum_all()?
            .to_dtype(DType::F32)?
            .to_scalar::<f32>()?;
        if !s.is_finite() {
            return Ok(false);
        }
    }
    Ok(true)
}

fn save_checkpoint(
    dir: &Path,
    step: usize,
    opt: &AdamW,
    lora: bool,
    keep: usize,
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let final_dir = dir.join(format!("step-{step:08}"));
    let tmp = dir.join(format!(".tmp-step-{step:08}"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    candle_core::safetensors::save(&trainable(opt), tmp.join("trainable.safetensors"))?;
    candle_core::safetensors::save(&opt.state(), tmp.join("optimizer.safetensors"))?;
    let state = serde_json::to_string(&CheckpointState { step, lora }).unwrap_or_default();
    std::fs::write(tmp.join("state.json"), state)
        .map_err(|e| Error::io(tmp.join("state.json"), e))?;
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).map_err(|e| Error::io(&final_dir, e))?;
    }
    std::fs::rename(&tmp, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
    let all = checkpoints(dir);
    for (_, old) in all.iter().take(all.len().saturating_sub(keep)) {
        std::fs::remove_dir_all(old).map_err(|e| Error::io(old, e))?;
    }
    Ok(final_dir)
}

/// Restores trainable tensors and optimizer moments from a checkpoint directory.
pub fn restore(ckpt: &Path, opt: &mut AdamW, device: &Device) -> Result<usize> {
    let state_path = ckpt.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(|e| Error::io(&state_path, e))?;
    let state: CheckpointState = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: state_path,
        source: e,
    })?;
    let weights = candle_core::safetensors::load(ckpt.join("trainable.safetensors"), device)?;
    for (name, var) in opt.vars() {
        let t = weights
            .get(name)
            .ok_or_else(|| Error::checkpoint(ckpt, format!("lacks tensor `{name}`")))?;
        var.set(t)?;
    }
    let moments = candle_core::safetensors::load(ckpt.join("optimizer.safetensors"), device)?;
    opt.load_state(&moments, state.step)?;
    Ok(state.step)
}

struct Setup {
    model: CausalLm,
    tokenizer: Tokenizer,
    vars: Vec<(String, Var)>,
    lora: Option<(LoraConfig, VarMap)>,
    full: Option<VarMap>,
}

fn setup(cfg: &SftConfig, device: &Device) -> Result<Setup> {
    let full_ft = cfg.lora_rank == 0;
    let loaded = load::load(&cfg.model, full_ft, device)?;
    let tokenizer = loaded
        .tokenizer
        .ok_or_else(|| Error::checkpoint(&cfg.model, "no tokenizer"))?;
    let mut model = loaded.model;
    let (vars_map, lora) = if full_ft {
        let vm = loaded.varmap.ok_or_else(|| {
            Error::InvalidArgument("full fine-tuning needs trainable weights".into())
        })?;
        (vm.clone(), None)
    } else {
        let lc = LoraConfig {
            rank: cfg.lora_rank,
            alpha: cfg.lora_alpha,
            dropout: cfg.lora_dropout,
            targets: cfg.lora_targets.clone(),
            seed: cfg.seed,
        };
        let vm = VarMap::new();
        lora::attach(&mut model, &lc, &vm)?;
        (vm.clone(), Some((lc, vm)))
    };
    let vars = vars_map
        .data()
        .lock()
        .map_err(|_| Error::InvalidArgument("poisoned VarMap".into()))?
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let full = if full_ft { Some(vars_map) } else { None };
    Ok(Setup {
        model,
        tokenizer,
        vars,
        lora,
        full,
    })
}

/// What happened to a data file's records, written to `<run>/data.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataReport {
    /// The file.
    pub path: PathBuf,
    /// Examples used.
    pub examples: usize,
    /// MaRio records skipped for an empty label or rationale.
    pub skipped_empty: usize,
    /// Examples dropped because `max_len` left no completion token.
    pub dropped_no_completion: usize,
    /// Completion tokens over all examples.
    pub completion_tokens: usize,
}

fn tokenize_all(
    path: &Path,
    cfg: &SftConfig,
    tok: &Tokenizer,
) -> Result<(Vec<Tokenized>, DataReport)> {
    let (examples, skipped_empty) = data::read_counting_skipped(path)?;
    let mut out = Vec::with_capacity(examples.len());
    let mut dropped = 0;
    for e in &examples {
        let t = data::tokenize(e, tok, cfg.chat, cfg.max_len)?;
        if t.loss_mask.iter().skip(1).any(|&m| m == 1) {
            out.push(t);
        } else {
            dropped += 1;
        }
    }
    let completion_tokens = out
        .iter()
        .map(|t| t.loss_mask.iter().filter(|&&m| m == 1).count())
        .sum();
    let report = DataReport {
        path: path.to_path_buf(),
        examples: out.len(),
        skipped_empty,
        dropped_no_completion: dropped,
        completion_tokens,
    };
    Ok((out, report))
}

fn eval_loss(
    model: &CausalLm,
    set: &[Tokenized],
    batch: usize,
    pad: u32,
    device: &Device,
) -> Result<f32> {
    let (mut sum, mut count) = (0f32, 0f32);
    for chunk in set.chunks(batch) {
        let refs: Vec<&Tokenized> = chunk.iter().collect();
        let (inputs, ids, mask) = collate(&refs, pad, device)?;
        let logits = model.forward(&inputs, None)?;
        let (s, c) = masked_nll(&logits.detach(), &ids, &mask)?;
        sum += s.to_scalar::<f32>()?;
        count += c;
    }
    Ok(sum / count.max(1.0))
}

struct Metrics(std::fs::File, PathBuf);

impl Metrics {
    fn open(path: PathBuf) -> Result<Self> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok(Self(f, path))
    }
    fn write(&mut self, v: serde_json::Value) -> Result<()> {
        writeln!(self.0, "{v}").map_err(|e| Error::io(&self.1, e))
    }
}

/// Runs (or resumes) supervised fine-tuning as configured.
pub fn train(cfg: &SftConfig, opts: &TrainOptions) -> Result<Summary> {
    cfg.validate()?;
    let device = crate::device(&cfg.device)?;
    let out = &cfg.output_dir;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    std::fs::write(out.join("config.toml"), cfg.to_toml())
        .map_err(|e| Error::io(out.join("config.toml"), e))?;

    let Setup {
        mut model,
        tokenizer,
        vars,
        lora,
        full,
    } = setup(cfg, &device)?;
    let (train_set, train_report) = tokenize_all(&cfg.train_data, cfg, &tokenizer)?;
    if train_set.is_empty() {
        return Err(Error::Data {
            path: cfg.train_data.clone(),
            line: 0,
            message: "no example has completion tokens".into(),
        });
    }
    let (eval_set, eval_report) = match &cfg.eval_data {
        Some(p) => {
            let (mut set, report) = tokenize_all(p, cfg, &tokenizer)?;
            if cfg.eval_limit > 0 {
                set.truncate(cfg.eval_limit);
            }
            (Some(set), Some(report))
        }
        None => (None, None),
    };
    let report = serde_json::json!({"train": train_report, "eval": eval_report});
    std::fs::write(out.join("data.json"), report.to_string())
        .map_err(|e| Error::io(out.join("data.json"), e))?;
    let params = AdamWParams {
        lr: cfg.lr,
        beta1: cfg.beta1,
        beta2: cfg.beta2,
        eps: cfg.eps,
        weight_decay: cfg.weight_decay,
    };
    let mut opt = AdamW::new(vars, params)?;
    let ckpt_dir = out.join("checkpoints");
    let mut last_checkpoint = None;
    let mut start = 0;
    if cfg.resume
        && let Some((_, newest)) = checkpoints(&ckpt_dir).pop()
    {
        start = restore(&newest, &mut opt, &device)?;
        last_checkpoint = Some(newest);
    }
    let mut metrics = Metrics::open(out.join("metrics.jsonl"))?;
    let bar = if opts.progress {
        indicatif::ProgressBar::new(cfg.max_steps as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_position(start as u64);
    model.set_training(true);
    let (mut last_loss, mut last_eval) = (f32::NAN, None);
    let t0 = Instant::now();
    let mut tokens_seen = 0usize;
    let mut step = start;
    while step < cfg.max_steps {
        let lr = lr_at(
            step,
            cfg.lr,
            cfg.min_lr,
            cfg.warmup_steps,
            cfg.max_steps,
            cfg.decay,
        );
        opt.params.lr = lr;
        let mut acc = GradAccumulator::default();
        let (mut loss_sum, mut loss_count) = (0f32, 0f32);
        for j in 0..cfg.grad_accum {
            let idx = micro_batch(
                step * cfg.grad_accum + j,
                cfg.batch_size,
                train_set.len(),
                cfg.seed,
            );
            let batch: Vec<&Tokenized> = idx.iter().map(|&i| &train_set[i]).collect();
            tokens_seen += batch.iter().map(|b| b.ids.len()).sum::<usize>();
            let (inputs, ids, mask) = collate(&batch, tokenizer.pad_id, &device)?;
            let logits = model.forward(&inputs, None)?;
            let (sum, count) = masked_nll(&logits, &ids, &mask)?;
            // Each micro-batch contributes its mean, averaged over the accumulation.
            let loss = (sum.clone() / (count.max(1.0) as f64 * cfg.grad_accum as f64))?;
            let value = sum.to_scalar::<f32>()?;
            if !value.is_finite() {
                bar.abandon();
                return Err(Error::NonFiniteLoss {
                    step: step + 1,
                    loss: value,
                    last_checkpoint,
                });
            }
            loss_sum += value;
            loss_count += count;
            acc.add(opt.vars().map(|(_, v)| v), &loss.backward()?)?;
        }
        let grad_norm = acc.norm()?;
        if cfg.grad_clip > 0.0 && grad_norm > cfg.grad_clip {
            acc.scale(cfg.grad_clip / (grad_norm + 1e-6))?;
        }
        opt.step(&acc.take())?;
        step += 1;
        last_loss = loss_sum / loss_count.max(1.0);
        let secs = t0.elapsed().as_secs_f64();
        let tok_s = tokens_seen as f64 / secs.max(1e-9);
        metrics.write(
            serde_json::json!({"step": step, "loss": last_loss, "lr": lr, "grad_norm": grad_norm,
            "tokens": tokens_seen, "tokens_per_s": tok_s, "elapsed_s": secs}),
        )?;
        bar.set_position(step as u64);
        bar.set_message(format!("loss {last_loss:.4} | {tok_s:.0} tok/s"));
        if let Some(set) = &eval_set
            && (step % cfg.eval_every == 0 || step == cfg.max_steps)
        {
            model.set_training(false);
            let e = eval_loss(&model, set, cfg.batch_size, tokenizer.pad_id, &device)?;
            model.set_training(true);
            last_eval = Some(e);
            metrics.write(serde_json::json!({"step": step, "eval_loss": e}))?;
            bar.println(format!("step {step}: eval loss {e:.4}"));
        }
        if step % cfg.save_every == 0 || step == cfg.max_steps {
            if !all_finite(&opt)? {
                bar.abandon();
                return Err(Error::NonFiniteLoss {
                    step,
                    loss: f32::NAN,
                    last_checkpoint,
                });
            }
            last_checkpoint = Some(save_checkpoint(
                &ckpt_dir,
                step,
                &opt,
                lora.is_some(),
                cfg.keep_last,
            )?);
        }
        if opts.stop_after == Some(step) && step < cfg.max_steps {
            bar.abandon();
            return Ok(Summary {
                steps: step,
                last_loss,
                eval_loss: last_eval,
                last_checkpoint,
                final_dir: None,
                resumed_from: start,
            });
        }
    }
    bar.finish();
    model.set_training(false);
    let final_dir = out.join("final");
    match (&lora, &full) {
        (Some((lc, vm)), _) => lora::save(&final_dir, lc, vm)?,
        (None, Some(vm)) => {
            let tensors = crate::load::hf::varmap_tensors(vm)?;
            crate::load::hf::save(
                &final_dir,
                &model.config_json(),
                &tensors,
                Some(&tokenizer.to_json()?),
            )?;
            let p = final_dir.join("tokenizer_config.json");
            std::fs::write(&p, tokenizer.tokenizer_config_json()).map_err(|e| Error::io(&p, e))?;
        }
        (None, None) => {}
    }
    Ok(Summary {
        steps: step,
        last_loss,
        eval_loss: last_eval,
        last_checkpoint,
        final_dir: Some(final_dir),
        resumed_from: start,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_order_is_a_function_of_seed_and_index_and_covers_each_epoch() {
        let n = 10;
        let epoch0: Vec<usize> = (0..5).flat_map(|k| micro_batch(k, 2, n, 7)).collect();
        let mut sorted = epoch0.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..n).collect::<Vec<_>>());
        assert_eq!(micro_batch(3, 2, n, 7), micro_batch(3, 2, n, 7));
        assert_ne!(
            (0..5)
                .flat_map(|k| micro_batch(k, 2, n, 8))
                .collect::<Vec<_>>(),
            epoch0
        );
    }

    #[test]
    fn masked_loss_counts_only_completion_targets() -> Result<()> {
        let dev = Device::Cpu;
        // Uniform logits: every counted target costs ln(4).
        let logits = Tensor::zeros((1, 4, 4), DType::F32, &dev)?;
        let ids = Tensor::new(&[[0u32, 1, 2, 3]], &dev)?;
        let mask = Tensor::new(&[[0f32, 0., 1., 1.]], &dev)?;
        let (sum, count) = masked_nll(&logits, &ids, &mask)?;
        assert_eq!(count, 2.0);
        assert!((sum.to_scalar::<f32>()? - 2.0 * 4f32.ln()).abs() < 1e-6);
        Ok(())
    }
}
