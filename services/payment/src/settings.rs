use orderflow_config::{ConfigError, Domain, ServiceSettings, Validate};
use serde::{Deserialize, Serialize};

/// The payment service's settings: the kit's shared groups plus [`Rules`].
pub type Settings = ServiceSettings<Rules>;

/// The payment service's own settings (`ORDERFLOW_DOMAIN__...`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// The built-in provider declines any amount above this many minor
    /// units and authorizes the rest, so tests and demos drive both
    /// outcomes (`ORDERFLOW_DOMAIN__DECLINE_ABOVE`).
    pub decline_above: i64,
}

impl Default for Rules {
    fn default() -> Self {
        Self { decline_above: 1_000_000 }
    }
}

impl Domain for Rules {
    const SERVICE: &'static str = orderflow_contracts::topology::PAYMENT_SERVICE.service;
    const PORT: u16 = 8094;
    const DATABASE: &'static str = "payments";
}

impl Validate for Rules {
    fn validate(&self) -> orderflow_config::Result<()> {
        if self.decline_above < 0 {
            return Err(ConfigError::invalid("domain.decline_above", "must be at least 0"));
        }
        Ok(())
    }
}
