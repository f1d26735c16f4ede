//! Loading and saving payments, inside the kit's transaction.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::rules::{Action, Payment, Status};

fn payment(row: &PgRow) -> Result<Payment, sqlx::Error> {
    let status: String = row.try_get("status")?;
    Ok(Payment {
        id: row.try_get("id")?,
        order_id: row.try_get("order_id")?,
        customer_id: row.try_get("customer_id")?,
        amount: row.try_get("amount")?,
        currency: row.try_get("currency")?,
        status: Status::parse(&status)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown payment status {status}").into()))?,
        captured: row.try_get("captured")?,
        refunded: row.try_get("refunded")?,
        provider_reference: row.try_get("provider_reference")?,
        version: row.try_get("version")?,
    })
}

/// The order's payment, locked for the rest of the transaction.
pub async fn load_for_update(tx: &mut PgConnection, order_id: Uuid) -> Result<Option<Payment>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, order_id, customer_id, amount, currency, status, captured, refunded, provider_reference, version
         FROM payments WHERE order_id = $1 FOR UPDATE",
    )
    .bind(order_id)
    .fetch_optional(&mut *tx)
    .await?;
    row.as_ref().map(payment).transpose()
}

/// Inserts or updates `payment`, and records the refund `action` made.
pub async fn save(
    tx: &mut PgConnection,
    payment: &Payment,
    action: Option<&Action>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO payments (id, order_id, customer_id, amount, currency, status, captured, refunded,
           provider_reference, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)
         ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, captured = EXCLUDED.captured,
           refunded = EXCLUDED.refunded, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at",
    )
    .bind(payment.id)
    .bind(payment.order_id)
    .bind(payment.customer_id)
    .bind(payment.amount)
    .bind(&payment.currency)
    .bind(payment.status.as_str())
    .bind(payment.captured)
    .bind(payment.refunded)
    .bind(&payment.provider_reference)
    .bind(payment.version)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if let Some(Action::Refund { refund_id, amount, reason }) = action {
        sqlx::query("INSERT INTO refunds (id, payment_id, amount, reason, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(refund_id)
            .bind(payment.id)
            .bind(amount)
            .bind(*reason)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}
