//! Checkpoints into models: HF directories, GGUF files, tokenizers.

pub mod gguf;
pub mod hf;
pub mod tokenizer;

use candle_nn::VarMap;

use crate::models::CausalLm;
use tokenizer::Tokenizer;

/// A loaded checkpoint.
pub struct Loaded {
    /// The model.
    pub model: CausalLm,
    /// The tokenizer, when the checkpoint has one.
    pub tokenizer: Option<Tokenizer>,
    /// The model's weights as trainable variables (`None` when loaded frozen).
    pub varmap: Option<VarMap>,
}

/// Loads an HF directory or a `.gguf` file.
pub fn load(
    path: &std::path::Path,
    trainable: bool,
    device: &candle_core::Device,
) -> crate::Result<Loaded> {
    if path.extension().is_some_and(|e| e == "gguf") {
        gguf::load(path, trainable, device)
    } else {
        hf::load(path, trainable, device)
    }
}
