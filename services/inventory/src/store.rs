//! Loading and saving products, inside the kit's transaction.

use chrono::{DateTime, Utc};
use orderflow_contracts::ids::{OrderId, Sku};
use sqlx::{PgConnection, Row};

use crate::reservations::{Products, Reservation, State, Stock};
use crate::rules::Product;

/// A `products` row (its columns but the sku) as the rules read it.
fn product(sku: Sku, row: &sqlx::postgres::PgRow) -> Product {
    Product {
        sku,
        name: row.get("name"),
        description: row.get("description"),
        price: row.get("price"),
        currency: row.get("currency"),
        on_hand: row.get("on_hand"),
        reserved: row.get("reserved"),
        version: row.get("version"),
    }
}

/// The product, locked for the rest of the transaction (so two replicas
/// never change one product's stock at once).
pub async fn load_for_update(tx: &mut PgConnection, sku: &Sku) -> Result<Option<Product>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT name, description, price, currency, on_hand, reserved, version FROM products WHERE sku = $1 FOR UPDATE",
    )
    .bind(sku.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    Ok(row.map(|row| product(sku.clone(), &row)))
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

/// The products named by `skus`, locked in sku order (two orders naming
/// the same products lock them in the same order, so they never wait on
/// each other in a cycle), by sku. Unknown skus are simply absent.
pub async fn lock_products(tx: &mut PgConnection, skus: &[&str]) -> Result<Products, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT sku, name, description, price, currency, on_hand, reserved, version FROM products
         WHERE sku = ANY($1) ORDER BY sku FOR UPDATE",
    )
    .bind(skus)
    .fetch_all(&mut *tx)
    .await?;
    let mut products = Products::new();
    for row in rows {
        let raw: String = row.get("sku");
        // Only what the catalog accepted is in it.
        let Ok(sku) = Sku::parse("sku", &raw) else { continue };
        products.insert(raw, product(sku, &row));
    }
    Ok(products)
}

/// Locks the products named by `skus` and those the reservations of
/// `orders` hold, in sku order (one statement: a run's locks, taken before
/// any of its inputs, in the one order every run takes them).
pub async fn lock_run(tx: &mut PgConnection, skus: &[&str], orders: &[uuid::Uuid]) -> Result<(), sqlx::Error> {
    if skus.is_empty() && orders.is_empty() {
        return Ok(());
    }
    sqlx::query(
        // `= ANY(ARRAY(..))`: both lookups go through their primary keys. An
        // `OR` of the two made the planner scan every product (with every
        // dead version of the hot ones) while the run held its locks.
        "SELECT sku FROM products
         WHERE sku = ANY(ARRAY(SELECT unnest($1::text[])
                               UNION SELECT sku FROM reservation_lines WHERE order_id = ANY($2)))
         ORDER BY sku FOR UPDATE",
    )
    .bind(skus)
    .bind(orders)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The reservation of `order`, locked, if it was reserved (or failed) before.
pub async fn reservation(tx: &mut PgConnection, order: OrderId) -> Result<Option<Reservation>, sqlx::Error> {
    let state: Option<String> = sqlx::query_scalar("SELECT state FROM reservations WHERE order_id = $1 FOR UPDATE")
        .bind(order.0)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(state) = state else { return Ok(None) };
    let lines: Vec<(String, i64)> =
        sqlx::query_as("SELECT sku, quantity FROM reservation_lines WHERE order_id = $1 ORDER BY sku")
            .bind(order.0)
            .fetch_all(&mut *tx)
            .await?;
    let state =
        State::parse(&state).ok_or_else(|| sqlx::Error::Decode(format!("reservation state `{state}`").into()))?;
    Ok(Some(Reservation { order, state, lines }))
}

/// Saves what a stock decision changed: the reservation and the products.
pub async fn save(tx: &mut PgConnection, stock: &Stock, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    let r = &stock.reservation;
    sqlx::query(
        "INSERT INTO reservations (order_id, state, created_at, updated_at) VALUES ($1, $2, $3, $3)
         ON CONFLICT (order_id) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at",
    )
    .bind(r.order.0)
    .bind(r.state.as_str())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if r.state == State::Held {
        let (skus, quantities): (Vec<&str>, Vec<i64>) = r.lines.iter().map(|(s, q)| (s.as_str(), *q)).unzip();
        sqlx::query(
            "INSERT INTO reservation_lines (order_id, sku, quantity)
             SELECT $1, sku, quantity FROM UNNEST($2::text[], $3::bigint[]) AS l(sku, quantity)
             ON CONFLICT DO NOTHING",
        )
        .bind(r.order.0)
        .bind(skus)
        .bind(quantities)
        .execute(&mut *tx)
        .await?;
    }
    for product in &stock.products {
        update(tx, product, now).await?;
    }
    Ok(())
}
