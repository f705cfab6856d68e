//! `trainer rm`'s settings: every key of `trainer sft` (`train_data` and `eval_data` hold
//! preference pairs) plus the reward model's own ([`RmOptions`]), as a [`WithSft`].

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::run::config::{Key, Kind};
use crate::sft::config::{OwnSettings, WithSft};

fn d_prompt() -> usize {
    256
}

fn one() -> f64 {
    1.0
}

/// Which pair loss trains the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RmLoss {
    /// Bradley–Terry on the last token's score (TRL's `RewardTrainer`).
    #[default]
    BradleyTerry,
    /// RLLR's: the per-token Bradley–Terry loss averaged from the pair's first divergence
    /// to its end ([`super::loss::divergence_loss`]).
    Rllr,
}

impl RmLoss {
    /// The name in configs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BradleyTerry => "bradley_terry",
            Self::Rllr => "rllr",
        }
    }
}

/// The reward model's own settings; defaults are TRL's `RewardConfig`'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RmOptions {
    /// c of the centring term c·(r_c + r_r)² (TRL: unset; 0.01 recommended there).
    #[serde(default)]
    pub center_rewards_coefficient: Option<f64>,
    /// Prompt tokens kept (its end); the response is then cut to fit `max_len`.
    #[serde(default = "d_prompt")]
    pub max_prompt_len: usize,
    /// `bradley_terry` (TRL) or `rllr` ([`RmLoss`]).
    #[serde(default)]
    pub loss_type: RmLoss,
    /// T of the `rllr` loss, −log σ(Δ_t / T) (RLLR's `bpr_temperature`, default 1).
    #[serde(default = "one")]
    pub rllr_temperature: f64,
}

/// The reward model's keys, after SFT's.
pub const RM_KEYS: &[Key] = &[
    Key::new(
        "center_rewards_coefficient",
        Kind::Float,
        "weight of the centring term c·(r_c + r_r)² (default: none)",
    ),
    Key::new(
        "max_prompt_len",
        Kind::Int,
        "prompt tokens kept, from its end (default 256)",
    ),
    Key::new(
        "loss_type",
        Kind::Str,
        "bradley_terry (TRL) or rllr (per token from the pairs' divergence; default bradley_terry)",
    ),
    Key::new(
        "rllr_temperature",
        Kind::Float,
        "rllr loss: T in −log σ(Δ_t / T) (default 1)",
    ),
];

impl OwnSettings for RmOptions {
    const KEYS: &'static [Key] = RM_KEYS;
    const HEADING: &'static str = "reward model";
    const DATA_HELP: (&'static str, &'static str) = (
        "preference pairs (JSONL: prompt/chosen/rejected[/margin], chat, or hh-rlhf transcripts)",
        "held-out pairs for the eval loss and pairwise accuracy",
    );
}

/// Every option of `trainer rm`: SFT's in `train`, the reward model's in `own`.
pub type RmConfig = WithSft<RmOptions>;

impl RmConfig {
    /// Checks value ranges; errors name the key.
    pub fn validate(&self) -> Result<()> {
        self.train.validate()?;
        if let Some(c) = self.own.center_rewards_coefficient
            && !(c.is_finite() && c >= 0.0)
        {
            return Err(Error::config(
                "center_rewards_coefficient",
                format!("must be a number ≥ 0, got {c}"),
            ));
        }
        let t = self.own.rllr_temperature;
        if !(t.is_finite() && t > 0.0) {
            return Err(Error::config(
                "rllr_temperature",
                format!("must be a number > 0, got {t}"),
            ));
        }
        if self.own.loss_type == RmLoss::Rllr && self.own.center_rewards_coefficient.is_some() {
            return Err(Error::config(
                "center_rewards_coefficient",
                "only the bradley_terry loss reads it (loss_type is rllr; RLLR has no centring)",
            ));
        }
        let p = self.own.max_prompt_len;
        if p == 0 || p >= self.train.max_len {
            return Err(Error::config(
                "max_prompt_len",
                format!(
                    "must be at least 1 and below max_len ({}) so responses keep tokens, got {p}",
                    self.train.max_len
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
    fn settings_split_between_sft_and_the_reward_model_and_round_trip() {
        let text = format!("{MIN}center_rewards_coefficient = 0.01\nlora_rank = 8\n");
        let cfg = RmConfig::from_toml(&text, Path::new("rm.toml")).expect("cfg");
        assert_eq!(cfg.own.center_rewards_coefficient, Some(0.01));
        assert_eq!(cfg.train.lora_rank, 8);
        cfg.validate().expect("valid");
        let again = RmConfig::from_toml(&cfg.to_toml(), Path::new("config.toml")).expect("again");
        assert_eq!(again, cfg);
        let err = RmConfig::from_toml(&format!("{MIN}beta = 0.1\n"), Path::new("rm.toml"))
            .expect_err("a DPO key");
        assert!(err.to_string().contains("key `beta`"), "{err}");
        let bad = RmConfig::from_toml(
            &format!("{MIN}center_rewards_coefficient = -1.0\n"),
            Path::new("rm.toml"),
        )
        .expect("parses");
        let err = bad.validate().expect_err("negative").to_string();
        assert!(err.contains("key `center_rewards_coefficient`"), "{err}");
        let rllr = RmConfig::from_toml(
            &format!("{MIN}loss_type = \"rllr\"\nrllr_temperature = 2.0\n"),
            Path::new("rm.toml"),
        )
        .expect("rllr");
        assert_eq!(
            (rllr.own.loss_type, rllr.own.rllr_temperature),
            (RmLoss::Rllr, 2.0)
        );
        rllr.validate().expect("valid");
        let both = RmConfig::from_toml(
            &format!("{MIN}loss_type = \"rllr\"\ncenter_rewards_coefficient = 0.01\n"),
            Path::new("rm.toml"),
        )
        .expect("parses");
        let err = both.validate().expect_err("centring with rllr").to_string();
        assert!(err.contains("only the bradley_terry loss"), "{err}");
    }
}
