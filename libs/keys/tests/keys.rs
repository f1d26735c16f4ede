//! The keeper's store, its key service over HTTP, and rotation, against a
//! real Postgres.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use orderflow_config::Secret;
use orderflow_contracts::personal::{KeyStore, Lookup};
use orderflow_keys::{Cached, Keks, PgKeyStore, RemoteKeyStore};
use sqlx::PgPool;

const TOKEN: &str = "a-test-token-of-some-length";

fn kek(id: &str, byte: u8) -> Secret {
    Secret::new(format!("{id}:{}", STANDARD.encode([byte; 32])))
}

async fn database() -> PgPool {
    let url = orderflow_testkit::fresh_database("keys").await;
    let pool = PgPool::connect(&url).await.expect("connect");
    orderflow_keys::migrate(&pool).await.expect("migrate");
    pool
}

fn key(lookup: Lookup) -> Arc<orderflow_contracts::personal::DataKey> {
    match lookup {
        Lookup::Key(key) => key,
        Lookup::Erased => panic!("a live key was expected"),
    }
}

async fn serve(store: Arc<dyn KeyStore>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, orderflow_keys::routes(store, TOKEN)).await });
    url
}

#[tokio::test]
async fn one_key_per_subject_until_it_is_destroyed_and_never_again() {
    let pool = database().await;
    let keks = Arc::new(Keks::from_settings(&[kek("k1", 1)]).expect("keks"));
    let store = PgKeyStore::new(pool.clone(), keks);
    // Many first uses at once: one key.
    let firsts = futures_join(&store, "alice").await;
    assert!(firsts.windows(2).all(|w| w[0] == w[1]), "one key per subject: {firsts:?}");
    let alice = key(store.sealing_key("alice").await.expect("key"));
    assert_eq!(alice.id(), firsts[0]);
    let by_id = key(store.opening_key(alice.id()).await.expect("key"));
    assert_eq!(by_id.expose_bytes(), alice.expose_bytes());
    let bob = key(store.sealing_key("bob").await.expect("key"));
    assert_ne!(bob.id(), alice.id());

    // Nothing readable is stored: the table holds wrapped keys only.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT wrapped FROM data_keys WHERE subject = 'alice'")
        .fetch_one(&pool)
        .await
        .expect("row");
    assert!(!stored.windows(32).any(|w| w == alice.expose_bytes()), "the data key is stored in clear");

    let mut tx = pool.begin().await.expect("tx");
    assert!(orderflow_keys::destroy(&mut tx, "alice").await.expect("destroy"));
    assert!(!orderflow_keys::destroy(&mut tx, "alice").await.expect("twice"), "a second destroy finds none live");
    assert!(!orderflow_keys::destroy(&mut tx, "carol").await.expect("keyless"), "a subject without a key");
    tx.commit().await.expect("commit");
    assert!(matches!(store.opening_key(alice.id()).await, Ok(Lookup::Erased)));
    assert!(matches!(store.sealing_key("alice").await, Ok(Lookup::Erased)), "an erased subject gets no new key");
    assert!(matches!(store.sealing_key("carol").await, Ok(Lookup::Erased)));
    assert!(matches!(store.opening_key("not-a-key-id").await, Ok(Lookup::Erased)));
    assert!(matches!(store.sealing_key("bob").await, Ok(Lookup::Key(_))), "the others keep theirs");
}

async fn futures_join(store: &PgKeyStore, subject: &str) -> Vec<String> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        let subject = subject.to_owned();
        tasks.spawn(async move { key(store.sealing_key(&subject).await.expect("key")).id().to_owned() });
    }
    tasks.join_all().await
}

#[tokio::test]
async fn the_key_service_answers_token_bearers_and_processes_cache_what_it_says() {
    let pool = database().await;
    let keks = Arc::new(Keks::from_settings(&[kek("k1", 1)]).expect("keks"));
    let store = PgKeyStore::new(pool.clone(), keks);
    let url = serve(Arc::new(store.clone())).await;

    let remote = RemoteKeyStore::new(&url, TOKEN);
    let dana = key(remote.sealing_key("dana").await.expect("over HTTP"));
    let local = key(store.sealing_key("dana").await.expect("local"));
    assert_eq!((dana.id(), dana.expose_bytes()), (local.id(), local.expose_bytes()));
    let opened = key(remote.opening_key(dana.id()).await.expect("by id"));
    assert_eq!(opened.expose_bytes(), dana.expose_bytes());

    let stranger = RemoteKeyStore::new(&url, "not-the-token-at-all");
    let refused = stranger.sealing_key("dana").await.expect_err("refused");
    assert!(refused.to_string().contains("refuses keys.token"), "{refused}");
    let raw = reqwest::Client::new().get(format!("{url}/keys/{}", dana.id())).send().await.expect("send");
    assert_eq!(raw.status(), 401, "no token, no key");
    let down = RemoteKeyStore::new("http://127.0.0.1:9", TOKEN);
    assert!(down.opening_key(dana.id()).await.is_err(), "an unreachable keeper is an error to retry, not an erasure");

    // A cached key outlives its destruction by the cache's time, no more.
    let cached = Cached::new(RemoteKeyStore::new(&url, TOKEN), Duration::from_millis(300));
    assert!(matches!(cached.opening_key(dana.id()).await, Ok(Lookup::Key(_))));
    let mut tx = pool.begin().await.expect("tx");
    orderflow_keys::destroy(&mut tx, "dana").await.expect("destroy");
    tx.commit().await.expect("commit");
    assert!(matches!(cached.opening_key(dana.id()).await, Ok(Lookup::Key(_))), "cached");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(matches!(cached.opening_key(dana.id()).await, Ok(Lookup::Erased)), "gone once the cache forgets");
    assert!(matches!(remote.sealing_key("dana").await, Ok(Lookup::Erased)), "410 for an erased subject");
}

#[tokio::test]
async fn a_rotated_key_encryption_key_rewraps_every_key_while_both_work() {
    let pool = database().await;
    let old = Arc::new(Keks::from_settings(&[kek("2026-01", 1)]).expect("keks"));
    let before = PgKeyStore::new(pool.clone(), Arc::clone(&old));
    let mut keys = Vec::new();
    for n in 0..7 {
        keys.push(key(before.sealing_key(&format!("subject-{n}")).await.expect("key")));
    }
    // The new key first, the old one still accepted.
    let rotated = Arc::new(Keks::from_settings(&[kek("2026-12", 2), kek("2026-01", 1)]).expect("keks"));
    let during = PgKeyStore::new(pool.clone(), Arc::clone(&rotated));
    let opened = key(during.opening_key(keys[0].id()).await.expect("the old key still unwraps"));
    assert_eq!(opened.expose_bytes(), keys[0].expose_bytes());
    let fresh = key(during.sealing_key("newcomer").await.expect("key"));
    let by_kek = |kek: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM data_keys WHERE kek_id = $1")
                .bind(kek)
                .fetch_one(&pool)
                .await
                .expect("count")
        }
    };
    assert_eq!((by_kek("2026-01").await, by_kek("2026-12").await), (7, 1), "new keys wrapped by the new kek");
    assert_eq!(orderflow_keys::rewrap_once(&pool, &rotated, 5).await.expect("rewrap"), 5, "a batch at a time");
    assert_eq!(orderflow_keys::rewrap_once(&pool, &rotated, 5).await.expect("rewrap"), 2);
    assert_eq!(orderflow_keys::rewrap_once(&pool, &rotated, 5).await.expect("rewrap"), 0);
    assert_eq!(by_kek("2026-01").await, 0);
    // The old key can go: every data key is the same as before.
    let after = PgKeyStore::new(pool.clone(), Arc::new(Keks::from_settings(&[kek("2026-12", 2)]).expect("keks")));
    for key_before in keys.iter().chain([&fresh]) {
        let now = key(after.opening_key(key_before.id()).await.expect("unwraps with the new kek alone"));
        assert_eq!(now.expose_bytes(), key_before.expose_bytes());
    }
    // Dropping a key-encryption key too early is a clear error, never an erasure.
    let wrong = PgKeyStore::new(pool, old);
    let error = wrong.opening_key(keys[1].id()).await.expect_err("not wrapped by 2026-01 any more");
    assert!(error.to_string().contains("2026-12"), "{error}");
}
