//! A PostgreSQL cluster run from the installed server binaries.
//!
//! Tests get a throwaway one ([`Cluster::temporary`]: a temp dir, a free port,
//! trust auth, stopped and removed on drop); `make run` keeps a persistent one
//! under the project's data dir ([`Cluster::persistent`]).
//!
//! With `SPOT_TEST_TIMESCALEDB=1` every temporary cluster preloads
//! TimescaleDB (`make test` runs the storage and end-to-end tests a second
//! time so, when it is installed); [`Cluster::temporary_timescaledb`] asks
//! for one explicitly.
//!
//! PostgreSQL refuses to run as root, so when we are root every server command
//! runs as the `postgres` system user (which Debian's package creates) and the
//! cluster's directory is handed to it.

use std::net::TcpListener;
use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why a cluster could not be made, started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("PostgreSQL server binaries not found (set PG_BIN to the directory holding initdb and pg_ctl)")]
    NoBinaries,
    #[error("running as root, but there is no `postgres` user to run the server as")]
    NoUser,
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} failed ({status}): {output}")]
    Command {
        command: String,
        status: String,
        output: String,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Io { what, source }
}

/// A cluster: a data directory, a port, and whether the server runs.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// `(uid, gid)` to run server commands as, when we are root.
    run_as: Option<(u32, u32)>,
    /// Remove the directory (and stop the server) on drop.
    temporary: bool,
    /// Keep PostgreSQL's default durability (fsync, synchronous commit).
    durable: bool,
    /// Load TimescaleDB at server start (`shared_preload_libraries`).
    timescaledb: bool,
}

impl Cluster {
    /// A new cluster in a fresh temp dir on a free port, started, with fsync
    /// and synchronous commit off (tests do not need durability).
    pub fn temporary() -> Result<Self, ClusterError> {
        Self::temporary_with(false)
    }

    /// [`Cluster::temporary`], keeping PostgreSQL's default durability when
    /// `durable` (benchmarks that compare commit-bound methods need it).
    pub fn temporary_with(durable: bool) -> Result<Self, ClusterError> {
        let timescaledb = std::env::var_os("SPOT_TEST_TIMESCALEDB").is_some_and(|v| v == "1");
        Self::temporary_as(durable, timescaledb)
    }

    /// A temporary cluster with TimescaleDB preloaded; `None` when the
    /// server has no TimescaleDB installed.
    pub fn temporary_timescaledb() -> Result<Option<Self>, ClusterError> {
        if !timescaledb_installed()? {
            return Ok(None);
        }
        Self::temporary_as(false, true).map(Some)
    }

    /// A temporary cluster, durable or not, loading TimescaleDB or not
    /// (whatever `SPOT_TEST_TIMESCALEDB` says).
    pub fn temporary_as(durable: bool, timescaledb: bool) -> Result<Self, ClusterError> {
        let dir = std::env::temp_dir().join(format!(
            "spot-pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let mut cluster = Cluster {
            bin: bin_dir()?,
            dir,
            port: free_port()?,
            run_as: run_as()?,
            temporary: true,
            durable,
            timescaledb,
        };
        cluster.init()?;
        cluster.start()?;
        Ok(cluster)
    }

    /// The cluster kept in `dir` (created on first use), started on `port` if
    /// it is not running already.
    pub fn persistent(dir: &Path, port: u16) -> Result<Self, ClusterError> {
        let dir = std::path::absolute(dir).map_err(io(format!("resolving {}", dir.display())))?;
        let mut cluster = Cluster {
            bin: bin_dir()?,
            dir,
            port,
            run_as: run_as()?,
            temporary: false,
            durable: true,
            timescaledb: false,
        };
        if !cluster.data().join("PG_VERSION").exists() {
            cluster.init()?;
        }
        if !cluster.is_running() {
            cluster.start()?;
        }
        Ok(cluster)
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for `database` (the `postgres` superuser, no password).
    pub fn url(&self, database: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The same, through the server's Unix socket in the cluster directory: the
    /// form Cloud Run's Cloud SQL connector gives (`?host=/cloudsql/...`).
    pub fn socket_url(&self, database: &str) -> String {
        format!(
            "postgresql://postgres@/{database}?host={}&port={}",
            self.dir.display(),
            self.port
        )
    }

    /// Create a database (for tests that want one each in a shared cluster).
    pub fn create_database(&self, name: &str) -> Result<String, ClusterError> {
        self.run(
            Command::new(self.bin.join("createdb")).args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                name,
            ]),
            "createdb",
        )?;
        Ok(self.url(name))
    }

    /// Start the server and wait until it accepts connections.
    pub fn start(&mut self) -> Result<(), ClusterError> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200",
            self.port,
            self.dir.display()
        );
        let options = if !self.durable {
            format!("{options} -c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        } else {
            options
        };
        let options = if self.timescaledb {
            format!("{options} -c shared_preload_libraries=timescaledb -c timescaledb.telemetry_level=off")
        } else {
            options
        };
        let log = self.dir.join("server.log");
        self.run(
            Command::new(self.bin.join("pg_ctl"))
                .arg("start")
                .arg("-w")
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(&log)
                .arg("-o")
                .arg(options),
            "pg_ctl start",
        )
        .map(|_| ())
    }

    /// Stop the server (fast: connections are cut, as in an outage) and wait.
    pub fn stop(&mut self) -> Result<(), ClusterError> {
        self.run(
            Command::new(self.bin.join("pg_ctl"))
                .args(["stop", "-w", "-m", "fast", "-D"])
                .arg(self.data()),
            "pg_ctl stop",
        )
        .map(|_| ())
    }

    /// Whether the server loads TimescaleDB.
    pub fn timescaledb(&self) -> bool {
        self.timescaledb
    }

    /// Load TimescaleDB (or not) from the next [`Cluster::start`] on.
    pub fn set_timescaledb(&mut self, on: bool) {
        self.timescaledb = on;
    }

    /// Whether a server runs on this cluster's data directory.
    pub fn is_running(&self) -> bool {
        self.run(
            Command::new(self.bin.join("pg_ctl"))
                .arg("status")
                .arg("-D")
                .arg(self.data()),
            "pg_ctl status",
        )
        .is_ok()
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn init(&mut self) -> Result<(), ClusterError> {
        std::fs::create_dir_all(&self.dir).map_err(io(format!("creating {}", self.dir.display())))?;
        if let Some((uid, gid)) = self.run_as {
            chown(&self.dir, Some(uid), Some(gid)).map_err(io(format!("chown {}", self.dir.display())))?;
        }
        self.run(
            Command::new(self.bin.join("initdb"))
                .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "-D"])
                .arg(self.data()),
            "initdb",
        )
        .map(|_| ())
    }

    fn run(&self, cmd: &mut Command, name: &str) -> Result<String, ClusterError> {
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
        let out = cmd
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .map_err(io(name))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(ClusterError::Command {
                command: name.to_string(),
                status: out.status.to_string(),
                output: text.trim().to_string(),
            })
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.temporary {
            let _ = self.run(
                Command::new(self.bin.join("pg_ctl"))
                    .args(["stop", "-w", "-m", "immediate", "-D"])
                    .arg(self.data()),
                "pg_ctl stop",
            );
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Whether the server binaries have TimescaleDB installed (its control file
/// in the extension directory `pg_config` names).
pub fn timescaledb_installed() -> Result<bool, ClusterError> {
    let bin = bin_dir()?;
    let share = match Command::new(bin.join("pg_config")).arg("--sharedir").output() {
        Ok(out) if out.status.success() => PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()),
        // Debian's layout without pg_config: /usr/lib/postgresql/V/bin → /usr/share/postgresql/V.
        _ => match bin.parent().and_then(|v| v.file_name()) {
            Some(version) => Path::new("/usr/share/postgresql").join(version),
            None => return Ok(false),
        },
    };
    Ok(share.join("extension/timescaledb.control").exists())
}

/// `PG_BIN`, else the newest `/usr/lib/postgresql/*/bin` holding `initdb`.
fn bin_dir() -> Result<PathBuf, ClusterError> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| ClusterError::NoBinaries)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or(ClusterError::NoBinaries)
}

/// The `postgres` user's ids when we are root (the server refuses root).
fn run_as() -> Result<Option<(u32, u32)>, ClusterError> {
    let me = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    if me.unwrap_or(0) != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(io("reading /etc/passwd"))?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == "postgres")
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .map(Some)
        .ok_or(ClusterError::NoUser)
}

/// A port nobody listens on right now.
fn free_port() -> Result<u16, ClusterError> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(io("finding a free port"))?;
    l.local_addr().map(|a| a.port()).map_err(io("finding a free port"))
}
