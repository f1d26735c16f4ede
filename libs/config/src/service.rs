//! The settings group every domain service shares, plus its own rules.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{
    ConfigError, DatabaseSettings, Environment, HttpSettings, KafkaSettings, KeySettings, RegistrySettings, Result,
    TelemetrySettings, Validate,
};

/// What a domain service adds to the shared settings: its name, where it
/// listens and which database it owns by default, and its own rules
/// (`ORDERFLOW_DOMAIN__...`).
pub trait Domain:
    Default + Serialize + DeserializeOwned + Validate + Clone + std::fmt::Debug + Send + Sync + 'static
{
    /// The service's name: its consumer group and Kafka `client.id`.
    const SERVICE: &'static str;
    /// Its development port for health and metrics.
    const PORT: u16;
    /// Its development database.
    const DATABASE: &'static str;
    /// The `fetch.min.bytes` its consumers start with
    /// ([`KafkaSettings::fetch_min_bytes`]): 1, unless no one waits on
    /// what it does with a record.
    const FETCH_MIN_BYTES: u32 = 1;
}

impl KafkaSettings {
    /// The defaults, as domain `D`'s: its `client.id` and fetch size.
    pub fn of<D: Domain>() -> Self {
        Self { client_id: D::SERVICE.into(), fetch_min_bytes: D::FETCH_MIN_BYTES, ..Self::default() }
    }
}

/// The consumer group and how patiently it handles messages.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSettings {
    /// The consumer group (default: the service's name).
    pub group: String,
    /// Messages handled in one database transaction at most (a run: of
    /// one lane, from any of its partitions).
    pub batch_size: usize,
    /// Runs handled at once. Each partition the process owns belongs to
    /// one lane, which works its messages in order; a lane's run takes
    /// what is waiting on all of its partitions, so the transactions a
    /// process commits follow its cores, not its partition count (default:
    /// the cores this process may use).
    pub lanes: usize,
    /// Attempts for a message that fails permanently before it is dead-lettered.
    pub max_attempts: usize,
    /// First retry delay; doubles up to `max_backoff_ms`.
    pub base_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Messages buffered per lane between the broker and the lane, and
    /// set aside per partition behind keys that cannot go yet.
    pub queue_capacity: usize,
}

impl ConsumerSettings {
    pub fn new(group: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            batch_size: 100,
            lanes: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            max_attempts: 4,
            base_backoff_ms: 50,
            max_backoff_ms: 5_000,
            queue_capacity: 1_000,
        }
    }

    pub fn validate(&self) -> Result<()> {
        if self.group.trim().is_empty() {
            return Err(ConfigError::invalid("consumer.group", "must not be empty"));
        }
        for (name, value) in [
            ("consumer.batch_size", self.batch_size),
            ("consumer.lanes", self.lanes),
            ("consumer.max_attempts", self.max_attempts),
            ("consumer.queue_capacity", self.queue_capacity),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(name, "must be at least 1"));
            }
        }
        if self.base_backoff_ms == 0 || self.max_backoff_ms < self.base_backoff_ms {
            return Err(ConfigError::invalid(
                "consumer.max_backoff_ms",
                "must be at least consumer.base_backoff_ms (> 0)",
            ));
        }
        Ok(())
    }
}

/// How the outbox relay publishes.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySettings {
    /// Rows per batch; all are sent before any confirmation is awaited.
    pub batch_size: i64,
    /// Failed deliveries of one row before it (and the later rows of its
    /// key, so per-key order holds) is parked and the rest flows on.
    pub max_attempts: i32,
    /// A safety net: the relay wakes on `NOTIFY outbox`, and at least this often.
    pub poll_interval_ms: u64,
    /// Published rows are kept this long, marked, for inspection; 0 (the
    /// default) deletes each row once the broker confirmed it, which keeps
    /// the table to its backlog (the topic is the record of what was sent).
    pub retention_secs: u64,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self { batch_size: 500, max_attempts: 5, poll_interval_ms: 1_000, retention_secs: 0 }
    }
}

impl RelaySettings {
    pub fn validate(&self) -> Result<()> {
        if self.batch_size < 1 {
            return Err(ConfigError::invalid("relay.batch_size", "must be at least 1"));
        }
        if self.max_attempts < 1 {
            return Err(ConfigError::invalid("relay.max_attempts", "must be at least 1"));
        }
        if self.poll_interval_ms == 0 {
            return Err(ConfigError::invalid("relay.poll_interval_ms", "must be at least 1"));
        }
        Ok(())
    }
}

/// How a service's calls to outside systems (effects: a payment
/// provider) are run: outside any partition's transaction, a bounded number
/// of times each, with backoff.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EffectSettings {
    /// Calls of one effect at most (its retry budget); then it has failed
    /// and the service decides what that means (a payment is declined).
    pub max_attempts: i32,
    /// First delay before a failed call is made again; doubles up to
    /// `max_backoff_ms`.
    pub base_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// One call's time limit; a call that takes longer counts as failed.
    pub timeout_ms: u64,
    /// Calls in flight at once, per process.
    pub concurrency: usize,
    /// How long a run of inputs waits, before its transaction, for the
    /// first attempt of the calls its service named up front
    /// (`Service::calls`): long enough for a healthy outside system, so
    /// that such an input is handled once; a call that takes longer parks
    /// its input's key and the partition flows on. 0: calls are not started
    /// up front (each input asks for its calls when handled, and waits
    /// parked).
    #[serde(default = "default_wait_ms")]
    pub wait_ms: u64,
}

fn default_wait_ms() -> u64 {
    100
}

impl Default for EffectSettings {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_backoff_ms: 200,
            max_backoff_ms: 10_000,
            timeout_ms: 10_000,
            concurrency: 32,
            wait_ms: default_wait_ms(),
        }
    }
}

impl EffectSettings {
    pub fn validate(&self) -> Result<()> {
        if self.max_attempts < 1 {
            return Err(ConfigError::invalid("effects.max_attempts", "must be at least 1"));
        }
        if self.base_backoff_ms == 0 || self.max_backoff_ms < self.base_backoff_ms {
            return Err(ConfigError::invalid(
                "effects.base_backoff_ms",
                "must be at least 1 and at most effects.max_backoff_ms",
            ));
        }
        if self.timeout_ms == 0 {
            return Err(ConfigError::invalid("effects.timeout_ms", "must be at least 1"));
        }
        if self.concurrency == 0 {
            return Err(ConfigError::invalid("effects.concurrency", "must be at least 1"));
        }
        Ok(())
    }
}

/// The settings of a domain service: the shared groups plus `domain`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, bound = "D: Domain")]
pub struct ServiceSettings<D: Domain> {
    pub environment: Environment,
    /// Health and metrics.
    pub http: HttpSettings,
    /// The service's own database.
    pub database: DatabaseSettings,
    pub kafka: KafkaSettings,
    pub registry: RegistrySettings,
    pub consumer: ConsumerSettings,
    pub relay: RelaySettings,
    pub effects: EffectSettings,
    /// Traces out of the process.
    pub telemetry: TelemetrySettings,
    /// Data keys of personal fields (the user service keeps them, the
    /// order service seals with them).
    pub keys: KeySettings,
    /// The service's own rules.
    pub domain: D,
}

impl<D: Domain> Default for ServiceSettings<D> {
    fn default() -> Self {
        Self {
            environment: Environment::default(),
            http: HttpSettings { addr: format!("127.0.0.1:{}", D::PORT) },
            database: DatabaseSettings::local(D::DATABASE),
            kafka: KafkaSettings::of::<D>(),
            registry: RegistrySettings::default(),
            consumer: ConsumerSettings::new(D::SERVICE),
            relay: RelaySettings::default(),
            effects: EffectSettings::default(),
            telemetry: TelemetrySettings::default(),
            keys: KeySettings::default(),
            domain: D::default(),
        }
    }
}

impl<D: Domain> Validate for ServiceSettings<D> {
    fn validate(&self) -> Result<()> {
        self.http.validate("http")?;
        self.database.validate()?;
        self.kafka.validate()?;
        self.registry.validate()?;
        self.consumer.validate()?;
        self.relay.validate()?;
        self.effects.validate()?;
        self.telemetry.validate()?;
        self.keys.validate()?;
        self.domain.validate()
    }
}
