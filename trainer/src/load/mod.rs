//! Checkpoints into models: HF directories, GGUF files, tokenizers.
//!
//! The weights' dtype is chosen here, once, at load time ([`load_as`]): every tensor is
//! converted (GGUF blocks dequantized first) as it is read, so a bf16 model never holds a
//! full f32 copy of its weights and the model code sees one dtype throughout.

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

/// Loads an HF directory or a `.gguf` file with f32 weights.
pub fn load(
    path: &std::path::Path,
    trainable: bool,
    device: &candle_core::Device,
) -> crate::Result<Loaded> {
    load_as(path, trainable, candle_core::DType::F32, device)
}

/// Loads an HF directory or a `.gguf` file with weights in `dtype` (f32 or bf16), trainable
/// weights included.
pub fn load_as(
    path: &std::path::Path,
    trainable: bool,
    dtype: candle_core::DType,
    device: &candle_core::Device,
) -> crate::Result<Loaded> {
    if path.extension().is_some_and(|e| e == "gguf") {
        gguf::load_as(path, trainable, dtype, device)
    } else {
        hf::load_as(path, trainable, dtype, device)
    }
}
