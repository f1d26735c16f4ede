//! `/api/v1/products`: the catalog. Everyone reads it; admins add products,
//! change them and adjust their stock (commands to the inventory service).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use orderflow_contracts::ids::Sku;
use orderflow_contracts::inventory::check::{self, Problem};
use orderflow_contracts::inventory::{AdjustStock, CreateProduct, UpdateProduct};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::commands::{respond, send};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, AuthUser, PreferWait};
use crate::request::RequestContext;
use crate::routes::list_query;

/// A product as the API shows it (from the catalog read model), in REST
/// and GraphQL.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema, async_graphql::SimpleObject)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub description: String,
    /// Minor units of `currency`.
    pub price: i64,
    pub currency: String,
    /// Units in the warehouse.
    pub on_hand: i64,
    /// Units orders hold.
    pub reserved: i64,
    /// What may still be sold: on hand − reserved.
    pub available: i64,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(crate) const COLUMNS: &str =
    "sku, name, description, price, currency, on_hand, reserved, available, version, created_at, updated_at";

/// What an order line is checked against: its product's name and price.
#[derive(Debug, sqlx::FromRow)]
pub struct Listed {
    pub sku: String,
    pub name: String,
    /// Minor units of `currency`.
    pub price: i64,
    pub currency: String,
}

/// The products of `skus` the catalog read model lists, by sku (one query).
pub async fn listed(pool: &sqlx::PgPool, skus: &[&str]) -> Result<HashMap<String, Listed>, sqlx::Error> {
    let rows: Vec<Listed> = sqlx::query_as("SELECT sku, name, price, currency FROM rm.products WHERE sku = ANY($1)")
        .bind(skus)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(|p| (p.sku.clone(), p)).collect())
}

/// A page of the catalog, in sku order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProductPage {
    pub items: Vec<Product>,
    /// Pass as `after` for the next page; `null` on the last one.
    pub next: Option<String>,
}

fn invalid(problem: Problem) -> ApiError {
    ApiError::validation(problem.field, problem.problem)
}

/// `raw` as a sku, or the error `bad` builds from what is wrong with it.
fn sku(raw: &str, bad: impl FnOnce(String) -> ApiError) -> ApiResult<Sku> {
    match Sku::problem(raw) {
        Some(problem) => Err(bad(problem)),
        None => Sku::parse("sku", raw).map_err(|refusal| bad(refusal.message)),
    }
}

fn path_sku(raw: &str) -> ApiResult<Sku> {
    sku(raw, |problem| ApiError::bad_path("sku", problem))
}

async fn load(state: &AppState, sku: &Sku) -> ApiResult<Product> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM rm.products WHERE sku = $1")))
        .bind(sku.as_str())
        .fetch_optional(&state.pool)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "UNKNOWN_PRODUCT", format!("no product has sku {sku}")))
}

fn ok_product(status: StatusCode, product: Product) -> Response {
    let location = format!("/api/v1/products/{}", product.sku);
    let mut response = (status, axum::Json(product)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    /// 1 to 64 of `A-Z a-z 0-9 - _ .`; an order line's `product_id`.
    sku: String,
    name: String,
    #[serde(default)]
    description: String,
    /// Minor units of `currency`.
    price: i64,
    /// ISO 4217, upper case.
    currency: String,
    /// Units on hand to start with.
    #[serde(default)]
    stock: i64,
}

/// `POST /api/v1/products` (admin).
#[utoipa::path(post, path = "/api/v1/products", summary = "Add a product (admin)", request_body = NewProduct, params(("prefer" = Option<String>, Header, description = "`wait=N`: answer with the outcome within N seconds"), ("idempotency-key" = Option<String>, Header, description = "the same key and request within 24 h answer the first answer")), responses((status = 201, description = "added (with Prefer: wait)", body = Product), (status = 202, description = "accepted: the command is durably on the bus", body = crate::openapi::Accepted), (status = 409, description = "PRODUCT_EXISTS", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    request: RequestContext,
    AuthUser(claims): AuthUser,
    PreferWait(wait): PreferWait,
    ApiJson(body): ApiJson<NewProduct>,
) -> ApiResult<Response> {
    let sku = sku(&body.sku, |problem| ApiError::validation("sku", problem))?;
    let command = CreateProduct {
        sku: sku.to_string(),
        name: check::name(&body.name).map_err(invalid)?,
        description: check::description(&body.description).map_err(invalid)?,
        price: check::price(body.price).map_err(invalid)?,
        currency: check::currency(&body.currency).map_err(invalid)?,
        stock: check::stock(body.stock).map_err(invalid)?,
    };
    let command_id = send(&state, &request, &command, &claims.sub).await?;
    let state = &state;
    respond(
        state,
        command_id,
        wait,
        |_, _| async move { Ok(ok_product(StatusCode::CREATED, load(state, &sku).await?)) },
    )
    .await
}

/// `GET /api/v1/products/{sku}` (anyone).
#[utoipa::path(get, path = "/api/v1/products/{sku}", summary = "A product", params(("sku" = String, Path, description = "its sku")), responses((status = 200, description = "the product", body = Product), (status = 404, description = "UNKNOWN_PRODUCT", body = crate::openapi::ErrorBody)))]
pub async fn get(State(state): State<AppState>, Path(sku): Path<String>) -> ApiResult<Response> {
    Ok(ok_product(StatusCode::OK, load(&state, &path_sku(&sku)?).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    name: Option<String>,
    description: Option<String>,
    /// Minor units of the product's currency.
    price: Option<i64>,
}

/// `PATCH /api/v1/products/{sku}` (admin): name, description, price.
#[utoipa::path(patch, path = "/api/v1/products/{sku}", summary = "Change a product (admin)", request_body = ProductPatch, params(("sku" = String, Path, description = "its sku"), ("prefer" = Option<String>, Header, description = "`wait=N`: answer with the outcome within N seconds"), ("idempotency-key" = Option<String>, Header, description = "the same key and request within 24 h answer the first answer")), responses((status = 200, description = "changed (with Prefer: wait)", body = Product), (status = 202, description = "accepted: the command is durably on the bus", body = crate::openapi::Accepted), (status = 404, description = "UNKNOWN_PRODUCT", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    request: RequestContext,
    AuthUser(claims): AuthUser,
    Path(sku): Path<String>,
    PreferWait(wait): PreferWait,
    ApiJson(body): ApiJson<ProductPatch>,
) -> ApiResult<Response> {
    let sku = path_sku(&sku)?;
    if body.name.is_none() && body.description.is_none() && body.price.is_none() {
        return Err(ApiError::validation("body", "give name, description, price or several"));
    }
    let command = UpdateProduct {
        sku: sku.to_string(),
        name: body.name.as_deref().map(check::name).transpose().map_err(invalid)?,
        description: body.description.as_deref().map(check::description).transpose().map_err(invalid)?,
        price: body.price.map(check::price).transpose().map_err(invalid)?,
    };
    let command_id = send(&state, &request, &command, &claims.sub).await?;
    let state = &state;
    respond(state, command_id, wait, |_, _| async move { Ok(ok_product(StatusCode::OK, load(state, &sku).await?)) })
        .await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Adjustment {
    /// Units in (a delivery) or, negative, out (a count, damage); never
    /// below what is reserved.
    delta: i64,
    reason: String,
}

/// `POST /api/v1/products/{sku}/stock` (admin).
#[utoipa::path(post, path = "/api/v1/products/{sku}/stock", summary = "Adjust stock (admin)", request_body = Adjustment, params(("sku" = String, Path, description = "its sku"), ("prefer" = Option<String>, Header, description = "`wait=N`: answer with the outcome within N seconds"), ("idempotency-key" = Option<String>, Header, description = "the same key and request within 24 h answer the first answer")), responses((status = 200, description = "adjusted (with Prefer: wait)", body = Product), (status = 202, description = "accepted: the command is durably on the bus", body = crate::openapi::Accepted), (status = 404, description = "UNKNOWN_PRODUCT", body = crate::openapi::ErrorBody), (status = 409, description = "INSUFFICIENT_STOCK: less would be on hand than is reserved", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn adjust_stock(
    State(state): State<AppState>,
    request: RequestContext,
    AuthUser(claims): AuthUser,
    Path(sku): Path<String>,
    PreferWait(wait): PreferWait,
    ApiJson(body): ApiJson<Adjustment>,
) -> ApiResult<Response> {
    let sku = path_sku(&sku)?;
    let command = AdjustStock {
        sku: sku.to_string(),
        delta: check::delta(body.delta).map_err(invalid)?,
        reason: check::reason(&body.reason).map_err(invalid)?,
    };
    let command_id = send(&state, &request, &command, &claims.sub).await?;
    let state = &state;
    respond(state, command_id, wait, |_, _| async move { Ok(ok_product(StatusCode::OK, load(state, &sku).await?)) })
        .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<i64>,
    after: Option<String>,
    search: Option<String>,
    currency: Option<String>,
    in_stock: Option<bool>,
    min_price: Option<i64>,
    max_price: Option<i64>,
}

/// `GET /api/v1/products?search=&currency=&in_stock=&min_price=&max_price=&limit=&after=`
/// (anyone): the catalog in sku order, a page at a time.
#[utoipa::path(get, path = "/api/v1/products", summary = "The catalog", params(("limit" = Option<i64>, Query, description = "1 to 100, 20 unless given"), ("after" = Option<String>, Query, description = "the `next` of the page before"), ("search" = Option<String>, Query, description = "part of a sku or name, any case"), ("currency" = Option<String>, Query, description = "ISO 4217"), ("in_stock" = Option<bool>, Query, description = "true: only what is available; false: only what is not"), ("min_price" = Option<i64>, Query, description = "minor units, inclusive"), ("max_price" = Option<i64>, Query, description = "minor units, inclusive")), responses((status = 200, description = "a page of products", body = ProductPage)))]
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let query = list_query(query)?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_query("limit", "must be between 1 and 100"));
    }
    let after =
        query.after.as_deref().map(|raw| sku(raw, |problem| ApiError::bad_query("after", problem))).transpose()?;
    if let Some(currency) = &query.currency {
        check::currency(currency).map_err(|p| ApiError::bad_query("currency", p.problem))?;
    }
    for (field, price) in [("min_price", query.min_price), ("max_price", query.max_price)] {
        if price.is_some_and(|p| p < 0) {
            return Err(ApiError::bad_query(field, "must be 0 or more minor units"));
        }
    }
    let pattern = query
        .search
        .as_deref()
        .map(|s| format!("%{}%", s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")));
    // One more than asked: whether there is a next page.
    let mut items: Vec<Product> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM rm.products
         WHERE ($1::text IS NULL OR sku > $1)
           AND ($2::text IS NULL OR sku ILIKE $2 OR name ILIKE $2)
           AND ($3::text IS NULL OR currency = $3)
           AND ($4::boolean IS NULL OR (available > 0) = $4)
           AND ($5::bigint IS NULL OR price >= $5)
           AND ($6::bigint IS NULL OR price <= $6)
         ORDER BY sku LIMIT $7"
    )))
    .bind(after.as_ref().map(Sku::as_str))
    .bind(&pattern)
    .bind(&query.currency)
    .bind(query.in_stock)
    .bind(query.min_price)
    .bind(query.max_price)
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await?;
    let next = (items.len() as i64 > limit).then(|| {
        items.truncate(limit as usize);
        items.last().map(|p| p.sku.clone())
    });
    Ok(axum::Json(ProductPage { items, next: next.flatten() }).into_response())
}
