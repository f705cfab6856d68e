//! Compile-time limits (issue 22): the shape check refuses hostile modules by
//! name before anything compiles, the compile subprocess holds a module to its
//! memory and time budgets, and the on-disk cache survives a restart and
//! rebuilds a damaged or foreign entry.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use reward_builtins::pad::{Padding, pad};
use reward_builtins::{builtins, test_module};
use reward_host::precheck::check;
use reward_host::{
    CompileConfig, CompileLimits, Error, Host, HostConfig, Isolation, Kind, Sample, Shape,
};

/// The template scorer (a core module), padded.
fn padded(padding: Padding) -> Vec<u8> {
    pad(test_module("template").unwrap().wasm, &padding)
}

fn host_with(compile: CompileConfig) -> Host {
    Host::new(HostConfig {
        compile,
        ..HostConfig::default()
    })
    .unwrap()
}

fn subprocess() -> Isolation {
    Isolation::Subprocess {
        program: PathBuf::from(env!("CARGO_BIN_EXE_reward-compile")),
        args: Vec::new(),
    }
}

fn scores(host: &Host, wasm: &[u8]) -> Vec<Option<f64>> {
    let module = host.load(wasm).unwrap();
    module
        .score(&[Sample::new("Q?", "An answer. So the answer is yes.")])
        .unwrap()
        .remove(0)
}

#[test]
fn builtins_fit_the_default_limits_with_room_to_spare() {
    let limits = CompileLimits::default();
    let mut largest = Shape::default();
    for module in builtins() {
        let shape = check(module.wasm, &limits).unwrap();
        largest.functions = largest.functions.max(shape.functions);
        largest.code_bytes = largest.code_bytes.max(shape.code_bytes);
        largest.largest_function_bytes = largest
            .largest_function_bytes
            .max(shape.largest_function_bytes);
        largest.most_locals = largest.most_locals.max(shape.most_locals);
        largest.deepest_blocks = largest.deepest_blocks.max(shape.deepest_blocks);
        largest.imports = largest.imports.max(shape.imports);
        largest.modules = largest.modules.max(shape.modules);
    }
    println!("largest built-in figures: {largest:?}");
    // Room for modules with real dependencies: ten times the built-ins at least.
    assert!(
        limits.max_functions >= 10 * largest.functions,
        "{largest:?}"
    );
    assert!(
        limits.max_code_bytes >= 10 * largest.code_bytes,
        "{largest:?}"
    );
    assert!(limits.max_function_bytes >= 10 * largest.largest_function_bytes);
    assert!(limits.max_locals >= 10 * largest.most_locals);
    assert!(limits.max_block_depth >= 10 * largest.deepest_blocks);
    assert!(limits.max_imports >= 10 * largest.imports);
    assert!(limits.max_modules >= 10 * largest.modules);
}

#[test]
fn hostile_shapes_are_refused_by_name_before_compiling() {
    let host = Host::new(HostConfig::default()).unwrap();
    let limits = CompileLimits::default();
    let cases = [
        // The module of the issue: a real scorer with 200,000 small functions.
        (
            Padding {
                functions: 200_000,
                body_bytes: 112,
                ..Padding::default()
            },
            "functions",
            limits.max_functions,
        ),
        (
            Padding {
                functions: 1,
                body_bytes: 2 << 20,
                ..Padding::default()
            },
            "bytes in one function",
            limits.max_function_bytes,
        ),
        (
            Padding {
                functions: 1,
                body_bytes: 10,
                locals: 100_000,
                ..Padding::default()
            },
            "locals in one function",
            limits.max_locals,
        ),
        (
            Padding {
                functions: 1,
                body_bytes: 10,
                nesting: 50_000,
                ..Padding::default()
            },
            "nested blocks in one function",
            limits.max_block_depth,
        ),
        (
            Padding {
                functions: 9_000,
                body_bytes: 2_000,
                ..Padding::default()
            },
            "bytes of code",
            limits.max_code_bytes,
        ),
    ];
    for (padding, what, limit) in cases {
        let wasm = padded(padding);
        let started = Instant::now();
        let error = host.load(&wasm).unwrap_err();
        let took = started.elapsed();
        match &error {
            Error::TooLarge {
                what: named,
                value,
                limit: applied,
            } => {
                assert_eq!(*named, what, "{padding:?}");
                assert_eq!(*applied, limit);
                assert!(value > applied);
            }
            other => panic!("{padding:?}: expected too large, got {other:?}"),
        }
        assert_eq!(error.code(), "module_too_large");
        assert!(error.is_module_fault());
        assert!(error.to_string().contains(what), "{error}");
        // Read, not compiled: milliseconds, where compiling took seconds.
        assert!(
            took < Duration::from_secs(1),
            "{what}: {took:?} for {} bytes",
            wasm.len()
        );
    }
    assert_eq!(
        host.compile_stats().compiled,
        0,
        "nothing reached the compiler"
    );
}

#[test]
fn a_padded_module_within_the_limits_still_scores() {
    let host = Host::new(HostConfig::default()).unwrap();
    let plain = scores(&host, test_module("template").unwrap().wasm);
    let wasm = padded(Padding {
        functions: 50,
        body_bytes: 600,
        locals: 3,
        nesting: 4,
        seed: 7,
    });
    assert_eq!(scores(&host, &wasm), plain);
}

#[test]
fn limits_are_configurable() {
    let host = host_with(CompileConfig {
        limits: CompileLimits {
            max_functions: 10,
            ..CompileLimits::default()
        },
        ..CompileConfig::default()
    });
    let wasm = padded(Padding {
        functions: 100,
        body_bytes: 10,
        ..Padding::default()
    });
    let error = host.load(&wasm).unwrap_err();
    assert!(
        error.to_string().contains("over the limit of 10"),
        "{error}"
    );
}

#[test]
fn the_subprocess_compiles_what_this_engine_runs() {
    // The child builds its engine without the pooling allocator; the code it
    // produces must load in this pooled engine and score the same.
    let isolated = host_with(CompileConfig {
        isolation: subprocess(),
        ..CompileConfig::default()
    });
    let local = Host::new(HostConfig::default()).unwrap();
    // The scorers: a judge has no `score` to compare.
    let scorers = builtins().filter(|m| local.load(m.wasm).unwrap().kind() == Kind::Scorer);
    for module in scorers {
        assert_eq!(
            scores(&isolated, module.wasm),
            scores(&local, module.wasm),
            "{}",
            module.name
        );
    }
    // A core module is componentized in the child too.
    let template = test_module("template").unwrap().wasm;
    assert_eq!(scores(&isolated, template), scores(&local, template));
    assert_eq!(
        isolated.compile_stats().compiled,
        9,
        "eight scorers (two of them span scorers) and the template"
    );
}

#[test]
fn the_subprocess_reports_an_invalid_module_as_such() {
    let isolated = host_with(CompileConfig {
        isolation: subprocess(),
        ..CompileConfig::default()
    });
    // Valid magic and version, then garbage: the child's validator refuses it.
    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    wasm.extend_from_slice(&[0x01, 0x05, 0xff, 0xff, 0xff, 0xff, 0xff]);
    let error = isolated.load(&wasm).unwrap_err();
    assert_eq!(error.code(), "invalid_module", "{error}");
    // A forbidden import is still found after compiling in the child.
    let error = isolated
        .load(test_module("hostile-import-func").unwrap().wasm)
        .unwrap_err();
    assert_eq!(error.code(), "forbidden_import", "{error}");
}

#[test]
fn a_compilation_over_its_memory_budget_is_stopped() {
    let isolated = host_with(CompileConfig {
        isolation: subprocess(),
        memory_bytes: 8 << 20,
        ..CompileConfig::default()
    });
    let error = isolated
        .load(test_module("template").unwrap().wasm)
        .unwrap_err();
    assert!(
        matches!(error, Error::CompileMemory { limit_mib: 8 }),
        "{error:?}"
    );
    assert_eq!(error.code(), "compile_memory");
    assert!(
        error.to_string().contains("memory budget of 8 MiB"),
        "{error}"
    );
    assert!(error.is_module_fault());
}

#[test]
fn a_compilation_over_its_time_budget_is_stopped() {
    let isolated = host_with(CompileConfig {
        isolation: subprocess(),
        timeout: Duration::from_millis(20),
        ..CompileConfig::default()
    });
    // A few thousand functions take the compiler far longer than 20 ms.
    let wasm = padded(Padding {
        functions: 5_000,
        body_bytes: 600,
        ..Padding::default()
    });
    let started = Instant::now();
    let error = isolated.load(&wasm).unwrap_err();
    assert!(matches!(error, Error::CompileTimeout { .. }), "{error:?}");
    assert_eq!(error.code(), "compile_timeout");
    // Stopped at the budget, not when the compiler would have finished.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_disk_cache_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = CompileConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..CompileConfig::default()
    };
    let wasm = reward_builtins::builtin("rouge").unwrap().wasm;
    let first = host_with(config.clone());
    let expected = scores(&first, wasm);
    assert_eq!(first.compile_stats().compiled, 1);
    let path = first.cache_path(wasm).unwrap();
    assert!(path.is_file(), "{} written", path.display());
    drop(first);

    // "Restart": a new host, the same directory. Nothing is compiled.
    let second = host_with(config);
    assert!(second.is_compiled(wasm));
    assert_eq!(scores(&second, wasm), expected);
    let stats = second.compile_stats();
    assert_eq!(
        (stats.compiled, stats.cache_hits, stats.cache_rejected),
        (0, 1, 0)
    );
}

#[test]
fn a_damaged_or_foreign_cache_entry_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let config = CompileConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..CompileConfig::default()
    };
    let rouge = reward_builtins::builtin("rouge").unwrap().wasm;
    let length = reward_builtins::builtin("length").unwrap().wasm;
    let first = host_with(config.clone());
    let expected = scores(&first, rouge);
    scores(&first, length);
    let rouge_entry = first.cache_path(rouge).unwrap();
    let length_entry = first.cache_path(length).unwrap();
    drop(first);

    // One flipped bit in the compiled code.
    let mut bytes = std::fs::read(&rouge_entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&rouge_entry, &bytes).unwrap();
    let host = host_with(config.clone());
    assert_eq!(scores(&host, rouge), expected);
    let stats = host.compile_stats();
    assert_eq!(
        (stats.compiled, stats.cache_hits, stats.cache_rejected),
        (1, 0, 1)
    );
    // Rebuilt: the next restart finds a good entry.
    drop(host);
    let host = host_with(config.clone());
    assert_eq!(scores(&host, rouge), expected);
    assert_eq!(host.compile_stats().cache_hits, 1);
    drop(host);

    // Another module's intact entry under this module's name.
    std::fs::copy(&length_entry, &rouge_entry).unwrap();
    let host = host_with(config.clone());
    assert_eq!(
        scores(&host, rouge),
        expected,
        "rouge's scores, not length's"
    );
    let stats = host.compile_stats();
    assert_eq!((stats.compiled, stats.cache_rejected), (1, 1));
    drop(host);

    // A truncated entry (a crash mid-write could not leave one: entries are
    // renamed into place; a full disk or a copy can).
    let bytes = std::fs::read(&rouge_entry).unwrap();
    std::fs::write(&rouge_entry, &bytes[..40]).unwrap();
    let host = host_with(config);
    assert_eq!(scores(&host, rouge), expected);
    assert_eq!(host.compile_stats().cache_rejected, 1);
}
