//! A throwaway PostgreSQL cluster for one test: `initdb` into a temp dir, then
//! `postgres` on a free port with logical decoding on. PostgreSQL refuses to run
//! as root, so as root both run as the `postgres` OS user (set through
//! `Command::uid`, no `su` or `runuser` needed) and the temp dir is chowned to it.

use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};
use tempfile::TempDir;

use super::{append_to, free_port, log_tail, reap, signal, stop_blocking, wait_for_server};

const START_DEADLINE: Duration = Duration::from_secs(60);
const STOP_DEADLINE: Duration = Duration::from_secs(60);
const PORT_ATTEMPTS: usize = 3;

/// A running (or stopped) PostgreSQL cluster, removed with its data on drop,
/// also when the test panics.
pub struct PgServer {
    /// Holds `data/`, `sock/` (the Unix socket, so clusters never collide on
    /// /tmp/.s.PGSQL.*) and `postgres.log`; deleted last, on drop.
    dir: TempDir,
    /// Where `initdb` and `postgres` are.
    bin: PathBuf,
    /// The OS user (uid, gid) the server runs as when the tests run as root.
    run_as: Option<(u32, u32)>,
    port: u16,
    /// The postmaster, while it runs.
    child: Option<Child>,
    /// Settings after the harness's own, which they override.
    extra_settings: Vec<String>,
}

impl PgServer {
    /// Creates a cluster and starts it; panics with the log's tail if it fails.
    pub async fn start() -> PgServer {
        PgServer::start_with_settings(&[]).await
    }

    /// [`PgServer::start`] with `settings` (`name=value`) over the harness's
    /// own (`wal_level=replica`, say).
    pub async fn start_with_settings(settings: &[&str]) -> PgServer {
        let run_as = postgres_user_if_root();
        let dir = temp_dir_owned_by(run_as);
        let bin = postgres_bindir();
        initdb(&bin, dir.path(), run_as).await;
        let mut server = PgServer {
            dir,
            bin,
            run_as,
            port: 0,
            child: None,
            extra_settings: settings.iter().map(|s| s.to_string()).collect(),
        };
        server.start_on_a_free_port().await;
        server
    }

    /// `postgres://postgres@127.0.0.1:PORT/db` (trust authentication).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where the server writes its log (all starts of this cluster append to it).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// Creates database `name` and returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        let mut conn = self.connect("postgres").await;
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        self.url(name)
    }

    /// A connection pool to database `db`.
    pub async fn pool(&self, db: &str) -> PgPool {
        PgPool::connect(&self.url(db))
            .await
            .unwrap_or_else(|e| panic!("connecting a pool to {}: {e}", self.url(db)))
    }

    /// Fast shutdown (if running), then a start on the same port and data
    /// directory, waiting until it accepts connections. After `stop_immediate`
    /// this is a crash recovery.
    pub async fn restart(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, "INT");
            reap(&mut child, STOP_DEADLINE, "postgres shut down").await;
        }
        let started = self.spawn_and_wait_ready().await;
        started.unwrap_or_else(|reason| self.fail(&reason));
    }

    /// Immediate shutdown, like a crash: no checkpoint, recovery on next start.
    pub async fn stop_immediate(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, "QUIT");
            reap(&mut child, STOP_DEADLINE, "postgres stopped").await;
        }
    }

    async fn connect(&self, db: &str) -> PgConnection {
        PgConnection::connect(&self.url(db))
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.url(db)))
    }

    async fn start_on_a_free_port(&mut self) {
        let mut reason = String::new();
        for _ in 0..PORT_ATTEMPTS {
            self.port = free_port();
            match self.spawn_and_wait_ready().await {
                Ok(()) => return,
                Err(why) => reason = why,
            }
        }
        self.fail(&reason)
    }

    /// Starts the postmaster and waits until it accepts connections; on failure
    /// the postmaster is gone and the reason says why.
    async fn spawn_and_wait_ready(&mut self) -> Result<(), String> {
        let mut child =
            (self.postgres_command().spawn()).map_err(|e| format!("spawning postgres: {e}"))?;
        let url = self.url("postgres");
        let ready = wait_for_server(&mut child, START_DEADLINE, || accepts_connections(&url)).await;
        match ready {
            Ok(()) => self.child = Some(child),
            Err(_) => stop_blocking(&mut child, "QUIT"),
        }
        ready
    }

    fn postgres_command(&self) -> Command {
        let dir = self.dir.path();
        let mut command = Command::new(self.bin.join("postgres"));
        command
            .arg("-D")
            .arg(dir.join("data"))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(dir.join("sock"))
            .args(SERVER_SETTINGS.iter().flat_map(|setting| ["-c", setting]))
            .args(
                self.extra_settings
                    .iter()
                    .flat_map(|setting| ["-c", setting]),
            )
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(append_to(&self.log_path()))
            .stderr(append_to(&self.log_path()));
        as_user(&mut command, self.run_as);
        command
    }

    fn fail(&self, reason: &str) -> ! {
        panic!(
            "PostgreSQL failed to start: {reason}\n--- last lines of {} ---\n{}",
            self.log_path().display(),
            log_tail(&self.log_path(), 30)
        )
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Immediate shutdown stops the backends too, which SIGKILL would orphan.
            stop_blocking(&mut child, "QUIT");
        }
    }
}

const SERVER_SETTINGS: &[&str] = &[
    "wal_level=logical",
    "max_replication_slots=20",
    "max_wal_senders=20",
    "fsync=off",
    "listen_addresses=127.0.0.1",
    "wal_sender_timeout=10s",
];

async fn accepts_connections(url: &str) -> Result<(), String> {
    let conn = PgConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let _ = conn.close().await;
    Ok(())
}

async fn initdb(bin: &Path, dir: &Path, run_as: Option<(u32, u32)>) {
    let log = dir.join("initdb.log");
    let mut command = tokio::process::Command::new(bin.join("initdb"));
    command
        .arg("-D")
        .arg(dir.join("data"))
        .args([
            "--auth=trust",
            "--username=postgres",
            "--locale=C",
            "--encoding=UTF8",
            "--no-sync",
        ])
        .current_dir(dir)
        // initdb writes the machine's zone as the server's TimeZone: UTC
        // everywhere, as the tests expect (`check` notes views that compute
        // in UTC on a database in another zone).
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .stdout(append_to(&log))
        .stderr(append_to(&log));
    if let Some((uid, gid)) = run_as {
        command.uid(uid).gid(gid);
    }
    let status = command
        .status()
        .await
        .unwrap_or_else(|e| panic!("running initdb: {e}"));
    assert!(
        status.success(),
        "initdb failed ({status}):\n{}",
        log_tail(&log, 30)
    );
}

/// `pg_config --bindir` if it has `initdb`, else the newest
/// /usr/lib/postgresql/*/bin.
fn postgres_bindir() -> PathBuf {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        .filter(|bin| bin.join("initdb").exists());
    from_pg_config.or_else(newest_debian_bindir).expect(
        "no PostgreSQL binaries: neither `pg_config --bindir` nor /usr/lib/postgresql/*/bin has initdb",
    )
}

fn newest_debian_bindir() -> Option<PathBuf> {
    let versions = std::fs::read_dir("/usr/lib/postgresql").ok()?;
    versions
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            Some((
                entry.file_name().to_str()?.parse::<u32>().ok()?,
                entry.path(),
            ))
        })
        .map(|(version, path)| (version, path.join("bin")))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .max_by_key(|(version, _)| *version)
        .map(|(_, bin)| bin)
}

/// PostgreSQL refuses to run as root: then run it as the `postgres` user.
fn postgres_user_if_root() -> Option<(u32, u32)> {
    if id(&["-u"])? != 0 {
        return None;
    }
    let uid = id(&["-u", "postgres"]);
    let gid = id(&["-g", "postgres"]);
    Some(
        uid.zip(gid)
            .expect("running as root needs a `postgres` OS user to run PostgreSQL as"),
    )
}

fn id(args: &[&str]) -> Option<u32> {
    let out = Command::new("id").args(args).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Under /tmp when root, whatever TMPDIR says: the `postgres` user must be able
/// to reach it, and root's own temp dir may be private.
fn temp_dir_owned_by(run_as: Option<(u32, u32)>) -> TempDir {
    let builder = tempfile::Builder::new()
        .prefix("viewkeeper-pg-")
        .tempdir_in(match run_as {
            Some(_) => PathBuf::from("/tmp"),
            None => std::env::temp_dir(),
        });
    let dir = builder.expect("creating the PostgreSQL temp dir");
    std::fs::create_dir(dir.path().join("sock")).expect("creating the socket dir");
    if let Some((uid, gid)) = run_as {
        for path in [dir.path().to_owned(), dir.path().join("sock")] {
            chown(&path, Some(uid), Some(gid)).expect("handing the temp dir to postgres");
        }
    }
    dir
}

fn as_user(command: &mut Command, run_as: Option<(u32, u32)>) {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = run_as {
        command.uid(uid).gid(gid);
    }
}
