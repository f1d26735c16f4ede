//! The catalog read model: `products` (from inventory.events), with what
//! may still be sold (`available`, on hand − reserved); and where each
//! order's stock stands (`order_stock`, shown with the order's lines).

use chrono::{DateTime, Utc};
use orderflow_bus::HandlerError;
use orderflow_contracts::inventory::{InventoryEvent, StockLine};
use orderflow_projection::Applied;
use sqlx::PgConnection;

use crate::projection::{db, millis, order_changed, uuid};

/// Applies one inventory event. Every change carries the product's
/// version; what a product is and what it has in stock are each applied
/// only if newer than the last change of their kind (see the template:
/// an order's stock moves come on another partition than the product's
/// own events), so any order of application ends in the same row.
pub async fn apply(tx: &mut PgConnection, event: &InventoryEvent) -> Result<Applied, HandlerError> {
    match event {
        InventoryEvent::Created(e) => {
            sqlx::query(
                "INSERT INTO products (sku, name, description, price, currency, on_hand, reserved, version,
                                       catalog_version, stock_version, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7, $7, $8, $8) ON CONFLICT (sku) DO NOTHING",
            )
            .bind(&e.sku)
            .bind(&e.name)
            .bind(&e.description)
            .bind(e.price)
            .bind(&e.currency)
            .bind(e.on_hand)
            .bind(e.version)
            .bind(millis(e.created_at))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            // Stock moves applied before the product was: the newest one.
            let early: Option<(i64, i64, i64, DateTime<Utc>)> = sqlx::query_as(
                "DELETE FROM product_stock_early WHERE sku = $1 RETURNING on_hand, reserved, version, updated_at",
            )
            .bind(&e.sku)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
            if let Some((on_hand, reserved, version, at)) = early {
                stock_of(tx, &e.sku, on_hand, reserved, version, at).await?;
            }
        }
        InventoryEvent::Updated(e) => {
            sqlx::query(
                "UPDATE products SET name = $2, description = $3, price = $4, currency = $5, catalog_version = $6,
                   version = GREATEST(version, $6), updated_at = CASE WHEN $6 > version THEN $7 ELSE updated_at END
                 WHERE sku = $1 AND catalog_version < $6",
            )
            .bind(&e.sku)
            .bind(&e.name)
            .bind(&e.description)
            .bind(e.price)
            .bind(&e.currency)
            .bind(e.version)
            .bind(millis(e.updated_at))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        InventoryEvent::Adjusted(e) => {
            stock_of(tx, &e.sku, e.on_hand, e.reserved, e.version, millis(e.adjusted_at)).await?;
        }
        // An order's stock moved: each line carries its product's stock and
        // version after the move.
        InventoryEvent::Reserved(e) => {
            stock(tx, &e.lines, e.reserved_at).await?;
            return order_stock(tx, &e.order_id, Step::Held, e.reserved_at).await;
        }
        InventoryEvent::Committed(e) => {
            stock(tx, &e.lines, e.committed_at).await?;
            return order_stock(tx, &e.order_id, Step::Sold, e.committed_at).await;
        }
        InventoryEvent::Released(e) => {
            stock(tx, &e.lines, e.released_at).await?;
            return order_stock(tx, &e.order_id, Step::Released, e.released_at).await;
        }
        // Nothing was held: the order's lines say which one could not be.
        InventoryEvent::ReservationFailed(e) => {
            let failed =
                Step::Failed { sku: &e.sku, reason: &e.reason, requested: e.requested, available: e.available };
            return order_stock(tx, &e.order_id, failed, e.failed_at).await;
        }
        // A rejection changed nothing (its command's status is settled from
        // its headers, like every outcome).
        InventoryEvent::Rejected(_) => {}
    }
    Ok(Applied::nothing())
}

async fn stock(tx: &mut PgConnection, lines: &[StockLine], at: i64) -> Result<(), HandlerError> {
    for line in lines {
        stock_of(tx, &line.sku, line.on_hand, line.reserved, line.version, millis(at)).await?;
    }
    Ok(())
}

/// A product's stock as a change says it is now (at `version`), unless a
/// newer stock change was applied already; kept aside if the product's
/// creation is not applied yet.
async fn stock_of(
    tx: &mut PgConnection,
    sku: &str,
    on_hand: i64,
    reserved: i64,
    version: i64,
    at: DateTime<Utc>,
) -> Result<(), HandlerError> {
    // Both statements take the change as it is: ($1 sku, $2 on hand, $3 reserved, $4 version, $5 at).
    let change = |sql: &'static str| sqlx::query(sql).bind(sku).bind(on_hand).bind(reserved).bind(version).bind(at);
    let moved = change(
        "UPDATE products SET on_hand = $2, reserved = $3, stock_version = $4,
           version = GREATEST(version, $4), updated_at = CASE WHEN $4 > version THEN $5 ELSE updated_at END
         WHERE sku = $1 AND stock_version < $4",
    )
    .execute(&mut *tx)
    .await
    .map_err(db)?;
    if moved.rows_affected() == 0 {
        change(
            "INSERT INTO product_stock_early (sku, on_hand, reserved, version, updated_at)
             SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM products WHERE sku = $1)
             ON CONFLICT (sku) DO UPDATE SET on_hand = EXCLUDED.on_hand, reserved = EXCLUDED.reserved,
               version = EXCLUDED.version, updated_at = EXCLUDED.updated_at
             WHERE product_stock_early.version < EXCLUDED.version",
        )
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    Ok(())
}

/// Where an order's stock stands; each step comes after the one before
/// (held or failed, then sold, then released), so a republished or late
/// event never moves it back.
enum Step<'a> {
    Held,
    Failed { sku: &'a str, reason: &'a str, requested: i64, available: Option<i64> },
    Sold,
    Released,
}

impl Step<'_> {
    fn state(&self) -> &'static str {
        match self {
            Step::Held => "HELD",
            Step::Failed { .. } => "FAILED",
            Step::Sold => "SOLD",
            Step::Released => "RELEASED",
        }
    }

    fn rank(&self) -> i16 {
        match self {
            Step::Held | Step::Failed { .. } => 1,
            Step::Sold => 2,
            Step::Released => 3,
        }
    }
}

/// Records where an order's stock stands, and announces the order.
async fn order_stock(tx: &mut PgConnection, order_id: &str, step: Step<'_>, at: i64) -> Result<Applied, HandlerError> {
    let (sku, reason, requested, available) = match &step {
        Step::Failed { sku, reason, requested, available } => (Some(*sku), Some(*reason), Some(*requested), *available),
        _ => (None, None, None, None),
    };
    // The order's customer, when its view has it already (the orders
    // topic is read apart from the inventory's).
    let changed: Option<Option<uuid::Uuid>> = sqlx::query_scalar(
        "INSERT INTO order_stock (order_id, state, rank, sku, reason, requested, available, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (order_id) DO UPDATE SET state = EXCLUDED.state, rank = EXCLUDED.rank, updated_at = EXCLUDED.updated_at
         WHERE order_stock.rank < EXCLUDED.rank
         RETURNING (SELECT customer_id FROM orders WHERE orders.id = order_stock.order_id)",
    )
    .bind(uuid(order_id)?)
    .bind(step.state())
    .bind(step.rank())
    .bind(sku)
    .bind(reason)
    .bind(requested)
    .bind(available)
    .bind(millis(at))
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    Ok(changed.map_or_else(Applied::nothing, |customer| Applied::notify(order_changed(order_id, customer))))
}
