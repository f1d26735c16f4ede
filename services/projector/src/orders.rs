//! The orders read model (from orders.events).

use orderflow_bus::{HandlerError, Headers};
use orderflow_contracts::orders::OrderEvent;
use orderflow_projection::Applied;
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::projection::{db, millis, order_changed, uuid};

/// Applies one orders event, and wakes whoever waits for the order to
/// leave PENDING.
pub async fn apply(tx: &mut PgConnection, headers: &Headers, event: &OrderEvent) -> Result<Applied, HandlerError> {
    match event {
        OrderEvent::Placed(e) => {
            sqlx::query(
                // A customer erased already (a replay may apply their
                // erasure first: users.events and orders.events are
                // separate logs) gets no address and no notes.
                "INSERT INTO orders (id, customer_id, status, items, currency, total, shipping_address, notes,
                   command_id, version, placed_at, payment_deadline, updated_at)
                 SELECT $1, $2, 'PENDING', $3, $4, $5,
                        CASE WHEN erased THEN 'null'::jsonb ELSE $6 END, CASE WHEN erased THEN NULL ELSE $7 END,
                        $8, $9, $10, $11, $10
                 FROM (SELECT EXISTS (SELECT 1 FROM users WHERE id = $2 AND erased_at IS NOT NULL) AS erased) customer
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(uuid(&e.order_id)?)
            .bind(uuid(&e.customer_id)?)
            .bind(Json(&e.items))
            .bind(&e.currency)
            .bind(e.total)
            .bind(Json(&e.shipping_address))
            .bind(&e.notes)
            .bind(Uuid::parse_str(&headers.causation_id).ok())
            .bind(e.version)
            .bind(millis(e.placed_at))
            .bind(millis(e.payment_deadline))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            Ok(Applied::notify(order_changed(&e.order_id, Some(&e.customer_id))))
        }
        // Still PENDING (its stock is held, its payment next): only the version moves.
        OrderEvent::StockReserved(e) => {
            let customer: Option<Uuid> = sqlx::query_scalar(
                "UPDATE orders SET version = $2, updated_at = $3 WHERE id = $1 AND version < $2 RETURNING customer_id",
            )
            .bind(uuid(&e.order_id)?)
            .bind(e.version)
            .bind(millis(e.reserved_at))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
            Ok(customer.map_or_else(Applied::nothing, |c| Applied::notify(order_changed(&e.order_id, Some(c)))))
        }
        OrderEvent::Confirmed(e) => {
            let payment = Some(uuid(&e.payment_id)?);
            transition(tx, &e.order_id, "CONFIRMED", e.version, e.confirmed_at, None, payment).await
        }
        OrderEvent::Cancelled(e) => {
            let reason = Some((e.reason.as_str(), e.message.as_str()));
            transition(tx, &e.order_id, "CANCELLED", e.version, e.cancelled_at, reason, None).await
        }
        OrderEvent::Shipped(e) => transition(tx, &e.order_id, "SHIPPED", e.version, e.shipped_at, None, None).await,
        OrderEvent::Delivered(e) => {
            transition(tx, &e.order_id, "DELIVERED", e.version, e.delivered_at, None, None).await
        }
        // A rejection changed nothing (its command's status is settled from
        // its headers, like every outcome).
        OrderEvent::Rejected(_) | OrderEvent::RetiredRejected(_) => Ok(Applied::nothing()),
    }
}

/// Moves an order to `status` (with the reason of a cancellation, the
/// payment of a confirmation) unless a newer event was applied already;
/// announces the command that placed it (its `Prefer: wait` answers once
/// the order leaves PENDING).
async fn transition(
    tx: &mut PgConnection,
    order_id: &str,
    status: &str,
    version: i64,
    at: i64,
    reason: Option<(&str, &str)>,
    payment_id: Option<Uuid>,
) -> Result<Applied, HandlerError> {
    let placed_by: Option<(Option<Uuid>, Uuid)> = sqlx::query_as(
        "UPDATE orders SET status = $2, version = $3, updated_at = $4,
           reason = COALESCE($5, reason), reason_message = COALESCE($6, reason_message),
           payment_id = COALESCE($7, payment_id)
         WHERE id = $1 AND version < $3 RETURNING command_id, customer_id",
    )
    .bind(uuid(order_id)?)
    .bind(status)
    .bind(version)
    .bind(millis(at))
    .bind(reason.map(|r| r.0))
    .bind(reason.map(|r| r.1))
    .bind(payment_id)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    Ok(match placed_by {
        Some((Some(command_id), customer)) => {
            Applied::notify(command_id.to_string()).and_notify(order_changed(order_id, Some(customer)))
        }
        Some((None, customer)) => Applied::notify(order_changed(order_id, Some(customer))),
        None => Applied::nothing(),
    })
}
