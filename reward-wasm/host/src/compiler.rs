//! From bytes to a compiled [`Component`], within budgets.
//!
//! The order is cheapest first: the shape check ([`crate::precheck`], done by
//! [`crate::Host::load`] before it even hashes the bytes), then the on-disk cache ([`crate::cache`]), and only then Cranelift — in this process
//! ([`Isolation::InProcess`]) or in a child ([`Isolation::Subprocess`]) whose
//! memory and time are capped, so a module that needs too much of either is
//! stopped without the caller's process paying for it.
//!
//! # The subprocess protocol
//! The parent runs `program args... --memory-bytes N`, writes the module's bytes
//! to the child's stdin and closes it. The child ([`serve`]) caps its own data
//! segment at N bytes (`RLIMIT_DATA`) before reading, compiles with an engine
//! configured exactly like the parent's, and answers:
//! - exit 0, the serialized component on stdout;
//! - exit 2, `reason` on stderr: the module is invalid;
//! - exit 3: it ran out of memory (an allocation that failed cleanly); an
//!   allocation that aborts shows up as SIGABRT with Rust's "memory allocation
//!   of N bytes failed" on stderr, and counts the same;
//! - anything else: the compiler failed (the parent reports stderr's tail).
//!
//! The parent kills the child at the wall-clock budget.

use std::borrow::Cow;
use std::io::{Read, Write};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use wait_timeout::ChildExt;
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::config::{HostConfig, Isolation};
use crate::error::{Error, Result};
use crate::host::{Inner, engine_config};

/// Exit status of [`serve`] for an invalid module.
const EXIT_INVALID: u8 = 2;
/// Exit status of [`serve`] when an allocation failed.
const EXIT_MEMORY: u8 = 3;
/// The most of a child's stderr kept for messages.
const MAX_STDERR: usize = 16 << 10;

/// Compiles `bytes` (a component, or a core module to componentize) with the
/// host's engine, within [`crate::CompileConfig`]'s limits and cache.
pub(crate) fn compile(inner: &Inner, bytes: &[u8], sha256: &[u8; 32]) -> Result<Component> {
    let config = &inner.config.compile;
    wasm_kind(bytes)?;
    if let Some(component) = inner
        .disk_cache
        .as_ref()
        .and_then(|cache| cache.get(&inner.engine, sha256, &inner.stats))
    {
        return Ok(component);
    }
    let (component, artifact) = match &config.isolation {
        Isolation::InProcess => {
            let component = compile_here(&inner.engine, bytes)?;
            (component, None)
        }
        Isolation::Subprocess { program, args } => {
            let artifact =
                compile_in_child(program, args, bytes, config.timeout, config.memory_bytes)?;
            (deserialize_own(&inner.engine, &artifact)?, Some(artifact))
        }
    };
    inner
        .stats
        .compiled
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if let Some(cache) = &inner.disk_cache {
        let artifact = match artifact {
            Some(artifact) => artifact,
            None => component
                .serialize()
                .map_err(|e| Error::Runtime(Box::new(e)))?,
        };
        // A cache that cannot be written costs a recompilation after a restart,
        // not this load.
        let _ = cache.put(sha256, &artifact);
    }
    Ok(component)
}

/// Componentizes (when needed) and compiles in the calling thread.
fn compile_here(engine: &Engine, bytes: &[u8]) -> Result<Component> {
    let component_bytes = match wasm_kind(bytes)? {
        WasmKind::Component => Cow::Borrowed(bytes),
        WasmKind::Core => Cow::Owned(componentize(engine, bytes)?),
    };
    Component::new(engine, &*component_bytes).map_err(|e| Error::InvalidModule {
        reason: format!("{e:#}"),
    })
}

/// Turns compiled code this host produced (in a child running the same binary,
/// or read back from its own cache after the integrity check) into a component.
pub(crate) fn deserialize_own(engine: &Engine, artifact: &[u8]) -> Result<Component> {
    #[allow(
        unsafe_code,
        reason = "wasmtime trusts serialized code to be its own output; these bytes are: \
                  produced by this binary's wasmtime in a child process, or read from this \
                  host's cache after their SHA-256 matched what was written"
    )]
    // SAFETY: see the reason above; wasmtime additionally checks that the bytes
    // were made by a compatible engine and refuses them otherwise.
    let component = unsafe { Component::deserialize(engine, artifact) };
    component.map_err(|e| Error::Compiler {
        reason: format!("cannot load the compiled code: {e:#}"),
    })
}

/// Runs the compile subprocess and collects its artifact.
fn compile_in_child(
    program: &std::path::Path,
    args: &[String],
    bytes: &[u8],
    timeout: Duration,
    memory_bytes: u64,
) -> Result<Vec<u8>> {
    let failed = |reason: String| Error::Compiler { reason };
    let mut child = Command::new(program)
        .args(args)
        .arg("--memory-bytes")
        .arg(memory_bytes.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(format!("cannot start {}: {e}", program.display())))?;
    let (mut stdin, mut stdout, mut stderr) = (
        child.stdin.take().expect("piped"),
        child.stdout.take().expect("piped"),
        child.stderr.take().expect("piped"),
    );
    // Three pipes, each on its own thread: a child blocked writing one pipe while
    // the parent waits on another would deadlock.
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || stdin.write_all(bytes));
        let reader = scope.spawn(move || {
            let mut out = Vec::new();
            stdout.read_to_end(&mut out).map(|_| out)
        });
        let errors = scope.spawn(move || {
            let mut text = Vec::new();
            let _ = (&mut stderr)
                .take(MAX_STDERR as u64 * 4)
                .read_to_end(&mut text);
            // Drain the rest unread: a child blocked writing a full stderr pipe
            // would otherwise sit there until the wall-clock budget kills it.
            let _ = std::io::copy(&mut stderr, &mut std::io::sink());
            String::from_utf8_lossy(&text).into_owned()
        });
        let status = match child.wait_timeout(timeout) {
            Ok(Some(status)) => Ok(status),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(Error::CompileTimeout { limit: timeout })
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(failed(format!("cannot wait for the compiler: {e}")))
            }
        };
        // A child that exits early (an invalid module) closes stdin under the
        // writer: that broken pipe is not the error to report.
        let _ = writer.join();
        let artifact = reader.join().expect("reader thread");
        let stderr = errors.join().expect("stderr thread");
        let status = status?;
        let last_words = || tail(stderr.trim());
        if status.success() {
            return artifact.map_err(|e| failed(format!("cannot read the compiled code: {e}")));
        }
        if status.code() == Some(i32::from(EXIT_INVALID)) {
            return Err(Error::InvalidModule {
                reason: stderr.trim().to_string(),
            });
        }
        if status.code() == Some(i32::from(EXIT_MEMORY)) || stderr.contains("memory allocation of")
        {
            return Err(Error::CompileMemory {
                limit_mib: memory_bytes >> 20,
            });
        }
        Err(failed(format!(
            "the compiler exited with {status}: {}",
            last_words()
        )))
    })
}

/// The end of a long message, on a character boundary.
fn tail(text: &str) -> &str {
    let mut start = text.len().saturating_sub(MAX_STDERR);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// The child side of [`Isolation::Subprocess`]: caps this process's memory,
/// reads a module from `input`, compiles it and writes the serialized component
/// to `output`. Call it from a `main` (the evaluator's hidden `compile-module`
/// subcommand does) and exit with what it returns.
pub fn serve(mut input: impl Read, mut output: impl Write, memory_bytes: u64) -> ExitCode {
    if let Err(e) = rlimit::setrlimit(rlimit::Resource::DATA, memory_bytes, memory_bytes) {
        eprintln!("cannot cap the compiler's memory at {memory_bytes} bytes: {e}");
        return ExitCode::FAILURE;
    }
    let mut bytes = Vec::new();
    if let Err(e) = input.read_to_end(&mut bytes) {
        eprintln!("cannot read the module: {e}");
        return ExitCode::FAILURE;
    }
    let engine = match Engine::new(&engine_config(&HostConfig::default(), None)) {
        Ok(engine) => engine,
        Err(e) => return out_of_memory_or(format!("cannot create the engine: {e:#}")),
    };
    let compiled = compile_here(&engine, &bytes).and_then(|component| {
        component
            .serialize()
            .map_err(|e| Error::Runtime(Box::new(e)))
    });
    match compiled {
        Ok(artifact) => match output.write_all(&artifact).and_then(|()| output.flush()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cannot write the compiled code: {e}");
                ExitCode::FAILURE
            }
        },
        Err(Error::InvalidModule { reason }) => {
            eprintln!("{reason}");
            ExitCode::from(EXIT_INVALID)
        }
        Err(e) => out_of_memory_or(e.to_string()),
    }
}

/// Exit 3 when `message` is an allocation failure (`ENOMEM` from an mmap that
/// hit the cap), 1 with the message otherwise.
fn out_of_memory_or(message: String) -> ExitCode {
    eprintln!("{message}");
    if message.contains("os error 12") || message.to_lowercase().contains("out of memory") {
        ExitCode::from(EXIT_MEMORY)
    } else {
        ExitCode::FAILURE
    }
}

enum WasmKind {
    Core,
    Component,
}

fn wasm_kind(bytes: &[u8]) -> Result<WasmKind> {
    let invalid = |reason: &str| Error::InvalidModule {
        reason: reason.to_string(),
    };
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(invalid(
            "not a WebAssembly binary (missing the \\0asm header)",
        ));
    }
    match bytes[4..8] {
        [1, 0, 0, 0] => Ok(WasmKind::Core),
        [0x0d, 0, 1, 0] => Ok(WasmKind::Component),
        _ => Err(invalid("unsupported WebAssembly version or layer")),
    }
}

fn componentize(engine: &Engine, core: &[u8]) -> Result<Vec<u8>> {
    // wit-component assumes a valid module and can panic on a malformed one, so
    // wasmtime validates first; catch_unwind is the backstop for whatever slips past.
    wasmtime::Module::validate(engine, core).map_err(|e| Error::InvalidModule {
        reason: format!("{e:#}"),
    })?;
    let encoded = std::panic::catch_unwind(|| {
        wit_component::ComponentEncoder::default()
            .module(core)
            .and_then(|encoder| encoder.validate(true).encode())
    })
    .map_err(|_| Error::InvalidModule {
        reason: "core module could not be componentized (the encoder rejected its layout)".into(),
    })?;
    encoded.map_err(|e| Error::InvalidModule {
        reason: format!(
            "core module cannot be turned into a reward:wasm component (build it with wit-bindgen \
                 against reward-wasm/wit, importing nothing): {e:#}"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_wasm_bytes_are_refused_before_compilation() {
        assert!(matches!(
            wasm_kind(b"garbage!"),
            Err(Error::InvalidModule { .. })
        ));
        assert!(matches!(
            wasm_kind(b"\0asm"),
            Err(Error::InvalidModule { .. })
        ));
        assert!(matches!(
            wasm_kind(b"\0asm\x02\0\0\0"),
            Err(Error::InvalidModule { .. })
        ));
    }
}
