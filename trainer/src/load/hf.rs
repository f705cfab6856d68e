//! HF checkpoint directories: `config.json`, `*.safetensors` (single file or sharded with
//! `model.safetensors.index.json`), `tokenizer.json` and `tokenizer_config.json`.
//!
//! Weights are read fully into memory (no `unsafe` mmap) and converted to the dtype asked
//! for (f32 unless said otherwise), tensor by tensor as they are read.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr_lite::normal;

use super::Loaded;
use super::tokenizer::Tokenizer;
use crate::error::{Error, Result};
use crate::models::{self, CausalLm};

/// The safetensors files of a directory: the index's shards, else `model.safetensors`, else
/// every `*.safetensors` except LoRA adapters.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|e| Error::io(&index, e))?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Json {
            path: index.clone(),
            source: e,
        })?;
        let map = v["weight_map"]
            .as_object()
            .ok_or_else(|| Error::checkpoint(&index, "no `weight_map` object"))?;
        let files: BTreeSet<&str> = map.values().filter_map(|f| f.as_str()).collect();
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "safetensors")
                && p.file_name()
                    .is_some_and(|n| n != "adapter_model.safetensors")
        })
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::checkpoint(dir, "no *.safetensors weights"));
    }
    Ok(files)
}

/// Every tensor of the directory's weight files, as f32 on `device`.
pub fn read_tensors(dir: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    read_tensors_as(dir, DType::F32, device)
}

/// Every tensor of the directory's weight files, as `dtype` on `device`. Each is converted
/// as its file is read, so a bf16 checkpoint read as bf16 is never widened.
pub fn read_tensors_as(
    dir: &Path,
    dtype: DType,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let mut all = HashMap::new();
    for f in weight_files(dir)? {
        for (k, t) in candle_core::safetensors::load(&f, device)? {
            all.insert(k, t.to_dtype(dtype)?);
        }
    }
    Ok(all)
}

/// Builds an f32 model from named tensors: frozen constants, or trainable variables in a
/// [`VarMap`].
pub fn model_from_tensors(
    config_json: &str,
    tensors: HashMap<String, Tensor>,
    trainable: bool,
    device: &Device,
    path: &Path,
) -> Result<(CausalLm, Option<VarMap>)> {
    model_from_tensors_as(config_json, tensors, trainable, DType::F32, device, path)
}

/// [`model_from_tensors`] with the weights (and so the activations) in `dtype`; tensors of
/// another dtype are converted.
pub fn model_from_tensors_as(
    config_json: &str,
    tensors: HashMap<String, Tensor>,
    trainable: bool,
    dtype: DType,
    device: &Device,
    path: &Path,
) -> Result<(CausalLm, Option<VarMap>)> {
    if trainable {
        let varmap = VarMap::new();
        {
            let mut data = varmap
                .data()
                .lock()
                .map_err(|_| Error::InvalidArgument("poisoned VarMap".into()))?;
            for (k, t) in tensors {
                data.insert(k, Var::from_tensor(&t.to_dtype(dtype)?)?);
            }
        }
        // A VarMap hands out its variables as stored; the dtype only matters for a missing one.
        let vb = VarBuilder::from_varmap(&varmap, dtype, device);
        let model = models::from_config_json(config_json, vb, path)?;
        Ok((model, Some(varmap)))
    } else {
        // Frozen means no gradient: tensors that are (views of) variables would otherwise
        // still be tracked, and every projection would compute an unused weight gradient.
        let tensors = tensors.into_iter().map(|(k, t)| (k, t.detach())).collect();
        let vb = VarBuilder::from_tensors(tensors, dtype, device);
        Ok((models::from_config_json(config_json, vb, path)?, None))
    }
}

/// Loads an HF directory with f32 weights; the tokenizer is loaded when `tokenizer.json`
/// exists.
pub fn load(dir: &Path, trainable: bool, device: &Device) -> Result<Loaded> {
    load_as(dir, trainable, DType::F32, device)
}

/// Loads an HF directory with weights in `dtype`.
pub fn load_as(dir: &Path, trainable: bool, dtype: DType, device: &Device) -> Result<Loaded> {
    let cfg_path = dir.join("config.json");
    let config_json = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
    let tensors = read_tensors_as(dir, dtype, device)?;
    let (model, varmap) =
        model_from_tensors_as(&config_json, tensors, trainable, dtype, device, dir)?;
    let tokenizer = if dir.join("tokenizer.json").exists() {
        Some(Tokenizer::from_hf_dir(dir)?)
    } else {
        None
    };
    Ok(Loaded {
        model,
        tokenizer,
        varmap,
    })
}

/// A freshly initialised trainable model for `config_json`, seeded: weights N(0, 0.02),
/// norm scales 1, biases 0 (GPT-2's initialisation, applied to every family).
pub fn random_model(config_json: &str, seed: u64, device: &Device) -> Result<(CausalLm, VarMap)> {
    let varmap = VarMap::new();
    // First pass: let the model declare its variables (candle's own, unseeded, init).
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    models::from_config_json(config_json, vb, Path::new("config.json"))?;
    // Second pass: overwrite them from a seeded generator in name order.
    let mut rng = StdRng::seed_from_u64(seed);
    {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| Error::InvalidArgument("poisoned VarMap".into()))?;
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for name in names {
            let var = &data[name];
            let n = var.elem_count();
            let values: Vec<f32> = if name.ends_with("bias") {
                vec![0.0; n]
            } else if name.ends_with("norm.weight") || name.contains("ln_") {
                vec![1.0; n]
            } else {
                (0..n).map(|_| 0.02 * normal(&mut rng)).collect()
            };
            var.set(&Tensor::from_vec(values, var.shape(), device)?)?;
        }
    }
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let model = models::from_config_json(config_json, vb, Path::new("config.json"))?;
    Ok((model, varmap))
}

/// Writes an HF directory: `config.json`, `model.safetensors` and optionally `tokenizer.json`.
pub fn save(
    dir: &Path,
    config_json: &str,
    tensors: &HashMap<String, Tensor>,
    tokenizer_json: Option<&str>,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).map_err(|e| Error::io(dir.join(name), e))
    };
    write("config.json", config_json)?;
    // Tied or transposed views are stored as contiguous copies.
    let owned: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), t.contiguous()?)))
        .collect::<Result<_>>()?;
    candle_core::safetensors::save(&owned, dir.join("model.safetensors"))?;
    if let Some(t) = tokenizer_json {
        write("tokenizer.json", t)?;
    }
    Ok(())
}

/// The tensors of a [`VarMap`] by name.
pub fn varmap_tensors(varmap: &VarMap) -> Result<HashMap<String, Tensor>> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| Error::InvalidArgument("poisoned VarMap".into()))?;
    Ok(data
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect())
}

/// A minimal normal sampler (Box–Muller), so seeded init needs no extra crate.
mod rand_distr_lite {
    use rand::Rng;

    pub(super) fn normal(rng: &mut impl Rng) -> f32 {
        let u1: f64 = rng.random_range(f64::MIN_POSITIVE..1.0);
        let u2: f64 = rng.random();
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}
