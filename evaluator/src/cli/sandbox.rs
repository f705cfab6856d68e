//! The compile limits of `serve` and `worker` as flags ([`SandboxArgs`]), and
//! the hidden `compile-module` command the service runs itself as, to compile
//! a module in a child process under a memory cap.

use std::path::PathBuf;
use std::time::Duration;

use reward_host::{CompileConfig, CompileLimits, Isolation};

use crate::error::{Error, Result};
use crate::modules::QueueConfig;
use crate::startup::SandboxConfig;

/// How uploaded modules are compiled. The defaults fit Rust modules with real
/// dependencies (regex, serde_json: a few thousand functions, 1-2 MiB of code)
/// with room to spare; modules built from interpreters (Python) need more.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Compiling modules")]
pub(super) struct SandboxArgs {
    /// Modules compiled at once by this process (default: one per CPU).
    #[arg(long, env = "EVALUATOR_COMPILE_CONCURRENCY")]
    compile_concurrency: Option<usize>,
    /// Uploads that may wait for a compile place; more get 503 with Retry-After.
    #[arg(long, default_value_t = 8, env = "EVALUATOR_COMPILE_QUEUE")]
    compile_queue: usize,
    /// Compile places (running or waiting) one team may hold at once.
    #[arg(long, default_value_t = 2, env = "EVALUATOR_COMPILE_PER_TEAM")]
    compile_per_team: usize,
    /// Wall-clock budget of one compilation, in seconds.
    #[arg(long, default_value_t = 60.0, env = "EVALUATOR_COMPILE_TIMEOUT_SECS")]
    compile_timeout_secs: f64,
    /// Memory budget of one compilation, in MiB (the compiler process's data limit).
    #[arg(long, default_value_t = 1024, env = "EVALUATOR_COMPILE_MEMORY_MIB")]
    compile_memory_mib: u64,
    /// Compile in the service's own process: no time or memory budget (only the
    /// shape limits below). For debugging.
    #[arg(long)]
    compile_in_process: bool,
    /// Where compiled code is kept across restarts (default: `compiled/` in the
    /// data directory).
    #[arg(long, env = "EVALUATOR_COMPILE_CACHE")]
    compile_cache: Option<PathBuf>,
    /// Keep compiled code in memory only.
    #[arg(long, conflicts_with = "compile_cache")]
    no_compile_cache: bool,
    /// Most functions in a module (all its core modules together).
    #[arg(long, default_value_t = CompileLimits::default().max_functions)]
    max_module_functions: u64,
    /// Most bytes of code in a module, in KiB.
    #[arg(long, default_value_t = CompileLimits::default().max_code_bytes >> 10)]
    max_module_code_kib: u64,
    /// Largest single function, in KiB.
    #[arg(long, default_value_t = CompileLimits::default().max_function_bytes >> 10)]
    max_function_kib: u64,
    /// Most locals in one function.
    #[arg(long, default_value_t = CompileLimits::default().max_locals)]
    max_function_locals: u64,
    /// Deepest nesting of blocks in one function.
    #[arg(long, default_value_t = CompileLimits::default().max_block_depth)]
    max_block_depth: u64,
    /// Most data segments in a module.
    #[arg(long, default_value_t = CompileLimits::default().max_data_segments)]
    max_data_segments: u64,
    /// Most imports in a module.
    #[arg(long, default_value_t = CompileLimits::default().max_imports)]
    max_module_imports: u64,
    /// Most core modules and components inside one module.
    #[arg(long, default_value_t = CompileLimits::default().max_modules)]
    max_nested_modules: u64,
}

impl SandboxArgs {
    /// The sandbox these flags describe; `data_dir` is the service's data
    /// directory, where the compile cache lives by default.
    pub(super) fn config(&self, data_dir: Option<&std::path::Path>) -> Result<SandboxConfig> {
        if !(self.compile_timeout_secs.is_finite() && self.compile_timeout_secs > 0.0) {
            return Err(Error::Usage(
                "--compile-timeout-secs must be a positive number of seconds".into(),
            ));
        }
        if self.compile_memory_mib < 64 {
            return Err(Error::Usage(
                "--compile-memory-mib must be at least 64 (the compiler itself needs that)".into(),
            ));
        }
        let isolation = if self.compile_in_process {
            Isolation::InProcess
        } else {
            let program = std::env::current_exe().map_err(|e| {
                Error::Usage(format!(
                    "cannot find this program to run the module compiler ({e}); \
                     pass --compile-in-process"
                ))
            })?;
            Isolation::Subprocess {
                program,
                args: vec!["compile-module".into()],
            }
        };
        let cache_dir = (!self.no_compile_cache).then(|| {
            self.compile_cache
                .clone()
                .unwrap_or_else(|| match data_dir {
                    Some(dir) => dir.join("compiled"),
                    None => crate::db::embedded::EmbeddedPostgres::default_data_dir()
                        .with_file_name("compiled"),
                })
        });
        let mut queue = QueueConfig {
            waiting: self.compile_queue,
            per_team: self.compile_per_team.max(1),
            ..QueueConfig::default()
        };
        if let Some(n) = self.compile_concurrency {
            queue.concurrent = n.max(1);
        }
        Ok(SandboxConfig {
            compile: CompileConfig {
                limits: CompileLimits {
                    max_modules: self.max_nested_modules,
                    max_functions: self.max_module_functions,
                    max_code_bytes: self.max_module_code_kib << 10,
                    max_function_bytes: self.max_function_kib << 10,
                    max_locals: self.max_function_locals,
                    max_block_depth: self.max_block_depth,
                    max_data_segments: self.max_data_segments,
                    max_imports: self.max_module_imports,
                },
                isolation,
                timeout: Duration::from_secs_f64(self.compile_timeout_secs),
                memory_bytes: self.compile_memory_mib << 20,
                cache_dir,
            },
            queue,
        })
    }
}
