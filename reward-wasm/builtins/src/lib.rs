//! The built-in reward modules, compiled from `reward-wasm/modules` during
//! `cargo build` (see `build.rs`) and embedded as WebAssembly components.
//!
//! They are addressed as `builtin:NAME` by the evaluator and the trainer; their
//! logic lives in `reward-metrics`, so the same functions also run natively.

/// A module embedded in this crate.
#[derive(Debug, Clone, Copy)]
pub struct Embedded {
    /// Its `builtin:` name.
    pub name: &'static str,
    /// Whether it is a public built-in (false for test-only modules).
    pub builtin: bool,
    /// What the host should load: the component for built-ins, the core module
    /// for test modules (some of which cannot be componentized on purpose).
    pub wasm: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/modules.rs"));

#[cfg(feature = "hostile")]
pub mod pad;

/// The public built-in modules, in a stable order.
pub fn builtins() -> impl Iterator<Item = &'static Embedded> {
    EMBEDDED.iter().filter(|m| m.builtin)
}

/// A public built-in by name, with or without the `builtin:` prefix.
pub fn builtin(name: &str) -> Option<&'static Embedded> {
    let name = name.strip_prefix("builtin:").unwrap_or(name);
    builtins().find(|m| m.name == name)
}

/// Misbehaving modules for sandbox tests (feature `hostile`): `hostile` (the misdeed
/// is chosen by the first sample's prompt), `hostile-import-core` (a core module
/// importing `env::read_host_secret`), `hostile-import-func` (a component importing
/// a clock), `first-wins` (a judge that always prefers the first response), and
/// `template`.
#[cfg(feature = "hostile")]
pub fn test_module(name: &str) -> Option<&'static Embedded> {
    EMBEDDED.iter().find(|m| m.name == name)
}
