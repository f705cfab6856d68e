//! GGUF loading without downloads: a tiny Llama written as GGUF the way llama.cpp's converter
//! lays it out (llama.cpp tensor names, permuted Q/K rows, tokenizer in the metadata) must load
//! to exactly the model it was made from.

mod common;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use trainer::load::hf;
use trainer::load::tokenizer::{Message, byte_to_unicode};
use trainer::models::Inputs;

/// llama.cpp `convert_hf_to_gguf.py`'s `permute`: HF rotate-half rows → interleaved rows.
fn permute(w: &Tensor, heads: usize) -> Tensor {
    let (out, inp) = w.dims2().expect("2d");
    w.reshape((heads, 2, out / heads / 2, inp))
        .and_then(|t| t.transpose(1, 2))
        .and_then(|t| t.contiguous())
        .and_then(|t| t.reshape((out, inp)))
        .expect("permute")
}

fn gguf_name(hf: &str) -> String {
    let fixed = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ];
    if let Some((_, g)) = fixed.iter().find(|(h, _)| *h == hf) {
        return g.to_string();
    }
    let rest = hf.strip_prefix("model.layers.").expect("layer tensor");
    let (layer, tail) = rest.split_once('.').expect("layer");
    let part = [
        ("input_layernorm.weight", "attn_norm.weight"),
        ("post_attention_layernorm.weight", "ffn_norm.weight"),
        ("self_attn.q_proj.weight", "attn_q.weight"),
        ("self_attn.k_proj.weight", "attn_k.weight"),
        ("self_attn.v_proj.weight", "attn_v.weight"),
        ("self_attn.o_proj.weight", "attn_output.weight"),
        ("mlp.gate_proj.weight", "ffn_gate.weight"),
        ("mlp.up_proj.weight", "ffn_up.weight"),
        ("mlp.down_proj.weight", "ffn_down.weight"),
    ]
    .iter()
    .find(|(h, _)| *h == tail)
    .map(|(_, g)| *g)
    .expect("known tensor");
    format!("blk.{layer}.{part}")
}

#[test]
fn a_llama_cpp_style_gguf_loads_to_the_model_it_was_made_from() {
    let cfg = common::tiny_llama_json(); // vocab 272, 4 heads, 2 KV heads, untied head
    let (model, vm) = hf::random_model(&cfg, 17, &Device::Cpu).expect("model");
    let tensors = hf::varmap_tensors(&vm).expect("tensors");
    let mut q: Vec<(String, QTensor)> = Vec::new();
    for (name, t) in &tensors {
        let t = if name.ends_with("q_proj.weight") {
            permute(t, 4)
        } else if name.ends_with("k_proj.weight") {
            permute(t, 2)
        } else {
            t.clone()
        };
        q.push((
            gguf_name(name),
            QTensor::quantize(&t, GgmlDType::F32).expect("q"),
        ));
    }
    // Tokenizer: 256 byte symbols, 3 specials, filler up to the model's 272 rows.
    let mut tokens: Vec<String> = byte_to_unicode().iter().map(|c| c.to_string()).collect();
    tokens.extend(common::SPECIALS.iter().map(|s| s.to_string()));
    while tokens.len() < 272 {
        tokens.push(format!("<unused{}>", tokens.len()));
    }
    let types: Vec<Value> = (0..272)
        .map(|i| Value::I32(if i < 256 { 1 } else { 3 }))
        .collect();
    let chat = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}";
    let meta: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("llama".into())),
        ("llama.embedding_length", Value::U32(32)),
        ("llama.block_count", Value::U32(2)),
        ("llama.feed_forward_length", Value::U32(64)),
        ("llama.attention.head_count", Value::U32(4)),
        ("llama.attention.head_count_kv", Value::U32(2)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ("llama.rope.freq_base", Value::F32(10000.0)),
        ("llama.context_length", Value::U32(64)),
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        (
            "tokenizer.ggml.tokens",
            Value::Array(tokens.into_iter().map(Value::String).collect()),
        ),
        ("tokenizer.ggml.merges", Value::Array(Vec::new())),
        ("tokenizer.ggml.token_type", Value::Array(types)),
        ("tokenizer.ggml.bos_token_id", Value::U32(257)),
        ("tokenizer.ggml.eos_token_id", Value::U32(256)),
        ("tokenizer.chat_template", Value::String(chat.into())),
    ];
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("tiny.gguf");
    {
        let mut f = std::fs::File::create(&path).expect("create");
        let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (*k, v)).collect();
        let tensor_refs: Vec<(&str, &QTensor)> = q.iter().map(|(k, v)| (k.as_str(), v)).collect();
        gguf_file::write(&mut f, &meta_refs, &tensor_refs).expect("write gguf");
    }

    let loaded = trainer::load::load(&path, false, &Device::Cpu).expect("load gguf");
    let ids = Tensor::from_vec(vec![3u32, 99, 100, 257, 42, 7], (1, 6), &Device::Cpu).expect("ids");
    let x = Inputs::new(ids, 0).expect("in");
    let a = model.forward(&x, None).expect("a");
    let b = loaded.model.forward(&x, None).expect("b");
    let d = (a - b)
        .expect("d")
        .abs()
        .expect("abs")
        .flatten_all()
        .expect("f")
        .max(0)
        .expect("m")
        .to_scalar::<f32>()
        .expect("s");
    assert_eq!(
        d, 0.0,
        "GGUF model differs from its source (un-permutation or names wrong)"
    );

    // Loaded in bf16 and trainable (as a `dtype = "bf16"` full fine-tuning run loads it):
    // each tensor is dequantized, narrowed and un-permuted at load time, to exactly the bf16
    // rounding of its source.
    let bf16 = trainer::load::load_as(&path, true, DType::BF16, &Device::Cpu).expect("bf16");
    let vars = bf16
        .varmap
        .expect("trainable")
        .data()
        .lock()
        .expect("lock")
        .clone();
    assert_eq!(vars.len(), tensors.len());
    for (name, var) in &vars {
        assert_eq!(var.dtype(), DType::BF16, "{name}");
        let want = tensors[name].to_dtype(DType::BF16).expect("round");
        let d = (var.as_tensor().to_dtype(DType::F32).expect("f32")
            - want.to_dtype(DType::F32).expect("f32"))
        .and_then(|t| t.abs())
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.max(0))
        .and_then(|t| t.to_scalar::<f32>())
        .expect("diff");
        assert_eq!(d, 0.0, "{name}: not the bf16 rounding of the source");
    }
    assert_eq!(
        bf16.model.forward(&x, None).expect("bf16 forward").dtype(),
        DType::BF16
    );

    let tok = loaded.tokenizer.expect("tokenizer from metadata");
    assert_eq!(
        tok.encode("<|im_start|>hi").expect("enc"),
        vec![257, 104, 105]
    );
    assert_eq!(
        tok.eos_ids,
        vec![256, 258],
        "EOS plus <|im_end|> for a ChatML model"
    );
    assert_eq!(tok.bos_id, Some(257));
    let text = tok
        .apply_chat(&[Message::new("user", "hi")], true)
        .expect("chat");
    assert_eq!(
        text,
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    );

    // The check can see a layout bug: the same tensors without the un-permutation give
    // different logits.
    let mut permuted = tensors.clone();
    for (name, t) in permuted.iter_mut() {
        if name.ends_with("q_proj.weight") {
            *t = permute(t, 4);
        } else if name.ends_with("k_proj.weight") {
            *t = permute(t, 2);
        }
    }
    let (bad, _) =
        hf::model_from_tensors(&cfg, permuted, false, &Device::Cpu, dir.path()).expect("bad model");
    let a = model.forward(&x, None).expect("a");
    let c = bad.forward(&x, None).expect("c");
    let d = (a - c)
        .expect("d")
        .abs()
        .expect("abs")
        .flatten_all()
        .expect("f")
        .max(0)
        .expect("m")
        .to_scalar::<f32>()
        .expect("s");
    assert!(
        d > 1e-4,
        "permuted Q/K rows must change the logits (diff {d})"
    );
}
