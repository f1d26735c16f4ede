//! The root queries, over the read models. Each checks the REST route
//! table's rule for the same data (`Viewer::allowed`), then who owns it.
//!
//! Lists are Relay connections, newest first (users and products in their
//! REST order), keyset-paged: a cursor is the position of the last row
//! seen, so a page never repeats or skips a row however many are added
//! while a client pages.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, InputObject, Object};
use axum::http::Method;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Limits;
use super::context::{api_error, db_error, parts};
use super::types::{Order, expect_orders, expect_payments, expect_users, visible};
use crate::error::ApiError;
use crate::routes::orders::{self as rest_orders, COLUMNS as ORDER_COLUMNS, STATUSES as ORDER_STATUSES};
use crate::routes::payments::{self, COLUMNS as PAYMENT_COLUMNS, Payment, STATUSES as PAYMENT_STATUSES};
use crate::routes::products::{COLUMNS as PRODUCT_COLUMNS, Product};
use crate::routes::users::{self, USER_COLUMNS, User};
use crate::status::CommandStatus;

#[derive(Debug)]
pub struct Query;

/// Which orders.
#[derive(Debug, Default, InputObject)]
pub struct OrderFilter {
    /// PENDING, CONFIRMED, SHIPPED, DELIVERED or CANCELLED.
    pub status: Option<String>,
    /// Staff only; a user sees their own orders whatever this says.
    pub customer_id: Option<Uuid>,
    /// Placed at or after.
    pub placed_from: Option<DateTime<Utc>>,
    /// Placed at or before.
    pub placed_to: Option<DateTime<Utc>>,
    /// Total at least (minor units).
    pub min_total: Option<i64>,
    /// Total at most (minor units).
    pub max_total: Option<i64>,
}

/// Which users.
#[derive(Debug, Default, InputObject)]
pub struct UserFilter {
    /// Part of an email or name, any case.
    pub search: Option<String>,
}

/// Which payments.
#[derive(Debug, Default, InputObject)]
pub struct PaymentFilter {
    /// AUTHORIZED, DECLINED, CAPTURED, PARTIALLY_REFUNDED, REFUNDED or VOIDED.
    pub status: Option<String>,
    /// Staff only; a user sees their own payments whatever this says.
    pub customer_id: Option<Uuid>,
}

fn invalid(field: &str, problem: impl Into<String>) -> async_graphql::Error {
    api_error(ApiError::bad_query(field, problem))
}

/// `first`, checked against the page size limit.
fn page_size(ctx: &Context<'_>, first: Option<i32>) -> async_graphql::Result<i64> {
    let max = ctx.data::<Limits>()?.max_page_size;
    let first = i64::from(first.unwrap_or(20));
    if first < 1 || first > max {
        return Err(invalid("first", format!("must be between 1 and {max}")));
    }
    Ok(first)
}

/// A keyset cursor: `<microseconds>_<uuid>`.
fn cursor(at: DateTime<Utc>, id: Uuid) -> String {
    format!("{}_{}", at.timestamp_micros(), id.simple())
}

fn parse_cursor(raw: Option<&str>) -> async_graphql::Result<Option<(DateTime<Utc>, Uuid)>> {
    let Some(raw) = raw else { return Ok(None) };
    let bad = || invalid("after", "not a cursor this API gave out");
    let (micros, id) = raw.split_once('_').ok_or_else(bad)?;
    let at = micros.parse().ok().and_then(DateTime::from_timestamp_micros).ok_or_else(bad)?;
    Ok(Some((at, Uuid::parse_str(id).map_err(|_| bad())?)))
}

fn check_status(status: Option<&str>, statuses: &[&str]) -> async_graphql::Result<()> {
    match status {
        Some(s) if !statuses.contains(&s) => {
            Err(invalid("status", format!("`{s}` is not one of {}", statuses.join(", "))))
        }
        _ => Ok(()),
    }
}

/// `rows` (one more than `first` if there are more) as a connection.
fn connection<T, N: async_graphql::OutputType>(
    mut rows: Vec<T>,
    first: i64,
    after: bool,
    cursor_of: impl Fn(&T) -> String,
    node: impl Fn(T) -> N,
) -> Connection<String, N> {
    let more = rows.len() as i64 > first;
    rows.truncate(usize::try_from(first).unwrap_or(usize::MAX));
    let mut connection = Connection::new(after, more);
    connection.edges.extend(rows.into_iter().map(|row| Edge::new(cursor_of(&row), node(row))));
    connection
}

/// Whose list the caller may read: staff whoever `asked`; a user their
/// own only (asking for another's is refused, as `/mine` does).
fn whose(
    viewer: &super::context::Viewer,
    asked: Option<Uuid>,
    all: &str,
    mine: &str,
) -> async_graphql::Result<Option<Uuid>> {
    if viewer.is_staff() {
        viewer.signed_in(Method::GET, all)?;
        return Ok(asked);
    }
    viewer.signed_in(Method::GET, mine)?;
    let me = viewer.user_id().ok_or_else(|| api_error(ApiError::forbidden("a service token has no own list")))?;
    match asked {
        Some(other) if other != me => Err(api_error(ApiError::forbidden("these belong to another user"))),
        _ => Ok(Some(me)),
    }
}

#[Object]
impl Query {
    /// The caller.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let (viewer, reads, loads) = parts(ctx)?;
        let claims = viewer.signed_in(Method::GET, "/users/me")?;
        let id =
            Uuid::parse_str(&claims.sub).map_err(|_| api_error(ApiError::not_found("a service has no profile")))?;
        let user = users::find(reads.readmodels(), id).await.map_err(db_error)?;
        expect_users(loads, user.as_slice());
        Ok(user)
    }

    /// A user: the caller, or anyone for an admin.
    async fn user(&self, ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Option<User>> {
        let (viewer, reads, loads) = parts(ctx)?;
        viewer.signed_in(Method::GET, "/users/{id}")?;
        if !viewer.sees_person(id) {
            return Err(api_error(ApiError::forbidden("this user is another user")));
        }
        let user = users::find(reads.readmodels(), id).await.map_err(db_error)?;
        expect_users(loads, user.as_slice());
        Ok(user)
    }

    /// Every user, by registration (admin).
    #[graphql(complexity = "first.map_or(20, |f| f.max(0) as usize) * child_complexity + 1")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        filter: Option<UserFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, User>> {
        let (viewer, reads, loads) = parts(ctx)?;
        viewer.signed_in(Method::GET, "/users")?;
        let first = page_size(ctx, first)?;
        let position = parse_cursor(after.as_deref())?;
        let pattern = filter
            .unwrap_or_default()
            .search
            .map(|s| format!("%{}%", s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")));
        let rows: Vec<User> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM rm.users
             WHERE ($1::text IS NULL OR email ILIKE $1 OR first_name ILIKE $1 OR last_name ILIKE $1)
               AND ($2::timestamptz IS NULL OR (registered_at, id) > ($2, $3::uuid))
             ORDER BY registered_at, id LIMIT $4"
        )))
        .bind(&pattern)
        .bind(position.map(|p| p.0))
        .bind(position.map(|p| p.1))
        .bind(first + 1)
        .fetch_all(reads.readmodels())
        .await
        .map_err(db_error)?;
        expect_users(loads, &rows);
        Ok(connection(rows, first, position.is_some(), |u| cursor(u.registered_at, u.id), |u| u))
    }

    /// An order: the customer's own, or any for staff.
    async fn order(&self, ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Option<Order>> {
        let (viewer, reads, loads) = parts(ctx)?;
        viewer.signed_in(Method::GET, "/orders/{id}")?;
        let Some(order) = rest_orders::find(reads.readmodels(), id).await.map_err(db_error)? else { return Ok(None) };
        if !visible(viewer, &order) {
            return Err(api_error(ApiError::forbidden("this order belongs to another user")));
        }
        Ok(expect_orders(loads, vec![Order(order)]).pop())
    }

    /// Orders, newest first: any for staff, the caller's own for a user.
    #[graphql(complexity = "first.map_or(20, |f| f.max(0) as usize) * child_complexity + 1")]
    async fn orders(
        &self,
        ctx: &Context<'_>,
        filter: Option<OrderFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Order>> {
        let (viewer, reads, loads) = parts(ctx)?;
        let filter = filter.unwrap_or_default();
        let customer = whose(viewer, filter.customer_id, "/orders", "/orders/mine")?;
        let first = page_size(ctx, first)?;
        let position = parse_cursor(after.as_deref())?;
        check_status(filter.status.as_deref(), &ORDER_STATUSES)?;
        if let (Some(from), Some(to)) = (filter.placed_from, filter.placed_to)
            && from > to
        {
            return Err(invalid("placedFrom", "must not be after placedTo"));
        }
        let rows: Vec<rest_orders::Order> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {ORDER_COLUMNS} FROM rm.order_details
             WHERE ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR customer_id = $2)
               AND ($3::timestamptz IS NULL OR placed_at >= $3) AND ($4::timestamptz IS NULL OR placed_at <= $4)
               AND ($5::bigint IS NULL OR total >= $5) AND ($6::bigint IS NULL OR total <= $6)
               AND ($7::timestamptz IS NULL OR (placed_at, id) < ($7, $8::uuid))
             ORDER BY placed_at DESC, id DESC LIMIT $9"
        )))
        .bind(&filter.status)
        .bind(customer)
        .bind(filter.placed_from)
        .bind(filter.placed_to)
        .bind(filter.min_total)
        .bind(filter.max_total)
        .bind(position.map(|p| p.0))
        .bind(position.map(|p| p.1))
        .bind(first + 1)
        .fetch_all(reads.readmodels())
        .await
        .map_err(db_error)?;
        let page = connection(rows, first, position.is_some(), |o| cursor(o.placed_at, o.id), Order);
        let nodes: Vec<Order> = page.edges.iter().map(|e| e.node.clone()).collect();
        expect_orders(loads, nodes);
        Ok(page)
    }

    /// A payment: the customer's own, or any for staff.
    async fn payment(&self, ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Option<Payment>> {
        let (viewer, reads, loads) = parts(ctx)?;
        viewer.signed_in(Method::GET, "/payments/{id}")?;
        let payment = payments::find(reads.readmodels(), id).await.map_err(db_error)?;
        if payment.as_ref().is_some_and(|p| !viewer.sees(p.customer_id)) {
            return Err(api_error(ApiError::forbidden("this payment belongs to another user")));
        }
        expect_payments(loads, payment.as_slice());
        Ok(payment)
    }

    /// Payments, newest first: any for staff, the caller's own for a user.
    #[graphql(complexity = "first.map_or(20, |f| f.max(0) as usize) * child_complexity + 1")]
    async fn payments(
        &self,
        ctx: &Context<'_>,
        filter: Option<PaymentFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Payment>> {
        let (viewer, reads, loads) = parts(ctx)?;
        let filter = filter.unwrap_or_default();
        let customer = whose(viewer, filter.customer_id, "/payments", "/payments/mine")?;
        let first = page_size(ctx, first)?;
        let position = parse_cursor(after.as_deref())?;
        check_status(filter.status.as_deref(), &PAYMENT_STATUSES)?;
        let rows: Vec<Payment> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {PAYMENT_COLUMNS} FROM rm.payments
             WHERE ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR customer_id = $2)
               AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4::uuid))
             ORDER BY created_at DESC, id DESC LIMIT $5"
        )))
        .bind(&filter.status)
        .bind(customer)
        .bind(position.map(|p| p.0))
        .bind(position.map(|p| p.1))
        .bind(first + 1)
        .fetch_all(reads.readmodels())
        .await
        .map_err(db_error)?;
        expect_payments(loads, &rows);
        Ok(connection(rows, first, position.is_some(), |p| cursor(p.created_at, p.id), |p| p))
    }

    /// A product of the catalog (anyone).
    async fn product(&self, ctx: &Context<'_>, sku: String) -> async_graphql::Result<Option<Product>> {
        let (viewer, reads, _) = parts(ctx)?;
        viewer.allowed(Method::GET, "/products/{sku}")?;
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {PRODUCT_COLUMNS} FROM rm.products WHERE sku = $1")))
            .bind(sku.trim())
            .fetch_optional(reads.readmodels())
            .await
            .map_err(db_error)
    }

    /// The catalog in sku order (anyone).
    #[graphql(complexity = "first.map_or(20, |f| f.max(0) as usize) * child_complexity + 1")]
    async fn products(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "part of a sku or name, any case")] search: Option<String>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Product>> {
        let (viewer, reads, _) = parts(ctx)?;
        viewer.allowed(Method::GET, "/products")?;
        let first = page_size(ctx, first)?;
        let pattern = search.map(|s| format!("%{}%", s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")));
        let rows: Vec<Product> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {PRODUCT_COLUMNS} FROM rm.products
             WHERE ($1::text IS NULL OR sku > $1) AND ($2::text IS NULL OR sku ILIKE $2 OR name ILIKE $2)
             ORDER BY sku LIMIT $3"
        )))
        .bind(&after)
        .bind(&pattern)
        .bind(first + 1)
        .fetch_all(reads.readmodels())
        .await
        .map_err(db_error)?;
        Ok(connection(rows, first, after.is_some(), |p| p.sku.clone(), |p| p))
    }

    /// A command's status: pending, succeeded, rejected or failed. A user's
    /// command is theirs and admins' to read; a registration's anyone's
    /// who holds its id.
    async fn command_status(&self, ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Option<CommandStatus>> {
        let (viewer, reads, _) = parts(ctx)?;
        viewer.allowed(Method::GET, "/commands/{id}")?;
        let Some(found) = crate::status::read(reads.readmodels(), id).await.map_err(db_error)? else {
            if crate::commands::recently_minted(id, std::time::SystemTime::now()) {
                return Ok(Some(CommandStatus::pending(id)));
            }
            return Ok(None);
        };
        if let Some(actor) = found.actor.as_deref().filter(|a| *a != "anonymous") {
            let claims = viewer
                .claims
                .as_ref()
                .ok_or_else(|| api_error(ApiError::unauthorized("this command is a user's: send their token")))?;
            if claims.sub != actor && !claims.is_admin() {
                return Err(api_error(ApiError::forbidden("this command belongs to another user")));
            }
        }
        Ok(Some(found))
    }
}
