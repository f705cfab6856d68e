//! Running the service: database (configured or embedded), then the HTTP server
//! and job workers (or workers alone) until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use crate::api::{AppState, app};
use crate::db::{self, embedded::EmbeddedPostgres};
use crate::error::{Error, Result};
use crate::jobs::worker::{self, WorkerConfig};

/// A database connection, plus the embedded server it runs on when
/// `DATABASE_URL` is unset (kept so it stops when the command ends).
pub struct Database {
    /// The pool, migrated.
    pub pool: sqlx::PgPool,
    /// The embedded cluster, if one is used.
    pub embedded: Option<EmbeddedPostgres>,
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
                    .map_err(|e| Error::Database {
                        message: format!("embedded PostgreSQL start panicked: {e}"),
                    })??;
            tracing::info!(data_dir = %cluster.data_dir().display(), url = %cluster.url(), "embedded PostgreSQL");
            Ok(Database {
                pool: db::connect(&cluster.url()).await?,
                embedded: Some(cluster),
            })
        }
    }
}

fn sandbox() -> Result<Arc<reward_host::Host>> {
    reward_host::Host::new(reward_host::HostConfig::default())
        .map(Arc::new)
        .map_err(|e| Error::Usage(format!("cannot start the sandbox: {e}")))
}

/// Runs job workers until a shutdown signal, finishing the chunks in hand.
pub async fn work(database: Database, config: WorkerConfig) -> Result<()> {
    let (stop, stopped) = watch::channel(false);
    eprintln!(
        "evaluator: worker {} running {} chunk(s) at a time",
        config.name, config.concurrency
    );
    let workers = tokio::spawn(worker::run(
        database.pool.clone(),
        sandbox()?,
        config,
        stopped,
    ));
    shutdown_signal().await;
    eprintln!("evaluator: finishing the chunks in hand");
    let _ = stop.send(true);
    workers.await.map_err(|e| Error::Database {
        message: format!("workers panicked: {e}"),
    })??;
    database.pool.close().await;
    drop(database.embedded);
    Ok(())
}

/// Serves the API on `bind`, with `workers.concurrency` job workers beside it,
/// until a shutdown signal.
pub async fn serve(bind: SocketAddr, database: Database, workers: WorkerConfig) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .map_err(|source| Error::Io {
            action: "cannot listen on",
            path: bind.to_string().into(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| Error::Io {
        action: "cannot read the address of",
        path: bind.to_string().into(),
        source,
    })?;
    eprintln!("evaluator: listening on http://{local}");
    let host = sandbox()?;
    let state = AppState {
        db: database.pool.clone(),
        host: host.clone(),
    };
    let (stop, stopped) = watch::channel(false);
    let workers = (workers.concurrency > 0).then(|| {
        eprintln!(
            "evaluator: {} job worker(s) in this process",
            workers.concurrency
        );
        tokio::spawn(worker::run(database.pool.clone(), host, workers, stopped))
    });
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|source| Error::Io {
            action: "server failed on",
            path: local.to_string().into(),
            source,
        })?;
    let _ = stop.send(true);
    if let Some(workers) = workers {
        workers.await.map_err(|e| Error::Database {
            message: format!("workers panicked: {e}"),
        })??;
    }
    database.pool.close().await;
    drop(database.embedded);
    Ok(())
}

async fn shutdown_signal() {
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
