//! Setting groups shared by several processes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{ConfigError, Result};

/// Where a process runs. Development defaults (above all the public JWT
/// secret) are accepted only when this says `development` explicitly; the
/// default is `production`, so a forgotten setting fails closed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Development,
    #[default]
    Production,
}

/// Where a process listens for HTTP (API, health and metrics).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// A `postgres://` URL. May carry a password, so it is redacted in `Debug`.
    pub url: String,
    /// Upper bound of the connection pool.
    pub max_connections: u32,
    /// `statement_timeout` of every connection: a runaway query is cancelled
    /// instead of holding a connection (and its locks) forever.
    pub statement_timeout_ms: u64,
    /// `idle_in_transaction_session_timeout`: a transaction left open by a
    /// stuck task is rolled back and its locks released.
    pub idle_in_transaction_timeout_ms: u64,
    /// How long a task waits for a free pooled connection before failing.
    pub acquire_timeout_ms: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self::local("postgres")
    }
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &crate::redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .field("idle_in_transaction_timeout_ms", &self.idle_in_transaction_timeout_ms)
            .field("acquire_timeout_ms", &self.acquire_timeout_ms)
            .finish()
    }
}

impl DatabaseSettings {
    pub fn local(database: &str) -> Self {
        Self {
            url: format!("postgres://postgres@127.0.0.1:5433/{database}"),
            max_connections: 10,
            statement_timeout_ms: 30_000,
            idle_in_transaction_timeout_ms: 60_000,
            acquire_timeout_ms: 10_000,
        }
    }

    /// The same settings for another database URL (tests).
    pub fn at(url: impl Into<String>) -> Self {
        Self { url: url.into(), ..Self::default() }
    }

    pub fn validate(&self) -> Result<()> {
        if !(self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")) {
            return Err(ConfigError::invalid("database.url", "must be a postgres:// URL"));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::invalid("database.max_connections", "must be at least 1"));
        }
        for (name, value) in [
            ("database.statement_timeout_ms", self.statement_timeout_ms),
            ("database.idle_in_transaction_timeout_ms", self.idle_in_transaction_timeout_ms),
            ("database.acquire_timeout_ms", self.acquire_timeout_ms),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(name, "must be at least 1 (milliseconds)"));
            }
        }
        Ok(())
    }
}

/// How a process reaches Kafka.
///
/// The defaults suit a real cluster (replication 3, `min.insync.replicas`
/// 2, librdkafka's own timeouts); the single-node development broker needs
/// 1/1 (scripts/dev sets it).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// `client.id`: names this process in broker logs and quotas.
    pub client_id: String,
    /// Prepended to every topic name (`<prefix>users.commands`); empty in
    /// production, unique per test so tests never share a topic.
    pub topic_prefix: String,
    /// Partitions for topics this process creates if they are missing: the
    /// unit of parallelism of every consumer group.
    pub partitions: i32,
    /// Replicas of each topic this process creates. With `acks=all`, a
    /// confirmed record is on `min_insync_replicas` brokers at least.
    pub replication_factor: i32,
    /// `min.insync.replicas` of each topic this process creates.
    pub min_insync_replicas: i32,
    /// `session.timeout.ms` of consumer groups; must stay below
    /// `max_poll_interval_ms`. A member that stops heartbeating (a killed
    /// process) loses its partitions after this long.
    pub session_timeout_ms: u32,
    /// `max.poll.interval.ms`: a member that does not ask for messages for
    /// this long leaves the group.
    pub max_poll_interval_ms: u32,
    /// `heartbeat.interval.ms`: at most a third of `session_timeout_ms`.
    pub heartbeat_interval_ms: u32,
    /// `fetch.wait.max.ms`: how long the broker may hold a fetch that has
    /// no data. The broker answers as soon as data arrives (Kafka, and the
    /// development broker with its patch, docs/broker.md), so this costs no
    /// latency; it bounds how often an idle consumer asks.
    pub fetch_wait_max_ms: u32,
    /// `fetch.min.bytes`: how much data a fetch waits for (at most
    /// `fetch_wait_max_ms`) before the broker answers. 1, the default,
    /// answers at the first record: someone waits on what a consumer does
    /// next. A reader no one waits on (the audit log) asks for more, so it
    /// fetches, and commits, once per batch instead of once per record.
    pub fetch_min_bytes: u32,
    /// Any other librdkafka property, passed through as is (SASL, TLS, ...):
    /// `ORDERFLOW_KAFKA__PROPERTIES__SASL_MECHANISM=PLAIN` sets
    /// `sasl.mechanism` (underscores become dots). Values are never logged.
    #[serde(deserialize_with = "scalars_as_strings")]
    pub properties: BTreeMap<String, String>,
}

/// Environment values arrive typed (`acks=1` is a number); librdkafka wants
/// every property as a string.
fn scalars_as_strings<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Bool(bool),
        Int(i64),
        Float(f64),
    }
    let raw = BTreeMap::<String, Scalar>::deserialize(deserializer)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Scalar::Text(s) => s,
                Scalar::Bool(b) => b.to_string(),
                Scalar::Int(i) => i.to_string(),
                Scalar::Float(f) => f.to_string(),
            };
            (k, v)
        })
        .collect())
}

impl std::fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("client_id", &self.client_id)
            .field("topic_prefix", &self.topic_prefix)
            .field("partitions", &self.partitions)
            .field("replication_factor", &self.replication_factor)
            .field("min_insync_replicas", &self.min_insync_replicas)
            .field("session_timeout_ms", &self.session_timeout_ms)
            .field("max_poll_interval_ms", &self.max_poll_interval_ms)
            .field("heartbeat_interval_ms", &self.heartbeat_interval_ms)
            .field("fetch_wait_max_ms", &self.fetch_wait_max_ms)
            .field("fetch_min_bytes", &self.fetch_min_bytes)
            .field("properties", &self.properties.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            client_id: "orderflow".into(),
            topic_prefix: String::new(),
            partitions: 6,
            replication_factor: 3,
            min_insync_replicas: 2,
            session_timeout_ms: 45_000,
            max_poll_interval_ms: 300_000,
            heartbeat_interval_ms: 3_000,
            fetch_wait_max_ms: 500,
            fetch_min_bytes: 1,
            properties: BTreeMap::new(),
        }
    }
}

/// Properties orderflow sets itself for its guarantees; overriding them
/// through `kafka.properties` would silently break one.
const RESERVED: &[&str] =
    &["enable.idempotence", "acks", "enable.auto.offset.store", "enable.auto.commit", "group.id", "bootstrap.servers"];

impl KafkaSettings {
    /// Settings for the single-node development broker (nisshi,
    /// docs/broker.md): replication 1, a short session so a killed
    /// member's partitions move on within seconds, and one produce request
    /// in flight per connection (nisshi applied two pipelined ones out of
    /// order once, which fails an idempotent producer).
    pub fn development(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            replication_factor: 1,
            min_insync_replicas: 1,
            session_timeout_ms: 6_000,
            heartbeat_interval_ms: 2_000,
            properties: BTreeMap::from([("max.in.flight.requests.per.connection".to_owned(), "1".to_owned())]),
            ..Self::default()
        }
    }

    pub fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.topic_prefix)
    }

    /// The passthrough properties with their librdkafka names.
    pub fn librdkafka_properties(&self) -> impl Iterator<Item = (String, &str)> {
        self.properties.iter().map(|(k, v)| (k.replace('_', "."), v.as_str()))
    }

    pub fn validate(&self) -> Result<()> {
        if self.brokers.trim().is_empty() {
            return Err(ConfigError::invalid("kafka.brokers", "must name at least one broker"));
        }
        if self.client_id.trim().is_empty() {
            return Err(ConfigError::invalid("kafka.client_id", "must not be empty"));
        }
        if self.partitions < 1 {
            return Err(ConfigError::invalid("kafka.partitions", "must be at least 1"));
        }
        if self.replication_factor < 1 {
            return Err(ConfigError::invalid("kafka.replication_factor", "must be at least 1"));
        }
        if self.min_insync_replicas < 1 || self.min_insync_replicas > self.replication_factor {
            return Err(ConfigError::invalid(
                "kafka.min_insync_replicas",
                format!("must be between 1 and kafka.replication_factor ({})", self.replication_factor),
            ));
        }
        if self.session_timeout_ms >= self.max_poll_interval_ms {
            return Err(ConfigError::invalid("kafka.session_timeout_ms", "must be below kafka.max_poll_interval_ms"));
        }
        if self.heartbeat_interval_ms == 0 || self.heartbeat_interval_ms * 3 > self.session_timeout_ms {
            return Err(ConfigError::invalid(
                "kafka.heartbeat_interval_ms",
                "must be between 1 and a third of kafka.session_timeout_ms",
            ));
        }
        if let Some((name, _)) = self.librdkafka_properties().find(|(name, _)| RESERVED.contains(&name.as_str())) {
            return Err(ConfigError::invalid(
                format!("kafka.properties.{name}"),
                "is set by orderflow itself for its delivery guarantees and cannot be overridden",
            ));
        }
        Ok(())
    }
}

/// Where the Confluent-compatible schema registry is.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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

/// Traces out of the process (OpenTelemetry over OTLP/HTTP). Off unless
/// `otlp_endpoint` is set: then every process exports the spans of what it
/// handles, each continuing the trace its input carries in `traceparent`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// The collector's OTLP/HTTP base URL (`http://otel-collector:4318`);
    /// spans go to its `/v1/traces`. None (or empty): nothing is exported,
    /// and tracing costs what logging does.
    pub otlp_endpoint: Option<String>,
    /// The share of new traces kept, 0 to 1. Only where a trace starts (a
    /// request without a `traceparent`; a caller's says whether it is
    /// sampled): a message's handling follows the decision its trace was
    /// started with, so a trace is whole or absent.
    pub sample_ratio: f64,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self { otlp_endpoint: None, sample_ratio: 1.0 }
    }
}

impl TelemetrySettings {
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(ConfigError::invalid(
                "telemetry.sample_ratio",
                format!("{} is not a share between 0 and 1", self.sample_ratio),
            ));
        }
        if let Some(endpoint) = self.endpoint() {
            let problem = match url::Url::parse(endpoint) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => return Ok(()),
                Ok(url) => format!("`{endpoint}` is not an http(s) URL (scheme `{}`)", url.scheme()),
                Err(error) => format!("`{endpoint}` is not a URL ({error})"),
            };
            return Err(ConfigError::invalid("telemetry.otlp_endpoint", problem));
        }
        Ok(())
    }

    /// Where spans are posted: the endpoint's `/v1/traces` (as the
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` convention has it).
    pub fn traces_url(&self) -> Option<String> {
        self.endpoint().map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
    }

    /// The endpoint, when one is set (an empty one, as an unset variable
    /// of a compose file gives, is none).
    fn endpoint(&self) -> Option<&str> {
        self.otlp_endpoint.as_deref().filter(|endpoint| !endpoint.is_empty())
    }
}

/// The public key-encryption key of development (`dev:` and 32 zero
/// bytes): accepted only in [`Environment::Development`].
pub const DEVELOPMENT_KEK: &str = "dev:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
/// The public key-service token of development.
pub const DEVELOPMENT_KEYS_TOKEN: &str = "orderflow-development-keys-token";

/// Data keys: each person's personal fields are sealed with a key of
/// their own (crypto-shredding). The user service keeps the keys, wrapped
/// by a key-encryption key, and serves them on its ops listener to the
/// processes that seal or read personal data (the order service, the
/// projector), which present `token`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeySettings {
    /// The key service: the user service's ops listener.
    pub url: String,
    /// The bearer token the key service accepts (a Secret in production).
    pub token: crate::Secret,
    /// The key-encryption keys, each `<id>:<base64 of 32 bytes>`
    /// (`openssl rand -base64 32`). The first wraps new data keys; the
    /// others only unwrap, and the user service re-wraps what they
    /// wrapped with the first (rotation without downtime). Read by the
    /// user service alone.
    pub keks: Vec<crate::Secret>,
    /// How long a process keeps a key it fetched (seconds): an erasure
    /// reaches a process's own copies within this.
    pub cache_secs: u64,
}

impl Default for KeySettings {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8091".into(),
            token: crate::Secret::new(DEVELOPMENT_KEYS_TOKEN),
            keks: vec![crate::Secret::new(DEVELOPMENT_KEK)],
            cache_secs: 60,
        }
    }
}

impl KeySettings {
    pub fn validate(&self) -> Result<()> {
        match url::Url::parse(&self.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
            _ => return Err(ConfigError::invalid("keys.url", format!("`{}` is not an http(s) URL", self.url))),
        }
        if self.token.expose().len() < 16 {
            return Err(ConfigError::invalid("keys.token", "must be at least 16 characters"));
        }
        if self.cache_secs > 3600 {
            return Err(ConfigError::invalid("keys.cache_secs", "at most 3600: an erasure must reach every copy"));
        }
        for kek in &self.keks {
            let problem = match kek.expose().split_once(':') {
                Some((id, key)) if !id.is_empty() && base64_len(key) == Some(32) => continue,
                Some((id, _)) if !id.is_empty() => format!("key `{id}` is not the base64 of 32 bytes"),
                _ => "an entry is not `<id>:<base64 of 32 bytes>`".to_owned(),
            };
            return Err(ConfigError::invalid("keys.keks", problem));
        }
        Ok(())
    }

    /// For a process that uses keys: refuses the public development
    /// token and key-encryption key outside development, and (with
    /// `keeps`, the user service) an empty list of key-encryption keys.
    pub fn check_for(&self, environment: Environment, keeps: bool) -> Result<()> {
        if keeps && self.keks.is_empty() {
            return Err(ConfigError::invalid("keys.keks", "the user service needs at least one key-encryption key"));
        }
        if environment != Environment::Development {
            if self.token.expose() == DEVELOPMENT_KEYS_TOKEN {
                return Err(ConfigError::invalid("keys.token", "the public development token outside development"));
            }
            if keeps && self.keks.iter().any(|k| k.expose() == DEVELOPMENT_KEK) {
                return Err(ConfigError::invalid(
                    "keys.keks",
                    "the public development key-encryption key outside development",
                ));
            }
        }
        Ok(())
    }
}

/// How many bytes standard base64 `text` decodes to, if it is base64.
fn base64_len(text: &str) -> Option<usize> {
    let text = text.trim_end_matches('=');
    let ok =
        !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_'));
    ok.then_some(text.len() * 3 / 4)
}
