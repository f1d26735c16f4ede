//! The effects table against a real Postgres: when the next call is due.

use std::time::Duration;

use orderflow_outbox::effects::{self, EffectRequest};
use sqlx::PgPool;

async fn pool() -> PgPool {
    let pool = PgPool::connect(&orderflow_testkit::fresh_database("effects").await).await.expect("database");
    orderflow_outbox::migrate(&pool).await.expect("migrate");
    pool
}

fn call() -> EffectRequest {
    EffectRequest::new(uuid::Uuid::now_v7(), "probe", serde_json::json!({}))
}

#[tokio::test]
async fn nothing_recorded_is_nothing_due_and_a_claimed_call_is_due_when_its_lease_ends() {
    let pool = pool().await;
    // An idle effector sleeps until something arrives: it must not be told
    // that a call is due now (it then asked again every millisecond).
    assert_eq!(effects::next_due(&pool).await.expect("next due"), None);

    effects::request(&pool, &[(call(), "k")], None).await.expect("record");
    assert_eq!(effects::next_due(&pool).await.expect("next due"), Some(Duration::ZERO), "a pending call is due now");

    let claimed = effects::claim(&pool, 10, Duration::from_secs(30)).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    let due = effects::next_due(&pool).await.expect("next due").expect("its lease ends");
    assert!(due > Duration::from_secs(25) && due <= Duration::from_secs(30), "{due:?}");
}
