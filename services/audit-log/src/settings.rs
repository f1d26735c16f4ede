use orderflow_config::{
    ConfigError, DatabaseSettings, Environment, HttpSettings, KafkaSettings, RegistrySettings, Validate,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Records that occurred more than this many days ago are deleted (the
    /// chain keeps an anchor where it was cut, docs/audit.md). Unset: kept
    /// forever (`ORDERFLOW_RETENTION__KEEP_DAYS=365`).
    pub keep_days: Option<u32>,
    /// How often the cut runs.
    pub interval_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub environment: Environment,
    /// Health and metrics.
    pub http: HttpSettings,
    /// The `audit` database.
    pub database: DatabaseSettings,
    pub kafka: KafkaSettings,
    pub registry: RegistrySettings,
    /// Messages recorded per transaction at most.
    pub batch_size: usize,
    /// A checkpoint every this many records of a chain: quick verification
    /// recomputes at most this many hashes per chain.
    pub checkpoint_every: i64,
    pub retention: RetentionSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            environment: Environment::default(),
            http: HttpSettings { addr: "127.0.0.1:8095".into() },
            database: DatabaseSettings::local("audit"),
            kafka: KafkaSettings { client_id: "audit-log".into(), ..KafkaSettings::default() },
            registry: RegistrySettings::default(),
            batch_size: 200,
            checkpoint_every: 1000,
            retention: RetentionSettings { keep_days: None, interval_seconds: 3600 },
        }
    }
}

impl Validate for Settings {
    fn validate(&self) -> orderflow_config::Result<()> {
        self.http.validate("http")?;
        self.database.validate()?;
        self.kafka.validate()?;
        self.registry.validate()?;
        if self.batch_size == 0 {
            return Err(ConfigError::invalid("batch_size", "must be at least 1"));
        }
        if self.checkpoint_every < 1 {
            return Err(ConfigError::invalid("checkpoint_every", "must be at least 1"));
        }
        if self.retention.keep_days == Some(0) {
            return Err(ConfigError::invalid("retention.keep_days", "must be at least 1 (unset keeps everything)"));
        }
        if self.retention.interval_seconds == 0 {
            return Err(ConfigError::invalid("retention.interval_seconds", "must be at least 1"));
        }
        Ok(())
    }
}
