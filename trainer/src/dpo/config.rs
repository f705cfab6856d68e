//! `trainer dpo`'s settings: every key of `trainer sft` (model, data, optimizer, LoRA, run
//! directory; `train_data` and `eval_data` hold preference pairs) plus DPO's own, in one
//! flat TOML table whose every key is also a flag. The two parts are typed by their own
//! structs ([`SftConfig`], [`DpoOptions`]), so SFT's keys, defaults and checks are not
//! written twice, and a key that neither knows is refused by name.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::loss::DpoLoss;
use crate::error::{Error, Result};
use crate::run::config::{Key, Kind, Sources};
use crate::sft::SftConfig;

fn d_beta() -> f64 {
    0.1
}
fn d_prompt() -> usize {
    256
}

/// DPO's own settings; the defaults are TRL's `DPOConfig`'s where it has them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpoOptions {
    /// β: the strength of the implicit KL to the reference (TRL default 0.1).
    #[serde(default = "d_beta")]
    pub beta: f64,
    /// `sigmoid` (DPO), `robust`, `ipo` or `hinge` ([`DpoLoss`]).
    #[serde(default)]
    pub loss_type: DpoLoss,
    /// ε of the `robust` loss: the assumed share of flipped labels, in [0, 0.5).
    #[serde(default)]
    pub label_smoothing: f64,
    /// Prompt tokens kept (its end: the turn being answered); the response is then cut to
    /// fit `max_len`.
    #[serde(default = "d_prompt")]
    pub max_prompt_len: usize,
}

/// DPO's keys, after SFT's.
pub const DPO_KEYS: &[Key] = &[
    Key::new(
        "beta",
        Kind::Float,
        "strength of the implicit KL to the reference (default 0.1)",
    ),
    Key::new(
        "loss_type",
        Kind::Str,
        "sigmoid, robust, ipo or hinge (default sigmoid)",
    ),
    Key::new(
        "label_smoothing",
        Kind::Float,
        "robust loss: share of flipped labels, in [0, 0.5) (default 0)",
    ),
    Key::new(
        "max_prompt_len",
        Kind::Int,
        "prompt tokens kept, from its end (default 256)",
    ),
];

/// Every key of `trainer dpo`: SFT's (with the data keys described as pairs) and DPO's.
pub fn keys() -> Vec<Key> {
    let sft = crate::sft::config::KEYS.iter().map(|k| match k.name {
        "train_data" => Key::new(
            "train_data",
            Kind::Path,
            "preference pairs (JSONL: prompt/chosen/rejected, chat, or hh-rlhf transcripts)",
        ),
        "eval_data" => Key::new(
            "eval_data",
            Kind::Path,
            "held-out pairs for the eval loss and reward accuracy",
        ),
        _ => *k,
    });
    sft.chain(DPO_KEYS.iter().copied()).collect()
}

/// Every option of `trainer dpo`.
#[derive(Debug, Clone, PartialEq)]
pub struct DpoConfig {
    /// The keys shared with `trainer sft`.
    pub train: SftConfig,
    /// DPO's own.
    pub dpo: DpoOptions,
}

fn is_dpo_key(k: &str) -> bool {
    DPO_KEYS.iter().any(|d| d.name == k)
}

impl DpoConfig {
    /// Types the settings: DPO's keys as [`DpoOptions`], the rest as [`SftConfig`] (which
    /// refuses any other key, naming its flag or file line).
    pub fn from_sources(sources: &Sources) -> Result<Self> {
        let dpo = sources.resolve_keys(is_dpo_key)?;
        let train = sources.resolve_keys(|k| !is_dpo_key(k))?;
        Ok(Self { train, dpo })
    }

    /// Parses TOML text; errors name the file, line and key.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        Self::from_sources(&Sources {
            file: Some((path.to_path_buf(), text.to_string())),
            flags: toml::Table::new(),
        })
    }

    /// Checks value ranges; errors name the key.
    pub fn validate(&self) -> Result<()> {
        self.train.validate()?;
        let d = &self.dpo;
        if !(d.beta.is_finite() && d.beta > 0.0) {
            return Err(Error::config(
                "beta",
                format!("must be a positive number, got {}", d.beta),
            ));
        }
        if !(0.0..0.5).contains(&d.label_smoothing) {
            return Err(Error::config(
                "label_smoothing",
                format!("must be in [0, 0.5), got {}", d.label_smoothing),
            ));
        }
        if d.label_smoothing > 0.0 && d.loss_type != DpoLoss::Robust {
            return Err(Error::config(
                "label_smoothing",
                format!(
                    "only the robust loss reads it (loss_type is {}); TRL ignores it there too",
                    d.loss_type.as_str()
                ),
            ));
        }
        if d.max_prompt_len == 0 || d.max_prompt_len >= self.train.max_len {
            return Err(Error::config(
                "max_prompt_len",
                format!(
                    "must be at least 1 and below max_len ({}) so responses keep tokens, got {}",
                    self.train.max_len, d.max_prompt_len
                ),
            ));
        }
        Ok(())
    }

    /// The settings as one table, as `config.toml` holds them.
    pub fn to_table(&self) -> toml::Table {
        let mut t = self.train.to_table();
        if let Ok(toml::Value::Table(d)) = toml::Value::try_from(&self.dpo) {
            t.extend(d);
        }
        t
    }

    /// The config as TOML (saved in the run directory): SFT's keys, then DPO's.
    pub fn to_toml(&self) -> String {
        let dpo = toml::to_string(&self.dpo).unwrap_or_default();
        format!("{}\n# DPO\n{dpo}", self.train.to_toml())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "model = \"m\"\ntrain_data = \"p.jsonl\"\noutput_dir = \"out\"\n";

    #[test]
    fn defaults_are_trls_and_the_config_round_trips() {
        let cfg = DpoConfig::from_toml(MIN, Path::new("run.toml")).expect("defaults");
        assert_eq!(cfg.dpo.beta, 0.1);
        assert_eq!(cfg.dpo.loss_type, DpoLoss::Sigmoid);
        cfg.validate().expect("valid");
        let text = format!("{MIN}loss_type = \"ipo\"\nbeta = 0.5\nlora_rank = 8\n");
        let cfg = DpoConfig::from_toml(&text, Path::new("run.toml")).expect("cfg");
        assert_eq!((cfg.dpo.loss_type, cfg.train.lora_rank), (DpoLoss::Ipo, 8));
        let again = DpoConfig::from_toml(&cfg.to_toml(), Path::new("config.toml")).expect("again");
        assert_eq!(again, cfg);
        let table = cfg.to_table();
        let names: std::collections::BTreeSet<&str> = keys().iter().map(|k| k.name).collect();
        for k in table.keys() {
            assert!(names.contains(k.as_str()), "{k} has no flag");
        }
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        let err = DpoConfig::from_toml(&format!("{MIN}betta = 0.2\n"), Path::new("run.toml"))
            .expect_err("unknown");
        assert!(err.to_string().contains("key `betta`"), "{err}");
        let err = DpoConfig::from_toml(
            &format!("{MIN}loss_type = \"kto\"\n"),
            Path::new("run.toml"),
        )
        .expect_err("variant");
        let s = err.to_string();
        assert!(
            s.contains("key `loss_type`") && s.contains("run.toml:4"),
            "{s}"
        );
        for (extra, key) in [
            ("beta = 0.0", "beta"),
            ("label_smoothing = 0.1", "label_smoothing"),
            (
                "loss_type = \"robust\"\nlabel_smoothing = 0.5",
                "label_smoothing",
            ),
            ("max_prompt_len = 512", "max_prompt_len"),
            ("batch_size = 0", "batch_size"),
        ] {
            let cfg = DpoConfig::from_toml(&format!("{MIN}{extra}\n"), Path::new("run.toml"))
                .expect(extra);
            let err = cfg.validate().expect_err(extra).to_string();
            assert!(err.contains(&format!("key `{key}`")), "{extra}: {err}");
        }
    }
}
