//! Configuration: `config/default.toml` (compiled in), then `--config FILE`, then the
//! environment (`PARLEY__SECTION__KEY`). Loaded once at start and validated, so a bad
//! value stops the process with one line that names the key.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The defaults, compiled into the binary so it runs from any directory.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Everything Parley can be told at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// HTTP listener.
    pub server: ServerSettings,
    /// The durable store.
    pub database: DatabaseSettings,
    /// The backplane for several nodes.
    pub redis: RedisSettings,
    /// Files on disk.
    pub storage: StorageSettings,
    /// Sessions, cookies and login limits.
    pub auth: AuthSettings,
    /// Logging.
    pub log: LogSettings,
    /// The real-time engine.
    pub engine: EngineSettings,
    /// Routing defaults for new inboxes.
    pub routing: RoutingSettings,
}

/// `[routing]`: defaults for a new inbox whose creation request leaves them out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingSettings {
    /// `round_robin` or `manual`.
    pub default_mode: RoutingModeSetting,
    /// Max open conversations per agent; 0 = unlimited.
    pub default_capacity: u32,
    /// `keep` or `return`.
    pub default_offline_action: OfflineActionSetting,
    /// Seconds offline before `return` applies.
    pub default_offline_grace_secs: u32,
}

/// `routing.default_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutingModeSetting {
    /// Assign automatically.
    RoundRobin,
    /// Assign by hand.
    Manual,
}

/// `routing.default_offline_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfflineActionSetting {
    /// Keep their conversations.
    Keep,
    /// Return them to the queue after the grace period.
    Return,
}

/// `[engine]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSettings {
    /// Longest message body, in characters.
    pub max_body_chars: usize,
    /// Outbound frames queued per visitor socket before a slow client is closed.
    pub outbound_queue: usize,
    /// The same for an agent socket, which also carries its workspace's conversation
    /// events (a burst of arrivals sends each agent two frames per new conversation).
    pub agent_outbound_queue: usize,
    /// Messages per second per visitor.
    pub visitor_messages_per_sec: u32,
    /// WebSocket connects and widget sessions per client IP per minute.
    pub connects_per_ip_per_minute: u32,
    /// Presence/viewer entry lifetime without a heartbeat, seconds.
    pub presence_ttl_secs: u64,
    /// Heartbeat period, seconds.
    pub heartbeat_secs: u64,
    /// Typing indicator lifetime without a refresh, seconds.
    pub typing_ttl_secs: u64,
    /// Idle time before a conversation actor passivates, seconds.
    pub idle_passivate_secs: u64,
    /// Test only: allow injecting faults.
    pub fault_injection: bool,
    /// Group commits in flight at once; 0 = 1 on SQLite (one writer), 2 on PostgreSQL.
    pub writer_lanes: usize,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Address to listen on.
    pub host: String,
    /// TCP port; 0 picks a free one.
    pub port: u16,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Seconds to let in-flight requests finish on shutdown.
    pub shutdown_timeout_secs: u64,
    /// HTTP worker threads; 0 = one per core.
    pub workers: usize,
    /// Public base URL for links; empty = `http://host:port`.
    pub public_url: String,
    /// Take the client address from `X-Forwarded-For`/`Forwarded`.
    pub trust_proxy_headers: bool,
}

/// `[database]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` or `postgres://…`; empty = SQLite under `storage.data_dir`.
    pub url: SecretString,
    /// Connections in the pool.
    pub max_connections: u32,
    /// SQLite `synchronous` pragma: `full` or `normal`.
    pub sqlite_synchronous: SqliteSynchronous,
}

/// How hard SQLite syncs commits to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqliteSynchronous {
    /// Sync every commit: durable across power loss.
    Full,
    /// Sync at checkpoints: durable across process crashes only.
    Normal,
}

/// `[redis]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://…`; empty = in-process backplane.
    pub url: SecretString,
    /// Prefix for every key Parley writes.
    pub key_prefix: String,
}

/// `[storage]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    /// Directory for the SQLite file and uploads.
    pub data_dir: PathBuf,
}

/// `[auth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Console session lifetime, hours.
    pub session_ttl_hours: u64,
    /// Send the session cookie with `Secure`.
    pub cookie_secure: bool,
    /// Login attempts per client IP per minute.
    pub login_per_ip_per_minute: u32,
    /// Login attempts per account per minute.
    pub login_per_account_per_minute: u32,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `tracing` filter directive.
    pub filter: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Which SQL backend a database URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

/// A configuration problem, phrased for one line on stderr.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(String);

impl Settings {
    /// Load defaults, then `file` if given, then the environment; validate.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_with_env(file, std::env::vars())
    }

    /// As [`Settings::load`], with the environment given explicitly (for tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError(format!("--config {}: cannot read: {e}", path.display()))
            })?;
            builder = builder.add_source(
                config::File::from_str(&text, config::FileFormat::Toml)
                    .format(config::FileFormat::Toml),
            );
        }
        let env: std::collections::HashMap<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("PARLEY__"))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("PARLEY")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env)),
        );
        let settings: Settings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError(describe(e)))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks no type can express.
    fn validate(&self) -> Result<(), ConfigError> {
        if self.server.host.trim().is_empty() {
            return Err(ConfigError("server.host: must not be empty".into()));
        }
        if self.server.max_body_bytes < 1024 {
            return Err(ConfigError(
                "server.max_body_bytes: must be at least 1024".into(),
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError(
                "database.max_connections: must be at least 1".into(),
            ));
        }
        self.database_kind()?;
        let redis = self.redis.url.expose_secret();
        if !(redis.is_empty() || redis.starts_with("redis://") || redis.starts_with("rediss://")) {
            return Err(ConfigError(format!(
                "redis.url: unsupported scheme in {:?} (expected redis://HOST:PORT)",
                scheme_of(redis)
            )));
        }
        let e = &self.engine;
        if e.max_body_chars == 0
            || e.outbound_queue == 0
            || e.agent_outbound_queue == 0
            || e.visitor_messages_per_sec == 0
            || e.connects_per_ip_per_minute == 0
        {
            return Err(ConfigError(
                "engine: max_body_chars, outbound_queue, agent_outbound_queue, \
                 visitor_messages_per_sec and connects_per_ip_per_minute must be at least 1"
                    .into(),
            ));
        }
        if e.heartbeat_secs == 0 || e.heartbeat_secs >= e.presence_ttl_secs {
            return Err(ConfigError(
                "engine.heartbeat_secs: must be at least 1 and below engine.presence_ttl_secs"
                    .into(),
            ));
        }
        if self.routing.default_capacity > 10_000
            || self.routing.default_offline_grace_secs > 86_400
        {
            return Err(ConfigError(
                "routing: default_capacity must be at most 10000 and default_offline_grace_secs at most 86400"
                    .into(),
            ));
        }
        if self.auth.session_ttl_hours == 0 {
            return Err(ConfigError(
                "auth.session_ttl_hours: must be at least 1".into(),
            ));
        }
        if self.auth.login_per_ip_per_minute == 0 || self.auth.login_per_account_per_minute == 0 {
            return Err(ConfigError(
                "auth.login_per_*_per_minute: must be at least 1".into(),
            ));
        }
        let url = &self.server.public_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ConfigError(
                "server.public_url: must start with http:// or https://".into(),
            ));
        }
        Ok(())
    }

    /// The backend `database.url` selects.
    pub fn database_kind(&self) -> Result<DatabaseKind, ConfigError> {
        let url = self.database.url.expose_secret();
        if url.is_empty() || url.starts_with("sqlite:") {
            Ok(DatabaseKind::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseKind::Postgres)
        } else {
            Err(ConfigError(format!(
                "database.url: unsupported database {:?} (expected sqlite://PATH or postgres://…)",
                scheme_of(url)
            )))
        }
    }

    /// The database URL to connect to, with the SQLite default filled in.
    pub fn database_url(&self) -> String {
        let url = self.database.url.expose_secret();
        if url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.storage.data_dir.join("parley.db").display()
            )
        } else if url.starts_with("sqlite:") && !url.contains("mode=") {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}mode=rwc")
        } else {
            url.to_owned()
        }
    }

    /// The Redis URL, when one is configured.
    pub fn redis_url(&self) -> Option<&str> {
        let url = self.redis.url.expose_secret();
        (!url.is_empty()).then_some(url)
    }
}

/// The scheme of a URL (text before `:`), never the credentials after it.
fn scheme_of(url: &str) -> String {
    url.split(':').next().unwrap_or_default().to_owned()
}

/// Turn a `config` error into one line that names the key.
fn describe(e: config::ConfigError) -> String {
    match e {
        config::ConfigError::Type {
            key: Some(key),
            unexpected,
            expected,
            ..
        } => format!("{key}: invalid value {unexpected}, expected {expected}"),
        other => {
            let text = other.to_string();
            // serde's messages end with `for key `x.y`` or `in x`; keep them, on one line.
            text.replace('\n', " ")
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_load_and_select_sqlite_under_data_dir() {
        let s = Settings::load_with_env(None, env(&[])).unwrap();
        assert_eq!(s.server.port, 8080);
        assert_eq!(s.database_kind().unwrap(), DatabaseKind::Sqlite);
        assert_eq!(s.database_url(), "sqlite://data/parley.db?mode=rwc");
        assert!(s.redis_url().is_none());
    }

    #[test]
    fn environment_overrides_nested_keys() {
        let s = Settings::load_with_env(
            None,
            env(&[
                ("PARLEY__SERVER__PORT", "9001"),
                ("PARLEY__DATABASE__URL", "postgres://postgres@127.0.0.1/x"),
                ("PARLEY__REDIS__URL", "redis://127.0.0.1:6379"),
            ]),
        )
        .unwrap();
        assert_eq!(s.server.port, 9001);
        assert_eq!(s.database_kind().unwrap(), DatabaseKind::Postgres);
        assert_eq!(s.redis_url(), Some("redis://127.0.0.1:6379"));
    }

    #[test]
    fn a_bad_port_names_the_key() {
        let e = Settings::load_with_env(None, env(&[("PARLEY__SERVER__PORT", "70000")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.port"), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn an_unsupported_database_names_the_key_and_hides_credentials() {
        let e = Settings::load_with_env(
            None,
            env(&[("PARLEY__DATABASE__URL", "mysql://root:hunter2@db/x")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("database.url"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn an_unreadable_config_file_is_named() {
        let e = Settings::load_with_env(Some(Path::new("/nonexistent/parley.toml")), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/parley.toml"), "{e}");
    }

    #[test]
    fn an_unknown_key_in_a_file_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "[server]\nprot = 1\n").unwrap();
        let e = Settings::load_with_env(Some(&path), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("prot"), "{e}");
    }

    #[test]
    fn secrets_do_not_print_in_debug() {
        let s = Settings::load_with_env(
            None,
            env(&[("PARLEY__DATABASE__URL", "postgres://u:hunter2@h/d")]),
        )
        .unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
