//! The precision a run trains in: f32, or bf16 mixed precision.

use candle_core::DType;
use serde::{Deserialize, Serialize};

/// The precision a run trains in (`dtype = "f32" | "bf16"`); the module docs of
/// [`crate::sft::train`](mod@crate::sft::train) say what bf16 keeps in f32, and why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Weights, activations and gradients in f32.
    #[default]
    F32,
    /// Mixed precision: weights and activations in bfloat16; loss, norm statistics,
    /// gradient sums, LoRA adapters and the optimizer's master weights and moments in f32.
    Bf16,
}

impl Precision {
    /// The dtype the model's weights and activations are held in.
    pub fn dtype(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::Bf16 => DType::BF16,
        }
    }

    /// The config value (`f32`, `bf16`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
        }
    }
}
