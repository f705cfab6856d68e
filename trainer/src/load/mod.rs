//! Checkpoints into models: HF directories, GGUF files, tokenizers.
//!
//! [`trainable`] is what training commands load: a model with its weights or fresh LoRA
//! adapters as the optimizer's variables.
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

/// A checkpoint made ready to train: all its weights as variables (`lora = None`, full
/// fine-tuning), or frozen weights with fresh adapters.
pub struct Trainable {
    /// The model.
    pub model: CausalLm,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// The variables the optimizer updates, by name.
    pub vars: Vec<(String, candle_core::Var)>,
    /// The adapters' config and variables (LoRA).
    pub lora: Option<(crate::lora::LoraConfig, VarMap)>,
    /// The model's own variables (full fine-tuning).
    pub full: Option<VarMap>,
}

/// Loads `path` in `dtype` for training: with `lora`, the weights frozen and adapters
/// attached; without, every weight trainable.
pub fn trainable(
    path: &std::path::Path,
    lora: Option<crate::lora::LoraConfig>,
    dtype: candle_core::DType,
    device: &candle_core::Device,
) -> crate::Result<Trainable> {
    let loaded = load_as(path, lora.is_none(), dtype, device)?;
    let tokenizer = loaded
        .tokenizer
        .ok_or_else(|| crate::Error::checkpoint(path, "no tokenizer"))?;
    let mut model = loaded.model;
    let (vm, lora, full) = match lora {
        None => {
            let vm = loaded.varmap.ok_or_else(|| {
                crate::Error::InvalidArgument("full fine-tuning needs trainable weights".into())
            })?;
            (vm.clone(), None, Some(vm))
        }
        Some(lc) => {
            let vm = VarMap::new();
            crate::lora::attach(&mut model, &lc, &vm)?;
            (vm.clone(), Some((lc, vm)), None)
        }
    };
    let vars = vm
        .data()
        .lock()
        .map_err(|_| crate::Error::InvalidArgument("poisoned VarMap".into()))?
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Trainable {
        model,
        tokenizer,
        vars,
        lora,
        full,
    })
}
