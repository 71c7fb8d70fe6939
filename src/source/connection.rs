//! Connection settings derived from the database URL, for both the SQL pool
//! and the replication session, and the redaction of secrets for logs.

use std::str::FromStr;
use std::time::Duration;

use pgwire_replication::{ReplicationConfig, TlsConfig};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use super::SourceError;

/// Whether a failed connection may succeed by itself soon: the server is
/// not listening (yet), or is starting up or recovering (SQLSTATE 57P03).
fn not_ready(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(error) => error.code().as_deref() == Some("57P03"),
        _ => false,
    }
}

/// How long the first connection of a pool may take.
const FIRST_CONNECTION: Duration = Duration::from_secs(30);

/// Session settings that make text output of values deterministic: the
/// decoders rely on UTC timestamps, ISO dates, round-trip float digits,
/// PostgreSQL's own interval style and hex `bytea`. Each is set on every
/// connection, over whatever the database or role sets by default (`ALTER
/// DATABASE … SET IntervalStyle = iso_8601` changed the documents of rows
/// changed after it, and left the others as they were).
const SESSION_SETTINGS: [(&str, &str); 6] = [
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, YMD"),
    ("extra_float_digits", "3"),
    ("client_encoding", "UTF8"),
    ("IntervalStyle", "postgres"),
    ("bytea_output", "hex"),
];

/// A parsed database URL.
#[derive(Clone)]
pub struct PgEndpoint {
    url: url::Url,
    /// The `application_name` of replication sessions: `viewkeeper`, and
    /// the state store's id once known ([`PgEndpoint::for_store`]).
    replication_application: String,
}

/// The `application_name` of every viewkeeper session.
pub const APPLICATION: &str = "viewkeeper";

impl std::fmt::Debug for PgEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact_url(self.url.as_str()))
    }
}

impl PgEndpoint {
    pub fn parse(database_url: &str) -> Result<PgEndpoint, SourceError> {
        if database_url.trim().is_empty() {
            return Err(SourceError::Url(
                "empty: give one like postgres://user:password@host:5432/database".to_owned(),
            ));
        }
        if !database_url.contains("://") && database_url.contains('=') {
            return Err(SourceError::Url(format!(
                "{}: a key=value connection string, which viewkeeper does not read; give a \
                 URL like postgres://user:password@host:5432/database",
                redact_url(database_url)
            )));
        }
        // `postgresql:/user:pw@host/db` would parse, as a path without a host.
        if !database_url.contains("://") {
            return Err(SourceError::Url(format!(
                "{} is not a URL; give one like postgres://user:password@host:5432/database",
                redact_url(database_url)
            )));
        }
        let url = url::Url::parse(database_url)
            .map_err(|e| SourceError::Url(format!("{e} in {}", redact_url(database_url))))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(SourceError::Url(format!(
                "scheme must be postgres:// in {}",
                redact_url(database_url)
            )));
        }
        Ok(PgEndpoint {
            url,
            replication_application: APPLICATION.to_owned(),
        })
    }

    /// Names replication sessions after the state store `store_id`
    /// (`viewkeeper/…`), so that a slot held by another instance's
    /// session is told from one a crashed predecessor of this one left.
    pub fn for_store(self, store_id: &str) -> PgEndpoint {
        PgEndpoint {
            replication_application: format!("{APPLICATION}/{store_id}"),
            ..self
        }
    }

    /// The `application_name` of this endpoint's replication sessions.
    pub fn replication_application(&self) -> &str {
        &self.replication_application
    }

    /// Options for SQL connections (catalog, snapshot).
    pub fn sql_options(&self) -> Result<PgConnectOptions, SourceError> {
        let options = PgConnectOptions::from_str(self.url.as_str())
            .map_err(|e| SourceError::Url(format!("{e} in {}", redact_url(self.url.as_str()))))?;
        Ok(options
            .options(SESSION_SETTINGS)
            .application_name(APPLICATION))
    }

    /// Settings for a replication session on `slot` reading `publication`.
    pub fn replication_config(&self, slot: &str, publication: &str) -> ReplicationConfig {
        let host = self.url.host_str().unwrap_or("localhost").to_string();
        // libpq (and so the SQL connections) also takes them as parameters
        // (`?password=…`), which win over the URL's own parts.
        let user = match (self.query_parameter("user"), self.url.username()) {
            (Some(user), _) => user,
            (None, "") => "postgres".to_string(),
            (None, user) => percent_decode(user),
        };
        let password = self
            .query_parameter("password")
            .or_else(|| self.url.password().map(percent_decode))
            .unwrap_or_default();
        let database = match self.url.path().trim_start_matches('/') {
            "" => user.clone(),
            db => percent_decode(db),
        };
        let options: Vec<String> = SESSION_SETTINGS
            .iter()
            .map(|(name, value)| format!("-c {}={}", name, value.replace(' ', "\\ ")))
            .collect();
        ReplicationConfig::new(host, user, password, database, slot, publication)
            .with_port(self.url.port().unwrap_or(5432))
            .with_tls(TlsConfig::disabled())
            .with_options(options.join(" "))
            .with_application_name(self.replication_application.clone())
            .with_status_interval(Duration::from_secs(1))
            .with_wakeup_interval(Duration::from_secs(5))
    }

    /// Connects a pool of up to `connections` SQL connections; a failure
    /// names the server. One connection is opened alone first, for the
    /// server's own error: the pool retries a refused connection or a wrong
    /// password until its 30 s timeout, and then says only "no connection
    /// could be opened in time". A server that cannot be reached (not
    /// started yet, say) is tried again for up to `wait_for_server`; one
    /// that answers with an error is not.
    pub async fn connect_pool(
        &self,
        connections: u32,
        wait_for_server: Duration,
    ) -> Result<PgPool, SourceError> {
        let options = self.sql_options()?;
        let failed = |source| SourceError::Connect {
            address: self.address(),
            source,
        };
        let deadline = tokio::time::Instant::now() + wait_for_server;
        loop {
            let attempt =
                tokio::time::timeout(FIRST_CONNECTION, PgConnection::connect_with(&options)).await;
            match attempt {
                Ok(Ok(connection)) => {
                    let _ = connection.close().await;
                    break;
                }
                Ok(Err(error)) if not_ready(&error) && tokio::time::Instant::now() < deadline => {
                    tracing::warn!(
                        address = %self.address(),
                        error = %super::sql_error_text(&error),
                        "PostgreSQL cannot be reached yet; trying again"
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Ok(Err(error)) => return Err(failed(error)),
                Err(_) => return Err(failed(sqlx::Error::PoolTimedOut)),
            }
        }
        PgPoolOptions::new()
            .max_connections(connections)
            .connect_with(options)
            .await
            .map_err(failed)
    }

    /// `host:port/database`, for messages: no user, no password.
    pub fn address(&self) -> String {
        format!(
            "{}:{}{}",
            self.url.host_str().unwrap_or("localhost"),
            self.url.port().unwrap_or(5432),
            self.url.path()
        )
    }

    /// The value of the URL's query parameter `name`, if it has one.
    fn query_parameter(&self, name: &str) -> Option<String> {
        self.url
            .query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }
}

/// A URL part as libpq reads it: `%XX` decoded, every other character kept
/// (a form decoder read `+` as a space and stopped at `&`, so a password
/// with either failed on the replication connection alone).
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// The URL with its password replaced by `***`, safe for logs and errors:
/// the password of its user part, and of a query parameter
/// (`?password=…`, `?sslpassword=…`).
pub fn redact_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) => {
            let had_password = url.password().is_some();
            if had_password {
                let _ = url.set_password(Some("***"));
            }
            redact_secret_parameters(&mut url);
            // An `@` past the host, with no password before it, means a
            // password with a `/` that was not percent-encoded
            // (`user:pa/ss@host`): the URL reads it as a port and a path.
            // Cut as if unparsable.
            if !had_password && url[url::Position::BeforePath..].contains('@') {
                redact_unparsed(text)
            } else {
                url.to_string()
            }
        }
        Err(_) => redact_unparsed(text),
    }
}

/// Replaces the value of every query parameter that may be a secret.
fn redact_secret_parameters(url: &mut url::Url) {
    let is_secret = |key: &str| {
        let key = key.to_ascii_lowercase();
        ["pass", "secret", "token"]
            .iter()
            .any(|word| key.contains(word))
    };
    if !url.query_pairs().any(|(key, _)| is_secret(&key)) {
        return;
    }
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(key, value)| {
            let value = if is_secret(&key) { "***".into() } else { value };
            (key.into_owned(), value.into_owned())
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
}

/// A text that does not parse as a URL, with whatever may be a password cut.
fn redact_unparsed(text: &str) -> String {
    match (text.find("://"), text.rfind('@')) {
        (Some(start), Some(end)) if end > start => {
            format!("{}://***{}", &text[..start], &text[end..])
        }
        _ if has_key_value_password(text) => redact_key_value_password(text),
        // A URL mistyped without "://" (`postgres//user:pw@host`,
        // `user:pw@host`): everything before the "@" may be a password.
        (_, Some(end)) => format!("***{}", &text[end..]),
        _ => text.to_string(),
    }
}

/// Whether `text` holds a libpq `password = value` pair.
fn has_key_value_password(text: &str) -> bool {
    password_value_start(text).is_some()
}

/// Where the value of the first `password = ` pair of `text` starts.
fn password_value_start(text: &str) -> Option<usize> {
    let key = text.to_ascii_lowercase().find("password")?;
    let after_key = &text[key + "password".len()..];
    let after_equals = after_key.trim_start().strip_prefix('=')?;
    Some(text.len() - after_equals.trim_start().len())
}

/// A libpq `key=value` connection string (`host=db password='s 3'`) with
/// the password's value replaced by `***`.
fn redact_key_value_password(text: &str) -> String {
    let Some(value_start) = password_value_start(text) else {
        return text.to_string();
    };
    let value = &text[value_start..];
    let value_len = match value.strip_prefix('\'') {
        // Quoted: up to the first quote not escaped by a backslash.
        Some(quoted) => {
            let mut escaped = false;
            let end = quoted
                .char_indices()
                .find(|&(_, c)| {
                    let closes = c == '\'' && !escaped;
                    escaped = c == '\\' && !escaped;
                    closes
                })
                .map_or(quoted.len(), |(i, _)| i + 1);
            1 + end
        }
        None => value.find(char::is_whitespace).unwrap_or(value.len()),
    };
    format!(
        "{}***{}",
        &text[..value_start],
        &text[value_start + value_len..]
    )
}

/// Quotes one identifier for SQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a schema-qualified name (`public.orders` → `"public"."orders"`).
pub fn quote_qualified(name: &str) -> String {
    match name.split_once('.') {
        Some((schema, table)) => format!("{}.{}", quote_ident(schema), quote_ident(table)),
        None => quote_ident(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_passwords_never_survive_redaction() {
        for (text, redacted) in [
            (
                "host=db port=5432 user=app password=WrongPwKV dbname=clinic",
                "host=db port=5432 user=app password=*** dbname=clinic",
            ),
            ("password = 'a b\\' c' host=db", "password = *** host=db"),
            ("host=db PASSWORD=x", "host=db PASSWORD=***"),
            ("host=db", "host=db"),
        ] {
            assert_eq!(redact_url(text), redacted, "{text}");
        }
        let error = PgEndpoint::parse("host=db password=WrongPwKV dbname=clinic")
            .expect_err("a key=value string is refused")
            .to_string();
        assert!(!error.contains("WrongPwKV"), "{error}");
        assert!(error.contains("postgres://"), "{error}");
    }

    #[test]
    fn passwords_never_survive_redaction() {
        let redacted = redact_url("postgres://app:s3cret@db:5432/shop");
        assert!(!redacted.contains("s3cret"));
        assert!(redacted.contains("app:***@db"));
        assert!(!redact_url("postgres://app:s3cret@db:badport/shop").contains("s3cret"));
        let slash = redact_url("postgres://app:1234/5678secret@db/shop");
        assert!(!slash.contains("5678secret"), "{slash}");
        assert_eq!(
            redact_url("postgres://app@db/shop"),
            "postgres://app@db/shop"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }

    /// URLs mistyped without `://` printed their password (trial 7).
    #[test]
    fn a_mistyped_url_keeps_its_password_to_itself() {
        for text in [
            "postgres//vk:Hunter2Secret@127.0.0.1:55471/logistics",
            "vk:Hunter2Secret@127.0.0.1:55471/logistics",
            "postgresql:/vk:Hunter2Secret@127.0.0.1:55471/logistics",
            "redis//:Hunter2Secret@127.0.0.1:56471",
        ] {
            let redacted = redact_url(text);
            assert!(!redacted.contains("Hunter2Secret"), "{redacted}");
            assert!(
                redacted.ends_with("@127.0.0.1:55471/logistics")
                    || redacted.ends_with("@127.0.0.1:56471"),
                "{redacted}"
            );
            if !text.starts_with("redis") {
                let error = PgEndpoint::parse(text).expect_err("refused").to_string();
                assert!(!error.contains("Hunter2Secret"), "{error}");
                assert!(error.contains("postgres://"), "{error}");
            }
        }
    }

    /// A password given as a query parameter, which libpq and so the SQL
    /// connections take, was logged in clear (trial 8).
    #[test]
    fn a_password_parameter_is_redacted_and_used() {
        for (text, kept) in [
            (
                "postgres://vk@127.0.0.1:55480/learn?password=Pg-S3cr3t-pw&sslmode=disable",
                "postgres://vk@127.0.0.1:55480/learn?password=***&sslmode=disable",
            ),
            (
                "redis://127.0.0.1:56480?password=QP-S3cr3t-pw",
                "redis://127.0.0.1:56480?password=***",
            ),
            (
                "postgres://vk:Pg-S3cr3t-pw@db/learn?sslpassword=Pg-S3cr3t-pw&application_name=x",
                "postgres://vk:***@db/learn?sslpassword=***&application_name=x",
            ),
        ] {
            assert_eq!(redact_url(text), kept);
        }
        let endpoint =
            PgEndpoint::parse("postgres://vk@db/learn?password=p%40ss&user=owner").unwrap();
        let config = endpoint.replication_config("slot", "publication");
        assert_eq!(config.password, "p@ss");
        assert_eq!(config.user, "owner");
        assert!(!format!("{endpoint:?}").contains("p%40ss"));
    }

    #[test]
    fn replication_settings_come_from_the_url() {
        let endpoint = PgEndpoint::parse("postgres://app:p%40ss@db.local:6543/shop").unwrap();
        let config = endpoint.replication_config("slot", "publication");
        assert_eq!(config.host, "db.local");
        assert_eq!(config.port, 6543);
        assert_eq!(config.password, "p@ss");
        assert_eq!(config.database, "shop");
        assert!(!format!("{endpoint:?}").contains("p%40ss"));
        // As libpq reads it: `+` and `&` are themselves.
        let endpoint = PgEndpoint::parse("postgres://app:pl+us&x=%2B@db/shop").unwrap();
        let config = endpoint.replication_config("slot", "publication");
        assert_eq!(config.password, "pl+us&x=+");
        let empty = PgEndpoint::parse(" ").unwrap_err().to_string();
        assert!(
            empty.contains("empty: give one like postgres://"),
            "{empty}"
        );
    }

    #[test]
    fn identifiers_are_quoted_per_part() {
        assert_eq!(
            quote_qualified("public.we\"ird"),
            "\"public\".\"we\"\"ird\""
        );
    }
}
