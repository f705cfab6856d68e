//! Rollouts: prompts in, sampled completions out, and the padded batch the losses read.
//!
//! A training row is the prompt's tokens followed by the completion's, right-padded. The
//! log-probs of a batch are `(B, T)` with entry `j` the log-prob of token `j + 1` when that
//! token belongs to the completion (0 elsewhere); [`Batch::mask`] marks those entries, so
//! every per-token tensor of a batch (policy, old policy, reference) shares one layout.

use candle_core::{DType, Device, Tensor};

use crate::data::prompts::Prompt;
use crate::error::Result;
use crate::generate::{FinishReason, Generation, GenerationConfig, generate};
use crate::load::tokenizer::{Message, Tokenizer};
use crate::models::{CausalLm, Inputs};
use crate::reward::Sample;

/// One sampled completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    /// Index of its prompt in the prompt list.
    pub prompt: usize,
    /// The prompt's tokens, as generated from.
    pub prompt_ids: Vec<u32>,
    /// The completion's tokens (its EOS included when it produced one).
    pub tokens: Vec<u32>,
    /// The decoded completion, special tokens removed: what the rewards score.
    pub text: String,
    /// It reached `max_new_tokens` without an EOS.
    pub truncated: bool,
}

/// How prompts become model input.
#[derive(Debug, Clone, Default)]
pub struct PromptFormat {
    /// Render with the chat template.
    pub chat: bool,
    /// Wraps the text (`{prompt}` stands for it).
    pub template: Option<String>,
    /// Keep at most this many tokens (the end).
    pub max_len: usize,
}

/// The tokens of `prompt`: its text wrapped by the template, then the chat template
/// (messages, or the text as a user turn) with the generation prompt when `chat`; cut to
/// its last `max_len` tokens.
pub fn encode_prompt(tok: &Tokenizer, prompt: &Prompt, format: &PromptFormat) -> Result<Vec<u32>> {
    let body = match &format.template {
        Some(t) => t.replace("{prompt}", &prompt.text),
        None => prompt.text.clone(),
    };
    let text = match (&prompt.messages, format.chat) {
        (Some(m), _) => tok.apply_chat(m, true)?,
        (None, true) => tok.apply_chat(&[Message::new("user", &body)], true)?,
        (None, false) => body,
    };
    let max_len = format.max_len;
    let mut ids = tok.encode(&text)?;
    if ids.len() > max_len {
        ids.drain(..ids.len() - max_len);
    }
    Ok(ids)
}

/// Samples `g` completions of each prompt (`(index, tokens)`), in one batch, grouped by
/// prompt (the `g` completions of a prompt are contiguous).
pub fn sample(
    model: &CausalLm,
    tok: &Tokenizer,
    prompts: &[(usize, Vec<u32>)],
    g: usize,
    cfg: &GenerationConfig,
) -> Result<Vec<Rollout>> {
    let out = generate(model, &rows(prompts, g), cfg, tok.pad_id, Some(tok))?;
    Ok(rollouts(prompts, g, out))
}

/// The generation rows of a batch: each prompt `g` times.
pub fn rows(prompts: &[(usize, Vec<u32>)], g: usize) -> Vec<Vec<u32>> {
    prompts
        .iter()
        .flat_map(|(_, ids)| std::iter::repeat_n(ids.clone(), g))
        .collect()
}

/// The rollouts of the generations of [`rows`]`(prompts, g)`.
pub fn rollouts(prompts: &[(usize, Vec<u32>)], g: usize, out: Vec<Generation>) -> Vec<Rollout> {
    out.into_iter()
        .zip(prompts.iter().flat_map(|p| std::iter::repeat_n(p, g)))
        .map(|(gen_out, (index, ids))| Rollout {
            prompt: *index,
            prompt_ids: ids.clone(),
            truncated: gen_out.finish == FinishReason::Length,
            tokens: gen_out.tokens,
            text: gen_out.text,
        })
        .collect()
}

/// The sample a reward module scores for `r`: the prompt as its file gave it, the completion,
/// the reference and the fields.
pub fn reward_sample(prompt: &Prompt, text: &str) -> Sample {
    Sample {
        prompt: prompt.text.clone(),
        response: text.to_string(),
        reference: prompt.reference.clone(),
        fields: prompt.fields.clone(),
    }
}

/// Rows of prompt + completion tokens, right-padded, with the masks the losses read.
pub struct Batch {
    /// `(B, T)` token ids.
    pub ids: Tensor,
    /// Per row, 1 for real tokens (the attention mask).
    pub key_mask: Vec<Vec<u32>>,
    /// `(B, T)`, 1 at completion tokens (the targets of the log-probs).
    pub targets: Tensor,
    /// `(B, T)`, 1 at entries holding a completion token's log-prob (`targets` shifted by
    /// one), 0 for truncated rows when they are masked out.
    pub mask: Tensor,
}

/// Collates `rows`; with `mask_truncated`, truncated completions get an all-zero `mask`.
pub fn collate(
    rows: &[&Rollout],
    pad_id: u32,
    mask_truncated: bool,
    device: &Device,
) -> Result<Batch> {
    let t = rows
        .iter()
        .map(|r| r.prompt_ids.len() + r.tokens.len())
        .max()
        .unwrap_or(2)
        .max(2);
    let b = rows.len();
    let (mut ids, mut targets, mut mask) = (
        Vec::with_capacity(b * t),
        vec![0f32; b * t],
        vec![0f32; b * t],
    );
    let mut key_mask = Vec::with_capacity(b);
    for (i, r) in rows.iter().enumerate() {
        let (p, c) = (r.prompt_ids.len(), r.tokens.len());
        ids.extend(&r.prompt_ids);
        ids.extend(&r.tokens);
        ids.extend(std::iter::repeat_n(pad_id, t - p - c));
        key_mask.push([vec![1u32; p + c], vec![0; t - p - c]].concat());
        let keep = !(mask_truncated && r.truncated);
        for j in p..p + c {
            targets[i * t + j] = 1.0;
            if keep {
                mask[i * t + j - 1] = 1.0;
            }
        }
    }
    Ok(Batch {
        ids: Tensor::from_vec(ids, (b, t), device)?,
        key_mask,
        targets: Tensor::from_vec(targets, (b, t), device)?,
        mask: Tensor::from_vec(mask, (b, t), device)?,
    })
}

/// Per-token log-probs `(B, T)` of the batch's completion tokens under `model`, of the
/// distribution tempered by `temperature` (as the sampler drew them); differentiable when
/// `with_grad`.
pub fn token_logprobs(
    model: &CausalLm,
    batch: &Batch,
    temperature: f64,
    with_grad: bool,
) -> Result<Tensor> {
    Ok(token_logprobs_and_hidden(model, batch, temperature, with_grad)?.0)
}

/// [`token_logprobs`] and the final hidden states `(B, T, d)` they came from (untempered:
/// PPO's value head reads them).
pub fn token_logprobs_and_hidden(
    model: &CausalLm,
    batch: &Batch,
    temperature: f64,
    with_grad: bool,
) -> Result<(Tensor, Tensor)> {
    let inputs = Inputs::with_mask(batch.ids.clone(), &batch.key_mask)?;
    let mut hidden = model.forward_hidden(&inputs, None)?;
    if !with_grad {
        hidden = hidden.detach();
    }
    let tempered = if temperature != 1.0 {
        (&hidden / temperature)?
    } else {
        hidden.clone()
    };
    let logp = crate::loss::token_logprobs_from_hidden(
        &tempered,
        model.lm_head_weight(),
        &batch.ids,
        &batch.targets,
        with_grad,
    )?;
    Ok((logp.to_dtype(DType::F32)?, hidden))
}
