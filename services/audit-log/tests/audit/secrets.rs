//! No password, hash, token or PII marked sensitive in any audit record:
//! every row of every audit table is grepped.

use orderflow_harness::system::System;

use crate::walkthrough::walk;
use crate::{PASSWORD, admin_token, audit_db, caught_up};

#[tokio::test]
async fn no_password_hash_token_or_marked_pii_in_any_record() {
    let mut system = System::start_all().await;
    system.start_audit_log().await;
    let admin = admin_token(&system).await;
    let id = walk(&system).await;
    crate::walkthrough::shop(&system).await;
    let pool = audit_db(&system).await;
    caught_up(&system, &pool, None).await;

    // The secrets that exist: the hash from the user service's own table,
    // the passwords and tokens the walk-through used.
    let users = sqlx::PgPool::connect(&system.users_db).await.expect("users db");
    let hashes: Vec<String> =
        sqlx::query_scalar("SELECT password_hash FROM users").fetch_all(&users).await.expect("hashes");
    assert!(hashes.iter().all(|h| h.starts_with("$argon2id$")));
    let mut secrets: Vec<String> = hashes;
    secrets.extend([PASSWORD, "Another-Secret-Passw0rd", "Yet-Another-Passw0rd", "$argon2", &admin].map(str::to_owned));
    // The JWT's signature part alone must not appear either.
    secrets.push(admin.rsplit('.').next().expect("jwt").to_owned());
    // PII the schemas mark sensitive.
    secrets.extend(["ada@example.com", "Augusta", "grace@example.com"].map(str::to_owned));
    // The shipping address and notes of the orders (orderflow_harness::shop::order).
    secrets.extend(["St James", "SW1Y 4JH", "leave at the door"].map(str::to_owned));

    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT row_to_json(r)::text FROM audit.records r
         UNION ALL SELECT row_to_json(h)::text FROM audit.heads h
         UNION ALL SELECT row_to_json(c)::text FROM audit.checkpoints c
         UNION ALL SELECT row_to_json(a)::text FROM audit.anchors a",
    )
    .fetch_all(&pool)
    .await
    .expect("rows");
    assert!(rows.len() >= 6, "the walk-through was recorded: {rows:?}");
    for row in &rows {
        for secret in &secrets {
            assert!(!row.contains(secret.as_str()), "an audit row holds a secret ({secret}): {row}");
        }
        assert!(!row.to_lowercase().contains("password_hash"), "{row}");
    }
    // What is not sensitive is there: the user id, the event types.
    assert!(rows.iter().any(|r| r.contains(&id) && r.contains("UserPasswordChanged")));
    system.stop().await;
}
