//! Generation schemas (`gen_N`) and the `rm` views that point at the live one.

use std::collections::HashMap;

use sqlx::{PgConnection, PgPool};

/// The read-model tables every generation has, which `rm` exposes as views.
pub const TABLES: [&str; 3] = ["users", "credentials", "commands"];

const TEMPLATE: &str = include_str!("../../../migrations/readmodels/generation.sql");

pub fn schema(generation: i32) -> String {
    format!("gen_{generation}")
}

/// Creates an empty generation (status `building`) and returns its number.
pub async fn create(pool: &PgPool) -> Result<i32, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE projection_generations IN EXCLUSIVE MODE").execute(&mut *tx).await?;
    let generation: i32 = sqlx::query_scalar("SELECT COALESCE(MAX(generation), 0) + 1 FROM projection_generations")
        .fetch_one(&mut *tx)
        .await?;
    let name = schema(generation);
    // `name` is gen_ plus an integer: safe to splice.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}; SET LOCAL search_path TO {name};"
    )))
    .execute(&mut *tx)
    .await?;
    sqlx::raw_sql(TEMPLATE).execute(&mut *tx).await?;
    sqlx::query("SET LOCAL search_path TO public").execute(&mut *tx).await?;
    sqlx::query("INSERT INTO projection_generations (generation, status) VALUES ($1, 'building')")
        .bind(generation)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(generation)
}

/// Points the `rm` views at `generation` and marks it live, the previous
/// live one retired, all in one transaction; then tells listeners (the
/// ingress re-checks what it waits for).
pub async fn switch_to(pool: &PgPool, generation: i32) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let name = schema(generation);
    for table in TABLES {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE OR REPLACE VIEW rm.{table} AS SELECT * FROM {name}.{table}"
        )))
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("UPDATE projection_generations SET status = 'retired' WHERE status = 'live' AND generation <> $1")
        .bind(generation)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE projection_generations SET status = 'live', switched_at = now() WHERE generation = $1")
        .bind(generation)
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT pg_notify('command_status', '*')").execute(&mut *tx).await?;
    tx.commit().await
}

/// The live generation, creating generation 1 on first start.
pub async fn live_or_create(pool: &PgPool) -> Result<i32, sqlx::Error> {
    let live: Option<i32> = sqlx::query_scalar("SELECT generation FROM projection_generations WHERE status = 'live'")
        .fetch_optional(pool)
        .await?;
    if let Some(generation) = live {
        return Ok(generation);
    }
    let generation = create(pool).await?;
    switch_to(pool, generation).await?;
    Ok(generation)
}

/// Drops generations older than `keep_from` (their schemas and rows).
pub async fn drop_older_than(pool: &PgPool, keep_from: i32) -> Result<(), sqlx::Error> {
    let old: Vec<i32> = sqlx::query_scalar("SELECT generation FROM projection_generations WHERE generation < $1")
        .bind(keep_from)
        .fetch_all(pool)
        .await?;
    for generation in old {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {} CASCADE", schema(generation))))
            .execute(pool)
            .await?;
        sqlx::query("DELETE FROM projection_generations WHERE generation = $1").bind(generation).execute(pool).await?;
    }
    Ok(())
}

/// `(topic, partition) -> next offset` of a generation.
pub async fn offsets(conn: &mut PgConnection, generation: i32) -> Result<HashMap<(String, i32), i64>, sqlx::Error> {
    let rows: Vec<(String, i32, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT topic, partition, next_offset FROM {}.offsets",
        schema(generation)
    )))
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|(t, p, o)| ((t, p), o)).collect())
}
