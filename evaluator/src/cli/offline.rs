//! The commands that need no service: `score` (samples through a module,
//! offline), `modules` (the built-ins) and `inspect` (what a module declares).

use std::io::{BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::time::Duration;

use reward_host::{Host, HostConfig, Limits, RewardModule};

use crate::error::{Error, Result};
use crate::input::read_numbered_samples;
use crate::modules::ModuleSource;
use crate::score::{ScoreOptions, score_to_writer};

#[derive(Debug, clap::Args)]
pub(super) struct ScoreArgs {
    /// `builtin:NAME` or a path to a .wasm file.
    #[arg(long)]
    pub(super) module: String,
    /// JSON Lines file of {"prompt", "response", "reference"?, "fields"?}, or `-` for stdin.
    #[arg(long)]
    pub(super) input: String,
    /// Where to write the results (default: stdout).
    #[arg(long)]
    pub(super) output: Option<PathBuf>,
    /// Samples per call into the module.
    #[arg(long, default_value_t = 256)]
    pub(super) batch_size: usize,
    /// Wall-clock limit per batch, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub(super) timeout_ms: u64,
    /// Linear-memory limit per batch, in MiB.
    #[arg(long, default_value_t = 256)]
    pub(super) memory_mib: usize,
    /// Deterministic fuel budget per batch (about one unit per wasm instruction).
    #[arg(long, default_value_t = Limits::default().fuel)]
    pub(super) fuel: u64,
}

pub(super) fn score(args: ScoreArgs) -> Result<()> {
    let limits = Limits {
        timeout: Duration::from_millis(args.timeout_ms),
        fuel: args.fuel,
        memory_bytes: args
            .memory_mib
            .checked_mul(1 << 20)
            .ok_or_else(|| Error::Usage("--memory-mib is too large".into()))?,
        ..Limits::default()
    };
    let host = host_for(limits)?;
    let source = ModuleSource::parse(&args.module)?;
    // Read and validate all input first: a malformed line must stop the run before
    // any output is written.
    let (samples, lines) = if args.input == "-" {
        read_numbered_samples(std::io::stdin().lock(), "stdin")?
    } else {
        let path = PathBuf::from(&args.input);
        let file = std::fs::File::open(&path).map_err(|source| Error::Io {
            action: "cannot open input",
            path: path.clone(),
            source,
        })?;
        read_numbered_samples(BufReader::new(file), &args.input)?
    };
    let module = source.load(&host)?;
    if module.kind() != reward_host::Kind::Scorer {
        return Err(Error::Usage(format!(
            "{} is a {}; `score` needs a scorer",
            source.display(),
            module.kind().as_str()
        )));
    }
    let options = ScoreOptions {
        batch_size: args.batch_size,
        limits,
    };
    match &args.output {
        None => score_to_writer(
            &module,
            &source.display(),
            &samples,
            &lines,
            &options,
            &mut BufWriter::new(std::io::stdout().lock()),
        ),
        Some(path) => {
            // Written beside the target and renamed at the end, so a failed run
            // never leaves a half-written results file.
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let io = |action, source| Error::Io {
                action,
                path: path.clone(),
                source,
            };
            let mut tmp = tempfile::NamedTempFile::new_in(dir)
                .map_err(|e| io("cannot create a file beside", e))?;
            score_to_writer(
                &module,
                &source.display(),
                &samples,
                &lines,
                &options,
                &mut BufWriter::new(tmp.as_file_mut()),
            )?;
            tmp.persist(path).map_err(|e| io("cannot write", e.error))?;
            Ok(())
        }
    }
}

fn host_for(limits: Limits) -> Result<Host> {
    let mut config = HostConfig {
        default_limits: limits,
        ..HostConfig::default()
    };
    config.max_memory_bytes = config.max_memory_bytes.max(limits.memory_bytes);
    // The CLI scores one batch at a time: a small pool reserves less address space.
    config.pool_slots = 4;
    Host::new(config).map_err(|e| Error::Usage(e.to_string()))
}

pub(super) fn list_builtins(json: bool) -> Result<()> {
    let host = host_for(Limits::default())?;
    let mut modules = Vec::new();
    for embedded in reward_builtins::builtins() {
        let source = ModuleSource::Builtin(embedded);
        modules.push((source.display(), source.load(&host)?));
    }
    let mut out = std::io::stdout().lock();
    if json {
        let list: Vec<_> = modules.iter().map(|(id, m)| module_json(id, m)).collect();
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&list).expect("serializable")
        )
        .map_err(stdout_error)?;
    } else {
        for (id, module) in &modules {
            write_module_text(&mut out, id, module).map_err(stdout_error)?;
        }
    }
    Ok(())
}

pub(super) fn inspect(spec: &str, json: bool) -> Result<()> {
    let host = host_for(Limits::default())?;
    let source = ModuleSource::parse(spec)?;
    let module = source.load(&host)?;
    let mut out = std::io::stdout().lock();
    if json {
        let value = module_json(&source.display(), &module);
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&value).expect("serializable")
        )
        .map_err(stdout_error)
    } else {
        write_inspection(&mut out, &source.display(), &module).map_err(stdout_error)
    }
}

/// `inspect`'s text: the declared name first, since that (not the file's
/// name, `reward_module_x.wasm` from a build) is what `run --module` and
/// `compare --judge` take once the module is uploaded.
fn write_inspection(out: &mut impl Write, id: &str, module: &RewardModule) -> std::io::Result<()> {
    let info = module.info();
    writeln!(
        out,
        "name: {} (v{}, {})",
        info.name,
        info.version,
        module.kind().as_str()
    )?;
    writeln!(out, "from: {id}")?;
    writeln!(out, "sha256: {}", module.sha256_hex())?;
    writeln!(out, "{}", info.description)?;
    let flag = match module.kind() {
        reward_host::Kind::Judge => "compare --judge",
        reward_host::Kind::Scorer => "run --module",
    };
    writeln!(
        out,
        "use it as: {flag} {} (after `evaluator push-module {id}`), or {flag} {id}",
        info.name
    )?;
    writeln!(out, "metrics:")?;
    write_metrics(out, &info.metrics)
}

fn module_json(id: &str, module: &RewardModule) -> serde_json::Value {
    let info = module.info();
    serde_json::json!({
        "module": id,
        "name": info.name,
        "version": info.version,
        "kind": module.kind().as_str(),
        // Whether the module also reports per-span values (world scorer-spans);
        // its scores are then the means of its spans.
        "spans": module.has_spans(),
        "description": info.description,
        "sha256": module.sha256_hex(),
        "metrics": info.metrics.iter().map(|m| serde_json::json!({
            "name": m.name,
            "direction": m.direction.as_str(),
            "description": m.description,
        })).collect::<Vec<_>>(),
    })
}

fn write_module_text(out: &mut impl Write, id: &str, module: &RewardModule) -> std::io::Result<()> {
    let info = module.info();
    writeln!(
        out,
        "{id} ({}, v{}): {}",
        module.kind().as_str(),
        info.version,
        info.description
    )?;
    write_metrics(out, &info.metrics)
}

/// A module's metrics, one indented line each: name, direction, description.
fn write_metrics(out: &mut impl Write, metrics: &[reward_host::Metric]) -> std::io::Result<()> {
    for metric in metrics {
        writeln!(
            out,
            "    {:<12} {:<16} {}",
            metric.name,
            metric.direction.as_str(),
            metric.description
        )?;
    }
    Ok(())
}

pub(super) fn stdout_error(source: std::io::Error) -> Error {
    Error::Io {
        action: "cannot write to",
        path: "stdout".into(),
        source,
    }
}
