//! Generation schemas (`<name>_gen_<n>`) and the views that point at the
//! live one.
//!
//! Every name spliced into SQL here comes from a validated [`Definition`]
//! (plain identifiers) or is an integer.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

use crate::Definition;

/// `(topic, partition) -> next offset to consume`.
pub type Offsets = HashMap<(String, i32), i64>;

/// The schema of `generation` of projection `name`.
pub fn schema(name: &str, generation: i32) -> String {
    format!("{name}_gen_{generation}")
}

/// Identifies a template's text, so a generation made from another one is
/// recognised (and rebuilt, not written into).
pub fn fingerprint(template: &str) -> String {
    hex::encode(Sha256::digest(template.as_bytes()))
}

/// Creates an empty generation (status `building`) and returns its number.
pub async fn create(pool: &PgPool, definition: &Definition) -> Result<i32, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(crate::LOCK_CREATE)
        .bind(&definition.name)
        .execute(&mut *tx)
        .await?;
    let generation: i32 =
        sqlx::query_scalar("SELECT COALESCE(MAX(generation), 0) + 1 FROM projection.generations WHERE projection = $1")
            .bind(&definition.name)
            .fetch_one(&mut *tx)
            .await?;
    let name = schema(&definition.name, generation);
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}; SET LOCAL search_path TO {name};"
    )))
    .execute(&mut *tx)
    .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(definition.template.clone())).execute(&mut *tx).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET LOCAL search_path TO public;
         -- Where this generation is in each topic partition; advanced in the
         -- same transaction as the changes, so a restart resumes exactly here.
         CREATE TABLE {name}.projection_offsets (
             topic        TEXT NOT NULL,
             partition    INTEGER NOT NULL,
             next_offset  BIGINT NOT NULL,
             PRIMARY KEY (topic, partition)
         );"
    )))
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO projection.generations (projection, generation, status, template_sha256)
         VALUES ($1, $2, 'building', $3)",
    )
    .bind(&definition.name)
    .bind(generation)
    .bind(fingerprint(&definition.template))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(generation)
}

/// Points the views at `generation` and marks it live (the previous live
/// one retired) in one transaction, so readers see either the old or the
/// new tables, never a mix. The views are dropped and created, not
/// replaced: `CREATE OR REPLACE VIEW` cannot change a view's columns, and a
/// rebuild exists precisely to change them.
pub async fn switch_to(pool: &PgPool, definition: &Definition, generation: i32) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let name = schema(&definition.name, generation);
    let views = &definition.view_schema;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS {views}"))).execute(&mut *tx).await?;
    for table in &definition.tables {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP VIEW IF EXISTS {views}.{table}; CREATE VIEW {views}.{table} AS SELECT * FROM {name}.{table};"
        )))
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query(
        "UPDATE projection.generations SET status = 'retired'
         WHERE projection = $1 AND status = 'live' AND generation <> $2",
    )
    .bind(&definition.name)
    .bind(generation)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE projection.generations SET status = 'live', switched_at = now() WHERE projection = $1 AND generation = $2",
    )
    .bind(&definition.name)
    .bind(generation)
    .execute(&mut *tx)
    .await?;
    if let Some(channel) = &definition.notify_channel {
        // Everything may look different now: every waiter re-checks.
        sqlx::query("SELECT pg_notify($1, '*')").bind(channel).execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// The live generation and the fingerprint of its template.
pub async fn live(pool: &PgPool, name: &str) -> Result<Option<(i32, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT generation, template_sha256 FROM projection.generations WHERE projection = $1 AND status = 'live'",
    )
    .bind(name)
    .fetch_optional(pool)
    .await
}

/// Every generation of `name` with its status, oldest first.
pub async fn list(pool: &PgPool, name: &str) -> Result<Vec<(i32, String)>, sqlx::Error> {
    sqlx::query_as("SELECT generation, status FROM projection.generations WHERE projection = $1 ORDER BY generation")
        .bind(name)
        .fetch_all(pool)
        .await
}

/// Marks `generation` failed (a rebuild that did not finish).
pub(crate) async fn mark_failed(pool: &PgPool, name: &str, generation: i32) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE projection.generations SET status = 'failed' WHERE projection = $1 AND generation = $2")
        .bind(name)
        .bind(generation)
        .execute(pool)
        .await
        .map(drop)
}

/// Marks generations left `building` by an instance that died mid-rebuild.
pub(crate) async fn fail_abandoned(pool: &PgPool, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE projection.generations SET status = 'failed' WHERE projection = $1 AND status = 'building'")
        .bind(name)
        .execute(pool)
        .await
        .map(drop)
}

/// Drops the generations of `name` older than `keep_from` (schemas and rows).
pub async fn drop_older_than(pool: &PgPool, name: &str, keep_from: i32) -> Result<(), sqlx::Error> {
    let old: Vec<i32> = sqlx::query_scalar(
        "SELECT generation FROM projection.generations WHERE projection = $1 AND generation < $2 AND status <> 'live'",
    )
    .bind(name)
    .bind(keep_from)
    .fetch_all(pool)
    .await?;
    for generation in old {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {} CASCADE", schema(name, generation))))
            .execute(pool)
            .await?;
        sqlx::query("DELETE FROM projection.generations WHERE projection = $1 AND generation = $2")
            .bind(name)
            .bind(generation)
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// Where `generation` is in each partition.
pub async fn offsets(conn: &mut PgConnection, name: &str, generation: i32) -> Result<Offsets, sqlx::Error> {
    let rows: Vec<(String, i32, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT topic, partition, next_offset FROM {}.projection_offsets",
        schema(name, generation)
    )))
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|(t, p, o)| ((t, p), o)).collect())
}

/// Advances the offsets of the generation `search_path` points at, in the
/// caller's transaction. Never backwards: a stale runner (or a replay of an
/// old batch) cannot make the projection re-apply what it already has.
/// One statement for every partition of the run (a run of the audit log
/// spans dozens).
pub async fn store_offsets(tx: &mut PgConnection, next: &Offsets) -> Result<(), sqlx::Error> {
    if next.is_empty() {
        return Ok(());
    }
    let mut topics = Vec::with_capacity(next.len());
    let mut partitions = Vec::with_capacity(next.len());
    let mut offsets = Vec::with_capacity(next.len());
    for ((topic, partition), offset) in next {
        topics.push(topic.as_str());
        partitions.push(*partition);
        offsets.push(*offset);
    }
    sqlx::query(
        "INSERT INTO projection_offsets (topic, partition, next_offset)
         SELECT * FROM UNNEST($1::text[], $2::int[], $3::bigint[])
         ON CONFLICT (topic, partition)
         DO UPDATE SET next_offset = GREATEST(projection_offsets.next_offset, EXCLUDED.next_offset)",
    )
    .bind(&topics)
    .bind(&partitions)
    .bind(&offsets)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Whether `current` has reached `target` in every partition that has
/// anything (`target` 0 means an empty partition).
pub fn reached(current: &Offsets, target: &Offsets) -> bool {
    target.iter().all(|(tp, want)| *want == 0 || current.get(tp).is_some_and(|have| have >= want))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reached_ignores_empty_partitions_and_needs_every_other() {
        let t = |v: &[(&str, i32, i64)]| -> Offsets { v.iter().map(|(t, p, o)| ((t.to_string(), *p), *o)).collect() };
        assert!(reached(&t(&[]), &t(&[("a", 0, 0)])));
        assert!(!reached(&t(&[]), &t(&[("a", 0, 1)])));
        assert!(reached(&t(&[("a", 0, 5)]), &t(&[("a", 0, 5), ("a", 1, 0)])));
        assert!(!reached(&t(&[("a", 0, 5)]), &t(&[("a", 0, 6)])));
    }
}
