//! Settings for every orderflow process.
//!
//! Each process owns one typed settings struct. [`load`] builds it in three
//! layers, later ones winning:
//!
//! 1. the struct's `Default` (the embedded development defaults, so
//!    `scripts/dev up` needs no configuration at all);
//! 2. an optional TOML file named by `ORDERFLOW_CONFIG_FILE`;
//! 3. environment variables `ORDERFLOW_<FIELD>`, nested with `__`
//!    (`ORDERFLOW_KAFKA__BROKERS=host:9092`).
//!
//! The result is validated by the struct's [`Validate`] impl, so a bad value
//! stops the process at start-up with a message that names the setting.
//! Secrets ([`Secret`]) and URLs with credentials ([`redact_url`]) never reach
//! a log line through `Debug`.

mod common;
mod secret;

pub use common::{DatabaseSettings, HttpSettings, KafkaSettings, RegistrySettings};
pub use secret::Secret;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration could not be read: {0}")]
    Read(#[from] Box<figment::Error>),
    #[error("invalid setting `{setting}`: {problem}")]
    Invalid { setting: String, problem: String },
}

pub type Result<T, E = ConfigError> = std::result::Result<T, E>;

impl ConfigError {
    pub fn invalid(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Invalid { setting: setting.into(), problem: problem.into() }
    }
}

/// Start-up validation of a settings struct.
pub trait Validate {
    /// Checks every setting, naming the first bad one.
    fn validate(&self) -> Result<()>;
}

/// The environment-variable prefix of every orderflow setting.
pub const ENV_PREFIX: &str = "ORDERFLOW_";

/// Loads `T` from its defaults, the optional file and the environment.
pub fn load<T>() -> Result<T>
where
    T: Default + Serialize + DeserializeOwned + Validate,
{
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Ok(path) = std::env::var("ORDERFLOW_CONFIG_FILE") {
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__").ignore(&["config_file"]));
    let settings: T = figment.extract().map_err(Box::new)?;
    settings.validate()?;
    Ok(settings)
}

/// Renders a URL with its password replaced by `***`, for log lines.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            url.to_string()
        }
        Err(_) => "<unparseable url>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(redact_url("postgres://app:hunter2@db:5432/users"), "postgres://app:***@db:5432/users");
        assert_eq!(redact_url("http://127.0.0.1:8081"), "http://127.0.0.1:8081/");
    }
}
