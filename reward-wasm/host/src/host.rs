//! [`Host`]: one wasmtime engine configured for untrusted, deterministic guests,
//! the thread that drives its deadlines, and the caches of compiled modules (in
//! memory, and on disk when [`crate::CompileConfig::cache_dir`] is set).

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use sha2::{Digest, Sha256};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::cache::DiskCache;
use crate::config::{HostConfig, Limits};
use crate::error::{Error, Result};
use crate::module::RewardModule;

/// Runs reward modules under hard limits. Cheap to share: wrap it in an `Arc` (or
/// clone the `Arc`s inside) and call from any thread.
pub struct Host {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) engine: Engine,
    pub(crate) config: HostConfig,
    /// Compiled modules by SHA-256 of the bytes given to [`Host::load`], oldest
    /// first in `order` so the cache stays bounded.
    cache: Mutex<Cache>,
    /// Compiled code that outlives the process, if configured.
    pub(crate) disk_cache: Option<DiskCache>,
    pub(crate) stats: Stats,
    /// Tells the epoch ticker to stop when the host is dropped.
    stop: Arc<AtomicBool>,
}

/// Counters behind [`Host::compile_stats`].
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) compiled: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
    pub(crate) cache_rejected: AtomicU64,
}

/// How this host's modules came to be compiled, since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompileStats {
    /// Modules compiled by Cranelift (here or in a subprocess).
    pub compiled: u64,
    /// Modules deserialized from the on-disk cache.
    pub cache_hits: u64,
    /// Cache entries found damaged or foreign, removed and rebuilt.
    pub cache_rejected: u64,
}

#[derive(Default)]
struct Cache {
    modules: HashMap<[u8; 32], Arc<RewardModule>>,
    order: VecDeque<[u8; 32]>,
}

impl Host {
    /// Builds the engine. Uses the pooling allocator when `pool_slots > 0` and the
    /// machine can reserve its address space, and falls back to on-demand
    /// allocation otherwise.
    pub fn new(config: HostConfig) -> Result<Self> {
        validate_limits(&config, &config.default_limits)?;
        if config.epoch_tick.is_zero() {
            return Err(Error::Config {
                reason: "epoch_tick must be positive".into(),
            });
        }
        let engine = match config.pool_slots {
            0 => Engine::new(&engine_config(&config, None)),
            slots => Engine::new(&engine_config(&config, Some(slots)))
                // Pooling reserves several GiB of address space per slot up front;
                // under a tight `ulimit -v` that fails, and on-demand still works.
                .or_else(|_| Engine::new(&engine_config(&config, None))),
        }
        .map_err(|e| Error::Config {
            reason: format!("cannot create the wasm engine: {e:#}"),
        })?;
        let disk_cache = match &config.compile.cache_dir {
            Some(dir) => Some(DiskCache::open(dir, &engine)?),
            None => None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        spawn_ticker(engine.clone(), config.epoch_tick, stop.clone())?;
        Ok(Host {
            inner: Arc::new(Inner {
                engine,
                config,
                cache: Mutex::new(Cache::default()),
                disk_cache,
                stats: Stats::default(),
                stop,
            }),
        })
    }

    /// The settings this host was built with.
    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    /// Validates, compiles and pre-links a module (or returns the cached one with
    /// the same SHA-256), then asks it for its [`crate::Info`] under the default
    /// limits and checks the answer.
    ///
    /// Accepts a component, or a core module carrying its world in a
    /// `component-type` custom section (what `wit-bindgen` emits). Anything that
    /// imports a function is refused: the reward worlds import nothing. Before
    /// compiling, the module's shape must pass [`crate::CompileLimits`]; the
    /// compilation itself runs as [`crate::CompileConfig`] says.
    pub fn load(&self, bytes: &[u8]) -> Result<Arc<RewardModule>> {
        // First, before hashing: refusing a 30 MB module must cost what reading
        // its section headers costs.
        crate::precheck::check(bytes, &self.inner.config.compile.limits)?;
        let sha256: [u8; 32] = Sha256::digest(bytes).into();
        if let Some(module) = self.lock_cache().modules.get(&sha256) {
            return Ok(module.clone());
        }
        let module = Arc::new(RewardModule::compile(self.inner.clone(), bytes, sha256)?);
        let mut cache = self.lock_cache();
        if cache.modules.insert(sha256, module.clone()).is_none() {
            cache.order.push_back(sha256);
        }
        while cache.order.len() > self.inner.config.cache_entries.max(1) {
            let oldest = cache.order.pop_front().expect("len > 0");
            cache.modules.remove(&oldest);
        }
        Ok(module)
    }

    /// Whether `bytes` would load without compiling: compiled in memory, or an
    /// entry in the on-disk cache (which is checked when it is read). A service
    /// lets such loads skip its compile queue.
    pub fn is_compiled(&self, bytes: &[u8]) -> bool {
        let sha256: [u8; 32] = Sha256::digest(bytes).into();
        self.lock_cache().modules.contains_key(&sha256)
            || self
                .inner
                .disk_cache
                .as_ref()
                .is_some_and(|cache| cache.path(&sha256).is_file())
    }

    /// Compilations and cache use since this host started.
    pub fn compile_stats(&self) -> CompileStats {
        let stats = &self.inner.stats;
        CompileStats {
            compiled: stats.compiled.load(Ordering::Relaxed),
            cache_hits: stats.cache_hits.load(Ordering::Relaxed),
            cache_rejected: stats.cache_rejected.load(Ordering::Relaxed),
        }
    }

    /// The on-disk cache file a module's compiled code is (or would be) kept in.
    pub fn cache_path(&self, bytes: &[u8]) -> Option<std::path::PathBuf> {
        let sha256: [u8; 32] = Sha256::digest(bytes).into();
        self.inner.disk_cache.as_ref().map(|c| c.path(&sha256))
    }

    /// Checks per-call limits against what the engine was sized for.
    pub fn check_limits(&self, limits: &Limits) -> Result<()> {
        validate_limits(&self.inner.config, limits)
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        // A panic while holding this lock cannot leave the map inconsistent (each
        // update is a single insert/remove), so a poisoned lock is still usable.
        self.inner.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub(crate) fn validate_limits(config: &HostConfig, limits: &Limits) -> Result<()> {
    let reason = if limits.timeout.is_zero() {
        "timeout must be positive".to_string()
    } else if limits.fuel == 0 {
        "fuel must be positive".to_string()
    } else if limits.memory_bytes == 0 {
        "memory limit must be positive".to_string()
    } else if limits.memory_bytes > config.max_memory_bytes {
        format!(
            "memory limit {} MiB exceeds this host's maximum of {} MiB",
            limits.memory_bytes >> 20,
            config.max_memory_bytes >> 20
        )
    } else {
        return Ok(());
    };
    Err(Error::Config { reason })
}

/// The engine's settings. The compile subprocess builds its engine with the same
/// function (without the pool, which only concerns instances), so the code it
/// produces deserializes here.
pub(crate) fn engine_config(config: &HostConfig, pool_slots: Option<u32>) -> wasmtime::Config {
    let mut c = wasmtime::Config::new();
    c.wasm_component_model(true)
        // Determinism: identical inputs give identical bits on every machine.
        .cranelift_nan_canonicalization(true)
        .wasm_relaxed_simd(false)
        .relaxed_simd_deterministic(true)
        // (Shared-memory threads are compiled out: the `threads` feature is off.)
        // Bounds: fuel for a reproducible cut-off, epochs for wall-clock time.
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(config.max_wasm_stack)
        // Backtraces name the guest function a trap happened in; that is how a
        // panic is told from other traps.
        .wasm_backtrace_max_frames(NonZeroUsize::new(64));
    if let Some(slots) = pool_slots {
        let mut pool = PoolingAllocationConfig::default();
        // A componentized Rust module instantiates a few core instances (the
        // module itself plus small shim/fixup modules), one memory and one table.
        pool.total_component_instances(slots)
            .total_core_instances(slots * 4)
            .total_memories(slots)
            .total_tables(slots * 2)
            .max_memory_size(config.max_memory_bytes)
            .table_elements(config.default_limits.table_elements.max(10_000))
            // Each call's fresh instance reuses a slot. Reset by madvise, the slot's
            // pages fault back in (zeroed by the kernel) on every call: that was
            // ~45% of a cheap scorer's time. Resetting the first MiBs with memset
            // instead keeps them resident.
            .linear_memory_keep_resident(config.pool_keep_resident)
            .table_keep_resident(config.pool_keep_resident);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    c
}

/// Advances the engine's epoch every `tick` until `stop` is set. Deadlines are
/// counted in ticks, so a guest stuck in a loop traps within one tick of its
/// deadline.
fn spawn_ticker(engine: Engine, tick: std::time::Duration, stop: Arc<AtomicBool>) -> Result<()> {
    thread::Builder::new()
        .name("reward-host-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                thread::sleep(tick);
                engine.increment_epoch();
            }
        })
        .map(|_| ())
        .map_err(|e| Error::Config {
            reason: format!("cannot start the epoch thread: {e}"),
        })
}
