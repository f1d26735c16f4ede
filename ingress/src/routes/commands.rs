use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// `GET /api/v1/commands/{id}`: pending, succeeded, rejected or failed
/// (with the reason). A command issued by a user is visible to that user and admins;
/// an anonymous one (a registration) to whoever holds its id. An id the
/// read model does not know yet reads `pending` while it is a fresh UUIDv7
/// (the projector may not have seen the command yet), 404 otherwise.
#[utoipa::path(get, path = "/api/v1/commands/{id}", summary = "A command's status", params(("id" = String, Path, description = "a uuid")), responses((status = 200, description = "pending, succeeded, rejected or failed", body = crate::status::CommandStatus), (status = 401, description = "the command is a user's and no valid token came", body = crate::openapi::ErrorBody), (status = 403, description = "another user's command", body = crate::openapi::ErrorBody), (status = 404, description = "no such command", body = crate::openapi::ErrorBody)))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> ApiResult<Response> {
    let id = crate::routes::path_id("command", &id)?;
    let found = crate::status::read(&state.pool, id).await?;
    let Some(found) = found else {
        if crate::commands::recently_minted(id, std::time::SystemTime::now()) {
            return Ok(axum::Json(crate::status::CommandStatus::pending(id)).into_response());
        }
        return Err(ApiError::not_found(format!("no command {id}")));
    };
    if let Some(actor) = found.actor.as_deref().filter(|a| *a != "anonymous") {
        let claims = crate::extract::authenticate(&headers, &state).await?;
        if claims.sub != actor && !claims.is_admin() {
            return Err(ApiError::forbidden("this command belongs to another user"));
        }
    }
    Ok(axum::Json(found).into_response())
}
