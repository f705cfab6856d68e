//! Naming a module on the command line ([`ModuleSource`]: `builtin:NAME` or a
//! path to a `.wasm` file, a component or a core module built with the reward
//! SDK), and the service's [`Sandbox`]: the host behind a compile queue.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use reward_builtins::Embedded;
use reward_host::{Host, RewardModule};
use tokio::sync::Semaphore;

use crate::domain::TeamId;
use crate::error::{Error, Result};

/// Where a module's bytes come from.
#[derive(Debug, Clone)]
pub enum ModuleSource {
    /// One of the modules embedded in this binary.
    Builtin(&'static Embedded),
    /// A file on disk.
    File(PathBuf),
}

impl ModuleSource {
    /// Parses `builtin:NAME` or a path.
    pub fn parse(spec: &str) -> Result<Self> {
        match spec.strip_prefix("builtin:") {
            Some(name) => reward_builtins::builtin(name)
                .map(ModuleSource::Builtin)
                .ok_or_else(|| Error::UnknownBuiltin {
                    name: name.to_string(),
                    available: reward_builtins::builtins()
                        .map(|m| m.name)
                        .collect::<Vec<_>>()
                        .join(", "),
                }),
            None => Ok(ModuleSource::File(PathBuf::from(spec))),
        }
    }

    /// The module's bytes.
    pub fn bytes(&self) -> Result<Cow<'static, [u8]>> {
        match self {
            ModuleSource::Builtin(embedded) => Ok(Cow::Borrowed(embedded.wasm)),
            ModuleSource::File(path) => {
                std::fs::read(path)
                    .map(Cow::Owned)
                    .map_err(|source| Error::Io {
                        action: "cannot read module file",
                        path: path.clone(),
                        source,
                    })
            }
        }
    }

    /// How the user named it, for messages.
    pub fn display(&self) -> String {
        match self {
            ModuleSource::Builtin(embedded) => format!("builtin:{}", embedded.name),
            ModuleSource::File(path) => path.display().to_string(),
        }
    }

    /// Reads, validates and compiles the module.
    pub fn load(&self, host: &Host) -> Result<Arc<RewardModule>> {
        host.load(&self.bytes()?).map_err(|source| Error::Module {
            module: self.display(),
            context: "failed to load".into(),
            source,
        })
    }
}

/// Bounds on the service's compilations, shared by uploads and job workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Compilations running at once in this process (each may also use
    /// wasmtime's parallel compilation threads).
    pub concurrent: usize,
    /// Uploads that may wait for a place; beyond them an upload is refused
    /// with 503 and a retry hint.
    pub waiting: usize,
    /// Places (running or waiting) one team may hold, so that one team cannot
    /// fill the queue for the others.
    pub per_team: usize,
    /// The retry hint given with a refusal.
    pub retry_after: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            concurrent: std::thread::available_parallelism().map_or(1, |n| n.get()),
            waiting: 8,
            per_team: 2,
            retry_after: Duration::from_secs(5),
        }
    }
}

/// Why an upload was not let into the compile queue.
#[derive(Debug, thiserror::Error)]
#[error("{reason}; retry in {} s", retry_after.as_secs())]
pub struct Busy {
    /// In the uploader's terms.
    pub reason: String,
    /// When trying again is worthwhile.
    pub retry_after: Duration,
}

/// The sandbox as the service uses it: the host, and the queue every
/// compilation passes through, so that no burst of uploads (or of jobs naming
/// new modules) compiles more than [`QueueConfig::concurrent`] modules at once.
///
/// Waiting is first come, first served (tokio's semaphore is fair); an upload
/// finds a place or is refused at once, a job worker always waits. Loads that
/// need no compilation ([`Host::is_compiled`]) skip the queue.
pub struct Sandbox {
    host: Arc<Host>,
    config: QueueConfig,
    permits: Semaphore,
    /// Places held by uploads (running or waiting), in all and per team.
    places: Mutex<Places>,
}

#[derive(Default)]
struct Places {
    total: usize,
    by_team: HashMap<TeamId, usize>,
}

impl Sandbox {
    /// A queue in front of `host`.
    pub fn new(host: Arc<Host>, config: QueueConfig) -> Arc<Self> {
        Arc::new(Sandbox {
            host,
            permits: Semaphore::new(config.concurrent.max(1)),
            config,
            places: Mutex::new(Places::default()),
        })
    }

    /// The host behind the queue.
    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }

    /// Uploads holding a place now (compiling or waiting to).
    pub fn uploads_in_queue(&self) -> usize {
        self.lock_places().total
    }

    /// Compiles an upload of `team`'s, if the queue has a place for it.
    ///
    /// The outer error is the queue's refusal, the middle one the task's (it
    /// panicked), the inner one the sandbox's verdict on the module.
    pub async fn upload(
        &self,
        team: TeamId,
        bytes: Bytes,
    ) -> std::result::Result<Result<LoadResult>, Busy> {
        if self.host.is_compiled(&bytes) {
            return Ok(self.compile(bytes).await);
        }
        let _place = self.take_place(team)?;
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        Ok(self.compile(bytes).await)
    }

    /// Compiles a module a job needs, waiting for a place as long as it takes.
    pub async fn load(&self, bytes: Bytes) -> Result<LoadResult> {
        if self.host.is_compiled(&bytes) {
            return self.compile(bytes).await;
        }
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        self.compile(bytes).await
    }

    fn take_place(&self, team: TeamId) -> std::result::Result<PlaceGuard<'_>, Busy> {
        let busy = |reason: String| Busy {
            reason,
            retry_after: self.config.retry_after,
        };
        let mut places = self.lock_places();
        let held = places.by_team.get(&team).copied().unwrap_or(0);
        if held >= self.config.per_team {
            return Err(busy(format!(
                "your team already has {held} module(s) compiling or waiting to compile \
                 (at most {} at once)",
                self.config.per_team
            )));
        }
        if places.total >= self.config.concurrent.max(1) + self.config.waiting {
            return Err(busy(format!(
                "the service is compiling {} module(s) with {} waiting, its most",
                self.config.concurrent.max(1),
                self.config.waiting
            )));
        }
        places.total += 1;
        *places.by_team.entry(team).or_default() += 1;
        Ok(PlaceGuard {
            sandbox: self,
            team,
        })
    }

    fn lock_places(&self) -> std::sync::MutexGuard<'_, Places> {
        // Each update is a pair of counter changes made under the lock: a panic
        // elsewhere cannot leave them half-done.
        self.places.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Compiles and checks off the async threads (compiling is CPU-bound and
    /// can take seconds).
    async fn compile(&self, bytes: Bytes) -> Result<LoadResult> {
        let host = self.host.clone();
        tokio::task::spawn_blocking(move || host.load(&bytes))
            .await
            .map_err(|source| Error::TaskPanicked {
                task: "module compilation",
                source,
            })
    }
}

/// What loading a module gives: the module, or the sandbox's verdict on it.
pub type LoadResult = std::result::Result<Arc<RewardModule>, reward_host::Error>;

/// A place in the queue, given back when the upload's compilation ends (or
/// its request is dropped while waiting).
struct PlaceGuard<'a> {
    sandbox: &'a Sandbox,
    team: TeamId,
}

impl Drop for PlaceGuard<'_> {
    fn drop(&mut self) {
        let mut places = self.sandbox.lock_places();
        places.total -= 1;
        if let Some(held) = places.by_team.get_mut(&self.team) {
            *held -= 1;
            if *held == 0 {
                places.by_team.remove(&self.team);
            }
        }
    }
}
