use orderflow_config::{ConfigError, Domain, ServiceSettings, Validate};
use serde::{Deserialize, Serialize};

/// The user service's settings: the kit's shared groups plus [`Rules`].
pub type Settings = ServiceSettings<Rules>;

/// The user service's own settings (`ORDERFLOW_DOMAIN__...`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Emails that get the `admin` role when they register: how the first
    /// admin comes to exist
    /// (`ORDERFLOW_DOMAIN__BOOTSTRAP_ADMINS='["ops@example.com"]'`).
    pub bootstrap_admins: Vec<String>,
}

impl Default for Rules {
    fn default() -> Self {
        Self { bootstrap_admins: vec!["admin@orderflow.local".into()] }
    }
}

impl Domain for Rules {
    const SERVICE: &'static str = orderflow_contracts::topology::USER_SERVICE.service;
    const PORT: u16 = 8091;
    const DATABASE: &'static str = "users";
}

impl Validate for Rules {
    fn validate(&self) -> orderflow_config::Result<()> {
        if let Some(bad) = self.bootstrap_admins.iter().find(|e| !e.contains('@')) {
            return Err(ConfigError::invalid("domain.bootstrap_admins", format!("`{bad}` is not an email")));
        }
        Ok(())
    }
}
