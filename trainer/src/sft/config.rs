//! The SFT run configuration: a flat TOML table whose every key is also a CLI flag
//! (`lr` ↔ `--lr`, `lora_targets` ↔ `--lora-targets q_proj,v_proj`), declared once in
//! [`KEYS`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::optim::Decay;
pub use crate::precision::Precision;
use crate::run::config::{Key, Kind, Sources};

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
    /// of the cgroup limit and the memory available at start (see [`crate::run::memory`]).
    #[serde(default)]
    pub memory_limit_mib: Option<u64>,
}

/// The keys of [`SftConfig`] as settings and flags (`trainer sft --help` lists them).
pub const KEYS: &[Key] = &[
    Key::new(
        "model",
        Kind::Path,
        "base model: HF directory or .gguf file",
    ),
    Key::new(
        "train_data",
        Kind::Path,
        "JSONL (prompt/completion or messages) or MaRio JSON",
    ),
    Key::new(
        "eval_data",
        Kind::Path,
        "held-out data for the periodic eval loss",
    ),
    Key::new("output_dir", Kind::Path, "run directory"),
    Key::new("chat", Kind::Bool, "render examples with the chat template"),
    Key::new(
        "max_len",
        Kind::Int,
        "longest tokenized example (default 512)",
    ),
    Key::new(
        "batch_size",
        Kind::Int,
        "examples per micro-batch (default 8)",
    ),
    Key::new(
        "grad_accum",
        Kind::Int,
        "micro-batches per optimizer step (default 1)",
    ),
    Key::new("max_steps", Kind::Int, "optimizer steps (default 1000)"),
    Key::new("lr", Kind::Float, "peak learning rate (default 2e-5)"),
    Key::new("min_lr", Kind::Float, "final learning rate (default 0)"),
    Key::new("warmup_steps", Kind::Int, "linear warmup steps (default 0)"),
    Key::new(
        "decay",
        Kind::Str,
        "cosine, linear or constant (default cosine)",
    ),
    Key::new(
        "weight_decay",
        Kind::Float,
        "AdamW weight decay (default 0)",
    ),
    Key::new("beta1", Kind::Float, "AdamW beta1 (default 0.9)"),
    Key::new("beta2", Kind::Float, "AdamW beta2 (default 0.999)"),
    Key::new("eps", Kind::Float, "AdamW epsilon (default 1e-8)"),
    Key::new(
        "grad_clip",
        Kind::Float,
        "gradient-norm clip, 0 disables (default 1)",
    ),
    Key::new(
        "seed",
        Kind::Int,
        "seed for data order, LoRA init and dropout (default 0)",
    ),
    Key::new(
        "eval_limit",
        Kind::Int,
        "use only the first N eval examples, 0: all",
    ),
    Key::new("eval_every", Kind::Int, "eval every N steps (default 100)"),
    Key::new(
        "save_every",
        Kind::Int,
        "checkpoint every N steps (default 100)",
    ),
    Key::new("keep_last", Kind::Int, "checkpoints kept (default 3)"),
    Key::new(
        "lora_rank",
        Kind::Int,
        "LoRA rank, 0: full fine-tuning (default 0)",
    ),
    Key::new("lora_alpha", Kind::Float, "LoRA alpha (default 16)"),
    Key::new("lora_dropout", Kind::Float, "LoRA dropout (default 0)"),
    Key::new(
        "lora_targets",
        Kind::List,
        "projections that get adapters (default q_proj,v_proj)",
    ),
    Key::new(
        "device",
        Kind::Str,
        "cpu, or cuda / cuda:N in builds with the cuda feature",
    ),
    Key::new("dtype", Kind::Str, "f32, or bf16 mixed precision"),
    Key::new(
        "resume",
        Kind::Bool,
        "continue from the newest checkpoint (default true)",
    ),
    Key::new(
        "memory_limit_mib",
        Kind::Int,
        "stop with a checkpoint above this peak resident memory (default: 90% of available)",
    ),
];

/// The keys a resumed run may change: how long to train (which also stretches a decaying
/// learning-rate schedule from the resumed step on), how often to evaluate and save, the
/// eval data, the memory limit and the device. Everything else shapes the checkpoints or
/// the steps already taken, and is refused ([`crate::run::settings`]).
pub const MAY_CHANGE_ON_RESUME: &[&str] = &[
    "max_steps",
    "eval_data",
    "eval_limit",
    "eval_every",
    "save_every",
    "keep_last",
    "memory_limit_mib",
    "device",
    "resume",
];

impl SftConfig {
    /// Parses TOML text; errors name the file, line and key.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        Sources {
            file: Some((path.to_path_buf(), text.to_string())),
            flags: toml::Table::new(),
        }
        .resolve()
    }

    /// The settings as a table, exactly as `config.toml` holds them (parsed back from the
    /// text, so an f32 compares as the file spells it).
    pub fn to_table(&self) -> toml::Table {
        self.to_toml().parse().unwrap_or_default()
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

    /// Checks that the files the run reads exist; errors name the key.
    pub fn check_inputs(&self) -> Result<()> {
        crate::run::config::check_model_path("model", &self.model)?;
        crate::run::config::check_file("train_data", &self.train_data)?;
        if let Some(p) = &self.eval_data {
            crate::run::config::check_file("eval_data", p)?;
        }
        Ok(())
    }

    /// The config as TOML (saved in the run directory).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

/// A command whose settings are `trainer sft`'s plus its own (DPO's, a reward model's): one
/// flat table, every key also a flag. The two parts are typed by their own structs, so
/// SFT's keys, defaults and checks are written once and a key that neither knows is refused
/// by name (each part denies unknown fields; the split is by [`OwnSettings::KEYS`]).
#[derive(Debug, Clone, PartialEq)]
pub struct WithSft<T> {
    /// The keys shared with `trainer sft`.
    pub train: SftConfig,
    /// The command's own.
    pub own: T,
}

/// The command-specific half of a [`WithSft`] config.
pub trait OwnSettings: Serialize + serde::de::DeserializeOwned {
    /// Its keys (flags and help).
    const KEYS: &'static [Key];
    /// The comment heading its part of `config.toml`.
    const HEADING: &'static str;
    /// How `train_data` and `eval_data` are described in `--help`.
    const DATA_HELP: (&'static str, &'static str);
}

impl<T: OwnSettings> WithSft<T> {
    /// Every key: SFT's (with the data keys described for this command) and `T`'s.
    pub fn keys() -> Vec<Key> {
        let sft = KEYS.iter().map(|k| match k.name {
            "train_data" => Key::new("train_data", Kind::Path, T::DATA_HELP.0),
            "eval_data" => Key::new("eval_data", Kind::Path, T::DATA_HELP.1),
            _ => *k,
        });
        sft.chain(T::KEYS.iter().copied()).collect()
    }

    fn is_own(k: &str) -> bool {
        T::KEYS.iter().any(|d| d.name == k)
    }

    /// Types the settings: `T`'s keys as `T`, the rest as [`SftConfig`].
    pub fn from_sources(sources: &Sources) -> Result<Self> {
        let own = sources.resolve_keys(Self::is_own)?;
        let train = sources.resolve_keys(|k| !Self::is_own(k))?;
        Ok(Self { train, own })
    }

    /// Parses TOML text; errors name the file, line and key.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        Self::from_sources(&Sources {
            file: Some((path.to_path_buf(), text.to_string())),
            flags: toml::Table::new(),
        })
    }

    /// The settings as one table, as `config.toml` holds them.
    pub fn to_table(&self) -> toml::Table {
        let mut t = self.train.to_table();
        if let Ok(toml::Value::Table(own)) = toml::Value::try_from(&self.own) {
            t.extend(own);
        }
        t
    }

    /// The config as TOML (saved in the run directory): SFT's keys, then `T`'s.
    pub fn to_toml(&self) -> String {
        let own = toml::to_string(&self.own).unwrap_or_default();
        format!("{}\n# {}\n{own}", self.train.to_toml(), T::HEADING)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

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
        assert!(
            err.to_string().contains("run.toml:4: invalid type"),
            "{err}"
        );
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
    fn the_key_list_names_every_field_once() {
        let mut cfg = SftConfig::from_toml(MIN, Path::new("run.toml")).expect("defaults");
        // Every optional field set, so that all appear in the table.
        cfg.eval_data = Some("e".into());
        cfg.memory_limit_mib = Some(1);
        let fields: std::collections::BTreeSet<String> = cfg.to_table().keys().cloned().collect();
        let keys: std::collections::BTreeSet<String> =
            KEYS.iter().map(|k| k.name.to_string()).collect();
        assert_eq!(fields, keys);
        assert_eq!(KEYS.len(), keys.len(), "a key is listed twice");
        for k in MAY_CHANGE_ON_RESUME {
            assert!(keys.contains(*k), "{k}");
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
