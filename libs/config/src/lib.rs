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
//! Settings fail closed: every struct denies unknown fields, so a misspelt
//! `ORDERFLOW_…` variable or file key stops the process naming it. Variables
//! that are not settings use other prefixes (`OF_FAILPOINTS`, `OF_TEST_…`);
//! the only non-settings under `ORDERFLOW_` are `ORDERFLOW_CONFIG_FILE` and
//! `ORDERFLOW_LOG_FORMAT` (read before settings exist).
//! Secrets ([`Secret`]) and URLs with credentials ([`redact_url`]) never reach
//! a log line through `Debug`.

mod common;
mod projection;
mod secret;
mod service;

pub use common::{
    DEVELOPMENT_KEK, DEVELOPMENT_KEYS_TOKEN, DatabaseSettings, Environment, HttpSettings, KafkaSettings, KeySettings,
    RegistrySettings, TelemetrySettings,
};
pub use projection::ProjectionSettings;
pub use secret::Secret;
pub use service::{ConsumerSettings, Domain, EffectSettings, RelaySettings, ServiceSettings};

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
    figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__").ignore(&["config_file", "log_format"]));
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

    #[derive(Debug, Default, Clone, Serialize, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Rules {
        limit: u32,
    }

    impl Validate for Rules {
        fn validate(&self) -> Result<()> {
            Ok(())
        }
    }

    impl Domain for Rules {
        const SERVICE: &'static str = "test-service";
        const PORT: u16 = 1;
        const DATABASE: &'static str = "test";
    }

    // figment's Jail closure type is fixed by figment.
    #[allow(clippy::result_large_err)]
    fn load_from(env: &[(&str, &str)]) -> Result<ServiceSettings<Rules>> {
        let mut result = None;
        figment::Jail::expect_with(|jail| {
            jail.clear_env();
            for (k, v) in env {
                jail.set_env(k, v);
            }
            result = Some(load::<ServiceSettings<Rules>>());
            Ok(())
        });
        result.expect("ran")
    }

    #[test]
    fn a_misspelt_setting_stops_the_process_naming_it() {
        let error = load_from(&[("ORDERFLOW_KAFKA__BROKER", "x:9092")]).expect_err("unknown setting");
        assert!(error.to_string().contains("broker"), "{error}");
        let error = load_from(&[("ORDERFLOW_NO_SUCH_THING", "1")]).expect_err("unknown setting");
        assert!(error.to_string().contains("no_such_thing"), "{error}");
    }

    #[test]
    fn known_settings_and_passthrough_properties_load() {
        let settings = load_from(&[
            ("ORDERFLOW_KAFKA__BROKERS", "k1:9092,k2:9092"),
            ("ORDERFLOW_KAFKA__PROPERTIES__SASL_MECHANISM", "PLAIN"),
            ("ORDERFLOW_DOMAIN__LIMIT", "7"),
            ("ORDERFLOW_LOG_FORMAT", "json"),
        ])
        .expect("valid settings");
        assert_eq!(settings.kafka.brokers, "k1:9092,k2:9092");
        assert_eq!(settings.domain.limit, 7);
        assert_eq!(settings.consumer.group, "test-service");
        let props: Vec<_> = settings.kafka.librdkafka_properties().collect();
        assert_eq!(props, vec![("sasl.mechanism".to_owned(), "PLAIN")]);
        assert_eq!(settings.environment, Environment::Production, "production unless said otherwise");
    }

    #[test]
    fn guarantees_cannot_be_overridden_by_passthrough() {
        let error = load_from(&[("ORDERFLOW_KAFKA__PROPERTIES__ACKS", "1")]).expect_err("reserved");
        assert!(error.to_string().contains("kafka.properties.acks"), "{error}");
        let error = load_from(&[("ORDERFLOW_KAFKA__MIN_INSYNC_REPLICAS", "4")]).expect_err("bad isr");
        assert!(error.to_string().contains("min_insync_replicas"), "{error}");
    }

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(redact_url("postgres://app:hunter2@db:5432/users"), "postgres://app:***@db:5432/users");
        assert_eq!(redact_url("http://127.0.0.1:8081"), "http://127.0.0.1:8081/");
    }

    #[test]
    fn trace_export_is_off_by_default_and_a_bad_endpoint_or_ratio_is_named() {
        let settings = load_from(&[]).expect("defaults");
        assert_eq!(settings.telemetry.traces_url(), None);
        let on = load_from(&[("ORDERFLOW_TELEMETRY__OTLP_ENDPOINT", "http://collector:4318/")]).expect("valid");
        assert_eq!(on.telemetry.traces_url().as_deref(), Some("http://collector:4318/v1/traces"));
        let empty = load_from(&[("ORDERFLOW_TELEMETRY__OTLP_ENDPOINT", "")]).expect("an empty endpoint is none");
        assert_eq!(empty.telemetry.traces_url(), None);
        for (name, value, problem) in [
            ("ORDERFLOW_TELEMETRY__OTLP_ENDPOINT", "collector:4318", "telemetry.otlp_endpoint"),
            ("ORDERFLOW_TELEMETRY__OTLP_ENDPOINT", "grpc://collector:4317", "telemetry.otlp_endpoint"),
            ("ORDERFLOW_TELEMETRY__SAMPLE_RATIO", "1.5", "telemetry.sample_ratio"),
        ] {
            let error = load_from(&[(name, value)]).expect_err(value).to_string();
            assert!(error.contains(problem), "{value}: {error}");
        }
    }
}
