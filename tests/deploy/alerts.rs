//! helm/orderflow/files/alerts.yml: the rules load (`promtool check
//! rules`), each alert fires on the series it is for and not on others
//! (`promtool test rules` with alerts.test.yml), each has a summary, a
//! description and a runbook section that exists in docs/operations.md,
//! and the chart ships the same groups as a PrometheusRule.

use std::process::Command;

use serde_json::{Value, json};

use crate::support::{self, Values};

fn promtool(args: &[&str]) -> String {
    let promtool = std::env::var("OF_TEST_PROMTOOL").expect("OF_TEST_PROMTOOL is set by scripts/test");
    let out = Command::new(promtool)
        .args(args)
        .current_dir(support::root().join("helm/orderflow/files"))
        .output()
        .expect("run promtool");
    let report = format!("{}{}", support::text(&out.stdout), support::text(&out.stderr));
    assert!(out.status.success(), "promtool {}:\n{report}", args.join(" "));
    report
}

/// The rule groups of alerts.yml, as JSON.
fn groups() -> Value {
    let out =
        support::chart_py(&["yaml", &support::root().join("helm/orderflow/files/alerts.yml").display().to_string()]);
    assert!(out.status.success(), "{}", support::text(&out.stderr));
    serde_json::from_slice::<Value>(&out.stdout).expect("json")["groups"].clone()
}

#[test]
fn the_alert_rules_load_and_their_unit_tests_pass() {
    let report = promtool(&["check", "rules", "alerts.yml"]);
    assert!(report.contains("SUCCESS"), "{report}");
    let report = promtool(&["test", "rules", "alerts.test.yml"]);
    assert!(report.contains("SUCCESS"), "{report}");
}

#[test]
fn every_alert_is_tested_explained_and_has_a_runbook() {
    let operations = std::fs::read_to_string(support::root().join("docs/operations.md")).expect("docs/operations.md");
    // GitHub's anchors: the heading in lower case.
    let anchors: Vec<String> = operations
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(|h| h.trim().to_lowercase().replace(' ', "-"))
        .collect();
    let tests = std::fs::read_to_string(support::root().join("helm/orderflow/files/alerts.test.yml")).expect("tests");
    let groups = groups();
    let alerts: Vec<&Value> =
        groups.as_array().expect("groups").iter().flat_map(|g| g["rules"].as_array().expect("rules")).collect();
    assert!(alerts.len() >= 10, "{} alerts", alerts.len());
    for rule in alerts {
        let name = rule["alert"].as_str().expect("an alert");
        for annotation in ["summary", "description", "runbook_url"] {
            assert!(rule["annotations"][annotation].as_str().is_some_and(|a| !a.is_empty()), "{name}: no {annotation}");
        }
        assert!(
            ["warning", "critical"].contains(&rule["labels"]["severity"].as_str().unwrap_or("")),
            "{name}: severity"
        );
        let runbook = rule["annotations"]["runbook_url"].as_str().expect("runbook");
        let anchor = runbook.strip_prefix("docs/operations.md#").unwrap_or_else(|| panic!("{name}: {runbook}"));
        assert!(anchors.iter().any(|a| a == anchor), "{name}: docs/operations.md has no section `### {name}`");
        assert!(tests.contains(&format!("alertname: {name}")), "{name} has no unit test in alerts.test.yml");
    }
}

#[test]
fn the_chart_ships_the_rules_with_its_service_monitors() {
    let mut values = vec![Values::Ci("default-values.yaml")];
    values.push(Values::Inline(json!({"serviceMonitor": {"enabled": true, "labels": {"release": "kube-prometheus"}}})));
    let manifests = support::render(&values, None).expect("renders");
    let rule = manifests.iter().find(|m| m["kind"] == "PrometheusRule").expect("a PrometheusRule");
    assert_eq!(rule["spec"]["groups"], groups(), "the same groups as files/alerts.yml");
    assert_eq!(rule["metadata"]["labels"]["release"], "kube-prometheus", "labelled for the operator's selector");
    let without = support::render(&[Values::Ci("default-values.yaml")], None).expect("renders");
    assert!(without.iter().all(|m| m["kind"] != "PrometheusRule"), "no PrometheusRule without the switch");
}
