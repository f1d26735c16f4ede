//! The API's OpenAPI 3.1 document, generated from the code: each handler's
//! `#[utoipa::path]`, the request and response types' `ToSchema`, and the
//! answers every route can give whatever it does (from the access table,
//! the limits and the extractors), added here by [`Common`]. Served at
//! `/api/openapi.json`.

use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, HttpMethod, OpenApi as Document, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};
use uuid::Uuid;

use crate::access::{Allow, RULES};
use crate::routes::{admin, audit, auth, commands, orders, payments, products, users};

/// The one error shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// SNAKE_CASE, stable: clients switch on it.
    #[schema(value_type = String)]
    pub code: std::borrow::Cow<'static, str>,
    pub message: String,
    /// More about the problem (the field, the command id), or null.
    #[schema(value_type = Option<Object>)]
    pub details: Value,
}

/// A write's answer without `Prefer: wait`: where to ask about it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub command_id: Uuid,
    /// `pending`.
    pub status: &'static str,
    pub status_url: String,
}

/// A token: a user's (login, refresh: with its refresh token) or a
/// service's (client credentials: the access token alone).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenAnswer {
    pub access_token: String,
    /// `Bearer`.
    pub token_type: &'static str,
    /// Seconds the access token lives.
    pub expires_in: i64,
    /// Login and refresh only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_expires_in: Option<i64>,
    /// Login and refresh only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
}

macro_rules! page {
    ($name:ident, $item:ty) => {
        /// A page of a list, and where it is in the whole list.
        #[derive(Debug, Serialize, ToSchema)]
        pub struct $name {
            pub items: Vec<$item>,
            pub page: i64,
            pub page_size: i64,
            pub total: i64,
            pub total_pages: i64,
        }

        impl crate::routes::Paged for $name {
            type Item = $item;

            fn new(items: Vec<$item>, page: crate::routes::Page, total: i64, total_pages: i64) -> Self {
                Self { items, page: page.page, page_size: page.page_size, total, total_pages }
            }
        }
    };
}
page!(UserPage, users::User);
page!(OrderPage, orders::OrderView);
page!(PaymentPage, payments::Payment);

#[derive(Debug, OpenApi)]
#[openapi(
    info(title = "orderflow", description = "The orderflow HTTP API. Writes answer 202 with a command id, or the outcome with `Prefer: wait=N`."),
    paths(
        users::register, users::list, users::me, users::get, users::patch, users::deactivate, users::change_password, users::erase,
        auth::login, auth::token, auth::refresh, auth::logout, commands::get,
        orders::place, orders::list, orders::mine, orders::get, orders::cancel, orders::set_status,
        payments::list, payments::mine, payments::get, payments::by_order, payments::refund,
        products::create, products::list, products::get, products::patch, products::adjust_stock,
        audit::list, audit::verify, audit::correlation, admin::bus,
    ),
    components(schemas(auth::Logout, ErrorBody, ErrorDetail, Accepted, TokenAnswer, orders::OrderView, UserPage, OrderPage, PaymentPage, audit::AuditPage, audit::AuditStory, products::ProductPage, orderflow_audit::verify::Report)),
    modifiers(&Common),
)]
pub struct ApiDoc;

/// Adds what every route may answer besides its own outcomes: 400 (a
/// malformed request id, query or JSON), 429 and 503 everywhere; 401 and
/// 403 where the access table asks for a role; 413, 415 and 422 where a
/// body is read; and the bearer security scheme.
#[derive(Debug)]
struct Common;

fn error(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("ErrorBody")))),
        )
        .build()
        .into()
}

fn http_method(method: &axum::http::Method) -> Option<HttpMethod> {
    Some(match *method {
        axum::http::Method::GET => HttpMethod::Get,
        axum::http::Method::POST => HttpMethod::Post,
        axum::http::Method::PATCH => HttpMethod::Patch,
        axum::http::Method::DELETE => HttpMethod::Delete,
        axum::http::Method::PUT => HttpMethod::Put,
        _ => return None,
    })
}

impl Modify for Common {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        for rule in RULES {
            let path = format!("/api/v1{}", rule.path);
            let Some(method) = http_method(&rule.method) else { continue };
            let Some(item) = doc.paths.paths.get_mut(&path) else { continue };
            let operation = match method {
                HttpMethod::Get => item.get.as_mut(),
                HttpMethod::Post => item.post.as_mut(),
                HttpMethod::Patch => item.patch.as_mut(),
                HttpMethod::Delete => item.delete.as_mut(),
                HttpMethod::Put => item.put.as_mut(),
                _ => None,
            };
            let Some(operation) = operation else { continue };
            // What the middleware accepts as an Idempotency-Key, so clients
            // (and fuzzers) know; a key outside it is 400 INVALID_IDEMPOTENCY_KEY.
            for parameter in operation.parameters.iter_mut().flatten() {
                let RefOr::T(parameter) = parameter else { continue };
                if parameter.name.eq_ignore_ascii_case("idempotency-key") {
                    let key = utoipa::openapi::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::schema::Type::String)
                        .pattern(Some(format!("^[!-~]{{1,{}}}$", crate::idempotency::MAX_KEY)))
                        .min_length(Some(1))
                        .max_length(Some(crate::idempotency::MAX_KEY));
                    parameter.schema = Some(RefOr::T(key.into()));
                }
                // A header value is visible ASCII and spaces: the HTTP
                // server refuses a control character before any route.
                if parameter.name.eq_ignore_ascii_case("prefer") {
                    let prefer = utoipa::openapi::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::schema::Type::String)
                        .pattern(Some("^[ -~]*$"));
                    parameter.schema = Some(RefOr::T(prefer.into()));
                }
            }
            let responses = &mut operation.responses.responses;
            // Only writes that send a command (they answer 202) can fail in a service.
            let sends_a_command = responses.contains_key("202");
            let mut add = |status: &str, description: &str| {
                responses.entry(status.to_owned()).or_insert_with(|| error(description));
            };
            add(
                "400",
                "MALFORMED_JSON (not JSON, or a lone UTF-16 surrogate), INVALID_QUERY or INVALID_PATH (a parameter \
                 that does not fit, or holds a control character), INVALID_PREFER, INVALID_REQUEST_ID, \
                 INVALID_IDEMPOTENCY_KEY",
            );
            add(
                "422",
                "VALIDATION_FAILED (a value that does not fit, or a text with a control character; details.field \
                 names it), INVALID_BODY (not an object, a wrong type, a missing or unknown field), or the \
                 command's rejection; INVALID_COMMAND: a service could not process the command's data",
            );
            add("429", "RATE_LIMITED; see Retry-After");
            add(
                "503",
                "OVERLOADED (shed at once: at capacity, or too many requests waiting), SERVICE_UNAVAILABLE (a \
                 dependency), TIMEOUT, or sign-ins are BUSY; see Retry-After",
            );
            if sends_a_command {
                add("500", "COMMAND_FAILED: a service could not apply the command; it was kept for an operator");
            }
            if let Allow::Roles(_) = rule.allow {
                add("401", "no valid token (missing, invalid, expired, revoked)");
                add("403", "INSUFFICIENT_ROLE, or the resource is another user's");
            }
            if operation.request_body.is_some() {
                add("413", "PAYLOAD_TOO_LARGE");
                add("415", "UNSUPPORTED_MEDIA_TYPE: send application/json");
            }
        }
    }
}

/// `GET /api/openapi.json`.
pub async fn document() -> Response {
    axum::Json(ApiDoc::openapi()).into_response()
}
