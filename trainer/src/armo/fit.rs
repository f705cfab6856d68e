//! The three fitting stages over embeddings, each writing its part of an ArmoRM run
//! directory: `fit-probes` ([`fit_probes`]), `debias` ([`debias`]) and `fit-gating`
//! ([`fit_gating`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::debias::{self, Penalty};
use super::embed::{self, BackboneSettings, Embeddings, Kind};
use super::gate::{self, GateConfig, GateTraining, LogLine, PairSet};
use super::ridge::{self, Matrix};
use crate::error::{Error, Result};

/// `probes.safetensors`: the stacked probe weights `weight` `(attributes, d)`.
pub const PROBES_FILE: &str = "probes.safetensors";
/// `probes.json`: [`ProbesMeta`].
pub const PROBES_META: &str = "probes.json";
/// `debias.json`: [`DebiasMeta`].
pub const DEBIAS_META: &str = "debias.json";
/// `gating.safetensors`: the gate's weights.
pub const GATING_FILE: &str = "gating.safetensors";
/// `gating.json`: [`GatingMeta`].
pub const GATING_META: &str = "gating.json";
/// `gating_metrics.jsonl`: one [`LogLine`] per step.
pub const GATING_METRICS: &str = "gating_metrics.jsonl";

/// One attribute's probe, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeInfo {
    /// The attribute.
    pub name: String,
    /// The α chosen.
    pub alpha: f64,
    /// Validation MSE per α of the grid (`null` where singular).
    pub val_mse: Vec<Option<f64>>,
    /// Validation R² at the chosen α.
    pub val_r2: f64,
    /// Labelled training rows.
    pub n_train: usize,
    /// Labelled validation rows.
    pub n_val: usize,
}

/// `probes.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbesMeta {
    /// How the backbone renders rows (the embeddings' settings).
    pub backbone: BackboneSettings,
    /// The embeddings directory the probes were fitted on.
    pub embeddings: PathBuf,
    /// The split's seed.
    pub seed: u64,
    /// The α grid.
    pub alphas: Vec<f64>,
    /// One per row of `weight`, in order.
    pub attributes: Vec<ProbeInfo>,
}

/// `debias.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DebiasMeta {
    /// The verbosity attribute.
    pub verbosity: String,
    /// The Spearman threshold.
    pub threshold: f64,
    /// The reference embeddings.
    pub reference: PathBuf,
    /// λ per attribute, in the probes' order (0 for verbosity itself).
    pub lambdas: Vec<f64>,
    /// Spearman(r_j − λ_j·r_v, r_v) at the chosen λ (`null` for verbosity, or undefined).
    pub spearman: Vec<Option<f64>>,
    /// Whether a grid value met the threshold (else λ = 1).
    pub met: Vec<bool>,
}

/// `gating.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GatingMeta {
    /// The gate's shape.
    pub config: GateConfig,
    /// How it was trained.
    pub training: GateTraining,
    /// The training pairs' embeddings.
    pub train: PathBuf,
    /// The held-out pairs' embeddings.
    pub eval: Option<PathBuf>,
    /// The last step's batch loss.
    pub train_loss: f64,
    /// Pairwise accuracy on all training pairs after training.
    pub train_accuracy: f64,
    /// Held-out loss after training.
    pub eval_loss: Option<f64>,
    /// Held-out pairwise accuracy after training.
    pub eval_accuracy: Option<f64>,
    /// The learned scale `s`.
    pub scale: f64,
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(v).map_err(|e| Error::InvalidArgument(e.to_string()))
}

/// Reads a JSON file of a run directory, saying which stage writes it when it is missing.
pub fn read_meta<T: serde::de::DeserializeOwned>(dir: &Path, name: &str) -> Result<T> {
    let path = dir.join(name);
    let stage = match name {
        PROBES_META => "fit-probes",
        DEBIAS_META => "debias",
        _ => "fit-gating",
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::InvalidArgument(format!(
            "{}: {e}; run `trainer armo {stage}` on this run directory first",
            path.display()
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Json { path, source: e })
}

/// An f32 `(n, d)` tensor as an f64 matrix.
pub fn to_matrix(t: &Tensor) -> Result<Matrix> {
    let (n, d) = t.dims2()?;
    let data: Vec<f64> = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    Matrix::new(n, d, data)
}

/// What `fit-probes` is asked to do.
#[derive(Debug, Clone)]
pub struct ProbeJob {
    /// An embeddings directory of samples.
    pub embeddings: PathBuf,
    /// Labels from this samples file instead of the embeddings' own (line `i` labels row
    /// `i`; keys must agree).
    pub labels: Option<PathBuf>,
    /// The attributes, in order (default: every label name, sorted).
    pub attributes: Vec<String>,
    /// The split's seed (ArmoRM: 42).
    pub seed: u64,
    /// The run directory.
    pub run: PathBuf,
}

/// Fits one probe per attribute and writes `probes.safetensors` and `probes.json`.
pub fn fit_probes(job: &ProbeJob) -> Result<ProbesMeta> {
    let emb = Embeddings::read(&job.embeddings)?;
    if emb.index.kind != Kind::Samples {
        return Err(Error::InvalidArgument(format!(
            "flag --embeddings: {} holds pairs; probes are fitted on labelled samples",
            job.embeddings.display()
        )));
    }
    let labels = match &job.labels {
        None => emb.index.labels.clone(),
        Some(path) => {
            let lines = embed::read_samples(path)?;
            if lines.len() != emb.index.keys.len() {
                return Err(Error::InvalidArgument(format!(
                    "flag --labels: {} has {} samples, the embeddings {}",
                    path.display(),
                    lines.len(),
                    emb.index.keys.len()
                )));
            }
            let mut out: std::collections::BTreeMap<String, Vec<Option<f64>>> =
                std::collections::BTreeMap::new();
            for (i, (line, key)) in lines.iter().zip(&emb.index.keys).enumerate() {
                if &line.key != key {
                    return Err(Error::InvalidArgument(format!(
                        "flag --labels: {} sample {} has key {}, the embeddings' row has {key}",
                        path.display(),
                        i + 1,
                        line.key
                    )));
                }
                for name in line.labels.keys() {
                    out.entry(name.clone())
                        .or_insert_with(|| vec![None; lines.len()]);
                }
            }
            for (name, col) in &mut out {
                for (i, line) in lines.iter().enumerate() {
                    col[i] = line.labels.get(name).copied().flatten();
                }
            }
            out
        }
    };
    let attributes: Vec<String> = if job.attributes.is_empty() {
        labels.keys().cloned().collect()
    } else {
        job.attributes.clone()
    };
    if attributes.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{}: no labels; give samples a `labels` object (or --labels FILE)",
            job.embeddings.display()
        )));
    }
    let x = to_matrix(emb.get("response")?)?;
    let mut weights = Vec::with_capacity(attributes.len() * x.cols);
    let mut infos = Vec::with_capacity(attributes.len());
    for name in &attributes {
        let col = labels.get(name).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "flag --attributes: no label `{name}` (labels: {})",
                labels.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        let y: Vec<f64> = col.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
        let f = ridge::fit(&x, &y, job.seed, name)?;
        weights.extend(f.weight.iter().map(|&w| w as f32));
        infos.push(ProbeInfo {
            name: name.clone(),
            alpha: f.alpha,
            val_mse: f
                .val_mse
                .iter()
                .map(|m| m.is_finite().then_some(*m))
                .collect(),
            val_r2: f.val_r2,
            n_train: f.n_train,
            n_val: f.n_val,
        });
    }
    std::fs::create_dir_all(&job.run).map_err(|e| Error::io(&job.run, e))?;
    let w = Tensor::from_vec(weights, (attributes.len(), x.cols), &Device::Cpu)?;
    embed::save_atomic(
        &job.run.join(PROBES_FILE),
        &HashMap::from([("weight".to_string(), w)]),
    )?;
    let meta = ProbesMeta {
        backbone: emb.index.backbone.clone(),
        embeddings: job.embeddings.clone(),
        seed: job.seed,
        alphas: ridge::ALPHAS.to_vec(),
        attributes: infos,
    };
    crate::run::dir::write_atomic(&job.run.join(PROBES_META), &json(&meta)?)?;
    Ok(meta)
}

/// The probe weights `(k, d)` of a run directory, f32 on `device`.
pub fn read_probes(run: &Path, device: &Device) -> Result<Tensor> {
    let path = run.join(PROBES_FILE);
    let mut t = candle_core::safetensors::load(&path, device)
        .map_err(|e| Error::checkpoint(&path, e.to_string()))?;
    t.remove("weight")
        .ok_or_else(|| Error::checkpoint(&path, "no `weight` tensor"))
}

/// Checks that an embedding set was made with the run's backbone settings.
fn same_backbone(probes: &ProbesMeta, emb: &Embeddings, flag: &str, dir: &Path) -> Result<()> {
    if emb.index.backbone != probes.backbone {
        return Err(Error::InvalidArgument(format!(
            "flag {flag}: {} was embedded with {:?}, the probes with {:?}; embed it with the \
             same --model, --chat, --max-len and --max-prompt-len",
            dir.display(),
            emb.index.backbone,
            probes.backbone
        )));
    }
    Ok(())
}

/// Chooses λ per attribute on the reference embeddings `reference` (samples, or pairs:
/// both responses of each) and writes `debias.json`.
pub fn debias(run: &Path, reference: &Path, verbosity: &str, threshold: f64) -> Result<DebiasMeta> {
    let probes: ProbesMeta = read_meta(run, PROBES_META)?;
    let names: Vec<&str> = probes.attributes.iter().map(|a| a.name.as_str()).collect();
    let v = names.iter().position(|n| *n == verbosity).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "flag --verbosity: no attribute `{verbosity}` (attributes: {})",
            names.join(", ")
        ))
    })?;
    if !threshold.is_finite() {
        return Err(Error::InvalidArgument(
            "flag --threshold: expected a number".into(),
        ));
    }
    let emb = Embeddings::read(reference)?;
    same_backbone(&probes, &emb, "--reference", reference)?;
    let w = read_probes(run, &Device::Cpu)?;
    let responses: Vec<&Tensor> = match emb.index.kind {
        Kind::Samples => vec![emb.get("response")?],
        Kind::Pairs => vec![emb.get("chosen")?, emb.get("rejected")?],
    };
    let r = Tensor::cat(&responses, 0)?.matmul(&w.t()?)?;
    // One column per attribute.
    let cols: Vec<Vec<f64>> = r.t()?.to_dtype(DType::F64)?.to_vec2()?;
    let p: Vec<Penalty> = debias::penalties(&cols, v, threshold);
    let meta = DebiasMeta {
        verbosity: verbosity.to_string(),
        threshold,
        reference: reference.to_path_buf(),
        lambdas: p.iter().map(|x| x.lambda).collect(),
        spearman: p
            .iter()
            .map(|x| x.spearman.is_finite().then_some(x.spearman))
            .collect(),
        met: p.iter().map(|x| x.met).collect(),
    };
    crate::run::dir::write_atomic(&run.join(DEBIAS_META), &json(&meta)?)?;
    Ok(meta)
}

/// `T` `(k, k)` of the debiasing: the identity, row j holding −λ_j in column v.
pub fn debias_matrix(lambdas: &[f64], verbosity: usize, device: &Device) -> Result<Tensor> {
    let k = lambdas.len();
    let mut t = vec![0f32; k * k];
    for j in 0..k {
        t[j * k + j] = 1.0;
        if j != verbosity {
            t[j * k + verbosity] = -(lambdas[j] as f32);
        }
    }
    Ok(Tensor::from_vec(t, (k, k), device)?)
}

/// Raw and debiased rewards `(n, k)` of response embeddings `(n, d)`.
pub fn rewards(response: &Tensor, w: &Tensor, t: &Tensor) -> Result<(Tensor, Tensor)> {
    let raw = response.to_dtype(DType::F32)?.matmul(&w.t()?)?;
    let debiased = raw.matmul(&t.t()?)?;
    Ok((raw, debiased))
}

/// The debiasing of a run: `T` and the verbosity index.
pub fn read_debias(run: &Path, probes: &ProbesMeta, device: &Device) -> Result<(Tensor, usize)> {
    let d: DebiasMeta = read_meta(run, DEBIAS_META)?;
    let v = probes
        .attributes
        .iter()
        .position(|a| a.name == d.verbosity)
        .filter(|_| d.lambdas.len() == probes.attributes.len())
        .ok_or_else(|| {
            Error::checkpoint(
                run.join(DEBIAS_META),
                "does not match probes.json (re-run `trainer armo debias` after fit-probes)",
            )
        })?;
    Ok((debias_matrix(&d.lambdas, v, device)?, v))
}

/// A pairs embedding set as the gate's training data, on `device`.
pub fn pair_set(run: &Path, dir: &Path, flag: &str, device: &Device) -> Result<PairSet> {
    let probes: ProbesMeta = read_meta(run, PROBES_META)?;
    let emb = Embeddings::read(dir)?;
    if emb.index.kind != Kind::Pairs {
        return Err(Error::InvalidArgument(format!(
            "flag {flag}: {} holds samples; the gate trains on pairs (`trainer armo embed \
             --pairs`)",
            dir.display()
        )));
    }
    same_backbone(&probes, &emb, flag, dir)?;
    let w = read_probes(run, device)?;
    let (t, _) = read_debias(run, &probes, device)?;
    let on = |name: &str| -> Result<Tensor> { Ok(emb.get(name)?.to_device(device)?) };
    Ok(PairSet {
        prompt: on("prompt")?,
        chosen: rewards(&on("chosen")?, &w, &t)?.1,
        rejected: rewards(&on("rejected")?, &w, &t)?.1,
    })
}

/// What `fit-gating` is asked to do.
#[derive(Debug, Clone)]
pub struct GatingJob {
    /// The run directory (probes and debiasing done).
    pub run: PathBuf,
    /// Training pairs' embeddings.
    pub train: PathBuf,
    /// Held-out pairs' embeddings.
    pub eval: Option<PathBuf>,
    /// Hidden layer sizes.
    pub hidden: Vec<usize>,
    /// Dropout after each hidden layer.
    pub dropout: f64,
    /// Softmax temperature.
    pub temperature: f64,
    /// The optimisation.
    pub training: GateTraining,
}

/// Trains the gate and writes `gating.safetensors`, `gating.json` and
/// `gating_metrics.jsonl`.
pub fn fit_gating(
    job: &GatingJob,
    device: &Device,
    mut progress: impl FnMut(&LogLine),
) -> Result<GatingMeta> {
    let train = pair_set(&job.run, &job.train, "--train", device)?;
    let eval = match &job.eval {
        Some(dir) => Some(pair_set(&job.run, dir, "--eval", device)?),
        None => None,
    };
    let (_, d) = train.prompt.dims2()?;
    let (_, k) = train.chosen.dims2()?;
    let config = GateConfig {
        input: d,
        hidden: job.hidden.clone(),
        attributes: k,
        dropout: job.dropout,
        temperature: job.temperature,
    };
    let mut log = String::new();
    let mut last = None;
    let g = gate::train(config.clone(), &job.training, &train, eval.as_ref(), |l| {
        log += &serde_json::to_string(l).unwrap_or_default();
        log.push('\n');
        last = Some(l.clone());
        progress(l);
    })?;
    let (_, train_accuracy) = gate::evaluate(&g, &train, job.training.batch_size)?;
    let (eval_loss, eval_accuracy) = match &eval {
        Some(e) => {
            let (l, a) = gate::evaluate(&g, e, job.training.batch_size)?;
            (Some(l), Some(a))
        }
        None => (None, None),
    };
    embed::save_atomic(&job.run.join(GATING_FILE), &g.tensors())?;
    crate::run::dir::write_atomic(&job.run.join(GATING_METRICS), log.as_bytes())?;
    let meta = GatingMeta {
        config,
        training: job.training.clone(),
        train: job.train.clone(),
        eval: job.eval.clone(),
        train_loss: last.map_or(f64::NAN, |l| l.loss),
        train_accuracy,
        eval_loss,
        eval_accuracy,
        scale: f64::from(g.scale()?),
    };
    crate::run::dir::write_atomic(&job.run.join(GATING_META), &json(&meta)?)?;
    Ok(meta)
}
