//! What the deploy checks share: the tools (from `OF_TEST_*`, installed by
//! scripts/test), the workspace's binaries (from `cargo metadata`), the
//! rendered chart and compose file as JSON, and running a binary's
//! `--check-config` on an environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

/// Binaries of the workspace that are not deployed processes.
pub const NOT_DEPLOYED: &[&str] = &[
    // tools/loadgen: the benchmark's load generator (scripts/bench).
    "loadgen",
    // tools/cli: the operator's command line, run from an operator's machine.
    "orderflow",
];

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

pub fn chart_dir() -> PathBuf {
    root().join("helm/orderflow")
}

/// A tool scripts/test installed and exported as `OF_TEST_<NAME>`.
pub fn tool(var: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(path) if Path::new(&path).exists() => PathBuf::from(path),
        Some(path) => panic!("{var}={} does not exist; scripts/test installs it", Path::new(&path).display()),
        None => panic!("{var} is not set: run the deploy checks through scripts/test, which installs and exports it"),
    }
}

pub fn run(command: &mut Command) -> Output {
    command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh scratch directory, removed when dropped.
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn scratch(name: &str) -> Scratch {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "orderflow-deploy-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    Scratch(dir)
}

fn metadata() -> Value {
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let out = run(Command::new(cargo).args(["metadata", "--no-deps", "--format-version", "1"]).current_dir(root()));
    assert!(out.status.success(), "cargo metadata failed: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("cargo metadata JSON")
}

/// The binaries of the workspace's members that are deployed: every `bin`
/// target but [`NOT_DEPLOYED`].
pub fn workspace_binaries() -> Vec<String> {
    let meta = metadata();
    let mut bins: Vec<String> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .flat_map(|p| p["targets"].as_array().expect("targets").iter())
        .filter(|t| t["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bin")))
        .map(|t| t["name"].as_str().expect("target name").to_owned())
        .filter(|name| !NOT_DEPLOYED.contains(&name.as_str()))
        .collect();
    bins.sort();
    bins.dedup();
    bins
}

/// The package that has the binary `binary`.
pub fn package_of(binary: &str) -> String {
    let meta = metadata();
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["targets"].as_array().is_some_and(|t| t.iter().any(|t| t["name"] == binary)))
        .and_then(|p| p["name"].as_str())
        .unwrap_or_else(|| panic!("no package has a binary `{binary}`"))
        .to_owned()
}

/// Makes sure the workspace's binaries are built and fresh; returns each
/// one's path.
///
/// First exactly the build `cargo nextest run --workspace` makes (`cargo
/// test --no-run`: the same targets, so the same features), a no-op under
/// scripts/test. A plain `cargo build --bins` would resolve features
/// without the dev-dependencies and relink `target/debug/user-service`
/// without its `failpoints`, under the crash tests that run that very file.
/// `cargo test` builds a package's binaries only for its integration tests,
/// so those of a package without any are then built alone: nobody else runs
/// them.
pub fn built_binaries() -> BTreeMap<String, PathBuf> {
    let mut built = cargo_bins(&["test", "--workspace", "--no-run"]);
    let missing: Vec<String> = workspace_binaries().into_iter().filter(|b| !built.contains_key(b)).collect();
    if !missing.is_empty() {
        let mut args = vec!["build"];
        for binary in &missing {
            args.extend(["--bin", binary.as_str()]);
        }
        built.extend(cargo_bins(&args));
    }
    for binary in workspace_binaries() {
        assert!(built.get(&binary).is_some_and(|p| p.is_file()), "cargo built no `{binary}`");
    }
    built
}

/// Runs cargo with `args` and returns the binaries (not test harnesses) it
/// built or found fresh.
fn cargo_bins(args: &[&str]) -> BTreeMap<String, PathBuf> {
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let out = run(Command::new(cargo)
        .args(args)
        .args(["--quiet", "--message-format=json-render-diagnostics"])
        .current_dir(root()));
    assert!(out.status.success(), "cargo {args:?} failed:\n{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["profile"]["test"] == false)
        .filter(|m| m["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bin")))
        .filter_map(|m| Some((m["target"]["name"].as_str()?.to_owned(), PathBuf::from(m["executable"].as_str()?))))
        .collect()
}

/// Runs `python chart.py ARGS...` with the deploy tools' Python.
pub fn chart_py(args: &[&str]) -> Output {
    let python = tool("OF_TEST_DEPLOY_PYTHON");
    let script = root().join("tests/deploy/chart.py");
    run(Command::new(python).arg(script).args(args))
}

/// Values files as `helm -f` takes them: the chart's ci/ files by name, or
/// an override written to a scratch file.
pub enum Values<'a> {
    Ci(&'a str),
    Inline(Value),
}

fn values_paths(values: &[Values<'_>], scratch_dir: &Scratch) -> Vec<String> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Values::Ci(name) => chart_dir().join("ci").join(name).display().to_string(),
            Values::Inline(json) => {
                let path = scratch_dir.path().join(format!("values-{i}.yaml"));
                std::fs::write(&path, serde_json::to_vec_pretty(json).expect("json")).expect("write values");
                path.display().to_string()
            }
        })
        .collect()
}

/// The chart rendered with `values` (release `orderflow` in namespace
/// `orderflow`): its manifests, or the error Helm gave.
pub fn render(values: &[Values<'_>], out: Option<&Path>) -> Result<Vec<Value>, String> {
    let chart = chart_dir().display().to_string();
    let dir = scratch("values");
    let mut args = vec!["render".to_owned(), chart];
    args.extend(values_paths(values, &dir));
    if let Some(out) = out {
        args.extend(["--out".to_owned(), out.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = chart_py(&args);
    match out.status.code() {
        Some(0) => {
            let json: Value = serde_json::from_slice(&out.stdout).expect("render output");
            Ok(json["manifests"].as_array().expect("manifests").clone())
        }
        Some(2) => Err(text(&out.stderr)),
        _ => panic!("chart.py render crashed: {}", text(&out.stderr)),
    }
}

pub fn lint(values: &[Values<'_>]) -> Value {
    let chart = chart_dir().display().to_string();
    let dir = scratch("values");
    let mut args = vec!["lint".to_owned(), chart];
    args.extend(values_paths(values, &dir));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = chart_py(&args);
    assert!(out.status.success(), "chart.py lint crashed: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("lint output")
}

/// The compose file as `docker-compose config` resolves it (anchors merged,
/// `${VAR:-default}` substituted) with `vars` in its environment.
pub fn compose_config(vars: &[(&str, &str)]) -> Result<Value, String> {
    let compose = tool("OF_TEST_DOCKER_COMPOSE");
    let mut command = Command::new(compose);
    command.args(["--project-directory", &root().display().to_string(), "-f"]);
    command.arg(root().join("docker-compose.yml")).arg("config");
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("OF_")) {
        command.env_remove(k);
    }
    command.envs(vars.iter().copied());
    let out = run(&mut command);
    if !out.status.success() {
        return Err(format!("{}{}", text(&out.stdout), text(&out.stderr)));
    }
    let dir = scratch("compose");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, &out.stdout).expect("write compose config");
    let parsed = chart_py(&["yaml", &path.display().to_string()]);
    assert!(parsed.status.success(), "cannot parse the compose config: {}", text(&parsed.stderr));
    Ok(serde_json::from_slice(&parsed.stdout).expect("compose JSON"))
}

/// The Deployments of a render, by the binary their container runs.
pub fn deployments(manifests: &[Value]) -> BTreeMap<String, Value> {
    manifests
        .iter()
        .filter(|m| m["kind"] == "Deployment")
        .map(|d| {
            let command = &d["spec"]["template"]["spec"]["containers"][0]["command"][0];
            let binary = command.as_str().unwrap_or_else(|| panic!("{} has no command", d["metadata"]["name"]));
            (binary.rsplit('/').next().expect("name").to_owned(), d.clone())
        })
        .collect()
}

/// A dummy for a setting the environment takes from a Secret
/// (`secretKeyRef`) or that compose leaves to the user: valid for the
/// setting, so `--check-config` judges everything else.
pub fn dummy_secret(name: &str) -> String {
    match name {
        "ORDERFLOW_JWT__SECRET" => "a-dummy-signing-key-for-check-config-0123456789".into(),
        "ORDERFLOW_DATABASE__URL" => "postgres://dummy:dummy@postgres.invalid:5432/dummy?sslmode=require".into(),
        "ORDERFLOW_REGISTRY__URL" => "https://dummy:dummy@registry.invalid:8081".into(),
        "ORDERFLOW_KEYS__TOKEN" => "a-dummy-key-service-token-0123456789".into(),
        "ORDERFLOW_KEYS__KEKS" => r#"["dummy:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="]"#.into(),
        _ => "dummy".into(),
    }
}

/// The environment a Deployment's container gets, secrets replaced by dummies.
pub fn deployment_env(deployment: &Value) -> Vec<(String, String)> {
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    container["env"]
        .as_array()
        .map(|env| {
            env.iter()
                .map(|e| {
                    let name = e["name"].as_str().expect("env name").to_owned();
                    let value = match (&e["value"], &e["valueFrom"]["secretKeyRef"]) {
                        (Value::String(v), _) => v.clone(),
                        (_, Value::Object(_)) => dummy_secret(&name),
                        _ => panic!("{name} has neither a value nor a secretKeyRef"),
                    };
                    (name, value)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `binary --check-config` with exactly `env` (nothing inherited).
pub fn check_config(
    bins: &BTreeMap<String, PathBuf>,
    binary: &str,
    env: &[(String, String)],
) -> Result<String, String> {
    let path = bins.get(binary).unwrap_or_else(|| panic!("no binary `{binary}` was built"));
    let out = run(Command::new(path)
        .arg("--check-config")
        .env_clear()
        .env("RUST_BACKTRACE", "0")
        .envs(env.iter().map(|(k, v)| (k, v))));
    let stdout = text(&out.stdout);
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!("{binary} --check-config exited {}:\n{stdout}{}", out.status, text(&out.stderr)))
    }
}

/// The port of `ORDERFLOW_HTTP__ADDR` in an environment.
pub fn http_port(env: &[(String, String)]) -> Option<u16> {
    port_of(env, "ORDERFLOW_HTTP__ADDR")
}

/// The port of a process's `/health/*` and `/metrics`: its ops listener
/// where it has one (the ingress), else its only listener.
pub fn ops_port(env: &[(String, String)]) -> Option<u16> {
    port_of(env, "ORDERFLOW_OPS__ADDR").or_else(|| http_port(env))
}

fn port_of(env: &[(String, String)], name: &str) -> Option<u16> {
    env.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.rsplit(':').next()?.parse().ok())
}
