//! `trainer dpo`'s settings: every key of `trainer sft` (model, data, optimizer, LoRA, run
//! directory; `train_data` and `eval_data` hold preference pairs) plus DPO's own
//! ([`DpoOptions`]), as a [`WithSft`].

use serde::{Deserialize, Serialize};

use super::loss::DpoLoss;
use crate::error::{Error, Result};
use crate::run::config::{Key, Kind};
use crate::sft::config::{OwnSettings, WithSft};

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
    /// Compute every pair's reference log-probs in one pass before the first step (TRL's
    /// `precompute_ref_log_probs`); a full fine-tune's frozen copy is then dropped, which
    /// frees its memory. Off: each pair's are computed the first time it is drawn.
    #[serde(default)]
    pub precompute_ref_log_probs: bool,
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
    Key::new(
        "precompute_ref_log_probs",
        Kind::Bool,
        "reference log-probs of every pair in one pass before training (default false)",
    ),
];

impl OwnSettings for DpoOptions {
    const KEYS: &'static [Key] = DPO_KEYS;
    const HEADING: &'static str = "DPO";
    const DATA_HELP: (&'static str, &'static str) = (
        "preference pairs (JSONL: prompt/chosen/rejected, chat, or hh-rlhf transcripts)",
        "held-out pairs for the eval loss and reward accuracy",
    );
}

/// Every option of `trainer dpo`: SFT's in `train`, DPO's in `own`.
pub type DpoConfig = WithSft<DpoOptions>;

impl DpoConfig {
    /// Checks value ranges; errors name the key.
    pub fn validate(&self) -> Result<()> {
        self.train.validate()?;
        let d = &self.own;
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const MIN: &str = "model = \"m\"\ntrain_data = \"p.jsonl\"\noutput_dir = \"out\"\n";

    #[test]
    fn defaults_are_trls_and_the_config_round_trips() {
        let cfg = DpoConfig::from_toml(MIN, Path::new("run.toml")).expect("defaults");
        assert_eq!(cfg.own.beta, 0.1);
        assert_eq!(cfg.own.loss_type, DpoLoss::Sigmoid);
        cfg.validate().expect("valid");
        let text = format!("{MIN}loss_type = \"ipo\"\nbeta = 0.5\nlora_rank = 8\n");
        let cfg = DpoConfig::from_toml(&text, Path::new("run.toml")).expect("cfg");
        assert_eq!((cfg.own.loss_type, cfg.train.lora_rank), (DpoLoss::Ipo, 8));
        let again = DpoConfig::from_toml(&cfg.to_toml(), Path::new("config.toml")).expect("again");
        assert_eq!(again, cfg);
        let table = cfg.to_table();
        let names: std::collections::BTreeSet<&str> =
            DpoConfig::keys().iter().map(|k| k.name).collect();
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
