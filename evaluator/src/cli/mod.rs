//! The `evaluator` command line. `main.rs` calls [`main`]; everything else is here
//! so it can be tested: this file holds the commands, their flags and the
//! dispatch (the service commands print through [`crate::remote`]), and
//! `offline` the commands that need no service (`score`, `modules`, `inspect`).
//!
//! Exit status: 0 on success, 1 for bad input or I/O, 2 when a module faults (it
//! is invalid, breaks a limit, traps, or returns an error or invalid output), 64
//! for a malformed command line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

mod offline;
mod sandbox;

use clap::{Parser, Subcommand};
use offline::{ScoreArgs, stdout_error};
use sandbox::SandboxArgs;

use crate::error::{Error, Result};
use crate::modules::ModuleSource;

/// Score model generations with sandboxed reward modules.
#[derive(Debug, Parser)]
#[command(name = "evaluator", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Score JSON Lines samples with a scorer module; writes one JSON object per line.
    Score(ScoreArgs),
    /// List the built-in modules and their metrics.
    Modules {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The team's datasets on the service, with their sizes.
    Datasets {
        #[command(flatten)]
        remote: Remote,
    },
    /// The team's systems on the service, with their metadata.
    Systems {
        #[command(flatten)]
        remote: Remote,
    },
    /// The team's modules on the service (uploads), newest first.
    ///
    /// Not `modules`: that lists the built-ins offline, without a service or a
    /// token, and scripts already call it; a `modules list`/`modules builtin`
    /// group would break them for no gain in clarity.
    ListModules {
        #[command(flatten)]
        remote: Remote,
    },
    /// Run the evaluation service (DATABASE_URL, or a private PostgreSQL in the data directory).
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        bind: std::net::SocketAddr,
        /// The evaluator's data directory; the embedded PostgreSQL (used when
        /// DATABASE_URL is unset) lives in its `postgres/`.
        #[arg(long, env = "EVALUATOR_DATA_DIR")]
        data_dir: Option<PathBuf>,
        #[command(flatten)]
        workers: WorkerArgs,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// Run job workers only (no HTTP); any number may share one database.
    Worker {
        /// The evaluator's data directory (see `serve --help`).
        #[arg(long, env = "EVALUATOR_DATA_DIR")]
        data_dir: Option<PathBuf>,
        #[command(flatten)]
        workers: WorkerArgs,
        #[command(flatten)]
        sandbox: SandboxArgs,
    },
    /// Compile one module read from stdin, writing the compiled code to stdout
    /// (what `serve` and `worker` run themselves as, to compile under a memory cap).
    #[command(hide = true)]
    CompileModule {
        /// The data limit this process sets on itself before reading.
        #[arg(long)]
        memory_bytes: u64,
    },
    /// Upload a reward module to the service (a .wasm file or builtin:NAME).
    PushModule {
        /// `builtin:NAME` or a path to a .wasm file.
        module: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Upload a system's generations on a dataset (both created if new).
    PushGenerations {
        /// The dataset's name.
        #[arg(long)]
        dataset: String,
        /// The system's name (model, checkpoint, mixing weight...).
        #[arg(long)]
        system: String,
        /// The file's format.
        #[arg(long, value_enum, default_value_t = crate::import::Format::Canonical)]
        format: crate::import::Format,
        /// Set the system's metadata, KEY=VALUE (repeatable; numbers stay numbers),
        /// e.g. --meta lambda=0.3 --meta step=2000.
        #[arg(long = "meta", value_name = "KEY=VALUE")]
        meta: Vec<String>,
        /// The generations file.
        file: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
    /// Score systems' generations on a dataset with scorer modules (a job).
    Run {
        /// The dataset: its name, or its id (`evaluator datasets`).
        #[arg(long)]
        dataset: String,
        /// Scorers: module ids, declared names, or builtin:NAME / a .wasm path
        /// (uploaded first).
        #[arg(long = "module", required = true, num_args = 1..)]
        modules: Vec<String>,
        /// Systems to score (default: all with generations on the dataset).
        #[arg(long, value_delimiter = ',')]
        systems: Option<Vec<String>>,
        #[command(flatten)]
        wait: Wait,
        #[command(flatten)]
        remote: Remote,
    },
    /// Compare systems pairwise on a dataset with a judge (a job).
    Compare {
        /// The dataset: its name, or its id (`evaluator datasets`).
        #[arg(long)]
        dataset: String,
        /// A judge module, or a scorer whose --metric decides (id, declared name,
        /// builtin:NAME or a .wasm path).
        #[arg(long)]
        judge: String,
        /// For a scorer judge: the metric (its declared direction decides).
        #[arg(long)]
        metric: Option<String>,
        /// Systems to compare, every pair (default: all with generations).
        #[arg(long, value_delimiter = ',')]
        systems: Option<Vec<String>>,
        /// Compare every other system with this one only, instead of every pair.
        #[arg(long)]
        baseline: Option<String>,
        #[command(flatten)]
        wait: Wait,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show a job's state and progress.
    Status {
        /// The job's id.
        job: i64,
        #[command(flatten)]
        wait: Wait,
        #[command(flatten)]
        remote: Remote,
    },
    /// Cancel a job.
    Cancel {
        /// The job's id.
        job: i64,
        #[command(flatten)]
        remote: Remote,
    },
    /// Store pairwise judgments made elsewhere (an LLM judge, AlpacaEval's
    /// annotations) for systems already pushed to a dataset.
    PushJudgments {
        /// The dataset: its name, or its id (`evaluator datasets`).
        #[arg(long)]
        dataset: String,
        /// The judge's name on the dataset (created if new), e.g.
        /// weighted_alpaca_eval_gpt4_turbo.
        #[arg(long)]
        judge: String,
        /// The file's format.
        #[arg(long, value_enum, default_value_t = crate::import::judgments::JudgmentFormat::Canonical)]
        format: crate::import::judgments::JudgmentFormat,
        /// alpaca_eval files: the system the file's `generator_2` stands for
        /// (AlpacaEval's null model calls itself `example`).
        #[arg(long)]
        system: Option<String>,
        /// alpaca_eval files: the system the file's `generator_1` stands for.
        #[arg(long)]
        baseline: Option<String>,
        /// The judgments file.
        file: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
    /// Store a learned reward model's scores of a system's generations as a
    /// metric of the dataset, with their provenance: FILE is what `trainer
    /// score --output FILE` wrote, and FILE.provenance.json beside it is read
    /// too. A metric name is one model (by sha256): another model's scores
    /// under it are refused; the same model's replace the system's.
    PushScores {
        /// The dataset: its name, or its id (`evaluator datasets`).
        #[arg(long)]
        dataset: String,
        /// The system whose generations were scored.
        #[arg(long)]
        system: String,
        /// The metric's name on the dataset (created if new), e.g. helpful_rm;
        /// letters, digits and _.:+=- (no `/`).
        #[arg(long)]
        metric: String,
        /// The scores: JSON Lines of {"id"?, "prompt", "score"}.
        #[arg(long)]
        scores: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
    /// A leaderboard: with --baseline, AlpacaEval's columns against that
    /// system from an external judge's judgments (win rate, standard error,
    /// wins, draws, length-controlled win rate, ...); without it, the
    /// Bradley–Terry leaderboard of the newest finished comparison with a
    /// judge module.
    Leaderboard {
        /// The dataset: its name, or its id (`evaluator datasets`).
        #[arg(long)]
        dataset: String,
        /// The judge: with --baseline, a judge's name (`evaluator judges`;
        /// default: the dataset's only judge); otherwise the module the
        /// comparison used (id, declared name, builtin:NAME or a .wasm path).
        #[arg(long)]
        judge: Option<String>,
        /// Compare every system with this one, AlpacaEval's way.
        #[arg(long)]
        baseline: Option<String>,
        /// For a scorer judge: its metric.
        #[arg(long)]
        metric: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// A dataset's judges (judgments pushed with `push-judgments`).
    Judges {
        /// The dataset: its name, or its id (`evaluator datasets`).
        #[arg(long)]
        dataset: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Per system and metric: mean, standard error and n.
    Results {
        /// The dataset: its name, or its id (`evaluator datasets`).
        #[arg(long)]
        dataset: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Two metrics' Pareto front and hypervolume, and each sweep's (systems
    /// sharing a metadata `sweep`, or with a `lambda` and none, in λ order), all
    /// from one reference point, as the Pareto page shows them.
    Pareto {
        /// The dataset: its name, or its id (`evaluator datasets`).
        #[arg(long)]
        dataset: String,
        /// The x axis's metric, `<module>/<metric>` (default: the dataset's
        /// first by name).
        #[arg(long)]
        x: Option<String>,
        /// The y axis's metric (default: its second).
        #[arg(long)]
        y: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Administer teams and tokens directly in the database.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
        /// The evaluator's data directory (see `serve --help`).
        #[arg(long, env = "EVALUATOR_DATA_DIR", global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Load a module (validating it) and print what it declares.
    Inspect {
        /// `builtin:NAME` or a path to a .wasm file.
        module: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Where the service is, and who is asking.
#[derive(Debug, clap::Args)]
struct Remote {
    /// The service's address.
    #[arg(long, env = "EVALUATOR_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The team's API token.
    #[arg(
        long,
        env = "EVALUATOR_TOKEN",
        hide_env_values = true,
        default_value = ""
    )]
    token: String,
    /// Print machine-readable JSON on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct Wait {
    /// Wait for the job to finish, with a progress bar on a terminal.
    #[arg(long)]
    wait: bool,
}

#[derive(Debug, clap::Args)]
struct WorkerArgs {
    /// Chunks worked on at once by this process (default: one per CPU; 0: none,
    /// for `serve` behind separate `evaluator worker` processes).
    #[arg(long)]
    workers: Option<usize>,
    /// Seconds a claimed chunk stays leased without a heartbeat; a dead
    /// worker's chunk is taken over after this.
    #[arg(long, default_value_t = 30.0)]
    lease_secs: f64,
}

impl WorkerArgs {
    fn config(&self) -> Result<crate::jobs::worker::WorkerConfig> {
        if !(self.lease_secs.is_finite() && self.lease_secs >= 0.5) {
            return Err(Error::Usage("--lease-secs must be at least 0.5".into()));
        }
        let mut config = crate::jobs::worker::WorkerConfig {
            lease: Duration::from_secs_f64(self.lease_secs),
            ..Default::default()
        };
        if let Some(n) = self.workers {
            config.concurrency = n;
        }
        Ok(config)
    }
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create a team; prints its first API token, alone, on stdout (shown only once).
    CreateTeam {
        /// 1-64 characters of letters, digits, '_', '.', '-'.
        name: String,
    },
    /// Create another token for a team (for rotation); prints it alone on stdout.
    CreateToken {
        /// The team's name.
        team: String,
    },
    /// List a team's tokens: id, prefix, created, revoked (never the tokens,
    /// which are not stored).
    ListTokens {
        /// The team's name.
        team: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token: requests carrying it are refused from then on.
    RevokeToken {
        /// The whole token, its id, or the prefix `list-tokens` prints.
        token: String,
    },
}

/// Parses the process arguments, runs the command, and reports errors on one
/// stderr line.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let usage_error = e.use_stderr();
            let _ = e.print();
            return ExitCode::from(if usage_error { 64 } else { 0 });
        }
    };
    if let Command::CompileModule { memory_bytes } = cli.command {
        // Its exit status is the protocol with the parent (reward_host::compiler).
        return reward_host::compiler::serve(
            std::io::stdin().lock(),
            std::io::stdout().lock(),
            memory_bytes,
        );
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Score(args) => offline::score(args),
        Command::Modules { json } => offline::list_builtins(json),
        Command::Inspect { module, json } => offline::inspect(&module, json),
        Command::Serve {
            bind,
            data_dir,
            workers,
            sandbox,
        } => {
            let workers = workers.config()?;
            let sandbox = sandbox.config(data_dir.as_deref())?;
            runtime()?.block_on(async {
                crate::telemetry::init();
                let database = crate::startup::open_database(data_dir.as_deref()).await?;
                crate::startup::serve(bind, database, workers, &sandbox).await
            })
        }
        Command::Worker {
            data_dir,
            workers,
            sandbox,
        } => {
            let workers = workers.config()?;
            let sandbox = sandbox.config(data_dir.as_deref())?;
            runtime()?.block_on(async {
                crate::telemetry::init();
                let database = crate::startup::open_database(data_dir.as_deref()).await?;
                crate::startup::work(database, workers, &sandbox).await
            })
        }
        Command::CompileModule { .. } => Err(Error::Usage(
            "compile-module is run by the service itself, through main()".into(),
        )),
        Command::PushModule { module, remote } => {
            let client = remote.client()?;
            let record = push_module(&client, &module)?;
            remote.print(&record, |r| {
                format!(
                    "module #{} {} v{} ({}), sha256 {}",
                    r["id"],
                    r["name"].as_str().unwrap_or(""),
                    r["version"].as_str().unwrap_or(""),
                    r["kind"].as_str().unwrap_or(""),
                    r["sha256"].as_str().unwrap_or("")
                )
            })
        }
        Command::PushGenerations {
            dataset,
            system,
            format,
            meta,
            file,
            remote,
        } => crate::remote::push_generations(
            &remote.client()?,
            remote.json,
            &dataset,
            &system,
            format,
            &meta,
            &file,
        ),
        Command::Run {
            dataset,
            modules,
            systems,
            wait,
            remote,
        } => {
            let client = remote.client()?;
            let mut resolved = Vec::with_capacity(modules.len());
            for module in &modules {
                resolved.push(resolve_module_arg(&client, module)?);
            }
            let request = crate::jobs::ScoreRequest {
                dataset,
                modules: resolved,
                systems,
            };
            let job = client.post_json("/api/v1/jobs/score", &request)?;
            crate::remote::follow(&client, job, wait.wait, remote.json)
        }
        Command::Compare {
            dataset,
            judge,
            metric,
            systems,
            baseline,
            wait,
            remote,
        } => {
            let client = remote.client()?;
            let request = crate::jobs::CompareRequest {
                dataset,
                judge: resolve_module_arg(&client, &judge)?,
                metric,
                systems,
                baseline,
            };
            let job = client.post_json("/api/v1/jobs/compare", &request)?;
            crate::remote::follow(&client, job, wait.wait, remote.json)
        }
        Command::Status { job, wait, remote } => {
            let client = remote.client()?;
            let record = client.get(&format!("/api/v1/jobs/{job}"))?;
            crate::remote::follow(&client, record, wait.wait, remote.json)
        }
        Command::Cancel { job, remote } => {
            let client = remote.client()?;
            let record: crate::api::types::Job = client.post_json(
                &format!("/api/v1/jobs/{job}/cancel"),
                &serde_json::json!({}),
            )?;
            remote.print(&record, |r| {
                format!("job {} is {}", r["id"], r["state"].as_str().unwrap_or(""))
            })
        }
        Command::PushJudgments {
            dataset,
            judge,
            format,
            system,
            baseline,
            file,
            remote,
        } => crate::remote::judgments::push_judgments(
            &remote.client()?,
            remote.json,
            &crate::remote::judgments::JudgmentPush {
                dataset: &dataset,
                judge: &judge,
                format,
                system: system.as_deref(),
                baseline: baseline.as_deref(),
            },
            &file,
        ),
        Command::PushScores {
            dataset,
            system,
            metric,
            scores,
            remote,
        } => crate::remote::scores::push_scores(
            &remote.client()?,
            remote.json,
            (&dataset, &system, &metric),
            &scores,
        ),
        Command::Judges { dataset, remote } => {
            let list: crate::api::types::JudgeList = remote.client()?.get(&format!(
                "/api/v1/datasets/{}/judges",
                crate::client::encode(&dataset)
            ))?;
            remote.print_text(&list, || crate::remote::judgments::judge_table(&list))
        }
        Command::Leaderboard {
            dataset,
            judge,
            baseline,
            metric,
            remote,
        } => {
            let client = remote.client()?;
            match (baseline, judge) {
                (Some(baseline), judge) => {
                    if metric.is_some() {
                        return Err(Error::Usage(
                            "--metric is for judge modules; a leaderboard against --baseline reads a judge's stored judgments".into(),
                        ));
                    }
                    let judge = match judge {
                        Some(judge) => judge,
                        None => crate::remote::judgments::only_judge(&client, &dataset)?,
                    };
                    crate::remote::judgments::baseline_leaderboard(
                        &client,
                        &dataset,
                        &judge,
                        &baseline,
                        remote.json,
                    )
                }
                (None, Some(judge)) => {
                    let judge = resolve_module_arg(&client, &judge)?;
                    crate::remote::leaderboard(
                        &client,
                        &dataset,
                        &judge,
                        metric.as_deref(),
                        remote.json,
                    )
                }
                (None, None) => Err(Error::Usage(
                    "leaderboard needs --judge MODULE (a comparison's Bradley–Terry leaderboard) or --baseline SYSTEM (AlpacaEval's columns against it)".into(),
                )),
            }
        }
        Command::Results { dataset, remote } => {
            let client = remote.client()?;
            crate::remote::results(&client, &dataset, remote.json)
        }
        Command::Pareto {
            dataset,
            x,
            y,
            remote,
        } => crate::remote::pareto(
            &remote.client()?,
            &dataset,
            x.as_deref(),
            y.as_deref(),
            remote.json,
        ),
        Command::Datasets { remote } => {
            let list: crate::api::types::DatasetList = remote.client()?.get("/api/v1/datasets")?;
            remote.print_text(&list, || crate::remote::dataset_table(&list.datasets))
        }
        Command::Systems { remote } => {
            let list: crate::api::types::SystemList = remote.client()?.get("/api/v1/systems")?;
            remote.print_text(&list, || crate::remote::system_table(&list.systems))
        }
        Command::ListModules { remote } => {
            let list: crate::api::types::ModuleList = remote.client()?.get("/api/v1/modules")?;
            remote.print_text(&list, || crate::remote::module_table(&list.modules))
        }
        Command::Admin { command, data_dir } => runtime()?.block_on(admin(command, data_dir)),
    }
}

impl Remote {
    fn client(&self) -> Result<crate::client::Client> {
        crate::client::Client::new(&self.url, &self.token)
    }

    /// Prints `value` as JSON with --json, or its one-line text form.
    fn print<T: serde::Serialize>(
        &self,
        value: &T,
        text: impl Fn(&serde_json::Value) -> String,
    ) -> Result<()> {
        let value = serde_json::to_value(value).expect("serializable");
        let line = if self.json {
            serde_json::to_string_pretty(&value).expect("serializable")
        } else {
            text(&value)
        };
        writeln!(std::io::stdout().lock(), "{line}").map_err(stdout_error)
    }
}

impl Remote {
    /// Prints `value` as JSON with --json, or the text `text` makes.
    fn print_text<T: serde::Serialize>(&self, value: &T, text: impl Fn() -> String) -> Result<()> {
        let line = if self.json {
            serde_json::to_string_pretty(value).expect("serializable")
        } else {
            text()
        };
        writeln!(std::io::stdout().lock(), "{line}").map_err(stdout_error)
    }
}

/// Uploads `builtin:NAME` or a .wasm file; returns the stored record.
fn push_module(client: &crate::client::Client, spec: &str) -> Result<crate::api::types::Module> {
    let bytes = match ModuleSource::parse(spec)? {
        ModuleSource::Builtin(embedded) => embedded.wasm.to_vec(),
        ModuleSource::File(path) => {
            crate::remote::check_upload_size(
                &path,
                "modules",
                crate::state::MAX_MODULE_BYTES,
                "build it with --release and without debug info (`strip = true` in the \
                 profile, or `wasm-strip`)",
            )?;
            std::fs::read(&path).map_err(|source| Error::Io {
                action: "cannot read module file",
                path,
                source,
            })?
        }
    };
    client.post_bytes("/api/v1/modules", "application/wasm", &bytes)
}

/// A module argument of `run`/`compare`: `builtin:NAME` and existing .wasm
/// paths are uploaded first (uploads are idempotent) and named by id; anything
/// else is passed on as an id or declared name.
fn resolve_module_arg(client: &crate::client::Client, spec: &str) -> Result<String> {
    if spec.starts_with("builtin:") || std::path::Path::new(spec).is_file() {
        Ok(push_module(client, spec)?.id.to_string())
    } else {
        Ok(spec.to_string())
    }
}

async fn admin(command: AdminCommand, data_dir: Option<PathBuf>) -> Result<()> {
    let database = crate::startup::open_database(data_dir.as_deref()).await?;
    let pool = &database.pool;
    let printed = match command {
        AdminCommand::CreateTeam { name } => {
            Some(crate::db::teams::create_team(pool, &name).await?)
        }
        AdminCommand::CreateToken { team } => {
            Some(crate::db::teams::create_token(pool, &team).await?)
        }
        AdminCommand::ListTokens { team, json } => {
            let tokens = crate::db::teams::list_tokens(pool, &team).await;
            pool.close().await;
            let tokens = tokens?;
            let text = if json {
                serde_json::to_string_pretty(&tokens).expect("serializable")
            } else {
                crate::remote::token_table(&tokens)
            };
            return writeln!(std::io::stdout().lock(), "{text}").map_err(stdout_error);
        }
        AdminCommand::RevokeToken { token } => {
            let revoked = crate::db::teams::revoke_token(pool, &token).await;
            pool.close().await;
            let revoked = revoked?;
            eprintln!(
                "revoked token #{} ({}) of team `{}`",
                revoked.id, revoked.prefix, revoked.team
            );
            return Ok(());
        }
    };
    if let Some(token) = printed {
        println!("{token}");
    }
    pool.close().await;
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            action: "cannot start the async runtime for",
            path: "evaluator".into(),
            source,
        })
}
