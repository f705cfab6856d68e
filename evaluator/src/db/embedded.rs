//! The embedded default: a private PostgreSQL cluster in a data directory, used
//! when `DATABASE_URL` is not set.
//!
//! It runs the system's own server binaries (`initdb`, `pg_ctl`): PostgreSQL is a
//! well-kept server, and bundling one would only pin an older copy. `initdb`
//! refuses to run as root, so as root the directory is handed to the `postgres`
//! system user and the binaries run as that user (`runuser`); the data directory
//! must then be reachable by that user (the root default, `/var/lib/evaluator`,
//! is).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// Where to install the server binaries, for error messages.
const INSTALL_HINT: &str = "install PostgreSQL's server binaries (Debian/Ubuntu: \
    `apt-get install postgresql`; macOS: `brew install postgresql`), or set DATABASE_URL \
    to a running server";

/// A cluster this process made sure is running. Stops it on drop if this process
/// started it, so a `serve` or `admin` command leaves things as it found them.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    data_dir: PathBuf,
    bin_dir: PathBuf,
    port: u16,
    as_postgres_user: bool,
    started_here: bool,
}

impl EmbeddedPostgres {
    /// The default data directory: `$EVALUATOR_DATA_DIR/postgres`, else
    /// `/var/lib/evaluator/postgres` as root (the `postgres` user must reach it),
    /// else `$XDG_DATA_HOME/evaluator/postgres` or `~/.local/share/evaluator/postgres`.
    pub fn default_data_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("EVALUATOR_DATA_DIR") {
            return PathBuf::from(dir).join("postgres");
        }
        if is_root() {
            return PathBuf::from("/var/lib/evaluator/postgres");
        }
        let base = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("evaluator/postgres")
    }

    /// Initializes the cluster if the directory holds none, and starts it unless it
    /// is already running (for instance under a concurrent `evaluator serve`).
    pub fn ensure_running(data_dir: &Path) -> Result<Self> {
        let bin_dir = find_bin_dir()?;
        let as_postgres_user = is_root();
        let mut cluster = EmbeddedPostgres {
            data_dir: data_dir.to_path_buf(),
            bin_dir,
            port: 0,
            as_postgres_user,
            started_here: false,
        };
        if !data_dir.join("PG_VERSION").exists() {
            cluster.init()?;
        }
        if let Some(port) = cluster.running_port() {
            cluster.port = port;
            return Ok(cluster);
        }
        cluster.port = free_port()?;
        cluster.start()?;
        cluster.started_here = true;
        Ok(cluster)
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    fn init(&self) -> Result<()> {
        std::fs::create_dir_all(&self.data_dir).map_err(|source| Error::Io {
            action: "cannot create the PostgreSQL data directory",
            path: self.data_dir.clone(),
            source,
        })?;
        if self.as_postgres_user {
            self.run(
                "chown",
                Command::new("chown")
                    .arg("-R")
                    .arg("postgres:")
                    .arg(&self.data_dir),
            )?;
        }
        let mut initdb = self.command("initdb");
        initdb.arg("-D").arg(&self.data_dir).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-instructions",
        ]);
        self.run("initdb", &mut initdb)
    }

    fn start(&self) -> Result<()> {
        let log = self.data_dir.join("server.log");
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&log)
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1",
                self.port,
                self.data_dir.display()
            ))
            .args(["-w", "-t", "60", "start"]);
        self.run("pg_ctl start", &mut pg_ctl).map_err(|e| match e {
            Error::Embedded { message } => Error::Embedded {
                message: format!("{message}\n(server log: {})", log.display()),
            },
            other => other,
        })
    }

    /// The port of a server already running on this data directory, read from
    /// its `postmaster.pid` (line 4) once `pg_ctl status` confirms it is alive.
    fn running_port(&self) -> Option<u16> {
        let mut status = self.command("pg_ctl");
        status.arg("-D").arg(&self.data_dir).arg("status");
        if !status.output().ok()?.status.success() {
            return None;
        }
        let pid_file = std::fs::read_to_string(self.data_dir.join("postmaster.pid")).ok()?;
        pid_file.lines().nth(3)?.trim().parse().ok()
    }

    fn command(&self, program: &str) -> Command {
        let binary = self.bin_dir.join(program);
        if self.as_postgres_user {
            // util-linux's runuser lives in /usr/sbin, which a root shell may not
            // have on PATH.
            let runuser = ["/usr/sbin/runuser", "/sbin/runuser"]
                .into_iter()
                .find(|p| Path::new(p).exists())
                .unwrap_or("runuser");
            let mut cmd = Command::new(runuser);
            cmd.args(["-u", "postgres", "--"]).arg(binary);
            cmd
        } else {
            Command::new(binary)
        }
    }

    fn run(&self, what: &str, cmd: &mut Command) -> Result<()> {
        let output = cmd.output().map_err(|e| Error::Embedded {
            message: format!(
                "cannot run {what} ({}): {e}; {INSTALL_HINT}",
                Path::new(cmd.get_program()).display()
            ),
        })?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(Error::Embedded {
            message: format!(
                "{what} failed for the embedded PostgreSQL in {}: {}",
                self.data_dir.display(),
                stderr.trim()
            ),
        })
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if self.started_here {
            let mut stop = self.command("pg_ctl");
            stop.arg("-D")
                .arg(&self.data_dir)
                .args(["-m", "fast", "-w", "stop"]);
            let _ = stop.output();
        }
    }
}

/// `initdb` and `pg_ctl` from PATH, else the newest `/usr/lib/postgresql/*/bin`
/// (Debian keeps them off PATH).
fn find_bin_dir() -> Result<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    });
    if let Some(dir) = on_path {
        return Ok(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| Error::Embedded {
            message: format!(
                "no PostgreSQL server binaries (initdb, pg_ctl) found; {INSTALL_HINT}"
            ),
        })
}

fn free_port() -> Result<u16> {
    // The port is released before the server binds it; another process taking it
    // in between makes pg_ctl fail with a clear message, which is acceptable for a
    // single-user default.
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::Embedded {
            message: format!("cannot find a free port for the embedded PostgreSQL: {e}"),
        })
}

fn is_root() -> bool {
    // The effective uid, from /proc (Linux); elsewhere, assume an ordinary user.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}
