use orderflow_config::{DatabaseSettings, Environment, HttpSettings, TelemetrySettings, Validate};
use serde::{Deserialize, Serialize};

/// The registry's settings (`ORDERFLOW_HTTP__ADDR`, `ORDERFLOW_DATABASE__URL`, ...).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub environment: Environment,
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    /// Accepted like every process's, so one environment may set it for
    /// all of them; unused: the registry exports no spans.
    pub telemetry: TelemetrySettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            environment: Environment::default(),
            http: HttpSettings { addr: "127.0.0.1:8081".into() },
            database: DatabaseSettings::local("registry"),
            telemetry: TelemetrySettings::default(),
        }
    }
}

impl Validate for Settings {
    fn validate(&self) -> orderflow_config::Result<()> {
        self.http.validate("http")?;
        self.telemetry.validate()?;
        self.database.validate()
    }
}
