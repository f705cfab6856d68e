//! Compiled code on disk, so a restarted service deserializes its modules in
//! milliseconds instead of compiling each again.
//!
//! One file per module and engine: `<sha256 of the module>-<engine key>.cwasm`,
//! where the engine key hashes wasmtime's compatibility hash (its version,
//! target, Cranelift flags and the features this host enables). A file holds a
//! magic line, the module's SHA-256, the SHA-256 of the payload, and the payload
//! (wasmtime's serialized component). On read, a file whose magic, module or
//! digest does not match — truncated, corrupted, copied from another module or
//! written by another engine — is counted as rejected, deleted and rebuilt.
//!
//! The digest detects accidents, not an adversary: wasmtime runs serialized code
//! as it is, so the directory must be writable by the service alone (as its
//! database directory is).

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::{Error, Result};
use crate::host::Stats;

/// Identifies this file format (and its version) at the start of every entry.
const MAGIC: &[u8; 16] = b"reward-host-cw1\n";
const HEADER: usize = MAGIC.len() + 32 + 32;

pub(crate) struct DiskCache {
    dir: PathBuf,
    engine_key: String,
}

impl DiskCache {
    /// Opens (creating it if needed) the cache directory for `engine`.
    pub(crate) fn open(dir: &Path, engine: &Engine) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Config {
            reason: format!("cannot create the compile cache {}: {e}", dir.display()),
        })?;
        let mut hasher = Sha256Hasher::default();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(DiskCache {
            dir: dir.to_path_buf(),
            engine_key: hex::encode(&hasher.0.finalize()[..8]),
        })
    }

    /// Where the entry for a module lives.
    pub(crate) fn path(&self, sha256: &[u8; 32]) -> PathBuf {
        self.dir
            .join(format!("{}-{}.cwasm", hex::encode(sha256), self.engine_key))
    }

    /// The cached component, or `None` (a miss, or an entry rejected and
    /// removed; `stats` says which).
    pub(crate) fn get(
        &self,
        engine: &Engine,
        sha256: &[u8; 32],
        stats: &Stats,
    ) -> Option<Component> {
        let path = self.path(sha256);
        let bytes = std::fs::read(&path).ok()?;
        let intact = bytes.len() >= HEADER
            && &bytes[..MAGIC.len()] == MAGIC
            && bytes[MAGIC.len()..MAGIC.len() + 32] == sha256[..]
            && bytes[MAGIC.len() + 32..HEADER] == Sha256::digest(&bytes[HEADER..])[..];
        let component = intact
            .then(|| crate::compiler::deserialize_own(engine, &bytes[HEADER..]).ok())
            .flatten();
        match component {
            Some(component) => {
                stats.cache_hits.fetch_add(1, Ordering::Relaxed);
                Some(component)
            }
            None => {
                stats.cache_rejected.fetch_add(1, Ordering::Relaxed);
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Writes an entry: to a temporary file in the same directory, then renamed
    /// into place, so a reader never sees half an entry.
    pub(crate) fn put(&self, sha256: &[u8; 32], artifact: &[u8]) -> std::io::Result<()> {
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)?;
        file.write_all(MAGIC)?;
        file.write_all(sha256)?;
        file.write_all(&Sha256::digest(artifact))?;
        file.write_all(artifact)?;
        file.as_file().sync_all()?;
        file.persist(self.path(sha256)).map_err(|e| e.error)?;
        Ok(())
    }
}

/// Feeds `Hash` output into SHA-256, so the engine key is the same in every
/// process and release (std's `DefaultHasher` promises neither).
#[derive(Default)]
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
    }
}
