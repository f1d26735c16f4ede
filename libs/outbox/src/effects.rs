//! The `effects` table: calls to outside systems, recorded once, run by the
//! kit's effector (`orderflow_runtime::effects`) outside any partition's
//! transaction, and kept with what they answered.
//!
//! A service asks for a call by its id; the first time, the call is
//! recorded ([`request`], committed on its own) and the input that needs
//! it waits (its key is parked); the effector claims due calls
//! ([`claim`]), makes them, and records each outcome ([`succeeded`],
//! [`retry`], [`failed`]); the waiting input, handled again, reads the
//! outcome ([`state`]) inside its own transaction and decides.
//!
//! Every function here but [`state`] takes the kit's bookkeeping pool,
//! whose commits do not wait for the disk
//! (`orderflow_process::database::connect_bookkeeping`): a database crash
//! may lose the last moments of this table without harm — a lost request
//! is recorded again when its input comes again, a lost answer or attempt
//! is made again, which the call's id makes idempotent at the outside
//! system — so only the attempt count may then exceed the budget, by what
//! the crash lost. Durable commits would cost a disk flush per request,
//! claim and answer.

use std::time::Duration;

use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

/// A call a service needs: its id (unique per call, derived from what it
/// is for), its kind and its arguments (JSON the service reads back).
#[derive(Debug, Clone, PartialEq)]
pub struct EffectRequest {
    pub id: Uuid,
    pub kind: &'static str,
    pub call: serde_json::Value,
    /// The trace the call belongs to (the asking message's span), when
    /// traces are exported: the call's span joins it. Set by the kit.
    pub traceparent: Option<String>,
}

impl EffectRequest {
    pub fn new(id: Uuid, kind: &'static str, call: serde_json::Value) -> Self {
        Self { id, kind, call, traceparent: None }
    }
}

/// "the `kind` call `id`": how logs and waiting inputs name it.
impl std::fmt::Display for EffectRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the {} call {}", self.kind, self.id)
    }
}

/// What is known of a recorded call.
#[derive(Debug, Clone, PartialEq)]
pub enum EffectState {
    /// Not made yet, being made, or waiting to be made again.
    Pending,
    /// Made: what the outside system answered.
    Done(serde_json::Value),
    /// Every attempt of its budget failed: the last error.
    Failed(String),
}

/// A call the effector claimed: it is this process's to make until
/// the claim lapses.
#[derive(Debug, Clone)]
pub struct ClaimedEffect {
    pub id: Uuid,
    pub kind: String,
    pub call: serde_json::Value,
    pub wake_key: String,
    /// This attempt's number, from 1.
    pub attempt: i32,
    /// The trace of what asked for it ([`EffectRequest::traceparent`]).
    pub traceparent: Option<String>,
}

/// What is known of call `id`, if it was ever asked for. Read inside the
/// asking input's transaction.
pub async fn state(conn: &mut PgConnection, id: Uuid) -> Result<Option<EffectState>, sqlx::Error> {
    let row = sqlx::query("SELECT state, result::text AS result, last_error FROM effects WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let state: String = row.try_get("state")?;
    Ok(Some(match state.as_str() {
        "done" => {
            let result: Option<String> = row.try_get("result")?;
            let value = serde_json::from_str(result.as_deref().unwrap_or("null"))
                .map_err(|e| sqlx::Error::Decode(format!("effect {id}: its result is not JSON: {e}").into()))?;
            EffectState::Done(value)
        }
        "failed" => EffectState::Failed(row.try_get::<Option<String>, _>("last_error")?.unwrap_or_default()),
        _ => EffectState::Pending,
    }))
}

/// Records `effects`, each for the message of its key, in one statement;
/// asking again for a recorded call changes nothing. Committed on its own:
/// the asking inputs' transaction has ended. With `claim_for`, the caller
/// is about to make the calls itself: they are recorded as claimed (their
/// first attempt counted) and returned, but for those recorded before.
pub async fn request(
    pool: &PgPool,
    effects: &[(EffectRequest, &str)],
    claim_for: Option<Duration>,
) -> Result<Vec<ClaimedEffect>, sqlx::Error> {
    if effects.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = effects.iter().map(|(e, _)| e.id).collect();
    let kinds: Vec<&str> = effects.iter().map(|(e, _)| e.kind).collect();
    let calls: Vec<String> = effects.iter().map(|(e, _)| e.call.to_string()).collect();
    let keys: Vec<&str> = effects.iter().map(|(_, key)| *key).collect();
    let traces: Vec<Option<&str>> = effects.iter().map(|(e, _)| e.traceparent.as_deref()).collect();
    let rows = sqlx::query(
        "INSERT INTO effects (id, kind, call, wake_key, state, attempts, due_at, traceparent)
         SELECT id, kind, call::jsonb, wake_key,
                CASE WHEN $5::float8 IS NULL THEN 'pending' ELSE 'running' END,
                CASE WHEN $5::float8 IS NULL THEN 0 ELSE 1 END,
                now() + make_interval(secs => COALESCE($5::float8, 0)),
                traceparent
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $6::text[])
              AS r(id, kind, call, wake_key, traceparent)
         ON CONFLICT (id) DO NOTHING
         RETURNING id, attempts",
    )
    .bind(ids)
    .bind(kinds)
    .bind(calls)
    .bind(keys)
    .bind(claim_for.map(|lease| lease.as_secs_f64()))
    .bind(traces)
    .fetch_all(pool)
    .await?;
    if claim_for.is_none() {
        return Ok(Vec::new());
    }
    let mut claimed = Vec::with_capacity(rows.len());
    for row in rows {
        let id: Uuid = row.try_get("id")?;
        let Some((effect, key)) = effects.iter().find(|(e, _)| e.id == id) else { continue };
        claimed.push(ClaimedEffect {
            id,
            kind: effect.kind.to_owned(),
            call: effect.call.clone(),
            wake_key: (*key).to_owned(),
            attempt: row.try_get("attempts")?,
            traceparent: effect.traceparent.clone(),
        });
    }
    Ok(claimed)
}

/// Claims up to `limit` calls that are due (or whose claim lapsed: their
/// process died mid-call), each for `lease`, and counts the attempt.
pub async fn claim(pool: &PgPool, limit: i64, lease: Duration) -> Result<Vec<ClaimedEffect>, sqlx::Error> {
    let rows = sqlx::query(
        "UPDATE effects e SET state = 'running', attempts = e.attempts + 1,
           due_at = now() + make_interval(secs => $2), updated_at = now()
         FROM (SELECT id FROM effects
               WHERE state IN ('pending', 'running') AND due_at <= now()
               ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED) due
         WHERE e.id = due.id
         RETURNING e.id, e.kind, e.call::text AS call, e.wake_key, e.attempts, e.traceparent",
    )
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            let call: String = row.try_get("call")?;
            Ok(ClaimedEffect {
                id: row.try_get("id")?,
                kind: row.try_get("kind")?,
                call: serde_json::from_str(&call)
                    .map_err(|e| sqlx::Error::Decode(format!("effect call is not JSON: {e}").into()))?,
                wake_key: row.try_get("wake_key")?,
                attempt: row.try_get("attempts")?,
                traceparent: row.try_get("traceparent")?,
            })
        })
        .collect()
}

/// Records what call `id` answered.
pub async fn succeeded(pool: &PgPool, id: Uuid, result: &serde_json::Value) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE effects SET state = 'done', result = $2::jsonb, last_error = NULL, updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(result.to_string())
    .execute(pool)
    .await?;
    Ok(())
}

/// Records a failed attempt of call `id`; it is made again after `delay`.
pub async fn retry(pool: &PgPool, id: Uuid, error: &str, delay: Duration) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE effects SET state = 'pending', last_error = $2,
           due_at = now() + make_interval(secs => $3), updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .bind(delay.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

/// Records that call `id` used up its budget: `error` was the last answer.
pub async fn failed(pool: &PgPool, id: Uuid, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE effects SET state = 'failed', last_error = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(error)
        .execute(pool)
        .await?;
    Ok(())
}

/// How long until the next call falls due (zero if one is overdue; none
/// pending or running: `None`).
pub async fn next_due(pool: &PgPool) -> Result<Option<Duration>, sqlx::Error> {
    // Not GREATEST(..., 0): it ignores a NULL and answered 0 for an empty
    // table, so every idle service's effector asked again each millisecond
    // (two queries each time: ~800 transactions a second per service).
    let seconds: Option<f64> = sqlx::query_scalar(
        "SELECT EXTRACT(EPOCH FROM (min(due_at) - now()))::float8 FROM effects WHERE state IN ('pending', 'running')",
    )
    .fetch_one(pool)
    .await?;
    Ok(seconds.map(|s| Duration::from_secs_f64(s.max(0.0))))
}
