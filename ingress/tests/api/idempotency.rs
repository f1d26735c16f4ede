//! `Idempotency-Key`: the same key and request give the first answer and
//! send one command, concurrently, across replicas and across a restart;
//! the same key with another request is refused.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{System, commands_of, user};

async fn patch(system: &System, api: &str, path: &str, token: &str, key: &str, body: &Value) -> (u16, String) {
    let response = system
        .http
        .patch(format!("{api}{path}"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .expect("request");
    (response.status().as_u16(), response.text().await.expect("body"))
}

#[tokio::test]
async fn one_key_one_command_however_often_and_wherever_it_is_sent() {
    let mut system = System::start().await;
    let (id, token) = user(&system, "idem@example.com").await;
    let path = format!("/api/v1/users/{id}");
    let body = json!({"first_name": "Once"});
    let (other_url, other_shutdown, other_task) = crate::replica(system.ingress_settings()).await;

    // 20 at once, half to each replica: one command, 20 identical answers.
    let apis: Vec<String> = (0..20).map(|n| if n % 2 == 0 { system.api.clone() } else { other_url.clone() }).collect();
    let answers =
        futures::future::join_all(apis.iter().map(|api| patch(&system, api, &path, &token, "key-1", &body))).await;
    let first = answers[0].clone();
    assert_eq!(first.0, 202, "{first:?}");
    assert!(answers.iter().all(|a| *a == first), "20 identical answers: {answers:#?}");
    assert_eq!(commands_of(&system, "UpdateUserProfile", &id).await, 1, "exactly one command on the topic");

    // The same key with another body: refused, and still one command.
    let (status, answer) = patch(&system, &system.api, &path, &token, "key-1", &json!({"first_name": "Twice"})).await;
    assert_eq!(status, 422, "{answer}");
    assert!(answer.contains("IDEMPOTENCY_KEY_REUSED"), "{answer}");

    // After a restart of both replicas the key is still remembered.
    other_shutdown.cancel();
    other_task.await.expect("second ingress stopped");
    system.restart_ingress_with(|_| {}).await;
    let again = patch(&system, &system.api, &path, &token, "key-1", &body).await;
    assert_eq!(again, first, "the first answer, after a restart");
    assert_eq!(commands_of(&system, "UpdateUserProfile", &id).await, 1, "still one command");

    // A new key is a new request; another caller's same key is theirs alone.
    let (status, _) = patch(&system, &system.api, &path, &token, "key-2", &body).await;
    assert_eq!(status, 202);
    assert_eq!(commands_of(&system, "UpdateUserProfile", &id).await, 2);
    let (other_id, other) = user(&system, "idem-other@example.com").await;
    let (status, _) = patch(&system, &system.api, &format!("/api/v1/users/{other_id}"), &other, "key-1", &body).await;
    assert_eq!(status, 202, "keys are per caller");
    let (status, answer) = system
        .call_with(Method::PATCH, &path, Some(&token), Some(body.clone()), &[("idempotency-key", "bad key")])
        .await;
    assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("INVALID_IDEMPOTENCY_KEY")));
    system.stop().await;
}
