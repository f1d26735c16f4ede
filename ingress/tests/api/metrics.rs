//! What an operator reads on `/metrics`: every process's metrics pass
//! `promtool check metrics` (names, units, types after Prometheus's
//! conventions), the bus monitor shows a stopped service's consumer group
//! falling behind — in messages and in seconds — and catching up once it
//! is back, and every panel of the Grafana dashboards returns series from
//! a real Prometheus scraping a running system.

use std::time::Duration;

use orderflow_harness::shop::{customer, order, place};
use reqwest::Method;

use crate::System;

/// The ingress's `/metrics` (in a test every in-process component shares
/// its registry: the services', the projector's and the audit log's too).
async fn metrics(system: &System) -> String {
    let url = format!("{}/metrics", system.ops());
    system.http.get(url).send().await.expect("metrics").text().await.expect("text")
}

/// The largest value among the samples of `name` whose labels contain
/// every one of `labels` (`key="value"`): over partitions, say.
fn sample(text: &str, name: &str, labels: &[String]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let bare = series.split('{').next()?;
            (bare == name && labels.iter().all(|l| series.contains(l.as_str()))).then(|| value.parse::<f64>().ok())?
        })
        .reduce(f64::max)
}

async fn promtool_check(text: String) -> String {
    let promtool = std::env::var("OF_TEST_PROMTOOL").expect("OF_TEST_PROMTOOL is set by scripts/test");
    let mut child = tokio::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    let mut stdin = child.stdin.take().expect("stdin");
    tokio::io::AsyncWriteExt::write_all(&mut stdin, text.as_bytes()).await.expect("write");
    drop(stdin);
    let out = child.wait_with_output().await.expect("promtool");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool check metrics failed:\n{report}");
    report
}

#[tokio::test]
async fn the_metrics_follow_the_conventions_and_a_stopped_service_shows_its_lag() {
    let mut system = System::start_all().await;
    system.restart_ingress_with(|s| s.monitor.interval_secs = 1).await;
    let (token, _) = customer(&system, "metrics@example.com").await;
    let (status, placed) = place(&system, &token, order(&[(1, 100)])).await;
    assert_eq!((status, placed["status"].as_str()), (201, Some("CONFIRMED")), "{placed}");

    let group = format!("group=\"{}user-service\"", system.kafka.topic_prefix);
    let topic = format!("topic=\"{}\"", system.topic(orderflow_contracts::users::COMMANDS.name));
    // Every figure the monitor reads is there once it looked after the
    // order: a look that began before the projections had applied
    // anything (the first, on a fresh system) can end after the order is
    // confirmed, with the saga's figures but no projection's yet.
    let names = [
        "orderflow_consumer_group_lag_messages",
        "orderflow_consumer_group_lag_seconds",
        "orderflow_consumer_group_position",
        "orderflow_projection_lag_messages",
        "orderflow_projection_lag_seconds",
        "orderflow_projection_position",
        "orderflow_topic_end_offset",
        "orderflow_dlq_messages",
        "orderflow_saga_overdue_orders",
        "orderflow_command_settle_seconds_count",
        "orderflow_outbox_unpublished_rows",
        "orderflow_http_requests_total",
    ];
    let text = orderflow_testkit::until("a look after the order", Duration::from_secs(30), || async {
        let text = metrics(&system).await;
        match sample(&text, "orderflow_saga_orders", &["status=\"CONFIRMED\"".into()]) {
            Some(n) if n >= 1.0 => {}
            other => return Err(format!("orderflow_saga_orders{{status=\"CONFIRMED\"}} = {other:?}")),
        }
        let missing: Vec<&str> = names.iter().copied().filter(|name| sample(&text, name, &[]).is_none()).collect();
        if missing.is_empty() { Ok(text) } else { Err(format!("not on /metrics: {missing:?}")) }
    })
    .await;
    let report = promtool_check(text).await;
    eprintln!("promtool check metrics: {report}");

    // The user service stops; registrations keep coming: its group falls
    // behind, and the oldest waiting command ages.
    system.user.take().expect("the user service").stop().await;
    for n in 0..5 {
        let body = serde_json::json!({"email": format!("queued{n}@example.com"), "password": "correct horse battery",
                                      "first_name": "Q", "last_name": "Ueued"});
        let (status, answer) = system.call(Method::POST, "/api/v1/users", None, Some(body)).await;
        assert_eq!(status, 202, "{answer}");
    }
    let labels = [group.clone(), topic.clone()];
    orderflow_testkit::until("the stopped service's lag shows", Duration::from_secs(60), || async {
        let text = metrics(&system).await;
        let messages = sample(&text, "orderflow_consumer_group_lag_messages", &labels);
        let seconds = sample(&text, "orderflow_consumer_group_lag_seconds", &labels);
        match (messages, seconds) {
            (Some(m), Some(s)) if m >= 1.0 && s >= 2.0 => Ok(()),
            other => Err(format!(
                "(lag messages, lag seconds) = {other:?}; {}",
                text.lines()
                    .filter(|l| l.contains("user-service") || l.contains("monitor_runs"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )),
        }
    })
    .await;

    // Back, it catches up, and the figures say so.
    system.start_user_service().await;
    orderflow_testkit::until("the lag clears", Duration::from_secs(60), || async {
        let text = metrics(&system).await;
        let messages = sample(&text, "orderflow_consumer_group_lag_messages", &labels);
        let seconds = sample(&text, "orderflow_consumer_group_lag_seconds", &labels);
        match (messages, seconds) {
            (Some(m), Some(s)) if m == 0.0 && s == 0.0 => Ok(()),
            other => Err(format!("(lag messages, lag seconds) = {other:?}")),
        }
    })
    .await;
    system.stop().await;
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Every query of every panel of the dashboards the chart ships.
fn panel_queries() -> Vec<(String, String)> {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../helm/orderflow/files/dashboards");
    let mut queries = Vec::new();
    for entry in std::fs::read_dir(root).expect("the dashboards") {
        let path = entry.expect("entry").path();
        let board: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        for panel in board["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().into_iter().flatten() {
                let title =
                    format!("{} / {}", board["title"].as_str().unwrap_or("?"), panel["title"].as_str().unwrap_or("?"));
                queries.push((title, target["expr"].as_str().expect("expr").to_owned()));
            }
        }
    }
    assert!(queries.len() >= 25, "{} queries", queries.len());
    queries
}

#[tokio::test]
async fn every_dashboard_panel_returns_series_from_a_real_prometheus() {
    let mut system = System::start_all().await;
    system.restart_ingress_with(|s| s.monitor.interval_secs = 1).await;
    // A Prometheus scraping the ingress's /metrics (every in-process
    // component's) every second, with the alert rules loaded.
    let dir = std::env::temp_dir().join(format!("orderflow-prometheus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let target = system.ops().trim_start_matches("http://").to_owned();
    let rules = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../helm/orderflow/files/alerts.yml");
    let config = format!(
        "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nrule_files: [\"{}\"]\n\
         scrape_configs:\n  - job_name: orderflow-test\n    static_configs: [{{targets: [\"{target}\"]}}]\n",
        rules.display()
    );
    std::fs::write(dir.join("prometheus.yml"), config).expect("config");
    let port = free_port();
    let prometheus = std::env::var("OF_TEST_PROMETHEUS").expect("OF_TEST_PROMETHEUS is set by scripts/test");
    let _server = tokio::process::Command::new(prometheus)
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start prometheus");
    let api = format!("http://127.0.0.1:{port}/api/v1/query");

    // Traffic while it scrapes: orders confirmed and declined, a refused
    // request, a client error.
    let (token, _) = customer(&system, "dashboards@example.com").await;
    for (quantity, price) in [(1, 100), (1, 2_000_000), (2, 300)] {
        let (status, placed) = place(&system, &token, order(&[(quantity, price)])).await;
        assert_eq!(status, 201, "{placed}");
    }
    let (status, _) = system.call(Method::GET, "/api/v1/orders/not-an-id", Some(&token), None).await;
    assert_eq!(status, 400);

    // Every query parses and returns series.
    let queries = panel_queries();
    let http = &system.http;
    orderflow_testkit::until("every panel's query returns series", Duration::from_secs(60), || async {
        let mut empty = Vec::new();
        for (panel, expr) in &queries {
            let url = reqwest::Url::parse_with_params(&api, &[("query", expr)]).expect("url");
            let answer: serde_json::Value = match http.get(url).send().await {
                Ok(response) => response.json().await.unwrap_or_default(),
                Err(error) => return Err(format!("prometheus: {error}")),
            };
            if answer["status"] != "success" {
                return Err(format!("{panel}: `{expr}` does not run: {answer}"));
            }
            if answer["data"]["result"].as_array().is_none_or(|r| r.is_empty()) {
                empty.push(format!("{panel}: `{expr}`"));
            }
        }
        if empty.is_empty() { Ok(()) } else { Err(format!("{} empty: {}", empty.len(), empty.join("; "))) }
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    system.stop().await;
}
