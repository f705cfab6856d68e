//! The supervised fine-tuning loop, and the same loop over another objective.
//!
//! What a step computes is an `Objective`: SFT's completion-only next-token loss here,
//! DPO's pair loss ([`crate::dpo`]) and the reward model's ([`crate::rm`]) elsewhere, each
//! run through `run_objective` with everything below unchanged.
//!
//! One optimizer step = `grad_accum` micro-batches of `batch_size` examples. The data order
//! is a pure function of the seed and the global micro-batch index (epoch `e` is a seeded
//! permutation), so a run resumed from a checkpoint sees exactly the batches it would have
//! seen. Checkpoints hold the trainable tensors (all weights, or only LoRA adapters), the
//! AdamW moments (and, for bf16 weights, their f32 master copies) and the step; they are
//! written to a temporary directory and renamed, so a kill never leaves a half-written
//! checkpoint, and only the newest `keep_last` are kept.
//! Parameters are checked to be finite before a checkpoint is written, so the newest one is
//! always usable; a non-finite loss stops the run with [`Error::NonFiniteLoss`] naming it.
//!
//! LoRA dropout masks are reseeded before every micro-batch from (seed, adapter, step,
//! micro-batch) ([`lora::reseed_dropout`]), so they too are a function of the position in the
//! run and a resumed run is bit-identical to an uninterrupted one with no RNG state saved.
//!
//! Memory ([`crate::run::memory`]): before the first step a rough estimate (weights, gradients and
//! AdamW moments, one micro-batch's activations) must fit in `memory_limit_mib`; after the
//! first forward pass and after every step the process's peak resident memory must too.
//! Otherwise the run writes a checkpoint (when a step finished since the last one and the
//! parameters are finite) and stops with [`Error::OutOfMemory`] naming it, instead of being
//! killed by the system. On an accelerator, an allocation failure stops the same way.
//!
//! # Mixed precision (`dtype = "bf16"`)
//!
//! What HF users get from `bf16=True` (bf16 compute; f32 loss and optimizer), arranged for
//! memory first: where autocast keeps f32 weights and casts them op by op, here the model's
//! weights themselves are held in bf16 (as DeepSpeed's bf16 mode holds them), converted (or
//! dequantized from GGUF) once at load time ([`load::load_as`]), so the activations flow in
//! bf16 too. What needs range or precision stays f32:
//! - the loss: [`masked_nll`] takes the logits to f32 before the log-softmax;
//! - norm statistics: layer norm and RMSNorm compute mean and variance in f32 (the
//!   composed forms of [`crate::ops`], which bf16 takes; the fused CPU kernels are f32-only);
//! - gradient sums over micro-batches and the clipping norm ([`GradAccumulator`]);
//! - the trainable values: LoRA adapters simply stay f32 variables, cast to bf16 in the
//!   forward pass (the gradient flows back through the cast; [`lora`]); in full fine-tuning
//!   the weights are bf16 variables and AdamW keeps an f32 master copy and f32 moments,
//!   applies the update there and writes the bf16 rounding back ([`crate::optim`]).
//!
//! Checkpoints hold the variables as they are (bf16 weights or f32 adapters) plus the
//! optimizer's moments and master copies, and record the dtype: a resumed bf16 run is
//! bit-identical to an uninterrupted one, and resuming with another `dtype` is refused
//! naming the key (that run would match neither). The final full model is written in bf16
//! with `"torch_dtype": "bfloat16"` in `config.json`, as `save_pretrained` writes a bf16
//! model: the weights the run evaluated with, at half the size (loaders that want f32, like
//! `trainer generate`, widen them exactly; the f32 masters stay in the last checkpoint's
//! `optimizer.safetensors`). Adapters are written in f32, like PEFT's.
//!
//! Why bf16: it halves the memory of frozen weights (in LoRA, nearly all of them) and of
//! activations, and on GPUs with bf16 tensor cores it is also the fast path (not measured
//! here: no CUDA build has run). In full fine-tuning the per-weight state does not shrink
//! (a bf16 weight plus f32 master and moments is 14 bytes, against 12 in f32), so there
//! the saving is in activations. On the CPU bf16 is *slower* than f32: candle widens bf16
//! matmuls to f32 internally, and the fused f32 kernels (norms, activations, attention,
//! the frozen-weight matmul) give way to composed tensor ops; choose it there for memory.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use super::config::{MAY_CHANGE_ON_RESUME, OwnSettings, Precision, SftConfig, WithSft};
use super::data::{self, Tokenized};
use crate::error::{Error, MemoryCheck, Result};
use crate::load::{self, tokenizer::Tokenizer};
use crate::lora::{self, LoraConfig, LoraTarget};
use crate::models::{CausalLm, Inputs};
use crate::optim::{AdamW, AdamWParams, GradAccumulator, lr_at};
use crate::run::guard::{self, MemoryGuard};
use crate::run::memory::{self, Estimate, ModelShape};
use crate::run::{self, Checkpoints, Interrupt, Opening, Progress};

/// Options that are not part of the run's configuration.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// Return after this step as if killed (tests of resumption).
    pub stop_after: Option<usize>,
    /// Polled between steps: a request stops the run with a checkpoint
    /// ([`Error::Interrupted`]).
    pub interrupt: Interrupt,
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
    /// The memory limit the run was held to, MiB (`None`: none known, the guard was off).
    pub memory_limit_mib: Option<u64>,
    /// The run had already reached `max_steps` before this call: nothing was trained.
    pub already_finished: bool,
}

pub use crate::loss::{masked_nll, masked_nll_from_hidden};

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

/// What the shared loop ([`run_objective`]) needs of a training objective: SFT's
/// next-token loss here, DPO's pair loss in [`crate::dpo`].
pub(crate) trait Objective {
    /// Training items; the data order draws micro-batches of indices below this.
    fn len(&self) -> usize;
    /// Rows of the widest micro-batch of `batch_size` items and its longest row, for the
    /// memory estimate.
    fn estimate_rows(&self, batch_size: usize) -> (usize, usize);
    /// One micro-batch's forward pass over the training items `idx`, with gradients.
    fn forward(&mut self, model: &mut CausalLm, idx: &[usize]) -> Result<MicroBatch>;
    /// Whether there is held-out data.
    fn has_eval(&self) -> bool;
    /// The held-out loss and metrics, without gradients.
    fn eval(&mut self, model: &mut CausalLm, batch_size: usize) -> Result<EvalLine>;
    /// Whether to evaluate before the first step too (a reward model's untrained head is
    /// the baseline its accuracy is read against; SFT's first eval is at `eval_every`).
    fn eval_at_start(&self) -> bool {
        false
    }
    /// Variables the objective trains besides the model's (a reward model's score head);
    /// they join the optimizer and the checkpoints under these names.
    fn trainable(&self) -> Vec<(String, Var)> {
        Vec::new()
    }
    /// Writes what the objective adds to the final directory (the score head).
    fn save_final(&self, _dir: &Path) -> Result<()> {
        Ok(())
    }
}

/// One micro-batch's loss as the loop accumulates it.
pub(crate) struct MicroBatch {
    /// The loss summed over the micro-batch's units (differentiable).
    pub(crate) sum: Tensor,
    /// The units: target tokens (SFT) or pairs (DPO); the step's loss is Σ sum / Σ count.
    pub(crate) count: f32,
    /// Input tokens, for throughput.
    pub(crate) tokens: usize,
    /// Further metrics, summed over the same units (logged as means).
    pub(crate) extra: Vec<(&'static str, f64)>,
}

/// Adds `from`'s extra metrics to the sums in `into` (the same names, in the same order,
/// from every micro-batch of an objective).
pub(crate) fn add_extra(into: &mut Vec<(&'static str, f64)>, from: Vec<(&'static str, f64)>) {
    for (k, (name, v)) in from.into_iter().enumerate() {
        match into.get_mut(k) {
            Some((_, sum)) => *sum += v,
            None => into.push((name, v)),
        }
    }
}

/// A held-out pass over `n` items in micro-batches of `batch_size`: the means of the loss
/// and of the extra metrics over all units (tokens or pairs).
pub(crate) fn eval_in_batches(
    n: usize,
    batch_size: usize,
    mut micro: impl FnMut(&[usize]) -> Result<MicroBatch>,
) -> Result<EvalLine> {
    let (mut loss, mut count) = (0f64, 0f64);
    let mut extra = Vec::new();
    let all: Vec<usize> = (0..n).collect();
    for idx in all.chunks(batch_size.max(1)) {
        let m = micro(idx)?;
        loss += m.sum.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        count += f64::from(m.count);
        add_extra(&mut extra, m.extra);
    }
    let count = count.max(1.0);
    Ok(EvalLine {
        loss: (loss / count) as f32,
        extra: extra.into_iter().map(|(k, v)| (k, v / count)).collect(),
        named: Vec::new(),
    })
}

/// A held-out evaluation.
pub(crate) struct EvalLine {
    /// The mean loss.
    pub(crate) loss: f32,
    /// Further means, logged with an `eval_` prefix and shown on the progress line.
    pub(crate) extra: Vec<(&'static str, f64)>,
    /// Metrics named by the data (RewardBench's subsets and sections), logged with an
    /// `eval_` prefix but, being many, kept off the progress line.
    pub(crate) named: Vec<(String, f64)>,
}

impl EvalLine {
    /// The `metrics.jsonl` line of this evaluation at `step`.
    fn metrics_line(&self, step: usize) -> serde_json::Value {
        let mut line = serde_json::json!({"step": step, "eval_loss": self.loss});
        for (k, v) in &self.extra {
            line[format!("eval_{k}")] = (*v).into();
        }
        for (k, v) in &self.named {
            line[format!("eval_{k}")] = (*v).into();
        }
        line
    }

    /// What the progress bar prints for it.
    fn progress_line(&self, step: usize) -> String {
        format!(
            "step {step}: eval loss {:.4}{}",
            self.loss,
            shown(&self.extra)
        )
    }
}

/// SFT: the completion-only next-token loss, per target token.
struct SftObjective {
    train: Vec<Tokenized>,
    eval: Option<Vec<Tokenized>>,
    pad: u32,
    report: serde_json::Value,
}

impl SftObjective {
    fn new(cfg: &SftConfig, tok: &Tokenizer) -> Result<Self> {
        let (train, train_report) = tokenize_all(&cfg.train_data, cfg, tok)?;
        if train.is_empty() {
            return Err(Error::Data {
                path: cfg.train_data.clone(),
                line: 0,
                message: "no example has completion tokens".into(),
            });
        }
        let (eval, eval_report) = match &cfg.eval_data {
            Some(p) => {
                let (mut set, report) = tokenize_all(p, cfg, tok)?;
                if cfg.eval_limit > 0 {
                    set.truncate(cfg.eval_limit);
                }
                (Some(set), Some(report))
            }
            None => (None, None),
        };
        Ok(Self {
            train,
            eval,
            pad: tok.pad_id,
            report: serde_json::json!({"train": train_report, "eval": eval_report}),
        })
    }
}

impl Objective for SftObjective {
    fn len(&self) -> usize {
        self.train.len()
    }

    fn estimate_rows(&self, batch_size: usize) -> (usize, usize) {
        let seq = self.train.iter().map(|t| t.ids.len()).max().unwrap_or(2);
        (batch_size, seq)
    }

    fn forward(&mut self, model: &mut CausalLm, idx: &[usize]) -> Result<MicroBatch> {
        let batch: Vec<&Tokenized> = idx.iter().map(|&i| &self.train[i]).collect();
        let tokens = batch.iter().map(|b| b.ids.len()).sum();
        let (inputs, ids, mask) = collate(&batch, self.pad, model.device())?;
        let hidden = model.forward_hidden(&inputs, None)?;
        let (sum, count) =
            masked_nll_from_hidden(&hidden, model.lm_head_weight(), &ids, &mask, true)?;
        Ok(MicroBatch {
            sum,
            count,
            tokens,
            extra: Vec::new(),
        })
    }

    fn has_eval(&self) -> bool {
        self.eval.is_some()
    }

    fn eval(&mut self, model: &mut CausalLm, batch_size: usize) -> Result<EvalLine> {
        let set = self.eval.as_deref().unwrap_or_default();
        let device = model.device().clone();
        Ok(EvalLine {
            loss: eval_loss(model, set, batch_size, self.pad, &device)?,
            extra: Vec::new(),
            named: Vec::new(),
        })
    }
}

/// What to change so a run fits in memory.
/// The [`Error::OutOfMemory`] for a stop at `step` found by `check`, with the measured use
/// and limit (MiB) when there are some, naming the checkpoint to resume from.
fn out_of_memory(
    cfg: &SftConfig,
    step: usize,
    check: MemoryCheck,
    measured: Option<(u64, u64)>,
    last_checkpoint: Option<PathBuf>,
) -> Error {
    Error::OutOfMemory {
        step,
        check,
        used_mib: measured.map(|m| m.0),
        limit_mib: measured.map(|m| m.1),
        last_checkpoint,
        hint: memory_hint(cfg, check),
    }
}

fn memory_hint(cfg: &SftConfig, check: MemoryCheck) -> String {
    let mut hint = format!(
        "lower batch_size (now {}; raise grad_accum to keep the effective batch) or max_len \
         (now {})",
        cfg.batch_size, cfg.max_len
    );
    if cfg.lora_rank == 0 {
        hint += ", or train LoRA adapters (lora_rank > 0) instead of every weight";
    } else {
        hint += &format!(", or lower lora_rank (now {})", cfg.lora_rank);
    }
    if check != MemoryCheck::Device {
        hint += match cfg.memory_limit_mib {
            Some(_) => "; or raise memory_limit_mib if the machine has the memory",
            None => {
                "; or set memory_limit_mib above the default (90% of what was available at \
                 start) if more will be free"
            }
        };
    }
    hint
}

/// Whether `e` is an accelerator's allocation failure (CUDA: `CUDA_ERROR_OUT_OF_MEMORY`,
/// "out of memory"; cuBLAS: `CUBLAS_STATUS_ALLOC_FAILED`). Never on the CPU, where a failed
/// allocation aborts the process and the memory guard is what stops the run.
fn is_device_oom(e: &Error, device: &Device) -> bool {
    !device.is_cpu() && says_out_of_memory(e)
}

fn says_out_of_memory(e: &Error) -> bool {
    let Error::Candle(c) = e else { return false };
    let text = c.to_string().to_ascii_lowercase();
    ["out of memory", "out_of_memory", "alloc_failed"]
        .iter()
        .any(|s| text.contains(s))
}

/// The estimate's view of `model` (weights and activations in `dtype`) and the optimizer's
/// tensors.
fn model_shape(model: &mut CausalLm, opt: &AdamW, lora: bool, dtype: DType) -> ModelShape {
    let json: serde_json::Value = serde_json::from_str(&model.config_json()).unwrap_or_default();
    let field = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| json.get(*k)?.as_u64())
            .map(|v| v as usize)
    };
    let (layers, hidden, vocab) = (model.num_layers(), model.hidden_size(), model.vocab_size());
    let bytes = |t: &Tensor| (t.elem_count() * t.dtype().size_in_bytes()) as u64;
    let trainable_bytes: u64 = opt.vars().map(|(_, v)| bytes(v.as_tensor())).sum();
    let weight_bytes = if lora {
        let linears = model.linears_mut();
        let elem = linears
            .first()
            .map_or(4, |(_, l)| l.weight().dtype().size_in_bytes());
        let projections: u64 = linears.iter().map(|(_, l)| bytes(l.weight())).sum();
        // The embedding is not a projection; an untied LM head is left out (the count errs low).
        projections + (vocab * hidden * elem) as u64 + trainable_bytes
    } else {
        trainable_bytes
    };
    // Gradient sums are f32 whatever the weights' dtype.
    let grad_bytes: u64 = opt.vars().map(|(_, v)| 4 * v.elem_count() as u64).sum();
    ModelShape {
        layers,
        hidden,
        intermediate: field(&["intermediate_size", "n_inner"]).unwrap_or(4 * hidden),
        heads: field(&["num_attention_heads", "n_head"]).unwrap_or(1),
        vocab,
        weight_bytes,
        optimizer_bytes: grad_bytes + opt.state_bytes(),
        activation_bytes: dtype.size_in_bytes() as u64,
        fused_kernels: model.device().is_cpu() && dtype == DType::F32,
    }
}

fn setup(cfg: &SftConfig, device: &Device) -> Result<load::Trainable> {
    let lora = (cfg.lora_rank > 0).then(|| LoraConfig {
        rank: cfg.lora_rank,
        alpha: cfg.lora_alpha,
        dropout: cfg.lora_dropout,
        targets: cfg.lora_targets.clone(),
        seed: cfg.seed,
    });
    load::trainable(&cfg.model, lora, cfg.dtype.dtype(), device)
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
        let hidden = model.forward_hidden(&inputs, None)?.detach();
        let (s, c) = masked_nll_from_hidden(&hidden, model.lm_head_weight(), &ids, &mask, false)?;
        sum += s.to_scalar::<f32>()?;
        count += c;
    }
    Ok(sum / count.max(1.0))
}

/// What the micro-batches of one step add up to.
struct StepLoss {
    sum: f32,
    count: f32,
    tokens: usize,
    /// The objective's extra metrics, summed like `sum`.
    extra: Vec<(&'static str, f64)>,
}

/// Forward and backward passes over the `grad_accum` micro-batches of optimizer step
/// `step + 1` (0-based `step`), adding the gradients to `acc`. Stops on a non-finite loss and,
/// on the first forward pass of the process, when memory is over the limit.
#[allow(
    clippy::too_many_arguments,
    reason = "the loop's state, passed once per step; a struct would only rename it"
)]
fn accumulate(
    cfg: &SftConfig,
    model: &mut CausalLm,
    opt: &AdamW,
    acc: &mut GradAccumulator,
    objective: &mut dyn Objective,
    step: usize,
    guard: &mut MemoryGuard<'_>,
    last_checkpoint: Option<&Path>,
) -> Result<StepLoss> {
    let mut out = StepLoss {
        sum: 0.0,
        count: 0.0,
        tokens: 0,
        extra: Vec::new(),
    };
    for j in 0..cfg.grad_accum {
        let idx = crate::data::order::batch(
            step * cfg.grad_accum + j,
            cfg.batch_size,
            objective.len(),
            cfg.seed,
        );
        if cfg.lora_rank > 0 && cfg.lora_dropout > 0.0 {
            lora::reseed_dropout(model, step as u64, j as u64)?;
        }
        let micro = objective.forward(model, &idx)?;
        out.tokens += micro.tokens;
        let count = micro.count;
        // Each micro-batch contributes its mean, averaged over the accumulation.
        let loss = (micro.sum.clone() / (count.max(1.0) as f64 * cfg.grad_accum as f64))?;
        let value = micro.sum.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        if !value.is_finite() {
            return Err(Error::NonFiniteLoss {
                step: step + 1,
                loss: value,
                last_checkpoint: last_checkpoint.map(Path::to_path_buf),
            });
        }
        // The activations are alive here and the backward pass will add as much again, so a
        // run that is already over the limit stops before it is killed.
        if !guard.checked_forward {
            guard.checked_forward = true;
            if let Some((used, limit)) = guard.over() {
                return Err(out_of_memory(
                    cfg,
                    step + 1,
                    MemoryCheck::FirstForward,
                    Some((used, limit)),
                    last_checkpoint.map(Path::to_path_buf),
                ));
            }
        }
        out.sum += value;
        out.count += count;
        add_extra(&mut out.extra, micro.extra);
        acc.add(opt.vars().map(|(_, v)| v), &loss.backward()?)?;
    }
    Ok(out)
}

/// Runs (or resumes) supervised fine-tuning as configured.
pub fn train(cfg: &SftConfig, opts: &TrainOptions) -> Result<Summary> {
    train_with(cfg, opts, &mut || memory::resident().map(|r| r.peak_mib))
}

/// [`train`] with the probe of peak resident memory (MiB) given, so tests can stand in for
/// `/proc/self/status`.
fn train_with(
    cfg: &SftConfig,
    opts: &TrainOptions,
    peak_mib: &mut dyn FnMut() -> Option<u64>,
) -> Result<Summary> {
    let settings = RunSettings {
        table: cfg.to_table(),
        text: cfg.to_toml(),
    };
    run_objective(cfg, &settings, opts, peak_mib, &mut |tok, _| {
        let sft = SftObjective::new(cfg, tok)?;
        let report = sft.report.clone();
        Ok((Box::new(sft) as Box<dyn Objective>, report))
    })
}

/// Runs (or resumes) a command whose settings are SFT's plus `T`'s ([`WithSft`]) on SFT's
/// loop, with the objective `make` builds once the model and tokenizer are loaded.
pub(crate) fn train_extended<T: OwnSettings>(
    cfg: &WithSft<T>,
    opts: &TrainOptions,
    make: &mut MakeObjective<'_>,
) -> Result<Summary> {
    let settings = RunSettings {
        table: cfg.to_table(),
        text: cfg.to_toml(),
    };
    let mut peak = || memory::resident().map(|r| r.peak_mib);
    run_objective(&cfg.train, &settings, opts, &mut peak, make)
}

/// What a run directory records of a command's settings: the table a resume is checked
/// against and the `config.toml` text (a command may add keys to SFT's).
pub(crate) struct RunSettings {
    /// The resolved settings.
    pub(crate) table: toml::Table,
    /// `config.toml` as written.
    pub(crate) text: String,
}

/// Builds a run's objective once the model and tokenizer are loaded; also returns what
/// goes into `data.json`.
pub(crate) type MakeObjective<'a> =
    dyn FnMut(&Tokenizer, &CausalLm) -> Result<(Box<dyn Objective>, serde_json::Value)> + 'a;

/// The loop of [`train`] with another objective (DPO's): the run directory, resume,
/// checkpoints, memory guard, interrupts, eval schedule and final weights as SFT's.
pub(crate) fn run_objective(
    cfg: &SftConfig,
    settings: &RunSettings,
    opts: &TrainOptions,
    peak_mib: &mut dyn FnMut() -> Option<u64>,
    make: &mut MakeObjective<'_>,
) -> Result<Summary> {
    cfg.validate()?;
    cfg.check_inputs()?;
    // Read before the model is loaded: what the process holds now plus what is available is
    // what it can grow to.
    let limit_mib = cfg.memory_limit_mib.or_else(memory::default_limit_mib);
    let mut guard = MemoryGuard::new(limit_mib, peak_mib);
    let device = crate::device(&cfg.device)?;
    let out = &cfg.output_dir;
    // Settings against what the directory holds, before anything is loaded or written.
    let mut run = match run::open(
        out,
        &settings.table,
        cfg.resume,
        cfg.max_steps,
        MAY_CHANGE_ON_RESUME,
    )? {
        Opening::Finished { steps, final_dir } => {
            let log = out.join(run::dir::METRICS_FILE);
            let last = |key| run::metrics::last_value(&log, key).map(|v| v as f32);
            return Ok(Summary {
                steps,
                last_loss: last("loss").unwrap_or(f32::NAN),
                eval_loss: last("eval_loss"),
                last_checkpoint: run::checkpoint::list(&out.join("checkpoints"))
                    .pop()
                    .map(|(_, p)| p),
                final_dir: Some(final_dir),
                resumed_from: steps,
                memory_limit_mib: limit_mib,
                already_finished: true,
            });
        }
        Opening::Start(start) => start,
    };
    let load::Trainable {
        mut model,
        tokenizer,
        vars,
        lora,
        full,
    } = match setup(cfg, &device) {
        Ok(s) => s,
        // A model too large for the accelerator fails here, before any step.
        Err(e) if is_device_oom(&e, &device) => {
            return Err(out_of_memory(
                cfg,
                run.resume_from.as_ref().map_or(0, |(s, _)| *s) + 1,
                MemoryCheck::Device,
                None,
                run.resume_from.map(|(_, p)| p),
            ));
        }
        Err(e) => return Err(e),
    };
    let (mut objective, report) = make(&tokenizer, &model)?;
    let params = AdamWParams {
        lr: cfg.lr,
        beta1: cfg.beta1,
        beta2: cfg.beta2,
        eps: cfg.eps,
        weight_decay: cfg.weight_decay,
    };
    let mut vars = vars;
    vars.extend(objective.trainable());
    let mut opt = AdamW::new(vars, params)?;
    let mut ckpts = Checkpoints::new(
        run.dir.checkpoints(),
        lora.is_some(),
        cfg.dtype,
        cfg.keep_last,
    );
    let start = match &run.resume_from {
        Some((_, newest)) => ckpts.resume_from(newest, &mut opt, &device)?,
        None => 0,
    };
    if let Some(limit) = limit_mib {
        // The longest batch the data can form; `max_len` already cut every example.
        let (rows, seq) = objective.estimate_rows(cfg.batch_size);
        let shape = model_shape(&mut model, &opt, lora.is_some(), cfg.dtype.dtype());
        let need = Estimate::new(&shape, rows, seq.max(2)).total_mib();
        if need > limit {
            return Err(out_of_memory(
                cfg,
                start + 1,
                MemoryCheck::Estimate,
                Some((need, limit)),
                ckpts.last.clone(),
            ));
        }
    }
    // The inputs are valid: from here on the run directory is written.
    let mut metrics = run.begin(&settings.text, start)?;
    run.dir
        .write_atomic("data.json", report.to_string().as_bytes())?;
    eprintln!("{}", start_line(&run, start, cfg.max_steps));
    let mut progress = Progress::new(opts.progress, start, cfg.max_steps);
    let stopped = |progress: &Progress, ckpts: &mut Checkpoints, opt: &AdamW, step| {
        progress.abandon();
        opts.interrupt.requested().map(|signal| Error::Interrupted {
            signal,
            step,
            max_steps: cfg.max_steps,
            checkpoint: ckpts.for_stop(step, opt),
        })
    };
    if start < cfg.max_steps
        && let Some(e) = stopped(&progress, &mut ckpts, &opt, start)
    {
        return Err(e);
    }
    if start == 0 && objective.has_eval() && objective.eval_at_start() {
        model.set_training(false);
        let e = objective.eval(&mut model, cfg.batch_size)?;
        metrics.write(&e.metrics_line(0))?;
        progress.println(&e.progress_line(0));
    }
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
        let accumulated = accumulate(
            cfg,
            &mut model,
            &opt,
            &mut acc,
            objective.as_mut(),
            step,
            &mut guard,
            ckpts.last.as_deref(),
        )
        .and_then(|l| {
            let grad_norm = acc.norm()?;
            if cfg.grad_clip > 0.0 && grad_norm > cfg.grad_clip {
                acc.scale(cfg.grad_clip / (grad_norm + 1e-6))?;
            }
            Ok((l, grad_norm))
        });
        let (step_loss, grad_norm) = match accumulated {
            Ok(v) => v,
            Err(e) => {
                progress.abandon();
                if !is_device_oom(&e, &device) {
                    return Err(e);
                }
                // The parameters are still those of `step`: they can be saved.
                return Err(out_of_memory(
                    cfg,
                    step + 1,
                    MemoryCheck::Device,
                    None,
                    ckpts.for_stop(step, &opt),
                ));
            }
        };
        if let Err(e) = opt.step(&acc.take()) {
            progress.abandon();
            if !is_device_oom(&e, &device) {
                return Err(e);
            }
            // Some tensors may already hold the new values: only an older checkpoint is whole.
            return Err(out_of_memory(
                cfg,
                step + 1,
                MemoryCheck::Device,
                None,
                ckpts.last.clone(),
            ));
        }
        step += 1;
        tokens_seen += step_loss.tokens;
        last_loss = step_loss.sum / step_loss.count.max(1.0);
        let secs = t0.elapsed().as_secs_f64();
        let tok_s = tokens_seen as f64 / secs.max(1e-9);
        let peak_rss_mib = memory::resident().map(|r| r.peak_mib);
        let mut line = serde_json::json!({
            "step": step, "loss": last_loss, "lr": lr, "grad_norm": grad_norm,
            "tokens": tokens_seen, "tokens_per_s": tok_s, "elapsed_s": secs,
            "peak_rss_mib": peak_rss_mib});
        let count = f64::from(step_loss.count.max(1.0));
        let extra: Vec<(&str, f64)> = step_loss
            .extra
            .iter()
            .map(|(k, v)| (*k, v / count))
            .collect();
        for (k, v) in &extra {
            line[*k] = (*v).into();
        }
        metrics.write(&line)?;
        progress.step(
            step,
            &format!("loss {last_loss:.4}{} | {tok_s:.0} tok/s", shown(&extra)),
        );
        if objective.has_eval() && (step % cfg.eval_every == 0 || step == cfg.max_steps) {
            model.set_training(false);
            let e = match objective.eval(&mut model, cfg.batch_size) {
                Ok(e) => e,
                Err(e) if is_device_oom(&e, &device) => {
                    progress.abandon();
                    let last = ckpts.for_stop(step, &opt);
                    return Err(out_of_memory(cfg, step, MemoryCheck::Device, None, last));
                }
                Err(e) => return Err(e),
            };
            model.set_training(true);
            last_eval = Some(e.loss);
            metrics.write(&e.metrics_line(step))?;
            progress.println(&e.progress_line(step));
        }
        if let Err(e) =
            guard::checkpoint_if_due(&mut ckpts, &opt, step, cfg.save_every, cfg.max_steps)
        {
            progress.abandon();
            return Err(e);
        }
        if let Some((used, limit)) = guard.stop_after(step, cfg.max_steps) {
            progress.abandon();
            let last = ckpts.for_stop(step, &opt);
            return Err(out_of_memory(
                cfg,
                step,
                MemoryCheck::AfterStep,
                Some((used, limit)),
                last,
            ));
        }
        // A stop request after the last step just lets the run finish.
        if step < cfg.max_steps
            && let Some(e) = stopped(&progress, &mut ckpts, &opt, step)
        {
            metrics.write(&serde_json::json!({"event": "interrupted", "step": step}))?;
            return Err(e);
        }
        if opts.stop_after == Some(step) && step < cfg.max_steps {
            progress.abandon();
            return Ok(Summary {
                steps: step,
                last_loss,
                eval_loss: last_eval,
                last_checkpoint: ckpts.last,
                final_dir: None,
                resumed_from: start,
                memory_limit_mib: limit_mib,
                already_finished: false,
            });
        }
    }
    progress.finish();
    model.set_training(false);
    let final_dir = run.dir.path().join("final");
    save_final(
        &final_dir,
        cfg,
        &model,
        &tokenizer,
        lora.as_ref(),
        full.as_ref(),
    )?;
    objective.save_final(&final_dir)?;
    Ok(Summary {
        steps: step,
        last_loss,
        eval_loss: last_eval,
        last_checkpoint: ckpts.last,
        final_dir: Some(final_dir),
        resumed_from: start,
        memory_limit_mib: limit_mib,
        already_finished: false,
    })
}

/// ` | name value` for each extra metric.
fn shown(extra: &[(&str, f64)]) -> String {
    extra
        .iter()
        .map(|(k, v)| format!(" | {k} {v:.3}"))
        .collect()
}

/// The line a run starts with: a fresh start, or the step it resumes from and what changed.
fn start_line(run: &run::Start, start: usize, max_steps: usize) -> String {
    let dir = run.dir.path().display();
    match &run.resume_from {
        None => format!("starting a run in {dir}: {max_steps} steps"),
        Some((_, ckpt)) => {
            let changed = if run.changes.is_empty() {
                String::new()
            } else {
                let list: Vec<String> = run.changes.iter().map(ToString::to_string).collect();
                format!("; changed: {}", list.join(", "))
            };
            format!(
                "resuming {dir} from step {start} of {max_steps} ({}){changed}",
                ckpt.display()
            )
        }
    }
}

/// Writes the final weights: the adapter, or an HF directory of the whole model.
fn save_final(
    final_dir: &Path,
    cfg: &SftConfig,
    model: &CausalLm,
    tokenizer: &Tokenizer,
    lora: Option<&(LoraConfig, VarMap)>,
    full: Option<&VarMap>,
) -> Result<()> {
    match (lora, full) {
        (Some((lc, vm)), _) => lora::save(final_dir, lc, vm)?,
        (None, Some(vm)) => {
            // The weights as the model holds them (bf16 in a bf16 run), labelled the way
            // transformers labels them.
            let tensors = crate::load::hf::varmap_tensors(vm)?;
            let mut config: serde_json::Value =
                serde_json::from_str(&model.config_json()).unwrap_or_default();
            if let Some(o) = config.as_object_mut() {
                let name = match cfg.dtype {
                    Precision::F32 => "float32",
                    Precision::Bf16 => "bfloat16",
                };
                o.insert("torch_dtype".into(), name.into());
            }
            crate::load::hf::save(
                final_dir,
                &config.to_string(),
                &tensors,
                Some(&tokenizer.to_json()?),
            )?;
            let p = final_dir.join("tokenizer_config.json");
            std::fs::write(&p, tokenizer.tokenizer_config_json()).map_err(|e| Error::io(&p, e))?;
        }
        (None, None) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A LoRA run on a tiny GPT-2 written to `dir` (the integration tests' setup, in small).
    fn tiny_lora_run(dir: &Path) -> SftConfig {
        let model_json = r#"{"model_type": "gpt2", "vocab_size": 272, "n_positions": 64,
            "n_embd": 32, "n_layer": 2, "n_head": 4, "layer_norm_epsilon": 1e-5}"#;
        let (_, vm) = crate::load::hf::random_model(model_json, 3, &Device::Cpu).expect("model");
        let tensors = crate::load::hf::varmap_tensors(&vm).expect("tensors");
        let tok = crate::load::tokenizer::tiny_tokenizer_json(&["<|endoftext|>"]);
        crate::load::hf::save(&dir.join("model"), model_json, &tensors, Some(&tok)).expect("save");
        let data: String = (0..8)
            .map(|i| format!("{{\"prompt\": \"q{i}\", \"completion\": \"a{i}\"}}\n"))
            .collect();
        std::fs::write(dir.join("train.jsonl"), data).expect("data");
        let text = format!(
            "model = {:?}\ntrain_data = {:?}\noutput_dir = {:?}\nbatch_size = 2\nmax_steps = 6\n\
             lr = 1e-2\nsave_every = 100\nlora_rank = 4\nlora_targets = [\"c_attn\"]\n\
             lora_dropout = 0.1\nmemory_limit_mib = 1000\n",
            dir.join("model"),
            dir.join("train.jsonl"),
            dir.join("run"),
        );
        SftConfig::from_toml(&text, Path::new("test.toml")).expect("config")
    }

    fn adapter(run: &Path) -> HashMap<String, Tensor> {
        candle_core::safetensors::load(run.join("final/adapter_model.safetensors"), &Device::Cpu)
            .expect("adapter")
    }

    #[test]
    fn memory_over_the_limit_after_a_step_writes_that_step_and_resuming_from_it_is_exact() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut cfg = tiny_lora_run(dir.path());
        // Probe calls: the first forward pass, then one after each step. The peak "jumps"
        // to 5000 MiB after step 3; no checkpoint is due until the end (save_every = 100).
        let mut calls = 0;
        let mut probe = || {
            calls += 1;
            Some(if calls >= 4 { 5000 } else { 10 })
        };
        let err = train_with(&cfg, &TrainOptions::default(), &mut probe).expect_err("stops");
        let msg = err.to_string();
        let Error::OutOfMemory {
            step,
            check,
            used_mib,
            limit_mib,
            last_checkpoint,
            ..
        } = err
        else {
            panic!("unexpected error: {msg}")
        };
        assert_eq!(
            (step, check, used_mib, limit_mib),
            (3, MemoryCheck::AfterStep, Some(5000), Some(1000)),
            "{msg}"
        );
        let ckpt = last_checkpoint.expect("a checkpoint of step 3 was written");
        assert_eq!(ckpt, cfg.output_dir.join("checkpoints/step-00000003"));
        assert!(
            msg.contains("peak resident memory 5000 MiB after step 3")
                && msg.contains("limit of 1000 MiB")
                && msg.contains(&ckpt.display().to_string())
                && msg.contains("lower lora_rank (now 4)")
                && msg.contains("raise memory_limit_mib"),
            "{msg}"
        );
        // Resuming from it (the real probe, the same limit) ends bit-identical to a run that
        // never stopped, dropout included.
        let resumed = train(&cfg, &TrainOptions::default()).expect("resumed");
        assert_eq!(resumed.resumed_from, 3);
        let after_stop = adapter(&cfg.output_dir);
        cfg.output_dir = dir.path().join("straight");
        train(&cfg, &TrainOptions::default()).expect("straight");
        let straight = adapter(&cfg.output_dir);
        for (k, t) in &straight {
            let (a, b) = (
                t.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("a"),
                after_stop[k]
                    .flatten_all()
                    .and_then(|t| t.to_vec1::<f32>())
                    .expect("b"),
            );
            assert!(
                a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{k} differs"
            );
        }
    }

    #[test]
    fn a_peak_over_the_limit_after_the_last_step_still_finishes_the_run() {
        let dir = tempfile::tempdir().expect("tmp");
        let mut cfg = tiny_lora_run(dir.path());
        cfg.max_steps = 1;
        let mut calls = 0;
        let mut probe = || {
            calls += 1;
            Some(if calls >= 2 { 5000 } else { 10 })
        };
        let s = train_with(&cfg, &TrainOptions::default(), &mut probe).expect("finishes");
        assert!(s.final_dir.is_some_and(|d| d.exists()));
    }

    #[test]
    fn only_an_accelerators_out_of_memory_error_becomes_out_of_memory() {
        let cuda = Error::Candle(candle_core::Error::Msg(
            "DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")".into(),
        ));
        assert!(says_out_of_memory(&cuda));
        assert!(!is_device_oom(&cuda, &Device::Cpu), "never on the CPU");
        let shape = Error::Candle(candle_core::Error::Msg("shape mismatch".into()));
        assert!(!says_out_of_memory(&shape));
        assert!(says_out_of_memory(&Error::Candle(candle_core::Error::Msg(
            "cublas: CUBLAS_STATUS_ALLOC_FAILED".into()
        ))));
        assert!(!says_out_of_memory(&Error::InvalidArgument(
            "out of memory".into()
        )));
        let cfg = SftConfig::from_toml(
            "model = \"m\"\ntrain_data = \"t\"\noutput_dir = \"o\"\nlora_rank = 8\n",
            Path::new("t.toml"),
        )
        .expect("config");
        let e = Error::OutOfMemory {
            step: 7,
            check: MemoryCheck::Device,
            used_mib: None,
            limit_mib: None,
            last_checkpoint: None,
            hint: memory_hint(&cfg, MemoryCheck::Device),
        };
        let msg = e.to_string();
        assert!(
            msg.contains("device could not allocate during step 7")
                && msg.contains("No usable checkpoint")
                && msg.contains("lower batch_size (now 8")
                && msg.contains("lower lora_rank (now 8)")
                && !msg.contains("memory_limit_mib"),
            "{msg}"
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
