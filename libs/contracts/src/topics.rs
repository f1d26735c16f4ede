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

    /// A dead-letter topic (`<topic>.dlq`), for the consumers that read one
    /// (the projector settles dead-lettered commands as failed).
    pub const fn dead_letters(name: &'static str) -> Self {
        Self { name, retention: Retention::Week }
    }

    fn is_dead_letters(&self) -> bool {
        self.name.ends_with(DLQ_SUFFIX)
    }
}

const DLQ_SUFFIX: &str = ".dlq";

/// The dead-letter topic of `topic`.
pub fn dlq(topic: &str) -> String {
    format!("{topic}{DLQ_SUFFIX}")
}

/// `topics` with each one's dead-letter topic, as `(name, retention)`. A
/// dead-letter topic gets none of its own: whoever reads one must never
/// fail on it.
pub fn with_dead_letters(topics: &[Topic]) -> Vec<(String, Retention)> {
    topics
        .iter()
        .flat_map(|t| {
            let own = (!t.is_dead_letters()).then(|| (dlq(t.name), Retention::Week));
            std::iter::once((t.name.to_owned(), t.retention)).chain(own)
        })
        .collect()
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
    fn a_dead_letter_topic_gets_none_of_its_own() {
        let all = with_dead_letters(&[Topic::dead_letters("users.commands.dlq")]);
        assert_eq!(all, vec![("users.commands.dlq".to_owned(), Retention::Week)]);
        for (commands, dead) in [
            (crate::users::COMMANDS, crate::users::DEAD_COMMANDS),
            (crate::orders::COMMANDS, crate::orders::DEAD_COMMANDS),
            (crate::payments::COMMANDS, crate::payments::DEAD_COMMANDS),
        ] {
            assert_eq!(dlq(commands.name), dead.name);
        }
    }

    #[test]
    fn every_topic_gets_its_dead_letter_topic() {
        let all = with_dead_letters(&[Topic::commands("users.commands")]);
        assert_eq!(all[1], ("users.commands.dlq".to_owned(), Retention::Week));
    }
}
