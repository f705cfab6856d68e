//! Trainer core: candle models loaded from real checkpoints, LoRA, generation and SFT.
//!
//! # Layout
//! - [`models`]: the model families written here (Llama-style in [`models::llama`], GPT-2 in
//!   [`models::gpt2`]), shared attention pieces, [`models::CausalLm`] and the value /
//!   sequence-score heads in [`models::heads`].
//! - [`lora`]: projections that can carry LoRA adapters; attach, save, load, merge, combine.
//! - [`load`]: checkpoints into models: HF directories ([`load::hf`]), GGUF files
//!   ([`load::gguf`]), tokenizers and chat templates ([`load::tokenizer`]).
//! - [`generate`]: batched decoding with left padding, KV cache, sampling and log-probs.
//! - [`optim`]: AdamW with checkpointable state, gradient accumulation and clipping, LR schedules.
//! - [`sft`]: supervised fine-tuning: data (JSONL, chat, MaRio), config, loop, checkpoints.
//! - [`error`]: the one error type.
//!
//! Everything runs on the CPU by default; the `cuda` feature enables candle's CUDA backend.

pub mod error;
pub mod generate;
pub mod load;
pub mod lora;
pub mod models;
pub mod optim;
pub mod sft;

pub use error::{Error, Result};
