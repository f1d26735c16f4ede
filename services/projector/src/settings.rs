//! The projector's settings: the projection group
//! ([`orderflow_config::ProjectionSettings`]); it has none of its own.

use orderflow_config::{Domain, ProjectionSettings, Validate};
use serde::{Deserialize, Serialize};

/// The projector's own settings: none (`ORDERFLOW_DOMAIN__*` is refused).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadModels {}

impl Domain for ReadModels {
    const SERVICE: &'static str = "projector";
    const PORT: u16 = 8092;
    const DATABASE: &'static str = "readmodels";
}

impl Validate for ReadModels {
    fn validate(&self) -> orderflow_config::Result<()> {
        Ok(())
    }
}

pub type Settings = ProjectionSettings<ReadModels>;
