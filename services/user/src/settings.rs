use orderflow_config::{DatabaseSettings, HttpSettings, KafkaSettings, RegistrySettings, Validate};
use serde::{Deserialize, Serialize};

/// The user service's settings (`ORDERFLOW_*`, see `orderflow-config`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// Health and metrics.
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub kafka: KafkaSettings,
    pub registry: RegistrySettings,
    /// The consumer group of `users.commands`.
    pub group: String,
    /// Emails that get the `admin` role when they register: how the first
    /// admin comes to exist (`ORDERFLOW_BOOTSTRAP_ADMINS='["ops@example.com"]'`).
    pub bootstrap_admins: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            http: HttpSettings { addr: "127.0.0.1:8091".into() },
            database: DatabaseSettings::local("users"),
            kafka: KafkaSettings::default(),
            registry: RegistrySettings::default(),
            group: "user-service".into(),
            bootstrap_admins: vec!["admin@orderflow.local".into()],
        }
    }
}

impl Validate for Settings {
    fn validate(&self) -> orderflow_config::Result<()> {
        self.http.validate("http")?;
        self.database.validate()?;
        self.kafka.validate()?;
        self.registry.validate()?;
        if self.group.trim().is_empty() {
            return Err(orderflow_config::ConfigError::invalid("group", "must not be empty"));
        }
        if let Some(bad) = self.bootstrap_admins.iter().find(|e| !e.contains('@')) {
            return Err(orderflow_config::ConfigError::invalid("bootstrap_admins", format!("`{bad}` is not an email")));
        }
        Ok(())
    }
}
