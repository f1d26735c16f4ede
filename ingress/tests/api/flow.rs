use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::{ADMIN_EMAIL, PASSWORD, System, get, user};

#[tokio::test]
async fn register_login_me_update_password_deactivate() {
    let system = System::start().await;

    // Register, waiting for the outcome: 201 and the user.
    let (status, body) = system.register("Ada@Example.com", PASSWORD).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["email"], "ada@example.com");
    assert_eq!(body["roles"], json!(["user"]));
    assert_eq!(body["active"], true);
    let id = body["id"].as_str().expect("id").to_owned();

    // Login → JWT; me → the profile.
    let token = system.login("ada@example.com", PASSWORD).await.expect("login works");
    let (status, me) = get(&system, "/api/v1/users/me", Some(&token)).await;
    assert_eq!((status, me["id"].as_str()), (200, Some(id.as_str())));

    // Profile update through the bus.
    let (status, updated) = system
        .call_with(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(&token),
            Some(json!({"last_name": "King"})),
            &[("prefer", "wait=20")],
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!((updated["first_name"].as_str(), updated["last_name"].as_str()), (Some("Test"), Some("King")));
    assert_eq!(updated["version"], 2);

    // Password change: the old password then fails, the new one works.
    let (status, body) = system
        .call_with(
            Method::POST,
            &format!("/api/v1/users/{id}/password"),
            Some(&token),
            Some(json!({"old_password": PASSWORD, "new_password": "a whole new secret"})),
            &[("prefer", "wait=20")],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"].as_str(), Some(id.as_str()), "the user, as the document says: {body}");
    assert!(body.get("password_hash").is_none(), "{body}");
    assert!(system.login("ada@example.com", PASSWORD).await.is_none(), "old password no longer works");
    let token = system.login("ada@example.com", "a whole new secret").await.expect("new password works");
    let (status, body) = system
        .call(
            Method::POST,
            &format!("/api/v1/users/{id}/password"),
            Some(&token),
            Some(json!({"old_password": "not it at all", "new_password": "whatever else"})),
        )
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("WRONG_PASSWORD")));

    // Deactivate: login then fails with the same answer as a wrong password.
    let (status, body) = system
        .call_with(Method::DELETE, &format!("/api/v1/users/{id}"), Some(&token), None, &[("prefer", "wait=20")])
        .await;
    assert_eq!((status, body["active"].as_bool()), (200, Some(false)), "{body}");
    let (status, refused) = system
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "ada@example.com", "password": "a whole new secret"})),
        )
        .await;
    let (_, unknown) = system
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "nobody@example.com", "password": "whatever123"})),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(refused, unknown, "deactivated, wrong and unknown look the same");

    // A command on a deactivated user is rejected, and the client learns why.
    let (status, body) = system
        .call_with(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(&token),
            Some(json!({"first_name": "X"})),
            &[("prefer", "wait=20")],
        )
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("USER_DEACTIVATED")), "{body}");
    system.stop().await;
}

#[tokio::test]
async fn writes_answer_202_and_the_command_status_tells_the_outcome() {
    let system = System::start().await;
    let body =
        json!({"email": "grace@example.com", "password": PASSWORD, "first_name": "Grace", "last_name": "Hopper"});
    let (status, accepted) = system.call(Method::POST, "/api/v1/users", None, Some(body)).await;
    assert_eq!(status, 202, "{accepted}");
    let url = accepted["status_url"].as_str().expect("status url").to_owned();
    assert_eq!(url, format!("/api/v1/commands/{}", accepted["command_id"].as_str().expect("id")));
    let body = orderflow_testkit::until("the command succeeded", Duration::from_secs(20), || async {
        let (status, body) = get(&system, &url, None).await;
        assert_eq!(status, 200, "{body}");
        if body["status"] == "succeeded" {
            return Ok(body);
        }
        assert_eq!(body["status"], "pending");
        Err(body.to_string())
    })
    .await;
    assert_eq!(body["command_type"], "RegisterUser");
    let (status, _) = get(&system, "/api/v1/commands/0190a0a0-0000-7000-8000-000000000000", None).await;
    assert_eq!(status, 404);
    let metrics =
        system.http.get(format!("{}/metrics", system.ops())).send().await.expect("metrics").text().await.expect("text");
    assert!(
        metrics.contains("orderflow_http_requests_total{method=\"POST\",route=\"/api/v1/users\",status=\"202\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("orderflow_bus_messages_produced_total"), "{metrics}");
    system.stop().await;
}

#[tokio::test]
async fn only_self_or_admin_reads_a_user_and_admins_list_with_pages() {
    let system = System::start().await;
    let (admin_id, admin) = user(&system, ADMIN_EMAIL).await;
    let (alice_id, alice) = user(&system, "alice@example.com").await;
    let (bob_id, bob) = user(&system, "bob@example.com").await;

    let (status, body) = get(&system, &format!("/api/v1/users/{bob_id}"), Some(&alice)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("FORBIDDEN")));
    assert_eq!(get(&system, &format!("/api/v1/users/{alice_id}"), Some(&alice)).await.0, 200);
    let (status, body) = get(&system, &format!("/api/v1/users/{bob_id}"), Some(&admin)).await;
    assert_eq!((status, body["email"].as_str()), (200, Some("bob@example.com")));
    let (status, _) = get(&system, "/api/v1/users", Some(&bob)).await;
    assert_eq!(status, 403, "listing is for admins");

    let (status, page) = get(&system, "/api/v1/users?page=1&page_size=2", Some(&admin)).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        (page["total"].as_i64(), page["total_pages"].as_i64(), page["page_size"].as_i64()),
        (Some(3), Some(2), Some(2))
    );
    assert_eq!(page["items"].as_array().expect("items").len(), 2);
    let (_, last) = get(&system, "/api/v1/users?page=2&page_size=2", Some(&admin)).await;
    assert_eq!(last["items"].as_array().expect("items").len(), 1);
    let (_, found) = get(&system, "/api/v1/users?search=alice", Some(&admin)).await;
    assert_eq!(found["total"], 1);
    assert_eq!(found["items"][0]["id"].as_str(), Some(alice_id.as_str()));
    let (status, body) = get(&system, "/api/v1/users?page_size=1000", Some(&admin)).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("page_size")));
    for page in ["99999999999999999", "1000000001"] {
        let (status, body) = get(&system, &format!("/api/v1/users?page={page}&page_size=100"), Some(&admin)).await;
        assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("page")), "{body}");
    }
    let (status, body) = get(&system, "/api/v1/users?page=1000000000&page_size=100", Some(&admin)).await;
    assert_eq!((status, body["items"].as_array().map(Vec::len)), (200, Some(0)), "the last page allowed is empty");
    assert_ne!(admin_id, alice_id);
    system.stop().await;
}
