//! Cursor pagination returns every record exactly once while records are
//! being added.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use orderflow_harness::system::System;
use uuid::Uuid;

use crate::{Events, admin_token, audit_db, caught_up, get, recorded_ids};

#[tokio::test]
async fn pages_return_every_record_once_while_records_are_added() {
    let mut system = System::start().await;
    system.start_audit_log().await;
    let admin = admin_token(&system).await;
    let events = Arc::new(Events::new(&system));
    for n in 0..60 {
        events.update(n, 8).await;
    }
    let pool = audit_db(&system).await;
    caught_up(&system, &pool, Some(&events)).await;
    let before: BTreeSet<Uuid> = recorded_ids(&pool).await.into_iter().collect();

    // More events keep arriving while we page, newest first, 7 at a time.
    let writer = {
        let events = Arc::clone(&events);
        tokio::spawn(async move {
            for n in 60..160 {
                events.update(n, 8).await;
            }
        })
    };
    let mut seen: Vec<Uuid> = Vec::new();
    let mut path = "/api/v1/audit?page_size=5".to_owned();
    let mut pages = 0;
    let mut added_while_paging = 0;
    loop {
        // Between two pages, records arrive (until the writer is done).
        let now = recorded_ids(&pool).await.len();
        orderflow_testkit::eventually("a record arrived or the writer is done", Duration::from_secs(30), || {
            let pool = pool.clone();
            let done = writer.is_finished();
            async move { done || recorded_ids(&pool).await.len() > now }
        })
        .await;
        added_while_paging += recorded_ids(&pool).await.len() - now;
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
    writer.await.expect("writer");
    let unique: BTreeSet<Uuid> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no record twice");
    let missing: Vec<_> = before.difference(&unique).collect();
    assert!(missing.is_empty(), "every record that existed when paging began was returned: {missing:?}");
    assert!(pages >= 12, "it took many pages ({pages})");
    assert!(added_while_paging >= 10, "records were added while paging ({added_while_paging})");
    let all: BTreeSet<Uuid> = caught_up(&system, &pool, Some(&events)).await;
    assert!(unique.is_subset(&all));
    system.stop().await;
}
