//! The SFT run configuration: a flat TOML table whose every key is also a CLI flag
//! (`lr` ↔ `--lr`, `lora_targets` ↔ `--lora-targets q_proj,v_proj`).

use std::path::{Path, PathBuf};

use candle_core::DType;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::optim::Decay;

fn d_max_len() -> usize {
    512
}
fn d_batch() -> usize {
    8
}
fn d_one() -> usize {
    1
}
fn d_steps() -> usize {
    1000
}
fn d_lr() -> f64 {
    2e-5
}
fn d_decay() -> Decay {
    Decay::Cosine
}
fn d_beta1() -> f64 {
    0.9
}
fn d_beta2() -> f64 {
    0.999
}
fn d_eps() -> f64 {
    1e-8
}
fn d_clip() -> f64 {
    1.0
}
fn d_every() -> usize {
    100
}
fn d_keep() -> usize {
    3
}
fn d_alpha() -> f64 {
    16.0
}
fn d_targets() -> Vec<String> {
    vec!["q_proj".into(), "v_proj".into()]
}
fn d_device() -> String {
    "cpu".into()
}
fn d_true() -> bool {
    true
}

/// The precision a run trains in (`dtype = "f32" | "bf16"`); the module docs of
/// [`super::train`](mod@super::train) say what bf16 keeps in f32, and why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Weights, activations and gradients in f32.
    #[default]
    F32,
    /// Mixed precision: weights and activations in bfloat16; loss, norm statistics,
    /// gradient sums, LoRA adapters and the optimizer's master weights and moments in f32.
    Bf16,
}

impl Precision {
    /// The dtype the model's weights and activations are held in.
    pub fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::Bf16 => DType::BF16,
        }
    }

    /// The config value (`f32`, `bf16`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        }
    }
}

/// Every option of `trainer sft`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftConfig {
    /// Base model: HF directory or `.gguf` file.
    pub model: PathBuf,
    /// Training data (JSONL or MaRio JSON).
    pub train_data: PathBuf,
    /// Optional held-out data for the periodic eval loss.
    #[serde(default)]
    pub eval_data: Option<PathBuf>,
    /// Run directory: config, metrics, checkpoints, final weights.
    pub output_dir: PathBuf,
    /// Render examples with the model's chat template.
    #[serde(default)]
    pub chat: bool,
    /// Longest tokenized example (longer ones are cut at the end).
    #[serde(default = "d_max_len")]
    pub max_len: usize,
    /// Examples per micro-batch.
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    #[serde(default = "d_one")]
    pub grad_accum: usize,
    /// Optimizer steps to run.
    #[serde(default = "d_steps")]
    pub max_steps: usize,
    /// Peak learning rate.
    #[serde(default = "d_lr")]
    pub lr: f64,
    /// Final learning rate.
    #[serde(default)]
    pub min_lr: f64,
    /// Linear warmup steps.
    #[serde(default)]
    pub warmup_steps: usize,
    /// `cosine`, `linear` or `constant`.
    #[serde(default = "d_decay")]
    pub decay: Decay,
    /// AdamW decoupled weight decay.
    #[serde(default)]
    pub weight_decay: f64,
    /// AdamW β₁.
    #[serde(default = "d_beta1")]
    pub beta1: f64,
    /// AdamW β₂.
    #[serde(default = "d_beta2")]
    pub beta2: f64,
    /// AdamW ε.
    #[serde(default = "d_eps")]
    pub eps: f64,
    /// Global gradient-norm clip (0 disables).
    #[serde(default = "d_clip")]
    pub grad_clip: f64,
    /// Seed for data order, LoRA init and dropout.
    #[serde(default)]
    pub seed: u64,
    /// Use only the first N eval examples (0: all); a CPU eval pass over thousands is slow.
    #[serde(default)]
    pub eval_limit: usize,
    /// Eval loss every this many steps (needs `eval_data`).
    #[serde(default = "d_every")]
    pub eval_every: usize,
    /// Checkpoint every this many steps (and at the end).
    #[serde(default = "d_every")]
    pub save_every: usize,
    /// Checkpoints kept on disk.
    #[serde(default = "d_keep")]
    pub keep_last: usize,
    /// LoRA rank; 0 trains every weight.
    #[serde(default)]
    pub lora_rank: usize,
    /// LoRA alpha.
    #[serde(default = "d_alpha")]
    pub lora_alpha: f64,
    /// LoRA dropout.
    #[serde(default)]
    pub lora_dropout: f32,
    /// Projections that get adapters.
    #[serde(default = "d_targets")]
    pub lora_targets: Vec<String>,
    /// `cpu`, or `cuda` / `cuda:N` in builds with the `cuda` feature.
    #[serde(default = "d_device")]
    pub device: String,
    /// `f32`, or `bf16` for mixed precision (PyTorch's `bf16=True`): half the memory for
    /// frozen weights and activations; faster only where bf16 matmuls are native (CUDA).
    #[serde(default)]
    pub dtype: Precision,
    /// Continue from the newest checkpoint in `output_dir` when there is one.
    #[serde(default = "d_true")]
    pub resume: bool,
    /// Stop (with a checkpoint) once the process's peak resident memory exceeds this many
    /// MiB, and refuse to start when a rough estimate already does. Unset: 90% of the smaller
    /// of the cgroup limit and the memory available at start (see [`super::memory`]).
    #[serde(default)]
    pub memory_limit_mib: Option<u64>,
}

impl SftConfig {
    /// Parses TOML text; errors name the file and the key.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        let cfg: Self = toml::from_str(text).map_err(|e| {
            // "unknown field `x`" / "missing field `x`" quote the key; a bad value ("invalid
            // value: integer `-5`") quotes the value instead, so take the key from the line
            // the error points at.
            let quoted = e.message().split('`').nth(1);
            let key = match (e.message().contains(" field `"), e.span()) {
                (false, Some(span)) => text[..span.start.min(text.len())]
                    .rsplit('\n')
                    .next()
                    .and_then(|line| line.split('=').next())
                    .map(|k| k.trim().trim_matches('"').to_string())
                    .filter(|k| !k.is_empty()),
                _ => None,
            };
            let key = key.or(quoted.map(str::to_string)).unwrap_or("?".into());
            Error::Config {
                key,
                message: format!("{}: {e}", path.display()),
            }
        })?;
        Ok(cfg)
    }

    /// Reads a TOML file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml(&text, path)
    }

    /// Checks value ranges; errors name the key.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("batch_size", self.batch_size),
            ("grad_accum", self.grad_accum),
            ("max_steps", self.max_steps),
            ("max_len", self.max_len),
            ("eval_every", self.eval_every),
            ("save_every", self.save_every),
            ("keep_last", self.keep_last),
        ];
        for (k, v) in positive {
            if v == 0 {
                return Err(Error::config(k, "must be at least 1"));
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::config(
                "lr",
                format!("must be a positive number, got {}", self.lr),
            ));
        }
        if !(0.0..1.0).contains(&self.beta1) {
            return Err(Error::config("beta1", "must be in [0, 1)"));
        }
        if !(0.0..1.0).contains(&self.beta2) {
            return Err(Error::config("beta2", "must be in [0, 1)"));
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            return Err(Error::config("lora_dropout", "must be in [0, 1)"));
        }
        if self.memory_limit_mib == Some(0) {
            return Err(Error::config(
                "memory_limit_mib",
                "must be at least 1 (leave it unset for the machine's default)",
            ));
        }
        if self.grad_clip < 0.0 {
            return Err(Error::config(
                "grad_clip",
                "must be ≥ 0 (0 disables clipping)",
            ));
        }
        Ok(())
    }

    /// The config as TOML (saved in the run directory).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "model = \"m\"\ntrain_data = \"d.jsonl\"\noutput_dir = \"out\"\n";

    #[test]
    fn a_misspelled_key_is_named() {
        let err = SftConfig::from_toml(
            &format!("{MIN}learning_rate = 0.1\n"),
            Path::new("run.toml"),
        )
        .expect_err("unknown");
        let s = err.to_string();
        assert!(
            s.contains("key `learning_rate`") && s.contains("run.toml"),
            "{s}"
        );
    }

    #[test]
    fn a_wrong_type_and_a_missing_key_are_named() {
        let err = SftConfig::from_toml(&format!("{MIN}lr = \"fast\"\n"), Path::new("run.toml"))
            .expect_err("type");
        assert!(err.to_string().contains("lr = \"fast\""), "{err}");
        assert!(err.to_string().contains("key `lr`"), "{err}");
        let err =
            SftConfig::from_toml("model = \"m\"\noutput_dir = \"o\"\n", Path::new("run.toml"))
                .expect_err("missing");
        assert!(err.to_string().contains("key `train_data`"), "{err}");
        let mut ok = SftConfig::from_toml(MIN, Path::new("run.toml")).expect("defaults");
        ok.batch_size = 0;
        assert!(
            ok.validate()
                .expect_err("range")
                .to_string()
                .contains("key `batch_size`")
        );
        let mut zero = SftConfig::from_toml(
            &format!("{MIN}memory_limit_mib = 0\n"),
            Path::new("run.toml"),
        )
        .expect("parses");
        assert!(
            zero.validate()
                .expect_err("zero")
                .to_string()
                .contains("key `memory_limit_mib`")
        );
        zero.memory_limit_mib = Some(512);
        assert!(zero.validate().is_ok());
        let err = SftConfig::from_toml(
            &format!("{MIN}memory_limit_mib = -5\n"),
            Path::new("run.toml"),
        )
        .expect_err("negative");
        assert!(err.to_string().contains("key `memory_limit_mib`"), "{err}");
    }

    #[test]
    fn dtype_defaults_to_f32_and_a_bad_value_names_the_key() {
        let cfg = SftConfig::from_toml(MIN, Path::new("run.toml")).expect("defaults");
        assert_eq!(cfg.dtype, Precision::F32);
        let cfg = SftConfig::from_toml(&format!("{MIN}dtype = \"bf16\"\n"), Path::new("run.toml"))
            .expect("bf16");
        assert_eq!(cfg.dtype.dtype(), DType::BF16);
        for bad in ["\"fp16\"", "\"BF16\"", "16"] {
            let err = SftConfig::from_toml(&format!("{MIN}dtype = {bad}\n"), Path::new("run.toml"))
                .expect_err(bad);
            let s = err.to_string();
            assert!(s.contains("key `dtype`") && s.contains("run.toml"), "{s}");
        }
    }

    #[test]
    fn the_resolved_config_round_trips() {
        let cfg = SftConfig::from_toml(
            &format!(
                "{MIN}decay = \"linear\"\nlora_rank = 4\nmemory_limit_mib = 2048\n\
                 dtype = \"bf16\"\n"
            ),
            Path::new("r.toml"),
        )
        .expect("cfg");
        assert_eq!(
            SftConfig::from_toml(&cfg.to_toml(), Path::new("r.toml")).expect("again"),
            cfg
        );
    }
}
