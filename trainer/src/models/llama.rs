//! Llama-style decoders: Llama, Qwen2 (q/k/v bias), SmolLM, Mistral without sliding window.
//!
//! RMSNorm, rotary embeddings (HF's rotate-half layout), grouped-query attention and a
//! SwiGLU MLP; the LM head is `lm_head.weight` or the tied token embedding.

use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::{Inputs, KvCache, attention};
use crate::lora::LoraLinear;
use crate::ops::{self, rms_norm, silu_mul};

fn default_eps() -> f64 {
    1e-6
}
fn default_model_type() -> String {
    "llama".into()
}

/// HF `config.json` of a Llama-style model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// `llama`, `qwen2`, `mistral`.
    #[serde(default = "default_model_type")]
    pub model_type: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Model width.
    pub hidden_size: usize,
    /// MLP inner width.
    pub intermediate_size: usize,
    /// Number of decoder blocks.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention); defaults to the query heads.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Per-head width; defaults to `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// RMSNorm epsilon.
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    /// RoPE base (transformers < 5); see [`Config::rope_theta`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_theta: Option<f64>,
    /// transformers ≥ 5 writes `{"rope_theta": .., "rope_type": "default"}` here instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_parameters: Option<serde_json::Value>,
    /// Context length the model was trained for (informational).
    #[serde(default)]
    pub max_position_embeddings: Option<usize>,
    /// Whether the LM head reuses the token embedding.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Whether q/k/v/o projections have biases (Llama's flag; Qwen2 has q/k/v bias always).
    #[serde(default)]
    pub attention_bias: bool,
    /// Only `null` is supported; scaled RoPE variants are refused at load time.
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
}

impl Config {
    /// Key/value heads.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }
    /// Per-head width.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }
    /// The RoPE base from either spelling, 10000 when absent.
    pub fn rope_theta(&self) -> f64 {
        self.rope_theta
            .or_else(|| {
                self.rope_parameters
                    .as_ref()
                    .and_then(|p| p["rope_theta"].as_f64())
            })
            .unwrap_or(10_000.0)
    }
    fn qkv_bias(&self) -> bool {
        self.attention_bias || self.model_type == "qwen2"
    }
}

fn proj(inp: usize, out: usize, bias: bool, vb: VarBuilder<'_>) -> candle_core::Result<LoraLinear> {
    let w = vb.get((out, inp), "weight")?;
    let b = if bias {
        Some(vb.get(out, "bias")?)
    } else {
        None
    };
    Ok(LoraLinear::new(w, b))
}

/// Rotary tables `(b, 1, t, head_dim)` for explicit positions.
fn rope_tables(
    positions: &Tensor,
    head_dim: usize,
    theta: f64,
) -> candle_core::Result<(Tensor, Tensor)> {
    let (b, t) = positions.dims2()?;
    let inv: Vec<f32> = (0..head_dim / 2)
        .map(|i| (1.0 / theta.powf(2.0 * i as f64 / head_dim as f64)) as f32)
        .collect();
    let inv = Tensor::from_vec(inv, (1, 1, head_dim / 2), positions.device())?;
    let freqs = positions
        .to_dtype(DType::F32)?
        .unsqueeze(2)?
        .broadcast_mul(&inv)?;
    let emb = Tensor::cat(&[&freqs, &freqs], D::Minus1)?.reshape((b, 1, t, head_dim))?;
    Ok((emb.cos()?, emb.sin()?))
}

/// HF's rotate-half RoPE from tensor ops (candle-nn's fused `rope` has no backward).
fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
    // The tables are computed in f32; like HF, apply them in the activations' dtype (bf16).
    let (cos, sin) = (&cos.to_dtype(x.dtype())?, &sin.to_dtype(x.dtype())?);
    let d = x.dim(D::Minus1)?;
    let x1 = x.narrow(D::Minus1, 0, d / 2)?;
    let x2 = x.narrow(D::Minus1, d / 2, d / 2)?;
    let rot = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
    x.broadcast_mul(cos)? + rot.broadcast_mul(sin)?
}

#[derive(Debug)]
struct Attention {
    q_proj: LoraLinear,
    k_proj: LoraLinear,
    v_proj: LoraLinear,
    o_proj: LoraLinear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn new(cfg: &Config, vb: VarBuilder<'_>) -> candle_core::Result<Self> {
        let (h, kv, hd) = (cfg.num_attention_heads, cfg.kv_heads(), cfg.head_dim());
        let bias = cfg.qkv_bias();
        Ok(Self {
            q_proj: proj(cfg.hidden_size, h * hd, bias, vb.pp("q_proj"))?,
            k_proj: proj(cfg.hidden_size, kv * hd, bias, vb.pp("k_proj"))?,
            v_proj: proj(cfg.hidden_size, kv * hd, bias, vb.pp("v_proj"))?,
            o_proj: proj(h * hd, cfg.hidden_size, cfg.attention_bias, vb.pp("o_proj"))?,
            heads: h,
            kv_heads: kv,
            head_dim: hd,
        })
    }

    /// `x: (b, t, d)` → `(b, t, d)`.
    fn forward(
        &self,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        fused_rope: Option<&ops::attention::Rope>,
        key_mask: Option<&Tensor>,
        cache: Option<(&mut KvCache, usize)>,
    ) -> candle_core::Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (q, k, v) = (
            self.q_proj.forward(x)?,
            self.k_proj.forward(x)?,
            self.v_proj.forward(x)?,
        );
        if cache.is_none() && ops::attention::fusable(&[&q, &k, &v]) {
            let rope = match fused_rope {
                Some(r) => r.clone(),
                None => ops::attention::Rope::new(&rope.0, &rope.1)?,
            };
            let y = ops::attention::attention_split(
                &q,
                &k,
                &v,
                self.heads,
                self.kv_heads,
                key_mask,
                Some(rope),
            )?;
            return self.o_proj.forward(&y);
        }
        let split = |y: Tensor, n: usize| y.reshape((b, t, n, self.head_dim))?.transpose(1, 2);
        let q = split(q, self.heads)?.contiguous()?; // (b, h, t, hd)
        let k = split(k, self.kv_heads)?.contiguous()?; // (b, kv, t, hd)
        let v = split(v, self.kv_heads)?.contiguous()?;
        let q = apply_rope(&q, &rope.0, &rope.1)?;
        let k = apply_rope(&k, &rope.0, &rope.1)?;
        let (k, v) = match cache {
            Some((c, i)) => c.append(i, k, v)?,
            None => (k, v),
        };
        let rep = self.heads / self.kv_heads;
        let repeat = |y: Tensor| -> candle_core::Result<Tensor> {
            if rep == 1 {
                return Ok(y);
            }
            let (b, kv, s, hd) = y.dims4()?;
            y.unsqueeze(2)?
                .broadcast_as((b, kv, rep, s, hd))?
                .reshape((b, kv * rep, s, hd))
        };
        let (k, v) = (repeat(k)?, repeat(v)?);
        let y = attention(&q, &k, &v, key_mask)?; // (b, h, t, hd)
        let y = y
            .transpose(1, 2)?
            .reshape((b, t, self.heads * self.head_dim))?;
        self.o_proj.forward(&y)
    }
}

#[derive(Debug)]
struct Mlp {
    gate_proj: LoraLinear,
    up_proj: LoraLinear,
    down_proj: LoraLinear,
}

impl Mlp {
    fn new(cfg: &Config, vb: VarBuilder<'_>) -> candle_core::Result<Self> {
        let (d, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            gate_proj: proj(d, i, false, vb.pp("gate_proj"))?,
            up_proj: proj(d, i, false, vb.pp("up_proj"))?,
            down_proj: proj(i, d, false, vb.pp("down_proj"))?,
        })
    }
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let g = silu_mul(&self.gate_proj.forward(x)?, &self.up_proj.forward(x)?)?;
        self.down_proj.forward(&g)
    }
}

#[derive(Debug)]
struct Block {
    input_layernorm: Tensor,
    self_attn: Attention,
    post_attention_layernorm: Tensor,
    mlp: Mlp,
}

/// A Llama-style decoder with its LM head.
#[derive(Debug)]
pub struct Model {
    cfg: Config,
    embed_tokens: Tensor,
    layers: Vec<Block>,
    norm: Tensor,
    /// `None` when tied to `embed_tokens`.
    lm_head: Option<Tensor>,
}

impl Model {
    /// Builds the model from HF tensor names (`model.layers.N.self_attn.q_proj.weight`, ...).
    pub fn new(cfg: &Config, vb: VarBuilder<'_>) -> candle_core::Result<Self> {
        if cfg.rope_scaling.as_ref().is_some_and(|v| !v.is_null()) {
            candle_core::bail!("rope_scaling is not supported (got {:?})", cfg.rope_scaling);
        }
        if let Some(kind) = cfg
            .rope_parameters
            .as_ref()
            .and_then(|p| p["rope_type"].as_str())
            && kind != "default"
        {
            candle_core::bail!("rope_type `{kind}` is not supported (only `default`)");
        }
        let m = vb.pp("model");
        let embed_tokens = m.get((cfg.vocab_size, cfg.hidden_size), "embed_tokens.weight")?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let l = m.pp(format!("layers.{i}"));
            layers.push(Block {
                input_layernorm: l.get(cfg.hidden_size, "input_layernorm.weight")?,
                self_attn: Attention::new(cfg, l.pp("self_attn"))?,
                post_attention_layernorm: l
                    .get(cfg.hidden_size, "post_attention_layernorm.weight")?,
                mlp: Mlp::new(cfg, l.pp("mlp"))?,
            });
        }
        let norm = m.get(cfg.hidden_size, "norm.weight")?;
        let lm_head = if cfg.tie_word_embeddings {
            None
        } else {
            Some(vb.get((cfg.vocab_size, cfg.hidden_size), "lm_head.weight")?)
        };
        Ok(Self {
            cfg: cfg.clone(),
            embed_tokens,
            layers,
            norm,
            lm_head,
        })
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The device of the weights.
    pub fn device(&self) -> &Device {
        self.embed_tokens.device()
    }

    /// Final normed hidden states `(b, t, d)`.
    pub fn forward_hidden(
        &self,
        inputs: &Inputs,
        mut cache: Option<&mut KvCache>,
    ) -> candle_core::Result<Tensor> {
        let (b, t) = inputs.ids.dims2()?;
        let rope = rope_tables(
            &inputs.positions,
            self.cfg.head_dim(),
            self.cfg.rope_theta(),
        )?;
        let mut x = self
            .embed_tokens
            .index_select(&inputs.ids.flatten_all()?, 0)?
            .reshape((b, t, self.cfg.hidden_size))?;
        let eps = self.cfg.rms_norm_eps;
        // The fused attention's tables, built once for every layer.
        let fused_rope = (cache.is_none() && ops::attention::fusable(&[&x]))
            .then(|| ops::attention::Rope::new(&rope.0, &rope.1))
            .transpose()?;
        for (i, l) in self.layers.iter().enumerate() {
            let h = rms_norm(&x, &l.input_layernorm, eps)?;
            let c = cache.as_deref_mut().map(|c| (c, i));
            let mask = inputs.key_mask.as_ref();
            let a = l
                .self_attn
                .forward(&h, &rope, fused_rope.as_ref(), mask, c)?;
            x = (x + a)?;
            let h = rms_norm(&x, &l.post_attention_layernorm, eps)?;
            x = (&x + l.mlp.forward(&h)?)?;
        }
        rms_norm(&x, &self.norm, eps)
    }

    /// The LM head's weight `(vocab, d)`: `lm_head.weight`, or the tied token embedding.
    pub fn lm_head_weight(&self) -> &Tensor {
        self.lm_head.as_ref().unwrap_or(&self.embed_tokens)
    }

    /// `(b, t, d)` → `(b, t, vocab)`.
    pub fn lm_logits(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        let w = self.lm_head_weight();
        crate::ops::linear(hidden, w, None)
    }

    /// Every projection with its checkpoint name.
    pub fn linears_mut(&mut self) -> Vec<(String, &mut LoraLinear)> {
        let mut out = Vec::new();
        for (i, l) in self.layers.iter_mut().enumerate() {
            let p = format!("model.layers.{i}");
            let a = &mut l.self_attn;
            out.push((format!("{p}.self_attn.q_proj"), &mut a.q_proj));
            out.push((format!("{p}.self_attn.k_proj"), &mut a.k_proj));
            out.push((format!("{p}.self_attn.v_proj"), &mut a.v_proj));
            out.push((format!("{p}.self_attn.o_proj"), &mut a.o_proj));
            let m = &mut l.mlp;
            out.push((format!("{p}.mlp.gate_proj"), &mut m.gate_proj));
            out.push((format!("{p}.mlp.up_proj"), &mut m.up_proj));
            out.push((format!("{p}.mlp.down_proj"), &mut m.down_proj));
        }
        out
    }
}
