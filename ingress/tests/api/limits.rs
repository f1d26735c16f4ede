//! Rate limits: over a client's, an IP's or a login's limit the answer is
//! 429 with Retry-After and nothing reaches the bus; within them all is
//! accepted. Hashing is bounded: 200 concurrent logins keep the real
//! ingress binary's memory within a bound (docs: README, "Limits").

use std::time::Duration;

use futures::StreamExt;
use orderflow_ingress::limits::Rate;
use reqwest::Method;
use serde_json::json;

use crate::{PASSWORD, System, commands_of, user};

#[tokio::test]
async fn over_a_limit_is_429_with_retry_after_and_sends_no_command() {
    let mut system = System::start().await;
    const BURST: usize = 5;
    system.restart_ingress_with(|s| s.rate_limit.per_client = Rate { per_second: 0.01, burst: BURST as f64 }).await;
    let (id, token) = user(&system, "limited@example.com").await;
    let path = format!("/api/v1/users/{id}");

    // Within the limit: every write accepted.
    for n in 0..BURST {
        let (status, body) =
            system.call(Method::PATCH, &path, Some(&token), Some(json!({"first_name": format!("N{n}")}))).await;
        assert_eq!(status, 202, "within the limit: {body}");
    }
    // Over it: 1,000 writes, each 429 with Retry-After, none on the bus.
    let answers: Vec<(u16, Option<u64>, String)> = futures::stream::iter(0..1000)
        .map(|n| {
            let request = system
                .http
                .patch(format!("{}{path}", system.api))
                .bearer_auth(&token)
                .json(&json!({"first_name": format!("X{n}")}));
            async move {
                let response = request.send().await.expect("request");
                let retry = response.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok());
                let status = response.status().as_u16();
                let body: serde_json::Value = response.json().await.expect("json");
                (status, retry, body["error"]["code"].as_str().unwrap_or("").to_owned())
            }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    for (status, retry, code) in &answers {
        assert_eq!((*status, code.as_str()), (429, "RATE_LIMITED"));
        assert!(retry.is_some_and(|s| s >= 1), "Retry-After: {retry:?}");
    }
    assert_eq!(commands_of(&system, "UpdateUserProfile", &id).await, BURST, "only the accepted writes are on the bus");
    // Another client is not affected by this one's limit.
    let (other_id, other) = user(&system, "unlimited@example.com").await;
    let (status, _) = system
        .call(Method::PATCH, &format!("/api/v1/users/{other_id}"), Some(&other), Some(json!({"first_name": "O"})))
        .await;
    assert_eq!(status, 202);

    // Logins per email: a guessed account is locked out for a while, with Retry-After.
    system.restart_ingress_with(|s| s.rate_limit.login_per_email = Rate { per_second: 0.01, burst: 2.0 }).await;
    for _ in 0..2 {
        assert!(system.login("limited@example.com", "a wrong guess").await.is_none());
    }
    let login = json!({"email": "limited@example.com", "password": PASSWORD});
    let response =
        system.http.post(format!("{}/api/v1/auth/login", system.api)).json(&login).send().await.expect("login");
    assert_eq!(response.status().as_u16(), 429, "even the right password, once the email's limit is spent");
    assert!(response.headers().contains_key("retry-after"));
    assert!(system.login("unlimited@example.com", PASSWORD).await.is_some(), "another email may log in");

    // Per IP: anonymous requests count too.
    system.restart_ingress_with(|s| s.rate_limit.per_ip = Rate { per_second: 0.01, burst: 3.0 }).await;
    let statuses: Vec<u16> = futures::future::join_all((0..5).map(|_| crate::get(&system, "/api/v1/users/me", None)))
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 3, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 2, "{statuses:?}");
    system.stop().await;
}

/// The most the ingress's resident memory may grow while 200 logins arrive
/// at once, with `hashing.max_concurrent = 2`: two argon2id work areas of
/// 19 MiB, plus 10 MiB for the connections (README, "Limits"; measured:
/// 8 MiB once warm; hashing on tokio's blocking pool instead grew 290 MiB).
const LOGIN_BURST_BOUND_MIB: u64 = 48;

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

#[tokio::test]
async fn two_hundred_concurrent_logins_stay_within_the_memory_bound() {
    let system = System::start().await;
    let (status, _) = system.register("crowd@example.com", PASSWORD).await;
    assert_eq!(status, 201);
    let (api, ops) = (free_port(), free_port());
    let k = &system.kafka;
    let env = [
        ("ORDERFLOW_ENVIRONMENT", "development".to_owned()),
        ("ORDERFLOW_HTTP__ADDR", format!("127.0.0.1:{api}")),
        ("ORDERFLOW_OPS__ADDR", format!("127.0.0.1:{ops}")),
        ("ORDERFLOW_DATABASE__URL", system.readmodels_db.clone()),
        ("ORDERFLOW_DATABASE__MAX_CONNECTIONS", "10".into()),
        ("ORDERFLOW_KAFKA__BROKERS", k.brokers.clone()),
        ("ORDERFLOW_KAFKA__TOPIC_PREFIX", k.topic_prefix.clone()),
        ("ORDERFLOW_KAFKA__REPLICATION_FACTOR", k.replication_factor.to_string()),
        ("ORDERFLOW_KAFKA__MIN_INSYNC_REPLICAS", k.min_insync_replicas.to_string()),
        ("ORDERFLOW_REGISTRY__URL", system.registry.url.clone()),
        ("ORDERFLOW_HASHING__MAX_CONCURRENT", "2".into()),
        // This test is about memory, not the login limits.
        ("ORDERFLOW_RATE_LIMIT__LOGIN_PER_IP__BURST", "1000".into()),
        ("ORDERFLOW_RATE_LIMIT__LOGIN_PER_EMAIL__BURST", "1000".into()),
    ];
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ingress"))
        .envs(env)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the ingress binary");
    let pid = child.id().expect("pid");
    let ready = format!("http://127.0.0.1:{ops}/health/ready");
    orderflow_testkit::eventually("the ingress binary is ready", Duration::from_secs(60), || {
        let ready = ready.clone();
        async move { orderflow_testkit::http_ok(&ready).await }
    })
    .await;
    let url = format!("http://127.0.0.1:{api}/api/v1/auth/login");
    let login = json!({"email": "crowd@example.com", "password": PASSWORD});
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
    // Warm up: connection pools, the first hashes' allocations.
    for _ in 0..4 {
        let response = client.post(&url).json(&login).send().await.expect("warm-up");
        assert_eq!(response.status().as_u16(), 200);
    }
    // Peak RSS from here on (Linux: 5 resets VmHWM to the current RSS).
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset the peak RSS");
    let before = proc_status_kib(pid, "VmRSS:");
    let answers = futures::future::join_all((0..200).map(|_| {
        let request = client.post(&url).json(&login);
        async move {
            let response = request.send().await.expect("login");
            (response.status().as_u16(), response.headers().contains_key("retry-after"))
        }
    }))
    .await;
    let peak = proc_status_kib(pid, "VmHWM:");
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    let busy = answers.iter().filter(|(s, retry)| *s == 503 && *retry).count();
    assert_eq!(ok + busy, 200, "each login is answered 200, or 503 with Retry-After: {answers:?}");
    assert!(ok >= 2, "as many as may run at once get through: {ok}");
    let grew_mib = peak.saturating_sub(before) / 1024;
    eprintln!(
        "ingress RSS before {} MiB, peak {} MiB; {ok} logged in, {busy} told to retry",
        before / 1024,
        peak / 1024
    );
    assert!(
        grew_mib <= LOGIN_BURST_BOUND_MIB,
        "RSS grew {grew_mib} MiB, above the bound of {LOGIN_BURST_BOUND_MIB} MiB"
    );
    child.kill().await.expect("stop the ingress");
    system.stop().await;
}
