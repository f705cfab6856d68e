//! Linear layers that can carry a LoRA adapter, and adapter management.
//!
//! Every projection in the project's models is a [`LoraLinear`]: a frozen base
//! `y = x Wᵀ + b` plus an optional low-rank update `scale · dropout(x) Aᵀ Bᵀ` with
//! `A: (r, in)`, `B: (out, r)` and `scale = alpha / r` (Hu et al., 2021; PEFT's layout).
//! [`attach`] adds adapters to the projections whose names end in one of the target
//! suffixes, as trainable [`Var`]s in a [`VarMap`] of their own, so an optimizer built
//! from that map trains the adapters alone while the base stays frozen.
//!
//! Adapters are saved as their own safetensors file (`adapter_model.safetensors`,
//! tensors `<module>.lora_A.weight` / `<module>.lora_B.weight`) with an
//! `adapter_config.json` holding rank, alpha and targets; [`merge`] folds them into the
//! base weights; [`combine`] forms θ = Σ λ_k θ_k over several checkpoints with the same
//! tensor names (Rewarded Soups' weight interpolation; for adapters this interpolates
//! A and B separately, as Rewarded Soups does, which is not the same as interpolating the
//! products B·A).
//!
//! Adapters are always f32 [`Var`]s, also on a bf16 model: [`LoraLinear::forward`] casts
//! them to the activations' dtype, so the variables the optimizer updates (and
//! [`save`] writes) keep full precision, as PEFT's f32 adapters under autocast do.
//!
//! Dropout masks are drawn on the CPU from a seeded generator per adapter (candle's own
//! RNG cannot be seeded). [`reseed_dropout`] restarts those generators from (seed, adapter,
//! step, micro-batch), which is what makes a resumed SFT run with dropout exact.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A low-rank adapter on one projection.
#[derive(Debug)]
struct Adapter {
    /// `(r, in)`; Kaiming-uniform initialised like PEFT.
    a: Tensor,
    /// `(out, r)`; zero-initialised so a fresh adapter leaves the model unchanged.
    b: Tensor,
    /// `alpha / r`.
    scale: f64,
    /// Probability of dropping an input element in training mode.
    dropout: f32,
    /// This adapter's share of the run's seed; [`reseed_dropout`] mixes it with the step
    /// and micro-batch so that every adapter draws its own masks.
    dropout_key: u64,
    /// Seeded source of dropout masks (candle's CPU RNG cannot be seeded).
    rng: Mutex<StdRng>,
}

/// A linear projection, optionally with a LoRA adapter.
#[derive(Debug)]
pub struct LoraLinear {
    /// `(out, in)`; for GPT-2's Conv1D this is a transposed view of the checkpoint tensor.
    weight: Tensor,
    bias: Option<Tensor>,
    adapter: Option<Adapter>,
    /// Dropout is applied only while training.
    training: bool,
    /// The adapter is skipped (the base alone: RL's reference model with LoRA).
    disabled: bool,
}

impl LoraLinear {
    /// A plain projection from a `(out, in)` weight and optional bias. A weight that is not
    /// (derived from) a variable is frozen: its gradient is never computed.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            weight,
            bias,
            adapter: None,
            training: false,
            disabled: false,
        }
    }

    /// The base weight, `(out, in)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The base bias.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Whether an adapter is attached.
    pub fn has_adapter(&self) -> bool {
        self.adapter.is_some()
    }

    /// Switches dropout on (training) or off (evaluation).
    pub fn set_training(&mut self, training: bool) {
        self.training = training;
    }

    /// `(in, out)` dimensions of the base weight.
    fn dims(&self) -> Result<(usize, usize)> {
        let (out, inp) = self.weight.dims2()?;
        Ok((inp, out))
    }

    /// Applies the projection to `x` of shape `(.., in)`, giving `(.., out)`.
    ///
    /// Base and adapter run as one fused op ([`mod@crate::ops::linear`]) except while adapter
    /// dropout is active, where the adapter's input differs from the base's.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let Some(ad) = self.adapter.as_ref().filter(|_| !self.disabled) else {
            return crate::ops::linear(x, &self.weight, self.bias.as_ref());
        };
        if !(self.training && ad.dropout > 0.0) {
            return crate::ops::lora_linear(
                x,
                &self.weight,
                self.bias.as_ref(),
                &ad.a,
                &ad.b,
                ad.scale,
            );
        }
        let y = crate::ops::linear(x, &self.weight, self.bias.as_ref())?;
        let keep = 1.0 - ad.dropout;
        let mask: Vec<f32> = {
            let mut rng = ad
                .rng
                .lock()
                .map_err(|_| candle_core::Error::Msg("poisoned dropout rng".into()))?;
            (0..x.elem_count())
                .map(|_| {
                    if rng.random::<f32>() < keep {
                        1.0 / keep
                    } else {
                        0.0
                    }
                })
                .collect()
        };
        let x = (x * Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?)?;
        y + crate::ops::linear::lora_delta(&x, &ad.a, &ad.b, ad.scale)?
    }
}

/// Models whose projections can carry adapters.
pub trait LoraTarget {
    /// Every projection with its checkpoint name (`model.layers.0.self_attn.q_proj`).
    fn linears_mut(&mut self) -> Vec<(String, &mut LoraLinear)>;
}

/// Which projections get adapters, and their shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// Rank `r` of the update.
    pub rank: usize,
    /// Scale numerator: the update is multiplied by `alpha / rank`.
    pub alpha: f64,
    /// Dropout on the adapter's input while training.
    #[serde(default)]
    pub dropout: f32,
    /// Module name suffixes that get adapters (`q_proj`, `v_proj`, `c_attn`).
    pub targets: Vec<String>,
    /// Seed for A's initialisation and dropout masks.
    #[serde(default)]
    pub seed: u64,
}

impl LoraConfig {
    fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }
}

fn is_target(name: &str, targets: &[String]) -> bool {
    targets
        .iter()
        .any(|t| name == t || name.ends_with(&format!(".{t}")))
}

/// Registers an adapter's matrices as trainable variables under PEFT's names
/// and puts the adapter on `lin`, with its own seeded dropout generator.
fn install(
    varmap: &VarMap,
    name: &str,
    lin: &mut LoraLinear,
    a: Var,
    b: Var,
    cfg: &LoraConfig,
    dropout_seed: u64,
) -> Result<()> {
    let mut data = varmap
        .data()
        .lock()
        .map_err(|_| Error::InvalidArgument("poisoned VarMap".into()))?;
    data.insert(format!("{name}.lora_A.weight"), a.clone());
    data.insert(format!("{name}.lora_B.weight"), b.clone());
    drop(data);
    lin.adapter = Some(Adapter {
        a: a.as_tensor().clone(),
        b: b.as_tensor().clone(),
        scale: cfg.scale(),
        dropout: cfg.dropout,
        dropout_key: dropout_seed,
        rng: Mutex::new(StdRng::seed_from_u64(dropout_seed)),
    });
    Ok(())
}

/// Switches every adapter of `model` on or off. Off, the model is its frozen base: with
/// LoRA, RL's reference model costs no second copy of the weights.
pub fn set_adapters_enabled(model: &mut impl LoraTarget, enabled: bool) {
    for (_, lin) in model.linears_mut() {
        lin.disabled = !enabled;
    }
}

/// Restarts every adapter's dropout masks at a point named by `(step, micro_batch)`.
///
/// The SFT loop calls this before each micro-batch's forward, so the masks of a step are a
/// pure function of (run seed, adapter, optimizer step, micro-batch), like its data. A run
/// resumed from a checkpoint therefore draws exactly the masks the uninterrupted run drew,
/// and checkpoints need no RNG state: saving the generators instead would tie checkpoints
/// to `StdRng`'s internal layout, and would still be wrong whenever the number of forwards
/// before a checkpoint differs between runs. Without calls to this, each adapter keeps one
/// seeded stream (what a caller outside the loop gets).
pub fn reseed_dropout(model: &mut impl LoraTarget, step: u64, micro_batch: u64) -> Result<()> {
    for (_, lin) in model.linears_mut() {
        if let Some(ad) = &lin.adapter {
            let seed = mix(mix(ad.dropout_key, step), micro_batch);
            *ad.rng
                .lock()
                .map_err(|_| Error::InvalidArgument("poisoned dropout rng".into()))? =
                StdRng::seed_from_u64(seed);
        }
    }
    Ok(())
}

/// SplitMix64's finaliser over `a` and `b`: nearby inputs (steps 4 and 5) give unrelated seeds.
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b
        .wrapping_add(0x9E37_79B9_7F4A_7C15)
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Attaches fresh adapters to the target projections of `model`, creating their
/// trainable variables in `varmap`. Returns how many projections got one.
pub fn attach(model: &mut impl LoraTarget, cfg: &LoraConfig, varmap: &VarMap) -> Result<usize> {
    if cfg.rank == 0 {
        return Err(Error::config("lora.rank", "must be at least 1"));
    }
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut count = 0;
    for (name, lin) in model.linears_mut() {
        if !is_target(&name, &cfg.targets) {
            continue;
        }
        let (inp, out) = lin.dims()?;
        let dev = lin.weight.device().clone();
        // PEFT: kaiming_uniform_(a=√5) on A, i.e. U(-1/√in, 1/√in); B = 0.
        let bound = 1.0 / (inp as f32).sqrt();
        let a: Vec<f32> = (0..cfg.rank * inp)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let a = Var::from_tensor(&Tensor::from_vec(a, (cfg.rank, inp), &dev)?)?;
        let b = Var::zeros((out, cfg.rank), DType::F32, &dev)?;
        install(varmap, &name, lin, a, b, cfg, rng.random())?;
        count += 1;
    }
    if count == 0 {
        return Err(Error::config(
            "lora.targets",
            format!("no projection matches {:?}", cfg.targets),
        ));
    }
    Ok(count)
}

/// Saves the adapters in `varmap` and their config to `dir`.
pub fn save(dir: &Path, cfg: &LoraConfig, varmap: &VarMap) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    varmap.save(dir.join("adapter_model.safetensors"))?;
    let json = serde_json::to_string_pretty(cfg).map_err(|e| Error::Json {
        path: dir.join("adapter_config.json"),
        source: e,
    })?;
    std::fs::write(dir.join("adapter_config.json"), json)
        .map_err(|e| Error::io(dir.join("adapter_config.json"), e))
}

/// Loads adapters saved by [`save`] onto `model` as trainable variables in `varmap`.
pub fn load(model: &mut impl LoraTarget, dir: &Path, varmap: &VarMap) -> Result<LoraConfig> {
    let cfg_path = dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
    let cfg: LoraConfig = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: cfg_path,
        source: e,
    })?;
    let st_path = dir.join("adapter_model.safetensors");
    let dev = model
        .linears_mut()
        .first()
        .map(|(_, l)| l.weight.device().clone())
        .unwrap_or(Device::Cpu);
    let tensors = candle_core::safetensors::load(&st_path, &dev)?;
    let mut used = 0;
    for (name, lin) in model.linears_mut() {
        let (Some(a), Some(b)) = (
            tensors.get(&format!("{name}.lora_A.weight")),
            tensors.get(&format!("{name}.lora_B.weight")),
        ) else {
            continue;
        };
        let (a, b) = (Var::from_tensor(a)?, Var::from_tensor(b)?);
        install(varmap, &name, lin, a, b, &cfg, cfg.seed ^ used as u64)?;
        used += 2;
    }
    if used != tensors.len() {
        return Err(Error::checkpoint(
            st_path,
            format!(
                "{} adapter tensors match no projection of this model",
                tensors.len() - used
            ),
        ));
    }
    Ok(cfg)
}

/// Folds every adapter into its base weight (`W ← W + scale·B·A`) and removes it.
/// Returns how many were merged.
pub fn merge(model: &mut impl LoraTarget) -> Result<usize> {
    Ok(merge_weights(model)?.len())
}

/// [`merge`], returning each merged projection's name and new weight (as the projection
/// holds it), for writing the merged model out.
pub fn merge_weights(model: &mut impl LoraTarget) -> Result<Vec<(String, Tensor)>> {
    let mut out = Vec::new();
    for (name, lin) in model.linears_mut() {
        if let Some(ad) = lin.adapter.take() {
            let delta = (ad.b.matmul(&ad.a)? * ad.scale)?;
            lin.weight = (&lin.weight + delta.to_dtype(lin.weight.dtype())?)?;
            out.push((name, lin.weight.clone()));
        }
    }
    Ok(out)
}

/// θ = Σ λ_k θ_k over checkpoints that hold the same tensor names and shapes.
pub fn combine(parts: &[(f64, HashMap<String, Tensor>)]) -> Result<HashMap<String, Tensor>> {
    let Some((_, first)) = parts.first() else {
        return Err(Error::InvalidArgument(
            "combine needs at least one checkpoint".into(),
        ));
    };
    let mut out = HashMap::new();
    for name in first.keys() {
        let mut acc: Option<Tensor> = None;
        for (k, (lambda, tensors)) in parts.iter().enumerate() {
            let t = tensors.get(name).ok_or_else(|| {
                Error::InvalidArgument(format!("checkpoint {k} lacks tensor {name}"))
            })?;
            let term = (t.to_dtype(DType::F32)? * *lambda)?;
            acc = Some(match acc {
                None => term,
                Some(a) => (a + term)?,
            });
        }
        if let Some(a) = acc {
            out.insert(name.clone(), a);
        }
    }
    for (k, (_, tensors)) in parts.iter().enumerate() {
        if tensors.len() != first.len() {
            return Err(Error::InvalidArgument(format!(
                "checkpoint {k} has {} tensors, the first has {}",
                tensors.len(),
                first.len()
            )));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frozen_projection_passes_the_same_input_gradient_and_keeps_no_weight_gradient()
    -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::new(&[[0.5f32, -1.0, 2.0], [0.25, 0.0, -0.5]], &dev)?;
        let b = Tensor::new(&[0.1f32, -0.2], &dev)?;
        let x = Var::from_tensor(&Tensor::new(
            &[[[1.0f32, 2.0, -3.0], [0.5, 0.0, 1.0]]],
            &dev,
        )?)?;
        let frozen = LoraLinear::new(w.clone(), Some(b.clone()));
        let y = frozen.forward(x.as_tensor())?;
        let g_frozen = y
            .sqr()?
            .sum_all()?
            .backward()?
            .get(&x)
            .cloned()
            .expect("grad");
        // Reference: the same weight as a variable (plain matmul path).
        let wv = Var::from_tensor(&w)?;
        let plain = LoraLinear::new(wv.as_tensor().clone(), Some(b));
        let y2 = plain.forward(x.as_tensor())?;
        let grads = y2.sqr()?.sum_all()?.backward()?;
        assert_eq!(y.to_vec3::<f32>()?, y2.to_vec3::<f32>()?);
        assert_eq!(
            g_frozen.to_vec3::<f32>()?,
            grads.get(&x).expect("grad").to_vec3::<f32>()?
        );
        assert!(
            grads.get(&wv).is_some(),
            "the variable weight does get a gradient"
        );
        Ok(())
    }
}
