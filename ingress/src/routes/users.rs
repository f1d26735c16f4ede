//! `/api/v1/users`: registration, profile, password, deactivation, lists.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use orderflow_contracts::users::{ChangeUserPassword, DeactivateUser, EraseUser, RegisterUser, UpdateUserProfile};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::commands::{accepted, respond, send};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, AuthUser, PreferWait, self_or_admin};
use crate::request::RequestContext;
use crate::routes::{Page, path_id};
use crate::status::CommandStatus;
use crate::validate::{Email, Name, Password};

/// A user as the API shows it (from the read model; never a credential).
/// The same type in REST and GraphQL (whose `orders` field is
/// `crate::graphql`'s).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema, async_graphql::SimpleObject)]
#[graphql(complex)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub roles: Vec<String>,
    pub active: bool,
    pub version: i64,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the user's personal data was erased (email and names are empty
    /// from then on); null unless erased.
    pub erased_at: Option<DateTime<Utc>>,
}

pub(crate) const USER_COLUMNS: &str =
    "id, email, first_name, last_name, roles, active, version, registered_at, updated_at, erased_at";

/// User `id` as the read model has it (REST and GraphQL).
pub(crate) async fn find(pool: &sqlx::PgPool, id: Uuid) -> Result<Option<User>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM rm.users WHERE id = $1")))
        .bind(id)
        .fetch_optional(pool)
        .await
}

async fn load(state: &AppState, id: Uuid) -> ApiResult<User> {
    find(&state.pool, id).await?.ok_or_else(|| ApiError::not_found(format!("no user {id}")))
}

fn parse_id(raw: &str) -> ApiResult<Uuid> {
    path_id("user", raw)
}

/// Self or admin.
fn may_access(claims: &orderflow_auth::Claims, id: Uuid) -> ApiResult<()> {
    self_or_admin(claims, id, "user")
}

fn ok_user(status: StatusCode, user: User) -> Response {
    let location = format!("/api/v1/users/{}", user.id);
    let mut response = (status, axum::Json(user)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Register {
    email: String,
    password: String,
    first_name: String,
    last_name: String,
}

impl std::fmt::Debug for Register {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Register").field("email", &self.email).field("password", &"***").finish_non_exhaustive()
    }
}

/// `POST /api/v1/users`. The password is hashed here (argon2id) and only the
/// hash leaves the ingress.
#[utoipa::path(post, path = "/api/v1/users", summary = "Register", request_body = Register, params(("prefer" = Option<String>, Header, description = "`wait=N`: answer with the outcome within N seconds"), ("idempotency-key" = Option<String>, Header, description = "the same key and request within 24 h answer the first answer")), responses((status = 201, description = "registered (with Prefer: wait)", body = User), (status = 202, description = "accepted: the command is durably on the bus", body = crate::openapi::Accepted), (status = 409, description = "EMAIL_TAKEN", body = crate::openapi::ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    request: RequestContext,
    PreferWait(wait): PreferWait,
    ApiJson(body): ApiJson<Register>,
) -> ApiResult<Response> {
    let email = Email::parse(&body.email)?;
    let password = Password::parse("password", body.password)?;
    let first_name = Name::parse("first_name", &body.first_name)?;
    let last_name = Name::parse("last_name", &body.last_name)?;
    let password_hash = hash(&state, password).await?;
    let user_id = Uuid::now_v7();
    let command = RegisterUser {
        user_id: user_id.to_string(),
        email: email.as_str().to_owned(),
        password_hash,
        first_name: first_name.into_inner(),
        last_name: last_name.into_inner(),
    };
    let id = send(&state, &request, &command, "anonymous").await?;
    // The 201 promises a login will work.
    respond_once_login_knows(&state, id, wait, user_id, StatusCode::CREATED).await
}

/// Answers a write of user `user_id`'s login (its registration, password,
/// deactivation, erasure) as `respond` does, with the user and `status` —
/// but only once the credentials read model shows the change too, so a
/// login right after the answer meets it; 202 if it does not by then. The
/// user, as every write of a user answers (and as the document says).
async fn respond_once_login_knows(
    state: &AppState,
    command_id: Uuid,
    wait: Option<u64>,
    user_id: Uuid,
    status: StatusCode,
) -> ApiResult<Response> {
    respond(state, command_id, wait, |settled, deadline| async move {
        if !credentials_caught_up(state, &settled, user_id, deadline).await? {
            return Ok(accepted(command_id));
        }
        Ok(ok_user(status, load(state, user_id).await?))
    })
    .await
}

/// Checks `password` against user `id`'s current one (404 without such a
/// user; 403 `WRONG_PASSWORD` with `wrong` as the message otherwise).
async fn check_password(state: &AppState, id: Uuid, password: String, wrong: &str) -> ApiResult<()> {
    let current: Option<String> = sqlx::query_scalar("SELECT password_hash FROM rm.credentials WHERE user_id = $1")
        .bind(id)
        .fetch_optional(&state.pool)
        .await?;
    let Some(current) = current else { return Err(ApiError::not_found(format!("no user {id}"))) };
    if !state.hashing.run(move |hasher| hasher.verify(&password, &current)).await? {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "WRONG_PASSWORD", wrong));
    }
    Ok(())
}

/// Whether the credentials read model (login) shows what the succeeded
/// command `settled` produced, waiting for it until `deadline`. It is fed by
/// its own topic, so it may lag behind the users read model; the version is
/// the command's own (a later profile update bumps the user's version but
/// writes no credentials).
async fn credentials_caught_up(
    state: &AppState,
    settled: &CommandStatus,
    user_id: Uuid,
    deadline: tokio::time::Instant,
) -> ApiResult<bool> {
    let Some(version) = settled.version else {
        // Settled by a projector that did not record versions: nothing to
        // wait for that would mean anything, so promise nothing.
        return Ok(false);
    };
    Ok(state.waiter.credentials_at(settled.command_id, user_id, version, deadline).await?)
}

async fn hash(state: &AppState, password: Password) -> ApiResult<String> {
    state
        .hashing
        .run(move |hasher| hasher.hash(password.expose()))
        .await?
        .map_err(|e| ApiError::internal("password hashing", e))
}

/// `GET /api/v1/users/me`.
#[utoipa::path(get, path = "/api/v1/users/me", summary = "The caller", responses((status = 200, description = "the caller", body = User)), security(("bearer" = [])))]
pub async fn me(State(state): State<AppState>, AuthUser(claims): AuthUser) -> ApiResult<Response> {
    let id = parse_id(&claims.sub)?;
    Ok(ok_user(StatusCode::OK, load(&state, id).await?))
}

/// `GET /api/v1/users/{id}` (self or admin).
#[utoipa::path(get, path = "/api/v1/users/{id}", summary = "A user (self or admin)", params(("id" = String, Path, description = "a uuid")), responses((status = 200, description = "the user", body = User), (status = 404, description = "no such user", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    may_access(&claims, id)?;
    Ok(ok_user(StatusCode::OK, load(&state, id).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    first_name: Option<String>,
    last_name: Option<String>,
}

/// `PATCH /api/v1/users/{id}`: names (self or admin).
#[utoipa::path(patch, path = "/api/v1/users/{id}", summary = "Change names (self or admin)", request_body = Patch, params(("id" = String, Path, description = "a uuid"), ("prefer" = Option<String>, Header, description = "`wait=N`: answer with the outcome within N seconds"), ("idempotency-key" = Option<String>, Header, description = "the same key and request within 24 h answer the first answer")), responses((status = 200, description = "changed (with Prefer: wait)", body = User), (status = 202, description = "accepted: the command is durably on the bus", body = crate::openapi::Accepted), (status = 404, description = "no such user", body = crate::openapi::ErrorBody), (status = 409, description = "rejected", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn patch(
    State(state): State<AppState>,
    request: RequestContext,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
    PreferWait(wait): PreferWait,
    ApiJson(body): ApiJson<Patch>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    may_access(&claims, id)?;
    if body.first_name.is_none() && body.last_name.is_none() {
        return Err(ApiError::validation("body", "give first_name, last_name or both"));
    }
    let command = UpdateUserProfile {
        user_id: id.to_string(),
        first_name: body.first_name.as_deref().map(|n| Name::parse("first_name", n)).transpose()?.map(Name::into_inner),
        last_name: body.last_name.as_deref().map(|n| Name::parse("last_name", n)).transpose()?.map(Name::into_inner),
    };
    let command_id = send(&state, &request, &command, &claims.sub).await?;
    let state = &state;
    respond(state, command_id, wait, |_, _| async move { Ok(ok_user(StatusCode::OK, load(state, id).await?)) }).await
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    old_password: String,
    new_password: String,
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

/// `POST /api/v1/users/{id}/password`: the user's own, with the old one.
#[utoipa::path(post, path = "/api/v1/users/{id}/password", summary = "Change the password (self)", request_body = NewPassword, params(("id" = String, Path, description = "a uuid"), ("prefer" = Option<String>, Header, description = "`wait=N`: answer with the outcome within N seconds"), ("idempotency-key" = Option<String>, Header, description = "the same key and request within 24 h answer the first answer")), responses((status = 200, description = "changed (with Prefer: wait)", body = User), (status = 202, description = "accepted: the command is durably on the bus", body = crate::openapi::Accepted), (status = 404, description = "no such user", body = crate::openapi::ErrorBody), (status = 409, description = "rejected", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn change_password(
    State(state): State<AppState>,
    request: RequestContext,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
    PreferWait(wait): PreferWait,
    ApiJson(body): ApiJson<NewPassword>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    if claims.sub != id.to_string() {
        return Err(ApiError::forbidden("you may only change your own password"));
    }
    let new_password = Password::parse("new_password", body.new_password)?;
    check_password(&state, id, body.old_password, "old_password is not the current password").await?;
    let command = ChangeUserPassword { user_id: id.to_string(), password_hash: hash(&state, new_password).await? };
    let command_id = send(&state, &request, &command, &claims.sub).await?;
    // The old password must stop working before we say it changed.
    respond_once_login_knows(&state, command_id, wait, id, StatusCode::OK).await
}

/// `DELETE /api/v1/users/{id}`: deactivate (self or admin).
#[utoipa::path(delete, path = "/api/v1/users/{id}", summary = "Deactivate (self or admin)", params(("id" = String, Path, description = "a uuid"), ("prefer" = Option<String>, Header, description = "`wait=N`: answer with the outcome within N seconds"), ("idempotency-key" = Option<String>, Header, description = "the same key and request within 24 h answer the first answer")), responses((status = 200, description = "deactivated (with Prefer: wait)", body = User), (status = 202, description = "accepted: the command is durably on the bus", body = crate::openapi::Accepted), (status = 404, description = "no such user", body = crate::openapi::ErrorBody), (status = 409, description = "rejected", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn deactivate(
    State(state): State<AppState>,
    request: RequestContext,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
    PreferWait(wait): PreferWait,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    may_access(&claims, id)?;
    let command_id = send(&state, &request, &DeactivateUser { user_id: id.to_string() }, &claims.sub).await?;
    // Login must fail once we answer.
    respond_once_login_knows(&state, command_id, wait, id, StatusCode::OK).await
}

/// What an erasure asks of its caller: nothing of an admin, the password
/// of a user erasing themselves.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Erase {
    password: Option<String>,
}

impl std::fmt::Debug for Erase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Erase(***)")
    }
}

/// `POST /api/v1/users/{id}/erase`: erase a user's personal data (the right
/// to erasure). An admin sends `{}`; a user erasing themselves sends their
/// password. The id stays, as a tombstone; their orders and payments stay
/// with amounts and states, without address and notes; their tokens and
/// sessions die. Not undoable; `DELETE` is the soft delete.
#[utoipa::path(post, path = "/api/v1/users/{id}/erase", summary = "Erase personal data (self with password, or admin)", params(("id" = String, Path, description = "a uuid"), ("prefer" = Option<String>, Header, description = "`wait=N`: answer with the outcome within N seconds"), ("idempotency-key" = Option<String>, Header, description = "the same key and request within 24 h answer the first answer")), request_body = Erase, responses((status = 200, description = "erased (with Prefer: wait): the tombstone", body = User), (status = 202, description = "accepted: the command is durably on the bus", body = crate::openapi::Accepted), (status = 403, description = "another user, or a wrong password", body = crate::openapi::ErrorBody), (status = 404, description = "no such user", body = crate::openapi::ErrorBody), (status = 409, description = "erased already", body = crate::openapi::ErrorBody), (status = 422, description = "a user erasing themselves without their password", body = crate::openapi::ErrorBody)), security(("bearer" = [])))]
pub async fn erase(
    State(state): State<AppState>,
    request: RequestContext,
    AuthUser(claims): AuthUser,
    Path(id): Path<String>,
    PreferWait(wait): PreferWait,
    ApiJson(body): ApiJson<Erase>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    if !claims.is_admin() {
        if claims.sub != id.to_string() {
            return Err(ApiError::forbidden("you may only erase yourself"));
        }
        let Some(password) = body.password else {
            return Err(ApiError::validation("password", "required to erase yourself"));
        };
        check_password(&state, id, password, "password is not your password").await?;
    }
    let command_id = send(&state, &request, &EraseUser { user_id: id.to_string() }, &claims.sub).await?;
    // The erasure is on the bus: what this ingress kept of the user goes
    // now, whether the client waits for the outcome or not.
    forget(&state, id).await?;
    // Login must fail once we answer.
    respond_once_login_knows(&state, command_id, wait, id, StatusCode::OK).await
}

/// What the ingress itself kept of an erased user: their sessions (their
/// refresh tokens die with them) and the answers it keeps for their
/// Idempotency-Keys (an order's answer holds its address).
async fn forget(state: &AppState, id: Uuid) -> ApiResult<()> {
    sqlx::query("DELETE FROM ingress.sessions WHERE user_id = $1").bind(id).execute(&state.pool).await?;
    sqlx::query("DELETE FROM ingress.idempotency_keys WHERE scope = $1")
        .bind(id.to_string())
        .execute(&state.pool)
        .await?;
    state.revocations.forget_user(id);
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    page: Option<i64>,
    page_size: Option<i64>,
    search: Option<String>,
}

/// `GET /api/v1/users?page=&page_size=&search=` (admin): a page, with totals.
#[utoipa::path(get, path = "/api/v1/users", summary = "Every user (admin)", params(("page" = Option<i64>, Query, description = "from 1"), ("page_size" = Option<i64>, Query, description = "1 to 100, 20 unless given"), ("search" = Option<String>, Query, description = "part of an email or name")), responses((status = 200, description = "a page of users", body = crate::openapi::UserPage)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    // The role is checked by the route table; a token is still required.
    _: AuthUser,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let query = crate::routes::list_query(query)?;
    let page = Page::parse(query.page, query.page_size)?;
    let pattern = query
        .search
        .as_deref()
        .map(|s| format!("%{}%", s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")));
    let filter = "($1::text IS NULL OR email ILIKE $1 OR first_name ILIKE $1 OR last_name ILIKE $1)";
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM rm.users WHERE {filter}")))
        .bind(&pattern)
        .fetch_one(&state.pool)
        .await?;
    let items: Vec<User> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {USER_COLUMNS} FROM rm.users WHERE {filter} ORDER BY registered_at, id LIMIT $2 OFFSET $3"
    )))
    .bind(&pattern)
    .bind(page.page_size)
    .bind(page.offset())
    .fetch_all(&state.pool)
    .await?;
    Ok(page.respond::<crate::openapi::UserPage>(items, total))
}
