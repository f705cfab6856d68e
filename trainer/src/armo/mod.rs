//! `trainer armo`: ArmoRM, multi-objective reward modelling with a mixture of experts
//! (shared/docs/methods.md, section 4), on a frozen backbone.
//!
//! The pipeline, one subcommand per stage, each writing into one run directory:
//! 1. [`embed`]: last-token final hidden states of a backbone (HF directory or GGUF) over
//!    prompt + response, in resumable safetensors shards; pairs get both responses and the
//!    prompt's own embedding (the gate's input).
//! 2. [`ridge`] (`fit-probes`): one ridge regression per attribute without intercept,
//!    α by validation MSE on a seeded 80/20 split, refitted; `W` `(attributes, d)` in
//!    `probes.safetensors`. Pinned to scikit-learn's `Ridge(fit_intercept=False)`.
//! 3. [`debias`] (`debias`): per attribute j ≠ verbosity, the smallest λ_j of ArmoRM's grid
//!    with Spearman(r_j − λ_j·r_v, r_v) ≤ 0.03, else 1; in `debias.json`. Spearman pinned to
//!    `scipy.stats.spearmanr`.
//! 4. [`gate`] (`fit-gating`): the gating MLP (ReLU, dropout, softmax(z/T)·s) over the
//!    prompt embedding, score = Σ_k g_k·r̃_k of the debiased rewards, trained with the
//!    Bradley–Terry loss and AdamW under a cosine decay; `gating.safetensors`. Its forward
//!    pass, loss and gradients are pinned to a torch transcription of the upstream module.
//! 5. [`model`] (`score`, and `armo:RUN_DIR[#ATTRIBUTE]` in `[[reward]]` tables): all of it
//!    as one scorer, one forward pass of the backbone per sample.
//!
//! 6. [`baseline`] (`fit-baseline`): what the gated model is compared with, a plain
//!    Bradley–Terry linear head on the same embeddings at the same budget.
//!
//! [`fit`] holds the stages over embeddings and the run directory's files; [`cli`] the
//! command line. `label` (in [`cli`]) turns `[[reward]]` tables into attribute labels, so
//! the trainer's own reward modules can serve as the attributes.
//!
//! The references are `trainer/reference/armo_reference.py` (scikit-learn, scipy, torch),
//! whose `trainer/reference/data/armo/cases.json` `trainer/tests/armo_reference.rs` replays.

pub mod baseline;
pub mod cli;
pub mod debias;
pub mod embed;
pub mod fit;
pub mod gate;
pub mod model;
pub mod ridge;

pub use model::{ArmoModel, ArmoScore, ArmoSource};
