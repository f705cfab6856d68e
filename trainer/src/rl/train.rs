//! The RL loop: sample, score, estimate advantages, update.
//!
//! One step is one sampling round:
//! 1. take `prompts_per_step` prompts (a seeded order of the prompt file, so a resumed run
//!    sees the prompts it would have seen) and sample `num_generations` completions of each,
//!    seeded by (seed, step);
//! 2. score every completion with every reward ([`crate::reward::Rewards`], the sandboxed
//!    modules the evaluator runs), on a thread, each as soon as it is finished, while the
//!    rest of the batch generates ([`super::score`]);
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

use super::config::{Algorithm, MAY_CHANGE_ON_RESUME, OnRewardError, RlConfig};
use super::eval::{Evaluator, RolloutLog};
use super::placement::Combination;
use super::policy::Policy;
use super::ppo::KlController;
use super::ppo_step::PpoStep;
use super::rollout;
use super::update::Update;
use crate::data::prompts;
use crate::error::{Error, MemoryCheck, Result};
use crate::generate::GenerationConfig;
use crate::lora;
use crate::optim::lr_at;
use crate::reward::{Rewards, Scored};
use crate::run::guard::{self, MemoryGuard};
use crate::run::memory;
use crate::run::{self, Checkpoints, Interrupt, Opening, Progress};

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

/// Runs (or resumes) RL as configured.
pub fn train(cfg: &RlConfig, opts: &RlOptions) -> Result<RlSummary> {
    cfg.validate()?;
    let mut peak = || memory::resident().map(|r| r.peak_mib);
    let mut memory_guard = MemoryGuard::new(
        cfg.memory_limit_mib.or_else(memory::default_limit_mib),
        &mut peak,
    );
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
    let rewards = Rewards::load_on(&cfg.reward, reward_host::Limits::default(), &device)?;
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
    // PPO's β: fixed, or adapted, in which case its value lives in the checkpoints.
    let mut kl_ctl = match cfg.kl_target {
        Some(target) => KlController::adaptive(cfg.beta, target, cfg.kl_horizon),
        None => KlController::fixed(cfg.beta),
    };
    if let Some(v) = ckpts
        .extra
        .as_ref()
        .and_then(|e| e.get("kl_coef"))
        .and_then(|v| v.as_f64())
    {
        kl_ctl.value = v;
    }
    let combination = Combination {
        combine: cfg.combine,
        weights: rewards.weights(),
        token_level: rewards.token_level(),
        holistic: rewards.holistic(),
        threshold: cfg.holistic_threshold,
        short_response_penalty: cfg.short_response_penalty,
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
        // 1. Sample ...
        policy.set_training(false);
        let idx = crate::data::order::batch(step, cfg.prompts_per_step, encoded.len(), cfg.seed);
        let batch_prompts: Vec<(usize, Vec<u32>)> =
            idx.iter().map(|&i| (i, encoded[i].clone())).collect();
        let gen_cfg = GenerationConfig {
            max_new_tokens: cfg.max_new_tokens,
            temperature: cfg.temperature as f32,
            top_k: cfg.top_k,
            top_p: cfg.top_p.map(|p| p as f32),
            stop_strings: cfg.stop.clone(),
            min_new_tokens: cfg.min_new_tokens,
            seed: cfg.seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ..GenerationConfig::default()
        };
        // 2. ... and score, on a thread, each completion as soon as it is finished.
        let sampled = super::score::sample_and_score(
            &policy.model,
            &policy.tokenizer,
            &batch_prompts,
            cfg.num_generations,
            &gen_cfg,
            &rewards,
            &|p, text| rollout::reward_sample(&train_prompts[p], text),
        )?;
        let rollouts = sampled.rollouts;
        let scored = match sampled.scored {
            Ok(s) => s,
            Err(e @ Error::Reward { .. }) if cfg.on_reward_error == OnRewardError::Skip => {
                skipped_batches += 1;
                progress.println(&format!(
                    "step {}: skipped the batch's rewards: {e}",
                    step + 1
                ));
                Scored::none(rollouts.len(), names.len())
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
        let (result, ref_s, update_s) = if cfg.algorithm == Algorithm::Ppo {
            let prepared = PpoStep::prepare(cfg, &mut policy, &rollouts, &device)?;
            let ref_s = t_ref.elapsed().as_secs_f64();
            let t_update = Instant::now();
            let out = prepared.run(
                cfg,
                &mut policy,
                &rollouts,
                &scored,
                &combination,
                &mut kl_ctl,
                step,
                &device,
            );
            ckpts.extra = Some(serde_json::json!({ "kl_coef": kl_ctl.value }));
            (out, ref_s, t_update.elapsed().as_secs_f64())
        } else {
            let update = Update::prepare(cfg, &mut policy, &rollouts, &device)?;
            let ref_s = t_ref.elapsed().as_secs_f64();
            let t_update = Instant::now();
            let out = update.run(cfg, &mut policy, &scored, &weights);
            (out, ref_s, t_update.elapsed().as_secs_f64())
        };
        let (advantages, stats) = match result {
            Err(Error::NonFiniteLoss { loss, .. }) => {
                progress.abandon();
                return Err(Error::NonFiniteLoss {
                    step: step + 1,
                    loss,
                    last_checkpoint: ckpts.last.clone(),
                });
            }
            other => other?,
        };
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
        let mut line = serde_json::json!({
            "step": step, "reward": stats.reward_mean, "rewards": per_reward,
            "rewards_raw": per_reward_raw, "kl": stats.kl, "loss": stats.loss,
            "clip_fraction": stats.clip_fraction, "grad_norm": stats.grad_norm, "lr": lr,
            "completion_tokens": stats.completion_tokens, "truncated": stats.truncated,
            "completion_tokens_per_s": tokens_seen as f64 / secs.max(1e-9),
            "time_s": {"step": step_s, "generate": sampled.generate_s,
                       "reward": sampled.reward_wait_s, "reward_busy": sampled.reward_busy_s,
                       "reference": ref_s, "update": update_s},
            "reward_calls": sampled.reward_calls,
            "skipped_reward_batches": skipped_batches,
            "peak_rss_mib": memory::resident().map(|r| r.peak_mib),
        });
        if let Some(obj) = line.as_object_mut() {
            obj.extend(stats.extra.clone());
        }
        metrics.write(&line)?;
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
        if let Err(e) =
            guard::checkpoint_if_due(&mut ckpts, &policy.opt, step, cfg.save_every, cfg.max_steps)
        {
            progress.abandon();
            return Err(e);
        }
        if let Some((used, limit)) = memory_guard.stop_after(step, cfg.max_steps) {
            progress.abandon();
            return Err(Error::OutOfMemory {
                step,
                check: MemoryCheck::AfterStep,
                used_mib: Some(used),
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
    if let Some(v) = &policy.value {
        v.save(&final_dir)?;
    }
    match &policy.lora {
        Some((lc, vm)) => lora::save(&final_dir, lc, vm)?,
        None => {
            let tensors = crate::load::hf::varmap_tensors(&policy.varmap()?)?;
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
    let system = super::push::system_name(&cfg.run_name(), step);
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
