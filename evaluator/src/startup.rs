//! Putting the service together: the database (configured or embedded), the
//! application ([`app`]: the API and the pages under one router, with tracing
//! and error logging), and [`Application`], the HTTP server and the job
//! workers run side by side until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::trace::TraceLayer;

use crate::db::{self, embedded::EmbeddedPostgres};
use crate::error::{Error, Result};
use crate::jobs::worker::{self, WorkerConfig};
use crate::modules::{QueueConfig, Sandbox};
use crate::state::AppState;

/// A database connection, plus the embedded server it runs on when
/// `DATABASE_URL` is unset (kept so it stops when the command ends).
pub struct Database {
    /// The pool, migrated.
    pub pool: sqlx::PgPool,
    /// The embedded cluster, if one is used.
    pub embedded: Option<EmbeddedPostgres>,
}

impl Database {
    /// Closes the pool, then stops the embedded server if this process started it.
    pub async fn close(self) {
        self.pool.close().await;
        drop(self.embedded);
    }
}

/// Connects to `DATABASE_URL`, or to the embedded default in `<data_dir>/postgres`
/// (started if needed; [`EmbeddedPostgres::default_data_dir`] without one), and
/// applies migrations.
pub async fn open_database(data_dir: Option<&std::path::Path>) -> Result<Database> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Ok(Database {
            pool: db::connect(&url).await?,
            embedded: None,
        }),
        _ => {
            let dir = data_dir
                .map(|d| d.join("postgres"))
                .unwrap_or_else(EmbeddedPostgres::default_data_dir);
            let cluster =
                tokio::task::spawn_blocking(move || EmbeddedPostgres::ensure_running(&dir))
                    .await
                    .map_err(|source| Error::TaskPanicked {
                        task: "starting the embedded PostgreSQL",
                        source,
                    })??;
            tracing::info!(data_dir = %cluster.data_dir().display(), url = %cluster.url(), "embedded PostgreSQL");
            Ok(Database {
                pool: db::connect(&cluster.url()).await?,
                embedded: Some(cluster),
            })
        }
    }
}

/// How the service compiles modules: the host's compile settings and the
/// queue in front of it.
#[derive(Debug, Clone, Default)]
pub struct SandboxConfig {
    /// Shape limits, isolation, budgets and the on-disk cache.
    pub compile: reward_host::CompileConfig,
    /// How many compile at once, and who waits.
    pub queue: QueueConfig,
}

/// The sandbox every upload and every worker of this process uses.
pub fn sandbox(config: &SandboxConfig) -> Result<Arc<Sandbox>> {
    let host = reward_host::Host::new(reward_host::HostConfig {
        compile: config.compile.clone(),
        ..reward_host::HostConfig::default()
    })
    .map_err(|e| Error::Usage(format!("cannot start the sandbox: {e}")))?;
    Ok(Sandbox::new(Arc::new(host), config.queue))
}

/// The application, without a listener: tests drive it with `oneshot`.
pub fn app(state: AppState) -> Router {
    let (api, _) = crate::api::router().split_for_parts();
    api.merge(crate::pages::router())
        .fallback(|| async { crate::api::ApiError::NotFound("no such endpoint".into()) })
        // Outermost first: a span per request, then the error log (which sees
        // the 500 the panic layer makes of a panicking handler).
        .layer(axum::middleware::from_fn(crate::telemetry::log_errors))
        // A bug must not take the server down: a panicking handler answers 500
        // in the usual error format and the connection's task goes on.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                axum::response::IntoResponse::into_response(crate::api::ApiError::Internal(
                    Arc::new(Error::Usage("a request handler panicked".into())),
                ))
            },
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// The HTTP server and, beside it, the job workers of this process.
pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    state: AppState,
    workers: WorkerConfig,
}

impl Application {
    /// Serves on `listener` (bind port 0 to let the system choose); runs
    /// `workers.concurrency` worker loops beside the server (none for 0), all
    /// compiling through one `sandbox`.
    pub fn build(
        listener: TcpListener,
        database: &Database,
        workers: WorkerConfig,
        sandbox: &SandboxConfig,
    ) -> Result<Self> {
        let address = listener.local_addr().map_err(|source| Error::Io {
            action: "cannot read the address of",
            path: "the listener".into(),
            source,
        })?;
        Ok(Application {
            listener,
            address,
            state: AppState {
                db: database.pool.clone(),
                sandbox: self::sandbox(sandbox)?,
            },
            workers,
        })
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Runs until `shutdown` completes, or until the server or the workers stop
    /// on their own (then the other is stopped too, and the result says which
    /// stopped and why). On shutdown the server stops accepting and finishes its
    /// requests, and the workers finish the chunks in hand.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let Application {
            listener,
            address,
            state,
            workers: config,
        } = self;
        let (stop, stopped) = watch::channel(false);
        let mut server_stopped = stopped.clone();
        let router = app(state.clone());
        let mut server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = server_stopped.wait_for(|stop| *stop).await;
                })
                .await
        });
        let mut workers = (config.concurrency > 0)
            .then(|| tokio::spawn(worker::run(state.db, state.sandbox, config, stopped)));
        let why = tokio::select! {
            () = shutdown => Stopped::Signal,
            served = &mut server => Stopped::Server(served),
            worked = async {
                match workers.as_mut() {
                    Some(handle) => handle.await,
                    None => std::future::pending().await,
                }
            } => Stopped::Workers(worked),
        };
        let _ = stop.send(true);
        let served = |result: std::result::Result<std::io::Result<()>, tokio::task::JoinError>| {
            result
                .map_err(|source| Error::TaskPanicked {
                    task: "the HTTP server",
                    source,
                })?
                .map_err(|source| Error::Io {
                    action: "the HTTP server failed on",
                    path: address.to_string().into(),
                    source,
                })
        };
        let worked = |result: std::result::Result<Result<()>, tokio::task::JoinError>| {
            result.map_err(|source| Error::TaskPanicked {
                task: "the job workers",
                source,
            })?
        };
        match why {
            Stopped::Signal => {
                tracing::info!("shutting down: finishing requests and the chunks in hand");
                served(server.await)?;
                match workers {
                    Some(handle) => worked(handle.await),
                    None => Ok(()),
                }
            }
            Stopped::Server(result) => {
                tracing::error!("the HTTP server stopped; stopping the workers");
                if let Some(handle) = workers {
                    worked(handle.await)?;
                }
                served(result)?;
                Err(Error::Stopped {
                    what: "the HTTP server",
                })
            }
            Stopped::Workers(result) => {
                tracing::error!("the job workers stopped; stopping the HTTP server");
                served(server.await)?;
                worked(result)?;
                Err(Error::Stopped {
                    what: "the job workers",
                })
            }
        }
    }
}

/// Which part of an [`Application`] ended its run.
enum Stopped {
    /// The shutdown signal.
    Signal,
    /// The HTTP server, on its own.
    Server(std::result::Result<std::io::Result<()>, tokio::task::JoinError>),
    /// The workers, on their own.
    Workers(std::result::Result<Result<()>, tokio::task::JoinError>),
}

/// `evaluator serve`: binds `bind`, then runs the [`Application`] until Ctrl-C
/// or SIGTERM, and closes the database.
pub async fn serve(
    bind: SocketAddr,
    database: Database,
    workers: WorkerConfig,
    sandbox: &SandboxConfig,
) -> Result<()> {
    let listener = TcpListener::bind(bind).await.map_err(|source| Error::Io {
        action: "cannot listen on",
        path: bind.to_string().into(),
        source,
    })?;
    let application = Application::build(listener, &database, workers.clone(), sandbox)?;
    eprintln!("evaluator: listening on http://{}", application.address());
    if workers.concurrency > 0 {
        eprintln!(
            "evaluator: {} job worker(s) in this process",
            workers.concurrency
        );
    }
    let result = application.run_until_stopped(shutdown_signal()).await;
    database.close().await;
    result
}

/// `evaluator worker`: job workers alone, until a shutdown signal, finishing
/// the chunks in hand.
pub async fn work(database: Database, config: WorkerConfig, sandbox: &SandboxConfig) -> Result<()> {
    let (stop, stopped) = watch::channel(false);
    eprintln!(
        "evaluator: worker {} running {} chunk(s) at a time",
        config.name, config.concurrency
    );
    let workers = worker::run(
        database.pool.clone(),
        self::sandbox(sandbox)?,
        config,
        stopped,
    );
    tokio::pin!(workers);
    let result = tokio::select! {
        () = shutdown_signal() => {
            eprintln!("evaluator: finishing the chunks in hand");
            let _ = stop.send(true);
            workers.await
        }
        worked = &mut workers => worked,
    };
    database.close().await;
    result
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
