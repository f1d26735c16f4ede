use reqwest::Method;
use serde_json::json;

use crate::{PASSWORD, System};

async fn users_with_email(system: &System, email: &str) -> i64 {
    let pool = sqlx::PgPool::connect(&system.users_db).await.expect("users db");
    sqlx::query_scalar("SELECT count(*) FROM users WHERE email = $1").bind(email).fetch_one(&pool).await.expect("count")
}

#[tokio::test]
async fn a_taken_email_is_refused_with_409() {
    let system = System::start().await;
    assert_eq!(system.register("dup@example.com", PASSWORD).await.0, 201);
    let (status, body) = system.register("DUP@example.com", "another password").await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("EMAIL_TAKEN")), "{body}");
    assert_eq!(users_with_email(&system, "dup@example.com").await, 1);
    system.stop().await;
}

#[tokio::test]
async fn concurrent_registrations_of_one_email_make_one_user() {
    let system = System::start().await;
    let body = json!({"email": "race@example.com", "password": PASSWORD, "first_name": "R", "last_name": "C"});
    let attempts = (0..6)
        .map(|_| system.call_with(Method::POST, "/api/v1/users", None, Some(body.clone()), &[("prefer", "wait=25")]));
    let outcomes = futures::future::join_all(attempts).await;
    let created = outcomes.iter().filter(|(s, _)| *s == 201).count();
    let taken = outcomes.iter().filter(|(s, b)| *s == 409 && b["error"]["code"] == "EMAIL_TAKEN").count();
    assert_eq!((created, taken), (1, 5), "{outcomes:?}");
    assert_eq!(users_with_email(&system, "race@example.com").await, 1);
    system.stop().await;
}
