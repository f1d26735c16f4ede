//! helm/orderflow: lints, renders to valid Kubernetes objects, passes
//! checkov, deploys every binary locked down and probed, gives each one
//! settings it accepts, and refuses wrong values by name.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{self, Values};

/// Checks checkov reports as failed that the chart fails on purpose; each
/// is justified in docs/deploy.md ("Security checks").
const SKIPPED_CHECKS: &[&str] = &[
    // Image pull policy Always: tags are immutable releases; production pins a digest.
    "CKV_K8S_15",
    // Secrets as files: every setting is an ORDERFLOW_* variable, secrets come by secretKeyRef.
    "CKV_K8S_35",
    // Image by digest: supported (image.digest) and used in production; a plain install uses the tag.
    "CKV_K8S_43",
];

fn default_values() -> Vec<Values<'static>> {
    vec![Values::Ci("default-values.yaml")]
}

fn production_values() -> Vec<Values<'static>> {
    vec![Values::Ci("default-values.yaml"), Values::Ci("production-values.yaml")]
}

/// Defaults plus the development registry, so every binary is deployed.
fn all_enabled_values() -> Vec<Values<'static>> {
    vec![
        Values::Ci("default-values.yaml"),
        Values::Inline(json!({"registry": {"url": ""}, "services": {"schema-registry": {"enabled": true}}})),
    ]
}

fn variants() -> Vec<(&'static str, Vec<Values<'static>>)> {
    vec![("default", default_values()), ("production", production_values()), ("dev-registry", all_enabled_values())]
}

fn rendered(values: &[Values<'_>]) -> Vec<Value> {
    support::render(values, None).unwrap_or_else(|e| panic!("the chart does not render: {e}"))
}

#[test]
fn helm_lint_passes_with_default_and_production_values() {
    for (name, values) in variants() {
        let report = support::lint(&values);
        let problems: Vec<&Value> = report["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter(|m| m["severity"].as_i64().unwrap_or(3) >= 2)
            .collect();
        assert!(
            problems.is_empty() && report["errors"].as_array().is_none_or(|e| e.is_empty()),
            "helm lint --strict ({name} values): {report:#}"
        );
    }
}

#[test]
fn every_manifest_is_valid_for_a_current_kubernetes() {
    for (name, values) in variants() {
        let dir = support::scratch(name);
        support::render(&values, Some(dir.path())).unwrap_or_else(|e| panic!("{name}: {e}"));
        let out = support::chart_py(&["validate", &dir.path().display().to_string(), "latest"]);
        assert!(out.status.success(), "kubernetes-validate: {}", support::text(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout).expect("validate output");
        assert_eq!(report["invalid"], json!([]), "{name} values, Kubernetes {}: {report:#}", report["kube_version"]);
        assert!(report["checked"].as_u64().unwrap_or(0) >= 10, "{name}: too few manifests checked: {report}");
        // Only the Prometheus operator's custom resources have no schema there.
        let operators = ["monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PrometheusRule"];
        for skipped in report["skipped"].as_array().expect("skipped") {
            assert!(operators.iter().any(|o| skipped == o), "{name}: no schema for {skipped}");
        }
    }
}

#[test]
fn checkov_finds_nothing_the_deploy_doc_does_not_justify() {
    let doc = std::fs::read_to_string(support::root().join("docs/deploy.md")).expect("docs/deploy.md");
    for id in SKIPPED_CHECKS {
        assert!(doc.contains(id), "{id} is skipped but docs/deploy.md does not justify it");
    }
    let checkov = support::tool("OF_TEST_CHECKOV");
    let mut failing_on_purpose = BTreeSet::new();
    for (name, values) in variants() {
        let dir = support::scratch(name);
        support::render(&values, Some(dir.path())).unwrap_or_else(|e| panic!("{name}: {e}"));
        // --skip-download and the two variables keep checkov offline
        // (no platform mappings, no update check).
        let out = support::run(
            Command::new(&checkov)
                .args(["--framework", "kubernetes", "--quiet", "--compact", "--skip-download", "-o", "json", "-d"])
                .arg(dir.path())
                .env("BC_SKIP_MAPPING", "TRUE")
                .env("CKV_SKIP_PACKAGE_UPDATE_CHECK", "TRUE"),
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("checkov output ({e}): {}{}", support::text(&out.stdout), support::text(&out.stderr))
        });
        assert!(report["summary"]["passed"].as_u64().unwrap_or(0) > 100, "{name}: checkov checked little: {report:#}");
        assert_eq!(report["summary"]["parsing_errors"], 0, "{name}: {report:#}");
        let failed = report["results"]["failed_checks"].as_array().cloned().unwrap_or_default();
        let unjustified: Vec<String> = failed
            .iter()
            .filter(|f| !SKIPPED_CHECKS.contains(&f["check_id"].as_str().unwrap_or("")))
            .map(|f| format!("{} {} on {}", f["check_id"], f["check_name"], f["resource"]))
            .collect();
        assert!(unjustified.is_empty(), "checkov ({name} values):\n{}", unjustified.join("\n"));
        failing_on_purpose.extend(failed.iter().filter_map(|f| f["check_id"].as_str().map(str::to_owned)));
    }
    for id in SKIPPED_CHECKS {
        assert!(failing_on_purpose.contains(*id), "{id} no longer fails: drop it from the skip list and the doc");
    }
}

#[test]
fn every_workspace_binary_has_a_locked_down_probed_deployment() {
    let manifests = rendered(&all_enabled_values());
    let deployments = support::deployments(&manifests);
    for binary in support::workspace_binaries() {
        let deployment = deployments.get(&binary).unwrap_or_else(|| panic!("no Deployment runs `{binary}`"));
        let pod = &deployment["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        let env = support::deployment_env(deployment);
        let port = support::http_port(&env).unwrap_or_else(|| panic!("{binary}: no ORDERFLOW_HTTP__ADDR"));
        let named = |name: &str| {
            container["ports"].as_array().and_then(|ports| ports.iter().find(|p| p["name"] == name)).cloned()
        };
        assert_eq!(
            named("http").map(|p| p["containerPort"].clone()),
            Some(json!(port)),
            "{binary}: port `http` is not its listener"
        );
        // Health on the ops listener where the binary has one (the ingress: its `http` is the public API).
        let ops = support::ops_port(&env).expect("a health port");
        let probed = if ops == port { "http" } else { "ops" };
        assert_eq!(
            named(probed).map(|p| p["containerPort"].clone()),
            Some(json!(ops)),
            "{binary}: port `{probed}` is not its ops listener"
        );
        if binary == "ingress" {
            assert_eq!(probed, "ops", "the ingress's health must not be on its public port");
        }
        for (probe, path) in
            [("startupProbe", "/health/live"), ("livenessProbe", "/health/live"), ("readinessProbe", "/health/ready")]
        {
            assert_eq!(container[probe]["httpGet"]["path"], path, "{binary}: {probe}");
            assert_eq!(container[probe]["httpGet"]["port"], probed, "{binary}: {probe}");
        }
        for kind in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(container["resources"][kind][resource].is_string(), "{binary}: no {kind}.{resource}");
            }
        }
        let (spc, csc) = (&pod["securityContext"], &container["securityContext"]);
        assert_eq!(spc["runAsNonRoot"], true, "{binary}: pod runAsNonRoot");
        assert_eq!(spc["seccompProfile"]["type"], "RuntimeDefault", "{binary}: pod seccomp");
        assert_eq!(csc["runAsNonRoot"], true, "{binary}: runAsNonRoot");
        assert!(csc["runAsUser"].as_u64().is_some_and(|u| u > 0), "{binary}: runAsUser");
        assert_eq!(csc["readOnlyRootFilesystem"], true, "{binary}: readOnlyRootFilesystem");
        assert_eq!(csc["allowPrivilegeEscalation"], false, "{binary}: allowPrivilegeEscalation");
        assert_eq!(csc["capabilities"]["drop"], json!(["ALL"]), "{binary}: capabilities");
        assert_eq!(csc["seccompProfile"]["type"], "RuntimeDefault", "{binary}: seccomp");
        assert_eq!(pod["automountServiceAccountToken"], false, "{binary}: service account token");

        let labels = &deployment["spec"]["selector"]["matchLabels"];
        let selects = |kind: &str, pointer: &str| {
            manifests.iter().any(|m| m["kind"] == kind && m.pointer(pointer) == Some(labels))
        };
        assert!(selects("Service", "/spec/selector"), "{binary}: no Service");
        assert!(selects("NetworkPolicy", "/spec/podSelector/matchLabels"), "{binary}: no NetworkPolicy");
    }
}

#[test]
fn every_deployment_runs_a_binary_of_the_workspace() {
    // Fails until services/order, services/payment and services/audit-log
    // are merged: the chart deploys them already (branch `deploy`).
    let binaries: BTreeSet<String> = support::workspace_binaries().into_iter().collect();
    let manifests = rendered(&all_enabled_values());
    let strays: Vec<String> = support::deployments(&manifests).into_keys().filter(|b| !binaries.contains(b)).collect();
    assert!(strays.is_empty(), "Deployments for binaries the workspace does not have: {strays:?}");
}

#[test]
fn the_ingress_has_a_disruption_budget_and_an_autoscaler() {
    let manifests = rendered(&production_values());
    let ingress = &support::deployments(&manifests)["ingress"];
    let name = &ingress["metadata"]["name"];
    let labels = &ingress["spec"]["selector"]["matchLabels"];
    let pdb = manifests.iter().find(|m| m["kind"] == "PodDisruptionBudget").expect("a PodDisruptionBudget");
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], labels);
    let hpa = manifests.iter().find(|m| m["kind"] == "HorizontalPodAutoscaler").expect("an HPA");
    assert_eq!(&hpa["spec"]["scaleTargetRef"]["name"], name);
    assert!(ingress["spec"]["replicas"].is_null(), "with an HPA the Deployment must not set replicas");
    let monitors: Vec<&Value> = manifests.iter().filter(|m| m["kind"] == "ServiceMonitor").collect();
    assert!(!monitors.is_empty(), "production enables the ServiceMonitor");
    // The ingress is scraped on its ops port, never its public API port.
    let service = manifests
        .iter()
        .find(|m| m["kind"] == "Service" && &m["spec"]["selector"] == labels)
        .expect("the ingress's Service");
    let ports: Vec<&str> =
        service["spec"]["ports"].as_array().expect("ports").iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(ports, ["http", "ops"], "{service}");
    let scrapes = |monitor: &Value, port: &str| {
        let selector = &monitor["spec"]["selector"];
        let excluded = selector["matchExpressions"].as_array().is_some_and(|e| {
            e.iter().any(|x| {
                let listed = x["values"].as_array().is_some_and(|v| v.contains(&json!("ingress")));
                (x["operator"] == "NotIn" && listed) || (x["operator"] == "In" && !listed)
            })
        });
        !excluded && monitor["spec"]["endpoints"].as_array().is_some_and(|e| e.iter().any(|e| e["port"] == port))
    };
    assert!(monitors.iter().any(|m| scrapes(m, "ops")), "no ServiceMonitor scrapes the ingress's ops port");
    assert!(!monitors.iter().any(|m| scrapes(m, "http")), "a ServiceMonitor scrapes the ingress's API port");
}

#[test]
fn each_deployments_environment_passes_its_binarys_check_config() {
    let bins = support::built_binaries();
    let binaries: BTreeSet<String> = support::workspace_binaries().into_iter().collect();
    let mut checked = 0;
    for (name, values) in variants() {
        for (binary, deployment) in support::deployments(&rendered(&values)) {
            if !binaries.contains(&binary) {
                // every_deployment_runs_a_binary_of_the_workspace reports it.
                eprintln!("{name}: no binary `{binary}` in the workspace yet; not checked");
                continue;
            }
            let env = support::deployment_env(&deployment);
            let said = support::check_config(&bins, &binary, &env)
                .unwrap_or_else(|e| panic!("{name} values, Deployment of {binary}:\n{e}\nenvironment: {env:#?}"));
            assert_eq!(said.trim(), format!("{binary}: configuration is valid"));
            checked += 1;
        }
    }
    assert!(checked >= binaries.len(), "checked only {checked} Deployments");
}

#[test]
fn check_config_names_a_bad_setting() {
    // The check the other tests rely on can fail: an unknown setting and a
    // missing JWT secret (production) are refused by name.
    let bins = support::built_binaries();
    let manifests = rendered(&default_values());
    let deployments = support::deployments(&manifests);
    for binary in support::workspace_binaries() {
        let Some(deployment) = deployments.get(&binary) else { continue };
        let mut env = support::deployment_env(deployment);
        env.push(("ORDERFLOW_KAFKA__BROKER".into(), "typo:9092".into()));
        let error = support::check_config(&bins, &binary, &env).expect_err("a misspelt setting must fail");
        assert!(error.contains("broker"), "{binary}: {error}");
    }
    let mut env = support::deployment_env(&deployments["ingress"]);
    env.retain(|(k, _)| k != "ORDERFLOW_JWT__SECRET");
    let error = support::check_config(&bins, "ingress", &env).expect_err("production without a JWT secret");
    assert!(error.contains("jwt.secret"), "{error}");
}

fn refused(values: Value) -> String {
    let mut all = default_values();
    all.push(Values::Inline(values.clone()));
    match support::render(&all, None) {
        Ok(_) => panic!("the chart rendered with {values}"),
        Err(error) => error,
    }
}

#[test]
fn wrong_values_fail_rendering_naming_them() {
    let error = refused(json!({"services": {"ingress": {"replicaCount": "three"}}}));
    assert!(error.contains("services/ingress/replicaCount") || error.contains("replicaCount"), "{error}");
    let error = refused(json!({"kafka": {"bootstrapServers": ""}}));
    assert!(error.contains("bootstrapServers"), "{error}");
    let error = refused(json!({"kafak": {"bootstrapServers": "k:9092"}}));
    assert!(error.contains("kafak"), "a misspelt value: {error}");
    let error = refused(json!({"services": {"user-service": {"database": {"url": ""}}}}));
    assert!(error.contains("services.user-service.database.url"), "{error}");
    let error = refused(json!({"registry": {"url": ""}}));
    assert!(error.contains("registry.url"), "{error}");
    let error = refused(json!({"services": {"projector": {"env": {"KAFKA_BROKERS": "x"}}}}));
    assert!(error.contains("KAFKA_BROKERS"), "env that is not an ORDERFLOW_ setting: {error}");
    let error = refused(json!({"services": {"projector": {"env": {"ORDERFLOW_KAFKA__BROKERS": "x:9092"}}}}));
    assert!(error.contains("services.projector.env.ORDERFLOW_KAFKA__BROKERS"), "a setting the chart owns: {error}");
}

#[test]
fn the_bare_chart_asks_for_kafka_and_the_jwt_secret() {
    // No values at all: the install stops naming what it needs.
    let error = support::render(&[], None).expect_err("the chart's defaults alone must not install");
    assert!(error.contains("bootstrapServers"), "{error}");
    assert!(error.contains("jwt"), "{error}");
}

/// Whether a Kubernetes label selector (`matchLabels`, `matchExpressions`)
/// selects an object with these labels; `{}` selects everything.
fn selects(selector: &Value, labels: &Value) -> bool {
    let label = |key: &str| labels.get(key).and_then(Value::as_str);
    let mut match_labels = selector["matchLabels"].as_object().into_iter().flatten();
    let mut expressions = selector["matchExpressions"].as_array().into_iter().flatten();
    match_labels.all(|(k, v)| label(k) == v.as_str())
        && expressions.all(|e| {
            let value = label(e["key"].as_str().expect("matchExpressions key"));
            let listed = |v: &str| e["values"].as_array().is_some_and(|vs| vs.iter().any(|x| x == v));
            match e["operator"].as_str() {
                Some("In") => value.is_some_and(listed),
                Some("NotIn") => !value.is_some_and(listed),
                Some("Exists") => value.is_some(),
                Some("DoesNotExist") => value.is_none(),
                other => panic!("unknown selector operator {other:?}"),
            }
        })
}

#[test]
fn only_the_processes_that_use_it_may_reach_the_development_registry() {
    // Its one port is its whole API, writes included (PUT /config, DELETE
    // /subjects/...), and it has no authentication: whatever the policy
    // values say, only this release's processes that use it get in.
    let open_peers = json!({
        "serviceMonitor": {"enabled": true},
        "networkPolicy": {
            "apiFrom": [{"ipBlock": {"cidr": "0.0.0.0/0"}}],
            "opsFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        },
    });
    let cases = [
        ("defaults", json!({})),
        ("apiFrom, opsFrom and a ServiceMonitor", open_peers),
        ("networkPolicy.enabled false", json!({"networkPolicy": {"enabled": false}})),
    ];
    for (case, extra) in cases {
        let mut values = all_enabled_values();
        values.push(Values::Inline(extra));
        let manifests = rendered(&values);
        let deployments = support::deployments(&manifests);
        let registry = deployments.get("schema-registry").expect("the development registry's Deployment");
        let pod_labels = |d: &Value| d["spec"]["template"]["metadata"]["labels"].clone();
        let labels = pod_labels(registry);
        let port = support::http_port(&support::deployment_env(registry)).expect("the registry's port");
        let service = manifests
            .iter()
            .find(|m| m["kind"] == "Service" && selects(&json!({"matchLabels": m["spec"]["selector"]}), &labels))
            .expect("the registry's Service");
        let url = format!("http://{}:{port}", service["metadata"]["name"].as_str().expect("Service name"));
        let users: BTreeSet<String> = deployments
            .iter()
            .filter(|(_, d)| {
                support::deployment_env(d).iter().any(|(k, v)| k == "ORDERFLOW_REGISTRY__URL" && *v == url)
            })
            .map(|(binary, _)| binary.clone())
            .collect();
        assert!(users.contains("ingress") && users.len() >= 6, "{case}: processes using {url}: {users:?}");

        let policies: Vec<&Value> = manifests
            .iter()
            .filter(|m| m["kind"] == "NetworkPolicy" && selects(&m["spec"]["podSelector"], &labels))
            .collect();
        assert!(!policies.is_empty(), "{case}: no NetworkPolicy isolates the development registry");
        let mut admitted = BTreeSet::new();
        for policy in policies {
            let name = &policy["metadata"]["name"];
            let types = &policy["spec"]["policyTypes"];
            assert!(types.as_array().is_some_and(|t| t.contains(&json!("Ingress"))), "{case}: {name}: {types}");
            for rule in policy["spec"]["ingress"].as_array().into_iter().flatten() {
                // No `ports` means every port, no `from` everyone.
                let ports = rule["ports"].as_array().filter(|p| !p.is_empty());
                let ports = ports.unwrap_or_else(|| panic!("{case}: {name}: a rule for every port: {rule}"));
                for p in ports {
                    assert!(p["port"] == "http" || p["port"] == port, "{case}: {name}: port {p}");
                }
                let peers = rule["from"].as_array().filter(|p| !p.is_empty());
                let peers = peers.unwrap_or_else(|| panic!("{case}: {name}: a rule admitting anyone: {rule}"));
                for peer in peers {
                    // A podSelector alone: pods of the release's namespace,
                    // never other namespaces or addresses.
                    assert!(
                        peer["ipBlock"].is_null()
                            && peer["namespaceSelector"].is_null()
                            && peer["podSelector"].is_object(),
                        "{case}: {name}: admits more than pods of its namespace: {peer}"
                    );
                    let binaries = deployments.iter().filter(|(_, d)| selects(&peer["podSelector"], &pod_labels(d)));
                    admitted.extend(binaries.map(|(binary, _)| binary.clone()));
                }
            }
        }
        assert_eq!(
            admitted, users,
            "{case}: the development registry admits other pods than the processes that use it"
        );

        // Its metrics share the port: no ServiceMonitor may expect to scrape it.
        for monitor in manifests.iter().filter(|m| m["kind"] == "ServiceMonitor") {
            let monitor_name = &monitor["metadata"]["name"];
            assert!(
                !selects(&monitor["spec"]["selector"], &service["metadata"]["labels"]),
                "{case}: ServiceMonitor {monitor_name} scrapes the development registry, whose policy refuses it"
            );
        }
    }
}
