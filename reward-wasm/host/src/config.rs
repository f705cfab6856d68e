//! Engine-wide settings ([`HostConfig`], with how modules are compiled in
//! [`CompileConfig`]) and per-call bounds ([`Limits`]).

use std::path::PathBuf;
use std::time::Duration;

use crate::precheck::CompileLimits;

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
    /// How modules are compiled: shape limits, isolation, budgets and the
    /// on-disk cache of compiled code.
    pub compile: CompileConfig,
}

/// How [`crate::Host::load`] turns bytes into machine code.
///
/// Fuel and epochs bound a module while it runs; nothing in wasmtime bounds
/// Cranelift while it compiles. So a module first passes [`CompileLimits`] (its
/// shape, read in milliseconds), and a service compiles in a child process
/// ([`Isolation::Subprocess`]) under a wall-clock and a memory budget, where a
/// module that needs more is stopped without touching the service's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileConfig {
    /// Shape bounds checked before compiling.
    pub limits: CompileLimits,
    /// Where compilation runs.
    pub isolation: Isolation,
    /// Wall-clock budget of one compilation (enforced in a subprocess only).
    pub timeout: Duration,
    /// Memory budget of one compilation, in bytes: the subprocess's data limit
    /// (`RLIMIT_DATA`: heap and private mappings, not the mapped executable).
    pub memory_bytes: u64,
    /// A directory for compiled code, keyed by the module's SHA-256 and the
    /// engine's configuration, so a restart deserializes instead of compiling.
    /// `None` keeps compiled code in memory only.
    pub cache_dir: Option<PathBuf>,
}

impl Default for CompileConfig {
    fn default() -> Self {
        CompileConfig {
            limits: CompileLimits::default(),
            isolation: Isolation::InProcess,
            timeout: Duration::from_secs(60),
            memory_bytes: 2 << 30,
            cache_dir: None,
        }
    }
}

/// Where a module is compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Isolation {
    /// In the calling thread. No time or memory budget applies (only the shape
    /// limits): for processes that load their own team's modules, like the
    /// trainer.
    InProcess,
    /// In a child process, `program args...`, which must call
    /// [`crate::compiler::serve`] (the evaluator runs itself with a hidden
    /// subcommand). The bytes go in on stdin, the compiled code comes back on
    /// stdout; the child caps its own memory before reading.
    Subprocess {
        /// The executable.
        program: PathBuf,
        /// Its arguments.
        args: Vec<String>,
    },
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
            compile: CompileConfig::default(),
        }
    }
}
