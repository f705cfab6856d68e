//! Compiles `reward-wasm/modules` for `wasm32-unknown-unknown`, turns each core
//! module into a component, and generates the table that `src/lib.rs` embeds.
//!
//! Two toolchain routes, tried in order (see the README, "Building reward modules"):
//! 1. the toolchain running this build, when it has the wasm32 standard library
//!    (`rustup target add wasm32-unknown-unknown`);
//! 2. Debian's `rustc-web`/`cargo-web` with `rust-web-src`, building std from source
//!    (`-Zbuild-std`, linked by `wasm-ld` from `lld`).
//!
//! `REWARD_WASM_TOOLCHAIN=rustup|debian` forces one route.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-unknown-unknown";

/// (module name, crate directory under reward-wasm/modules, embedded as a built-in?)
const MODULES: &[(&str, &str, bool)] = &[
    ("accuracy", "accuracy", true),
    ("diversity", "diversity", true),
    ("length", "length", true),
    ("readability", "readability", true),
    ("rouge", "rouge", true),
    ("qa", "qa", true),
    ("label-judge", "label-judge", true),
    ("grounding", "grounding", true),
    ("sentence-readability", "sentence-readability", true),
    ("qa-judge", "qa-judge", true),
    ("template", "template", false),
    ("hostile", "hostile", false),
    ("hostile-import-core", "hostile-import-core", false),
    ("hostile-import-func", "hostile-import-func", false),
    ("first-wins", "first-wins", false),
];

enum Route {
    Rustup { cargo: PathBuf },
    Debian { cargo: PathBuf, rustc: PathBuf },
}

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let reward_wasm = manifest_dir.parent().unwrap().to_path_buf();
    for dir in ["modules", "sdk", "metrics", "wit"] {
        println!("cargo:rerun-if-changed={}", reward_wasm.join(dir).display());
    }
    println!("cargo:rerun-if-env-changed=REWARD_WASM_TOOLCHAIN");

    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let target_dir = modules_target_dir(&out_dir);
    let route = pick_route();
    build_modules(&route, &reward_wasm.join("modules/Cargo.toml"), &target_dir);

    let release = target_dir.join(TARGET).join("release");
    let mut table = String::new();
    let hostile = env::var_os("CARGO_FEATURE_HOSTILE").is_some();
    for (name, dir, builtin) in MODULES {
        if !builtin && !hostile {
            continue;
        }
        let core_path = release.join(format!("reward_module_{}.wasm", dir.replace('-', "_")));
        let core = fs::read(&core_path)
            .unwrap_or_else(|e| panic!("cannot read built module {}: {e}", core_path.display()));
        let core_copy = out_dir.join(format!("{name}.core.wasm"));
        fs::write(&core_copy, &core).unwrap();
        // The import-core module cannot be componentized (that is its point), so
        // every test module is embedded as the core module the toolchain produced.
        let component_path = if *builtin {
            let component = wit_component::ComponentEncoder::default()
                .module(&core)
                .and_then(|encoder| encoder.validate(true).encode())
                .unwrap_or_else(|e| panic!("module {name} does not componentize: {e:#}"));
            let path = out_dir.join(format!("{name}.component.wasm"));
            fs::write(&path, component).unwrap();
            path
        } else {
            core_copy.clone()
        };
        writeln!(
            table,
            "    Embedded {{ name: {name:?}, builtin: {builtin}, wasm: include_bytes!({wasm:?}) }},",
            wasm = component_path.display().to_string(),
        )
        .unwrap();
    }
    fs::write(
        out_dir.join("modules.rs"),
        format!("/// Every module this build embeds.\npub(crate) const EMBEDDED: &[Embedded] = &[\n{table}];\n"),
    )
    .unwrap();
}

/// A directory in the host build's target directory, shared by its profiles (the
/// guests are always built in release), so the wasm build and Debian's std build
/// (~1.5 min) are incremental across `cargo build`s instead of living in OUT_DIR.
fn modules_target_dir(out_dir: &Path) -> PathBuf {
    // OUT_DIR is <target>/[<triple>/]<profile>/build/<pkg>-<hash>/out.
    let profile_dir = out_dir
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "build"))
        .and_then(Path::parent)
        .expect("OUT_DIR is inside a build directory");
    let target = profile_dir.parent().unwrap();
    // With --target, the profile sits one level deeper (<target>/<triple>/<profile>).
    let target = if target.join("CACHEDIR.TAG").exists() || target.parent().is_none() {
        target
    } else {
        target.parent().unwrap()
    };
    target.join("reward-wasm-modules")
}

fn pick_route() -> Route {
    let forced = env::var("REWARD_WASM_TOOLCHAIN").ok();
    let cargo = PathBuf::from(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    let rustc = PathBuf::from(env::var("RUSTC").unwrap_or_else(|_| "rustc".into()));
    let rustup_ok = has_wasm_std(&rustc);
    let debian_cargo = PathBuf::from("/usr/bin/cargo");
    let debian_rustc = PathBuf::from("/usr/bin/rustc");
    let debian_ok = debian_cargo.exists()
        && debian_rustc.exists()
        && Path::new("/usr/lib/rustlib/src/rust/library").exists()
        && which("wasm-ld");
    match forced.as_deref() {
        Some("rustup") if rustup_ok => return Route::Rustup { cargo },
        Some("debian") if debian_ok => {
            return Route::Debian {
                cargo: debian_cargo,
                rustc: debian_rustc,
            };
        }
        Some(other) if other == "rustup" || other == "debian" => fail(&format!(
            "REWARD_WASM_TOOLCHAIN={other}, but that route is not available.\n{HELP}"
        )),
        Some(other) => fail(&format!(
            "REWARD_WASM_TOOLCHAIN must be rustup or debian, got {other:?}"
        )),
        None => {}
    }
    if rustup_ok {
        Route::Rustup { cargo }
    } else if debian_ok {
        Route::Debian {
            cargo: debian_cargo,
            rustc: debian_rustc,
        }
    } else {
        fail(&format!(
            "no toolchain can build the wasm32 reward modules.\n{HELP}"
        ))
    }
}

const HELP: &str = "Building the built-in reward modules needs a wasm32 Rust toolchain, either:\n  \
    1. rustup: `rustup target add wasm32-unknown-unknown`, or\n  \
    2. Debian: `apt-get install rustc-web cargo-web rust-web-src lld` \
    (builds std from source with /usr/bin/cargo -Zbuild-std).";

fn has_wasm_std(rustc: &Path) -> bool {
    let Ok(out) = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
    else {
        return false;
    };
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    out.status.success()
        && fs::read_dir(&dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
        })
}

fn which(program: &str) -> bool {
    env::var_os("PATH")
        .is_some_and(|paths| env::split_paths(&paths).any(|p| p.join(program).exists()))
}

fn build_modules(route: &Route, manifest: &Path, target_dir: &Path) {
    let (cargo, extra): (&Path, &[&str]) = match route {
        Route::Rustup { cargo } => (cargo, &[]),
        Route::Debian { cargo, .. } => (cargo, &["-Zbuild-std=std,panic_abort"]),
    };
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .args(extra);
    // The outer build's settings are for the host target; none of them may leak
    // into the guest build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTDOC",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_MANIFEST_PATH",
    ] {
        cmd.env_remove(var);
    }
    match route {
        Route::Rustup { .. } => {
            cmd.env(
                "RUSTC",
                env::var("RUSTC").unwrap_or_else(|_| "rustc".into()),
            );
        }
        Route::Debian { rustc, .. } => {
            cmd.env("RUSTC", rustc)
                .env("RUSTC_BOOTSTRAP", "1")
                .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", "wasm-ld")
                // rustup's toolchain selection must not apply to Debian's cargo.
                .env_remove("RUSTUP_TOOLCHAIN")
                .env_remove("CARGO_HOME_OVERRIDE");
        }
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| fail(&format!("cannot run {}: {e}\n{HELP}", cargo.display())));
    if !status.success() {
        fail(&format!(
            "building the reward modules for {TARGET} failed ({status}); see the compiler output above.\n{HELP}"
        ));
    }
}

/// Stops the build with a message and no backtrace: these are setup problems, not
/// bugs in the build script.
fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}
