//! Verifying the chains.
//!
//! For every chain (source partition) it checks, from the chain's anchor
//! (where retention last cut it; else the start, [`GENESIS`]):
//!
//! 1. **linkage**, in SQL over the whole chain: `seq` runs on without a gap
//!    from the anchor, and every `prev_hash` is the stored hash of the
//!    record before: a deleted or inserted record, or an altered hash,
//!    breaks it. No hashing, no rows leave the database: fast.
//! 2. **checkpoints**: every checkpoint (the projection writes one every N
//!    records of a chain, in the same transaction) still matches the hash
//!    of the record at its `seq`.
//! 3. **content**: each record's hash is recomputed from its columns. In the
//!    default (quick) mode only after the newest checkpoint, so the work is
//!    bounded by the checkpoint interval, not the size of the log; `full`
//!    recomputes every record (a periodic job; a content change older than
//!    the newest checkpoint that left the stored hashes alone is only found
//!    this way).
//! 4. **head**: the chain ends at the head the projection recorded, so
//!    records cut off at the end are noticed too.
//!
//! The report names, per chain and overall, the first record where a chain
//! breaks and why.

use futures::TryStreamExt;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::query::COLUMNS;
use crate::{GENESIS, Record};

/// Where a chain breaks, and what is wrong there.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = AuditBreak))]
pub struct Break {
    pub topic: String,
    pub partition: i32,
    /// The first record of the chain that is wrong (or, for a record cut
    /// off at the end, the first one missing).
    pub seq: i64,
    pub message_id: Option<Uuid>,
    pub problem: String,
}

/// One source partition's chain.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = AuditChainReport))]
pub struct ChainReport {
    pub topic: String,
    pub partition: i32,
    pub records: i64,
    /// The last record retention removed, if any (the chain starts after it).
    pub anchor_seq: Option<i64>,
    pub head_seq: Option<i64>,
    pub checkpoints: i64,
    /// Content was recomputed for the records after this `seq`.
    pub recomputed_after: i64,
    pub recomputed: i64,
    pub intact: bool,
    pub first_break: Option<Break>,
}

/// Whether every chain of the audit log is intact, and the first break.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = AuditReport))]
pub struct Report {
    pub intact: bool,
    /// `quick` or `full` (see the module docs).
    pub mode: &'static str,
    pub records: i64,
    pub recomputed: i64,
    pub chains: Vec<ChainReport>,
    /// The first break of the first broken chain (by topic, partition).
    pub first_break: Option<Break>,
}

/// Verifies every chain; `full` recomputes every record's hash.
pub async fn verify(pool: &PgPool, full: bool) -> Result<Report, sqlx::Error> {
    let chains: Vec<(String, i32)> = sqlx::query_as(
        "SELECT topic, partition FROM audit.heads
         UNION SELECT topic, partition FROM audit.anchors
         UNION SELECT DISTINCT topic, partition FROM audit.records
         ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await?;
    let mut reports = Vec::with_capacity(chains.len());
    for (topic, partition) in chains {
        reports.push(verify_chain(pool, &topic, partition, full).await?);
    }
    Ok(Report {
        intact: reports.iter().all(|c| c.intact),
        mode: if full { "full" } else { "quick" },
        records: reports.iter().map(|c| c.records).sum(),
        recomputed: reports.iter().map(|c| c.recomputed).sum(),
        first_break: reports.iter().find_map(|c| c.first_break.clone()),
        chains: reports,
    })
}

async fn verify_chain(pool: &PgPool, topic: &str, partition: i32, full: bool) -> Result<ChainReport, sqlx::Error> {
    let anchor: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit.anchors WHERE topic = $1 AND partition = $2")
            .bind(topic)
            .bind(partition)
            .fetch_optional(pool)
            .await?;
    let (anchor_seq, anchor_hash) = anchor.clone().unwrap_or((0, GENESIS.to_owned()));
    let head: Option<(i64, String)> =
        sqlx::query_as("SELECT seq, hash FROM audit.heads WHERE topic = $1 AND partition = $2")
            .bind(topic)
            .bind(partition)
            .fetch_optional(pool)
            .await?;
    let (records, last): (i64, Option<i64>) =
        sqlx::query_as("SELECT count(*), max(seq) FROM audit.records WHERE topic = $1 AND partition = $2")
            .bind(topic)
            .bind(partition)
            .fetch_one(pool)
            .await?;
    let brk = |seq: i64, message_id: Option<Uuid>, problem: String| Break {
        topic: topic.to_owned(),
        partition,
        seq,
        message_id,
        problem,
    };
    let mut breaks: Vec<Break> = Vec::new();

    // 1. Linkage over the whole chain, in the database.
    let linkage: Option<(i64, Uuid, Option<i64>)> = sqlx::query_as(
        "SELECT seq, message_id, prev_seq FROM (
             SELECT seq, message_id, prev_hash,
                    lag(seq) OVER (ORDER BY seq) AS prev_seq, lag(hash) OVER (ORDER BY seq) AS prev_row_hash
             FROM audit.records WHERE topic = $1 AND partition = $2) chain
         WHERE (prev_seq IS NULL AND (seq <> $3 + 1 OR prev_hash <> $4))
            OR (prev_seq IS NOT NULL AND (seq <> prev_seq + 1 OR prev_hash <> prev_row_hash))
         ORDER BY seq LIMIT 1",
    )
    .bind(topic)
    .bind(partition)
    .bind(anchor_seq)
    .bind(&anchor_hash)
    .fetch_optional(pool)
    .await?;
    if let Some((seq, id, prev_seq)) = linkage {
        let problem = match prev_seq {
            None if seq != anchor_seq + 1 => {
                format!("the chain should start at record {} but starts at {seq}", anchor_seq + 1)
            }
            None => "its prev_hash is not the hash the chain starts from (genesis or the retention anchor)".into(),
            Some(p) if seq != p + 1 => format!("records {} to {} are missing", p + 1, seq - 1),
            Some(p) => format!("its prev_hash is not the hash of record {p}"),
        };
        let at = match prev_seq {
            None if seq > anchor_seq + 1 => anchor_seq + 1,
            Some(p) if seq > p + 1 => p + 1,
            _ => seq,
        };
        breaks.push(brk(at, (at == seq).then_some(id), problem));
    }

    // 2. Checkpoints.
    let checkpoints: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit.checkpoints WHERE topic = $1 AND partition = $2 AND seq > $3")
            .bind(topic)
            .bind(partition)
            .bind(anchor_seq)
            .fetch_one(pool)
            .await?;
    let bad_checkpoint: Option<(i64, Option<Uuid>)> = sqlx::query_as(
        "SELECT c.seq, r.message_id FROM audit.checkpoints c
         LEFT JOIN audit.records r ON r.topic = c.topic AND r.partition = c.partition AND r.seq = c.seq
         WHERE c.topic = $1 AND c.partition = $2 AND c.seq > $3 AND r.hash IS DISTINCT FROM c.hash
         ORDER BY c.seq LIMIT 1",
    )
    .bind(topic)
    .bind(partition)
    .bind(anchor_seq)
    .fetch_optional(pool)
    .await?;
    if let Some((seq, id)) = bad_checkpoint {
        breaks.push(brk(seq, id, format!("the record at checkpoint {seq} is missing or has another hash")));
    }

    // 3. Content, from the newest checkpoint (quick) or the anchor (full).
    let (from_seq, from_hash) = if full {
        (anchor_seq, anchor_hash.clone())
    } else {
        sqlx::query_as(
            "SELECT seq, hash FROM audit.checkpoints WHERE topic = $1 AND partition = $2 AND seq > $3
             ORDER BY seq DESC LIMIT 1",
        )
        .bind(topic)
        .bind(partition)
        .bind(anchor_seq)
        .fetch_optional(pool)
        .await?
        .unwrap_or((anchor_seq, anchor_hash.clone()))
    };
    let mut recomputed = 0;
    {
        let mut rows = sqlx::query_as::<_, Record>(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM audit.records WHERE topic = $1 AND partition = $2 AND seq > $3 ORDER BY seq"
        )))
        .bind(topic)
        .bind(partition)
        .bind(from_seq)
        .fetch(pool);
        let mut expected_prev = from_hash;
        while let Some(record) = rows.try_next().await? {
            recomputed += 1;
            let linked = Record { prev_hash: expected_prev.clone(), ..record.clone() };
            if linked.compute_hash() != record.hash {
                breaks.push(brk(
                    record.seq,
                    Some(record.message_id),
                    "its content does not match its hash (altered, or inserted)".into(),
                ));
                break;
            }
            expected_prev = record.hash;
        }
    }

    // 4. The head.
    let end = last.unwrap_or(anchor_seq);
    match &head {
        Some((head_seq, _)) if *head_seq > end => breaks.push(brk(
            end + 1,
            None,
            format!("the chain ends at record {end} but its head says {head_seq}: records at the end are missing"),
        )),
        Some((head_seq, _)) if *head_seq < end => breaks.push(brk(
            head_seq + 1,
            None,
            format!("the chain goes on to record {end} past its head {head_seq}: records were added"),
        )),
        Some((head_seq, head_hash)) if *head_seq > anchor_seq => {
            let stored: Option<String> =
                sqlx::query_scalar("SELECT hash FROM audit.records WHERE topic = $1 AND partition = $2 AND seq = $3")
                    .bind(topic)
                    .bind(partition)
                    .bind(head_seq)
                    .fetch_optional(pool)
                    .await?;
            if stored.as_deref() != Some(head_hash.as_str()) {
                breaks.push(brk(*head_seq, None, "the last record does not have the head's hash".into()));
            }
        }
        None if records > 0 => breaks.push(brk(anchor_seq + 1, None, "the chain has records but no head".into())),
        _ => {}
    }

    breaks.sort_by_key(|b| b.seq);
    let first_break = breaks.into_iter().next();
    Ok(ChainReport {
        topic: topic.to_owned(),
        partition,
        records,
        anchor_seq: anchor.map(|(seq, _)| seq),
        head_seq: head.map(|(seq, _)| seq),
        checkpoints,
        recomputed_after: from_seq,
        recomputed,
        intact: first_break.is_none(),
        first_break,
    })
}
