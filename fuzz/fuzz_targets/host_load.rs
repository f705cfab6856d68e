//! `Host::load` on any bytes: the magic check, componentization of core
//! modules (wit-component), wasmtime's validation and compilation, the import
//! and export checks, `info()`; then one small call into whatever loaded.
//! Seeded with the built-in components and their core modules.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| multi_reward_fuzz::load_and_call(data));
