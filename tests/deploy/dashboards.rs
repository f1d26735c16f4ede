//! The Grafana dashboards (helm/orderflow/files/dashboards): what
//! deploy/grafana/dashboards.py writes, valid against Grafana's dashboard
//! schema (deploy/grafana/dashboard.schema.json, generated from
//! @grafana/schema's dashboard types), and shipped by the chart as
//! ConfigMaps for Grafana's sidecar. That every panel's query returns
//! series from a real Prometheus is checked against a running system in
//! ingress/tests/api/metrics.rs.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::support::{self, Values};

fn committed() -> Vec<PathBuf> {
    let dir = support::root().join("helm/orderflow/files/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the dashboards")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn python() -> String {
    std::env::var("OF_TEST_DEPLOY_PYTHON").expect("OF_TEST_DEPLOY_PYTHON is set by scripts/test")
}

/// Each file's problems against Grafana's dashboard schema.
fn problems(files: &[&Path]) -> Value {
    let schema = support::root().join("deploy/grafana/dashboard.schema.json").display().to_string();
    let mut args = vec!["json-schema".to_owned(), schema];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = support::chart_py(&args);
    assert!(out.status.success(), "{}", support::text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn the_committed_dashboards_are_what_the_code_writes() {
    let dir = support::scratch("dashboards");
    let out = Command::new(python())
        .arg(support::root().join("deploy/grafana/dashboards.py"))
        .arg(dir.path())
        .output()
        .expect("run dashboards.py");
    assert!(out.status.success(), "dashboards.py: {}", support::text(&out.stderr));
    let files = committed();
    let names: Vec<String> =
        files.iter().map(|f| f.file_name().expect("a file name").to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["bus.json", "overview.json", "saga.json"]);
    for (file, name) in files.iter().zip(&names) {
        let written = std::fs::read_to_string(dir.path().join(name)).expect("written");
        let kept = std::fs::read_to_string(file).expect("committed");
        assert!(written == kept, "{name} differs from what deploy/grafana/dashboards.py writes: run it and commit");
    }
}

#[test]
fn every_dashboard_passes_grafanas_schema_and_a_broken_one_does_not() {
    let files = committed();
    let report = problems(&files.iter().map(PathBuf::as_path).collect::<Vec<_>>());
    for file in &files {
        assert_eq!(report[file.display().to_string()], json!([]), "{}: {report:#}", file.display());
    }
    // The check can fail: a panel placed by a string, a panel key misspelt.
    let mut broken: Value = serde_json::from_str(&std::fs::read_to_string(&files[0]).expect("read")).expect("json");
    broken["panels"][1]["gridPos"] = json!("0,0,12,8");
    broken["panels"][2]["datasorce"] = json!("x");
    let dir = support::scratch("broken-dashboard");
    let path = dir.path().join("broken.json");
    std::fs::write(&path, broken.to_string()).expect("write");
    let report = problems(&[&path]);
    let found = report[path.display().to_string()].to_string();
    assert!(found.contains("/panels/1/gridPos") && found.contains("datasorce"), "{found}");
    // And each panel reads the chosen Prometheus, with a query.
    for file in &files {
        let board: Value = serde_json::from_str(&std::fs::read_to_string(file).expect("read")).expect("json");
        for panel in board["panels"].as_array().expect("panels").iter().filter(|p| p["type"] != "row") {
            let title = &panel["title"];
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{}: {title}", file.display());
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty() && targets.iter().all(|t| t["expr"].is_string()), "{title}: a query");
        }
    }
}

#[test]
fn the_chart_ships_each_dashboard_for_grafanas_sidecar() {
    let mut values = vec![Values::Ci("default-values.yaml")];
    values.push(Values::Inline(json!({"grafanaDashboards": {"enabled": true}})));
    let manifests = support::render(&values, None).expect("renders");
    let maps: Vec<&Value> = manifests.iter().filter(|m| m["kind"] == "ConfigMap").collect();
    assert_eq!(maps.len(), committed().len(), "one ConfigMap a dashboard");
    for file in committed() {
        let name = file.file_stem().expect("a file name").to_string_lossy().into_owned();
        let key = format!("orderflow-{name}.json");
        let map =
            maps.iter().find(|m| m["data"].get(&key).is_some()).unwrap_or_else(|| panic!("no ConfigMap has {key}"));
        assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1", "{key}: the sidecar's label");
        let shipped: Value = serde_json::from_str(map["data"][&key].as_str().expect("text")).expect("json");
        let kept: Value = serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("json");
        assert_eq!(shipped, kept, "{key}");
    }
    let without = support::render(&[Values::Ci("default-values.yaml")], None).expect("renders");
    assert!(without.iter().all(|m| m["kind"] != "ConfigMap"), "no dashboards unless asked for");
}
