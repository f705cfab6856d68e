//! Stage 2 of ArmoRM: the gating network and its Bradley–Terry training.
//!
//! The gate is ArmoRM's `GatingNetwork`: linear layers `d → h₁ → … → k` with ReLU and
//! dropout after each hidden one, then `softmax(z / temperature) · s`, `s` a learnable
//! scale initialised at 1. It reads the prompt's embedding and weighs the (debiased)
//! attribute rewards of a response: score = Σ_k g_k·r̃_k. Training minimises the
//! Bradley–Terry loss, BCE-with-logits(s_c − s_r, 1) ([`crate::rm::reward_loss`], pinned to
//! TRL), with AdamW ([`crate::optim::AdamW`]) under a cosine decay to 0.
//!
//! Everything here is composed from differentiable tensor ops: candle-nn's fused softmax
//! has no backward (shared/docs/candle.md), `candle_nn::ops::softmax` over the last
//! dimension is the composed one. Dropout masks come from the run's seeded generator, so a
//! run is reproducible (candle's own dropout draws from an unseeded one). Initialisation is
//! PyTorch's `nn.Linear` default, U(−1/√fan_in, 1/√fan_in) for weights and biases. Tensor
//! names match the upstream module's `state_dict` (`layers.N.weight`, `layers.N.bias`,
//! `logit_scale`).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{D, DType, Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::optim::{AdamW, AdamWParams, Decay, lr_at};

/// The gate's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateConfig {
    /// Input size (the backbone's hidden size).
    pub input: usize,
    /// Hidden layer sizes (ArmoRM: 3 × 1024).
    pub hidden: Vec<usize>,
    /// Number of attributes (the output size).
    pub attributes: usize,
    /// Dropout probability after each hidden layer, in training (ArmoRM: 0.2).
    pub dropout: f64,
    /// Softmax temperature (ArmoRM: 10).
    pub temperature: f64,
}

/// The gating network.
pub struct Gate {
    /// The shape it was built with.
    pub config: GateConfig,
    /// `(weight (out, in), bias (out))` per layer.
    layers: Vec<(Var, Var)>,
    /// The scale `s` `(1,)`.
    scale: Var,
}

impl Gate {
    /// A freshly initialised gate (PyTorch's `nn.Linear` initialisation, seeded).
    pub fn new(config: GateConfig, seed: u64, device: &Device) -> Result<Self> {
        if config.temperature <= 0.0 || !(0.0..1.0).contains(&config.dropout) {
            return Err(Error::InvalidArgument(format!(
                "gate: temperature must be positive and dropout in [0, 1), got {} and {}",
                config.temperature, config.dropout
            )));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let mut sizes = vec![config.input];
        sizes.extend(&config.hidden);
        sizes.push(config.attributes);
        let mut layers = Vec::new();
        for w in sizes.windows(2) {
            let (fan_in, out) = (w[0], w[1]);
            let bound = 1.0 / (fan_in as f64).sqrt();
            let mut uniform = |n: usize| -> Vec<f32> {
                (0..n)
                    .map(|_| rng.random_range(-bound..bound) as f32)
                    .collect()
            };
            let weight = Var::from_vec(uniform(out * fan_in), (out, fan_in), device)?;
            let bias = Var::from_vec(uniform(out), out, device)?;
            layers.push((weight, bias));
        }
        let scale = Var::from_vec(vec![1f32], 1, device)?;
        Ok(Self {
            config,
            layers,
            scale,
        })
    }

    /// A gate from named tensors ([`Gate::tensors`]'s names), e.g. a torch transcription's.
    pub fn from_tensors(config: GateConfig, tensors: &HashMap<String, Tensor>) -> Result<Self> {
        let get = |name: &str| -> Result<Var> {
            let t = tensors
                .get(name)
                .ok_or_else(|| Error::InvalidArgument(format!("gate: no tensor `{name}`")))?;
            Ok(Var::from_tensor(&t.to_dtype(DType::F32)?)?)
        };
        let n = config.hidden.len() + 1;
        let mut layers = Vec::with_capacity(n);
        let mut fan_in = config.input;
        for (i, out) in config
            .hidden
            .iter()
            .copied()
            .chain([config.attributes])
            .enumerate()
        {
            let (w, b) = (
                get(&format!("layers.{i}.weight"))?,
                get(&format!("layers.{i}.bias"))?,
            );
            if w.dims() != [out, fan_in] || b.dims() != [out] {
                return Err(Error::InvalidArgument(format!(
                    "gate: layers.{i} is {:?} + {:?}, expected [{out}, {fan_in}] + [{out}]",
                    w.dims(),
                    b.dims()
                )));
            }
            layers.push((w, b));
            fan_in = out;
        }
        let scale = get("logit_scale")?;
        if scale.dims() != [1] {
            return Err(Error::InvalidArgument(format!(
                "gate: logit_scale is {:?}, expected [1]",
                scale.dims()
            )));
        }
        Ok(Self {
            config,
            layers,
            scale,
        })
    }

    /// Reads `gating.safetensors` with the config it was written with.
    pub fn load(config: GateConfig, path: &Path, device: &Device) -> Result<Self> {
        let tensors = candle_core::safetensors::load(path, device)
            .map_err(|e| Error::checkpoint(path, e.to_string()))?;
        Self::from_tensors(config, &tensors).map_err(|e| Error::checkpoint(path, e.to_string()))
    }

    /// The weights by name.
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            out.insert(format!("layers.{i}.weight"), w.as_tensor().clone());
            out.insert(format!("layers.{i}.bias"), b.as_tensor().clone());
        }
        out.insert("logit_scale".into(), self.scale.as_tensor().clone());
        out
    }

    /// The trainable variables by name.
    pub fn vars(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            out.push((format!("layers.{i}.weight"), w.clone()));
            out.push((format!("layers.{i}.bias"), b.clone()));
        }
        out.push(("logit_scale".into(), self.scale.clone()));
        out
    }

    /// The learned scale `s`.
    pub fn scale(&self) -> Result<f32> {
        Ok(self.scale.as_tensor().to_vec1::<f32>()?[0])
    }

    /// Gate weights `(b, k)` for prompt embeddings `x` `(b, d)`. `masks` are the dropout
    /// masks of the hidden layers, `(b, h_i)` each, with values 0 or 1/(1 − p) (training);
    /// `None` applies none (evaluation).
    pub fn forward(&self, x: &Tensor, masks: Option<&[Tensor]>) -> Result<Tensor> {
        let last = self.layers.len() - 1;
        let mut h = x.to_dtype(DType::F32)?;
        for (i, (w, b)) in self.layers.iter().enumerate() {
            h = h
                .matmul(&w.as_tensor().t()?)?
                .broadcast_add(b.as_tensor())?;
            if i < last {
                h = h.relu()?;
                if let Some(m) = masks {
                    h = (h * &m[i])?;
                }
            }
        }
        let g = candle_nn::ops::softmax(&(h / self.config.temperature)?, D::Minus1)?;
        Ok(g.broadcast_mul(self.scale.as_tensor())?)
    }

    /// Fresh dropout masks for a batch of `rows` drawn from `rng` (`None` without dropout).
    pub fn dropout_masks(
        &self,
        rows: usize,
        rng: &mut StdRng,
        device: &Device,
    ) -> Result<Option<Vec<Tensor>>> {
        let p = self.config.dropout;
        if p == 0.0 {
            return Ok(None);
        }
        let keep = (1.0 / (1.0 - p)) as f32;
        self.config
            .hidden
            .iter()
            .map(|&h| {
                let v: Vec<f32> = (0..rows * h)
                    .map(|_| if rng.random::<f64>() < p { 0.0 } else { keep })
                    .collect();
                Ok(Tensor::from_vec(v, (rows, h), device)?)
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// Scores `(b,)` of rewards `r` `(b, k)` under gate weights `g` `(b, k)`: Σ_k g_k·r_k.
    pub fn combine(g: &Tensor, r: &Tensor) -> Result<Tensor> {
        Ok((g * r.to_dtype(DType::F32)?)?.sum(1)?)
    }
}

/// Preference pairs as the gate sees them: the prompt's embedding and the debiased
/// attribute rewards of both responses.
pub struct PairSet {
    /// Prompt embeddings `(n, d)`.
    pub prompt: Tensor,
    /// Debiased rewards of the chosen responses `(n, k)`.
    pub chosen: Tensor,
    /// Debiased rewards of the rejected responses `(n, k)`.
    pub rejected: Tensor,
}

impl PairSet {
    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.prompt.dims()[0]
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn rows(&self, idx: &[usize]) -> Result<(Tensor, Tensor, Tensor)> {
        let ids: Vec<u32> = idx.iter().map(|&i| i as u32).collect();
        let ids = Tensor::from_vec(ids, idx.len(), self.prompt.device())?;
        Ok((
            self.prompt.index_select(&ids, 0)?,
            self.chosen.index_select(&ids, 0)?,
            self.rejected.index_select(&ids, 0)?,
        ))
    }
}

/// The mean Bradley–Terry loss of a batch of pairs, and the share the gate orders right.
pub fn pair_loss(
    gate: &Gate,
    prompt: &Tensor,
    chosen: &Tensor,
    rejected: &Tensor,
    masks: Option<&[Tensor]>,
) -> Result<(Tensor, f64)> {
    let g = gate.forward(prompt, masks)?;
    let (sc, sr) = (Gate::combine(&g, chosen)?, Gate::combine(&g, rejected)?);
    let out = crate::rm::reward_loss(&sc, &sr, None, None, None)?;
    Ok((out.mean()?, out.accuracy()))
}

/// Held-out loss and pairwise accuracy (no dropout), in chunks of `batch` pairs.
pub fn evaluate(gate: &Gate, set: &PairSet, batch: usize) -> Result<(f64, f64)> {
    let (mut loss, mut right) = (0.0, 0.0);
    let idx: Vec<usize> = (0..set.len()).collect();
    for chunk in idx.chunks(batch.max(1)) {
        let (p, c, r) = set.rows(chunk)?;
        let (l, acc) = pair_loss(gate, &p, &c, &r, None)?;
        loss += l.to_dtype(DType::F64)?.to_scalar::<f64>()? * chunk.len() as f64;
        right += acc * chunk.len() as f64;
    }
    let n = set.len().max(1) as f64;
    Ok((loss / n, right / n))
}

/// How the gate is trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateTraining {
    /// Peak learning rate (ArmoRM: 1e-3).
    pub lr: f64,
    /// AdamW's decoupled weight decay (PyTorch's default 0.01).
    pub weight_decay: f64,
    /// Optimizer steps, over which the rate decays by a half cosine to 0 (ArmoRM: 2000).
    pub steps: usize,
    /// Pairs per step (ArmoRM: 1024; all pairs when there are fewer).
    pub batch_size: usize,
    /// Seeds the initialisation, the batch order and the dropout masks.
    pub seed: u64,
    /// Held-out evaluation every this many steps (0: only at the end).
    pub eval_every: usize,
}

/// One line of the gate's training log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogLine {
    /// Optimizer step (1-based).
    pub step: usize,
    /// Mean loss of the step's batch.
    pub loss: f64,
    /// The batch's pairwise accuracy.
    pub accuracy: f64,
    /// The learning rate used.
    pub lr: f64,
    /// Held-out loss, on eval steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_loss: Option<f64>,
    /// Held-out pairwise accuracy, on eval steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_accuracy: Option<f64>,
}

/// Trains a fresh gate of `config` on `train`, evaluating on `eval`; `log` receives one
/// line per step.
pub fn train(
    config: GateConfig,
    t: &GateTraining,
    train: &PairSet,
    eval: Option<&PairSet>,
    log: impl FnMut(&LogLine),
) -> Result<Gate> {
    let device = train.prompt.device().clone();
    let gate = Gate::new(config, t.seed, &device)?;
    fit_pairs(
        gate.vars(),
        t,
        train.len(),
        |idx, rng| {
            let (p, c, r) = train.rows(idx)?;
            let masks = gate.dropout_masks(idx.len(), rng, &device)?;
            pair_loss(&gate, &p, &c, &r, masks.as_deref())
        },
        || eval.map(|e| evaluate(&gate, e, t.batch_size)).transpose(),
        log,
    )?;
    Ok(gate)
}

/// The loop the pair models here train with (the gate, and the plain Bradley–Terry
/// baseline of [`super::baseline`]): `n` training pairs streamed as shuffled epochs in
/// batches of `t.batch_size` (a batch may straddle two epochs), AdamW over `vars` under a
/// half-cosine decay to 0, `evaluate` (held-out loss and accuracy, `None` without a
/// held-out set) on eval steps and after the last, one [`LogLine`] per step.
///
/// `batch_loss` returns a batch's mean loss and accuracy; it gets the run's generator,
/// seeded by `t.seed`, for its dropout masks.
pub(crate) fn fit_pairs(
    vars: Vec<(String, Var)>,
    t: &GateTraining,
    n: usize,
    mut batch_loss: impl FnMut(&[usize], &mut StdRng) -> Result<(Tensor, f64)>,
    mut evaluate: impl FnMut() -> Result<Option<(f64, f64)>>,
    mut log: impl FnMut(&LogLine),
) -> Result<()> {
    if n == 0 || t.steps == 0 || t.batch_size == 0 {
        return Err(Error::InvalidArgument(format!(
            "training on pairs needs pairs, steps and a batch size (got {n} pairs, {} steps, \
             batch {})",
            t.steps, t.batch_size
        )));
    }
    let mut opt = AdamW::new(
        vars,
        AdamWParams {
            lr: t.lr,
            weight_decay: t.weight_decay,
            ..AdamWParams::default()
        },
    )?;
    let mut rng = StdRng::seed_from_u64(t.seed ^ 0xA2A0_6A7E);
    let batch = t.batch_size.min(n);
    let mut order: Vec<usize> = Vec::new();
    for step in 0..t.steps {
        let mut idx = Vec::with_capacity(batch);
        while idx.len() < batch {
            if order.is_empty() {
                use rand::seq::SliceRandom;
                order = (0..n).collect();
                order.shuffle(&mut rng);
                order.reverse();
            }
            if let Some(i) = order.pop() {
                idx.push(i);
            }
        }
        let (loss, accuracy) = batch_loss(&idx, &mut rng)?;
        let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !value.is_finite() {
            return Err(Error::NonFiniteLoss {
                step: step + 1,
                loss: value as f32,
                last_checkpoint: None,
            });
        }
        let grads = loss.backward()?;
        let lr = lr_at(step, t.lr, 0.0, 0, t.steps, Decay::Cosine);
        opt.params.lr = lr;
        let g: Vec<Option<Tensor>> = opt.vars().map(|(_, v)| grads.get(v).cloned()).collect();
        opt.step(&g)?;
        let last = step + 1 == t.steps;
        let (eval_loss, eval_accuracy) =
            if last || (t.eval_every > 0 && (step + 1) % t.eval_every == 0) {
                evaluate()?.unzip()
            } else {
                (None, None)
            };
        log(&LogLine {
            step: step + 1,
            loss: value,
            accuracy,
            lr,
            eval_loss,
            eval_accuracy,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dropout: f64) -> GateConfig {
        GateConfig {
            input: 3,
            hidden: vec![5, 4],
            attributes: 2,
            dropout,
            temperature: 2.0,
        }
    }

    #[test]
    fn every_parameter_gets_a_gradient_and_weights_sum_to_the_scale() -> Result<()> {
        let dev = Device::Cpu;
        let gate = Gate::new(config(0.5), 1, &dev)?;
        let x = Tensor::new(&[[0.5f32, -1.0, 2.0], [1.0, 0.2, -0.3]], &dev)?;
        let g = gate.forward(&x, None)?;
        for row in g.to_vec2::<f32>()? {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{row:?}");
        }
        let c = Tensor::new(&[[1.0f32, 0.0], [0.3, 0.9]], &dev)?;
        let r = Tensor::new(&[[0.0f32, 1.0], [0.5, 0.1]], &dev)?;
        let mut rng = StdRng::seed_from_u64(3);
        let masks = gate.dropout_masks(2, &mut rng, &dev)?.expect("masks");
        let (loss, _) = pair_loss(&gate, &x, &c, &r, Some(&masks))?;
        let grads = loss.backward()?;
        for (name, var) in gate.vars() {
            let g = grads.get(&var).expect(&name).abs()?.sum_all()?;
            assert!(g.to_scalar::<f32>()? > 0.0, "{name} has no gradient");
        }
        Ok(())
    }

    #[test]
    fn training_learns_a_prompt_dependent_weighting() -> Result<()> {
        // The prompt's sign says which attribute decides the preference: no fixed weighting
        // orders all pairs, a gate that reads the prompt can.
        let dev = Device::Cpu;
        let n = 64;
        let mut rng = StdRng::seed_from_u64(5);
        let (mut p, mut c, mut r) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            let s = if i % 2 == 0 { 1.0f32 } else { -1.0 };
            p.extend([s, rng.random_range(-0.1..0.1), 1.0]);
            let (a, b) = (rng.random_range(0.5..1.0f32), rng.random_range(0.5..1.0f32));
            // Attribute 0 favours chosen when s > 0, attribute 1 when s < 0; the other
            // attribute points the wrong way, by more.
            if s > 0.0 {
                c.extend([a, 0.0]);
                r.extend([0.0, 1.5 * b]);
            } else {
                c.extend([0.0, a]);
                r.extend([1.5 * b, 0.0]);
            }
        }
        let set = PairSet {
            prompt: Tensor::from_vec(p, (n, 3), &dev)?,
            chosen: Tensor::from_vec(c, (n, 2), &dev)?,
            rejected: Tensor::from_vec(r, (n, 2), &dev)?,
        };
        let mut cfg = config(0.0);
        cfg.temperature = 0.5;
        let t = GateTraining {
            lr: 3e-2,
            weight_decay: 0.0,
            steps: 150,
            batch_size: 32,
            seed: 1,
            eval_every: 0,
        };
        let mut lines = Vec::new();
        let gate = train(cfg, &t, &set, Some(&set), |l| lines.push(l.clone()))?;
        assert_eq!(lines.len(), 150);
        let (_, acc) = evaluate(&gate, &set, 16)?;
        assert_eq!(lines[149].eval_accuracy, Some(acc));
        assert!(acc > 0.95, "accuracy {acc}");
        assert!(lines[149].loss < lines[0].loss);
        assert!(lines[149].lr < 1e-5, "cosine to 0: {}", lines[149].lr);
        Ok(())
    }
}
