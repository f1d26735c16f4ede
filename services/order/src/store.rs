//! Loading and saving orders and customers, inside the kit's transaction.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::rules::{Customer, Order, Origin, Paid, Status};

const COLUMNS: &str = "id, customer_id, status, items, currency, total, shipping_address, notes, reason, payment_id,
    captured, refunded, payment_version, version, command_id, correlation_id, traceparent, placed_at, payment_deadline";

fn order(row: &PgRow) -> Result<Order, sqlx::Error> {
    let status: String = row.try_get("status")?;
    let Json(items) = row.try_get("items")?;
    let Json(shipping_address) = row.try_get("shipping_address")?;
    Ok(Order {
        id: row.try_get("id")?,
        customer_id: row.try_get("customer_id")?,
        status: Status::parse(&status)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown order status {status}").into()))?,
        items,
        currency: row.try_get("currency")?,
        total: row.try_get("total")?,
        shipping_address,
        notes: row.try_get("notes")?,
        reason: row.try_get("reason")?,
        payment_id: row.try_get("payment_id")?,
        paid: Paid {
            captured: row.try_get("captured")?,
            refunded: row.try_get("refunded")?,
            version: row.try_get("payment_version")?,
        },
        version: row.try_get("version")?,
        origin: Origin {
            command_id: row.try_get("command_id")?,
            correlation_id: row.try_get("correlation_id")?,
            traceparent: row.try_get("traceparent")?,
        },
        placed_at: row.try_get("placed_at")?,
        payment_deadline: row.try_get("payment_deadline")?,
    })
}

/// The order, locked for the rest of the transaction (two replicas never
/// change one order at once; the deadline scan skips it meanwhile).
pub async fn load_for_update(tx: &mut PgConnection, id: Uuid) -> Result<Option<Order>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM orders WHERE id = $1 FOR UPDATE")))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    row.as_ref().map(order).transpose()
}

/// PENDING orders whose deadline has passed, locked; rows another replica
/// holds are skipped (it is on them).
pub async fn overdue(tx: &mut PgConnection, limit: i64) -> Result<Vec<Order>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM orders WHERE status = 'PENDING' AND payment_deadline <= now()
         ORDER BY payment_deadline LIMIT $1 FOR UPDATE SKIP LOCKED"
    )))
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    rows.iter().map(order).collect()
}

/// Inserts a new order; `false` if one with its id exists already.
pub async fn insert(tx: &mut PgConnection, order: &Order) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO orders (id, customer_id, status, items, currency, total, shipping_address, notes, reason, payment_id,
           version, command_id, correlation_id, traceparent, placed_at, payment_deadline, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $15)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(order.id)
    .bind(order.customer_id)
    .bind(order.status.as_str())
    .bind(Json(&order.items))
    .bind(&order.currency)
    .bind(order.total)
    .bind(Json(&order.shipping_address))
    .bind(&order.notes)
    .bind(&order.reason)
    .bind(order.payment_id)
    .bind(order.version)
    .bind(order.origin.command_id)
    .bind(&order.origin.correlation_id)
    .bind(&order.origin.traceparent)
    .bind(order.placed_at)
    .bind(order.payment_deadline)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Saves what a transition, or a payments event's money, changed. (An
/// insert leaves the money to the columns' defaults: nothing is paid yet.)
pub async fn update(tx: &mut PgConnection, order: &Order, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE orders SET status = $2, reason = $3, payment_id = $4, version = $5, updated_at = $6,
           captured = $7, refunded = $8, payment_version = $9
         WHERE id = $1",
    )
    .bind(order.id)
    .bind(order.status.as_str())
    .bind(&order.reason)
    .bind(order.payment_id)
    .bind(order.version)
    .bind(now)
    .bind(order.paid.captured)
    .bind(order.paid.refunded)
    .bind(order.paid.version)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub async fn customer(tx: &mut PgConnection, id: Uuid) -> Result<Option<Customer>, sqlx::Error> {
    let active: Option<bool> =
        sqlx::query_scalar("SELECT active FROM customers WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?;
    Ok(active.map(|active| Customer { active }))
}

/// Records what a users event says about a customer, unless a newer event
/// was applied already.
/// Drops what the orders of customer `id` say about them personally (the
/// erasure of the customer): the shipping address (every field empty) and
/// the notes. Items, amounts and states stay.
pub async fn erase_customer(tx: &mut PgConnection, id: Uuid) -> Result<u64, sqlx::Error> {
    let erased = orderflow_contracts::orders::ShippingAddress {
        name: String::new(),
        line1: String::new(),
        line2: None,
        city: String::new(),
        postal_code: String::new(),
        country: String::new(),
    };
    let done = sqlx::query("UPDATE orders SET shipping_address = $2, notes = NULL WHERE customer_id = $1")
        .bind(id)
        .bind(Json(&erased))
        .execute(&mut *tx)
        .await?;
    Ok(done.rows_affected())
}

pub async fn save_customer(tx: &mut PgConnection, id: Uuid, active: bool, version: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO customers (id, active, version) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET active = EXCLUDED.active, version = EXCLUDED.version
         WHERE customers.version < EXCLUDED.version",
    )
    .bind(id)
    .bind(active)
    .bind(version)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
