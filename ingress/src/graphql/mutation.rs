//! The mutations: each sends the same command as its REST route by
//! calling that route, in process, with the caller's token, request id
//! and address. So there is one write path: the same validation, access
//! rule, idempotency (`idempotencyKey`), rate limits and `wait` semantics
//! (`wait` seconds, as `Prefer: wait=N`), and the same errors, carried in
//! each GraphQL error's `extensions` (`code`, `status`, `details`).
//!
//! A mutation answers with its command: accepted (on the bus, not settled
//! yet) or settled, and then the object as the read model shows it.

use std::net::SocketAddr;

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use serde::Serialize;
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

use super::context::{api_error, db_error, parts};
use super::types::{Order, expect_orders, expect_payments, expect_users};
use crate::error::ApiError;
use crate::routes::payments::{self, Payment};
use crate::routes::users::{self, User};

/// The REST routes, with every layer a request meets, for the mutations.
#[derive(Clone)]
pub struct Dispatch(pub Router);

impl std::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dispatch(the REST routes)")
    }
}

/// What of the GraphQL request a command request carries.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// `Authorization`, `X-Request-Id` (one correlation id for the whole
    /// GraphQL request), `traceparent`.
    pub headers: HeaderMap,
    pub peer: Option<SocketAddr>,
}

impl Caller {
    pub fn from_headers(headers: &HeaderMap, request_id: Option<&str>, peer: Option<SocketAddr>) -> Self {
        let mut kept = HeaderMap::new();
        for name in [header::AUTHORIZATION, crate::request::TRACEPARENT.clone()] {
            if let Some(value) = headers.get(&name) {
                kept.insert(name, value.clone());
            }
        }
        if let Some(value) = request_id.and_then(|id| HeaderValue::from_str(id).ok()) {
            kept.insert(crate::request::REQUEST_ID.clone(), value);
        }
        Self { headers: kept, peer }
    }
}

/// Where a mutation's command stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum CommandState {
    /// Durably on the bus; not settled within `wait` (or none was asked).
    Accepted,
    /// Settled: the object shows its outcome.
    Succeeded,
}

/// A mutation's answer.
#[derive(Debug, Clone, SimpleObject)]
pub struct CommandResult {
    pub command_id: Option<Uuid>,
    pub state: CommandState,
    /// Where to ask about the command (`commandStatus(id)` answers the same).
    pub status_url: Option<String>,
    /// The order, once settled (order mutations).
    pub order: Option<Order>,
    /// The user, once settled (user mutations).
    pub user: Option<User>,
    /// The payment, once settled (refunds).
    pub payment: Option<Payment>,
}

/// What the mutation changes, for the object of a settled answer.
#[derive(Debug, Clone, Copy)]
enum Object {
    Order,
    User,
    Payment,
}

#[derive(Debug, InputObject, Serialize)]
pub struct RegisterInput {
    pub email: String,
    pub password: String,
    pub first_name: String,
    pub last_name: String,
}

#[derive(Debug, InputObject, Serialize)]
pub struct ProfileInput {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
}

#[derive(Debug, InputObject, Serialize)]
pub struct OrderLineInput {
    /// The product's sku.
    pub product_id: String,
    pub quantity: i64,
    /// The catalog's price, in minor units (checked: `PRICE_CHANGED`).
    pub unit_price: i64,
}

#[derive(Debug, InputObject, Serialize)]
pub struct AddressInput {
    pub name: String,
    pub line1: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

#[derive(Debug, InputObject, Serialize)]
pub struct PlaceOrderInput {
    pub items: Vec<OrderLineInput>,
    pub currency: String,
    pub shipping_address: AddressInput,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

#[derive(Debug)]
pub struct Mutation;

/// Calls the REST route and turns its answer into a [`CommandResult`].
async fn call(
    ctx: &Context<'_>,
    method: Method,
    path: String,
    body: Option<Value>,
    wait: Option<u32>,
    idempotency_key: Option<String>,
    object: Object,
) -> async_graphql::Result<CommandResult> {
    let Dispatch(rest) = ctx.data::<Dispatch>()?.clone();
    let caller = ctx.data::<Caller>()?;
    let mut request = Request::builder().method(method).uri(format!("/api/v1{path}"));
    for (name, value) in &caller.headers {
        request = request.header(name, value);
    }
    if let Some(seconds) = wait {
        request = request.header("prefer", format!("wait={seconds}"));
    }
    if let Some(key) = idempotency_key {
        request = request.header("idempotency-key", key);
    }
    let body = match body {
        Some(body) => {
            request = request.header(header::CONTENT_TYPE, "application/json");
            Body::from(serde_json::to_vec(&body)?)
        }
        None => Body::empty(),
    };
    let mut request = request.body(body)?;
    if let Some(peer) = caller.peer {
        request.extensions_mut().insert(ConnectInfo(peer));
    }
    let response = rest.oneshot(request).await?;
    let status = response.status();
    let command_id = response
        .headers()
        .get(crate::commands::COMMAND_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v).ok());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(refusal(status, &answer));
    }
    if status == StatusCode::ACCEPTED {
        let command_id = answer["command_id"].as_str().and_then(|v| Uuid::parse_str(v).ok());
        return Ok(CommandResult {
            command_id,
            state: CommandState::Accepted,
            status_url: command_id.map(crate::commands::status_url),
            order: None,
            user: None,
            payment: None,
        });
    }
    let id = answer["id"].as_str().and_then(|v| Uuid::parse_str(v).ok());
    let mut result = CommandResult {
        command_id,
        state: CommandState::Succeeded,
        status_url: command_id.map(crate::commands::status_url),
        order: None,
        user: None,
        payment: None,
    };
    let Some(id) = id else { return Ok(result) };
    let (_, reads, loads) = parts(ctx)?;
    match object {
        Object::Order => {
            let order = crate::routes::orders::find(reads.readmodels(), id).await.map_err(db_error)?;
            result.order = order.map(|o| expect_orders(loads, vec![Order(o)]).remove(0));
        }
        Object::User => {
            let user = users::find(reads.readmodels(), id).await.map_err(db_error)?;
            expect_users(loads, user.as_slice());
            result.user = user;
        }
        Object::Payment => {
            let payment = payments::find(reads.readmodels(), id).await.map_err(db_error)?;
            expect_payments(loads, payment.as_slice());
            result.payment = payment;
        }
    }
    Ok(result)
}

/// The REST answer's error (`{"error": {"code", "message", "details"}}`).
fn refusal(status: StatusCode, answer: &Value) -> async_graphql::Error {
    let error = &answer["error"];
    let code = error["code"].as_str().unwrap_or("ERROR").to_owned();
    let message = error["message"].as_str().unwrap_or("the request was refused").to_owned();
    let mut refused = ApiError::new(status, code, message);
    if !error["details"].is_null() {
        refused = refused.with_details(error["details"].clone());
    }
    api_error(refused)
}

fn to_json<T: Serialize>(input: &T) -> async_graphql::Result<Value> {
    Ok(serde_json::to_value(input)?)
}

#[Object]
impl Mutation {
    /// Registers a user (`POST /users`; anyone).
    async fn register(
        &self,
        ctx: &Context<'_>,
        input: RegisterInput,
        wait: Option<u32>,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<CommandResult> {
        let body = to_json(&input)?;
        call(ctx, Method::POST, "/users".into(), Some(body), wait, idempotency_key, Object::User).await
    }

    /// Changes a user's names (`PATCH /users/{id}`; self or admin).
    async fn update_profile(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        input: ProfileInput,
        wait: Option<u32>,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<CommandResult> {
        let body = to_json(&input)?;
        call(ctx, Method::PATCH, format!("/users/{id}"), Some(body), wait, idempotency_key, Object::User).await
    }

    /// Changes a password (`POST /users/{id}/password`; self or admin).
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        old_password: String,
        new_password: String,
        wait: Option<u32>,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<CommandResult> {
        let body = json!({"old_password": old_password, "new_password": new_password});
        call(ctx, Method::POST, format!("/users/{id}/password"), Some(body), wait, idempotency_key, Object::User).await
    }

    /// Deactivates a user (`DELETE /users/{id}`; self or admin).
    async fn deactivate(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        wait: Option<u32>,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<CommandResult> {
        call(ctx, Method::DELETE, format!("/users/{id}"), None, wait, idempotency_key, Object::User).await
    }

    /// Places an order (`POST /orders`): settled once CONFIRMED or CANCELLED.
    async fn place_order(
        &self,
        ctx: &Context<'_>,
        input: PlaceOrderInput,
        wait: Option<u32>,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<CommandResult> {
        let body = to_json(&input)?;
        call(ctx, Method::POST, "/orders".into(), Some(body), wait, idempotency_key, Object::Order).await
    }

    /// Cancels an order (`POST /orders/{id}/cancel`; owner or admin).
    async fn cancel_order(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        wait: Option<u32>,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<CommandResult> {
        call(ctx, Method::POST, format!("/orders/{id}/cancel"), None, wait, idempotency_key, Object::Order).await
    }

    /// Ships an order (`PATCH /orders/{id}/status`; admin, service).
    async fn ship(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        wait: Option<u32>,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<CommandResult> {
        let body = json!({"status": "SHIPPED"});
        call(ctx, Method::PATCH, format!("/orders/{id}/status"), Some(body), wait, idempotency_key, Object::Order).await
    }

    /// Marks an order delivered (`PATCH /orders/{id}/status`; admin, service).
    async fn deliver(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        wait: Option<u32>,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<CommandResult> {
        let body = json!({"status": "DELIVERED"});
        call(ctx, Method::PATCH, format!("/orders/{id}/status"), Some(body), wait, idempotency_key, Object::Order).await
    }

    /// Refunds part (`amount`, minor units) or all of what is left of a
    /// payment's capture (`POST /payments/{id}/refund`; admin).
    async fn refund(
        &self,
        ctx: &Context<'_>,
        payment_id: Uuid,
        amount: Option<i64>,
        note: Option<String>,
        wait: Option<u32>,
        idempotency_key: Option<String>,
    ) -> async_graphql::Result<CommandResult> {
        let mut body = json!({});
        if let Some(amount) = amount {
            body["amount"] = json!(amount);
        }
        if let Some(note) = note {
            body["note"] = json!(note);
        }
        let path = format!("/payments/{payment_id}/refund");
        call(ctx, Method::POST, path, Some(body), wait, idempotency_key, Object::Payment).await
    }
}
