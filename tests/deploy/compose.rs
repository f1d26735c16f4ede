//! docker-compose.yml: valid for docker-compose, a health-checked service
//! per binary started in order, settings each binary accepts, and a health
//! check that tells ready from not ready.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;

use serde_json::Value;

use crate::support;

fn config(vars: &[(&str, &str)]) -> Value {
    support::compose_config(vars).unwrap_or_else(|e| panic!("docker-compose config refuses docker-compose.yml:\n{e}"))
}

/// The orderflow services (those whose command is a binary of ours, i.e.
/// not redpanda or postgres), by binary.
fn orderflow_services(config: &Value) -> Vec<(String, String, Value)> {
    config["services"]
        .as_object()
        .expect("services")
        .iter()
        .filter(|(_, s)| s["image"].as_str().is_some_and(|i| i.starts_with("orderflow:")))
        .map(|(name, s)| {
            let binary = s["command"][0].as_str().unwrap_or_else(|| panic!("{name}: no command"));
            (name.clone(), binary.rsplit('/').next().expect("name").to_owned(), s.clone())
        })
        .collect()
}

fn environment(service: &Value) -> Vec<(String, String)> {
    service["environment"]
        .as_object()
        .map(|env| {
            env.iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        Value::Null => support::dummy_secret(k),
                        other => other.to_string(),
                    };
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn docker_compose_accepts_the_file() {
    let config = config(&[]);
    for infra in ["redpanda", "postgres"] {
        assert!(config["services"][infra].is_object(), "no {infra} service");
        assert!(config["services"][infra]["healthcheck"]["test"].is_array(), "{infra}: no healthcheck");
    }
    let ingress = &config["services"]["ingress"];
    assert!(
        ingress["ports"].as_array().is_some_and(|p| p.iter().any(|p| p.to_string().contains("8080:8080"))),
        "the API is not published on 8080: {}",
        ingress["ports"]
    );
    let ops = support::ops_port(&environment(ingress)).expect("the ingress's ops port");
    assert_ne!(Some(ops), support::http_port(&environment(ingress)), "health and metrics on their own listener");
    assert!(
        ingress["ports"].as_array().is_some_and(|p| p.iter().all(|p| !p.to_string().contains(&ops.to_string()))),
        "the ops port {ops} must not be published: {}",
        ingress["ports"]
    );
}

#[test]
fn every_workspace_binary_has_a_health_checked_service() {
    let config = config(&[]);
    let services = orderflow_services(&config);
    for binary in support::workspace_binaries() {
        let (name, _, service) = services
            .iter()
            .find(|(_, b, _)| *b == binary)
            .unwrap_or_else(|| panic!("no service in docker-compose.yml runs `{binary}`"));
        let port =
            support::ops_port(&environment(service)).unwrap_or_else(|| panic!("{name}: no ORDERFLOW_HTTP__ADDR"));
        let test = service["healthcheck"]["test"].to_string();
        assert!(
            test.contains(&format!("/dev/tcp/127.0.0.1/{port}")) && test.contains("/health/ready"),
            "{name}: the healthcheck does not ask its own port {port} for /health/ready: {test}"
        );
        let depends = service["depends_on"].as_object().unwrap_or_else(|| panic!("{name}: no depends_on"));
        assert!(!depends.is_empty(), "{name}: depends on nothing");
        for (on, how) in depends {
            assert_eq!(how["condition"], "service_healthy", "{name} waits for {on} only to start");
        }
        assert_eq!(service["read_only"], true, "{name}: read_only");
    }
    assert!(
        services.iter().any(|(name, _, s)| name == "ingress" && s["depends_on"]["projector"].is_object()),
        "the ingress must wait for the projector (it creates the views the ingress's readiness needs)"
    );
}

#[test]
fn every_compose_service_runs_a_binary_of_the_workspace() {
    // Fails until services/order, services/payment and services/audit-log
    // are merged: the compose file runs them already (branch `deploy`).
    let binaries: BTreeSet<String> = support::workspace_binaries().into_iter().collect();
    let strays: Vec<String> =
        orderflow_services(&config(&[])).into_iter().map(|(_, b, _)| b).filter(|b| !binaries.contains(b)).collect();
    assert!(strays.is_empty(), "compose services for binaries the workspace does not have: {strays:?}");
}

#[test]
fn each_services_environment_passes_its_binarys_check_config() {
    let bins = support::built_binaries();
    let binaries: BTreeSet<String> = support::workspace_binaries().into_iter().collect();
    let production = [
        ("OF_ENVIRONMENT", "production"),
        ("OF_JWT_SECRET", "a-long-production-signing-key-0123456789abcdef"),
        ("OF_KEYS_TOKEN", "a-long-production-key-service-token-0123456789"),
        ("OF_KEYS_KEKS", r#"["k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="]"#),
    ];
    let mut checked = 0;
    for (variant, vars) in [("development", &[][..]), ("production", &production[..])] {
        for (name, binary, service) in orderflow_services(&config(vars)) {
            if !binaries.contains(&binary) {
                eprintln!("{variant}: no binary `{binary}` in the workspace yet; not checked");
                continue;
            }
            let env = environment(&service);
            let said = support::check_config(&bins, &binary, &env)
                .unwrap_or_else(|e| panic!("compose service {name} ({variant}):\n{e}\nenvironment: {env:#?}"));
            assert_eq!(said.trim(), format!("{binary}: configuration is valid"));
            checked += 1;
        }
    }
    assert!(checked >= 2 * binaries.len(), "checked only {checked} services");
    // Production without a key of one's own: the public one is refused.
    let config = config(&[("OF_ENVIRONMENT", "production")]);
    let error = support::check_config(&bins, "ingress", &environment(&config["services"]["ingress"]))
        .expect_err("production must refuse the development JWT key");
    assert!(error.contains("jwt.secret"), "{error}");
    // And the public key-encryption key and key-service token.
    let without_token = self::config(&production[..2]);
    let env = environment(&without_token["services"]["user-service"]);
    let error = support::check_config(&bins, "user-service", &env)
        .expect_err("production must refuse the development key-service token");
    assert!(error.contains("keys.token"), "{error}");
    let without_kek = self::config(&production[..3]);
    let env = environment(&without_kek["services"]["user-service"]);
    let error = support::check_config(&bins, "user-service", &env)
        .expect_err("production must refuse the development key-encryption key");
    assert!(error.contains("keys.keks"), "{error}");
}

/// A one-shot HTTP server answering every request with `status`.
fn stub(status: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(1) {
            let mut stream = stream.expect("accept");
            let mut buf = [0u8; 1024];
            let n = stream.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            let status = if request.starts_with("GET /health/ready ") { status } else { "404 Not Found" };
            let _ = write!(stream, "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    port
}

#[test]
fn the_healthcheck_passes_on_ready_and_fails_otherwise() {
    let config = config(&[]);
    let service = &config["services"]["ingress"];
    let test: Vec<String> = serde_json::from_value(service["healthcheck"]["test"].clone()).expect("test list");
    assert_eq!(&test[..3], ["CMD", "bash", "-c"], "an exec-form bash check: {test:?}");
    // docker-compose config keeps `$$` (compose's escape); the container sees `$`.
    let script = test[3].replace("$$", "$");
    let port = support::ops_port(&environment(service)).expect("port");
    let probe = |target: u16| {
        let script = script.replace(&format!("/dev/tcp/127.0.0.1/{port}"), &format!("/dev/tcp/127.0.0.1/{target}"));
        support::run(Command::new("bash").args(["-c", &script])).status.success()
    };
    assert!(probe(stub("200 OK")), "a ready process must pass: {script}");
    assert!(!probe(stub("503 Service Unavailable")), "a process that is not ready must fail");
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    assert!(!probe(closed), "nothing listening must fail");
}

/// The port a compose service serves `/metrics` on: its ops listener if it
/// has one, else its one port.
fn metrics_port(service: &Value) -> String {
    let env = environment(service);
    let addr = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let addr = addr("ORDERFLOW_OPS__ADDR").or_else(|| addr("ORDERFLOW_HTTP__ADDR")).expect("an address");
    addr.rsplit(':').next().expect("a port").to_owned()
}

#[test]
fn prometheus_scrapes_every_orderflow_service_and_loads_the_rules() {
    let config = config(&[]);
    let scrape =
        std::fs::read_to_string(support::root().join("deploy/compose/prometheus.yml")).expect("prometheus.yml");
    for (name, _, service) in orderflow_services(&config) {
        if service["profiles"].is_array() {
            continue; // an optional profile's (the development registry)
        }
        let target = format!("\"{name}:{}\"", metrics_port(&service));
        assert!(scrape.contains(&target), "deploy/compose/prometheus.yml does not scrape {target}");
    }
    let mounts = config["services"]["prometheus"]["volumes"].to_string();
    assert!(mounts.contains("helm/orderflow/files/alerts.yml"), "the rules are mounted: {mounts}");
    let mounts = config["services"]["grafana"]["volumes"].to_string();
    assert!(mounts.contains("helm/orderflow/files/dashboards"), "the dashboards are mounted: {mounts}");
    // promtool loads it (with the rules where the container has them).
    let dir = support::scratch("compose-prometheus");
    let rules = support::root().join("helm/orderflow/files/alerts.yml");
    std::fs::write(
        dir.path().join("prometheus.yml"),
        scrape.replace("/etc/prometheus/alerts.yml", &rules.display().to_string()),
    )
    .expect("write");
    let promtool = std::env::var("OF_TEST_PROMTOOL").expect("OF_TEST_PROMTOOL is set by scripts/test");
    let out = std::process::Command::new(promtool)
        .args(["check", "config"])
        .arg(dir.path().join("prometheus.yml"))
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "promtool check config: {}{}",
        support::text(&out.stdout),
        support::text(&out.stderr)
    );
}
