"""The Helm side of tests/deploy, on helm-python-sdk (Helm 4's Go SDK as a
C library: no helm binary and no cluster needed).

    python chart.py lint     CHART VALUES_FILE...   -> {"messages": [...], "errors": [...]}
    python chart.py render   CHART VALUES_FILE...   -> {"manifests": [objects]} (exit 2: rendering failed)
    python chart.py validate DIR KUBE_VERSION|latest -> {"invalid": [...], "skipped": [...], "checked": N, ...}
    python chart.py yaml     FILE                   -> the YAML document as JSON

Values files are merged the way `helm -f a.yaml -f b.yaml` merges them
(maps deeply, later files win). `render` also writes each manifest to
OUT_DIR (argument --out DIR) for kubernetes-validate and checkov. Output is
JSON on stdout; errors are on stderr, so the Rust test can show them.
"""

import json
import os
import sys

import yaml

RELEASE = "orderflow"
NAMESPACE = "orderflow"


def merge(base, override):
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def values(files):
    merged = {}
    for path in files:
        with open(path, encoding="utf-8") as f:
            merge(merged, yaml.safe_load(f) or {})
    return merged


def lint(chart, files):
    import helm_python as helm

    report = helm.lint(chart, values(files), strict=True, namespace=NAMESPACE)
    print(json.dumps(report))


def render(chart, files, out):
    import helm_python as helm

    try:
        with helm.Chart.load(chart) as loaded:
            rendered = loaded.render(values=values(files), name=RELEASE, namespace=NAMESPACE, is_install=True)
    except helm.HelmError as error:
        print(str(error), file=sys.stderr)
        sys.exit(2)
    manifests = []
    for template, text in sorted(rendered.items()):
        if not template.endswith((".yaml", ".yml")):
            continue  # NOTES.txt
        for doc in yaml.safe_load_all(text):
            if doc:
                doc.setdefault("metadata", {}).setdefault("annotations", {})
                doc["metadata"]["annotations"]["orderflow.test/template"] = template
                manifests.append(doc)
    if out:
        os.makedirs(out, exist_ok=True)
        for i, doc in enumerate(manifests):
            name = f"{i:03}-{doc['kind']}-{doc['metadata']['name']}.yaml".lower()
            with open(os.path.join(out, name), "w", encoding="utf-8") as f:
                yaml.safe_dump(doc, f)
    print(json.dumps({"manifests": manifests}))


def validate(directory, kube_version):
    """Every manifest against the Kubernetes OpenAPI schemas of kube_version,
    strictly (unknown fields fail). Custom resources (the Prometheus
    operator's ServiceMonitor) have no schema there: they are listed as
    skipped, and the test decides which may be."""
    import kubernetes_validate
    import kubernetes_validate.utils
    from kubernetes_validate.utils import SchemaNotFoundError, ValidationError, VersionNotSupportedError

    if kube_version == "latest":
        kube_version = kubernetes_validate.utils.latest_version()
    invalid, skipped, checked = [], [], 0
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
            checked += 1
        except SchemaNotFoundError:
            skipped.append(f"{doc['apiVersion']}/{doc['kind']}")
        except ValidationError as error:
            path = "/".join(str(p) for p in error.path)
            invalid.append(f"{name}: {path}: {error.message}")
        except VersionNotSupportedError:
            print(f"kubernetes-validate has no schemas for {kube_version}", file=sys.stderr)
            sys.exit(2)
    print(json.dumps({"invalid": invalid, "skipped": skipped, "checked": checked, "kube_version": kube_version}))


def main():
    command, args = sys.argv[1], sys.argv[2:]
    out = None
    if "--out" in args:
        i = args.index("--out")
        out = args[i + 1]
        del args[i : i + 2]
    if command == "lint":
        lint(args[0], args[1:])
    elif command == "render":
        render(args[0], args[1:], out)
    elif command == "validate":
        validate(args[0], args[1])
    elif command == "json-schema":
        # json-schema SCHEMA FILE...: each file's problems against the schema (JSON).
        from jsonschema import Draft7Validator

        with open(args[0], encoding="utf-8") as f:
            validator = Draft7Validator(json.load(f))
        report = {}
        for path in args[1:]:
            with open(path, encoding="utf-8") as f:
                errors = validator.iter_errors(json.load(f))
                report[path] = ["/" + "/".join(map(str, e.absolute_path)) + ": " + e.message for e in errors]
        print(json.dumps(report))
    elif command == "yaml":
        with open(args[0], encoding="utf-8") as f:
            print(json.dumps(yaml.safe_load(f)))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
