//! The projection building block: consume topics into query tables.
//!
//! A service says *what* its projection is — a [`Definition`] (the SQL
//! template of its tables, which of them readers see as views and in which
//! schema), its [`Routes`] (its topics, each read into the projection's own
//! input type) and a [`Projection::apply`] of one input — and
//! [`Engine::run`] does the rest:
//!
//! - [`generation`]: the tables live in generation schemas
//!   (`<name>_gen_<n>`), each built by consuming the topics from the
//!   beginning; the views `<view_schema>.<table>` point at the live one and
//!   are switched (DROP + CREATE, so a changed table shape is fine) in one
//!   transaction.
//! - [`runner`](crate::runner): the kit's partition workers
//!   ([`orderflow_bus::consumer`]) over partitions assigned by hand; a run
//!   of messages per transaction; the offsets advance in that same
//!   transaction and never move backwards; whatever the run settled is
//!   announced with one `NOTIFY` per transaction; a message that fails
//!   splits its run, is retried alone and, if it keeps failing,
//!   dead-lettered through the outbox.
//! - [`lease`](crate::lease): one active instance per projection and
//!   database (an advisory lock; others wait as hot standbys), *fenced* by an
//!   epoch every transaction checks, so an instance that lost its lock
//!   cannot keep writing.
//! - [`rebuild`]: replay into a new generation while the old one serves,
//!   up to watermarks taken once, then stop the old runner, catch up to
//!   where it stopped, switch.
//!
//! [`Engine::run`] returns an error whenever the projection cannot continue
//! (its runner died, it was fenced, the lock connection is gone), so the
//! process that owns it stops being ready and exits; it never restarts
//! itself behind its owner's back.
//!
//! The database needs the `outbox` table of `libs/outbox` (dead letters)
//! and someone running its relay; the library's own tables are created by
//! [`install`].

pub mod engine;
pub mod generation;
mod lease;
mod notify;
pub mod rebuild;
mod routes;
mod runner;

use std::future::Future;

pub use engine::{Engine, Options};
pub use generation::Offsets;
pub use notify::payloads;
pub use orderflow_bus::{HandlerError, InboundMessage};
pub use rebuild::{RebuildError, cancel_rebuild, request_rebuild, wait_for_rebuild};
pub use routes::Routes;

use sqlx::PgConnection;
use tracing::Instrument;

/// What a projection is made of.
#[derive(Debug, Clone)]
pub struct Definition {
    /// Names everything the library keeps about it: its generation schemas
    /// (`<name>_gen_<n>`), its lease and lock, its rebuild requests, the
    /// consumer named in its dead letters. A lowercase SQL identifier.
    pub name: String,
    /// SQL creating one generation's tables; run with `search_path` set to
    /// the new, empty generation schema, so names must be unqualified. The
    /// library adds its own `projection_offsets` table next to them.
    pub template: String,
    /// The tables readers use, as views `<view_schema>.<table>`.
    pub tables: Vec<String>,
    /// Where the views live.
    pub view_schema: String,
    /// The channel on which every transaction announces the keys its
    /// messages settled ([`Applied::notify`]; comma-separated, in as many
    /// notifications as the 8000-byte payload limit needs) and on which a
    /// generation switch announces `*`. `None`: nothing is announced.
    pub notify_channel: Option<String>,
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= 40
}

impl Definition {
    /// Checks that every name spliced into SQL is a plain identifier.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what: &str, value: &str| Error::Definition {
            projection: self.name.clone(),
            problem: format!("{what} `{value}` is not a lowercase SQL identifier of at most 40 characters"),
        };
        for (what, value) in [("name", &self.name), ("view_schema", &self.view_schema)] {
            if !is_identifier(value) {
                return Err(bad(what, value));
            }
        }
        if let Some(table) = self.tables.iter().find(|t| !is_identifier(t)) {
            return Err(bad("table", table));
        }
        Ok(())
    }
}

/// What applying one message did, beyond its changes: the keys to announce
/// on [`Definition::notify_channel`] once the transaction commits (e.g. the
/// id of the command whose outcome it recorded).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    notify: Vec<String>,
}

impl Applied {
    /// Applied; nothing to announce.
    pub fn nothing() -> Self {
        Self::default()
    }

    /// Applied; announce `key` (which must not contain a comma, the
    /// separator of batched payloads).
    pub fn notify(key: impl Into<String>) -> Self {
        Self::nothing().and_notify(key)
    }

    pub fn and_notify(mut self, key: impl Into<String>) -> Self {
        self.notify.push(key.into());
        self
    }

    /// Applied; announce what `other` announces too.
    pub fn and(mut self, other: Applied) -> Self {
        self.notify.extend(other.notify);
        self
    }

    pub fn keys(&self) -> &[String] {
        &self.notify
    }
}

/// A read model built from topics. The users-specific (or audit-specific)
/// part: everything else is the [`Engine`]'s.
pub trait Projection: Send + Sync + 'static {
    /// What it reads, as its rules see it: one type over all its topics
    /// (an enum of the families it reads), decoded by the engine through
    /// [`Projection::routes`] before [`Projection::apply`] sees it.
    type Input: Send + 'static;

    fn definition(&self) -> &Definition;

    /// Its topics, and how each is read into [`Projection::Input`].
    fn routes(&self) -> &Routes<Self::Input>;

    /// Applies `input` inside the run's transaction (`search_path` is the
    /// generation schema, so table names are unqualified); `source` is the
    /// message it was read from (its position, key and headers). Must be
    /// idempotent: after a crash between commit and nothing, nothing is
    /// redelivered, but a republished duplicate (relay retry) may arrive.
    /// Partitions are applied concurrently, each in its order.
    /// [`HandlerError::Transient`] retries the run unchanged;
    /// [`HandlerError::Permanent`] and [`HandlerError::Invalid`] split the
    /// run at the message and retry it alone a bounded number of times,
    /// then dead-letter it.
    fn apply(
        &self,
        tx: &mut PgConnection,
        input: Self::Input,
        source: &InboundMessage,
    ) -> impl Future<Output = Result<Applied, HandlerError>> + Send;

    /// Applies a run (one partition's messages, in order) inside its
    /// transaction. The default applies each item with
    /// [`Projection::apply`] under its span. A projection that writes a run
    /// in fewer statements than one set per message (the audit log: one
    /// insert for the run's records) overrides it; an error must then say
    /// which item failed ([`HandlerError::at`] with its position), so the
    /// run is split there.
    fn apply_run(
        &self,
        tx: &mut PgConnection,
        run: Vec<Item<'_, Self::Input>>,
    ) -> impl Future<Output = Result<Applied, HandlerError>> + Send {
        async move {
            let total = run.len();
            let mut applied = Applied::nothing();
            for (position, Item { input, source, span }) in run.into_iter().enumerate() {
                let one =
                    self.apply(tx, input, source).instrument(span).await.map_err(|error| error.at(position, total))?;
                applied = applied.and(one);
            }
            Ok(applied)
        }
    }
}

/// One message of a run, decoded, with where it came from and its span
/// (the message's trace on what applying it logs and, exported, a span in
/// the message's trace).
#[derive(Debug)]
pub struct Item<'m, I> {
    pub input: I,
    pub source: &'m InboundMessage,
    pub span: tracing::Span,
}

/// Why a projection cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("projection `{projection}` is misdefined: {problem}")]
    Definition { projection: String, problem: String },
    #[error("projection database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(
        "projection `{projection}` was fenced: its epoch is {mine}, the lease says {current:?}; another instance took over"
    )]
    Fenced { projection: String, mine: i64, current: Option<i64> },
    #[error("projection `{projection}` lost the connection holding its lock: {source}")]
    LockLost { projection: String, source: sqlx::Error },
    #[error("the runner of generation {generation} ended: {cause}")]
    RunnerEnded { generation: i32, cause: String },
    #[error("gave up after {seconds} s of transient failures; the last: {last}")]
    GaveUp { seconds: u64, last: String },
    #[error("its consumer: {0}")]
    Consumer(orderflow_bus::consumer::ConsumerError),
    #[error("a projection task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl Error {
    /// Whether the instance may stand by and take over again: it lost its
    /// database or its lease, or the broker, not its definition or a batch.
    pub fn is_recoverable(&self) -> bool {
        matches!(
            self,
            Error::Database(_)
                | Error::Kafka(_)
                | Error::Fenced { .. }
                | Error::LockLost { .. }
                | Error::GaveUp { .. }
                | Error::Consumer(
                    orderflow_bus::consumer::ConsumerError::Create { .. }
                        | orderflow_bus::consumer::ConsumerError::Subscribe { .. }
                        | orderflow_bus::consumer::ConsumerError::Assign { .. }
                )
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Advisory lock classes (the first key; the second is `hashtext(name)`):
/// being the active instance of a projection (held by a session) ...
pub(crate) const LOCK_ACTIVE: i32 = 7072;
/// ... creating a generation (held by a transaction; must not be the same
/// lock, which the active instance holds) ...
pub(crate) const LOCK_CREATE: i32 = 7073;
/// ... and installing the bookkeeping tables.
pub(crate) const LOCK_INSTALL: i32 = 7074;

/// Creates the library's bookkeeping tables (schema `projection`) if they
/// are missing. Safe to call from several processes at once.
pub async fn install(pool: &sqlx::PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Concurrent `CREATE ... IF NOT EXISTS` can still collide; serialise them.
    sqlx::query("SELECT pg_advisory_xact_lock($1, 0)").bind(LOCK_INSTALL).execute(&mut *tx).await?;
    sqlx::raw_sql(include_str!("bookkeeping.sql")).execute(&mut *tx).await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn definition() -> Definition {
        Definition {
            name: "users".into(),
            template: String::new(),
            tables: vec!["users".into()],
            view_schema: "rm".into(),
            notify_channel: None,
        }
    }

    #[test]
    fn names_spliced_into_sql_must_be_identifiers() {
        assert!(definition().validate().is_ok());
        for bad in ["", "Users", "1users", "users; drop", "a-b", &"x".repeat(41)] {
            let d = Definition { name: bad.into(), ..definition() };
            assert!(d.validate().is_err(), "{bad:?}");
            let d = Definition { tables: vec![bad.into()], ..definition() };
            assert!(d.validate().is_err(), "{bad:?}");
        }
    }
}
