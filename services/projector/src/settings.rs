use orderflow_config::{DatabaseSettings, Environment, HttpSettings, KafkaSettings, RegistrySettings, Validate};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub environment: Environment,
    /// Health and metrics.
    pub http: HttpSettings,
    /// The `readmodels` database.
    pub database: DatabaseSettings,
    pub kafka: KafkaSettings,
    pub registry: RegistrySettings,
    /// Messages applied per transaction at most.
    pub batch_size: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            environment: Environment::default(),
            http: HttpSettings { addr: "127.0.0.1:8092".into() },
            database: DatabaseSettings::local("readmodels"),
            kafka: KafkaSettings { client_id: "projector".into(), ..KafkaSettings::default() },
            registry: RegistrySettings::default(),
            batch_size: 200,
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
            return Err(orderflow_config::ConfigError::invalid("batch_size", "must be at least 1"));
        }
        Ok(())
    }
}
