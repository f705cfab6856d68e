//! GPT-2: learned positions, pre-norm blocks, fused QKV, GELU (tanh form), tied LM head.
//!
//! HF stores GPT-2's projections as `Conv1D` weights of shape `(in, out)`; they are
//! transposed on load (a view, so gradients reach the stored variable). Layer norm and
//! GELU are the project's fused ops ([`crate::ops`]), which have backward passes.

use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::{Inputs, KvCache, attention};
use crate::lora::LoraLinear;
use crate::ops;

fn default_eps() -> f64 {
    1e-5
}
fn default_act() -> String {
    "gelu_new".into()
}

/// HF `config.json` of a GPT-2 model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Always `gpt2`.
    #[serde(default)]
    pub model_type: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Number of learned positions (the context length).
    pub n_positions: usize,
    /// Model width.
    pub n_embd: usize,
    /// Number of blocks.
    pub n_layer: usize,
    /// Attention heads.
    pub n_head: usize,
    /// MLP inner width; defaults to `4 · n_embd`.
    #[serde(default)]
    pub n_inner: Option<usize>,
    /// Layer norm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    /// `gelu_new` (tanh approximation, GPT-2's) or `gelu` (erf).
    #[serde(default = "default_act")]
    pub activation_function: String,
}

#[derive(Debug)]
struct Norm {
    weight: Tensor,
    bias: Tensor,
}

impl Norm {
    fn new(d: usize, vb: VarBuilder<'_>) -> candle_core::Result<Self> {
        Ok(Self {
            weight: vb.get(d, "weight")?,
            bias: vb.get(d, "bias")?,
        })
    }
    fn forward(&self, x: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
        crate::ops::layer_norm(x, &self.weight, &self.bias, eps)
    }
}

/// A Conv1D checkpoint tensor `(in, out)` as a projection.
fn conv1d(inp: usize, out: usize, vb: VarBuilder<'_>) -> candle_core::Result<LoraLinear> {
    let w = vb.get((inp, out), "weight")?.t()?;
    Ok(LoraLinear::new(w, Some(vb.get(out, "bias")?)))
}

#[derive(Debug)]
struct Block {
    ln_1: Norm,
    c_attn: LoraLinear,
    attn_c_proj: LoraLinear,
    ln_2: Norm,
    c_fc: LoraLinear,
    mlp_c_proj: LoraLinear,
}

/// GPT-2 with its tied LM head.
#[derive(Debug)]
pub struct Model {
    cfg: Config,
    wte: Tensor,
    wpe: Tensor,
    h: Vec<Block>,
    ln_f: Norm,
    /// `transformer.` when the checkpoint was saved from `GPT2LMHeadModel`, empty for bare `GPT2Model`.
    prefix: String,
}

impl Model {
    /// Builds the model from HF names, with or without the `transformer.` prefix.
    pub fn new(cfg: &Config, vb: VarBuilder<'_>) -> candle_core::Result<Self> {
        let (prefix, t) = if vb.contains_tensor("transformer.wte.weight") {
            ("transformer.".to_string(), vb.pp("transformer"))
        } else {
            (String::new(), vb)
        };
        let d = cfg.n_embd;
        let inner = cfg.n_inner.unwrap_or(4 * d);
        let mut h = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let l = t.pp(format!("h.{i}"));
            h.push(Block {
                ln_1: Norm::new(d, l.pp("ln_1"))?,
                c_attn: conv1d(d, 3 * d, l.pp("attn.c_attn"))?,
                attn_c_proj: conv1d(d, d, l.pp("attn.c_proj"))?,
                ln_2: Norm::new(d, l.pp("ln_2"))?,
                c_fc: conv1d(d, inner, l.pp("mlp.c_fc"))?,
                mlp_c_proj: conv1d(inner, d, l.pp("mlp.c_proj"))?,
            });
        }
        Ok(Self {
            cfg: cfg.clone(),
            wte: t.get((cfg.vocab_size, d), "wte.weight")?,
            wpe: t.get((cfg.n_positions, d), "wpe.weight")?,
            h,
            ln_f: Norm::new(d, t.pp("ln_f"))?,
            prefix,
        })
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The device of the weights.
    pub fn device(&self) -> &Device {
        self.wte.device()
    }

    fn act(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if self.cfg.activation_function == "gelu" {
            x.gelu_erf()
        } else {
            crate::ops::gelu_tanh(x)
        }
    }

    /// Final normed hidden states `(b, t, d)`.
    pub fn forward_hidden(
        &self,
        inputs: &Inputs,
        mut cache: Option<&mut KvCache>,
    ) -> candle_core::Result<Tensor> {
        let (b, t) = inputs.ids.dims2()?;
        let (d, nh) = (self.cfg.n_embd, self.cfg.n_head);
        let hd = d / nh;
        let tok = self.wte.index_select(&inputs.ids.flatten_all()?, 0)?;
        let pos = self.wpe.index_select(&inputs.positions.flatten_all()?, 0)?;
        let mut x = (tok + pos)?.reshape((b, t, d))?;
        let eps = self.cfg.layer_norm_epsilon;
        for (i, l) in self.h.iter().enumerate() {
            let qkv = l.c_attn.forward(&l.ln_1.forward(&x, eps)?)?; // (b, t, 3d)
            let y = if cache.is_none() && ops::attention::fusable(&[&qkv]) {
                ops::attention::attention_packed(&qkv, nh, inputs.key_mask.as_ref())?
            } else {
                let split = |j: usize| -> candle_core::Result<Tensor> {
                    qkv.narrow(2, j * d, d)?
                        .reshape((b, t, nh, hd))?
                        .transpose(1, 2)?
                        .contiguous()
                };
                let (q, k, v) = (split(0)?, split(1)?, split(2)?);
                let (k, v) = match cache.as_deref_mut() {
                    Some(c) => c.append(i, k, v)?,
                    None => (k, v),
                };
                attention(&q, &k, &v, inputs.key_mask.as_ref())?
                    .transpose(1, 2)?
                    .reshape((b, t, d))?
            };
            x = (x + l.attn_c_proj.forward(&y)?)?;
            let m = self.act(&l.c_fc.forward(&l.ln_2.forward(&x, eps)?)?)?;
            x = (&x + l.mlp_c_proj.forward(&m)?)?;
        }
        self.ln_f.forward(&x, eps)
    }

    /// The LM head's weight `(vocab, d)`: the tied token embedding.
    pub fn lm_head_weight(&self) -> &Tensor {
        &self.wte
    }

    /// `(b, t, d)` → `(b, t, vocab)` through the tied embedding.
    pub fn lm_logits(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        crate::ops::linear(hidden, &self.wte, None)
    }

    /// Every projection with its checkpoint name.
    pub fn linears_mut(&mut self) -> Vec<(String, &mut LoraLinear)> {
        let mut out = Vec::new();
        for (i, l) in self.h.iter_mut().enumerate() {
            let p = format!("{}h.{i}", self.prefix);
            out.push((format!("{p}.attn.c_attn"), &mut l.c_attn));
            out.push((format!("{p}.attn.c_proj"), &mut l.attn_c_proj));
            out.push((format!("{p}.mlp.c_fc"), &mut l.c_fc));
            out.push((format!("{p}.mlp.c_proj"), &mut l.mlp_c_proj));
        }
        out
    }
}
