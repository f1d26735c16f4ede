//! The payments read model (from payments.events).

use orderflow_bus::HandlerError;
use orderflow_contracts::payments::PaymentEvent;
use orderflow_projection::Applied;
use sqlx::PgConnection;

use crate::projection::{db, millis, order_changed, uuid};

/// Applies one payments event.
pub async fn apply(tx: &mut PgConnection, event: &PaymentEvent) -> Result<Applied, HandlerError> {
    match event {
        PaymentEvent::Authorized(e) => {
            let opened = Opened {
                payment_id: &e.payment_id,
                order_id: &e.order_id,
                customer_id: &e.customer_id,
                amount: e.amount,
                currency: &e.currency,
                status: "AUTHORIZED",
                reason: None,
                provider_reference: Some(&e.provider_reference),
                version: e.version,
                at: e.authorized_at,
            };
            open(tx, opened).await
        }
        PaymentEvent::Declined(e) => {
            let opened = Opened {
                payment_id: &e.payment_id,
                order_id: &e.order_id,
                customer_id: &e.customer_id,
                amount: e.amount,
                currency: &e.currency,
                status: "DECLINED",
                reason: Some((&e.reason, &e.message)),
                provider_reference: None,
                version: e.version,
                at: e.declined_at,
            };
            open(tx, opened).await
        }
        PaymentEvent::Captured(e) => {
            change(tx, &e.payment_id, "CAPTURED", Some(e.amount), e.version, e.captured_at).await
        }
        PaymentEvent::Voided(e) => change(tx, &e.payment_id, "VOIDED", None, e.version, e.voided_at).await,
        PaymentEvent::Refunded(e) => refunded(tx, &e.payment_id, e.refunded_total, e.version, e.refunded_at).await,
        // A rejection changed nothing (its command's status is settled from
        // its headers, like every outcome).
        PaymentEvent::Rejected(_) | PaymentEvent::RetiredCommandRejected(_) => Ok(Applied::nothing()),
    }
}

struct Opened<'a> {
    payment_id: &'a str,
    order_id: &'a str,
    customer_id: &'a str,
    amount: i64,
    currency: &'a str,
    status: &'a str,
    reason: Option<(&'a str, &'a str)>,
    provider_reference: Option<&'a str>,
    version: i64,
    at: i64,
}

async fn open(tx: &mut PgConnection, p: Opened<'_>) -> Result<Applied, HandlerError> {
    sqlx::query(
        "INSERT INTO payments (id, order_id, customer_id, amount, currency, status, reason, reason_message,
           provider_reference, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) ON CONFLICT (id) DO NOTHING",
    )
    .bind(uuid(p.payment_id)?)
    .bind(uuid(p.order_id)?)
    .bind(uuid(p.customer_id)?)
    .bind(p.amount)
    .bind(p.currency)
    .bind(p.status)
    .bind(p.reason.map(|r| r.0))
    .bind(p.reason.map(|r| r.1))
    .bind(p.provider_reference)
    .bind(p.version)
    .bind(millis(p.at))
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    Ok(Applied::notify(order_changed(p.order_id, Some(p.customer_id))))
}

/// Records a refund's new total unless a newer event was applied already:
/// fully refunded once the total reaches the capture.
async fn refunded(
    tx: &mut PgConnection,
    payment_id: &str,
    total: i64,
    version: i64,
    at: i64,
) -> Result<Applied, HandlerError> {
    let order: Option<(uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
        "UPDATE payments SET refunded = $2,
           status = CASE WHEN $2 >= captured THEN 'REFUNDED' ELSE 'PARTIALLY_REFUNDED' END,
           version = $3, updated_at = $4
         WHERE id = $1 AND version < $3 RETURNING order_id, customer_id",
    )
    .bind(uuid(payment_id)?)
    .bind(total)
    .bind(version)
    .bind(millis(at))
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    Ok(announced(order))
}

/// Announces the order (and customer) of a payment that changed.
fn announced(order: Option<(uuid::Uuid, uuid::Uuid)>) -> Applied {
    order.map_or_else(Applied::nothing, |(id, customer)| Applied::notify(order_changed(id, Some(customer))))
}

/// Changes a payment unless a newer event was applied already.
async fn change(
    tx: &mut PgConnection,
    payment_id: &str,
    status: &str,
    captured: Option<i64>,
    version: i64,
    at: i64,
) -> Result<Applied, HandlerError> {
    let order: Option<(uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
        "UPDATE payments SET status = $2, captured = COALESCE($3, captured), version = $4, updated_at = $5
         WHERE id = $1 AND version < $4 RETURNING order_id, customer_id",
    )
    .bind(uuid(payment_id)?)
    .bind(status)
    .bind(captured)
    .bind(version)
    .bind(millis(at))
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    Ok(announced(order))
}
