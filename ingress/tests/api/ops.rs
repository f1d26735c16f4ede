//! Health and metrics live on the ops listener only: the public port has
//! neither, so a readiness reason (which names internals) never reaches a
//! client.

use crate::System;

#[tokio::test]
async fn health_and_metrics_are_on_the_ops_listener_not_the_public_port() {
    let system = System::start().await;
    assert_ne!(system.ops(), system.api, "two listeners");
    for path in ["/health/live", "/health/ready", "/metrics"] {
        let public = system.http.get(format!("{}{path}", system.api)).send().await.expect("public");
        assert_eq!(public.status().as_u16(), 404, "{path} must not be served on the public port");
        let body: serde_json::Value = public.json().await.expect("json");
        assert_eq!(body["error"]["code"], "NOT_FOUND", "the API's error shape: {body}");
        let ops = system.http.get(format!("{}{path}", system.ops())).send().await.expect("ops");
        assert_eq!(ops.status().as_u16(), 200, "{path} on the ops listener");
    }
    let (status, _) = crate::get(&system, "/api/v1/users/me", None).await;
    assert_eq!(status, 401);
    let metrics = system.http.get(format!("{}/metrics", system.ops())).send().await.expect("metrics");
    let text = metrics.text().await.expect("text");
    assert!(
        text.contains("orderflow_http_requests_total{method=\"GET\",route=\"/api/v1/users/me\",status=\"401\"}"),
        "{text}"
    );
    system.stop().await;
}
