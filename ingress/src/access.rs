//! Who may call which route: one table ([`RULES`]) and one middleware
//! ([`authorize`]) that applies it before any handler runs.
//!
//! A rule names the roles a route allows, or says it is public. A route's
//! handler then only checks what needs the resource (the owner of an order,
//! say), never a role. A route the table does not name is refused (500,
//! logged): a new route without a rule fails closed, on its first request.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use orderflow_auth::Role::{self, Admin, Service, User};
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allow {
    /// Anyone, without a token (registration, login, a command's status,
    /// which checks its own actor).
    Public,
    /// A valid token with one of these roles.
    Roles(&'static [Role]),
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub method: Method,
    /// As routed under `/api/v1`.
    pub path: &'static str,
    pub allow: Allow,
}

const fn rule(method: Method, path: &'static str, allow: Allow) -> Rule {
    Rule { method, path, allow }
}

const PEOPLE: Allow = Allow::Roles(&[User, Admin]);
const STAFF: Allow = Allow::Roles(&[Admin, Service]);
const PEOPLE_AND_SERVICES: Allow = Allow::Roles(&[User, Admin, Service]);
const ADMINS: Allow = Allow::Roles(&[Admin]);

/// Every route of the API and who may call it.
pub const RULES: &[Rule] = &[
    rule(Method::POST, "/users", Allow::Public),
    rule(Method::GET, "/users", ADMINS),
    rule(Method::GET, "/users/me", PEOPLE),
    rule(Method::GET, "/users/{id}", PEOPLE),
    rule(Method::PATCH, "/users/{id}", PEOPLE),
    rule(Method::DELETE, "/users/{id}", PEOPLE),
    rule(Method::POST, "/users/{id}/password", PEOPLE),
    rule(Method::POST, "/users/{id}/erase", PEOPLE),
    rule(Method::POST, "/auth/login", Allow::Public),
    rule(Method::POST, "/auth/token", Allow::Public),
    rule(Method::POST, "/auth/refresh", Allow::Public),
    rule(Method::POST, "/auth/logout", PEOPLE),
    rule(Method::GET, "/commands/{id}", Allow::Public),
    rule(Method::POST, "/orders", PEOPLE),
    rule(Method::GET, "/orders", STAFF),
    rule(Method::GET, "/orders/mine", PEOPLE),
    rule(Method::GET, "/orders/{id}", PEOPLE_AND_SERVICES),
    rule(Method::POST, "/orders/{id}/cancel", PEOPLE),
    rule(Method::PATCH, "/orders/{id}/status", STAFF),
    rule(Method::GET, "/payments", STAFF),
    rule(Method::GET, "/payments/mine", PEOPLE),
    rule(Method::GET, "/payments/{id}", PEOPLE_AND_SERVICES),
    rule(Method::GET, "/payments/by-order/{order_id}", PEOPLE_AND_SERVICES),
    rule(Method::POST, "/payments/{id}/refund", ADMINS),
    rule(Method::POST, "/products", ADMINS),
    rule(Method::GET, "/products", Allow::Public),
    rule(Method::GET, "/products/{sku}", Allow::Public),
    rule(Method::PATCH, "/products/{sku}", ADMINS),
    rule(Method::POST, "/products/{sku}/stock", ADMINS),
    rule(Method::GET, "/audit", ADMINS),
    rule(Method::GET, "/audit/verify", ADMINS),
    rule(Method::GET, "/audit/correlations/{id}", ADMINS),
    rule(Method::GET, "/admin/bus", ADMINS),
];

/// The rule of `method` on `path` (as routed, with or without `/api/v1`).
pub fn rule_for(method: &Method, path: &str) -> Option<&'static Rule> {
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    RULES.iter().find(|r| r.method == *method && r.path == path)
}

/// Middleware (a route layer: it runs once a route matched): applies the
/// route's rule, and hands the checked claims to the handler.
pub async fn authorize(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let Some(path) = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()) else {
        return next.run(request).await;
    };
    let Some(rule) = rule_for(request.method(), &path) else {
        return ApiError::internal("access", format!("{} {path} has no access rule", request.method())).into_response();
    };
    let Allow::Roles(roles) = rule.allow else { return next.run(request).await };
    let claims = match crate::extract::authenticate(request.headers(), &state).await {
        Ok(claims) => claims,
        Err(error) => return error.into_response(),
    };
    if let Err(refused) = has_role(roles, &claims) {
        return refused.into_response();
    }
    request.extensions_mut().insert(claims);
    next.run(request).await
}

/// Whether `claims` hold one of `roles`; else the 403 naming them (the
/// REST routes' answer, and GraphQL's for the same data).
pub fn has_role(roles: &[Role], claims: &orderflow_auth::Claims) -> Result<(), ApiError> {
    if roles.iter().any(|role| claims.has(*role)) {
        return Ok(());
    }
    let required: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "INSUFFICIENT_ROLE",
        format!("this endpoint needs the role {}", required.join(" or ")),
    )
    .with_details(json!({ "required_roles": required })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_is_unique_and_found() {
        for (i, rule) in RULES.iter().enumerate() {
            assert!(
                RULES[i + 1..].iter().all(|r| !(r.method == rule.method && r.path == rule.path)),
                "{} {} twice",
                rule.method,
                rule.path
            );
            let found = rule_for(&rule.method, &format!("/api/v1{}", rule.path)).expect("found");
            assert_eq!(found.allow, rule.allow);
        }
        assert!(rule_for(&Method::PUT, "/api/v1/users").is_none());
    }
}
