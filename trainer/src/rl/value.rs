//! PPO's value model: a head on the policy (one backbone, the LoRA shared: TRL's
//! `AutoModelForCausalLMWithValueHead`) or a separate critic (the same base with its own
//! LoRA and head, optionally started from a `trainer rm` run, as RLLR starts its critic
//! from its reward model).
//!
//! The head is `v_head.summary.{weight,bias}`, TRL's names, so `final/value_head.safetensors`
//! loads into TRL's value head as it is. It starts as PyTorch initialises a linear layer's
//! weight, U(±1/√d), seeded by the run's seed, with a zero bias (so the first values are
//! small and centred); from an RM run it is the RM's score head with a zero bias. Its
//! variables (and a critic's adapters, under `critic.`) join the policy's optimizer, so
//! checkpoints and resume carry them by name.

use std::path::Path;

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::config::{RlConfig, ValueModel};
use super::rollout::Batch;
use crate::error::{Error, Result};
use crate::load;
use crate::lora::{self, LoraConfig};
use crate::models::{CausalLm, Inputs};

/// The head's tensor names (TRL's).
pub const HEAD_WEIGHT: &str = "v_head.summary.weight";
/// See [`HEAD_WEIGHT`].
pub const HEAD_BIAS: &str = "v_head.summary.bias";
/// The file the head is saved to in `final/`.
pub const HEAD_FILE: &str = "value_head.safetensors";

/// A separate critic model.
pub(super) struct Critic {
    model: CausalLm,
    lora: Option<(LoraConfig, VarMap)>,
}

/// The value model of a PPO run.
pub(super) struct Value {
    weight: Var,
    bias: Var,
    critic: Option<Critic>,
}

impl Value {
    /// The value model `cfg` asks for, and the variables it adds to the optimizer.
    pub(super) fn load(
        cfg: &RlConfig,
        hidden: usize,
        device: &Device,
    ) -> Result<(Self, Vec<(String, Var)>)> {
        let mut vars = Vec::new();
        let (critic, init) = match cfg.value_model {
            ValueModel::Head => (None, None),
            ValueModel::Critic => {
                let (critic, critic_vars, head) = load_critic(cfg, device)?;
                vars.extend(
                    critic_vars
                        .into_iter()
                        .map(|(n, v)| (format!("critic.{n}"), v)),
                );
                (Some(critic), head)
            }
        };
        let weight = match init {
            Some(w) => w,
            None => {
                let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0x7A1C_E0DE);
                let bound = 1.0 / (hidden as f32).sqrt();
                let w: Vec<f32> = (0..hidden)
                    .map(|_| rng.random_range(-bound..bound))
                    .collect();
                Tensor::from_vec(w, (1, hidden), device)?
            }
        };
        let weight = Var::from_tensor(&weight.to_dtype(DType::F32)?)?;
        let bias = Var::from_tensor(&Tensor::zeros(1, DType::F32, device)?)?;
        vars.push((HEAD_WEIGHT.into(), weight.clone()));
        vars.push((HEAD_BIAS.into(), bias.clone()));
        Ok((
            Self {
                weight,
                bias,
                critic,
            },
            vars,
        ))
    }

    /// Whether the values come from the policy's own hidden states.
    pub(super) fn shares_backbone(&self) -> bool {
        self.critic.is_none()
    }

    /// `(B, T)` values from hidden states `(B, T, d)`.
    pub(super) fn head(&self, hidden: &Tensor) -> Result<Tensor> {
        let h = hidden.to_dtype(DType::F32)?;
        let v = h
            .broadcast_matmul(&self.weight.as_tensor().t()?)?
            .broadcast_add(self.bias.as_tensor())?;
        Ok(v.squeeze(D::Minus1)?)
    }

    /// The critic's `(B, T)` values of `batch` (a separate critic only).
    pub(super) fn critic_values(&self, batch: &Batch, with_grad: bool) -> Result<Tensor> {
        let critic = self
            .critic
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("no separate critic".into()))?;
        let inputs = Inputs::with_mask(batch.ids.clone(), &batch.key_mask)?;
        let mut hidden = critic.model.forward_hidden(&inputs, None)?;
        if !with_grad {
            hidden = hidden.detach();
        }
        let v = self.head(&hidden)?;
        Ok(if with_grad { v } else { v.detach() })
    }

    /// Training mode (dropout) for a separate critic.
    pub(super) fn set_training(&mut self, training: bool) {
        if let Some(c) = &mut self.critic {
            c.model.set_training(training);
        }
    }

    /// Writes the head to `dir/value_head.safetensors` and a critic's adapter (or weights)
    /// to `dir/critic/`.
    pub(super) fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let head = std::collections::HashMap::from([
            (HEAD_WEIGHT.to_string(), self.weight.as_tensor().clone()),
            (HEAD_BIAS.to_string(), self.bias.as_tensor().clone()),
        ]);
        candle_core::safetensors::save(&head, dir.join(HEAD_FILE))?;
        if let Some(Critic {
            lora: Some((lc, vm)),
            ..
        }) = &self.critic
        {
            lora::save(&dir.join("critic"), lc, vm)?;
        }
        Ok(())
    }
}

/// The critic: the base (or an RM run's adapter on it) with LoRA, and the RM's head when
/// started from one.
#[allow(
    clippy::type_complexity,
    reason = "the model, its variables and the head"
)]
fn load_critic(
    cfg: &RlConfig,
    device: &Device,
) -> Result<(Critic, Vec<(String, Var)>, Option<Tensor>)> {
    if cfg.lora_rank == 0 {
        return Err(Error::config(
            "value_model",
            "a separate critic is trained with LoRA: set lora_rank > 0, or use value_model = \"head\"",
        ));
    }
    let Some(rm) = &cfg.critic_init else {
        let lc = LoraConfig {
            rank: cfg.lora_rank,
            alpha: cfg.lora_alpha,
            dropout: 0.0,
            targets: cfg.lora_targets.clone(),
            seed: cfg.seed ^ 0xC417_1C00,
        };
        let t = load::trainable(&cfg.model, Some(lc), cfg.dtype.dtype(), device)?;
        return Ok((
            Critic {
                model: t.model,
                lora: t.lora,
            },
            t.vars,
            None,
        ));
    };
    let fin = if rm.join("final/reward_model.json").is_file() {
        rm.join("final")
    } else {
        rm.clone()
    };
    let adapter = fin.join("adapter_config.json");
    if !adapter.is_file() || !fin.join("score.safetensors").is_file() {
        return Err(Error::config(
            "critic_init",
            format!(
                "{}: expected a finished LoRA `trainer rm` run (final/adapter_config.json and \
                 final/score.safetensors)",
                rm.display()
            ),
        ));
    }
    let mut model = load::load_as(&cfg.model, false, cfg.dtype.dtype(), device)?.model;
    let vm = VarMap::new();
    let lc = lora::load(&mut model, &fin, &vm)?;
    let head = candle_core::safetensors::load(fin.join("score.safetensors"), device)?
        .remove(crate::rm::train::HEAD)
        .ok_or_else(|| {
            Error::checkpoint(
                fin.join("score.safetensors"),
                format!("no `{}` tensor", crate::rm::train::HEAD),
            )
        })?;
    if head.dims() != [1, model.hidden_size()] {
        return Err(Error::config(
            "critic_init",
            format!(
                "{}: its score head is {:?}, this model's hidden size is {}: the reward model \
                 must share the policy's base",
                rm.display(),
                head.dims(),
                model.hidden_size()
            ),
        ));
    }
    let vars = vm
        .data()
        .lock()
        .map_err(|_| Error::InvalidArgument("poisoned VarMap".into()))?
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok((
        Critic {
            model,
            lora: Some((lc, vm)),
        },
        vars,
        Some(head),
    ))
}
