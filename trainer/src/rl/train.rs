//! The RL loop: sample, score, estimate advantages, update.
//!
//! One step is one sampling round:
//! 1. take `prompts_per_step` prompts (a seeded order of the prompt file, so a resumed run
//!    sees the prompts it would have seen) and sample `num_generations` completions of each,
//!    seeded by (seed, step);
//! 2. score every completion with every reward ([`crate::reward::Rewards`], the sandboxed
//!    modules the evaluator runs);
//! 3. for β > 0 or μ > 1, the reference's (adapters off) and the sampling policy's
//!    log-probs, without gradients;
//! 4. advantages ([`super::advantage`]) and `num_iterations` optimizer steps, each over all
//!    the completions in micro-batches ([`super::policy_loss`]);
//! 5. a metrics line, one `rollouts.jsonl` line per completion, and on schedule a greedy
//!    eval ([`super::eval`]) and a checkpoint.
//!
//! The run directory, resume, settings check, Ctrl-C and progress are the shared services
//! of [`crate::run`].

use std::time::Instant;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;

use super::advantage::{
    GrpoAdvantageConfig, KlEstimator, ReinforceConfig, RlooAdvantageConfig, approx_kl,
    grpo_advantages, reinforce_baseline_advantages, rloo_advantages, sequence_k1,
};
use super::config::{Algorithm, MAY_CHANGE_ON_RESUME, OnRewardError, RlConfig};
use super::eval::{Evaluator, RolloutLog};
use super::policy_loss::{
    GrpoLossConfig, PolicyBatch, ReinforceLossConfig, RlooLossConfig, grpo_loss, reinforce_loss,
    rloo_loss, sequence_logp,
};
use super::rollout::{self, Batch, Rollout};
use crate::data::prompts;
use crate::error::{Error, MemoryCheck, Result};
use crate::generate::GenerationConfig;
use crate::load::{self, tokenizer::Tokenizer};
use crate::lora::{self, LoraConfig};
use crate::models::CausalLm;
use crate::optim::{AdamW, AdamWParams, GradAccumulator, lr_at};
use crate::reward::{Rewards, Scored};
use crate::run::{self, Checkpoints, Interrupt, Opening, Progress};
use crate::sft::memory;

/// Options that are not part of the run's configuration.
#[derive(Debug, Clone, Default)]
pub struct RlOptions {
    /// Show progress on stderr.
    pub progress: bool,
    /// Polled between steps: a request stops the run with a checkpoint.
    pub interrupt: Interrupt,
    /// Return after this step as if killed (tests of resumption).
    pub stop_after: Option<usize>,
}

/// What a run reports.
#[derive(Debug, Clone, PartialEq)]
pub struct RlSummary {
    /// Steps completed.
    pub steps: usize,
    /// The step it resumed from.
    pub resumed_from: usize,
    /// Final adapter (or model) directory; `None` when stopped early.
    pub final_dir: Option<std::path::PathBuf>,
    /// The run had already reached `max_steps`.
    pub already_finished: bool,
    /// Mean combined reward of the last step's completions.
    pub last_reward: Option<f64>,
}

/// What one step measured.
struct StepStats {
    reward_mean: f64,
    kl: f64,
    loss: f64,
    clip_fraction: f64,
    grad_norm: f64,
    completion_tokens: usize,
    truncated: usize,
}

/// The model, its trainable state and the reference.
struct Policy {
    model: CausalLm,
    tokenizer: Tokenizer,
    opt: AdamW,
    lora: Option<(LoraConfig, VarMap)>,
    /// A frozen copy for full fine-tuning with β > 0 (with LoRA the base is the reference).
    reference: Option<CausalLm>,
}

impl Policy {
    fn load(cfg: &RlConfig, device: &Device) -> Result<Self> {
        let full = cfg.lora_rank == 0;
        let loaded = load::load_as(&cfg.model, full, cfg.dtype.dtype(), device)?;
        let tokenizer = loaded
            .tokenizer
            .ok_or_else(|| Error::checkpoint(&cfg.model, "no tokenizer"))?;
        let mut model = loaded.model;
        let (vm, lora) = if full {
            let vm = loaded.varmap.ok_or_else(|| {
                Error::InvalidArgument("full fine-tuning needs trainable weights".into())
            })?;
            (vm, None)
        } else {
            let lc = LoraConfig {
                rank: cfg.lora_rank,
                alpha: cfg.lora_alpha,
                dropout: 0.0,
                targets: cfg.lora_targets.clone(),
                seed: cfg.seed,
            };
            let vm = VarMap::new();
            lora::attach(&mut model, &lc, &vm)?;
            (vm.clone(), Some((lc, vm)))
        };
        let vars = vm
            .data()
            .lock()
            .map_err(|_| Error::InvalidArgument("poisoned VarMap".into()))?
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let params = AdamWParams {
            lr: cfg.lr,
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: cfg.eps,
            weight_decay: cfg.weight_decay,
        };
        let reference = (full && cfg.beta > 0.0)
            .then(|| load::load_as(&cfg.model, false, cfg.dtype.dtype(), device).map(|l| l.model))
            .transpose()?;
        Ok(Self {
            model,
            tokenizer,
            opt: AdamW::new(vars, params)?,
            lora,
            reference,
        })
    }

    /// Per-token log-probs of the reference: the base with adapters off, or the frozen copy.
    fn reference_logprobs(&mut self, batch: &Batch, temperature: f64) -> Result<Tensor> {
        if let Some(r) = &self.reference {
            return rollout::token_logprobs(r, batch, temperature, false);
        }
        lora::set_adapters_enabled(&mut self.model, false);
        let out = rollout::token_logprobs(&self.model, batch, temperature, false);
        lora::set_adapters_enabled(&mut self.model, true);
        out
    }
}

/// Runs (or resumes) RL as configured.
pub fn train(cfg: &RlConfig, opts: &RlOptions) -> Result<RlSummary> {
    cfg.validate()?;
    let limit_mib = cfg.memory_limit_mib.or_else(memory::default_limit_mib);
    let device = crate::device(&cfg.device)?;
    let mut start_run = match run::open(
        &cfg.output_dir,
        &cfg.to_table(),
        cfg.resume,
        cfg.max_steps,
        MAY_CHANGE_ON_RESUME,
    )? {
        Opening::Finished { steps, final_dir } => {
            return Ok(RlSummary {
                steps,
                resumed_from: steps,
                final_dir: Some(final_dir),
                already_finished: true,
                last_reward: run::metrics::last_value(
                    &cfg.output_dir.join(run::dir::METRICS_FILE),
                    "reward",
                ),
            });
        }
        Opening::Start(s) => s,
    };
    // Inputs first: nothing is written until they are all valid.
    let train_prompts = prompts::read(&cfg.prompts)?;
    let eval_prompts = cfg
        .eval_prompts
        .as_ref()
        .map(|p| prompts::read(p))
        .transpose()?
        .map(|mut v| {
            if cfg.eval_limit > 0 {
                v.truncate(cfg.eval_limit);
            }
            v
        });
    let rewards = Rewards::load(&cfg.reward, reward_host::Limits::default())?;
    let mut policy = Policy::load(cfg, &device)?;
    let format = cfg.prompt_format();
    let encoded: Vec<Vec<u32>> = train_prompts
        .iter()
        .map(|p| rollout::encode_prompt(&policy.tokenizer, p, &format))
        .collect::<Result<_>>()?;
    let mut ckpts = Checkpoints::new(
        start_run.dir.checkpoints(),
        policy.lora.is_some(),
        cfg.dtype,
        cfg.keep_last,
    );
    let start = match &start_run.resume_from {
        Some((_, p)) => ckpts.resume_from(p, &mut policy.opt, &device)?,
        None => 0,
    };
    let mut metrics = start_run.begin(&cfg.to_toml(), start)?;
    let mut log = RolloutLog::open(start_run.dir.path(), start, &rewards.names())?;
    let evaluator = eval_prompts.map(|p| Evaluator::new(start_run.dir.path(), p, cfg));
    eprintln!("{}", start_line(&start_run, start, cfg));
    if start == 0
        && let Some(ev) = &evaluator
    {
        let line = ev.run(0, &policy.model, &policy.tokenizer, &rewards)?;
        eprintln!("{}", super::eval::describe(&line));
        metrics.write(&line)?;
        let names = rewards.names();
        let weights = rewards.weights();
        let quiet = Progress::new(false, 0, cfg.max_steps);
        push_eval(cfg, 0, &names, &weights, &mut metrics, &quiet)?;
    }
    let mut progress = Progress::new(opts.progress, start, cfg.max_steps);
    let names = rewards.names();
    let weights = rewards.weights();
    let mut skipped_batches = 0usize;
    let mut last_reward = None;
    let t0 = Instant::now();
    let mut tokens_seen = 0usize;
    let mut step = start;
    while step < cfg.max_steps {
        if let Some(signal) = opts.interrupt.requested() {
            progress.abandon();
            return Err(Error::Interrupted {
                signal,
                step,
                max_steps: cfg.max_steps,
                checkpoint: ckpts.for_stop(step, &policy.opt),
            });
        }
        let t_step = Instant::now();
        // 1. Sample.
        policy.model.set_training(false);
        let idx = crate::data::order::batch(step, cfg.prompts_per_step, encoded.len(), cfg.seed);
        let batch_prompts: Vec<(usize, Vec<u32>)> =
            idx.iter().map(|&i| (i, encoded[i].clone())).collect();
        let gen_cfg = GenerationConfig {
            max_new_tokens: cfg.max_new_tokens,
            temperature: cfg.temperature as f32,
            top_k: cfg.top_k,
            top_p: cfg.top_p.map(|p| p as f32),
            seed: cfg.seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ..GenerationConfig::default()
        };
        let rollouts = rollout::sample(
            &policy.model,
            &policy.tokenizer,
            &batch_prompts,
            cfg.num_generations,
            &gen_cfg,
        )?;
        let gen_s = t_step.elapsed().as_secs_f64();
        // 2. Score.
        let t_reward = Instant::now();
        let samples: Vec<_> = rollouts
            .iter()
            .map(|r| rollout::reward_sample(&train_prompts[r.prompt], &r.text))
            .collect();
        let scored = match rewards.score(&samples) {
            Ok(s) => s,
            Err(e @ Error::Reward { .. }) if cfg.on_reward_error == OnRewardError::Skip => {
                skipped_batches += 1;
                progress.println(&format!(
                    "step {}: skipped the batch's rewards: {e}",
                    step + 1
                ));
                let none = vec![vec![None; names.len()]; samples.len()];
                Scored {
                    raw: none.clone(),
                    value: none,
                }
            }
            Err(e) => {
                progress.abandon();
                let checkpoint = ckpts.for_stop(step, &policy.opt);
                return Err(Error::RewardStopped {
                    step: step + 1,
                    message: e.to_string(),
                    checkpoint,
                });
            }
        };
        let reward_s = t_reward.elapsed().as_secs_f64();
        // 3–4. Reference, advantages, updates.
        let lr = lr_at(
            step,
            cfg.lr,
            cfg.min_lr,
            cfg.warmup_steps,
            cfg.max_steps,
            cfg.decay,
        );
        policy.opt.params.lr = lr;
        let t_ref = Instant::now();
        let update = Update::prepare(cfg, &mut policy, &rollouts, &device)?;
        let ref_s = t_ref.elapsed().as_secs_f64();
        let t_update = Instant::now();
        let (advantages, stats) = update.run(cfg, &mut policy, &scored, &weights)?;
        let update_s = t_update.elapsed().as_secs_f64();
        step += 1;
        let step_s = t_step.elapsed().as_secs_f64();
        tokens_seen += stats.completion_tokens;
        last_reward = Some(stats.reward_mean);
        let means = super::eval::means(&scored.value);
        let raw_means = super::eval::means(&scored.raw);
        let per_reward: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .cloned()
            .zip(means.iter().map(|m| (*m).into()))
            .collect();
        let per_reward_raw: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .cloned()
            .zip(raw_means.iter().map(|m| (*m).into()))
            .collect();
        let secs = t0.elapsed().as_secs_f64();
        metrics.write(&serde_json::json!({
            "step": step, "reward": stats.reward_mean, "rewards": per_reward,
            "rewards_raw": per_reward_raw, "kl": stats.kl, "loss": stats.loss,
            "clip_fraction": stats.clip_fraction, "grad_norm": stats.grad_norm, "lr": lr,
            "completion_tokens": stats.completion_tokens, "truncated": stats.truncated,
            "completion_tokens_per_s": tokens_seen as f64 / secs.max(1e-9),
            "time_s": {"step": step_s, "generate": gen_s, "reward": reward_s,
                       "reference": ref_s, "update": update_s},
            "skipped_reward_batches": skipped_batches,
            "peak_rss_mib": memory::resident().map(|r| r.peak_mib),
        }))?;
        log.write(
            step,
            &rollouts,
            &train_prompts,
            &scored,
            &advantages,
            &weights,
        )?;
        let shown: Vec<String> = names
            .iter()
            .zip(&means)
            .map(|(n, m)| format!("{n} {}", m.map_or("-".into(), |m| format!("{m:.3}"))))
            .collect();
        progress.step(
            step,
            &format!(
                "reward {:.3} | {} | kl {:.4} | {:.0} tok/s",
                stats.reward_mean,
                shown.join(" "),
                stats.kl,
                stats.completion_tokens as f64 / step_s.max(1e-9)
            ),
        );
        if let Some(ev) = &evaluator
            && (step % cfg.eval_every == 0 || step == cfg.max_steps)
        {
            let line = ev.run(step, &policy.model, &policy.tokenizer, &rewards)?;
            progress.println(&super::eval::describe(&line));
            metrics.write(&line)?;
            push_eval(cfg, step, &names, &weights, &mut metrics, &progress)?;
        }
        if step % cfg.save_every == 0 || step == cfg.max_steps {
            if !run::checkpoint::all_finite(&policy.opt)? {
                progress.abandon();
                return Err(Error::NonFiniteLoss {
                    step,
                    loss: f32::NAN,
                    last_checkpoint: ckpts.last,
                });
            }
            ckpts.save(step, &policy.opt)?;
        }
        if step < cfg.max_steps
            && let (Some(limit), Some(r)) = (limit_mib, memory::resident())
            && r.peak_mib > limit
        {
            progress.abandon();
            return Err(Error::OutOfMemory {
                step,
                check: MemoryCheck::AfterStep,
                used_mib: Some(r.peak_mib),
                limit_mib: Some(limit),
                last_checkpoint: ckpts.for_stop(step, &policy.opt),
                hint: format!(
                    "lower prompts_per_step (now {}), num_generations (now {}), micro_batch \
                     (now {}) or max_new_tokens (now {})",
                    cfg.prompts_per_step, cfg.num_generations, cfg.micro_batch, cfg.max_new_tokens
                ),
            });
        }
        if opts.stop_after == Some(step) && step < cfg.max_steps {
            progress.abandon();
            return Ok(RlSummary {
                steps: step,
                resumed_from: start,
                final_dir: None,
                already_finished: false,
                last_reward,
            });
        }
    }
    progress.finish();
    let final_dir = start_run.dir.path().join("final");
    match &policy.lora {
        Some((lc, vm)) => lora::save(&final_dir, lc, vm)?,
        None => {
            let tensors = crate::load::hf::varmap_tensors(&policy_varmap(&policy)?)?;
            crate::load::hf::save(
                &final_dir,
                &policy.model.config_json(),
                &tensors,
                Some(&policy.tokenizer.to_json()?),
            )?;
        }
    }
    Ok(RlSummary {
        steps: step,
        resumed_from: start,
        final_dir: Some(final_dir),
        already_finished: false,
        last_reward,
    })
}

/// Pushes the eval file of `step` when `push_to` is set; a failure is printed and logged,
/// not fatal (the file stays in the run directory).
fn push_eval(
    cfg: &RlConfig,
    step: usize,
    names: &[String],
    weights: &[f64],
    metrics: &mut run::Metrics,
    progress: &Progress,
) -> Result<()> {
    let Some(target) = cfg.push_target() else {
        return Ok(());
    };
    let system = format!("{}@step-{step}", cfg.run_name());
    let file = cfg.output_dir.join(format!("eval/step-{step}.jsonl"));
    let rewards: Vec<(String, f64)> = names.iter().cloned().zip(weights.iter().copied()).collect();
    let meta = super::push::metadata(step, cfg.algorithm.as_str(), &rewards);
    let line = match super::push::push(&target, &system, &file, &meta) {
        Ok(summary) => {
            progress.println(&format!(
                "pushed {system} to {} (dataset {})",
                target.url, target.dataset
            ));
            serde_json::json!({"event": "pushed", "step": step, "system": system,
                "dataset": target.dataset, "summary": summary})
        }
        Err(e) => {
            progress.println(&format!("push of {system} failed (training goes on): {e}"));
            serde_json::json!({"event": "push_failed", "step": step, "system": system, "error": e})
        }
    };
    metrics.write(&line)
}

/// The trainable variables of a full fine-tune as a map (for writing the final weights).
fn policy_varmap(policy: &Policy) -> Result<VarMap> {
    let vm = VarMap::new();
    {
        let mut data = vm
            .data()
            .lock()
            .map_err(|_| Error::InvalidArgument("poisoned VarMap".into()))?;
        for (name, var) in policy.opt.vars() {
            data.insert(name.to_string(), var.clone());
        }
    }
    Ok(vm)
}

fn start_line(run: &run::Start, start: usize, cfg: &RlConfig) -> String {
    let dir = run.dir.path().display();
    let what = format!(
        "{} with {} prompts x {} completions per step",
        cfg.algorithm.as_str(),
        cfg.prompts_per_step,
        cfg.num_generations
    );
    match &run.resume_from {
        None => format!("starting a run in {dir}: {} steps of {what}", cfg.max_steps),
        Some((_, ckpt)) => {
            let changed: Vec<String> = run.changes.iter().map(ToString::to_string).collect();
            let changed = if changed.is_empty() {
                String::new()
            } else {
                format!("; changed: {}", changed.join(", "))
            };
            format!(
                "resuming {dir} from step {start} of {} ({}){changed}",
                cfg.max_steps,
                ckpt.display()
            )
        }
    }
}

/// One step's rollouts as micro-batches, with the no-gradient passes done.
struct Update {
    batches: Vec<(Batch, std::ops::Range<usize>)>,
    /// Per micro-batch: the sampling policy's log-probs (μ > 1, or RLOO/REINFORCE++ KL).
    old: Vec<Option<Tensor>>,
    /// Per micro-batch: the reference's log-probs (β > 0).
    reference: Vec<Option<Tensor>>,
    tokens: usize,
    truncated: usize,
    lengths: Vec<Vec<u32>>,
}

impl Update {
    fn prepare(
        cfg: &RlConfig,
        policy: &mut Policy,
        rollouts: &[Rollout],
        device: &Device,
    ) -> Result<Self> {
        let pad = policy.tokenizer.pad_id;
        let mut batches = Vec::new();
        for start in (0..rollouts.len()).step_by(cfg.micro_batch) {
            let range = start..(start + cfg.micro_batch).min(rollouts.len());
            let rows: Vec<&Rollout> = rollouts[range.clone()].iter().collect();
            batches.push((
                rollout::collate(&rows, pad, cfg.mask_truncated_completions, device)?,
                range,
            ));
        }
        let need_old = cfg.num_iterations > 1;
        let mut old = Vec::with_capacity(batches.len());
        let mut reference = Vec::with_capacity(batches.len());
        for (b, _) in &batches {
            old.push(
                need_old
                    .then(|| rollout::token_logprobs(&policy.model, b, cfg.temperature, false))
                    .transpose()?,
            );
            reference.push(
                (cfg.beta > 0.0)
                    .then(|| policy.reference_logprobs(b, cfg.temperature))
                    .transpose()?,
            );
        }
        let mut tokens = 0;
        for (b, _) in &batches {
            tokens += b.mask.sum_all()?.to_scalar::<f32>()? as usize;
        }
        Ok(Self {
            batches,
            old,
            reference,
            tokens,
            truncated: rollouts.iter().filter(|r| r.truncated).count(),
            lengths: rollouts.iter().map(|r| r.tokens.clone()).collect(),
        })
    }

    /// The advantages (one per completion; REINFORCE++'s per-token ones averaged for the
    /// log) and `num_iterations` optimizer steps.
    fn run(
        &self,
        cfg: &RlConfig,
        policy: &mut Policy,
        scored: &Scored,
        weights: &[f64],
    ) -> Result<(Vec<f64>, StepStats)> {
        let g = cfg.num_generations;
        let n = self.lengths.len();
        let combined = super::advantage::combined_rewards(&scored.value, weights)?;
        let valid: Vec<f64> = combined.iter().flatten().copied().collect();
        let reward_mean = valid.iter().sum::<f64>() / valid.len().max(1) as f64;
        // Sequence-level KL terms for the algorithms that fold KL into the reward, from the
        // no-gradient passes (the sampling policy = the current one before the update).
        let (old_flat, ref_flat, mask_flat, width) = self.flat_logprobs(cfg, policy)?;
        let seq_adv: Vec<f64>;
        let mut token_adv: Option<Vec<Vec<f64>>> = None;
        match cfg.algorithm {
            Algorithm::Grpo => {
                let c = GrpoAdvantageConfig {
                    aggregation: cfg.aggregation,
                    scale_rewards: cfg.scale_rewards,
                    ..GrpoAdvantageConfig::default()
                };
                seq_adv = grpo_advantages(&scored.value, weights, g, &c)?;
            }
            Algorithm::Rloo => {
                let kl = match (&old_flat, &ref_flat) {
                    (Some(o), Some(r)) => Some(sequence_k1(o, r, &mask_flat, width)?),
                    _ => None,
                };
                let c = RlooAdvantageConfig {
                    beta: cfg.beta,
                    ..RlooAdvantageConfig::default()
                };
                seq_adv = rloo_advantages(&scored.value, weights, g, kl.as_deref(), &c)?;
            }
            Algorithm::ReinforceBaseline => {
                let token_kl = match (&old_flat, &ref_flat) {
                    (Some(o), Some(r)) => Some(approx_kl(o, r, KlEstimator::K1)?),
                    _ => None,
                };
                let c = ReinforceConfig {
                    beta: cfg.beta,
                    ..ReinforceConfig::default()
                };
                let flat = reinforce_baseline_advantages(
                    &combined,
                    g,
                    token_kl.as_deref(),
                    &mask_flat,
                    width,
                    &c,
                )?;
                let rows: Vec<Vec<f64>> = flat.chunks(width).map(<[f64]>::to_vec).collect();
                seq_adv = rows
                    .iter()
                    .zip(mask_flat.chunks(width))
                    .map(|(a, m)| {
                        let k = m.iter().sum::<f64>();
                        a.iter().zip(m).map(|(a, m)| a * m).sum::<f64>() / k.max(1.0)
                    })
                    .collect();
                token_adv = Some(rows);
            }
        }
        debug_assert_eq!(seq_adv.len(), n);
        let (mut kl_sum, mut loss_sum, mut clip_sum, mut grad_norm) = (0.0, 0.0, 0.0, 0.0);
        policy.model.set_training(true);
        let micro = self.batches.len();
        for _ in 0..cfg.num_iterations {
            let mut acc = GradAccumulator::default();
            for (k, (b, range)) in self.batches.iter().enumerate() {
                let logp = rollout::token_logprobs(&policy.model, b, cfg.temperature, true)?;
                let device = logp.device().clone();
                let adv = Tensor::from_vec(
                    seq_adv[range.clone()]
                        .iter()
                        .map(|&a| a as f32)
                        .collect::<Vec<_>>(),
                    range.len(),
                    &device,
                )?;
                let out = match cfg.algorithm {
                    Algorithm::Grpo => grpo_loss(
                        &PolicyBatch {
                            logp: &logp,
                            old_logp: self.old[k].as_ref(),
                            ref_logp: self.reference[k].as_ref(),
                            mask: &b.mask,
                            advantages: &adv,
                            generation_batch_tokens: Some(self.tokens as f64),
                        },
                        &GrpoLossConfig {
                            loss_type: cfg.loss_type,
                            epsilon_low: cfg.epsilon,
                            epsilon_high: cfg.epsilon_high(),
                            beta: cfg.beta,
                            kl_bias_correction: cfg.kl_bias_correction,
                            max_completion_length: cfg.max_new_tokens,
                            gradient_accumulation_steps: micro,
                        },
                    )?,
                    Algorithm::Rloo => {
                        let old = self.old[k].clone().unwrap_or_else(|| logp.detach());
                        rloo_loss(
                            &logp,
                            &sequence_logp(&old, &b.mask)?,
                            &b.mask,
                            &adv,
                            &RlooLossConfig {
                                epsilon_low: cfg.epsilon,
                                epsilon_high: cfg.epsilon_high(),
                                gradient_accumulation_steps: micro,
                            },
                        )?
                    }
                    Algorithm::ReinforceBaseline => {
                        let rows = token_adv.as_ref().map_or(&[][..], |v| &v[range.clone()]);
                        let t = b.mask.dim(1)?;
                        let flat: Vec<f32> = rows
                            .iter()
                            .flat_map(|r| (0..t).map(|j| r.get(j).copied().unwrap_or(0.0) as f32))
                            .collect();
                        let adv_t = Tensor::from_vec(flat, (range.len(), t), &device)?;
                        let old = self.old[k].clone().unwrap_or_else(|| logp.detach());
                        reinforce_loss(
                            &logp,
                            &old,
                            &b.mask,
                            &adv_t,
                            Some(self.tokens as f64),
                            &ReinforceLossConfig {
                                epsilon_low: cfg.epsilon,
                                epsilon_high: cfg.epsilon_high(),
                                dual_clip: None,
                            },
                        )?
                    }
                };
                let value = out.loss.to_scalar::<f32>()?;
                if !value.is_finite() {
                    return Err(Error::NonFiniteLoss {
                        step: 0,
                        loss: value,
                        last_checkpoint: None,
                    });
                }
                loss_sum += f64::from(value);
                kl_sum += out.metrics.kl.unwrap_or(0.0) * range.len() as f64;
                clip_sum += out.metrics.clip_fraction * range.len() as f64;
                acc.add(policy.opt.vars().map(|(_, v)| v), &out.loss.backward()?)?;
            }
            grad_norm = acc.norm()?;
            if cfg.grad_clip > 0.0 && grad_norm > cfg.grad_clip {
                acc.scale(cfg.grad_clip / (grad_norm + 1e-6))?;
            }
            policy.opt.step(&acc.take())?;
        }
        policy.model.set_training(false);
        let iters = (cfg.num_iterations * n) as f64;
        Ok((
            seq_adv,
            StepStats {
                reward_mean,
                kl: kl_sum / iters,
                loss: loss_sum / cfg.num_iterations as f64,
                clip_fraction: clip_sum / iters,
                grad_norm,
                completion_tokens: self.lengths.iter().map(Vec::len).sum(),
                truncated: self.truncated,
            },
        ))
    }

    /// The no-gradient log-probs and the mask as flat row-major `f64`, all micro-batches
    /// padded to one width (for the advantage functions that take per-token values).
    #[allow(clippy::type_complexity, reason = "four parallel views of one batch")]
    fn flat_logprobs(
        &self,
        cfg: &RlConfig,
        policy: &Policy,
    ) -> Result<(Option<Vec<f64>>, Option<Vec<f64>>, Vec<f64>, usize)> {
        let width = self
            .batches
            .iter()
            .map(|(b, _)| b.mask.dim(1))
            .collect::<candle_core::Result<Vec<_>>>()?
            .into_iter()
            .max()
            .unwrap_or(1);
        let flat = |t: &Tensor| -> Result<Vec<f64>> {
            let rows: Vec<Vec<f32>> = t.to_vec2()?;
            Ok(rows
                .into_iter()
                .flat_map(|r| {
                    let pad = width - r.len();
                    r.into_iter()
                        .map(f64::from)
                        .chain(std::iter::repeat_n(0.0, pad))
                })
                .collect())
        };
        let mut mask = Vec::new();
        for (b, _) in &self.batches {
            mask.extend(flat(&b.mask)?);
        }
        let needs_kl = cfg.beta > 0.0 && cfg.algorithm != Algorithm::Grpo;
        if !needs_kl {
            return Ok((None, None, mask, width));
        }
        let (mut old, mut reference) = (Vec::new(), Vec::new());
        for (k, (b, _)) in self.batches.iter().enumerate() {
            let o = match &self.old[k] {
                Some(o) => o.clone(),
                None => rollout::token_logprobs(&policy.model, b, cfg.temperature, false)?,
            };
            old.extend(flat(&o)?);
            if let Some(r) = &self.reference[k] {
                reference.extend(flat(r)?);
            }
        }
        Ok((Some(old), Some(reference), mask, width))
    }
}
