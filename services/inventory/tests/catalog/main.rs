//! The catalog through the API, against the real broker, registry and
//! Postgres: admins keep it, everyone reads it, and every bad input is
//! answered naming what is wrong.
//!
//! Run with `scripts/test -p orderflow-inventory`.

mod crash;

use orderflow_harness::system::{ADMIN_EMAIL, System};
use reqwest::Method;
use serde_json::{Value, json};

const WAIT: [(&str, &str); 1] = [("prefer", "wait=20")];
const PASSWORD: &str = "correct horse battery staple";

async fn system() -> (System, String) {
    let mut system = System::start().await;
    system.start_inventory_service().await;
    let (status, body) = system.register(ADMIN_EMAIL, PASSWORD).await;
    assert_eq!(status, 201, "{body}");
    let token = system.login(ADMIN_EMAIL, PASSWORD).await.expect("the admin logs in");
    (system, token)
}

fn mug(sku: &str) -> Value {
    json!({"sku": sku, "name": "Mug", "description": "A blue mug", "price": 1250, "currency": "EUR", "stock": 5})
}

async fn create(system: &System, token: &str, body: Value) -> (u16, Value) {
    system.call_with(Method::POST, "/api/v1/products", Some(token), Some(body), &WAIT).await
}

#[tokio::test]
async fn an_admin_keeps_the_catalog_and_everyone_reads_it() {
    let (system, token) = system().await;

    let (status, product) = create(&system, &token, mug("MUG-1")).await;
    assert_eq!(status, 201, "{product}");
    assert_eq!(
        (&product["sku"], &product["price"], &product["on_hand"], &product["reserved"], &product["available"]),
        (&json!("MUG-1"), &json!(1250), &json!(5), &json!(0), &json!(5))
    );
    let (status, again) = create(&system, &token, mug("MUG-1")).await;
    assert_eq!((status, &again["error"]["code"]), (409, &json!("PRODUCT_EXISTS")), "{again}");

    // Everyone reads it, without a token.
    let (status, read) = system.call(Method::GET, "/api/v1/products/MUG-1", None, None).await;
    assert_eq!((status, &read["name"]), (200, &json!("Mug")), "{read}");

    let patch = json!({"price": 1400, "description": "A bigger blue mug"});
    let (status, changed) =
        system.call_with(Method::PATCH, "/api/v1/products/MUG-1", Some(&token), Some(patch), &WAIT).await;
    assert_eq!((status, &changed["price"], &changed["name"]), (200, &json!(1400), &json!("Mug")), "{changed}");

    let delivery = json!({"delta": 10, "reason": "delivery 42"});
    let (status, stocked) =
        system.call_with(Method::POST, "/api/v1/products/MUG-1/stock", Some(&token), Some(delivery), &WAIT).await;
    assert_eq!((status, &stocked["on_hand"], &stocked["available"]), (200, &json!(15), &json!(15)), "{stocked}");
    let too_many = json!({"delta": -16, "reason": "count"});
    let (status, refused) =
        system.call_with(Method::POST, "/api/v1/products/MUG-1/stock", Some(&token), Some(too_many), &WAIT).await;
    assert_eq!((status, &refused["error"]["code"]), (409, &json!("INSUFFICIENT_STOCK")), "{refused}");
    let (_, read) = system.call(Method::GET, "/api/v1/products/MUG-1", None, None).await;
    assert_eq!(read["on_hand"], 15, "a refused adjustment changes nothing: {read}");

    let unknown = json!({"price": 1});
    let (status, missing) =
        system.call_with(Method::PATCH, "/api/v1/products/NOPE-1", Some(&token), Some(unknown), &WAIT).await;
    assert_eq!((status, &missing["error"]["code"]), (404, &json!("UNKNOWN_PRODUCT")), "{missing}");
    let (status, missing) = system.call(Method::GET, "/api/v1/products/NOPE-1", None, None).await;
    assert_eq!((status, &missing["error"]["code"]), (404, &json!("UNKNOWN_PRODUCT")), "{missing}");
    system.stop().await;
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_only_admins_write() {
    let (system, token) = system().await;
    for (body, field) in [
        (json!({"sku": "a b", "name": "Mug", "price": 1, "currency": "EUR"}), "sku"),
        (json!({"sku": "MUG-2", "name": " ", "price": 1, "currency": "EUR"}), "name"),
        (json!({"sku": "MUG-2", "name": "Mug", "price": -1, "currency": "EUR"}), "price"),
        (json!({"sku": "MUG-2", "name": "Mug", "price": 1, "currency": "eur"}), "currency"),
        (json!({"sku": "MUG-2", "name": "Mug", "price": 1, "currency": "EUR", "stock": -1}), "stock"),
    ] {
        let (status, error) = create(&system, &token, body).await;
        assert_eq!((status, &error["error"]["details"]["field"]), (422, &json!(field)), "{error}");
    }
    let (status, error) = create(&system, &token, json!({"sku": "MUG-2", "name": "Mug", "price": 1})).await;
    assert_eq!(status, 422, "a missing field is named: {error}");
    let (status, error) = system.call(Method::GET, "/api/v1/products/a%20b", None, None).await;
    assert_eq!((status, &error["error"]["code"]), (400, &json!("INVALID_PATH")), "{error}");
    let zero = json!({"delta": 0, "reason": "count"});
    let (status, error) =
        system.call_with(Method::POST, "/api/v1/products/MUG-2/stock", Some(&token), Some(zero), &WAIT).await;
    assert_eq!((status, &error["error"]["details"]["field"]), (422, &json!("delta")), "{error}");

    // A user reads, but does not write.
    let (status, body) = system.register("shopper@orderflow.test", PASSWORD).await;
    assert_eq!(status, 201, "{body}");
    let shopper = system.login("shopper@orderflow.test", PASSWORD).await.expect("login");
    let (status, error) = create(&system, &shopper, mug("MUG-3")).await;
    assert_eq!((status, &error["error"]["code"]), (403, &json!("INSUFFICIENT_ROLE")), "{error}");
    let (status, error) = system.call(Method::POST, "/api/v1/products", None, Some(mug("MUG-3"))).await;
    assert_eq!(status, 401, "{error}");
    system.stop().await;
}

#[tokio::test]
async fn the_list_pages_by_cursor_and_filters() {
    let (system, token) = system().await;
    for (sku, price, stock, currency) in
        [("A-1", 100, 0, "EUR"), ("B-1", 200, 3, "EUR"), ("C-1", 300, 1, "USD"), ("D-1", 400, 2, "EUR")]
    {
        let body =
            json!({"sku": sku, "name": format!("Thing {sku}"), "price": price, "currency": currency, "stock": stock});
        let (status, product) = create(&system, &token, body).await;
        assert_eq!(status, 201, "{product}");
    }
    let skus = |page: &Value| -> Vec<String> {
        page["items"].as_array().expect("items").iter().map(|p| p["sku"].as_str().expect("sku").to_owned()).collect()
    };
    let (status, first) = system.call(Method::GET, "/api/v1/products?limit=3", None, None).await;
    assert_eq!(
        (status, skus(&first), &first["next"]),
        (200, vec!["A-1".into(), "B-1".into(), "C-1".into()], &json!("C-1"))
    );
    let (_, second) = system.call(Method::GET, "/api/v1/products?limit=3&after=C-1", None, None).await;
    assert_eq!((skus(&second), &second["next"]), (vec!["D-1".to_owned()], &Value::Null));

    let (_, filtered) =
        system.call(Method::GET, "/api/v1/products?in_stock=true&currency=EUR&min_price=150", None, None).await;
    assert_eq!(skus(&filtered), ["B-1", "D-1"]);
    let (_, searched) = system.call(Method::GET, "/api/v1/products?search=thing%20c", None, None).await;
    assert_eq!(skus(&searched), ["C-1"]);
    let (_, sold_out) = system.call(Method::GET, "/api/v1/products?in_stock=false", None, None).await;
    assert_eq!(skus(&sold_out), ["A-1"]);
    for bad in ["limit=0", "limit=101", "after=a%20b", "currency=eur", "min_price=-1", "colour=blue"] {
        let (status, error) = system.call(Method::GET, &format!("/api/v1/products?{bad}"), None, None).await;
        assert_eq!((status, &error["error"]["code"]), (400, &json!("INVALID_QUERY")), "{bad}: {error}");
    }
    system.stop().await;
}
