//! Naming a module on the command line: `builtin:NAME` or a path to a `.wasm` file
//! (a component, or a core module built with the reward SDK).

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use reward_builtins::Embedded;
use reward_host::{Host, RewardModule};

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

/// Compiles and checks a module in the sandbox off the async threads
/// (compiling is CPU-bound and can take a while): the API's and the pages'
/// uploads and the workers' first use of a stored module all come here.
///
/// The outer error is the task's (it panicked); the inner one the sandbox's
/// verdict on the module.
pub async fn compile(
    host: &Arc<Host>,
    bytes: axum::body::Bytes,
) -> Result<Result<Arc<RewardModule>, reward_host::Error>> {
    let host = host.clone();
    tokio::task::spawn_blocking(move || host.load(&bytes))
        .await
        .map_err(|source| Error::TaskPanicked {
            task: "module compilation",
            source,
        })
}
