//! The users flow through the whole system: ingress → users.commands → user
//! service → outbox → users.events → projector → read model → ingress.

mod browser;
mod flow;
mod idempotency;
mod inspect;
mod limits;
mod ops;
mod refused;
mod revocation;
mod roles;
mod secrets;
mod trace;
mod uniqueness;
mod waiting;

use reqwest::Method;

pub use orderflow_harness::system::{ADMIN_EMAIL, System};

pub const PASSWORD: &str = "correct horse battery";

/// Registers `email` and logs in; returns (user id, token).
pub async fn user(system: &System, email: &str) -> (String, String) {
    let (status, body) = system.register(email, PASSWORD).await;
    assert_eq!(status, 201, "register {email}: {body}");
    let token = system.login(email, PASSWORD).await.expect("login");
    (body["id"].as_str().expect("id").to_owned(), token)
}

pub async fn get(system: &System, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    system.call(Method::GET, path, token, None).await
}
