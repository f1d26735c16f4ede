//! An order's lines checked against the catalog before anything is sent:
//! a sku it does not list, a price that is not its own, and a line named by
//! the catalog.

use orderflow_harness::shop::{customer, order, stocked};
use reqwest::Method;
use serde_json::json;

use crate::System;

/// The `PlaceOrder` commands `actor` sent, as `orders.commands` holds them.
async fn placed_by(system: &System, actor: &str) -> Vec<Vec<u8>> {
    let topic = system.topic(orderflow_contracts::orders::COMMANDS.name);
    orderflow_testkit::topic::read_topic(&system.kafka.brokers, &topic)
        .await
        .into_iter()
        .filter(|m| m.headers().is_ok_and(|h| h.message_type == "PlaceOrder" && h.actor == actor))
        .filter_map(|m| m.payload)
        .collect()
}

#[tokio::test]
async fn an_order_is_checked_against_the_catalog_before_it_is_sent() {
    let mut system = System::start().await;
    system.start_inventory_service().await;
    let (token, me) = customer(&system, "catalog@example.com").await;
    let mut body = order(&[(1, 100), (2, 250)]);
    stocked(&system, &body).await;

    // A sku the catalog does not list: 404, naming the line.
    body["items"][1]["product_id"] = json!("NO-SUCH-SKU");
    let (status, answer) = system.call(Method::POST, "/api/v1/orders", Some(&token), Some(body.clone())).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (404, Some("UNKNOWN_PRODUCT")), "{answer}");
    assert_eq!(answer["error"]["message"], "items[1]: no product has sku NO-SUCH-SKU", "{answer}");
    assert_eq!(answer["error"]["details"]["field"], "items[1].product_id", "{answer}");

    // A price that is not the catalog's: 409, with the catalog's price.
    body["items"][1]["product_id"] = json!("sku-250");
    body["items"][1]["unit_price"] = json!(200);
    let (status, answer) = system.call(Method::POST, "/api/v1/orders", Some(&token), Some(body.clone())).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("PRICE_CHANGED")), "{answer}");
    assert_eq!(answer["error"]["message"], "items[1]: sku-250 costs 250 EUR now; the order says 200 EUR", "{answer}");
    assert_eq!(answer["error"]["details"]["price"], 250, "{answer}");
    // So is a currency that is not the catalog's.
    let mut dollars = order(&[(1, 100)]);
    dollars["currency"] = json!("USD");
    let (status, answer) = system.call(Method::POST, "/api/v1/orders", Some(&token), Some(dollars)).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("PRICE_CHANGED")), "{answer}");
    // A product id that cannot be a sku is refused like any bad field.
    let mut odd = order(&[(1, 100)]);
    odd["items"][0]["product_id"] = json!("a widget");
    let (status, answer) = system.call(Method::POST, "/api/v1/orders", Some(&token), Some(odd)).await;
    assert_eq!((status, answer["error"]["details"]["field"].as_str()), (422, Some("items[0].product_id")), "{answer}");
    assert!(placed_by(&system, &me).await.is_empty(), "nothing refused was sent");

    // Right, and without names: the lines take the catalog's.
    body["items"][1]["unit_price"] = json!(250);
    for item in body["items"].as_array_mut().expect("items") {
        item.as_object_mut().expect("line").remove("name");
    }
    body["items"][0]["name"] = json!("What I call it");
    let (status, answer) = system.call(Method::POST, "/api/v1/orders", Some(&token), Some(body)).await;
    assert_eq!(status, 202, "{answer}");
    let placed = placed_by(&system, &me).await;
    assert_eq!(placed.len(), 1, "one order sent");
    let has = |name: &str| placed[0].windows(name.len()).any(|w| w == name.as_bytes());
    assert!(has("Product sku-100") && has("Product sku-250"), "the catalog's names are on the command");
    assert!(!has("What I call it"), "not the client's");
    system.stop().await;
}
