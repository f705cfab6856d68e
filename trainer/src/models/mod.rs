//! Transformer families written in the project, and the heads on top of them.
//!
//! The models follow candle-transformers' structure (a serde `Config` read from HF
//! `config.json`, `Model::new(cfg, vb)` reaching tensors through `vb.pp(..)` with HF
//! checkpoint names) but every projection is a [`LoraLinear`] and every op in the
//! graph has a backward pass: candle-nn's fused RMSNorm, RoPE, softmax and layer norm
//! silently drop gradients, so norms, activations and the attention softmax are the
//! project's own fused CPU ops with hand-written backward passes ([`crate::ops`],
//! composed candle ops on other devices), and RoPE is composed from tensor ops.
//!
//! All models take the same [`Inputs`]: token ids, explicit positions and a key mask,
//! which is what left-padded batches and the KV cache need.

pub mod gpt2;
pub mod heads;
pub mod llama;

use candle_core::{D, Device, Tensor};

use crate::error::{Error, Result};
use crate::lora::{LoraLinear, LoraTarget};

/// One forward call's inputs.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// `(b, t)` u32 token ids.
    pub ids: Tensor,
    /// `(b, t)` u32 positions (for left padding: counted from each row's first real token).
    pub positions: Tensor,
    /// `(b, past + t)` f32, 1 for real tokens and 0 for padding; `None` means no padding.
    pub key_mask: Option<Tensor>,
}

impl Inputs {
    /// Unpadded inputs whose positions start at `past` (the KV cache length).
    pub fn new(ids: Tensor, past: usize) -> Result<Self> {
        let (b, t) = ids.dims2()?;
        let positions = Tensor::arange(past as u32, (past + t) as u32, ids.device())?
            .unsqueeze(0)?
            .broadcast_as((b, t))?
            .contiguous()?;
        Ok(Self {
            ids,
            positions,
            key_mask: None,
        })
    }

    /// Left-padded inputs from a `(b, t)` mask of 1 (token) / 0 (pad), no cache.
    pub fn with_mask(ids: Tensor, mask: &[Vec<u32>]) -> Result<Self> {
        let dev = ids.device().clone();
        let (b, t) = ids.dims2()?;
        let m: Vec<f32> = mask.iter().flatten().map(|&x| x as f32).collect();
        if m.len() != b * t {
            return Err(Error::InvalidArgument(format!(
                "mask has {} entries for ids of shape ({b}, {t})",
                m.len()
            )));
        }
        // positions: number of real tokens before this one (pads get 0).
        let mut positions = Vec::with_capacity(b * t);
        for row in mask {
            let mut p = 0u32;
            for &x in row {
                positions.push(if x == 1 { p } else { 0 });
                p += x;
            }
        }
        Ok(Self {
            ids,
            positions: Tensor::from_vec(positions, (b, t), &dev)?,
            key_mask: Some(Tensor::from_vec(m, (b, t), &dev)?),
        })
    }
}

/// Per-layer cached keys and values, each `(b, kv_heads, s, head_dim)`.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    /// An empty cache for `n_layers` layers.
    pub fn new(n_layers: usize) -> Self {
        Self {
            layers: vec![None; n_layers],
        }
    }

    /// Number of cached positions.
    pub fn seq_len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .map_or(0, |(k, _)| k.dims().get(2).copied().unwrap_or(0))
    }

    /// Appends `k`, `v` to layer `i` and returns the full keys and values.
    pub(crate) fn append(
        &mut self,
        i: usize,
        k: Tensor,
        v: Tensor,
    ) -> candle_core::Result<(Tensor, Tensor)> {
        // A cache is for decoding only, never differentiated: stored detached, so that a
        // model with trainable adapters (RL rollouts) does not keep every step's graph, and
        // with it every step's activations, alive through the growing cache.
        let (k, v) = match self.layers[i].take() {
            None => (k.contiguous()?.detach(), v.contiguous()?.detach()),
            Some((pk, pv)) => (
                Tensor::cat(&[&pk, &k.detach()], 2)?,
                Tensor::cat(&[&pv, &v.detach()], 2)?,
            ),
        };
        self.layers[i] = Some((k.clone(), v.clone()));
        Ok((k, v))
    }

    /// Keeps only the rows in `keep` (drops finished sequences from a batch).
    pub fn select_rows(&mut self, keep: &Tensor) -> candle_core::Result<()> {
        for l in self.layers.iter_mut().flatten() {
            l.0 = l.0.index_select(keep, 0)?;
            l.1 = l.1.index_select(keep, 0)?;
        }
        Ok(())
    }
}

/// Scaled dot-product attention, causal and never attending padding keys (`key_mask`,
/// `(b, past + t)`); q `(b,h,t,d)`, k/v `(b,h,s,d)`. The scale, masks and softmax are one
/// fused op ([`crate::ops::masked_softmax`]).
pub(crate) fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    key_mask: Option<&Tensor>,
) -> candle_core::Result<Tensor> {
    let d = q.dim(D::Minus1)?;
    let scores = q.matmul(&k.t()?)?;
    crate::ops::masked_softmax(&scores, 1.0 / (d as f64).sqrt(), key_mask)?.matmul(v)
}

/// A causal language model of any supported family.
#[derive(Debug)]
pub enum CausalLm {
    /// Llama, Qwen2, SmolLM and other Llama-style models.
    Llama(llama::Model),
    /// GPT-2.
    Gpt2(gpt2::Model),
}

impl CausalLm {
    /// Final hidden states `(b, t, d)`; updates `cache` when given.
    pub fn forward_hidden(&self, inputs: &Inputs, cache: Option<&mut KvCache>) -> Result<Tensor> {
        Ok(match self {
            Self::Llama(m) => m.forward_hidden(inputs, cache)?,
            Self::Gpt2(m) => m.forward_hidden(inputs, cache)?,
        })
    }

    /// The LM head's weight `(vocab, d)` (the token embedding when tied).
    pub fn lm_head_weight(&self) -> &Tensor {
        match self {
            Self::Llama(m) => m.lm_head_weight(),
            Self::Gpt2(m) => m.lm_head_weight(),
        }
    }

    /// LM logits `(b, t, vocab)` from hidden states.
    pub fn lm_logits(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Llama(m) => m.lm_logits(hidden)?,
            Self::Gpt2(m) => m.lm_logits(hidden)?,
        })
    }

    /// LM logits `(b, t, vocab)` for `inputs`.
    pub fn forward(&self, inputs: &Inputs, cache: Option<&mut KvCache>) -> Result<Tensor> {
        let h = self.forward_hidden(inputs, cache)?;
        self.lm_logits(&h)
    }

    /// Number of transformer blocks (the KV cache's length).
    pub fn num_layers(&self) -> usize {
        match self {
            Self::Llama(m) => m.config().num_hidden_layers,
            Self::Gpt2(m) => m.config().n_layer,
        }
    }

    /// Width of the hidden states.
    pub fn hidden_size(&self) -> usize {
        match self {
            Self::Llama(m) => m.config().hidden_size,
            Self::Gpt2(m) => m.config().n_embd,
        }
    }

    /// Vocabulary size of the LM head.
    pub fn vocab_size(&self) -> usize {
        match self {
            Self::Llama(m) => m.config().vocab_size,
            Self::Gpt2(m) => m.config().vocab_size,
        }
    }

    /// The longest sequence the model supports (`None` when RoPE does not bound it).
    pub fn max_positions(&self) -> Option<usize> {
        match self {
            Self::Llama(_) => None,
            Self::Gpt2(m) => Some(m.config().n_positions),
        }
    }

    /// Switches LoRA dropout on or off.
    pub fn set_training(&mut self, training: bool) {
        for (_, l) in self.linears_mut() {
            l.set_training(training);
        }
    }

    /// The model's HF `config.json` text.
    pub fn config_json(&self) -> String {
        let v = match self {
            Self::Llama(m) => serde_json::to_value(m.config()),
            Self::Gpt2(m) => serde_json::to_value(m.config()),
        };
        let mut v = v.unwrap_or_default();
        if let (Self::Gpt2(_), Some(o)) = (self, v.as_object_mut()) {
            o.insert("model_type".into(), "gpt2".into());
        }
        v.to_string()
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        match self {
            Self::Llama(m) => m.device(),
            Self::Gpt2(m) => m.device(),
        }
    }
}

impl LoraTarget for CausalLm {
    fn linears_mut(&mut self) -> Vec<(String, &mut LoraLinear)> {
        match self {
            Self::Llama(m) => m.linears_mut(),
            Self::Gpt2(m) => m.linears_mut(),
        }
    }
}

/// Reads `config.json`'s `model_type` and builds the matching family.
pub fn from_config_json(
    json: &str,
    vb: candle_nn::VarBuilder<'_>,
    path: &std::path::Path,
) -> Result<CausalLm> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(default)]
        model_type: String,
    }
    let parse_err = |e| Error::Json {
        path: path.to_path_buf(),
        source: e,
    };
    let probe: Probe = serde_json::from_str(json).map_err(parse_err)?;
    match probe.model_type.as_str() {
        "llama" | "qwen2" | "mistral" | "" => {
            let cfg: llama::Config = serde_json::from_str(json).map_err(parse_err)?;
            Ok(CausalLm::Llama(llama::Model::new(&cfg, vb)?))
        }
        "gpt2" => {
            let cfg: gpt2::Config = serde_json::from_str(json).map_err(parse_err)?;
            Ok(CausalLm::Gpt2(gpt2::Model::new(&cfg, vb)?))
        }
        other => Err(Error::checkpoint(
            path,
            format!("unsupported model_type `{other}` (supported: llama, qwen2, mistral, gpt2)"),
        )),
    }
}
