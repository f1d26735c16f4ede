use orderflow_config::{Domain, ServiceSettings, Validate};
use serde::{Deserialize, Serialize};

/// The inventory service's settings: the kit's shared groups plus [`Rules`].
pub type Settings = ServiceSettings<Rules>;

/// The inventory service's own settings (`ORDERFLOW_DOMAIN__...`): none yet.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {}

impl Domain for Rules {
    const SERVICE: &'static str = orderflow_contracts::topology::INVENTORY_SERVICE.service;
    const PORT: u16 = 8096;
    const DATABASE: &'static str = "inventory";
}

impl Validate for Rules {
    fn validate(&self) -> orderflow_config::Result<()> {
        Ok(())
    }
}
