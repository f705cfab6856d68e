//! Checkpoints: the trainable tensors, the optimizer's state and the step, written whole or
//! not at all.
//!
//! A checkpoint `checkpoints/step-N/` holds `trainable.safetensors` (all weights, or only
//! LoRA adapters), `optimizer.safetensors` (AdamW moments and, for bf16 weights, their f32
//! master copies) and `state.json` (step, LoRA or full, precision). It is written to a
//! temporary directory and renamed, so a kill never leaves a half-written checkpoint (a
//! directory without `state.json` is not taken for one), and only the newest `keep` are
//! kept. Parameters are checked to be finite before a checkpoint is written, so the newest
//! one is always usable. Everything else a run needs to continue exactly (data order,
//! dropout masks) is a function of the seed and the step.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::optim::AdamW;
use crate::precision::Precision;

#[derive(Debug, Serialize, Deserialize)]
struct State {
    step: usize,
    lora: bool,
    /// The run's precision (checkpoints from before it existed are f32).
    #[serde(default)]
    dtype: Precision,
    /// Optimizer updates taken (AdamW's bias correction counts them): more than `step` when
    /// a run step makes several (RL's `num_iterations`); absent in older checkpoints, where
    /// it equals `step`.
    #[serde(default)]
    optimizer_steps: Option<usize>,
    /// A loop's own state that is neither a tensor nor a function of the seed and the step
    /// (PPO's adaptive β), as the loop wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    extra: Option<serde_json::Value>,
}

/// The whole checkpoints in `dir`, oldest first.
pub fn list(dir: &Path) -> Vec<(usize, PathBuf)> {
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

/// Whether every trainable value is finite.
pub fn all_finite(opt: &AdamW) -> Result<bool> {
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

/// Where a run's checkpoints go, and the newest one written or resumed from.
#[derive(Debug)]
pub struct Checkpoints {
    dir: PathBuf,
    lora: bool,
    dtype: Precision,
    keep: usize,
    /// The newest usable checkpoint (`None` until one exists).
    pub last: Option<PathBuf>,
    /// The step the parameters of `last` belong to (the start step when there is none).
    pub last_step: usize,
    /// The loop's own state, written with every checkpoint and read back on resume.
    pub extra: Option<serde_json::Value>,
}

impl Checkpoints {
    /// Checkpoints of a run (LoRA or full, in `dtype`) in `dir`, keeping the newest `keep`.
    pub fn new(dir: PathBuf, lora: bool, dtype: Precision, keep: usize) -> Self {
        Self {
            dir,
            lora,
            dtype,
            keep,
            last: None,
            last_step: 0,
            extra: None,
        }
    }

    /// Restores the optimizer's variables and state from `ckpt` and makes it the newest;
    /// returns its step.
    pub fn resume_from(&mut self, ckpt: &Path, opt: &mut AdamW, device: &Device) -> Result<usize> {
        let step = restore(ckpt, opt, self.dtype, device)?;
        self.extra = read_state(ckpt)?.extra;
        self.last = Some(ckpt.to_path_buf());
        self.last_step = step;
        Ok(step)
    }

    /// Writes the checkpoint of `step` and drops the oldest beyond `keep`.
    pub fn save(&mut self, step: usize, opt: &AdamW) -> Result<PathBuf> {
        let dir = &self.dir;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let final_dir = dir.join(format!("step-{step:08}"));
        let tmp = dir.join(format!(".tmp-step-{step:08}"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        candle_core::safetensors::save(&trainable(opt), tmp.join("trainable.safetensors"))?;
        candle_core::safetensors::save(&opt.state(), tmp.join("optimizer.safetensors"))?;
        let state = State {
            step,
            lora: self.lora,
            dtype: self.dtype,
            optimizer_steps: Some(opt.step_count()),
            extra: self.extra.clone(),
        };
        let state = serde_json::to_string(&state).unwrap_or_default();
        std::fs::write(tmp.join("state.json"), state)
            .map_err(|e| Error::io(tmp.join("state.json"), e))?;
        if final_dir.exists() {
            std::fs::remove_dir_all(&final_dir).map_err(|e| Error::io(&final_dir, e))?;
        }
        std::fs::rename(&tmp, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
        let all = list(dir);
        for (_, old) in all.iter().take(all.len().saturating_sub(self.keep)) {
            std::fs::remove_dir_all(old).map_err(|e| Error::io(old, e))?;
        }
        self.last = Some(final_dir.clone());
        self.last_step = step;
        Ok(final_dir)
    }

    /// The checkpoint to name when a run stops early with parameters (and moments) belonging
    /// to `step`: the existing one for that step, else a new one if the parameters are
    /// finite, else the newest existing one. A failed write is not an error here (memory may
    /// be short, and the older checkpoint is still usable): the newest existing one is named.
    pub fn for_stop(&mut self, step: usize, opt: &AdamW) -> Option<PathBuf> {
        if step == self.last_step || !all_finite(opt).unwrap_or(false) {
            return self.last.clone();
        }
        self.save(step, opt).ok().or_else(|| self.last.clone())
    }
}

fn read_state(ckpt: &Path) -> Result<State> {
    let state_path = ckpt.join("state.json");
    let text = std::fs::read_to_string(&state_path).map_err(|e| Error::io(&state_path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Json {
        path: state_path,
        source: e,
    })
}

/// Restores trainable tensors and optimizer state (moments, master copies) from a checkpoint
/// directory written by a run of precision `dtype`; returns its step.
pub fn restore(ckpt: &Path, opt: &mut AdamW, dtype: Precision, device: &Device) -> Result<usize> {
    let state = read_state(ckpt)?;
    if state.dtype != dtype {
        return Err(Error::config(
            "dtype",
            format!(
                "the checkpoint {} was written with dtype = \"{}\" but this run has \"{}\"; \
                 resume with \"{}\", or start afresh in another output_dir",
                ckpt.display(),
                state.dtype.as_str(),
                dtype.as_str(),
                state.dtype.as_str()
            ),
        ));
    }
    let weights = candle_core::safetensors::load(ckpt.join("trainable.safetensors"), device)?;
    for (name, var) in opt.vars() {
        let t = weights
            .get(name)
            .ok_or_else(|| Error::checkpoint(ckpt, format!("lacks tensor `{name}`")))?;
        if t.dtype() != var.dtype() {
            return Err(Error::checkpoint(
                ckpt,
                format!(
                    "tensor `{name}` is {:?}, the model's is {:?}",
                    t.dtype(),
                    var.dtype()
                ),
            ));
        }
        if t.dims() != var.dims() {
            return Err(Error::checkpoint(
                ckpt,
                format!(
                    "tensor `{name}` has shape {:?}, the model's has {:?} (was the run started \
                     with other LoRA or model settings?)",
                    t.dims(),
                    var.dims()
                ),
            ));
        }
        var.set(t)?;
    }
    let moments = candle_core::safetensors::load(ckpt.join("optimizer.safetensors"), device)?;
    opt.load_state(&moments, state.optimizer_steps.unwrap_or(state.step))?;
    Ok(state.step)
}
