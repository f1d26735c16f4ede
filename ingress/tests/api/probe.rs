//! What a probe of the API as a new user and as an attacker found (issue
//! 22), one test per finding: each answers as it should now, and nothing
//! bad reaches the bus.

use orderflow_harness::shop::{customer, order};
use orderflow_harness::system::read;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{System, get};

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error shape>")
}

async fn commands_on(system: &System, topic: &str) -> usize {
    orderflow_testkit::topic::read_topic(&system.kafka.brokers, &system.topic(topic)).await.len()
}

async fn raw(system: &System, method: Method, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let mut request =
        system.http.request(method, format!("{}{path}", system.api)).header("content-type", "application/json");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    read(request.body(body.to_owned()).send().await.expect("request")).await
}

#[tokio::test]
async fn a_nul_in_any_text_is_refused_naming_the_field_and_nothing_is_sent() {
    let system = System::start().await;
    let (token, me) = customer(&system, "nul@example.com").await;
    let orders = orderflow_contracts::orders::COMMANDS.name;
    let before = commands_on(&system, orders).await;
    let mut body = order(&[(1, 100)]);
    body["notes"] = json!("a\u{0}b");
    let (status, answer) = system.call(Method::POST, "/api/v1/orders", Some(&token), Some(body)).await;
    assert_eq!((status, code(&answer)), (422, "VALIDATION_FAILED"), "{answer}");
    assert_eq!(answer["error"]["details"]["field"], "notes", "{answer}");
    let mut body = order(&[(1, 100), (1, 100)]);
    body["items"][1]["name"] = json!("Widget\u{1b}[31m");
    let (status, answer) = system.call(Method::POST, "/api/v1/orders", Some(&token), Some(body)).await;
    assert_eq!((status, answer["error"]["details"]["field"].as_str()), (422, Some("items[1].name")), "{answer}");
    let (status, answer) = system
        .call(Method::PATCH, &format!("/api/v1/users/{me}"), Some(&token), Some(json!({"last_name": "x\u{0}"})))
        .await;
    assert_eq!((status, answer["error"]["details"]["field"].as_str()), (422, Some("last_name")), "{answer}");
    // A lone UTF-16 surrogate in a JSON escape is not text at all.
    let (status, answer) = raw(
        &system,
        Method::POST,
        "/api/v1/orders",
        Some(&token),
        &order(&[(1, 100)]).to_string().replace("leave at the door", "\\ud800"),
    )
    .await;
    assert_eq!((status, code(&answer)), (400, "MALFORMED_JSON"), "{answer}");
    assert!(answer["error"]["message"].as_str().expect("message").contains("surrogate"), "{answer}");
    assert_eq!(commands_on(&system, orders).await, before, "nothing refused was sent");
    system.stop().await;
}

#[tokio::test]
async fn control_characters_in_query_parameters_and_paths_answer_400_not_503() {
    let system = System::start().await;
    let (admin, _) = customer(&system, orderflow_harness::system::ADMIN_EMAIL).await;
    for (path, field) in [
        ("/api/v1/audit?type=%00", "type"),
        ("/api/v1/audit?actor=%00", "actor"),
        ("/api/v1/audit?entity=%00", "entity"),
        ("/api/v1/audit?correlation_id=%00", "correlation_id"),
        ("/api/v1/users?search=%00", "search"),
        ("/api/v1/users?search=%ff", "search"),
        ("/api/v1/audit/correlations/%00", "id"),
        ("/api/v1/orders/%00", "id"),
    ] {
        let (status, body) = get(&system, path, Some(&admin)).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(matches!(code(&body), "INVALID_QUERY" | "INVALID_PATH"), "{path}: {body}");
        assert_eq!(body["error"]["details"]["field"], field, "{path}: {body}");
    }
    system.stop().await;
}

#[tokio::test]
async fn the_largest_valid_order_fits_the_body_limit() {
    let mut system = System::start().await;
    system.start_inventory_service().await;
    let (token, _) = customer(&system, "large@example.com").await;
    // The probe's order: 100 lines with 150-character names (21.7 KB)...
    let lines: Vec<(i64, i64)> = (0..100).map(|_| (1, 100)).collect();
    let mut body = order(&lines);
    orderflow_harness::shop::stocked(&system, &body).await;
    for item in body["items"].as_array_mut().expect("items") {
        item["name"] = json!("n".repeat(150));
    }
    let (status, answer) = system.call(Method::POST, "/api/v1/orders", Some(&token), Some(body)).await;
    assert_eq!(status, 202, "{answer}");
    // ...and the largest one: every text at its maximum, in 4-byte
    // characters (a product id is a sku: ASCII).
    let mut body = order(&lines);
    let wide = |n: usize| "🙂".repeat(n);
    let sku = "s".repeat(orderflow_contracts::orders::MAX_PRODUCT_ID);
    system.stock(&[(sku.clone(), 100)], "EUR").await;
    for item in body["items"].as_array_mut().expect("items") {
        item["product_id"] = json!(sku);
        item["name"] = json!(wide(orderflow_contracts::orders::MAX_ITEM_NAME));
    }
    body["notes"] = json!(wide(orderflow_contracts::orders::MAX_NOTES));
    assert!(body.to_string().len() <= orderflow_contracts::orders::MAX_JSON_BYTES);
    let (status, answer) = system.call(Method::POST, "/api/v1/orders", Some(&token), Some(body)).await;
    assert_eq!(status, 202, "{answer}");
    system.stop().await;
}

#[tokio::test]
async fn one_code_per_kind_of_problem_and_no_rust_type_names() {
    let system = System::start().await;
    let (admin, _) = customer(&system, orderflow_harness::system::ADMIN_EMAIL).await;
    for path in
        ["/api/v1/users?page=abc", "/api/v1/orders?page=abc", "/api/v1/payments?page=abc", "/api/v1/users?page=0"]
    {
        let (status, body) = get(&system, path, Some(&admin)).await;
        assert_eq!((status, code(&body)), (400, "INVALID_QUERY"), "{path}: {body}");
    }
    for body in ["[]", "[1, 2, 3, 4]", "\"text\"", "7"] {
        let (status, answer) = raw(&system, Method::POST, "/api/v1/users", None, body).await;
        assert_eq!((status, code(&answer)), (422, "INVALID_BODY"), "{body}: {answer}");
        let message = answer["error"]["message"].as_str().expect("message");
        assert!(!message.contains("struct") && !message.contains("Register"), "no Rust type names: {message}");
    }
    let (status, answer) = raw(&system, Method::POST, "/api/v1/users", None, r#"{"email": 7}"#).await;
    assert_eq!(status, 422, "{answer}");
    let message = answer["error"]["message"].as_str().expect("message");
    assert!(message.contains("email") && !message.contains("i64") && !message.contains("String"), "{message}");
    system.stop().await;
}

#[tokio::test]
async fn a_pending_command_answers_the_whole_status_shape() {
    let system = System::start().await;
    let id = uuid::Uuid::now_v7();
    let (status, body) = get(&system, &format!("/api/v1/commands/{id}"), None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("pending")), "{body}");
    for field in ["command_id", "created_at", "updated_at"] {
        assert!(body[field].is_string(), "{field} in {body}");
    }
    system.stop().await;
}

#[tokio::test]
async fn overload_is_shed_at_once_with_retry_after_and_sends_nothing() {
    // No order service: a placed order waits its whole `Prefer: wait`.
    let mut system = System::start().await;
    system.start_inventory_service().await;
    system
        .restart_ingress_with(|s| {
            s.admission.max_waiting = 1;
            s.admission.min_waiting = 1;
        })
        .await;
    let (token, _) = customer(&system, "overload@example.com").await;
    orderflow_harness::shop::stocked(&system, &order(&[(1, 100)])).await;
    let orders = orderflow_contracts::orders::COMMANDS.name;
    let waiting = {
        let (http, api, token) = (system.http.clone(), system.api.clone(), token.clone());
        tokio::spawn(async move {
            let response = http
                .post(format!("{api}/api/v1/orders"))
                .bearer_auth(token)
                .header("prefer", "wait=5")
                .json(&order(&[(1, 100)]))
                .send()
                .await
                .expect("request");
            response.status().as_u16()
        })
    };
    // The one waiting place is taken once its command is on the bus.
    let before =
        orderflow_testkit::until("the first command is on the bus", std::time::Duration::from_secs(30), || async {
            let sent = commands_on(&system, orders).await;
            if sent == 1 { Ok(sent) } else { Err(format!("{sent} commands")) }
        })
        .await;
    let started = std::time::Instant::now();
    let response = system
        .http
        .post(format!("{}/api/v1/orders", system.api))
        .bearer_auth(&token)
        .header("prefer", "wait=5")
        .json(&order(&[(1, 100)]))
        .send()
        .await
        .expect("request");
    let elapsed = started.elapsed();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let (_, body) = read(response).await;
    assert_eq!(code(&body), "OVERLOADED", "{body}");
    assert!(elapsed < std::time::Duration::from_secs(2), "shed at once, not after a wait: {elapsed:?}");
    // Without waiting, the same request is taken (202): only waiting places ran out.
    let (status, body) = system.call(Method::POST, "/api/v1/orders", Some(&token), Some(order(&[(1, 100)]))).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(waiting.await.expect("the waiting request"), 202, "it waited its 5 s, then 202");
    assert_eq!(commands_on(&system, orders).await, before + 1, "the shed request sent nothing");
    system.stop().await;
}

#[tokio::test]
async fn a_refund_that_lost_the_race_answers_like_one_sent_alone() {
    let system = System::start_all().await;
    let (token, _) = customer(&system, "refunds@example.com").await;
    let (admin, _) = customer(&system, orderflow_harness::system::ADMIN_EMAIL).await;
    let (status, placed) = orderflow_harness::shop::place(&system, &token, order(&[(1, 900)])).await;
    assert_eq!((status, placed["status"].as_str()), (201, Some("CONFIRMED")), "{placed}");
    let id = placed["id"].as_str().expect("id");
    let payment = orderflow_harness::shop::until_api(
        &system,
        &admin,
        &format!("/api/v1/payments/by-order/{id}"),
        "the capture",
        |p| p["status"] == "CAPTURED",
    )
    .await;
    let refund = format!("/api/v1/payments/{}/refund", payment["id"].as_str().expect("payment id"));
    let wait = [("prefer", "wait=20")];
    let (status, body) =
        system.call_with(Method::POST, &refund, Some(&admin), Some(json!({"amount": 900})), &wait).await;
    assert_eq!(status, 200, "{body}");
    // The winner took everything: the loser, and the same refund sent again alone, answer alike.
    let (status, body) =
        system.call_with(Method::POST, &refund, Some(&admin), Some(json!({"amount": 900})), &wait).await;
    assert_eq!((status, code(&body)), (422, "REFUND_EXCEEDS_CAPTURE"), "{body}");
    system.stop().await;
}
