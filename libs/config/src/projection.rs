//! The settings group every projection process shares (the read-model
//! projector, the audit log), plus its own under `domain`.

use serde::{Deserialize, Serialize};

use crate::{
    ConfigError, DatabaseSettings, Domain, Environment, HttpSettings, KafkaSettings, KeySettings, RegistrySettings,
    Result, TelemetrySettings, Validate,
};

/// The settings of a projection process: the shared groups plus `domain`
/// (`ORDERFLOW_DOMAIN__...`, e.g. the audit log's
/// `ORDERFLOW_DOMAIN__RETENTION__KEEP_DAYS`). Its [`Domain`] names it, its
/// development port and database.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, bound = "D: Domain")]
pub struct ProjectionSettings<D: Domain> {
    pub environment: Environment,
    /// Health and metrics.
    pub http: HttpSettings,
    /// The database its generations live in.
    pub database: DatabaseSettings,
    pub kafka: KafkaSettings,
    pub registry: RegistrySettings,
    /// Messages applied per transaction at most.
    pub batch_size: usize,
    /// Traces out of the process.
    pub telemetry: TelemetrySettings,
    /// Data keys, to open the personal fields the read models show.
    pub keys: KeySettings,
    /// The projection's own settings.
    pub domain: D,
}

impl<D: Domain> Default for ProjectionSettings<D> {
    fn default() -> Self {
        Self {
            environment: Environment::default(),
            http: HttpSettings { addr: format!("127.0.0.1:{}", D::PORT) },
            database: DatabaseSettings::local(D::DATABASE),
            kafka: KafkaSettings::of::<D>(),
            registry: RegistrySettings::default(),
            batch_size: 200,
            telemetry: TelemetrySettings::default(),
            keys: KeySettings::default(),
            domain: D::default(),
        }
    }
}

impl<D: Domain> Validate for ProjectionSettings<D> {
    fn validate(&self) -> Result<()> {
        self.http.validate("http")?;
        self.database.validate()?;
        self.kafka.validate()?;
        self.registry.validate()?;
        self.telemetry.validate()?;
        self.keys.validate()?;
        if self.batch_size == 0 {
            return Err(ConfigError::invalid("batch_size", "must be at least 1"));
        }
        self.domain.validate()
    }
}
