//! Batched generation with left padding and a KV cache.
//!
//! Prompts are left-padded to a common length; each row's positions count only its real
//! tokens and padding is masked out of attention, so a row's tokens do not depend on the
//! other rows of the batch. Decoding is greedy (`temperature == 0`) or sampled with
//! temperature, top-k and top-p from one seeded generator. Every generated token comes
//! with its log-probability under the model's untempered distribution (what RL losses use
//! as the behaviour policy's log-prob when sampling at temperature 1).

use candle_core::{DType, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::load::tokenizer::Tokenizer;
use crate::models::{CausalLm, Inputs, KvCache};

/// Decoding options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerationConfig {
    /// Upper bound on generated tokens per row.
    pub max_new_tokens: usize,
    /// 0 means greedy.
    pub temperature: f32,
    /// Keep only the k most likely tokens (sampling only).
    pub top_k: Option<usize>,
    /// Keep the smallest set of tokens with this much probability (sampling only).
    pub top_p: Option<f32>,
    /// A row stops after producing any of these ids (the tokenizer's EOS ids are added).
    pub stop_ids: Vec<u32>,
    /// A row stops once its decoded text contains any of these.
    pub stop_strings: Vec<String>,
    /// The stop ids (EOS included) cannot end a row before this many tokens (as
    /// Hugging Face's `min_new_tokens`; stop strings still apply).
    pub min_new_tokens: usize,
    /// Seed of the sampling generator.
    pub seed: u64,
    /// Use the KV cache (off only to check it).
    pub use_cache: bool,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_new_tokens: 64,
            temperature: 0.0,
            top_k: None,
            top_p: None,
            stop_ids: Vec::new(),
            stop_strings: Vec::new(),
            min_new_tokens: 0,
            seed: 0,
            use_cache: true,
        }
    }
}

/// Why a row stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FinishReason {
    /// Produced a stop id (included in `tokens`).
    StopId,
    /// Its text contains a stop string (the text is cut before it).
    StopString,
    /// Reached `max_new_tokens`.
    Length,
}

impl FinishReason {
    /// Why it stopped, in words for people (the variant's name means nothing
    /// to someone reading `trainer generate`'s summary).
    pub fn describe(self) -> &'static str {
        match self {
            FinishReason::StopId => "end-of-sequence token",
            FinishReason::StopString => "stop string",
            FinishReason::Length => "--max-new-tokens reached",
        }
    }
}

/// One row's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// Generated ids (prompt excluded).
    pub tokens: Vec<u32>,
    /// Log-probability of each generated id.
    pub logprobs: Vec<f32>,
    /// Decoded text without special tokens (empty without a tokenizer).
    pub text: String,
    /// Why it stopped.
    pub finish: FinishReason,
}

/// Picks a token from one row of logits; returns it with its untempered log-probability.
fn pick(logits: &[f32], cfg: &GenerationConfig, rng: &mut StdRng) -> (u32, f32) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let lse = max + logits.iter().map(|&l| (l - max).exp()).sum::<f32>().ln();
    let tok = if cfg.temperature <= 0.0 {
        logits
            .iter()
            .enumerate()
            .fold((0usize, f32::NEG_INFINITY), |b, (i, &l)| {
                if l > b.1 { (i, l) } else { b }
            })
            .0
    } else {
        // Only top-p needs the candidates in order: a full sort of a 49k vocabulary per
        // row and token was a quarter of a GRPO step's sampling time. Top-k selects in
        // linear time; plain sampling walks the vocabulary as it is.
        let desc = |a: &usize, b: &usize| logits[*b].total_cmp(&logits[*a]);
        let mut idx: Vec<usize> = (0..logits.len()).collect();
        if let Some(k) = cfg.top_k
            && k.max(1) < idx.len()
        {
            idx.select_nth_unstable_by(k.max(1) - 1, desc);
            idx.truncate(k.max(1));
        }
        if cfg.top_p.is_some() {
            idx.sort_by(desc);
        }
        let t = cfg.temperature;
        // The largest logit is among the candidates whatever their order.
        let top = max / t;
        let mut probs: Vec<f32> = idx.iter().map(|&i| (logits[i] / t - top).exp()).collect();
        let z: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= z);
        if let Some(p) = cfg.top_p {
            let mut acc = 0.0;
            let mut keep = probs.len();
            for (j, q) in probs.iter().enumerate() {
                acc += q;
                if acc >= p {
                    keep = j + 1;
                    break;
                }
            }
            probs.truncate(keep);
            idx.truncate(keep);
        }
        let z: f32 = probs.iter().sum();
        let mut u = rng.random::<f32>() * z;
        let mut chosen = idx[idx.len() - 1];
        for (j, q) in probs.iter().enumerate() {
            if u < *q {
                chosen = idx[j];
                break;
            }
            u -= q;
        }
        chosen
    };
    (tok as u32, logits[tok] - lse)
}

/// Generates continuations of `prompts` (token ids, no padding) as one batch.
pub fn generate(
    model: &CausalLm,
    prompts: &[Vec<u32>],
    cfg: &GenerationConfig,
    pad_id: u32,
    tokenizer: Option<&Tokenizer>,
) -> Result<Vec<Generation>> {
    generate_with(model, prompts, cfg, pad_id, tokenizer, &mut |_, _| {})
}

/// [`generate`], handing each row to `on_finish` (its index, its final generation) as soon
/// as it stops, while the other rows go on: RL scores finished completions on another
/// thread meanwhile. Rows that reach `max_new_tokens` are handed over at the end.
pub fn generate_with(
    model: &CausalLm,
    prompts: &[Vec<u32>],
    cfg: &GenerationConfig,
    pad_id: u32,
    tokenizer: Option<&Tokenizer>,
    on_finish: &mut dyn FnMut(usize, &Generation),
) -> Result<Vec<Generation>> {
    let b = prompts.len();
    if b == 0 {
        return Ok(Vec::new());
    }
    if prompts.iter().any(Vec::is_empty) {
        return Err(Error::InvalidArgument(
            "every prompt needs at least one token".into(),
        ));
    }
    let longest_prompt = prompts.iter().map(Vec::len).max().unwrap_or(0);
    if let Some(n) = model.max_positions()
        && longest_prompt + cfg.max_new_tokens > n
    {
        return Err(Error::InvalidArgument(format!(
            "prompt ({longest_prompt} tokens) + max_new_tokens ({}) exceeds the model's {n} positions",
            cfg.max_new_tokens
        )));
    }
    let dev = model.device().clone();
    let mut stop_ids = cfg.stop_ids.clone();
    if let Some(t) = tokenizer {
        stop_ids.extend(&t.eos_ids);
    }
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    // Left-padded token rows and masks; both grow by one column per step.
    let mut rows: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| [vec![pad_id; longest - p.len()], p.clone()].concat())
        .collect();
    let mut mask: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| [vec![0; longest - p.len()], vec![1; p.len()]].concat())
        .collect();
    let mut out: Vec<Generation> = (0..b)
        .map(|_| Generation {
            tokens: Vec::new(),
            logprobs: Vec::new(),
            text: String::new(),
            finish: FinishReason::Length,
        })
        .collect();
    let mut done = vec![false; b];
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut cache = KvCache::new(model.num_layers());

    let ids = Tensor::from_vec(rows.concat(), (b, longest), &dev)?;
    let inputs = Inputs::with_mask(ids, &mask)?;
    let mut logits = last_logits(model, &inputs, cfg.use_cache.then_some(&mut cache))?;
    for step in 0..cfg.max_new_tokens {
        let active: Vec<bool> = done.iter().map(|d| !d).collect();
        let mut next = Vec::with_capacity(b);
        for (i, row_logits) in logits.iter_mut().enumerate() {
            if done[i] {
                next.push(pad_id);
                continue;
            }
            if step < cfg.min_new_tokens {
                for &s in &stop_ids {
                    if let Some(l) = row_logits.get_mut(s as usize) {
                        *l = f32::NEG_INFINITY;
                    }
                }
            }
            let (tok, lp) = pick(row_logits, cfg, &mut rng);
            let g = &mut out[i];
            g.tokens.push(tok);
            g.logprobs.push(lp);
            next.push(tok);
            if stop_ids.contains(&tok) {
                done[i] = true;
                g.finish = FinishReason::StopId;
            } else if !cfg.stop_strings.is_empty()
                && let Some(t) = tokenizer
            {
                let text = t.decode(&g.tokens, true)?;
                if cfg.stop_strings.iter().any(|s| text.contains(s.as_str())) {
                    done[i] = true;
                    g.finish = FinishReason::StopString;
                }
            }
            if done[i] {
                finish_text(g, cfg, tokenizer)?;
                on_finish(i, g);
            }
        }
        for (i, &tok) in next.iter().enumerate() {
            rows[i].push(tok);
            mask[i].push(u32::from(active[i]));
        }
        if done.iter().all(|&d| d) || step + 1 == cfg.max_new_tokens {
            break;
        }
        logits = if cfg.use_cache {
            let ids = Tensor::from_vec(next.clone(), (b, 1), &dev)?;
            let positions: Vec<u32> = mask
                .iter()
                .map(|m| m[..m.len() - 1].iter().sum::<u32>())
                .collect();
            let inputs = Inputs {
                ids,
                positions: Tensor::from_vec(positions, (b, 1), &dev)?,
                key_mask: Some(Tensor::from_vec(
                    mask.iter().flatten().map(|&x| x as f32).collect::<Vec<_>>(),
                    (b, mask[0].len()),
                    &dev,
                )?),
            };
            last_logits(model, &inputs, Some(&mut cache))?
        } else {
            let t = rows[0].len();
            let ids = Tensor::from_vec(rows.concat(), (b, t), &dev)?;
            last_logits(model, &Inputs::with_mask(ids, &mask)?, None)?
        };
    }
    for (i, g) in out.iter_mut().enumerate() {
        if !done[i] {
            finish_text(g, cfg, tokenizer)?;
            on_finish(i, g);
        }
    }
    Ok(out)
}

/// The row's decoded text, cut before its stop string.
fn finish_text(g: &mut Generation, cfg: &GenerationConfig, tok: Option<&Tokenizer>) -> Result<()> {
    let Some(t) = tok else { return Ok(()) };
    g.text = t.decode(&g.tokens, true)?;
    if g.finish == FinishReason::StopString
        && let Some(cut) = cfg
            .stop_strings
            .iter()
            .filter_map(|s| g.text.find(s.as_str()))
            .min()
    {
        g.text.truncate(cut);
    }
    Ok(())
}

/// Logits of each row's last position, as f32 vectors.
fn last_logits(
    model: &CausalLm,
    inputs: &Inputs,
    cache: Option<&mut KvCache>,
) -> Result<Vec<Vec<f32>>> {
    // Generation is never differentiated: detached, the step's graph is dropped here.
    let h = model.forward_hidden(inputs, cache)?.detach();
    let t = h.dim(1)?;
    let last = h.narrow(1, t - 1, 1)?;
    let logits = model.lm_logits(&last)?.squeeze(1)?.to_dtype(DType::F32)?;
    Ok(logits.to_vec2::<f32>()?)
}
