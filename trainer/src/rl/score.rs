//! Sampling with the rewards scored while the batch still generates.
//!
//! A batch's rows finish at different steps (EOS, a stop string); each finished completion
//! goes at once to a scoring thread, which scores whatever has arrived in one call to the
//! reward host and waits for more, so a slow module works during generation instead of
//! after it. Rewards are per-sample functions (the evaluator scores the same modules in
//! chunks too), so the values equal one call over the whole batch; only the number of
//! host calls differs. What the overlap bought is measured: `busy` is the scoring thread's
//! time in the host, `wait` what was left after generation ended.
//!
//! A source's fault stops scoring for the rest of the batch and is returned as the batch's
//! [`Error::Reward`], as a single call would.

use std::sync::mpsc;
use std::time::Instant;

use super::rollout::{self, Rollout};
use crate::error::{Error, Result};
use crate::generate::{GenerationConfig, generate_with};
use crate::load::tokenizer::Tokenizer;
use crate::models::CausalLm;
use crate::reward::{Rewards, Sample, Scored};

/// A sampled batch and its rewards.
pub struct Sampled {
    /// The completions, grouped by prompt.
    pub rollouts: Vec<Rollout>,
    /// Every completion's rewards, in rollout order, or the batch's fault.
    pub scored: Result<Scored>,
    /// Generation's wall time, seconds.
    pub generate_s: f64,
    /// The scoring thread's time in the reward host, seconds.
    pub reward_busy_s: f64,
    /// Scoring left after generation ended, seconds: the part the overlap did not hide.
    pub reward_wait_s: f64,
    /// Calls to the reward host (1 without overlap).
    pub reward_calls: usize,
}

/// Samples `g` completions of each prompt (`(index, tokens)`) as [`rollout::sample`] does,
/// scoring each completion as soon as it is finished with `sample_of(prompt index, text)`.
pub fn sample_and_score(
    model: &CausalLm,
    tok: &Tokenizer,
    prompts: &[(usize, Vec<u32>)],
    g: usize,
    cfg: &GenerationConfig,
    rewards: &Rewards,
    sample_of: &(dyn Fn(usize, &str) -> Sample + Sync),
) -> Result<Sampled> {
    let rows = rollout::rows(prompts, g);
    let n = rows.len();
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel::<(usize, Sample)>();
        let scorer = s.spawn(move || score_as_they_come(rewards, &rx, n));
        let t0 = Instant::now();
        let out = generate_with(model, &rows, cfg, tok.pad_id, Some(tok), &mut |i, done| {
            // A send fails only once the scorer is gone, which it is not before `tx` drops.
            let _ = tx.send((i, sample_of(prompts[i / g].0, &done.text)));
        })?;
        let generate_s = t0.elapsed().as_secs_f64();
        drop(tx);
        let t_wait = Instant::now();
        let (scored, busy, calls) = scorer
            .join()
            .map_err(|_| Error::InvalidArgument("the reward scoring thread panicked".into()))?;
        Ok(Sampled {
            rollouts: rollout::rollouts(prompts, g, out),
            scored,
            generate_s,
            reward_busy_s: busy,
            reward_wait_s: t_wait.elapsed().as_secs_f64(),
            reward_calls: calls,
        })
    })
}

/// The scoring thread: one host call per arrival burst until the sender is gone.
fn score_as_they_come(
    rewards: &Rewards,
    rx: &mpsc::Receiver<(usize, Sample)>,
    n: usize,
) -> (Result<Scored>, f64, usize) {
    let mut scored = Scored {
        raw: vec![Vec::new(); n],
        value: vec![Vec::new(); n],
        spans: vec![Vec::new(); n],
    };
    let (mut busy, mut calls, mut fault) = (0.0, 0, None);
    while let Ok(first) = rx.recv() {
        let (index, batch): (Vec<usize>, Vec<Sample>) =
            std::iter::once(first).chain(rx.try_iter()).unzip();
        if fault.is_some() {
            continue;
        }
        let t = Instant::now();
        match rewards.score(&batch) {
            Ok(part) => {
                let rows = part.raw.into_iter().zip(part.value).zip(part.spans);
                for (i, ((raw, value), spans)) in index.into_iter().zip(rows) {
                    scored.raw[i] = raw;
                    scored.value[i] = value;
                    scored.spans[i] = spans;
                }
            }
            Err(e) => fault = Some(e),
        }
        busy += t.elapsed().as_secs_f64();
        calls += 1;
    }
    (fault.map_or(Ok(scored), Err), busy, calls)
}
