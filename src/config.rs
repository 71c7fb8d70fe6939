//! Service configuration: `viewkeeper.yaml`, overridden by environment
//! variables, overridden by command-line flags.
//!
//! Every setting has all three forms: `database_url` in the file,
//! `VIEWKEEPER_DATABASE_URL` in the environment, `--database-url` on the
//! command line. No file is needed when flags or variables give the rest.
//! URLs may carry passwords: `Debug` and every log line show them redacted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::source::connection::redact_url;
use crate::source::stream::BatchLimits;

const DEFAULT_FILE: &str = "viewkeeper.yaml";
const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:9187";
const DEFAULT_VIEWS: &str = "views";
const DEFAULT_DATA_DIR: &str = "data";

/// The log filter unless one is given. sqlx's own warnings are left out:
/// after a PostgreSQL restart they repeat the server's "terminating
/// connection" notice, the pool's slow acquires and its failed tests of
/// returned connections and its pings of idle ones seconds later, which
/// read as new failures, while viewkeeper already says what it lost and
/// when it reconnected. So does the replication client's own error when
/// its connection ends, which viewkeeper logs as the stream's interruption.
/// And sqlx's slow-statement warnings, which print a whole batch's
/// statement with its values into the log (an aggregate table's upsert
/// waits for its lock each batch).
const DEFAULT_LOG: &str = "info,sqlx::postgres::notice=error,sqlx::pool::acquire=error,\
                           sqlx_core::pool::connection=error,sqlx_core::pool::inner=warn,\
                           sqlx::query=error,pgwire_replication::client::tokio_client=off";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {reason}")]
    File { path: String, reason: String },
    #[error(
        "no database URL: set --database-url, VIEWKEEPER_DATABASE_URL or `database_url` in {DEFAULT_FILE}"
    )]
    MissingDatabaseUrl,
    #[error("{setting}: {reason}")]
    Invalid {
        setting: &'static str,
        reason: String,
    },
}

/// The command-line and environment form of every setting.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// Config file [default: viewkeeper.yaml, if present]
    #[arg(long, env = "VIEWKEEPER_CONFIG")]
    pub config: Option<PathBuf>,
    /// PostgreSQL URL (postgres://user:password@host:port/db)
    #[arg(long, env = "VIEWKEEPER_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Redis URL [default: redis://127.0.0.1:6379]
    #[arg(long, env = "VIEWKEEPER_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Database of the aggregate views' tables: postgres://… or sqlite:path [default: the source database]
    #[arg(long, env = "VIEWKEEPER_AGGREGATES_URL", hide_env_values = true)]
    pub aggregates_url: Option<String>,
    /// Directory of view files [default: views]
    #[arg(long, env = "VIEWKEEPER_VIEWS")]
    pub views: Option<PathBuf>,
    /// Directory of the state store [default: data]
    #[arg(long, env = "VIEWKEEPER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Replication slot name [default: viewkeeper]
    #[arg(long, env = "VIEWKEEPER_SLOT")]
    pub slot: Option<String>,
    /// Publication name [default: viewkeeper]
    #[arg(long, env = "VIEWKEEPER_PUBLICATION")]
    pub publication: Option<String>,
    /// Redis key holding the cache sink's checkpoint [default: viewkeeper:checkpoint:{slot}]
    #[arg(long, env = "VIEWKEEPER_REDIS_CHECKPOINT_KEY")]
    pub redis_checkpoint_key: Option<String>,
    /// A batch closes at the first commit after this many changes [default: 20000]
    #[arg(long, env = "VIEWKEEPER_BATCH_MAX_CHANGES")]
    pub batch_max_changes: Option<usize>,
    /// An idle engine takes a batch this many milliseconds after its first commit [default: 20]
    #[arg(long, env = "VIEWKEEPER_BATCH_MAX_WAIT_MS")]
    pub batch_max_wait_ms: Option<u64>,
    /// Roots a batch refreshes in its own transaction; more are refreshed in later ones [default: 100000]
    #[arg(long, env = "VIEWKEEPER_BATCH_MAX_ROOTS")]
    pub batch_max_roots: Option<usize>,
    /// A cache or search document larger than this is a dead letter, not an output [default: 16777216]
    #[arg(long, env = "VIEWKEEPER_MAX_DOCUMENT_BYTES")]
    pub max_document_bytes: Option<usize>,
    /// A state-store checkpoint is written once its log holds this many MiB (and four times the last checkpoint) [default: 64]
    #[arg(long, env = "VIEWKEEPER_STATE_CHECKPOINT_MB")]
    pub state_checkpoint_mb: Option<u64>,
    /// Memory, in MiB, that all sinks' outboxes may hold together; a sink whose entries are dropped beyond it rewrites its target [default: 256]
    #[arg(long, env = "VIEWKEEPER_OUTBOX_MEMORY_MB")]
    pub outbox_memory_mb: Option<usize>,
    /// No longer used: the state store is held in memory (accepted so that
    /// older settings still start; a warning says it is ignored)
    #[arg(long, env = "VIEWKEEPER_STATE_CACHE_MB", hide = true)]
    pub state_cache_mb: Option<usize>,
    /// Log filter, in `RUST_LOG` syntax [default: info, with sqlx's notices and slow-acquire warnings at error]
    #[arg(long, env = "VIEWKEEPER_LOG")]
    pub log: Option<String>,
    /// Address of the admin HTTP API [default: 127.0.0.1:9187]
    #[arg(long, env = "VIEWKEEPER_ADMIN_ADDR")]
    pub admin_addr: Option<String>,
    /// Bearer token that mutating admin calls must carry; without one they are refused
    #[arg(long, env = "VIEWKEEPER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

/// How the commands that call the running service (`status`, `rebuild`,
/// `reload`, `drop`, `dead-letters`) reach it: flags and environment, then
/// the config file `run` reads, then the default address.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AdminArgs {
    /// Config file, for `admin_addr` and `admin_token` not given here [default: viewkeeper.yaml, if present]
    #[arg(long, env = "VIEWKEEPER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address of the running service's admin API [default: the config file's, else 127.0.0.1:9187]
    #[arg(long, env = "VIEWKEEPER_ADMIN_ADDR")]
    pub admin_addr: Option<String>,
    /// The service's admin token [default: the config file's]
    #[arg(long, env = "VIEWKEEPER_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

/// The running service's admin API, as a command calls it.
pub struct AdminEndpoint {
    pub addr: String,
    pub token: Option<String>,
}

impl AdminArgs {
    pub fn resolve(&self) -> Result<AdminEndpoint, ConfigError> {
        let file = read_file(self.config.as_deref())?;
        let addr = pick(&self.admin_addr, file.admin_addr, DEFAULT_ADMIN_ADDR.into());
        Ok(AdminEndpoint {
            addr: parse_addr(&addr)?.to_string(),
            token: self
                .admin_token
                .clone()
                .or(file.admin_token)
                .filter(|token| !token.is_empty()),
        })
    }
}

/// The settings of `check`: flags and environment, then the config file
/// `run` reads, then the defaults.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CheckArgs {
    /// Config file, for the settings not given here [default: viewkeeper.yaml, if present]
    #[arg(long, env = "VIEWKEEPER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory of view files [default: views]
    #[arg(long, env = "VIEWKEEPER_VIEWS")]
    pub views: Option<PathBuf>,
    /// PostgreSQL URL; without one (here or in the config file) only the offline checks run
    #[arg(long, env = "VIEWKEEPER_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Database of the aggregate views' tables, to check that each is
    /// viewkeeper's or absent [default: the source database]
    #[arg(long, env = "VIEWKEEPER_AGGREGATES_URL", hide_env_values = true)]
    pub aggregates_url: Option<String>,
    /// The publication `run` creates or changes, to check the role may [default: the config file's, else its slot's name, else viewkeeper]
    #[arg(long, env = "VIEWKEEPER_PUBLICATION")]
    pub publication: Option<String>,
}

/// What `check` checks, and against what.
pub struct CheckSettings {
    pub views: PathBuf,
    pub database_url: Option<String>,
    pub aggregates_url: Option<String>,
    pub publication: String,
}

impl CheckArgs {
    pub fn resolve(&self) -> Result<CheckSettings, ConfigError> {
        let file = read_file(self.config.as_deref())?;
        Ok(CheckSettings {
            views: pick(&self.views, file.views, DEFAULT_VIEWS.into()),
            database_url: self.database_url.clone().or(file.database_url),
            aggregates_url: self.aggregates_url.clone().or(file.aggregates_url),
            // As `run` names it: after the slot.
            publication: pick(
                &self.publication,
                file.publication,
                file.slot.unwrap_or_else(|| "viewkeeper".into()),
            ),
        })
    }
}

/// Where `search` finds the view files and the indexes: flags and
/// environment, then the config file `run` reads, then the defaults.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DirArgs {
    /// Config file, for `views` and `data_dir` not given here [default: viewkeeper.yaml, if present]
    #[arg(long, env = "VIEWKEEPER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory of view files [default: views]
    #[arg(long, env = "VIEWKEEPER_VIEWS")]
    pub views: Option<PathBuf>,
    /// Directory of the state store and indexes [default: data]
    #[arg(long, env = "VIEWKEEPER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

impl DirArgs {
    /// The views directory and the data directory.
    pub fn resolve(&self) -> Result<(PathBuf, PathBuf), ConfigError> {
        let file = read_file(self.config.as_deref())?;
        Ok((
            pick(&self.views, file.views, DEFAULT_VIEWS.into()),
            pick(&self.data_dir, file.data_dir, DEFAULT_DATA_DIR.into()),
        ))
    }
}

/// The file form. Unknown keys are refused, so a typo is an error, not a
/// silently ignored setting.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    database_url: Option<String>,
    redis_url: Option<String>,
    aggregates_url: Option<String>,
    views: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    slot: Option<String>,
    publication: Option<String>,
    redis_checkpoint_key: Option<String>,
    batch_max_changes: Option<usize>,
    batch_max_wait_ms: Option<u64>,
    batch_max_roots: Option<usize>,
    max_document_bytes: Option<usize>,
    state_checkpoint_mb: Option<u64>,
    outbox_memory_mb: Option<usize>,
    state_cache_mb: Option<usize>,
    log: Option<String>,
    admin_addr: Option<String>,
    admin_token: Option<String>,
}

/// Resolved settings.
#[derive(Clone)]
pub struct Config {
    pub database_url: Option<String>,
    pub redis_url: String,
    /// `None`: aggregate tables go to the source database.
    pub aggregates_url: Option<String>,
    pub views: PathBuf,
    pub data_dir: PathBuf,
    pub slot: String,
    pub publication: String,
    pub redis_checkpoint_key: String,
    pub batch: BatchLimits,
    /// Roots refreshed inside a batch's own transaction; the rest wait as
    /// pending roots for later transactions, so one transaction stays bounded.
    pub batch_max_roots: usize,
    /// A larger cache or search document becomes a dead letter.
    pub max_document_bytes: usize,
    /// How the state store uses memory and disk.
    pub store: crate::state::StoreOptions,
    /// Settings given that this version no longer uses, to warn about.
    pub ignored_settings: Vec<&'static str>,
    pub log: String,
    /// Where the admin HTTP API listens.
    pub admin_addr: std::net::SocketAddr,
    /// What mutating admin calls must present; `None` refuses them all.
    pub admin_token: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("redis_url", &redact_url(&self.redis_url))
            .field(
                "aggregates_url",
                &self.aggregates_url.as_deref().map(redact_url),
            )
            .field("views", &self.views)
            .field("data_dir", &self.data_dir)
            .field("slot", &self.slot)
            .field("publication", &self.publication)
            .field("redis_checkpoint_key", &self.redis_checkpoint_key)
            .field("batch", &self.batch)
            .field("batch_max_roots", &self.batch_max_roots)
            .field("max_document_bytes", &self.max_document_bytes)
            .field("store", &self.store)
            .field("ignored_settings", &self.ignored_settings)
            .field("admin_addr", &self.admin_addr)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Config {
    /// Flags and environment (already merged by clap) over the file over defaults.
    pub fn resolve(args: &ConfigArgs) -> Result<Config, ConfigError> {
        let file = read_file(args.config.as_deref())?;
        let slot = pick(&args.slot, file.slot, "viewkeeper".into());
        validate_name("slot", &slot)?;
        let defaults = BatchLimits::default();
        let batch_max_changes = pick(
            &args.batch_max_changes,
            file.batch_max_changes,
            defaults.max_changes,
        );
        if batch_max_changes == 0 {
            return Err(ConfigError::Invalid {
                setting: "batch_max_changes",
                reason: "must be at least 1".into(),
            });
        }
        let batch_max_roots = pick(
            &args.batch_max_roots,
            file.batch_max_roots,
            crate::engine::DEFAULT_BATCH_MAX_ROOTS,
        );
        if batch_max_roots == 0 {
            return Err(ConfigError::Invalid {
                setting: "batch_max_roots",
                reason: "must be at least 1".into(),
            });
        }
        let wait_ms = pick(
            &args.batch_max_wait_ms,
            file.batch_max_wait_ms,
            defaults.max_wait.as_millis() as u64,
        );
        let redis_url = pick(
            &args.redis_url,
            file.redis_url,
            "redis://127.0.0.1:6379".into(),
        );
        // Checked now: the sink would only find out once running, and retry.
        if let Err(error) = redis::Client::open(redis_url.as_str()) {
            let scheme = redis_url.split_once("://").map(|(scheme, _)| scheme);
            let hint = match scheme {
                Some("redis" | "rediss" | "redis+unix" | "unix") => {
                    "percent-encode a password's special characters".to_owned()
                }
                // Trial 40: `http://…` was told about passwords.
                Some(scheme) => format!(
                    "expected redis:// (or rediss:// for TLS, unix:// for a socket), not {scheme}://"
                ),
                None => "expected a URL such as redis://127.0.0.1:6379".to_owned(),
            };
            return Err(ConfigError::Invalid {
                setting: "redis_url",
                reason: format!(
                    "{} does not parse ({error}); {hint}",
                    redact_url(&redis_url)
                ),
            });
        }
        Ok(Config {
            database_url: args.database_url.clone().or(file.database_url),
            redis_url,
            aggregates_url: args.aggregates_url.clone().or(file.aggregates_url),
            views: pick(&args.views, file.views, DEFAULT_VIEWS.into()),
            data_dir: pick(&args.data_dir, file.data_dir, DEFAULT_DATA_DIR.into()),
            publication: pick(&args.publication, file.publication, slot.clone()),
            redis_checkpoint_key: pick(
                &args.redis_checkpoint_key,
                file.redis_checkpoint_key,
                format!("viewkeeper:checkpoint:{slot}"),
            ),
            slot,
            batch: BatchLimits {
                max_changes: batch_max_changes,
                max_wait: Duration::from_millis(wait_ms),
                ..defaults
            },
            batch_max_roots,
            max_document_bytes: pick(
                &args.max_document_bytes,
                file.max_document_bytes,
                crate::engine::DEFAULT_MAX_DOCUMENT_BYTES,
            ),
            store: crate::state::StoreOptions {
                checkpoint_log_bytes: args
                    .state_checkpoint_mb
                    .or(file.state_checkpoint_mb)
                    .map_or(crate::state::DEFAULT_MIN_LOG_BYTES, |mb| {
                        mb.max(1).saturating_mul(1024 * 1024)
                    }),
                outbox_budget_bytes: args
                    .outbox_memory_mb
                    .or(file.outbox_memory_mb)
                    .map_or(crate::state::DEFAULT_OUTBOX_BUDGET, |mb| {
                        mb.max(1).saturating_mul(1024 * 1024)
                    }),
            },
            ignored_settings: args
                .state_cache_mb
                .or(file.state_cache_mb)
                .map(|_| "state_cache_mb")
                .into_iter()
                .collect(),
            log: pick(&args.log, file.log, DEFAULT_LOG.into()),
            admin_addr: parse_addr(&pick(
                &args.admin_addr,
                file.admin_addr,
                DEFAULT_ADMIN_ADDR.into(),
            ))?,
            admin_token: args
                .admin_token
                .clone()
                .or(file.admin_token)
                .filter(|token| !token.is_empty()),
        })
    }

    pub fn database_url(&self) -> Result<&str, ConfigError> {
        self.database_url
            .as_deref()
            .ok_or(ConfigError::MissingDatabaseUrl)
    }

    /// Where aggregate tables are written: `aggregates_url`, else the source.
    pub fn aggregates_url(&self) -> Result<&str, ConfigError> {
        match &self.aggregates_url {
            Some(url) => Ok(url),
            None => self.database_url(),
        }
    }
}

fn pick<T: Clone>(flag_or_env: &Option<T>, file: Option<T>, default: T) -> T {
    flag_or_env.clone().or(file).unwrap_or(default)
}

fn read_file(explicit: Option<&Path>) -> Result<FileConfig, ConfigError> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None if Path::new(DEFAULT_FILE).exists() => PathBuf::from(DEFAULT_FILE),
        None => return Ok(FileConfig::default()),
    };
    let error = |reason: String| ConfigError::File {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| error(e.to_string()))?;
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    // The file holds passwords and the token: the parser's excerpt of the
    // lines around an error would print them.
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    // A setting no longer used is still taken (and ignored with a
    // warning), but not offered among the keys to write.
    serde_saphyr::from_str_with_options(&text, options).map_err(|e| {
        let message = e
            .to_string()
            .replace(" state_cache_mb,", "")
            .replace(", set DuplicateKeyPolicy in Options if acceptable", "");
        let line = e.location().map(|location| location.line() as usize);
        match line.and_then(|line| key_at_line(&text, line)) {
            Some(key) => error(format!("setting `{key}`: {message}")),
            None => error(message),
        }
    })
}

/// The key the file's line `line` (from 1) sets, to name the setting of a
/// parse error (the parser names only the line and column). Only the key:
/// the value may be a password.
fn key_at_line(text: &str, line: usize) -> Option<&str> {
    let (key, _) = text.lines().nth(line.checked_sub(1)?)?.split_once(':')?;
    let key = key.trim();
    (!key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then_some(key)
}

fn parse_addr(text: &str) -> Result<std::net::SocketAddr, ConfigError> {
    text.parse().map_err(|e| ConfigError::Invalid {
        setting: "admin_addr",
        reason: format!("{text:?} is not an address like 127.0.0.1:9187: {e}"),
    })
}

/// Slot and publication names become SQL identifiers: keep them plain.
fn validate_name(setting: &'static str, name: &str) -> Result<(), ConfigError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            setting,
            reason: format!("{name:?} must be 1-63 characters of a-z, 0-9 and _"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Redis URL that does not parse is refused at once, without its
    /// password.
    #[test]
    fn a_redis_url_that_does_not_parse_is_refused() {
        let args = ConfigArgs {
            redis_url: Some("redis://:s3cret@host:port/0".into()),
            ..ConfigArgs::default()
        };
        let message = Config::resolve(&args).expect_err("an error").to_string();
        assert!(message.starts_with("redis_url: "), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
        assert!(
            message.ends_with("percent-encode a password's special characters"),
            "{message}"
        );
        // Another scheme is named as the fault (trial 40: it was told about
        // passwords).
        let args = ConfigArgs {
            redis_url: Some("http://foo".into()),
            ..ConfigArgs::default()
        };
        let message = Config::resolve(&args).expect_err("an error").to_string();
        assert!(
            message.ends_with(
                "expected redis:// (or rediss:// for TLS, unix:// for a socket), not http://"
            ),
            "{message}"
        );
    }

    /// The other commands' settings come from flags, then the file, then the
    /// defaults, as `run`'s do.
    #[test]
    fn other_commands_take_their_settings_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("viewkeeper.yaml");
        std::fs::write(
            &file,
            "views: v2\ndata_dir: d2\nslot: s2\nadmin_addr: 127.0.0.1:1\nadmin_token: t\n",
        )
        .unwrap();
        let config = Some(file.clone());
        let dirs = DirArgs {
            config: config.clone(),
            data_dir: Some("flag".into()),
            ..DirArgs::default()
        };
        assert_eq!(dirs.resolve().unwrap(), ("v2".into(), "flag".into()));
        let check = CheckArgs {
            config: config.clone(),
            ..CheckArgs::default()
        }
        .resolve()
        .unwrap();
        assert_eq!((check.views, check.publication), ("v2".into(), "s2".into()));
        assert_eq!(check.database_url, None);
        let admin = AdminArgs {
            config,
            admin_token: Some(String::new()),
            ..AdminArgs::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(admin.addr, "127.0.0.1:1");
        assert_eq!(admin.token, None, "an empty token is none");
        let refused = AdminArgs {
            admin_addr: Some("12".into()),
            ..AdminArgs::default()
        }
        .resolve()
        .err()
        .expect("not an address");
        assert!(refused.to_string().starts_with("admin_addr: "), "{refused}");
        // A key given twice is told without the parser's own advice.
        std::fs::write(&file, "views: a\nviews: b\n").unwrap();
        let twice = DirArgs {
            config: Some(file.clone()),
            ..DirArgs::default()
        }
        .resolve()
        .expect_err("refused")
        .to_string();
        assert!(twice.contains("duplicate mapping key: views"), "{twice}");
        assert!(!twice.contains("DuplicateKeyPolicy"), "{twice}");
    }

    /// A config file that does not read is reported without its secrets.
    #[test]
    fn a_config_file_error_names_the_line_and_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("viewkeeper.yaml");
        for (text, line) in [
            (
                "database_url: postgres://vk:s3cret@db/x\nbatch_max_changes: lots\n",
                "line 2",
            ),
            ("admin_token: [tok-s3cret]\n", "line 1"),
            ("databse_url: postgres://vk:s3cret@db/x\n", "line 1"),
            (
                "redis_url: redis://:s3cret@r\nadmin_token: \"s3cret\n",
                "line 2",
            ),
            ("admin_token: s3cret\nslot: [\n", "line 2"),
        ] {
            std::fs::write(&file, text).unwrap();
            let args = ConfigArgs {
                config: Some(file.clone()),
                ..ConfigArgs::default()
            };
            let message = Config::resolve(&args).expect_err("an error").to_string();
            assert!(!message.contains("s3cret"), "{text:?}: {message}");
            assert!(message.contains(line), "{text:?}: {message}");
        }
        // A value of the wrong type names its setting (it gave the line
        // and column alone).
        std::fs::write(&file, "slot: vk\nbatch_max_changes: lots\n").unwrap();
        let args = ConfigArgs {
            config: Some(file.clone()),
            ..ConfigArgs::default()
        };
        let message = Config::resolve(&args).expect_err("an error").to_string();
        assert!(
            message.contains("setting `batch_max_changes`: "),
            "{message}"
        );
    }

    #[test]
    fn flags_override_the_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("viewkeeper.yaml");
        std::fs::write(
            &file,
            "database_url: postgres://a:secret@db/x\nslot: from_file\nbatch_max_changes: 7\n",
        )
        .unwrap();
        let args = ConfigArgs {
            config: Some(file),
            slot: Some("from_flag".into()),
            ..ConfigArgs::default()
        };
        let config = Config::resolve(&args).unwrap();
        assert_eq!(config.slot, "from_flag");
        assert_eq!(config.publication, "from_flag");
        assert_eq!(config.batch.max_changes, 7);
        assert_eq!(config.redis_url, "redis://127.0.0.1:6379");
        assert!(!format!("{config:?}").contains("secret"));
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("viewkeeper.yaml");
        std::fs::write(&file, "databse_url: postgres://db/x\n").unwrap();
        let args = ConfigArgs {
            config: Some(file),
            ..ConfigArgs::default()
        };
        let error = Config::resolve(&args).unwrap_err().to_string();
        assert!(error.contains("databse_url"), "{error}");
        // The keys offered are those in use: not the ignored `state_cache_mb`.
        assert!(error.contains("expected one of database_url,"), "{error}");
        assert!(!error.contains("state_cache_mb"), "{error}");
    }

    #[test]
    fn slot_names_must_be_plain_identifiers() {
        let args = ConfigArgs {
            slot: Some("Bad-Name".into()),
            ..ConfigArgs::default()
        };
        assert!(Config::resolve(&args).is_err());
    }
}
