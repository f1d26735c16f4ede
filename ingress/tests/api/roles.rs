//! Roles are checked by one table: every route, called by every kind of
//! caller, answers as `access::RULES` says; ownership stays the route's.

use orderflow_auth::Role;
use orderflow_ingress::access::{Allow, RULES};
use orderflow_ingress::settings::ServiceClient;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{ADMIN_EMAIL, System, get, user};

pub const SECRET: &str = "a-long-service-secret-0123456789";

pub async fn service_token(system: &System, id: &str, secret: &str) -> (u16, Value) {
    let body = json!({"grant_type": "client_credentials", "client_id": id, "client_secret": secret});
    system.call(Method::POST, "/api/v1/auth/token", None, Some(body)).await
}

#[tokio::test]
async fn every_route_answers_every_role_as_the_route_table_says() {
    let mut system = System::start().await;
    let hash = orderflow_auth::hash_password(SECRET).expect("hash");
    system
        .restart_ingress_with(|s| {
            s.service_clients = vec![ServiceClient { id: "fulfilment".into(), secret_hash: hash }];
        })
        .await;
    let (user_id, user_token) = user(&system, "roles-user@example.com").await;
    let (_, other_token) = user(&system, "roles-other@example.com").await;
    let (_, admin_token) = user(&system, ADMIN_EMAIL).await;

    // Client credentials: the right secret gets a service token, nothing else does.
    let (status, body) = service_token(&system, "fulfilment", SECRET).await;
    assert_eq!(status, 200, "{body}");
    let service = body["access_token"].as_str().expect("token").to_owned();
    for (id, secret) in [("fulfilment", "not the secret at all"), ("nobody", SECRET)] {
        let (status, body) = service_token(&system, id, secret).await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("INVALID_CLIENT")), "{id}");
    }
    let body = json!({"grant_type": "password", "client_id": "fulfilment", "client_secret": SECRET});
    let (status, _) = system.call(Method::POST, "/api/v1/auth/token", None, Some(body)).await;
    assert_eq!(status, 400);

    let callers: [(&str, Option<&str>, &[Role]); 5] = [
        ("anonymous", None, &[]),
        ("user", Some(&user_token), &[Role::User]),
        ("other user", Some(&other_token), &[Role::User]),
        ("admin", Some(&admin_token), &[Role::User, Role::Admin]),
        ("service", Some(&service), &[Role::Service]),
    ];
    let mut checked = 0;
    for rule in RULES {
        // Ids and bodies that fail only after the access check (422), so
        // nothing is changed and every allowed caller gets past it.
        let path = format!("/api/v1{}", rule.path.replace("{id}", "not-an-id").replace("{order_id}", "not-an-id"));
        let body = [Method::POST, Method::PATCH].contains(&rule.method).then(|| json!({"not_a_field": true}));
        for (who, token, roles) in &callers {
            let (status, answer) = system.call(rule.method.clone(), &path, *token, body.clone()).await;
            let what = format!("{} {path} as {who}: {status} {answer}", rule.method);
            let code = answer["error"]["code"].as_str().unwrap_or("");
            let unrouted = answer["error"]["message"] == "no such endpoint" || code == "METHOD_NOT_ALLOWED";
            assert!(!unrouted && status != 500, "the route exists and has a rule: {what}");
            match rule.allow {
                Allow::Public => assert!(status != 401 && code != "INSUFFICIENT_ROLE", "public: {what}"),
                Allow::Roles(_) if token.is_none() => assert_eq!(status, 401, "{what}"),
                Allow::Roles(allowed) if roles.iter().any(|r| allowed.contains(r)) => {
                    assert!(status != 401 && code != "INSUFFICIENT_ROLE", "allowed: {what}")
                }
                Allow::Roles(_) => assert_eq!((status, code), (403, "INSUFFICIENT_ROLE"), "refused: {what}"),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, RULES.len() * callers.len());

    // Ownership stays the route's: another user may not read this one.
    let mine = format!("/api/v1/users/{user_id}");
    assert_eq!(get(&system, &mine, Some(&user_token)).await.0, 200);
    assert_eq!(get(&system, &mine, Some(&admin_token)).await.0, 200);
    let (status, body) = get(&system, &mine, Some(&other_token)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("FORBIDDEN")));
    let (status, body) = get(&system, &mine, Some(&service)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("INSUFFICIENT_ROLE")));
    // Staff routes answer the service with data.
    let (status, body) = get(&system, "/api/v1/orders", Some(&service)).await;
    assert_eq!(status, 200, "{body}");
    system.stop().await;
}
