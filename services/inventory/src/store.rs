//! Loading and saving products, inside the kit's transaction.

use chrono::{DateTime, Utc};
use orderflow_contracts::ids::Sku;
use sqlx::{PgConnection, Row};

use crate::rules::Product;

/// The product, locked for the rest of the transaction (so two replicas
/// never change one product's stock at once).
pub async fn load_for_update(tx: &mut PgConnection, sku: &Sku) -> Result<Option<Product>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT name, description, price, currency, on_hand, reserved, version FROM products WHERE sku = $1 FOR UPDATE",
    )
    .bind(sku.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    Ok(row.map(|row| Product {
        sku: sku.clone(),
        name: row.get("name"),
        description: row.get("description"),
        price: row.get("price"),
        currency: row.get("currency"),
        on_hand: row.get("on_hand"),
        reserved: row.get("reserved"),
        version: row.get("version"),
    }))
}

/// Inserts a new product; `false` if its sku is taken. ON CONFLICT: a
/// concurrent creation of the same sku waits for the first one's commit
/// and then inserts nothing, without aborting.
pub async fn insert(tx: &mut PgConnection, product: &Product, now: DateTime<Utc>) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO products (sku, name, description, price, currency, on_hand, reserved, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT DO NOTHING",
    )
    .bind(product.sku.as_str())
    .bind(&product.name)
    .bind(&product.description)
    .bind(product.price)
    .bind(&product.currency)
    .bind(product.on_hand)
    .bind(product.reserved)
    .bind(product.version)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Saves a changed product.
pub async fn update(tx: &mut PgConnection, product: &Product, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE products SET name = $2, description = $3, price = $4, on_hand = $5, reserved = $6, version = $7,
           updated_at = $8
         WHERE sku = $1",
    )
    .bind(product.sku.as_str())
    .bind(&product.name)
    .bind(&product.description)
    .bind(product.price)
    .bind(product.on_hand)
    .bind(product.reserved)
    .bind(product.version)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}
