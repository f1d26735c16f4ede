//! Retention cuts old records without breaking the verification of what
//! remains: an anchor records where each chain was cut.

use orderflow_harness::system::System;

use crate::{Events, admin_token, audit_db, caught_up, count_is, get};

#[tokio::test]
async fn a_cut_leaves_a_verifiable_chain_anchored_where_it_was_cut() {
    let mut system = System::start().await;
    system.start_audit_log().await;
    let admin = admin_token(&system).await;
    let events = Events::new(&system);
    for n in 0..10 {
        events.update(n, 1).await;
    }
    let pool = audit_db(&system).await;
    let old = caught_up(&system, &pool, Some(&events)).await.len();
    // Just after the newest record so far (headers carry milliseconds, so
    // "now" could fall inside the millisecond of the next event).
    let newest: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT max(occurred_at) FROM audit.records").fetch_one(&pool).await.expect("newest");
    let cutoff = newest + chrono::Duration::microseconds(1);
    for n in 10..15 {
        events.update(n, 1).await;
    }
    count_is(&pool, old + 5).await;
    let all = caught_up(&system, &pool, Some(&events)).await;
    // Records that occurred before the cutoff go; the rest stays.
    let young: i64 = sqlx::query_scalar("SELECT count(*) FROM audit.records WHERE occurred_at >= $1")
        .bind(cutoff)
        .fetch_one(&pool)
        .await
        .expect("young");
    assert_eq!(young, 5);
    let pruned = orderflow_audit_log::retention::prune(&pool, cutoff).await.expect("prune");
    assert_eq!(pruned.records_removed as usize, all.len() - 5, "{pruned:?}");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM audit.records").fetch_one(&pool).await.expect("left");
    assert_eq!(left, 5);

    let (status, report) = get(&system, "/api/v1/audit/verify?full=true", &admin).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["intact"], true, "what remains verifies from the anchors: {report}");
    let anchored: Vec<_> =
        report["chains"].as_array().expect("chains").iter().filter(|c| c["anchor_seq"].is_i64()).collect();
    assert!(!anchored.is_empty(), "{report}");
    // Running it again removes nothing more; the chain still verifies.
    assert_eq!(orderflow_audit_log::retention::prune(&pool, cutoff).await.expect("again").records_removed, 0);
    // Cutting the anchored start off by hand is noticed: the chain no longer starts where its anchor says.
    sqlx::query(
        "DELETE FROM audit.records WHERE (topic, partition, seq) IN
           (SELECT topic, partition, min(seq) FROM audit.records GROUP BY 1, 2 LIMIT 1)",
    )
    .execute(&pool)
    .await
    .expect("delete");
    let (_, report) = get(&system, "/api/v1/audit/verify", &admin).await;
    assert_eq!(report["intact"], false, "{report}");
    system.stop().await;
}
