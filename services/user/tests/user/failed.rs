//! A command the user service cannot apply (a failpoint makes its handler
//! fail every time) is dead-lettered and settles as failed: the client
//! waiting on it is told, and its status never stays pending.

use orderflow_harness::shop::{PASSWORD, assert_command_failed, customer, spawn_binary};
use orderflow_harness::system::System;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn a_command_the_service_cannot_apply_ends_failed_not_pending() {
    let system = System::start_without_user_service().await;
    let _service = spawn_binary(
        env!("CARGO_BIN_EXE_user-service"),
        system.user_service_env(),
        Some("handle.UpdateUserProfile=error"),
    );
    let (token, id) = customer(&system, "failing@example.com").await;
    let answer = system
        .call_with(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(&token),
            Some(json!({"last_name": "Never"})),
            &[("prefer", "wait=30")],
        )
        .await;
    assert_command_failed(&system, &token, answer, "UpdateUserProfile", orderflow_contracts::users::COMMANDS.name)
        .await;
    // The user is as before, and still works.
    let (status, me) = system.call(Method::GET, "/api/v1/users/me", Some(&token), None).await;
    assert_eq!((status, me["last_name"].as_str()), (200, Some("User")), "{me}");
    assert!(system.login("failing@example.com", PASSWORD).await.is_some());
    system.stop().await;
}
