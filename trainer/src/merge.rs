//! `trainer merge`: a LoRA adapter folded into its base model and written as an HF
//! directory (PEFT's `merge_and_unload`). A fine-tuned policy can then start another run
//! (SFT → RL, SFT → a reward model, as RLLR's stages do), or be loaded by a tool that knows
//! no adapters.
//!
//! The adapter is a run directory (its `final/`, the base read from its `config.toml`) or
//! an adapter directory with `--model`. Each adapted projection gets W ← W + (α/r)·B·A in
//! f32; the rest of the weights are copied as loaded (a GGUF base is dequantized). The
//! directory is written beside the target and renamed into place, so a failed merge leaves
//! nothing behind, and an existing target is refused rather than overwritten.

use std::path::{Path, PathBuf};

use candle_core::Device;

use crate::error::{Error, Result};
use crate::soup::ingredient::{self, Kind};

/// What [`merge`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The base model.
    pub base: PathBuf,
    /// The adapter directory read.
    pub adapter: PathBuf,
    /// How many projections were merged.
    pub projections: usize,
}

/// Merges `adapter` (a run or adapter directory) into its base (`model`, or the run's) and
/// writes the result to `output`.
pub fn merge(adapter: &Path, model: Option<&Path>, output: &Path) -> Result<Merged> {
    if output.exists() {
        return Err(Error::InvalidArgument(format!(
            "flag --output: {} exists; merge writes a new directory",
            output.display()
        )));
    }
    let ing = ingredient::resolve(adapter)?;
    if !matches!(ing.kind, Kind::Lora(_)) {
        return Err(Error::InvalidArgument(format!(
            "flag --adapter: {} holds a whole model, not a LoRA adapter: nothing to merge",
            ing.weights_dir.display()
        )));
    }
    let base = ingredient::check(std::slice::from_ref(&ing), model)?.ok_or_else(|| {
        Error::InvalidArgument(format!(
            "flag --model: {} does not record its base model; name it with --model",
            adapter.display()
        ))
    })?;
    let loaded = crate::load::load(&base, true, &Device::Cpu)?;
    let mut lm = loaded.model;
    let varmap = loaded
        .varmap
        .ok_or_else(|| Error::InvalidArgument("merge needs the base's weights".into()))?;
    let tokenizer = loaded
        .tokenizer
        .ok_or_else(|| Error::checkpoint(&base, "no tokenizer"))?;
    crate::lora::load(&mut lm, &ing.weights_dir, &candle_nn::VarMap::new())?;
    let merged = crate::lora::merge_weights(&mut lm)?;
    let mut tensors = crate::load::hf::varmap_tensors(&varmap)?;
    for (name, w) in &merged {
        let key = format!("{name}.weight");
        let stored = tensors
            .get(&key)
            .ok_or_else(|| Error::checkpoint(&base, format!("no tensor {key} to merge into")))?;
        // GPT-2 stores its projections transposed (Conv1D); the projection holds (out, in).
        let w = if stored.dims() == w.dims() {
            w.clone()
        } else if stored.dims() == w.t()?.dims() {
            w.t()?
        } else {
            return Err(Error::checkpoint(
                &base,
                format!(
                    "{key} is {:?}, the merged weight {:?}",
                    stored.dims(),
                    w.dims()
                ),
            ));
        };
        tensors.insert(key, w);
    }
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "merged".into());
    let partial = output.with_file_name(format!(".{name}.partial"));
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(|e| Error::io(&partial, e))?;
    }
    let written = (|| -> Result<()> {
        crate::load::hf::save(
            &partial,
            &lm.config_json(),
            &tensors,
            Some(&tokenizer.to_json()?),
        )?;
        let p = partial.join("tokenizer_config.json");
        std::fs::write(&p, tokenizer.tokenizer_config_json()).map_err(|e| Error::io(&p, e))?;
        std::fs::rename(&partial, output).map_err(|e| Error::io(output, e))
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(e);
    }
    Ok(Merged {
        base,
        adapter: ing.weights_dir,
        projections: merged.len(),
    })
}
