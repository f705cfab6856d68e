//! Readers for the data a run consumes, parsed into domain types at the edge: every
//! malformed record names its file and line, and nothing starts until the whole file reads.
//!
//! - [`mario`]: MaRio's one-object JSON files, read by both of the others.
//! - [`order`]: which examples form batch `k` (seeded, resumable).
//! - [`prompts`]: RL prompts (the evaluator's sample form, chat messages, MaRio's files).
//! - [`pairs`]: preference pairs (prompt/chosen/rejected, chat, hh-rlhf transcripts).
//! - [`rllr`]: RLLR's label- and rationale-sensitive pairs built from MaRio's files.
//! - SFT examples live in [`crate::sft::data`].

pub mod mario;
pub mod order;
pub mod pairs;
pub mod prompts;
pub mod rllr;
