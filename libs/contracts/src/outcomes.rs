//! What a command came to, the same for every domain: the service kit
//! publishes a [`CommandRejected`] on the refusing domain's event topic
//! when a service refuses a command, and stamps the outcome on the headers
//! of every event a command caused (see `orderflow_bus::CommandOutcome`), so
//! the command-status projection settles any command from headers alone.

use serde::{Deserialize, Serialize};

use crate::{Reason, contract, schema_files};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRejected {
    pub command_id: String,
    pub command_type: String,
    pub aggregate_id: String,
    /// [`Reason::as_str`] of the reason (see [`CommandRejected::reason`]).
    pub reason: String,
    pub message: String,
}
contract!(CommandRejected, "orderflow.outcomes.events", "outcomes", aggregate_id);

impl CommandRejected {
    pub fn new(command_id: String, command_type: &str, aggregate_id: String, reason: Reason, message: String) -> Self {
        Self {
            command_id,
            command_type: command_type.to_owned(),
            aggregate_id,
            reason: reason.as_str().to_owned(),
            message,
        }
    }

    /// The typed reason (`None`: one a newer producer knows and this build
    /// does not).
    pub fn reason(&self) -> Option<Reason> {
        Reason::parse(&self.reason)
    }
}

schema_files!("outcomes": CommandRejected);
