//! A token stops working when its user is deactivated or changes their
//! password, within the revocation cache's second; a profile change does
//! not revoke it.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::{PASSWORD, System, get, user};

/// Polls until `token` is refused on `/users/me` (the cache holds a row
/// for a second); panics if it never is.
async fn refused_soon(system: &System, token: &str) {
    orderflow_testkit::eventually("the token is revoked", Duration::from_secs(5), || async move {
        let (status, body) = get(system, "/api/v1/users/me", Some(token)).await;
        status == 401 && body["error"]["message"].as_str().is_some_and(|m| m.contains("revoked"))
    })
    .await;
}

#[tokio::test]
async fn a_password_change_or_deactivation_revokes_existing_tokens() {
    let system = System::start().await;
    let (id, first) = user(&system, "revoked@example.com").await;
    let wait = [("prefer", "wait=20")];

    // An unrelated change (the name) leaves the token working.
    let (status, _) = system
        .call_with(Method::PATCH, &format!("/api/v1/users/{id}"), Some(&first), Some(json!({"first_name": "R"})), &wait)
        .await;
    assert_eq!(status, 200);
    let (status, _) = get(&system, "/api/v1/users/me", Some(&first)).await;
    assert_eq!(status, 200, "a profile change does not revoke");
    // Cached for a second: still fine after it, for the same reason.
    tokio::time::sleep(orderflow_ingress::revocation::FRESH_FOR).await;
    assert_eq!(get(&system, "/api/v1/users/me", Some(&first)).await.0, 200);

    // A password change revokes every token issued before it.
    let new_password = "a brand new password";
    let body = json!({"old_password": PASSWORD, "new_password": new_password});
    let (status, answer) =
        system.call_with(Method::POST, &format!("/api/v1/users/{id}/password"), Some(&first), Some(body), &wait).await;
    assert_eq!(status, 200, "{answer}");
    refused_soon(&system, &first).await;
    let (status, _) = system.call(Method::GET, &format!("/api/v1/users/{id}"), Some(&first), None).await;
    assert_eq!(status, 401, "on every route, not only /me");
    let second = system.login("revoked@example.com", new_password).await.expect("the new password works");
    assert_eq!(get(&system, "/api/v1/users/me", Some(&second)).await.0, 200, "a token issued after the change works");

    // Deactivation revokes the rest.
    let (status, _) =
        system.call_with(Method::DELETE, &format!("/api/v1/users/{id}"), Some(&second), None, &wait).await;
    assert_eq!(status, 200);
    refused_soon(&system, &second).await;
    system.stop().await;
}
