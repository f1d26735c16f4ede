//! The idempotency inbox: one row per handled message id.

use std::collections::HashSet;
use std::time::Duration;

use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};

/// How a message was finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Handled,
    DeadLettered,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Handled => "handled",
            Outcome::DeadLettered => "dead_lettered",
        }
    }
}

/// A message to record in the inbox.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub message_id: &'a str,
    pub topic: &'a str,
    pub message_type: &'a str,
}

/// Records `message_id` in the caller's transaction. `false` means the
/// message was handled before: the caller must change nothing else for it.
pub async fn claim(
    tx: &mut PgConnection,
    message_id: &str,
    topic: &str,
    message_type: &str,
    outcome: Outcome,
) -> Result<bool, sqlx::Error> {
    let claimed = claim_all(tx, &[Entry { message_id, topic, message_type }], outcome).await?;
    Ok(claimed.contains(message_id))
}

/// Records every entry in one statement; returns the ids that were new
/// (the others were handled before). An id named twice (a redelivery that
/// arrived in the same run as its original) is claimed once, as its first
/// entry; the caller acts on one of them. A concurrent claim of the same id by
/// another transaction waits for that one to finish, so two replicas never
/// both act on one message.
///
/// A message that was dead-lettered counts as new once more: an operator
/// who replays it after the fix (`orderflow dlq replay` sends it with its
/// message id) gets it applied once, and if it fails again it is
/// dead-lettered again rather than dropped. Applied, it is `handled`, and
/// a second replay is skipped like any duplicate.
pub async fn claim_all(
    tx: &mut PgConnection,
    entries: &[Entry<'_>],
    outcome: Outcome,
) -> Result<HashSet<String>, sqlx::Error> {
    let mut claimed = HashSet::with_capacity(entries.len());
    // One statement cannot insert one id twice ("ON CONFLICT DO UPDATE
    // command cannot affect row a second time"), which failed the whole run.
    let mut named = HashSet::with_capacity(entries.len());
    let entries: Vec<&Entry<'_>> = entries.iter().filter(|e| named.insert(e.message_id)).collect();
    for chunk in entries.chunks(10_000) {
        let mut insert: QueryBuilder<Postgres> =
            QueryBuilder::new("INSERT INTO inbox (message_id, topic, message_type, outcome) ");
        insert.push_values(chunk, |mut row, e| {
            row.push_bind(e.message_id).push_bind(e.topic).push_bind(e.message_type).push_bind(outcome.as_str());
        });
        insert.push(
            " ON CONFLICT (message_id) DO UPDATE SET outcome = EXCLUDED.outcome, handled_at = now()
              WHERE inbox.outcome = 'dead_lettered' RETURNING message_id",
        );
        let ids: Vec<String> = insert.build_query_scalar().fetch_all(&mut *tx).await?;
        claimed.extend(ids);
    }
    Ok(claimed)
}

/// Gives back claims taken in this transaction for messages it leaves for
/// later (so that they are acted on when they come again).
pub async fn unclaim(tx: &mut PgConnection, message_ids: &[String]) -> Result<(), sqlx::Error> {
    if message_ids.is_empty() {
        return Ok(());
    }
    // Planned each time, not prepared: a generic plan made while the inbox
    // was nearly empty scans it whole, and keeps doing so as it grows until
    // autovacuum's next analyze (1.1 ms a call under load, measured).
    sqlx::query("DELETE FROM inbox WHERE message_id = ANY($1)")
        .bind(message_ids)
        .persistent(false)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Deletes inbox rows older than `retention`, which must exceed how long
/// any message they guard can still be delivered
/// (`orderflow_contracts::topics::INBOX_RETENTION`). Returns how many.
pub async fn prune(pool: &PgPool, retention: Duration) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query("DELETE FROM inbox WHERE handled_at < now() - make_interval(secs => $1)")
        .bind(retention.as_secs_f64())
        .execute(pool)
        .await?
        .rows_affected())
}
