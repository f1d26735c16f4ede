//! `/api/v1/orders`: placing, reading, cancelling, shipping and delivering.
//! Money is always integer minor units; the total is computed (checked),
//! never taken from the client.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use orderflow_contracts::Reason;
use orderflow_contracts::orders::{self, CancelOrder, DeliverOrder, OrderLine, PlaceOrder, ShipOrder, ShippingAddress};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::types::Json;
use uuid::Uuid;

use crate::AppState;
use crate::commands::{accepted, rejection, respond, send};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, AuthUser, PreferWait, owner_or_staff, self_or_admin};
use crate::request::RequestContext;
use crate::routes::products::{self, Listed};
use crate::routes::{Page, list_query, own_list, path_id, query_id};
use crate::status;

/// An order's row of the read model's `order_details` view, shown as an
/// [`OrderView`].
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Order {
    pub id: Uuid,
    pub customer_id: Uuid,
    /// PENDING, CONFIRMED, SHIPPED, DELIVERED or CANCELLED.
    pub status: String,
    pub items: Json<Value>,
    pub currency: String,
    /// Minor units.
    pub total: i64,
    pub shipping_address: Json<Value>,
    pub notes: Option<String>,
    /// Why a CANCELLED order was cancelled: REQUESTED, PAYMENT_DECLINED, PAYMENT_TIMEOUT.
    pub reason: Option<String>,
    pub reason_message: Option<String>,
    pub version: i64,
    pub placed_at: DateTime<Utc>,
    pub payment_deadline: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub customer_first_name: Option<String>,
    pub customer_last_name: Option<String>,
    pub payment_id: Option<Uuid>,
    pub payment_status: Option<String>,
    pub payment_amount: Option<i64>,
    pub payment_captured: Option<i64>,
    pub payment_refunded: Option<i64>,
    pub payment_reason: Option<String>,
    pub payment_updated_at: Option<DateTime<Utc>>,
    /// HELD, SOLD, RELEASED or FAILED; none until the inventory answered.
    pub stock_state: Option<String>,
    /// The line that could not be held (FAILED), why, and what was left.
    pub stock_failed_sku: Option<String>,
    pub stock_failed_reason: Option<String>,
    pub stock_failed_available: Option<i64>,
}

/// An order as the API shows it, with its customer and payment: what the
/// handlers answer and what the OpenAPI document describes, one type.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderView {
    pub id: Uuid,
    /// PENDING, CONFIRMED, SHIPPED, DELIVERED or CANCELLED.
    pub status: String,
    /// The lines: `product_id`, `name`, `quantity`, `unit_price` (minor
    /// units) and `reservation`, where its stock stands: `{"state":
    /// "PENDING"}` until the inventory answers, then HELD, SOLD or RELEASED
    /// (every line alike: an order holds all or nothing), or FAILED with
    /// the `reason` (OUT_OF_STOCK, UNKNOWN_PRODUCT, PRICE_CHANGED) and the
    /// units `available` on the line that could not be held (NOT_HELD on
    /// the others).
    #[schema(value_type = Vec<Object>)]
    pub items: Value,
    pub currency: String,
    /// Minor units.
    pub total: i64,
    #[schema(value_type = Object)]
    pub shipping_address: Value,
    pub notes: Option<String>,
    /// Why a CANCELLED order was cancelled: REQUESTED, PAYMENT_DECLINED, PAYMENT_TIMEOUT.
    pub reason: Option<String>,
    pub reason_message: Option<String>,
    pub version: i64,
    pub placed_at: DateTime<Utc>,
    pub payment_deadline: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub customer: Customer,
    pub payment: Option<OrderPayment>,
}

/// Who placed an order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Customer {
    pub id: Uuid,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

/// An order's payment, as far as the payments read model knows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrderPayment {
    pub id: Uuid,
    pub status: Option<String>,
    pub amount: Option<i64>,
    pub currency: String,
    pub captured: Option<i64>,
    pub refunded: Option<i64>,
    pub reason: Option<String>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Each line of `items` with its `reservation` (see [`OrderView::items`]).
pub(crate) fn with_reservations(mut items: Value, order: &Order) -> Value {
    let state = match (order.stock_state.as_deref(), order.status.as_str()) {
        (Some(state), _) => state,
        (None, "PENDING") => "PENDING",
        // An order from before the inventory step, or cancelled before it
        // answered: nothing was held.
        (None, _) => "NOT_HELD",
    };
    for line in items.as_array_mut().into_iter().flatten() {
        let failed = state == "FAILED" && line["product_id"].as_str() == order.stock_failed_sku.as_deref();
        let reservation = match state {
            "FAILED" if failed => json!({
                "state": "FAILED", "reason": order.stock_failed_reason, "available": order.stock_failed_available,
            }),
            "FAILED" => json!({"state": "NOT_HELD"}),
            _ => json!({ "state": state }),
        };
        if let Some(line) = line.as_object_mut() {
            line.insert("reservation".into(), reservation);
        }
    }
    items
}

impl From<Order> for OrderView {
    fn from(mut order: Order) -> Self {
        let items = with_reservations(std::mem::take(&mut order.items.0), &order);
        let payment = order.payment_id.map(|id| OrderPayment {
            id,
            status: order.payment_status,
            amount: order.payment_amount,
            currency: order.currency.clone(),
            captured: order.payment_captured,
            refunded: order.payment_refunded,
            reason: order.payment_reason,
            updated_at: order.payment_updated_at,
        });
        OrderView {
            id: order.id,
            status: order.status,
            items,
            currency: order.currency,
            total: order.total,
            shipping_address: order.shipping_address.0,
            notes: order.notes,
            reason: order.reason,
            reason_message: order.reason_message,
            version: order.version,
            placed_at: order.placed_at,
            payment_deadline: order.payment_deadline,
            updated_at: order.updated_at,
            customer: Customer {
                id: order.customer_id,
                first_name: order.customer_first_name,
                last_name: order.customer_last_name,
            },
            payment,
        }
    }
}

pub(crate) const COLUMNS: &str =
    "id, customer_id, status, items, currency, total, shipping_address, notes, reason, reason_message,
    version, placed_at, payment_deadline, updated_at, customer_first_name, customer_last_name, payment_id,
    payment_status, payment_amount, payment_captured, payment_refunded, payment_reason, payment_updated_at,
    stock_state, stock_failed_sku, stock_failed_reason, stock_failed_available";

/// One order with its payment and customer, in one read-model query.
pub async fn find(pool: &sqlx::PgPool, id: Uuid) -> Result<Option<Order>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM rm.order_details WHERE id = $1")))
        .bind(id)
        .fetch_optional(pool)
        .await
}

async fn load(state: &AppState, id: Uuid) -> ApiResult<Order> {
    find(&state.pool, id).await?.ok_or_else(|| ApiError::not_found(format!("no order {id}")))
}

fn ok_order(status: StatusCode, order: Order) -> Response {
    let location = format!("/api/v1/orders/{}", order.id);
    let mut response = (status, axum::Json(OrderView::from(order))).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Line {
    /// The product's sku.
    product_id: String,
    /// Optional: the order keeps the catalog's name (a name given is
    /// checked like any text, then replaced).
    #[serde(default)]
    name: Option<String>,
    quantity: i64,
    unit_price: i64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    name: String,
    line1: String,
    line2: Option<String>,
    city: String,
    postal_code: String,
    country: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Place {
    items: Vec<Line>,
    currency: String,
    shipping_address: Address,
    notes: Option<String>,
}

/// `POST /api/v1/orders`: each line checked against the catalog first
/// ([`priced`]); then 202 with the command, or with `Prefer: wait=N`
/// the order once it has left PENDING — 201 CONFIRMED, or 201 CANCELLED
/// with its reason (e.g. `PAYMENT_DECLINED`) — the rejection (409/422), or
/// 202 if N seconds pass first.
#[utoipa::path(post, path = "/api/v1/orders", summary = "Place an order", request_body = Place, params(("prefer" = Option<String>, Header, description = "`wait=N`: answer with the outcome within N seconds"), ("idempotency-key" = Option<String>, Header, description = "the same key and request within 24 h answer the first answer")), responses((status = 201, description = "placed and settled (with Prefer: wait)", body = OrderView), (status = 202, description = "accepted: the command is durably on the bus", body = crate::openapi::Accepted), (status = 404, description = "UNKNOWN_PRODUCT: a line names no product of the catalog", body = crate::openapi::ErrorBody), (status = 409, description = "PRICE_CHANGED: a line's price is not the catalog's; or the order service's rejection", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn place(
    State(state): State<AppState>,
    request: RequestContext,
    AuthUser(claims): AuthUser,
    PreferWait(wait): PreferWait,
    ApiJson(body): ApiJson<Place>,
) -> ApiResult<Response> {
    let mut items: Vec<OrderLine> = body
        .items
        .into_iter()
        .map(|l| OrderLine {
            product_id: l.product_id.trim().to_owned(),
            name: l.name.map(|n| n.trim().to_owned()).unwrap_or_default(),
            quantity: l.quantity,
            unit_price: l.unit_price,
        })
        .collect();
    let a = body.shipping_address;
    let shipping_address = ShippingAddress {
        name: a.name.trim().to_owned(),
        line1: a.line1.trim().to_owned(),
        line2: a.line2.map(|l| l.trim().to_owned()).filter(|l| !l.is_empty()),
        city: a.city.trim().to_owned(),
        postal_code: a.postal_code.trim().to_owned(),
        country: a.country.trim().to_owned(),
    };
    let currency = body.currency.trim().to_owned();
    let notes = body.notes.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    // A line without a name stands in with its sku until the catalog names
    // every line ([`priced`]): a given name is checked like any text.
    for line in items.iter_mut().filter(|l| l.name.is_empty()) {
        line.name.clone_from(&line.product_id);
    }
    // The order service decides; refusing here first means a bad order is
    // never sent.
    orders::check(&items, &currency, &shipping_address, notes.as_deref())
        .map_err(|p| ApiError::validation(&p.field, p.problem))?;
    let skus: Vec<&str> = items.iter().map(|l| l.product_id.as_str()).collect();
    let catalog = products::listed(&state.pool, &skus).await?;
    priced(&mut items, &currency, &catalog)?;
    let order_id = Uuid::now_v7();
    let command = PlaceOrder {
        order_id: order_id.to_string(),
        customer_id: claims.sub.clone(),
        items,
        currency,
        shipping_address,
        notes,
    };
    let id = send(&state, &request, &command, &claims.sub).await?;
    let Some(seconds) = wait else { return Ok(accepted(id)) };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(seconds);
    let state = &state;
    // Woken by the command's id: when it is settled (placed, rejected or
    // failed) and again when the order leaves PENDING.
    let outcome = crate::commands::wait_until(state, id, deadline, || async move {
        let Some(settled) = status::read(&state.pool, id).await? else { return Ok(None) };
        match settled.status.as_str() {
            "succeeded" => Ok(find(&state.pool, order_id).await?.filter(|o| o.status != "PENDING").map(Ok)),
            "pending" => Ok(None),
            _ => Ok(Some(Err(settled))),
        }
    })
    .await?;
    match outcome {
        Some(Ok(order)) => {
            let mut response = ok_order(StatusCode::CREATED, order);
            response.headers_mut().insert("preference-applied", HeaderValue::from_static("wait"));
            Ok(crate::commands::settled_by(response, id))
        }
        Some(Err(settled)) => Err(rejection(&settled)),
        None => Ok(accepted(id)),
    }
}

/// Checks each line against the catalog read model and names it as the
/// catalog does: a product it does not list is `UNKNOWN_PRODUCT`, a price
/// (or currency) that is not the catalog's is `PRICE_CHANGED`, both naming
/// the line. The inventory service checks the same when it holds the stock
/// (the catalog may change in between: the order is then cancelled with
/// the same reason); refusing here answers at once, and sends nothing.
fn priced(items: &mut [OrderLine], currency: &str, catalog: &HashMap<String, Listed>) -> ApiResult<()> {
    for (i, line) in items.iter_mut().enumerate() {
        let sku = &line.product_id;
        let field = format!("items[{i}]");
        let Some(product) = catalog.get(sku) else {
            return Err(ApiError::refused(
                Reason::UnknownProduct.as_str(),
                format!("{field}: no product has sku {sku}"),
            )
            .with_details(json!({"field": format!("{field}.product_id"), "sku": sku})));
        };
        if product.price != line.unit_price || product.currency != currency {
            let message = format!(
                "{field}: {sku} costs {} {} now; the order says {} {currency}",
                product.price, product.currency, line.unit_price
            );
            return Err(ApiError::refused(Reason::PriceChanged.as_str(), message).with_details(json!({
                "field": format!("{field}.unit_price"), "sku": sku, "price": product.price, "currency": product.currency,
            })));
        }
        line.name.clone_from(&product.name);
    }
    Ok(())
}

/// `GET /api/v1/orders/{id}`: owner or admin.
#[utoipa::path(get, path = "/api/v1/orders/{id}", summary = "An order (owner, admin, service)", params(("id" = String, Path, description = "a uuid")), responses((status = 200, description = "the order", body = OrderView), (status = 404, description = "no such order", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let order = load(&state, path_id("order", &id)?).await?;
    owner_or_staff(&claims, order.customer_id, "order")?;
    Ok(ok_order(StatusCode::OK, order))
}

/// `POST /api/v1/orders/{id}/cancel`: owner or admin; PENDING or CONFIRMED
/// orders only (else 409 `ILLEGAL_TRANSITION`, decided by the service).
#[utoipa::path(post, path = "/api/v1/orders/{id}/cancel", summary = "Cancel (owner or admin)", params(("id" = String, Path, description = "a uuid"), ("prefer" = Option<String>, Header, description = "`wait=N`: answer with the outcome within N seconds"), ("idempotency-key" = Option<String>, Header, description = "the same key and request within 24 h answer the first answer")), responses((status = 200, description = "cancelled (with Prefer: wait)", body = OrderView), (status = 202, description = "accepted: the command is durably on the bus", body = crate::openapi::Accepted), (status = 404, description = "no such order", body = crate::openapi::ErrorBody), (status = 409, description = "ILLEGAL_TRANSITION", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    request: RequestContext,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
    PreferWait(wait): PreferWait,
) -> ApiResult<Response> {
    let id = path_id("order", &id)?;
    let order = load(&state, id).await?;
    self_or_admin(&claims, order.customer_id, "order")?;
    let command_id = send(&state, &request, &CancelOrder { order_id: id.to_string() }, &claims.sub).await?;
    let state = &state;
    respond(state, command_id, wait, |_, _| async move { Ok(ok_order(StatusCode::OK, load(state, id).await?)) }).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStatus {
    status: String,
}

/// `PATCH /api/v1/orders/{id}/status` (admin): `{"status": "SHIPPED"}` or
/// `{"status": "DELIVERED"}`.
#[utoipa::path(patch, path = "/api/v1/orders/{id}/status", summary = "Ship or deliver (admin, service)", request_body = NewStatus, params(("id" = String, Path, description = "a uuid"), ("prefer" = Option<String>, Header, description = "`wait=N`: answer with the outcome within N seconds"), ("idempotency-key" = Option<String>, Header, description = "the same key and request within 24 h answer the first answer")), responses((status = 200, description = "changed (with Prefer: wait)", body = OrderView), (status = 202, description = "accepted: the command is durably on the bus", body = crate::openapi::Accepted), (status = 404, description = "no such order", body = crate::openapi::ErrorBody), (status = 409, description = "ILLEGAL_TRANSITION, or NOT_PAID: shipping needs a captured payment not refunded in full", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn set_status(
    State(state): State<AppState>,
    request: RequestContext,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
    PreferWait(wait): PreferWait,
    ApiJson(body): ApiJson<NewStatus>,
) -> ApiResult<Response> {
    let id = path_id("order", &id)?;
    let order_id = id.to_string();
    load(&state, id).await?;
    let command_id = match body.status.as_str() {
        "SHIPPED" => send(&state, &request, &ShipOrder { order_id }, &claims.sub).await?,
        "DELIVERED" => send(&state, &request, &DeliverOrder { order_id }, &claims.sub).await?,
        other => {
            return Err(ApiError::validation(
                "status",
                format!("`{other}` cannot be set; SHIPPED or DELIVERED (cancel with POST .../cancel)"),
            ));
        }
    };
    let state = &state;
    respond(state, command_id, wait, |_, _| async move { Ok(ok_order(StatusCode::OK, load(state, id).await?)) }).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    page: Option<i64>,
    page_size: Option<i64>,
    status: Option<String>,
    user: Option<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
}

/// An order's statuses (the list filter's values; the bus monitor's gauges).
pub(crate) const STATUSES: [&str; 5] = ["PENDING", "CONFIRMED", "SHIPPED", "DELIVERED", "CANCELLED"];

/// `GET /api/v1/orders?status=&user=&from=&to=&page=&page_size=` (admin):
/// newest first, paginated.
#[utoipa::path(get, path = "/api/v1/orders", summary = "Every order (admin, service)", params(("page" = Option<i64>, Query, description = "from 1"), ("page_size" = Option<i64>, Query, description = "1 to 100, 20 unless given"), ("status" = Option<String>, Query, description = "PENDING, CONFIRMED, SHIPPED, DELIVERED or CANCELLED"), ("user" = Option<String>, Query, description = "a customer id"), ("from" = Option<String>, Query, description = "RFC 3339"), ("to" = Option<String>, Query, description = "RFC 3339")), responses((status = 200, description = "a page of orders", body = crate::openapi::OrderPage)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    // The role is checked by the route table; a token is still required.
    _: AuthUser,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let query = list_query(query)?;
    let user = query_id("user", query.user.as_deref())?;
    list_where(&state, query, user).await
}

/// `GET /api/v1/orders/mine?status=&from=&to=&page=&page_size=`.
#[utoipa::path(get, path = "/api/v1/orders/mine", summary = "The caller's orders", params(("page" = Option<i64>, Query, description = "from 1"), ("page_size" = Option<i64>, Query, description = "1 to 100, 20 unless given"), ("status" = Option<String>, Query, description = "PENDING, CONFIRMED, SHIPPED, DELIVERED or CANCELLED"), ("from" = Option<String>, Query, description = "RFC 3339"), ("to" = Option<String>, Query, description = "RFC 3339")), responses((status = 200, description = "a page of orders", body = crate::openapi::OrderPage)), security(("bearer" = [])))]
pub async fn mine(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let query = list_query(query)?;
    let me = own_list(&claims, query.user.as_deref(), "/orders/mine")?;
    list_where(&state, query, Some(me)).await
}

async fn list_where(state: &AppState, query: ListQuery, customer: Option<Uuid>) -> ApiResult<Response> {
    let page = Page::parse(query.page, query.page_size)?;
    if let Some(status) = query.status.as_deref().filter(|s| !STATUSES.contains(s)) {
        return Err(ApiError::bad_query("status", format!("`{status}` is not one of {}", STATUSES.join(", "))));
    }
    if let (Some(from), Some(to)) = (query.from, query.to)
        && from > to
    {
        return Err(ApiError::bad_query("from", "must not be after `to`"));
    }
    let filter = "($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR customer_id = $2)
        AND ($3::timestamptz IS NULL OR placed_at >= $3) AND ($4::timestamptz IS NULL OR placed_at <= $4)";
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM rm.orders WHERE {filter}")))
        .bind(&query.status)
        .bind(customer)
        .bind(query.from)
        .bind(query.to)
        .fetch_one(&state.pool)
        .await?;
    let items: Vec<Order> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM rm.order_details WHERE {filter} ORDER BY placed_at DESC, id DESC LIMIT $5 OFFSET $6"
    )))
    .bind(&query.status)
    .bind(customer)
    .bind(query.from)
    .bind(query.to)
    .bind(page.page_size)
    .bind(page.offset())
    .fetch_all(&state.pool)
    .await?;
    Ok(page.respond::<crate::openapi::OrderPage>(items.into_iter().map(OrderView::from).collect(), total))
}
