//! The policy being trained: the model with its adapters (or all its weights), the
//! optimizer over them, and the reference the KL is measured against.

use candle_core::{Device, Tensor};
use candle_nn::VarMap;

use super::config::{Algorithm, RlConfig};
use super::rollout::{self, Batch};
use super::value::Value;
use crate::error::{Error, Result};
use crate::load::{self, tokenizer::Tokenizer};
use crate::lora::{self, LoraConfig};
use crate::models::CausalLm;
use crate::optim::{AdamW, AdamWParams};

/// The model, its trainable state and the reference.
pub(super) struct Policy {
    pub(super) model: CausalLm,
    pub(super) tokenizer: Tokenizer,
    pub(super) opt: AdamW,
    pub(super) lora: Option<(LoraConfig, VarMap)>,
    /// A frozen copy for full fine-tuning with β > 0 (with LoRA the base is the reference).
    pub(super) reference: Option<CausalLm>,
    /// PPO's value model (its variables are in `opt` too).
    pub(super) value: Option<Value>,
}

impl Policy {
    pub(super) fn load(cfg: &RlConfig, device: &Device) -> Result<Self> {
        let full = cfg.lora_rank == 0;
        let lora = (!full).then(|| LoraConfig {
            rank: cfg.lora_rank,
            alpha: cfg.lora_alpha,
            dropout: 0.0,
            targets: cfg.lora_targets.clone(),
            seed: cfg.seed,
        });
        let load::Trainable {
            model,
            tokenizer,
            mut vars,
            lora,
            ..
        } = load::trainable(&cfg.model, lora, cfg.dtype.dtype(), device)?;
        let value = match cfg.algorithm {
            Algorithm::Ppo => {
                let (value, value_vars) = Value::load(cfg, model.hidden_size(), device)?;
                vars.extend(value_vars);
                Some(value)
            }
            _ => None,
        };
        let params = AdamWParams {
            lr: cfg.lr,
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: cfg.eps,
            weight_decay: cfg.weight_decay,
        };
        let reference = (full && cfg.beta > 0.0)
            .then(|| load::load_as(&cfg.model, false, cfg.dtype.dtype(), device).map(|l| l.model))
            .transpose()?;
        Ok(Self {
            model,
            tokenizer,
            opt: AdamW::new(vars, params)?,
            lora,
            reference,
            value,
        })
    }

    /// The value model (PPO runs only).
    pub(super) fn value(&self) -> Result<&Value> {
        self.value
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("this run has no value model".into()))
    }

    /// Training mode (dropout) for the policy and a separate critic.
    pub(super) fn set_training(&mut self, training: bool) {
        self.model.set_training(training);
        if let Some(v) = &mut self.value {
            v.set_training(training);
        }
    }

    /// Per-token log-probs of the reference: the base with adapters off, or the frozen copy.
    pub(super) fn reference_logprobs(&mut self, batch: &Batch, temperature: f64) -> Result<Tensor> {
        if let Some(r) = &self.reference {
            return rollout::token_logprobs(r, batch, temperature, false);
        }
        lora::set_adapters_enabled(&mut self.model, false);
        let out = rollout::token_logprobs(&self.model, batch, temperature, false);
        lora::set_adapters_enabled(&mut self.model, true);
        out
    }

    /// The trainable variables of a full fine-tune as a map (for writing the final weights).
    pub(super) fn varmap(&self) -> Result<VarMap> {
        let vm = VarMap::new();
        {
            let mut data = vm
                .data()
                .lock()
                .map_err(|_| Error::InvalidArgument("poisoned VarMap".into()))?;
            // The value model is saved apart (`value_head.safetensors`, `critic/`).
            let own = |n: &str| !(n.starts_with("critic.") || n.starts_with("v_head."));
            for (name, var) in self.opt.vars().filter(|(n, _)| own(n)) {
                data.insert(name.to_string(), var.clone());
            }
        }
        Ok(vm)
    }
}
