//! Bad orders: each refused in the one error shape, naming the problem, and
//! nothing sent for what the ingress refused.

use orderflow_harness::system::System;
use reqwest::Method;
use serde_json::json;

use crate::{customer, order, place};

async fn command_count(system: &System) -> usize {
    orderflow_testkit::topic::read_topic(&system.kafka.brokers, &system.topic("orders.commands")).await.len()
}

#[tokio::test]
async fn bad_orders_are_refused_naming_the_problem_and_nothing_is_sent() {
    let system = System::start_all().await;
    let (token, _) = customer(&system, "careless@example.com").await;
    let (other, _) = customer(&system, "other@example.com").await;

    let mut mixed = order(&[(1, 100)]);
    mixed["items"][0]["currency"] = json!("USD");
    let mut no_address = order(&[(1, 100)]);
    no_address["shipping_address"]["city"] = json!("  ");
    let mut bad_country = order(&[(1, 100)]);
    bad_country["shipping_address"]["country"] = json!("Germany");
    let mut euro = order(&[(1, 100)]);
    euro["currency"] = json!("EURO");
    let mut float = order(&[(1, 100)]);
    float["items"][0]["quantity"] = json!(1.5);
    let cases = [
        ("zero quantity", order(&[(0, 100)]), 422, "items[0].quantity"),
        ("negative quantity", order(&[(1, 5), (-2, 100)]), 422, "items[1].quantity"),
        ("negative price", order(&[(1, -1)]), 422, "items[0].unit_price"),
        ("no items", order(&[]), 422, "items"),
        ("a total that overflows", order(&[(2, i64::MAX / 2 + 1)]), 422, "items"),
        ("an unknown currency", euro, 422, "currency"),
        ("mixed currencies (a currency per line)", mixed, 422, "currency"),
        ("an empty city", no_address, 422, "shipping_address.city"),
        ("a country that is not a code", bad_country, 422, "shipping_address.country"),
        ("a fractional quantity", float, 422, "quantity"),
    ];
    for (what, body, status, field) in cases {
        let (got, answer) = place(&system, &token, body).await;
        assert_eq!(got, status, "{what}: {answer}");
        let error = &answer["error"];
        assert!(error["code"].is_string() && error["message"].is_string(), "{what}: one error shape: {answer}");
        assert!(answer.to_string().contains(field), "{what}: names `{field}`: {answer}");
    }
    let (status, _) = system.call(Method::POST, "/api/v1/orders", None, Some(order(&[(1, 1)]))).await;
    assert_eq!(status, 401, "anonymous");
    assert_eq!(command_count(&system).await, 0, "nothing was sent for what the ingress refused");

    // Someone else's order, a malformed id, an unknown id.
    let (_, placed) = place(&system, &token, order(&[(1, 100)])).await;
    let id = placed["id"].as_str().expect("id");
    let (status, body) = system.call(Method::GET, &format!("/api/v1/orders/{id}"), Some(&other), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("FORBIDDEN")));
    let (status, _) = system.call(Method::POST, &format!("/api/v1/orders/{id}/cancel"), Some(&other), None).await;
    assert_eq!(status, 403);
    let (status, body) = system.call(Method::GET, "/api/v1/orders/not-a-uuid", Some(&token), None).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("id")));
    let unknown = uuid::Uuid::now_v7();
    assert_eq!(system.call(Method::GET, &format!("/api/v1/orders/{unknown}"), Some(&token), None).await.0, 404);
    let (status, body) = system.call(Method::GET, "/api/v1/orders/mine?status=LOST", Some(&token), None).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("status")), "{body}");
    let (status, body) = system.call(Method::GET, "/api/v1/orders/mine?from=yesterday", Some(&token), None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(command_count(&system).await, 1, "only the good order and nothing for the refused requests");
    system.stop().await;
}
