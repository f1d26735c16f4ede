//! Topics of the contract, beside the message families that travel on them:
//! `<domain>.commands`, `<domain>.events`, `<topic>.dlq`, and how long each
//! kind keeps data.
//!
//! **Retention invariant.** A consumer's inbox must remember a message id at
//! least as long as the message can still be delivered: a command topic
//! keeps data for [`Retention::Week`], so services keep inbox rows for
//! longer than that ([`INBOX_RETENTION`]). An inbox row pruned earlier could
//! let a replayed command take effect twice.

use std::time::Duration;

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

/// How long the longest-lived redeliverable (command) topic keeps data.
pub const COMMAND_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long an inbox row must be kept: longer than any message it guards
/// can be redelivered (see the module docs), with a day to spare.
pub const INBOX_RETENTION: Duration = Duration::from_secs(8 * 24 * 3600);

impl Retention {
    /// The topic configs of this kind.
    pub fn configs(self) -> Vec<(&'static str, String)> {
        let week = COMMAND_RETENTION.as_millis().to_string();
        match self {
            Retention::Week => vec![("cleanup.policy", "delete".into()), ("retention.ms", week)],
            Retention::Forever => vec![("cleanup.policy", "delete".into()), ("retention.ms", "-1".into())],
            Retention::Compacted => vec![("cleanup.policy", "compact".into()), ("retention.ms", "-1".into())],
        }
    }
}

/// One topic of the contract (its name without any test prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Topic {
    pub name: &'static str,
    pub retention: Retention,
}

impl Topic {
    pub const fn commands(name: &'static str) -> Self {
        Self { name, retention: Retention::Week }
    }

    pub const fn events(name: &'static str) -> Self {
        Self { name, retention: Retention::Forever }
    }

    pub const fn compacted(name: &'static str) -> Self {
        Self { name, retention: Retention::Compacted }
    }
}

/// The dead-letter topic of `topic`.
pub fn dlq(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// `topics` with each one's dead-letter topic, as `(name, retention)`.
pub fn with_dead_letters(topics: &[Topic]) -> Vec<(String, Retention)> {
    topics.iter().flat_map(|t| [(t.name.to_owned(), t.retention), (dlq(t.name), Retention::Week)]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbox_outlives_every_redeliverable_topic() {
        assert!(INBOX_RETENTION > COMMAND_RETENTION);
        assert_eq!(Retention::Week.configs()[1].1, COMMAND_RETENTION.as_millis().to_string());
    }

    #[test]
    fn every_topic_gets_its_dead_letter_topic() {
        let all = with_dead_letters(&[Topic::commands("users.commands")]);
        assert_eq!(all[1], ("users.commands.dlq".to_owned(), Retention::Week));
    }
}
