//! `/api/v1/payments`: reading payments and an admin's refund.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use orderflow_contracts::payments::RefundPayment;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::commands::{respond, send};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, AuthUser, PreferWait, owner_or_staff};
use crate::request::RequestContext;
use crate::routes::{Page, list_query, own_list, path_id, query_id};

/// A payment as the API shows it (one per order); in GraphQL too, with its
/// `order`.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema, async_graphql::SimpleObject)]
#[graphql(complex)]
pub struct Payment {
    pub id: Uuid,
    pub order_id: Uuid,
    pub customer_id: Uuid,
    /// Authorized, in minor units of `currency`.
    pub amount: i64,
    pub currency: String,
    /// AUTHORIZED, DECLINED, CAPTURED, PARTIALLY_REFUNDED, REFUNDED or VOIDED.
    pub status: String,
    pub captured: i64,
    pub refunded: i64,
    /// Why a DECLINED payment was declined.
    pub reason: Option<String>,
    pub reason_message: Option<String>,
    pub provider_reference: Option<String>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(crate) const COLUMNS: &str =
    "id, order_id, customer_id, amount, currency, status, captured, refunded, reason, reason_message,
    provider_reference, version, created_at, updated_at";

/// Payment `id` as the read model has it (GraphQL).
pub(crate) async fn find(pool: &sqlx::PgPool, id: Uuid) -> Result<Option<Payment>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM rm.payments WHERE id = $1")))
        .bind(id)
        .fetch_optional(pool)
        .await
}

async fn load_by(state: &AppState, column: &str, id: Uuid, claims: &orderflow_auth::Claims) -> ApiResult<Payment> {
    // `column` is one of two literals below, never input.
    let payment: Payment =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM rm.payments WHERE {column} = $1")))
            .bind(id)
            .fetch_optional(&state.pool)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no payment for {id}")))?;
    owner_or_staff(claims, payment.customer_id, "payment")?;
    Ok(payment)
}

/// `GET /api/v1/payments/{id}`: owner or admin.
#[utoipa::path(get, path = "/api/v1/payments/{id}", summary = "A payment (owner, admin, service)", params(("id" = String, Path, description = "a uuid")), responses((status = 200, description = "the payment", body = Payment), (status = 404, description = "no such payment", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(axum::Json(load_by(&state, "id", path_id("payment", &id)?, &claims).await?).into_response())
}

/// `GET /api/v1/payments/by-order/{order_id}`: owner or admin.
#[utoipa::path(get, path = "/api/v1/payments/by-order/{order_id}", summary = "An order's payment", params(("order_id" = String, Path, description = "an order id")), responses((status = 200, description = "the payment", body = Payment), (status = 404, description = "no payment for the order", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn by_order(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(axum::Json(load_by(&state, "order_id", path_id("order", &id)?, &claims).await?).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refund {
    /// Minor units; all that is left to refund if absent.
    amount: Option<i64>,
    note: Option<String>,
}

/// `POST /api/v1/payments/{id}/refund` (admin): part or all of what is left
/// of the capture; the payment service refuses more than that
/// (`REFUND_EXCEEDS_CAPTURE`), whatever the read model said.
#[utoipa::path(post, path = "/api/v1/payments/{id}/refund", summary = "Refund (admin)", request_body = Refund, params(("id" = String, Path, description = "a uuid"), ("prefer" = Option<String>, Header, description = "`wait=N`: answer with the outcome within N seconds"), ("idempotency-key" = Option<String>, Header, description = "the same key and request within 24 h answer the first answer")), responses((status = 200, description = "refunded (with Prefer: wait)", body = Payment), (status = 202, description = "accepted: the command is durably on the bus", body = crate::openapi::Accepted), (status = 404, description = "no such payment", body = crate::openapi::ErrorBody), (status = 409, description = "NOT_CAPTURED: the payment was never captured; asking for more than is left (also of a refunded one) is 422 REFUND_EXCEEDS_CAPTURE", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn refund(
    State(state): State<AppState>,
    request: RequestContext,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
    PreferWait(wait): PreferWait,
    ApiJson(body): ApiJson<Refund>,
) -> ApiResult<Response> {
    let id = path_id("payment", &id)?;
    let payment = load_by(&state, "id", id, &claims).await?;
    let left = payment.captured - payment.refunded;
    let amount = body.amount.unwrap_or(left);
    if amount < 1 {
        let problem = if body.amount.is_some() { "must be at least 1 minor unit" } else { "nothing is left to refund" };
        return Err(ApiError::validation("amount", problem));
    }
    if amount > left {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "REFUND_EXCEEDS_CAPTURE",
            format!("{amount} is more than what is left to refund ({left} of {} captured)", payment.captured),
        ));
    }
    if let Some(note) = &body.note
        && note.chars().count() > 500
    {
        return Err(ApiError::validation("note", "must be at most 500 characters"));
    }
    let command =
        RefundPayment { order_id: payment.order_id.to_string(), payment_id: id.to_string(), amount, note: body.note };
    let command_id = send(&state, &request, &command, &claims.sub).await?;
    let (state, claims) = (&state, &claims);
    respond(state, command_id, wait, |_, _| async move {
        Ok(axum::Json(load_by(state, "id", id, claims).await?).into_response())
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    page: Option<i64>,
    page_size: Option<i64>,
    status: Option<String>,
    user: Option<String>,
}

/// `GET /api/v1/payments?status=&user=&page=&page_size=` (admin), newest first.
#[utoipa::path(get, path = "/api/v1/payments", summary = "Every payment (admin, service)", params(("page" = Option<i64>, Query, description = "from 1"), ("page_size" = Option<i64>, Query, description = "1 to 100, 20 unless given"), ("status" = Option<String>, Query, description = "a payment status"), ("user" = Option<String>, Query, description = "a customer id")), responses((status = 200, description = "a page of payments", body = crate::openapi::PaymentPage)), security(("bearer" = [])))]
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

/// `GET /api/v1/payments/mine?status=&page=&page_size=`.
#[utoipa::path(get, path = "/api/v1/payments/mine", summary = "The caller's payments", params(("page" = Option<i64>, Query, description = "from 1"), ("page_size" = Option<i64>, Query, description = "1 to 100, 20 unless given"), ("status" = Option<String>, Query, description = "a payment status")), responses((status = 200, description = "a page of payments", body = crate::openapi::PaymentPage)), security(("bearer" = [])))]
pub async fn mine(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let query = list_query(query)?;
    let me = own_list(&claims, query.user.as_deref(), "/payments/mine")?;
    list_where(&state, query, Some(me)).await
}

/// A payment's statuses (the list filter's values; the bus monitor's gauges).
pub(crate) const STATUSES: [&str; 6] =
    ["AUTHORIZED", "DECLINED", "CAPTURED", "PARTIALLY_REFUNDED", "REFUNDED", "VOIDED"];

async fn list_where(state: &AppState, query: ListQuery, customer: Option<Uuid>) -> ApiResult<Response> {
    let page = Page::parse(query.page, query.page_size)?;
    if let Some(status) = query.status.as_deref().filter(|s| !STATUSES.contains(s)) {
        return Err(ApiError::bad_query("status", format!("`{status}` is not one of {}", STATUSES.join(", "))));
    }
    let filter = "($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR customer_id = $2)";
    let total: i64 =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM rm.payments WHERE {filter}")))
            .bind(&query.status)
            .bind(customer)
            .fetch_one(&state.pool)
            .await?;
    let items: Vec<Payment> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM rm.payments WHERE {filter} ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
    )))
    .bind(&query.status)
    .bind(customer)
    .bind(page.page_size)
    .bind(page.offset())
    .fetch_all(&state.pool)
    .await?;
    Ok(page.respond::<crate::openapi::PaymentPage>(items, total))
}
