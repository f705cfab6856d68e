//! What goes into a soup: a run directory, an adapter or a model directory, resolved to its
//! weight files, and the checks that make two of them mixable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};
use crate::lora::LoraConfig;
use crate::rl::RlConfig;

/// Adapters or whole models.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// LoRA adapters (`adapter_config.json` + `adapter_model.safetensors`) on a base model.
    Lora(LoraConfig),
    /// A full model directory (`config.json` + `*.safetensors`); the text of its config.
    Full(String),
}

/// One resolved ingredient.
#[derive(Debug, Clone)]
pub struct Ingredient {
    /// The path the user gave.
    pub given: PathBuf,
    /// The directory holding the weights (`RUN/final` for a run directory).
    pub weights_dir: PathBuf,
    /// Adapters or a full model.
    pub kind: Kind,
    /// The base model the run was trained from, when a run's `config.toml` records it.
    pub base: Option<PathBuf>,
    /// The run's settings, when the run was made by `trainer rl` (eval format, rewards).
    pub rl: Option<RlConfig>,
    /// Every tensor's name, dtype and shape.
    pub tensors: BTreeMap<String, (DType, Vec<usize>)>,
}

impl Ingredient {
    /// A short name: the run directory's (or the given directory's) name.
    pub fn name(&self) -> String {
        let named = if self.given.file_name().is_some_and(|n| n == "final") {
            self.given.parent().unwrap_or(&self.given)
        } else {
            &self.given
        };
        named.file_name().map_or_else(
            || named.display().to_string(),
            |n| n.to_string_lossy().into(),
        )
    }

    /// The weight files, in name order.
    pub fn files(&self) -> Result<Vec<PathBuf>> {
        safetensors_in(&self.weights_dir)
    }
}

fn safetensors_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    Ok(files)
}

/// Resolves `path`: a run directory (`config.toml` + `final/`), an adapter directory
/// (`adapter_config.json`) or a model directory (`config.json` + `*.safetensors`).
pub fn resolve(path: &Path) -> Result<Ingredient> {
    let (weights_dir, run_dir) = if path.join("final").is_dir() {
        (path.join("final"), Some(path.to_path_buf()))
    } else {
        let parent = path.parent().filter(|p| p.join("config.toml").is_file());
        (path.to_path_buf(), parent.map(Path::to_path_buf))
    };
    let read = |p: PathBuf| std::fs::read_to_string(&p).map_err(|e| Error::io(p, e));
    let kind = if weights_dir.join("adapter_config.json").is_file() {
        let p = weights_dir.join("adapter_config.json");
        let cfg: LoraConfig = serde_json::from_str(&read(p.clone())?)
            .map_err(|e| Error::Json { path: p, source: e })?;
        Kind::Lora(cfg)
    } else if weights_dir.join("config.json").is_file() {
        Kind::Full(read(weights_dir.join("config.json"))?)
    } else {
        return Err(Error::checkpoint(
            path,
            "not a soup ingredient: expected a run directory (config.toml and final/), an \
             adapter directory (adapter_config.json) or a model directory (config.json and \
             *.safetensors)",
        ));
    };
    let (base, rl) = match &run_dir {
        Some(run) => {
            let p = run.join("config.toml");
            let text = read(p.clone())?;
            let table: toml::Table = text
                .parse()
                .map_err(|e| Error::checkpoint(&p, format!("not TOML: {e}")))?;
            let base = table
                .get("model")
                .and_then(|m| m.as_str())
                .map(PathBuf::from);
            // An SFT run's config is not an RL config; only an RL run lends its eval format.
            let rl = RlConfig::from_toml(&text, &p).ok();
            (base, rl)
        }
        None => (None, None),
    };
    let files = safetensors_in(&weights_dir)?;
    if files.is_empty() {
        return Err(Error::checkpoint(
            &weights_dir,
            "holds no .safetensors file",
        ));
    }
    let mut tensors = BTreeMap::new();
    for f in &files {
        for (name, t) in candle_core::safetensors::load(f, &Device::Cpu)? {
            tensors.insert(name, (t.dtype(), t.dims().to_vec()));
        }
    }
    Ok(Ingredient {
        given: path.to_path_buf(),
        weights_dir,
        kind,
        base,
        rl,
        tensors,
    })
}

/// The same file whatever the spelling (`./m.gguf` and `/abs/m.gguf`).
fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Checks that every ingredient mixes with the first: the same kind, base, LoRA rank,
/// alpha and targets (or model config), and the same tensors with the same shapes. Returns
/// the base model: `model` when given (it must match any base a run records), else the
/// runs' common base (`None` for full models, which need none).
pub fn check(ingredients: &[Ingredient], model: Option<&Path>) -> Result<Option<PathBuf>> {
    let Some(first) = ingredients.first() else {
        return Err(Error::InvalidArgument("a soup needs ingredients".into()));
    };
    let differ = |other: &Ingredient, what: String| {
        Error::InvalidArgument(format!(
            "{} and {} cannot be mixed: {what}; a soup needs the same base model, LoRA \
             targets and rank",
            first.given.display(),
            other.given.display()
        ))
    };
    for other in &ingredients[1..] {
        match (&first.kind, &other.kind) {
            (Kind::Lora(a), Kind::Lora(b)) => {
                if a.rank != b.rank {
                    return Err(differ(other, format!("rank {} vs {}", a.rank, b.rank)));
                }
                if a.alpha != b.alpha {
                    return Err(differ(other, format!("alpha {} vs {}", a.alpha, b.alpha)));
                }
                if a.targets != b.targets {
                    return Err(differ(
                        other,
                        format!("targets {:?} vs {:?}", a.targets, b.targets),
                    ));
                }
            }
            (Kind::Full(a), Kind::Full(b)) => {
                let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).ok();
                if parse(a) != parse(b) {
                    return Err(differ(other, "their config.json files differ".into()));
                }
            }
            _ => {
                return Err(differ(
                    other,
                    "one holds LoRA adapters, the other a full model".into(),
                ));
            }
        }
        if let (Some(a), Some(b)) = (&first.base, &other.base)
            && !same_path(a, b)
        {
            return Err(differ(
                other,
                format!("base models {} vs {}", a.display(), b.display()),
            ));
        }
        if let Some((name, shape)) = first
            .tensors
            .iter()
            .find(|(n, s)| other.tensors.get(*n).map(|o| &o.1) != Some(&s.1))
        {
            let found = other
                .tensors
                .get(name)
                .map_or("no such tensor".to_string(), |o| format!("shape {:?}", o.1));
            return Err(differ(
                other,
                format!("tensor {name}: shape {:?} vs {found}", shape.1),
            ));
        }
        if let Some(name) = other
            .tensors
            .keys()
            .find(|n| !first.tensors.contains_key(*n))
        {
            return Err(differ(
                other,
                format!("tensor {name} is only in the second"),
            ));
        }
    }
    let recorded = ingredients.iter().find_map(|i| i.base.clone());
    match (&first.kind, model, recorded) {
        (_, Some(m), Some(r)) if !same_path(m, &r) => Err(Error::config(
            "model",
            format!(
                "--model {} is not the base the runs were trained from ({})",
                m.display(),
                r.display()
            ),
        )),
        (_, Some(m), _) => Ok(Some(m.to_path_buf())),
        (Kind::Lora(_), None, None) => Err(Error::config(
            "model",
            "no run records the adapters' base model: give it with --model",
        )),
        (_, None, r) => Ok(r),
    }
}

/// Σ_k w_k · θ_k tensor by tensor, accumulated in f32 and stored in the first
/// ingredient's dtype. One ingredient is read at a time, so the memory is the result plus
/// one ingredient, whatever their number.
pub fn interpolate(
    ingredients: &[Ingredient],
    weights: &[f64],
) -> Result<std::collections::HashMap<String, Tensor>> {
    if ingredients.len() != weights.len() {
        return Err(Error::InvalidArgument(format!(
            "{} weights for {} ingredients",
            weights.len(),
            ingredients.len()
        )));
    }
    let mut acc: std::collections::HashMap<String, Tensor> = Default::default();
    for (ing, &w) in ingredients.iter().zip(weights) {
        for f in ing.files()? {
            for (name, t) in candle_core::safetensors::load(&f, &Device::Cpu)? {
                let term = (t.to_dtype(DType::F32)? * w)?;
                let sum = match acc.remove(&name) {
                    Some(a) => (a + term)?,
                    None => term,
                };
                acc.insert(name, sum);
            }
        }
    }
    let first = &ingredients[0].tensors;
    acc.into_iter()
        .map(|(name, t)| {
            let dtype = first.get(&name).map_or(DType::F32, |d| d.0);
            Ok((name, t.to_dtype(dtype)?))
        })
        .collect()
}
