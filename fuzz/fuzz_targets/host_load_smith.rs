//! `Host::load` on modules wasm-smith builds from the fuzzer's bytes, which are
//! valid wasm by construction and so get past validation into componentization,
//! compilation and `info()`, where raw bytes rarely reach.
//!
//! The first byte picks the shape:
//! - 0: any core module wasm-smith makes (its exports are arbitrary);
//! - 1–3: a core module with exactly the exports of the `scorer`,
//!   `scorer-packed` or `judge` world (names and signatures; random bodies)
//!   and that world's `component-type` section, as wit-bindgen emits: it
//!   componentizes, and `info()` then runs wasm-smith's code;
//! - 4–6: the same without the section, which the host must refuse.

#![no_main]

use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use wit_component::StringEncoding;
use wit_parser::{LiftLowerAbi, ManglingAndAbi, Resolve, WorldId};

const WORLDS: [&str; 3] = ["scorer", "scorer-packed", "judge"];

/// The contract and, per world, the core module wit-bindgen would export.
struct Worlds {
    resolve: Resolve,
    ids: Vec<WorldId>,
    templates: Vec<Vec<u8>>,
}

fn worlds() -> &'static Worlds {
    static WORLDS_: OnceLock<Worlds> = OnceLock::new();
    WORLDS_.get_or_init(|| {
        let mut resolve = Resolve::default();
        let package = resolve
            .push_str(
                "reward.wit",
                include_str!("../../reward-wasm/wit/reward.wit"),
            )
            .expect("the contract parses");
        let ids: Vec<WorldId> = WORLDS
            .iter()
            .map(|w| {
                resolve
                    .select_world(&[package], Some(w))
                    .expect("world exists")
            })
            .collect();
        let templates = ids
            .iter()
            .map(|&id| {
                wit_component::dummy_module(
                    &resolve,
                    id,
                    ManglingAndAbi::Legacy(LiftLowerAbi::Sync),
                )
            })
            .collect();
        Worlds {
            resolve,
            ids,
            templates,
        }
    })
}

fn module(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let shape = u.int_in_range(0..=6u8)?;
    let mut config: wasm_smith::Config = u.arbitrary()?;
    // Proposals this engine is built without (wasmtime's `gc` and `threads`
    // features are off, relaxed SIMD is refused for determinism): modules
    // using them fail validation at once and teach the fuzzer nothing.
    config.gc_enabled = false;
    config.exceptions_enabled = false;
    config.threads_enabled = false;
    config.shared_everything_threads_enabled = false;
    config.relaxed_simd_enabled = false;
    config.custom_page_sizes_enabled = false;
    config.max_imports = 0;
    // A smaller module compiles in milliseconds, so more of them run.
    config.max_funcs = config.max_funcs.min(20);
    config.max_instructions = config.max_instructions.min(200);
    config.max_memories = config.max_memories.min(1);
    let world = shape.checked_sub(1).map(|s| s as usize % WORLDS.len());
    if let Some(world) = world {
        config.exports = Some(worlds().templates[world].clone());
    }
    let mut bytes = wasm_smith::Module::new(config, u)?.to_bytes();
    if let Some(world) = world.filter(|_| shape <= 3) {
        let w = worlds();
        wit_component::embed_component_metadata(
            &mut bytes,
            &w.resolve,
            w.ids[world],
            StringEncoding::UTF8,
        )
        .expect("metadata of a parsed world encodes");
    }
    Ok(bytes)
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    if let Ok(bytes) = module(&mut u) {
        multi_reward_fuzz::load_and_call(&bytes);
    }
});
