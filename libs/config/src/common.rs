//! Setting groups shared by several processes.

use serde::{Deserialize, Serialize};

use crate::{ConfigError, Result};

/// Where a process listens for HTTP (API, health and metrics).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HttpSettings {
    /// `host:port`; port 0 picks a free port (tests).
    pub addr: String,
}

impl HttpSettings {
    pub fn validate(&self, name: &str) -> Result<()> {
        self.addr.parse::<std::net::SocketAddr>().map(|_| ()).map_err(|e| {
            ConfigError::invalid(format!("{name}.addr"), format!("`{}` is not host:port ({e})", self.addr))
        })
    }
}

/// How a process reaches its own Postgres database.
#[derive(Clone, Serialize, Deserialize)]
pub struct DatabaseSettings {
    /// A `postgres://` URL. May carry a password, so it is redacted in `Debug`.
    pub url: String,
    /// Upper bound of the connection pool.
    pub max_connections: u32,
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &crate::redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl DatabaseSettings {
    pub fn local(database: &str) -> Self {
        Self { url: format!("postgres://postgres@127.0.0.1:5433/{database}"), max_connections: 10 }
    }

    pub fn validate(&self) -> Result<()> {
        if !(self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")) {
            return Err(ConfigError::invalid("database.url", "must be a postgres:// URL"));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::invalid("database.max_connections", "must be at least 1"));
        }
        Ok(())
    }
}

/// How a process reaches Kafka.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KafkaSettings {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Prepended to every topic name (`<prefix>users.commands`); empty in
    /// production, unique per test so tests never share a topic.
    pub topic_prefix: String,
    /// Partitions for topics this process creates if they are missing.
    pub partitions: i32,
    /// `session.timeout.ms`; must stay below `max_poll_interval_ms`.
    pub session_timeout_ms: u32,
    /// `max.poll.interval.ms`. tansu waits this long for a second group
    /// member to join, so it is short by default.
    pub max_poll_interval_ms: u32,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            topic_prefix: String::new(),
            partitions: 3,
            session_timeout_ms: 6_000,
            max_poll_interval_ms: 10_000,
        }
    }
}

impl KafkaSettings {
    pub fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.topic_prefix)
    }

    pub fn validate(&self) -> Result<()> {
        if self.brokers.trim().is_empty() {
            return Err(ConfigError::invalid("kafka.brokers", "must name at least one broker"));
        }
        if self.partitions < 1 {
            return Err(ConfigError::invalid("kafka.partitions", "must be at least 1"));
        }
        if self.session_timeout_ms >= self.max_poll_interval_ms {
            return Err(ConfigError::invalid("kafka.session_timeout_ms", "must be below kafka.max_poll_interval_ms"));
        }
        Ok(())
    }
}

/// Where the Confluent-compatible schema registry is.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegistrySettings {
    pub url: String,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self { url: "http://127.0.0.1:8081".into() }
    }
}

impl RegistrySettings {
    pub fn validate(&self) -> Result<()> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(ConfigError::invalid("registry.url", "must be an http(s):// URL"));
        }
        Ok(())
    }
}
