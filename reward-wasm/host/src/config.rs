//! Engine-wide settings ([`HostConfig`]) and per-call bounds ([`Limits`]).

use std::time::Duration;

/// Bounds on one call into a module (one `score` batch, one `compare`, or `info`).
///
/// Every call gets a fresh store, so these bound the whole call, instantiation
/// included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock deadline. Enforced by epoch interruption, so the cut-off is
    /// accurate to [`HostConfig::epoch_tick`].
    pub timeout: Duration,
    /// Deterministic budget in wasmtime fuel units (roughly one per wasm
    /// instruction): the same input always runs out at the same point.
    pub fuel: u64,
    /// Cap on the guest's linear memory, in bytes.
    pub memory_bytes: usize,
    /// Cap on the elements of any table (function pointers).
    pub table_elements: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(10),
            // About 10 s of straight-line wasm on this machine: the timeout is the
            // usual cut-off, fuel the reproducible one.
            fuel: 20_000_000_000,
            memory_bytes: 256 << 20,
            table_elements: 100_000,
        }
    }
}

/// Settings fixed for the lifetime of a [`crate::Host`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostConfig {
    /// Limits applied when a call does not name its own.
    pub default_limits: Limits,
    /// The largest `memory_bytes` any call may ask for; sizes the pooling
    /// allocator's slots.
    pub max_memory_bytes: usize,
    /// Wasm stack budget. The host thread needs this much plus headroom: calls
    /// from threads with the default 2 MiB stack are safe at 1 MiB.
    pub max_wasm_stack: usize,
    /// Instances that may be live at once when the pooling allocator is used;
    /// 0 disables pooling (for machines that cannot reserve the address space).
    pub pool_slots: u32,
    /// Bytes of each pool slot's memory (and tables) reset with `memset` and kept
    /// resident between calls, rather than returned to the kernel and faulted
    /// back in. Costs up to this much resident memory per slot used; 4 MiB
    /// covers a Rust guest's 1 MiB stack plus a typical batch's heap.
    pub pool_keep_resident: usize,
    /// How often the epoch advances; the timeout granularity.
    pub epoch_tick: Duration,
    /// Compiled modules kept in memory, keyed by SHA-256 of their bytes.
    pub cache_entries: usize,
    /// Call `score-packed` instead of `score` when a module exports it (every
    /// SDK-built scorer does). Off only to compare the two paths.
    pub use_packed: bool,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            default_limits: Limits::default(),
            max_memory_bytes: 1 << 30,
            max_wasm_stack: 1 << 20,
            pool_slots: 64,
            pool_keep_resident: 4 << 20,
            epoch_tick: Duration::from_millis(10),
            cache_entries: 64,
            use_packed: true,
        }
    }
}
