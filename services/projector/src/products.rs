//! The catalog read model: `products` (from inventory.events), with what
//! may still be sold (`available`, on hand − reserved).

use orderflow_bus::HandlerError;
use orderflow_contracts::inventory::{InventoryEvent, StockLine};
use orderflow_projection::Applied;
use sqlx::PgConnection;

use crate::projection::{db, millis};

/// Applies one inventory event. Every change carries the product's
/// version: an older or repeated one changes nothing.
pub async fn apply(tx: &mut PgConnection, event: &InventoryEvent) -> Result<Applied, HandlerError> {
    match event {
        InventoryEvent::Created(e) => {
            sqlx::query(
                "INSERT INTO products (sku, name, description, price, currency, on_hand, reserved, version, created_at,
                                       updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $8) ON CONFLICT (sku) DO NOTHING",
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
        }
        InventoryEvent::Updated(e) => {
            sqlx::query(
                "UPDATE products SET name = $2, description = $3, price = $4, currency = $5, version = $6, updated_at = $7
                 WHERE sku = $1 AND version < $6",
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
            sqlx::query(
                "UPDATE products SET on_hand = $2, reserved = $3, version = $4, updated_at = $5
                 WHERE sku = $1 AND version < $4",
            )
            .bind(&e.sku)
            .bind(e.on_hand)
            .bind(e.reserved)
            .bind(e.version)
            .bind(millis(e.adjusted_at))
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        }
        // An order's stock moved: each line carries its product's stock and
        // version after the move.
        InventoryEvent::Reserved(e) => stock(tx, &e.lines, e.reserved_at).await?,
        InventoryEvent::Committed(e) => stock(tx, &e.lines, e.committed_at).await?,
        InventoryEvent::Released(e) => stock(tx, &e.lines, e.released_at).await?,
        // Nothing was held; a rejection changed nothing (its command's
        // status is settled from its headers, like every outcome).
        InventoryEvent::ReservationFailed(_) | InventoryEvent::Rejected(_) => {}
    }
    Ok(Applied::nothing())
}

/// Each line's product as the line says it is now, unless a newer version
/// was applied already.
async fn stock(tx: &mut PgConnection, lines: &[StockLine], at: i64) -> Result<(), HandlerError> {
    for line in lines {
        sqlx::query(
            "UPDATE products SET on_hand = $2, reserved = $3, version = $4, updated_at = $5
             WHERE sku = $1 AND version < $4",
        )
        .bind(&line.sku)
        .bind(line.on_hand)
        .bind(line.reserved)
        .bind(line.version)
        .bind(millis(at))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    }
    Ok(())
}
