//! Retention: records older than the setting are deleted, as a prefix of
//! each chain, and the chain's **anchor** records where it was cut (the last
//! record removed and its hash), so what remains still verifies: its first
//! record links to the anchor instead of to genesis.
//!
//! Only a prefix is cut: within a partition `occurred_at` need not be
//! monotonic, so the cut stops before the first record that is still young
//! enough, and an old record after it waits for the next run. The events
//! themselves stay on their topics forever; a rebuild brings the removed
//! records back (same hashes) until the next run cuts them again.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// Serialises runs (two instances, or a run and a manual prune).
const LOCK_RETENTION: i32 = 7080;

/// What one run removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pruned {
    pub chains_cut: usize,
    pub records_removed: i64,
}

/// Removes, per chain, the longest prefix of records that occurred before
/// `cutoff`, and moves the chain's anchor to its last removed record.
pub async fn prune(pool: &PgPool, cutoff: DateTime<Utc>) -> Result<Pruned, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, 0)").bind(LOCK_RETENTION).execute(&mut *tx).await?;
    let chains: Vec<(String, i32)> =
        sqlx::query_as("SELECT DISTINCT topic, partition FROM audit.records ORDER BY 1, 2").fetch_all(&mut *tx).await?;
    let mut pruned = Pruned::default();
    for (topic, partition) in chains {
        // The last record before the first young one (or the last of all).
        let cut: Option<(i64, String)> = sqlx::query_as(
            "SELECT seq, hash FROM audit.records
             WHERE topic = $1 AND partition = $2
               AND seq < COALESCE((SELECT min(seq) FROM audit.records
                                   WHERE topic = $1 AND partition = $2 AND occurred_at >= $3), 9223372036854775807)
             ORDER BY seq DESC LIMIT 1",
        )
        .bind(&topic)
        .bind(partition)
        .bind(cutoff)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((seq, hash)) = cut else { continue };
        let removed = sqlx::query("DELETE FROM audit.records WHERE topic = $1 AND partition = $2 AND seq <= $3")
            .bind(&topic)
            .bind(partition)
            .bind(seq)
            .execute(&mut *tx)
            .await?
            .rows_affected() as i64;
        sqlx::query("DELETE FROM audit.checkpoints WHERE topic = $1 AND partition = $2 AND seq <= $3")
            .bind(&topic)
            .bind(partition)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO audit.anchors AS a (topic, partition, seq, hash, removed, cut_at)
             VALUES ($1, $2, $3, $4, $5, now())
             ON CONFLICT (topic, partition) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash,
               removed = a.removed + EXCLUDED.removed, cut_at = EXCLUDED.cut_at
             WHERE a.seq < EXCLUDED.seq",
        )
        .bind(&topic)
        .bind(partition)
        .bind(seq)
        .bind(&hash)
        .bind(removed)
        .execute(&mut *tx)
        .await?;
        pruned.chains_cut += 1;
        pruned.records_removed += removed;
    }
    tx.commit().await?;
    Ok(pruned)
}
