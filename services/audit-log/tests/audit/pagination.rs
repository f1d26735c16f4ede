//! Cursor pagination returns every record exactly once while records are
//! being added.

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use orderflow_bus::Headers;
use orderflow_contracts::users::UserDeactivated;
use orderflow_harness::system::System;
use uuid::Uuid;

use crate::{Events, admin_token, audit_db, caught_up, count_is, get, recorded_ids};

#[tokio::test]
async fn pages_return_every_record_once_while_records_are_added() {
    let mut system = System::start().await;
    system.start_audit_log().await;
    let admin = admin_token(&system).await;
    let events = Events::new(&system);
    for n in 0..60 {
        events.update(n, 8).await;
    }
    let pool = audit_db(&system).await;
    let before = caught_up(&system, &pool, Some(&events)).await;
    let oldest: chrono::DateTime<Utc> =
        sqlx::query_scalar("SELECT min(occurred_at) FROM audit.records").fetch_one(&pool).await.expect("oldest");

    // Page newest first, 5 at a time; before each page, two records are
    // added: a new one (sorts before the cursor: not in this walk) and one
    // stamped in the past (a late, slow partition: it may sort after the
    // cursor and then must show up once).
    let mut seen: Vec<Uuid> = Vec::new();
    let mut path = "/api/v1/audit?page_size=5".to_owned();
    let mut pages = 0;
    let mut added = 0;
    loop {
        events.update(1000 + pages, 8).await;
        let mut late = Headers::new_root("DeactivateUser", "system").caused("UserDeactivated");
        late.occurred_at = oldest + Duration::milliseconds(37 * pages as i64 + 1);
        let user_id = format!("0190a0a0-0000-7000-8000-{:012}", 9000 + pages);
        events
            .send(&UserDeactivated { user_id, version: 2, deactivated_at: late.occurred_at.timestamp_millis() }, &late)
            .await;
        added += 2;
        count_is(&pool, before.len() + added).await;

        let (status, body) = get(&system, &path, &admin).await;
        assert_eq!(status, 200, "{body}");
        let items = body["items"].as_array().expect("items");
        assert!(items.len() <= 5);
        seen.extend(items.iter().map(|r| Uuid::parse_str(r["message_id"].as_str().expect("id")).expect("uuid")));
        pages += 1;
        match body["next"].as_str() {
            Some(next) => {
                assert!(body["next_cursor"].is_string(), "{body}");
                path = next.to_owned();
            }
            None => break,
        }
    }
    let unique: BTreeSet<Uuid> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no record twice");
    let missing: Vec<_> = before.difference(&unique).collect();
    assert!(missing.is_empty(), "every record that existed when paging began was returned: {missing:?}");
    assert!(pages >= 12, "it took many pages ({pages})");
    let now: BTreeSet<Uuid> = recorded_ids(&pool).await.into_iter().collect();
    assert!(unique.is_subset(&now));
    assert!(unique.len() > before.len(), "some records added while paging sorted after the cursor and were returned");
    system.stop().await;
}
