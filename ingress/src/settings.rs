use orderflow_config::{
    ConfigError, DatabaseSettings, HttpSettings, KafkaSettings, RegistrySettings, Secret, Validate,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JwtSettings {
    /// The HS256 signing key. The development default is public knowledge:
    /// set `ORDERFLOW_JWT__SECRET` anywhere that matters.
    pub secret: Secret,
    pub issuer: String,
    pub ttl_seconds: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    pub http: HttpSettings,
    /// The `readmodels` database (read only: the views in schema `rm`).
    pub database: DatabaseSettings,
    pub kafka: KafkaSettings,
    pub registry: RegistrySettings,
    pub jwt: JwtSettings,
    /// The most a client may ask to wait with `Prefer: wait=N`.
    pub max_wait_seconds: u64,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            http: HttpSettings { addr: "127.0.0.1:8080".into() },
            database: DatabaseSettings::local("readmodels"),
            kafka: KafkaSettings::default(),
            registry: RegistrySettings::default(),
            jwt: JwtSettings {
                secret: Secret::new("orderflow-development-secret-change-me"),
                issuer: "orderflow".into(),
                ttl_seconds: 3600,
            },
            max_wait_seconds: 30,
            max_body_bytes: 16 * 1024,
        }
    }
}

impl Validate for Settings {
    fn validate(&self) -> orderflow_config::Result<()> {
        self.http.validate("http")?;
        self.database.validate()?;
        self.kafka.validate()?;
        self.registry.validate()?;
        if self.jwt.secret.expose().len() < 16 {
            return Err(ConfigError::invalid("jwt.secret", "must be at least 16 characters"));
        }
        if self.jwt.ttl_seconds < 60 {
            return Err(ConfigError::invalid("jwt.ttl_seconds", "must be at least 60"));
        }
        if self.max_wait_seconds > 300 {
            return Err(ConfigError::invalid("max_wait_seconds", "must be at most 300"));
        }
        Ok(())
    }
}
