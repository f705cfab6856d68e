//! What the fuzz targets share: the error checks every parser's errors must
//! pass, and, for the sandbox targets, one small-limit [`Host`] per process and
//! a panic hook that tells panics the host's backstop catches (reported, not a
//! failure) from panics that escape `Host::load` (a failure).
//!
//! The targets are in `fuzz_targets/`; `scripts/fuzz` runs them, and the README's
//! "Fuzzing" section says what they assert and what they found.

use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use reward_host::{Host, HostConfig, Kind, Limits, RewardModule, Sample};

/// Limits for one call: a fuzz input must not run for seconds or reserve the
/// production default of 256 MiB.
pub const LIMITS: Limits = Limits {
    timeout: Duration::from_secs(2),
    // About 50 ms of straight-line wasm; the built-ins' info() and a one-sample
    // score take a small fraction of that.
    fuel: 100_000_000,
    memory_bytes: 32 << 20,
    table_elements: 10_000,
};

/// The process's host: built once, since an engine and its epoch thread cost
/// milliseconds, which would dominate every execution.
pub fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        install_panic_hook();
        Host::new(HostConfig {
            default_limits: LIMITS,
            max_memory_bytes: 64 << 20,
            // No pool: the pooling allocator reserves address space per slot up
            // front, which libFuzzer's RSS accounting and a 2-core box do not need.
            pool_slots: 0,
            // `load` caches by SHA-256; a small cache keeps compiled code from
            // piling up over millions of distinct inputs.
            cache_entries: 4,
            ..HostConfig::default()
        })
        .expect("the fuzz host's configuration is valid")
    })
}

/// The message of the last panic inside [`guarded`], recorded by the hook.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);
/// Whether a [`guarded`] call is running (the targets are single-threaded; a
/// panic on wasmtime's compilation threads reaches the caller through rayon).
static GUARDED: AtomicBool = AtomicBool::new(false);

/// Wraps libfuzzer-sys's abort-on-any-panic hook: `Host::load` catches a panic
/// of wit-component on purpose (`catch_unwind` in `componentize`), and that
/// must not count as a crash. Inside [`guarded`] a panic is only recorded
/// (one that escapes is fatal there); anywhere else libfuzzer-sys's hook
/// prints it and aborts, as before.
fn install_panic_hook() {
    let fatal = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if GUARDED.load(Ordering::SeqCst) {
            let mut last = LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner());
            *last = Some(info.to_string());
        } else {
            fatal(info);
        }
    }));
}

/// Runs `f`; a panic that escapes it aborts the process with its message (a
/// finding), while a panic caught inside it is reported once per distinct
/// message on stderr.
pub fn guarded<R>(what: &str, f: impl FnOnce() -> R) -> R {
    let take = || LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()).take();
    take();
    GUARDED.store(true, Ordering::SeqCst);
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    GUARDED.store(false, Ordering::SeqCst);
    match result {
        Ok(result) => {
            if let Some(message) = take() {
                static SEEN: Mutex<Option<HashSet<String>>> = Mutex::new(None);
                let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
                if seen
                    .get_or_insert_with(HashSet::new)
                    .insert(message.clone())
                {
                    eprintln!("fuzz: {what}: a panic was caught inside (not a failure): {message}");
                }
            }
            result
        }
        Err(_) => {
            eprintln!(
                "fuzz: {what} panicked: {}",
                take().unwrap_or_else(|| "(no message)".into())
            );
            std::process::abort();
        }
    }
}

/// Loads `bytes` and checks what a load promises: an error says why; a module
/// has a kind and valid info, and one small call either works within the
/// output contract or fails with a typed error.
pub fn load_and_call(bytes: &[u8]) {
    let host = host();
    let loaded = guarded("Host::load", || host.load(bytes));
    match loaded {
        Err(e) => assert!(
            !e.to_string().is_empty(),
            "an error without a message: {e:?}"
        ),
        Ok(module) => {
            check_info(&module);
            guarded("a call into a loaded module", || call(&module));
        }
    }
}

fn check_info(module: &RewardModule) {
    let info = module.info();
    assert!(!info.name.trim().is_empty(), "{info:?}");
    if module.kind() == Kind::Scorer {
        assert!(
            !info.metrics.is_empty(),
            "a scorer without metrics: {info:?}"
        );
    }
}

fn call(module: &RewardModule) {
    let sample = Sample::new("Is it?", "It is. So the answer is yes.")
        .with_reference("yes")
        .with_field("max_words", "20");
    match module.kind() {
        Kind::Scorer => match module.score_with(std::slice::from_ref(&sample), &LIMITS) {
            Ok(rows) => {
                assert_eq!(rows.len(), 1);
                assert_eq!(rows[0].len(), module.info().metrics.len());
                assert!(rows[0].iter().flatten().all(|v| v.is_finite()), "{rows:?}");
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        },
        Kind::Judge => {
            let other = Sample::new("Is it?", "No.");
            match module.compare_batch(&[(&sample, &other)], &LIMITS) {
                Ok(verdicts) => assert_eq!(verdicts.len(), 1),
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
    }
}

/// The lines a 1-based line number may name in `body`: a file's last line
/// may lack its newline, and an error at the end of the input names the line
/// after the last newline.
pub fn line_in(body: &str, line: usize) -> bool {
    (1..=body.bytes().filter(|&b| b == b'\n').count() + 1).contains(&line)
}
