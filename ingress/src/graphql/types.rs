//! The object types: an order (from `rm.order_details`) with its nested
//! customer, payment and audit trail, and the nested fields of the REST
//! API's own `User` and `Payment` (which are GraphQL objects as they are).
//!
//! Every nested field goes through a [`Batch`](super::context::Batch):
//! whoever hands out objects (a root field, or a batch as it loads)
//! expects their nested keys ([`expect_orders`], [`expect_users`],
//! [`expect_payments`]), so a page of a hundred orders
//! with their customers, payments and trails is four statements.

use std::collections::HashMap;

use async_graphql::{ComplexObject, Context, Object, SimpleObject};
use axum::http::Method;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::context::{Loads, Viewer, parts};
use crate::routes::audit::{RecordView, show};
use crate::routes::orders::{self as rest_orders, COLUMNS as ORDER_COLUMNS};
use crate::routes::payments::{COLUMNS as PAYMENT_COLUMNS, Payment};
use crate::routes::users::{USER_COLUMNS, User};

/// An order with its lines, as the read model has it now.
#[derive(Debug, Clone)]
pub struct Order(pub rest_orders::Order);

/// A line of an order, priced by the catalog, with where its stock stands.
#[derive(Debug, Clone, SimpleObject, Deserialize)]
pub struct OrderLine {
    /// The product's sku.
    pub product_id: String,
    pub name: String,
    pub quantity: i64,
    /// Minor units.
    pub unit_price: i64,
    pub reservation: Reservation,
}

/// Where a line's stock stands: PENDING until the inventory answers, then
/// HELD, SOLD or RELEASED; FAILED (with the reason and the units
/// available) on the line that could not be held, NOT_HELD on the others.
#[derive(Debug, Clone, SimpleObject, Deserialize)]
pub struct Reservation {
    pub state: String,
    pub reason: Option<String>,
    pub available: Option<i64>,
}

/// Where an order goes (none once its customer was erased).
#[derive(Debug, Clone, SimpleObject, Deserialize)]
pub struct ShippingAddress {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

#[Object]
impl Order {
    async fn id(&self) -> Uuid {
        self.0.id
    }
    /// PENDING, CONFIRMED, SHIPPED, DELIVERED or CANCELLED.
    async fn status(&self) -> &str {
        &self.0.status
    }
    async fn items(&self) -> async_graphql::Result<Vec<OrderLine>> {
        let items = rest_orders::with_reservations(self.0.items.0.clone(), &self.0);
        Ok(serde_json::from_value(items)?)
    }
    async fn currency(&self) -> &str {
        &self.0.currency
    }
    /// Minor units.
    async fn total(&self) -> i64 {
        self.0.total
    }
    async fn shipping_address(&self) -> Option<ShippingAddress> {
        serde_json::from_value(self.0.shipping_address.0.clone()).ok()
    }
    async fn notes(&self) -> Option<&str> {
        self.0.notes.as_deref()
    }
    /// Why a CANCELLED order was cancelled: REQUESTED, PAYMENT_DECLINED,
    /// PAYMENT_TIMEOUT, OUT_OF_STOCK, ...
    async fn reason(&self) -> Option<&str> {
        self.0.reason.as_deref()
    }
    async fn reason_message(&self) -> Option<&str> {
        self.0.reason_message.as_deref()
    }
    async fn version(&self) -> i64 {
        self.0.version
    }
    async fn placed_at(&self) -> DateTime<Utc> {
        self.0.placed_at
    }
    async fn payment_deadline(&self) -> DateTime<Utc> {
        self.0.payment_deadline
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    /// Who placed it (for them and admins: a service reads orders, not
    /// people).
    async fn customer(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let (viewer, reads, loads) = parts(ctx)?;
        let user = loads
            .users
            .get(self.0.customer_id, |ids| async move {
                let rows: Vec<User> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {USER_COLUMNS} FROM rm.users WHERE id = ANY($1)"
                )))
                .bind(&ids)
                .fetch_all(reads.readmodels())
                .await?;
                expect_users(loads, &rows);
                Ok(rows.into_iter().map(|u| (u.id, u)).collect())
            })
            .await?;
        Ok(user.filter(|u| viewer.sees_person(u.id)))
    }

    /// Its payment, once the payment service opened one.
    async fn payment(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Payment>> {
        let (viewer, reads, loads) = parts(ctx)?;
        let payment = loads
            .payments
            .get(self.0.id, |ids| async move {
                let rows: Vec<Payment> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {PAYMENT_COLUMNS} FROM rm.payments WHERE order_id = ANY($1)"
                )))
                .bind(&ids)
                .fetch_all(reads.readmodels())
                .await?;
                expect_payments(loads, &rows);
                Ok(rows.into_iter().map(|p| (p.order_id, p)).collect())
            })
            .await?;
        Ok(payment.filter(|p| viewer.sees(p.customer_id)))
    }

    /// The order's story across every service, from the audit log: every
    /// record of every request that touched it, each after its cause.
    /// Admins only (the rule of `GET /audit/correlations/{id}`).
    async fn audit_trail(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Vec<RecordView>>> {
        let (viewer, reads, loads) = parts(ctx)?;
        viewer.signed_in(Method::GET, "/audit/correlations/{id}")?;
        let trail = loads
            .trails
            .get(self.0.id.to_string(), |ids| async move { orderflow_audit::query::trails(reads.audit(), &ids).await })
            .await?;
        let trail = trail.unwrap_or_default().into_iter();
        Ok(Some(trail.map(|(depth, record)| RecordView { depth: Some(depth), ..show(record) }).collect()))
    }
}

#[ComplexObject]
impl User {
    /// The user's newest orders (page on with the root `orders` field).
    #[graphql(complexity = "first.max(0) as usize * child_complexity + 1")]
    async fn orders(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 10, validator(minimum = 1, maximum = 100))] first: i32,
    ) -> async_graphql::Result<Vec<Order>> {
        let (viewer, reads, loads) = parts(ctx)?;
        if !viewer.sees_person(self.id) {
            return Ok(Vec::new());
        }
        let first = i64::from(first);
        // One statement for every user of the request (per page size asked).
        let orders = loads
            .user_orders(first)
            .get(self.id, |users| async move {
                let rows: Vec<rest_orders::Order> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT o.* FROM unnest($1::uuid[]) AS u(id)
                     CROSS JOIN LATERAL (SELECT {ORDER_COLUMNS} FROM rm.order_details
                         WHERE customer_id = u.id ORDER BY placed_at DESC, id DESC LIMIT $2) o"
                )))
                .bind(&users)
                .bind(first)
                .fetch_all(reads.readmodels())
                .await?;
                let rows = expect_orders(loads, rows.into_iter().map(Order).collect());
                let mut out: HashMap<Uuid, Vec<rest_orders::Order>> = users.iter().map(|u| (*u, Vec::new())).collect();
                for Order(row) in rows {
                    out.entry(row.customer_id).or_default().push(row);
                }
                Ok(out)
            })
            .await?
            .unwrap_or_default();
        Ok(orders.into_iter().map(Order).collect())
    }
}

#[ComplexObject]
impl Payment {
    /// The order it pays for.
    async fn order(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Order>> {
        let (viewer, reads, loads) = parts(ctx)?;
        let order = loads
            .orders
            .get(self.order_id, |ids| async move {
                let rows: Vec<rest_orders::Order> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {ORDER_COLUMNS} FROM rm.order_details WHERE id = ANY($1)"
                )))
                .bind(&ids)
                .fetch_all(reads.readmodels())
                .await?;
                let orders = expect_orders(loads, rows.into_iter().map(Order).collect());
                Ok(orders.into_iter().map(|o| (o.0.id, o.0)).collect())
            })
            .await?;
        Ok(order.filter(|o| viewer.sees(o.customer_id)).map(Order))
    }
}

/// Hands out `orders`, expecting their customers, payments and trails.
pub fn expect_orders(loads: &Loads, orders: Vec<Order>) -> Vec<Order> {
    loads.users.expect(orders.iter().map(|o| o.0.customer_id));
    loads.payments.expect(orders.iter().map(|o| o.0.id));
    loads.trails.expect(orders.iter().map(|o| o.0.id.to_string()));
    orders
}

/// Expects the orders of `users`.
pub fn expect_users(loads: &Loads, users: &[User]) {
    loads.expect_user_orders(users.iter().map(|u| u.id));
}

/// Expects the orders of `payments`.
pub fn expect_payments(loads: &Loads, payments: &[Payment]) {
    loads.orders.expect(payments.iter().map(|p| p.order_id));
}

/// Whether `viewer` may see this order (its customer, or staff).
pub fn visible(viewer: &Viewer, order: &rest_orders::Order) -> bool {
    viewer.sees(order.customer_id)
}
