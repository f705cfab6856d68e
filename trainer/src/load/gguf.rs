//! GGUF files (llama.cpp): Llama-architecture weights dequantized to f32, and the tokenizer
//! rebuilt from the metadata.
//!
//! llama.cpp's converter permutes the rows of `attn_q` / `attn_k` from HF's rotate-half RoPE
//! layout into an interleaved one; [`unpermute_qk`] undoes it so the tensors drop into the
//! HF-layout model of [`crate::models::llama`]. Quantized blocks are dequantized once at load
//! time (candle's `quantized` module), so the model trains and runs like any f32 model; with
//! bf16 asked for ([`load_as`]), each tensor is narrowed to bf16 right after it is
//! dequantized, so only one tensor at a time is ever held in f32.

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Device, Tensor};

use super::Loaded;
use super::hf::model_from_tensors_as;
use super::tokenizer::{ChatTemplate, Tokenizer, byte_level_bpe_json};
use crate::error::{Error, Result};
use crate::models::llama;

/// Reverses llama.cpp's Q/K row permutation for a `(heads·head_dim, in)` weight (or a bias).
pub fn unpermute_qk(w: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let dims = w.dims().to_vec();
    let out = dims[0];
    let rest: usize = dims[1..].iter().product();
    let hd = out / heads;
    w.reshape((heads, hd / 2, 2, rest))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape(dims)
}

fn meta<'a>(ct: &'a Content, key: &str, path: &Path) -> Result<&'a Value> {
    ct.metadata
        .get(key)
        .ok_or_else(|| Error::checkpoint(path, format!("GGUF metadata lacks `{key}`")))
}

/// HF name of a GGUF tensor name (`blk.3.attn_q.weight` → `model.layers.3.self_attn.q_proj.weight`).
fn hf_name(name: &str) -> Option<String> {
    let fixed = match name {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = name.strip_prefix("blk.")?;
    let (layer, tail) = rest.split_once('.')?;
    let (part, kind) = tail.rsplit_once('.')?;
    let hf = match part {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{kind}"))
}

/// The model config from GGUF metadata (`llama.*` or `qwen2.*` keys).
pub fn config(ct: &Content, path: &Path) -> Result<llama::Config> {
    let arch = meta(ct, "general.architecture", path)?.to_string()?.clone();
    if arch != "llama" && arch != "qwen2" {
        return Err(Error::checkpoint(
            path,
            format!("unsupported GGUF architecture `{arch}` (llama, qwen2)"),
        ));
    }
    let u = |k: &str| -> Result<usize> {
        Ok(meta(ct, &format!("{arch}.{k}"), path)?.to_u32()? as usize)
    };
    let heads = u("attention.head_count")?;
    let vocab = meta(ct, "tokenizer.ggml.tokens", path)?.to_vec()?.len();
    Ok(llama::Config {
        model_type: arch.clone(),
        vocab_size: vocab,
        hidden_size: u("embedding_length")?,
        intermediate_size: u("feed_forward_length")?,
        num_hidden_layers: u("block_count")?,
        num_attention_heads: heads,
        num_key_value_heads: Some(u("attention.head_count_kv").unwrap_or(heads)),
        head_dim: None,
        rms_norm_eps: meta(
            ct,
            &format!("{arch}.attention.layer_norm_rms_epsilon"),
            path,
        )?
        .to_f32()? as f64,
        rope_theta: Some(
            ct.metadata
                .get(&format!("{arch}.rope.freq_base"))
                .map_or(Ok(10_000.0), |v| v.to_f32().map(f64::from))?,
        ),
        rope_parameters: None,
        max_position_embeddings: u("context_length").ok(),
        tie_word_embeddings: !ct.tensor_infos.contains_key("output.weight"),
        attention_bias: false,
        rope_scaling: None,
    })
}

/// The tokenizer from `tokenizer.ggml.*` metadata (byte-level BPE, `gpt2` model only).
pub fn tokenizer(ct: &Content, path: &Path) -> Result<Tokenizer> {
    let model = meta(ct, "tokenizer.ggml.model", path)?.to_string()?;
    if model != "gpt2" {
        return Err(Error::checkpoint(
            path,
            format!("GGUF tokenizer model `{model}` is not supported (gpt2 byte-level BPE only)"),
        ));
    }
    let strings = |k: &str| -> Result<Vec<String>> {
        meta(ct, k, path)?
            .to_vec()?
            .iter()
            .map(|v| Ok(v.to_string()?.clone()))
            .collect()
    };
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merges = strings("tokenizer.ggml.merges")?;
    // token_type 3 = control, 4 = user-defined: both behave as special (never split).
    let special: Vec<u32> = match ct.metadata.get("tokenizer.ggml.token_type") {
        Some(v) => v
            .to_vec()?
            .iter()
            .enumerate()
            .filter_map(|(i, t)| matches!(t.to_i32(), Ok(3 | 4)).then_some(i as u32))
            .collect(),
        None => Vec::new(),
    };
    let pre = ct
        .metadata
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok().cloned())
        .unwrap_or_default();
    let json = byte_level_bpe_json(&tokens, &merges, &special, pre == "smollm");
    let id = |k: &str| ct.metadata.get(k).and_then(|v| v.to_u32().ok());
    let name = |i: Option<u32>| i.and_then(|i| tokens.get(i as usize).cloned());
    let chat = ct
        .metadata
        .get("tokenizer.chat_template")
        .and_then(|v| v.to_string().ok())
        .and_then(|t| ChatTemplate::from_jinja(t));
    let mut eos: Vec<String> = name(id("tokenizer.ggml.eos_token_id"))
        .into_iter()
        .collect();
    if chat.is_some() && tokens.iter().any(|t| t == "<|im_end|>") {
        eos.push("<|im_end|>".into());
    }
    let eos: Vec<&str> = eos.iter().map(String::as_str).collect();
    let mut tok = Tokenizer::from_json(
        &json,
        &eos,
        name(id("tokenizer.ggml.bos_token_id")).as_deref(),
        chat,
    )?;
    if let Some(p) = id("tokenizer.ggml.padding_token_id") {
        tok.pad_id = p;
    }
    Ok(tok)
}

/// HF-named tensors of a GGUF file, dequantized and converted to `dtype`, with Q/K
/// un-permuted.
pub fn read_tensors(
    ct: &Content,
    file: &mut File,
    cfg: &llama::Config,
    dtype: DType,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for name in ct.tensor_infos.keys() {
        let Some(hf) = hf_name(name) else { continue };
        let t = ct
            .tensor(file, name, device)?
            .dequantize(device)?
            .to_dtype(dtype)?;
        let t = if name.contains("attn_q.") {
            unpermute_qk(&t, cfg.num_attention_heads)?
        } else if name.contains("attn_k.") {
            unpermute_qk(&t, cfg.kv_heads())?
        } else {
            t
        };
        out.insert(hf, t);
    }
    Ok(out)
}

/// Loads a GGUF file: model (dequantized f32) and tokenizer.
pub fn load(path: &Path, trainable: bool, device: &Device) -> Result<Loaded> {
    load_as(path, trainable, DType::F32, device)
}

/// Loads a GGUF file with the model's weights dequantized to `dtype`.
pub fn load_as(path: &Path, trainable: bool, dtype: DType, device: &Device) -> Result<Loaded> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let ct = Content::read(&mut file)?;
    let cfg = config(&ct, path)?;
    let tensors = read_tensors(&ct, &mut file, &cfg, dtype, device)?;
    let cfg_json = serde_json::to_string(&cfg).map_err(|e| Error::Json {
        path: path.to_path_buf(),
        source: e,
    })?;
    let (model, varmap) =
        model_from_tensors_as(&cfg_json, tensors, trainable, dtype, device, path)?;
    Ok(Loaded {
        model,
        tokenizer: Some(tokenizer(&ct, path)?),
        varmap,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermute_inverts_llama_cpp_permutation() -> Result<()> {
        let (heads, hd, inp) = (3, 4, 2);
        let w = Tensor::arange(0f32, (heads * hd * inp) as f32, &Device::Cpu)?
            .reshape((heads * hd, inp))?;
        // llama.cpp: w.reshape(h, 2, hd/2, in).swapaxes(1, 2).reshape(out, in)
        let permuted = w
            .reshape((heads, 2, hd / 2, inp))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((heads * hd, inp))?;
        let back = unpermute_qk(&permuted, heads)?;
        assert_eq!(back.to_vec2::<f32>()?, w.to_vec2::<f32>()?);
        Ok(())
    }

    #[test]
    fn gguf_names_map_to_hf_names() {
        assert_eq!(
            hf_name("blk.12.attn_k.weight").as_deref(),
            Some("model.layers.12.self_attn.k_proj.weight")
        );
        assert_eq!(
            hf_name("blk.0.ffn_norm.weight").as_deref(),
            Some("model.layers.0.post_attention_layernorm.weight")
        );
        assert_eq!(
            hf_name("token_embd.weight").as_deref(),
            Some("model.embed_tokens.weight")
        );
        assert_eq!(hf_name("rope_freqs.weight"), None);
    }
}
