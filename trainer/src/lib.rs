//! Trainer core: candle models loaded from real checkpoints, LoRA, generation, SFT and RL.
//!
//! # Layout
//! - [`models`]: the model families written here (Llama-style in [`models::llama`], GPT-2 in
//!   [`models::gpt2`]), shared attention pieces, [`models::CausalLm`] and the value /
//!   sequence-score heads in [`models::heads`].
//! - [`lora`]: projections that can carry LoRA adapters; attach, save, load, merge, combine.
//! - [`load`]: checkpoints into models: HF directories ([`load::hf`]), GGUF files
//!   ([`load::gguf`]), tokenizers and chat templates ([`load::tokenizer`]).
//! - [`generate`]: batched decoding with left padding, KV cache, sampling and log-probs.
//! - [`loss`]: the completion-only next-token loss, fused with the LM head on the CPU (the
//!   `(tokens, vocab)` logits are never formed).
//! - [`ops`]: fused CPU kernels with backward passes: projections (with LoRA), layer norm,
//!   RMSNorm, GELU, SwiGLU, causal attention, the masked attention softmax.
//! - [`data`]: data order, the RL prompt reader and preference pairs.
//! - [`merge`]: `trainer merge`: a LoRA adapter folded into its base, written as an HF
//!   directory.
//! - [`malloc`]: keeps freed heap memory in the process during training (glibc).
//! - [`optim`]: AdamW with checkpointable state, gradient accumulation and clipping, LR schedules.
//! - [`run`]: what every command that owns a run directory shares: the directory and its
//!   lock, the settings a resume may change, config files with derived flags, checkpoints,
//!   metrics kept to one history, progress, and Ctrl-C / SIGTERM as a stop with a checkpoint.
//! - [`precision`]: f32 or bf16 mixed precision.
//! - [`reward`]: reward sources (sandboxed WebAssembly scorers, the evaluator's modules) and
//!   the `[[reward]]` spec: which value, its direction and transforms, its weight.
//! - [`sft`]: supervised fine-tuning: data (JSONL, chat, MaRio), config, the loop, the memory
//!   guard.
//! - [`rl`]: `trainer rl`: GRPO, RLOO and REINFORCE++ against several rewards: config,
//!   rollouts, the loop, eval files and push, and the advantage and loss numerics pinned to
//!   TRL / OpenRLHF.
//! - [`dpo`]: `trainer dpo`: DPO (sigmoid, robust, IPO, hinge; pinned to TRL) on preference
//!   pairs, on SFT's loop and run directory.
//! - [`rm`]: `trainer rm`: reward models (a score head; Bradley–Terry with margins and
//!   centring, pinned to TRL) on preference pairs, on the same loop.
//! - [`armo`]: `trainer armo`: ArmoRM (embeddings of a frozen backbone, one ridge probe per
//!   attribute pinned to scikit-learn, verbosity debiasing, the gating network trained
//!   Bradley–Terry) and `armo:RUN_DIR` as a reward source.
//! - [`rllr`]: `trainer rllr`: RLLR's label- and rationale-sensitive pairs
//!   ([`data::rllr`]) for `trainer rm`.
//! - [`soup`]: `trainer soup` (Rewarded Soups: adapters or models mixed by weight, each
//!   mix evaluated and pushed) and `trainer sweep` (the MORL baseline: one RL run per
//!   weighting of the rewards).
//! - [`error`]: the one error type.
//!
//! Everything runs on the CPU by default; the `cuda` feature enables candle's CUDA backend
//! (`device = "cuda"`); the fused CPU ops fall back to composed tensor ops there.
//!
//! Training runs in f32 or, with `dtype = "bf16"` ([`sft::Precision`]), in bf16 mixed
//! precision: weights (converted at load time, [`load::load_as`]) and activations in bf16;
//! the loss, norm statistics, gradient sums, LoRA adapters and AdamW's master weights and
//! moments in f32 ([`sft::train`](mod@sft::train) explains the design). bf16 saves memory;
//! on the CPU it is slower than f32 (candle widens bf16 matmuls to f32, and the fused f32
//! kernels do not apply).
//!
//! # Command line
//! - `trainer generate --model PATH --prompt TEXT [--chat] [--max-new-tokens N]
//!   [--temperature T] [--top-k K] [--top-p P] [--stop TEXT] [--seed S] [--dtype f32|bf16]
//!   [--adapter DIR]`; `PATH` is an HF directory or a `.gguf` file.
//! - `trainer sft --config run.toml [--KEY VALUE ...]`: keys are the fields of
//!   [`sft::SftConfig`]; every key is also a flag and flags win. A run directory holds
//!   `config.toml` (the resolved config), `metrics.jsonl` (one line per step: loss, lr,
//!   grad norm, tokens/s, peak resident memory; eval lines with `eval_loss`),
//!   `checkpoints/step-N/` (the newest `keep_last`) and `final/` (an HF directory, or the
//!   LoRA adapter). Re-running the same command after a kill resumes from the newest
//!   checkpoint, bit-identically (LoRA dropout included), and keeps `metrics.jsonl` to one
//!   line per step; a second run on a directory a live run holds is refused
//!   ([`Error::RunDirBusy`]); changed settings are checked first ([`run::settings`]); a
//!   finished run says so. A run that outgrows `memory_limit_mib` stops with a checkpoint and
//!   an error naming it (exit status 1); SIGINT / SIGTERM stop after the current step with a
//!   checkpoint ([`Error::Interrupted`], exit status 130 / 143).
//!
//! - `trainer rl --config run.toml [--KEY VALUE ...]`: keys are the flat fields of
//!   [`rl::RlConfig`]; rewards are `[[reward]]` tables ([`reward::RewardSpec`]). The run
//!   directory is SFT's plus `rollouts.jsonl` and `eval/step-N.jsonl`; a PPO run's
//!   `final/` adds `value_head.safetensors` (and `critic/` for a separate critic).
//! - `trainer dpo --config run.toml [--KEY VALUE ...]` and `trainer rm ...`: `trainer sft`'s
//!   keys plus [`dpo::DpoOptions`] / [`rm::RmOptions`]; `train_data` / `eval_data` are
//!   preference pairs ([`data::pairs`]). The run directory is SFT's; `rm`'s `final/` adds
//!   `score.safetensors` and `reward_model.json`.
//! - `trainer armo embed | label | fit-probes | debias | fit-gating | score ...`: the ArmoRM
//!   pipeline into one run directory ([`armo`], [`armo::cli`]); `armo:RUN_DIR[#ATTRIBUTE]`
//!   is then a reward source of `trainer rl`.
//! - `trainer rllr label-pairs | rationale-pairs --input MARIO_FILE --output pairs.jsonl ...`:
//!   RLLR's reward-model pairs ([`rllr`]).
//! - `trainer sweep --config run.toml --weights 0:1:0.25 | --terms "0x0.4 1-0x0.6" [--name N]
//!   [--KEY VALUE ...]`: one `trainer rl` run per weighting, in `output_dir/<label>/`
//!   ([`soup::sweep`]).
//! - `trainer soup --adapters A B [C ...] --output-dir DIR [--lambdas SPEC] [--model BASE]
//!   [--eval PROMPTS [--eval-limit N] [--rewards FILE] [--push-to URL --dataset D]]`: one
//!   mixed adapter (or model) per weighting, each optionally evaluated and pushed
//!   ([`soup`]).
//!
//! # Data formats (SFT)
//! - JSONL `{"prompt": .., "completion": ..}`: loss on the completion (+ EOS) only.
//! - JSONL `{"messages": [{"role": .., "content": ..}, ..]}`: loss on the last assistant turn.
//! - MaRio's one-object JSON `{"0": {question, gold_label, predicted_label,
//!   predicted_rationale}, ..}`: completion `"<rationale> So the answer is <label>."`.

pub mod armo;
pub mod data;
pub mod dpo;
pub mod error;
pub mod generate;
pub mod load;
pub mod lora;
pub mod loss;
pub mod malloc;
pub mod merge;
pub mod models;
pub mod ops;
pub mod optim;
pub mod precision;
pub mod reward;
pub mod rl;
pub mod rllr;
pub mod rm;
pub mod run;
pub mod sft;
pub mod soup;

pub use error::{Error, Result};

/// The device named `name`: `cpu`, or `cuda` / `cuda:N` in builds with the `cuda` feature.
pub fn device(name: &str) -> Result<candle_core::Device> {
    match name {
        "cpu" => Ok(candle_core::Device::Cpu),
        cuda if cuda == "cuda" || cuda.starts_with("cuda:") => {
            if !cfg!(feature = "cuda") {
                return Err(Error::config(
                    "device",
                    "this build has no CUDA support; rebuild with `--features cuda`",
                ));
            }
            let ordinal = cuda
                .strip_prefix("cuda:")
                .map_or(Ok(0), str::parse)
                .map_err(|_| Error::config("device", format!("bad device `{name}`")))?;
            Ok(candle_core::Device::new_cuda(ordinal)?)
        }
        other => Err(Error::config(
            "device",
            format!("unknown device `{other}` (cpu, cuda, cuda:N)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn devices_are_named_and_cuda_needs_the_feature() {
        assert!(super::device("cpu").is_ok_and(|d| d.is_cpu()));
        assert!(super::device("tpu").is_err_and(|e| e.to_string().contains("key `device`")));
        if !cfg!(feature = "cuda") {
            assert!(
                super::device("cuda:0").is_err_and(|e| e.to_string().contains("--features cuda"))
            );
        }
    }
}
