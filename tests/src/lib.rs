//! End-to-end tests that cross crate boundaries; the tests live in `tests/tests/`:
//!
//! - `rl_to_evaluator.rs`: a tiny policy trained with GRPO against built-in reward modules,
//!   its eval generations pushed over HTTP to a real evaluation service on PostgreSQL, scored
//!   there by the same modules, and the service's stored scores compared with the trainer's.
//!
//! The crate has no library code of its own.
