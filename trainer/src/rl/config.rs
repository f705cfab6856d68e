//! The `trainer rl` configuration: flat keys (each also a flag, declared once in [`KEYS`])
//! plus `[[reward]]` tables, which only a TOML file can hold.
//!
//! Defaults follow TRL's `GRPOConfig` where it has the setting (ε 0.2, β 0, `dapo`, group
//! scaling, `sum_then_normalize`, one update per batch), except the learning rate (1e-5
//! rather than 1e-6, since runs here are LoRA by default) and the batch, which is sized for
//! a CPU.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::advantage::{MultiObjectiveAggregation, ScaleRewards};
use super::policy_loss::LossType;
use super::ppo::KlPenalty;
use crate::error::{Error, Result};
use crate::optim::Decay;
use crate::precision::Precision;
use crate::reward::RewardSpec;
use crate::reward::spec::Level;
use crate::run::config::{Key, Kind, Sources};

/// The policy-gradient algorithm: one advantage estimator and one policy loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Group-relative advantages, clipped token ratio, k3 KL in the loss (TRL's GRPO; with
    /// `scale_rewards = "none"` and `loss_type = "dr_grpo"` it is Dr. GRPO).
    #[default]
    Grpo,
    /// Leave-one-out baseline, k1 KL folded into the reward, sequence ratio (TRL's RLOO).
    Rloo,
    /// REINFORCE++ with a group-mean baseline and batch whitening (OpenRLHF's
    /// `reinforce_baseline`), per-token k1 KL in the reward.
    ReinforceBaseline,
    /// PPO with a learned value (legacy TRL's `PPOTrainer`): per-token rewards (task
    /// rewards on their tokens − β·KL), GAE, clipped policy and value losses, several epochs
    /// over shuffled minibatches.
    Ppo,
}

impl Algorithm {
    /// The config value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpo => "grpo",
            Self::Rloo => "rloo",
            Self::ReinforceBaseline => "reinforce_baseline",
            Self::Ppo => "ppo",
        }
    }
}

/// PPO's value model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueModel {
    /// A value head on the policy's last hidden states: one backbone, the LoRA shared
    /// (TRL's `AutoModelForCausalLMWithValueHead`).
    #[default]
    Head,
    /// A separate critic: the same base with its own LoRA and head (optionally started
    /// from a `trainer rm` run, `critic_init`, as RLLR does).
    Critic,
}

/// How the rewards of a sample become its per-token task reward (ALaRM's `reward_type`).
/// Every mode places token-level rewards (`level = "token"`) on their tokens and
/// sequence-level ones on the last token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// Every reward, weighted, summed (ALaRM's `weighted_sum`).
    #[default]
    Sum,
    /// The holistic reward h (`holistic = true`) gates the rest: below
    /// `holistic_threshold` only `W_h·h` counts, otherwise the weighted sum of all.
    Hierarchical,
    /// Only `W_h·h`.
    HolisticOnly,
    /// Every reward but the holistic one.
    AspectOnly,
}

impl Combine {
    /// The config value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sum => "sum",
            Self::Hierarchical => "hierarchical",
            Self::HolisticOnly => "holistic_only",
            Self::AspectOnly => "aspect_only",
        }
    }
}

/// What a fault of a reward module during training does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnRewardError {
    /// Stop the run with a checkpoint and the module's message.
    #[default]
    Stop,
    /// Treat that batch's values of the module as `None`, and count the skip.
    Skip,
}

fn d_model_lr() -> f64 {
    1e-5
}
fn d_g() -> usize {
    4
}
fn d_prompts() -> usize {
    8
}
fn d_new() -> usize {
    64
}
fn d_prompt_len() -> usize {
    256
}
fn d_temp() -> f64 {
    1.0
}
fn d_eps() -> f64 {
    0.2
}
fn d_one() -> usize {
    1
}
fn d_micro() -> usize {
    8
}
fn d_true() -> bool {
    true
}
fn d_steps() -> usize {
    100
}
fn d_every() -> usize {
    10
}
fn d_keep() -> usize {
    3
}
fn d_rank() -> usize {
    8
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
fn d_constant() -> Decay {
    Decay::Constant
}
fn d_beta1() -> f64 {
    0.9
}
fn d_beta2() -> f64 {
    0.999
}
fn d_adam_eps() -> f64 {
    1e-8
}
fn d_clip() -> f64 {
    1.0
}
fn d_lam() -> f64 {
    0.95
}
fn d_vf() -> f64 {
    0.1
}
fn d_vclip() -> f64 {
    0.2
}
fn d_ppo_epochs() -> usize {
    4
}
fn d_horizon() -> f64 {
    10_000.0
}
fn d_ratio_threshold() -> f64 {
    10.0
}

/// Every option of `trainer rl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RlConfig {
    /// Base (or SFT'd) model: HF directory or `.gguf` file.
    pub model: PathBuf,
    /// Training prompts ([`crate::data::prompts`]).
    pub prompts: PathBuf,
    /// Held-out prompts for the periodic greedy eval.
    #[serde(default)]
    pub eval_prompts: Option<PathBuf>,
    /// Run directory.
    pub output_dir: PathBuf,
    /// Render prompts with the model's chat template.
    #[serde(default)]
    pub chat: bool,
    /// Wraps each prompt before tokenization: `{prompt}` stands for the prompt's text (an
    /// instruction around MaRio's bare questions, say). The rewards still see the prompt as
    /// the file gives it.
    #[serde(default)]
    pub prompt_template: Option<String>,
    /// The algorithm.
    #[serde(default)]
    pub algorithm: Algorithm,
    /// Completions sampled per prompt (G).
    #[serde(default = "d_g")]
    pub num_generations: usize,
    /// Prompts per step (a step samples `prompts_per_step · num_generations` completions).
    #[serde(default = "d_prompts")]
    pub prompts_per_step: usize,
    /// Longest completion.
    #[serde(default = "d_new")]
    pub max_new_tokens: usize,
    /// Shortest completion: EOS cannot be sampled before (Hugging Face's
    /// `min_new_tokens`; the benchmark uses it so every step does the same work).
    #[serde(default)]
    pub min_new_tokens: usize,
    /// Longest prompt in tokens (longer ones keep their end).
    #[serde(default = "d_prompt_len")]
    pub max_prompt_len: usize,
    /// Sampling temperature (the log-probs are of the tempered distribution, as in TRL).
    #[serde(default = "d_temp")]
    pub temperature: f64,
    /// A completion ends at the first of these strings (few-shot prompts end their
    /// answers with a blank line, say); the rewards see the text before it.
    #[serde(default)]
    pub stop: Vec<String>,
    /// Top-k sampling.
    #[serde(default)]
    pub top_k: Option<usize>,
    /// Nucleus sampling.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// KL weight (GRPO: k3 in the loss; RLOO, REINFORCE++: k1 in the reward); 0 skips the
    /// reference pass.
    #[serde(default)]
    pub beta: f64,
    /// Lower clip ε.
    #[serde(default = "d_eps")]
    pub epsilon: f64,
    /// Upper clip ε (default: `epsilon`).
    #[serde(default)]
    pub epsilon_high: Option<f64>,
    /// Policy updates per batch (μ); above 1 the sampling policy's log-probs are kept.
    #[serde(default = "d_one")]
    pub num_iterations: usize,
    /// GRPO loss aggregation: `grpo`, `bnpo`, `dapo`, `dr_grpo`.
    #[serde(default)]
    pub loss_type: LossType,
    /// GRPO advantage scaling: `group`, `batch`, `none`.
    #[serde(default)]
    pub scale_rewards: ScaleRewards,
    /// Several rewards: `sum_then_normalize` or `normalize_then_sum` (GDPO).
    #[serde(default)]
    pub aggregation: MultiObjectiveAggregation,
    /// Truncated completions (no EOS within `max_new_tokens`) are left out of the loss.
    #[serde(default)]
    pub mask_truncated_completions: bool,
    /// Multiply the k3 KL by the ratio (TRL's `use_bias_correction_kl`).
    #[serde(default = "d_true")]
    pub kl_bias_correction: bool,
    /// Sequences per forward/backward pass.
    #[serde(default = "d_micro")]
    pub micro_batch: usize,
    /// A reward module's fault: `stop` (checkpoint and message) or `skip` (values `None`).
    #[serde(default)]
    pub on_reward_error: OnRewardError,
    /// Learning rate.
    #[serde(default = "d_model_lr")]
    pub lr: f64,
    /// Final learning rate.
    #[serde(default)]
    pub min_lr: f64,
    /// Warmup steps.
    #[serde(default)]
    pub warmup_steps: usize,
    /// `constant`, `cosine` or `linear`.
    #[serde(default = "d_constant")]
    pub decay: Decay,
    /// AdamW weight decay.
    #[serde(default)]
    pub weight_decay: f64,
    /// AdamW β₁.
    #[serde(default = "d_beta1")]
    pub beta1: f64,
    /// AdamW β₂.
    #[serde(default = "d_beta2")]
    pub beta2: f64,
    /// AdamW ε.
    #[serde(default = "d_adam_eps")]
    pub eps: f64,
    /// Gradient-norm clip (0 disables).
    #[serde(default = "d_clip")]
    pub grad_clip: f64,
    /// Seed of prompt order, sampling and LoRA init.
    #[serde(default)]
    pub seed: u64,
    /// Steps (one sampling round and its updates each).
    #[serde(default = "d_steps")]
    pub max_steps: usize,
    /// Greedy eval every this many steps (and at the end, and before the first step).
    #[serde(default = "d_every")]
    pub eval_every: usize,
    /// Use only the first N eval prompts (0: all).
    #[serde(default)]
    pub eval_limit: usize,
    /// Checkpoint every this many steps.
    #[serde(default = "d_every")]
    pub save_every: usize,
    /// Checkpoints kept.
    #[serde(default = "d_keep")]
    pub keep_last: usize,
    /// LoRA rank (0: full fine-tuning, with a frozen copy as the reference when β > 0).
    #[serde(default = "d_rank")]
    pub lora_rank: usize,
    /// LoRA alpha.
    #[serde(default = "d_alpha")]
    pub lora_alpha: f64,
    /// Projections that get adapters.
    #[serde(default = "d_targets")]
    pub lora_targets: Vec<String>,
    /// `cpu`, or `cuda` / `cuda:N`.
    #[serde(default = "d_device")]
    pub device: String,
    /// `f32` or `bf16`.
    #[serde(default)]
    pub dtype: Precision,
    /// Continue from the newest checkpoint.
    #[serde(default = "d_true")]
    pub resume: bool,
    /// Stop with a checkpoint above this peak resident memory (MiB).
    #[serde(default)]
    pub memory_limit_mib: Option<u64>,
    /// An evaluation service to push each eval's generations to (with `EVALUATOR_TOKEN`).
    #[serde(default)]
    pub push_to: Option<String>,
    /// Its dataset (default: the eval prompt file's name without extension).
    #[serde(default)]
    pub push_dataset: Option<String>,
    /// The pushed systems' prefix, `<run_name>:step-N` (default: the output_dir's name).
    #[serde(default)]
    pub run_name: Option<String>,
    /// PPO: `head` (on the policy) or `critic` (a separate model).
    #[serde(default)]
    pub value_model: ValueModel,
    /// PPO critic: start it from this `trainer rm` run (its adapter and score head).
    #[serde(default)]
    pub critic_init: Option<PathBuf>,
    /// PPO: discount γ.
    #[serde(default = "d_clip")]
    pub gamma: f64,
    /// PPO: GAE's λ.
    #[serde(default = "d_lam")]
    pub lam: f64,
    /// PPO: weight of the value loss.
    #[serde(default = "d_vf")]
    pub vf_coef: f64,
    /// PPO: value clip around the rollout's values.
    #[serde(default = "d_vclip")]
    pub cliprange_value: f64,
    /// PPO: epochs over each batch.
    #[serde(default = "d_ppo_epochs")]
    pub ppo_epochs: usize,
    /// PPO: sequences per optimizer step within an epoch (default: the whole batch).
    #[serde(default)]
    pub ppo_mini_batch: Option<usize>,
    /// PPO: the per-token KL penalty, `kl`, `abs` or `mse`.
    #[serde(default)]
    pub kl_penalty: KlPenalty,
    /// PPO: adapt β (from `beta`) towards this mean per-sequence KL; unset keeps β fixed.
    #[serde(default)]
    pub kl_target: Option<f64>,
    /// PPO: the adaptive controller's horizon, in sequences.
    #[serde(default = "d_horizon")]
    pub kl_horizon: f64,
    /// PPO: stop a step's epochs once a minibatch's policy KL passes this.
    #[serde(default)]
    pub early_stop_kl: Option<f64>,
    /// PPO: whiten the per-token rewards (mean kept) before GAE.
    #[serde(default)]
    pub whiten_rewards: bool,
    /// PPO: a micro-batch whose mean ratio passes this gets no gradient.
    #[serde(default = "d_ratio_threshold")]
    pub ratio_threshold: f64,
    /// PPO: how the rewards combine (`sum`, `hierarchical`, `holistic_only`, `aspect_only`).
    #[serde(default)]
    pub combine: Combine,
    /// PPO `hierarchical`: the holistic value below which only it counts (ALaRM's θ).
    #[serde(default)]
    pub holistic_threshold: f64,
    /// PPO: a response of at most 2 tokens gets −10·W_h and nothing else (ALaRM's rule).
    #[serde(default)]
    pub short_response_penalty: bool,
    /// The rewards.
    #[serde(default)]
    pub reward: Vec<RewardSpec>,
}

/// The flat keys of [`RlConfig`] as settings and flags (`[[reward]]` is TOML only).
pub const KEYS: &[Key] = &[
    Key::new(
        "model",
        Kind::Path,
        "policy to train: HF directory or .gguf file",
    ),
    Key::new(
        "prompts",
        Kind::Path,
        "training prompts (JSONL sample form, chat, or MaRio)",
    ),
    Key::new(
        "eval_prompts",
        Kind::Path,
        "held-out prompts for the greedy eval",
    ),
    Key::new("output_dir", Kind::Path, "run directory"),
    Key::new("chat", Kind::Bool, "render prompts with the chat template"),
    Key::new(
        "prompt_template",
        Kind::Str,
        "wraps each prompt: {prompt} is its text",
    ),
    Key::new(
        "algorithm",
        Kind::Str,
        "grpo, rloo, reinforce_baseline or ppo (default grpo)",
    ),
    Key::new(
        "num_generations",
        Kind::Int,
        "completions per prompt, G (default 4)",
    ),
    Key::new(
        "prompts_per_step",
        Kind::Int,
        "prompts per step (default 8)",
    ),
    Key::new(
        "max_new_tokens",
        Kind::Int,
        "longest completion (default 64)",
    ),
    Key::new(
        "max_prompt_len",
        Kind::Int,
        "longest prompt, its end kept (default 256)",
    ),
    Key::new(
        "temperature",
        Kind::Float,
        "sampling temperature (default 1)",
    ),
    Key::new(
        "min_new_tokens",
        Kind::Int,
        "EOS is held back before this many tokens (default 0)",
    ),
    Key::new(
        "stop",
        Kind::List,
        "strings that end a completion; the rewards see the text before it",
    ),
    Key::new("top_k", Kind::Int, "top-k sampling"),
    Key::new("top_p", Kind::Float, "nucleus sampling"),
    Key::new(
        "beta",
        Kind::Float,
        "KL weight; 0 skips the reference (default 0)",
    ),
    Key::new("epsilon", Kind::Float, "lower clip (default 0.2)"),
    Key::new("epsilon_high", Kind::Float, "upper clip (default: epsilon)"),
    Key::new(
        "num_iterations",
        Kind::Int,
        "policy updates per batch, mu (default 1)",
    ),
    Key::new(
        "loss_type",
        Kind::Str,
        "grpo, bnpo, dapo or dr_grpo (default dapo)",
    ),
    Key::new(
        "scale_rewards",
        Kind::Str,
        "group, batch or none (default group)",
    ),
    Key::new(
        "aggregation",
        Kind::Str,
        "sum_then_normalize or normalize_then_sum",
    ),
    Key::new(
        "mask_truncated_completions",
        Kind::Bool,
        "leave truncated completions out",
    ),
    Key::new(
        "kl_bias_correction",
        Kind::Bool,
        "k3 KL times the ratio (default true)",
    ),
    Key::new(
        "micro_batch",
        Kind::Int,
        "sequences per forward/backward (default 8)",
    ),
    Key::new("on_reward_error", Kind::Str, "stop or skip (default stop)"),
    Key::new("lr", Kind::Float, "learning rate (default 1e-5)"),
    Key::new("min_lr", Kind::Float, "final learning rate"),
    Key::new("warmup_steps", Kind::Int, "warmup steps"),
    Key::new(
        "decay",
        Kind::Str,
        "constant, cosine or linear (default constant)",
    ),
    Key::new("weight_decay", Kind::Float, "AdamW weight decay"),
    Key::new("beta1", Kind::Float, "AdamW beta1"),
    Key::new("beta2", Kind::Float, "AdamW beta2"),
    Key::new("eps", Kind::Float, "AdamW epsilon"),
    Key::new(
        "grad_clip",
        Kind::Float,
        "gradient-norm clip, 0 disables (default 1)",
    ),
    Key::new("seed", Kind::Int, "seed"),
    Key::new("max_steps", Kind::Int, "steps (default 100)"),
    Key::new("eval_every", Kind::Int, "eval every N steps (default 10)"),
    Key::new("eval_limit", Kind::Int, "first N eval prompts, 0: all"),
    Key::new(
        "save_every",
        Kind::Int,
        "checkpoint every N steps (default 10)",
    ),
    Key::new("keep_last", Kind::Int, "checkpoints kept (default 3)"),
    Key::new(
        "lora_rank",
        Kind::Int,
        "LoRA rank, 0: full fine-tuning (default 8)",
    ),
    Key::new("lora_alpha", Kind::Float, "LoRA alpha (default 16)"),
    Key::new(
        "lora_targets",
        Kind::List,
        "projections with adapters (default q_proj,v_proj)",
    ),
    Key::new("device", Kind::Str, "cpu, or cuda / cuda:N"),
    Key::new("dtype", Kind::Str, "f32 or bf16"),
    Key::new(
        "resume",
        Kind::Bool,
        "continue from the newest checkpoint (default true)",
    ),
    Key::new(
        "memory_limit_mib",
        Kind::Int,
        "stop with a checkpoint above this peak RSS",
    ),
    Key::new(
        "push_to",
        Kind::Str,
        "evaluator URL for the eval generations (EVALUATOR_TOKEN)",
    ),
    Key::new(
        "push_dataset",
        Kind::Str,
        "its dataset (default: the eval file's stem)",
    ),
    Key::new(
        "run_name",
        Kind::Str,
        "pushed systems are RUN_NAME:step-N (default: dir name)",
    ),
    Key::new(
        "value_model",
        Kind::Str,
        "ppo: head (on the policy) or critic (default head)",
    ),
    Key::new(
        "critic_init",
        Kind::Path,
        "ppo critic: start from this trainer rm run",
    ),
    Key::new("gamma", Kind::Float, "ppo: discount (default 1)"),
    Key::new("lam", Kind::Float, "ppo: GAE lambda (default 0.95)"),
    Key::new(
        "vf_coef",
        Kind::Float,
        "ppo: value-loss weight (default 0.1)",
    ),
    Key::new(
        "cliprange_value",
        Kind::Float,
        "ppo: value clip (default 0.2)",
    ),
    Key::new("ppo_epochs", Kind::Int, "ppo: epochs per batch (default 4)"),
    Key::new(
        "ppo_mini_batch",
        Kind::Int,
        "ppo: sequences per optimizer step (default: the batch)",
    ),
    Key::new("kl_penalty", Kind::Str, "ppo: kl, abs or mse (default kl)"),
    Key::new(
        "kl_target",
        Kind::Float,
        "ppo: adaptive beta towards this per-sequence KL",
    ),
    Key::new(
        "kl_horizon",
        Kind::Float,
        "ppo: adaptive KL horizon (default 10000)",
    ),
    Key::new(
        "early_stop_kl",
        Kind::Float,
        "ppo: stop the epochs past this policy KL",
    ),
    Key::new(
        "whiten_rewards",
        Kind::Bool,
        "ppo: whiten rewards before GAE",
    ),
    Key::new(
        "ratio_threshold",
        Kind::Float,
        "ppo: skip micro-batches whose mean ratio passes this (default 10)",
    ),
    Key::new(
        "combine",
        Kind::Str,
        "ppo: sum, hierarchical, holistic_only or aspect_only",
    ),
    Key::new(
        "holistic_threshold",
        Kind::Float,
        "ppo hierarchical: theta (default 0)",
    ),
    Key::new(
        "short_response_penalty",
        Kind::Bool,
        "ppo: responses of <= 2 tokens get -10 W_h",
    ),
];

/// The keys a resumed RL run may change (see [`crate::run::settings`]).
pub const MAY_CHANGE_ON_RESUME: &[&str] = &[
    "max_steps",
    "push_to",
    "push_dataset",
    "run_name",
    "eval_prompts",
    "eval_limit",
    "eval_every",
    "save_every",
    "keep_last",
    "memory_limit_mib",
    "device",
    "resume",
];

impl RlConfig {
    /// Parses TOML text; errors name the file, line and key.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self> {
        Sources {
            file: Some((path.to_path_buf(), text.to_string())),
            flags: toml::Table::new(),
        }
        .resolve()
    }

    /// The config as TOML (saved in the run directory).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// The settings as `config.toml` holds them.
    pub fn to_table(&self) -> toml::Table {
        self.to_toml().parse().unwrap_or_default()
    }

    /// Where eval generations are pushed, when `push_to` is set.
    pub fn push_target(&self) -> Option<super::push::Target> {
        let url = self.push_to.clone()?;
        let stem = |p: &Path| p.file_stem().map(|s| s.to_string_lossy().to_string());
        Some(super::push::Target {
            url,
            token: std::env::var("EVALUATOR_TOKEN").unwrap_or_default(),
            dataset: self
                .push_dataset
                .clone()
                .or_else(|| self.eval_prompts.as_deref().and_then(stem))
                .unwrap_or_else(|| "eval".into()),
        })
    }

    /// The prefix of pushed systems.
    pub fn run_name(&self) -> String {
        self.run_name.clone().unwrap_or_else(|| {
            self.output_dir
                .file_name()
                .map_or_else(|| "run".into(), |n| n.to_string_lossy().to_string())
        })
    }

    /// How prompts become model input.
    pub fn prompt_format(&self) -> super::rollout::PromptFormat {
        super::rollout::PromptFormat {
            chat: self.chat,
            template: self.prompt_template.clone(),
            max_len: self.max_prompt_len,
        }
    }

    /// The upper clip ε.
    pub fn epsilon_high(&self) -> f64 {
        self.epsilon_high.unwrap_or(self.epsilon)
    }

    /// Checks ranges and that the input files exist; errors name the key.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("num_generations", self.num_generations),
            ("prompts_per_step", self.prompts_per_step),
            ("max_new_tokens", self.max_new_tokens),
            ("max_prompt_len", self.max_prompt_len),
            ("num_iterations", self.num_iterations),
            ("micro_batch", self.micro_batch),
            ("max_steps", self.max_steps),
            ("eval_every", self.eval_every),
            ("save_every", self.save_every),
            ("keep_last", self.keep_last),
        ];
        for (k, v) in positive {
            if v == 0 {
                return Err(Error::config(k, "must be at least 1"));
            }
        }
        if self.num_generations < 2
            && !matches!(
                self.algorithm,
                Algorithm::ReinforceBaseline | Algorithm::Ppo
            )
        {
            return Err(Error::config(
                "num_generations",
                "must be at least 2: the baseline is the other completions of the prompt",
            ));
        }
        for (k, v) in [("lr", self.lr), ("temperature", self.temperature)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::config(
                    k,
                    format!("must be a positive number, got {v}"),
                ));
            }
        }
        if self.min_new_tokens > self.max_new_tokens {
            return Err(Error::config(
                "min_new_tokens",
                format!(
                    "is {} but max_new_tokens is {}",
                    self.min_new_tokens, self.max_new_tokens
                ),
            ));
        }
        if self.stop.iter().any(String::is_empty) {
            return Err(Error::config(
                "stop",
                "holds an empty string, which would end every completion at once",
            ));
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return Err(Error::config("beta", "must be ≥ 0"));
        }
        if !(0.0..1.0).contains(&self.epsilon) || self.epsilon_high() < 0.0 {
            return Err(Error::config("epsilon", "must be in [0, 1)"));
        }
        self.validate_ppo()?;
        if self.memory_limit_mib == Some(0) {
            return Err(Error::config("memory_limit_mib", "must be at least 1"));
        }
        if let Some(t) = &self.prompt_template
            && !t.contains("{prompt}")
        {
            return Err(Error::config(
                "prompt_template",
                "must contain {prompt}, where the prompt's text goes",
            ));
        }
        crate::run::config::check_model_path("model", &self.model)?;
        crate::run::config::check_file("prompts", &self.prompts)?;
        if let Some(p) = &self.eval_prompts {
            crate::run::config::check_file("eval_prompts", p)?;
        }
        if self.push_to.is_some() {
            if self.eval_prompts.is_none() {
                return Err(Error::config(
                    "push_to",
                    "pushes the eval generations: set eval_prompts too",
                ));
            }
            if std::env::var("EVALUATOR_TOKEN").map_or(true, |t| t.is_empty()) {
                return Err(Error::config(
                    "push_to",
                    "needs a team token in the environment variable EVALUATOR_TOKEN",
                ));
            }
        }
        if self.reward.is_empty() {
            return Err(Error::config(
                "reward",
                "no [[reward]] table: add one per reward, e.g. \
                 [[reward]] source = \"builtin:accuracy\"",
            ));
        }
        Ok(())
    }
}

impl RlConfig {
    /// PPO's keys, and the reward features only PPO places on tokens.
    fn validate_ppo(&self) -> Result<()> {
        let ppo = self.algorithm == Algorithm::Ppo;
        if !ppo {
            if self.combine != Combine::Sum {
                return Err(Error::config(
                    "combine",
                    format!(
                        "`{}` shapes per-token rewards: it needs algorithm = \"ppo\"",
                        self.combine.as_str()
                    ),
                ));
            }
            if let Some(i) = self.reward.iter().position(|r| r.level == Level::Token) {
                return Err(Error::config(
                    format!("reward[{i}].level"),
                    "token-level rewards need algorithm = \"ppo\" (the other algorithms \
                     score whole sequences)",
                ));
            }
            return Ok(());
        }
        if self.num_iterations != 1 {
            return Err(Error::config(
                "num_iterations",
                "is GRPO's mu; PPO's passes over a batch are ppo_epochs",
            ));
        }
        for (k, v) in [
            ("gamma", self.gamma),
            ("lam", self.lam),
            ("vf_coef", self.vf_coef),
            ("cliprange_value", self.cliprange_value),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::config(k, format!("must be ≥ 0, got {v}")));
            }
        }
        if self.ppo_epochs == 0 || self.ppo_mini_batch == Some(0) {
            return Err(Error::config(
                if self.ppo_epochs == 0 {
                    "ppo_epochs"
                } else {
                    "ppo_mini_batch"
                },
                "must be at least 1",
            ));
        }
        if let Some(t) = self.kl_target
            && !(t.is_finite() && t > 0.0 && self.kl_horizon > 0.0)
        {
            return Err(Error::config(
                "kl_target",
                "must be > 0, with kl_horizon > 0",
            ));
        }
        if self.critic_init.is_some() && self.value_model != ValueModel::Critic {
            return Err(Error::config(
                "critic_init",
                "starts a separate critic: set value_model = \"critic\"",
            ));
        }
        let holistic: Vec<usize> = (0..self.reward.len())
            .filter(|&i| self.reward[i].holistic)
            .collect();
        let needs = self.combine != Combine::Sum || self.short_response_penalty;
        if needs && holistic.len() != 1 {
            return Err(Error::config(
                "combine",
                format!(
                    "`{}`{} needs exactly one [[reward]] with holistic = true, found {}",
                    self.combine.as_str(),
                    if self.short_response_penalty {
                        " (or short_response_penalty)"
                    } else {
                        ""
                    },
                    holistic.len()
                ),
            ));
        }
        if let Some(&h) = holistic.first()
            && self.reward[h].level == Level::Token
        {
            return Err(Error::config(
                format!("reward[{h}].level"),
                "the holistic reward is one value per sequence: level = \"sequence\"",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "model = \"m\"\nprompts = \"p.jsonl\"\noutput_dir = \"out\"\n\
                       [[reward]]\nsource = \"builtin:accuracy\"\n";

    #[test]
    fn the_key_list_names_every_flat_field_once_and_defaults_are_trls() {
        let mut cfg = RlConfig::from_toml(MIN, Path::new("rl.toml")).expect("defaults");
        assert_eq!(cfg.loss_type, LossType::Dapo);
        assert_eq!((cfg.epsilon, cfg.epsilon_high(), cfg.beta), (0.2, 0.2, 0.0));
        cfg.eval_prompts = Some("e".into());
        cfg.memory_limit_mib = Some(1);
        cfg.top_k = Some(1);
        cfg.top_p = Some(0.9);
        cfg.epsilon_high = Some(0.28);
        cfg.prompt_template = Some("Q: {prompt}".into());
        cfg.push_to = Some("http://127.0.0.1:1".into());
        cfg.push_dataset = Some("d".into());
        cfg.run_name = Some("r".into());
        cfg.critic_init = Some("rm".into());
        cfg.ppo_mini_batch = Some(4);
        cfg.kl_target = Some(6.0);
        cfg.early_stop_kl = Some(0.15);
        let mut fields: std::collections::BTreeSet<String> =
            cfg.to_table().keys().cloned().collect();
        assert!(fields.remove("reward"));
        let keys: std::collections::BTreeSet<String> =
            KEYS.iter().map(|k| k.name.to_string()).collect();
        assert_eq!(fields, keys);
        assert_eq!(KEYS.len(), keys.len());
        assert_eq!(
            RlConfig::from_toml(&cfg.to_toml(), Path::new("r")).expect("again"),
            cfg
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = RlConfig::from_toml(
            &format!("{MIN}algorithm = \"ppo2\"\n"),
            Path::new("rl.toml"),
        )
        .expect_err("algo");
        assert!(e.to_string().contains("key `algorithm`"), "{e}");
        let e = RlConfig::from_toml(
            "model = \"m\"\nprompts = \"p\"\noutput_dir = \"o\"\nnum_generations = 1\n",
            Path::new("rl.toml"),
        )
        .expect("parses")
        .validate()
        .expect_err("G");
        assert!(e.to_string().contains("key `num_generations`"), "{e}");
    }
}
