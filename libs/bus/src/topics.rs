//! Topic names of the contract (`<domain>.commands`, `<domain>.events`,
//! `<topic>.dlq`) and how each is configured.

pub const USERS_COMMANDS: &str = "users.commands";
pub const USERS_EVENTS: &str = "users.events";
/// Password hashes travel only here: a compacted topic (latest credentials
/// per user) read by the credentials projection alone, so no hash ever
/// appears on a general event topic.
pub const USERS_CREDENTIALS: &str = "users.credentials";

/// The dead-letter topic of `topic`.
pub fn dlq(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// How long a kind of topic keeps data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Commands and dead letters: a week.
    Week,
    /// Events: forever, they are the source of every replay.
    Forever,
    /// Latest value per key forever (credentials).
    Compacted,
}

impl Retention {
    pub fn configs(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Retention::Week => vec![("cleanup.policy", "delete"), ("retention.ms", "604800000")],
            Retention::Forever => vec![("cleanup.policy", "delete"), ("retention.ms", "-1")],
            Retention::Compacted => vec![("cleanup.policy", "compact"), ("retention.ms", "-1")],
        }
    }
}

/// Every topic the user flow needs, with its retention.
pub fn user_topics() -> Vec<(String, Retention)> {
    vec![
        (USERS_COMMANDS.into(), Retention::Week),
        (dlq(USERS_COMMANDS), Retention::Week),
        (USERS_EVENTS.into(), Retention::Forever),
        (dlq(USERS_EVENTS), Retention::Week),
        (USERS_CREDENTIALS.into(), Retention::Compacted),
        (dlq(USERS_CREDENTIALS), Retention::Week),
    ]
}
