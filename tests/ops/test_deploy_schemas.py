"""The deployment files are valid to the tools that read them: Kubernetes, Compose, Kustomize,
prometheus-adapter (offline, against their published schemas) and redis-server (a real one)."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils
import pytest
import redis
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
# The oldest Kubernetes minor still commonly run, and the newest the wheel knows: a field
# removed or added between them fails one of the two.
K8S_VERSIONS = ("1.30", kubernetes_validate.utils.major_minor(kubernetes_validate.latest_version()))
NOT_MANIFESTS = {"kustomization.yaml", "prometheus-adapter-rules.yaml"}


def _load_json(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / name).read_text())
    return schema


# Loaded once per module: the validators are reused by every test below.
COMPOSE = jsonschema.validators.validator_for(_load_json("compose-spec.json"))(
    _load_json("compose-spec.json"))
KUSTOMIZATION = jsonschema.validators.validator_for(_load_json("kustomization.json"))(
    _load_json("kustomization.json"))

# prometheus-adapter reads its rules with yaml.UnmarshalStrict into the structs of
# kubernetes-sigs/prometheus-adapter pkg/config/config.go (DiscoveryRule, ResourceMapping,
# NameMapping, RegexFilter): an unknown key stops the adapter. No schema is published, so
# this one is written from those structs; `namespaced` and `seriesFilters` included.
_GROUP_RESOURCE = {"type": "object", "additionalProperties": False, "required": ["resource"],
                   "properties": {"group": {"type": "string"}, "resource": {"type": "string"}}}
ADAPTER_RULE = jsonschema.Draft202012Validator({
    "type": "object", "additionalProperties": False, "required": ["seriesQuery", "metricsQuery"],
    "properties": {
        "seriesQuery": {"type": "string"},
        "seriesFilters": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "maxProperties": 1,
            "properties": {"is": {"type": "string"}, "isNot": {"type": "string"}}}},
        "resources": {"type": "object", "additionalProperties": False, "properties": {
            "template": {"type": "string"},
            "overrides": {"type": "object", "additionalProperties": _GROUP_RESOURCE},
            "namespaced": {"type": "boolean"}}},
        "name": {"type": "object", "additionalProperties": False, "properties": {
            "matches": {"type": "string"}, "as": {"type": "string"}}},
        "metricsQuery": {"type": "string"},
    },
})
# The Helm chart's values (prometheus-community/helm-charts charts/prometheus-adapter/values.yaml)
# that this file sets; the chart renders rules.external into the adapter's externalRules.
ADAPTER_VALUES = jsonschema.Draft202012Validator({
    "type": "object", "required": ["prometheus", "rules"],
    "properties": {
        "prometheus": {"type": "object", "additionalProperties": False, "required": ["url"],
                       "properties": {"url": {"type": "string", "pattern": "^https?://"},
                                      "port": {"type": "integer"}, "path": {"type": "string"}}},
        "rules": {"type": "object", "additionalProperties": False, "properties": {
            "default": {"type": "boolean"}, "custom": {"type": "array"},
            "existing": {"type": ["string", "null"]}, "resource": {"type": "object"},
            "external": {"type": "array", "minItems": 1}}},
    },
})


def _manifests() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name not in NOT_MANIFESTS:
            found += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


MANIFESTS = _manifests()


def _one(kind: str, name: str) -> dict[str, Any]:
    return next(doc for _, doc in MANIFESTS
                if doc["kind"] == kind and doc["metadata"]["name"] == name)


def _errors(validator: Any, doc: Any) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(doc)]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(("source", "doc"), MANIFESTS,
                         ids=[f"{s}:{d['kind']}/{d['metadata']['name']}" for s, d in MANIFESTS])
def test_every_manifest_is_valid_kubernetes(source: str, doc: dict[str, Any], version: str) -> None:
    # strict: the schemas forbid unknown fields, so a misspelt key fails instead of being
    # dropped by the API server without a word.
    kubernetes_validate.validate(doc, desired_version=version, strict=True)


def test_every_manifest_file_is_applied_or_known() -> None:
    kustomize = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    files = {p.name for p in (DEPLOY / "k8s").glob("*")}
    assert files == set(kustomize["resources"]) | NOT_MANIFESTS | {"secret.example.yaml"}
    assert {s for s, _ in MANIFESTS} >= set(kustomize["resources"])


def _break(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `doc` with the dotted `path` set to `value` (None deletes it)."""
    broken = copy.deepcopy(doc)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = broken
    for part in parents:
        node = node[part]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return broken


@pytest.mark.parametrize(("kind", "name", "path", "value"), [
    ("Deployment", "shopkeep-bot", "spec.template.spec.terminationGracePeriodSecond", 35),
    ("Deployment", "shopkeep-bot", "spec.template.spec.containers.0.ports.0.containerPort", "x"),
    ("Deployment", "shopkeep-lm-worker", "spec.selector", None),
    ("HorizontalPodAutoscaler", "shopkeep-lm-worker", "spec.metrics.0.external.metric", None),
    ("HorizontalPodAutoscaler", "shopkeep-lm-worker", "spec.metrics.0.external.target.kind", 1),
    ("StatefulSet", "redis", "spec.template.spec.containers.0.args", "--appendonly yes"),
])
def test_the_kubernetes_check_catches_typical_mistakes(kind: str, name: str, path: str,
                                                       value: Any) -> None:
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(_break(_one(kind, name), path, value), K8S_VERSIONS[0],
                                     strict=True)


def test_kustomization_matches_the_kustomize_schema() -> None:
    kustomize = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    assert kustomize["kind"] == "Kustomization"
    assert _errors(KUSTOMIZATION, kustomize) == []
    assert _errors(KUSTOMIZATION, _break(kustomize, "resources", "bot.yaml"))
    assert _errors(KUSTOMIZATION, {**kustomize, "commonLabel": {"a": "b"}})


def test_compose_file_matches_the_compose_specification() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert _errors(COMPOSE, compose) == []
    # The schema does catch mistakes (a misspelt key, a condition Compose does not know).
    assert _errors(COMPOSE, _break(compose, "services.bot.healthchek", {}))
    assert _errors(COMPOSE, _break(compose, "services.bot.depends_on.redis.condition", "healthy"))
    assert _errors(COMPOSE, _break(compose, "services.bot.stop_grace_period", 30))
    # Not expressed as a $ref in the published schema, so checked here: image or build.
    assert all("image" in s or "build" in s for s in compose["services"].values())


def test_prometheus_adapter_values_and_rule_are_valid() -> None:
    values = yaml.safe_load((DEPLOY / "k8s" / "prometheus-adapter-rules.yaml").read_text())
    assert _errors(ADAPTER_VALUES, values) == []
    for rule in values["rules"]["external"]:
        assert _errors(ADAPTER_RULE, rule) == []
        # Templates use << >> and only the fields the adapter fills in.
        fields = set(re.findall(r"<<\s*\.(\w+)\s*>>", rule["metricsQuery"]))
        assert fields and fields <= {"Series", "LabelMatchers", "GroupBy"}, fields
        assert "{{" not in rule["metricsQuery"]
        for label, target in rule.get("resources", {}).get("overrides", {}).items():
            assert re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", label), label
            assert target["resource"] in {"namespace", "pod", "service", "deployment", "node"}
    assert _errors(ADAPTER_RULE, {**values["rules"]["external"][0], "metricQuery": "x"})


def test_the_hpa_reads_the_metric_the_adapter_serves() -> None:
    values = yaml.safe_load((DEPLOY / "k8s" / "prometheus-adapter-rules.yaml").read_text())
    kustomize = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    hpa = _one("HorizontalPodAutoscaler", "shopkeep-lm-worker")["spec"]
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    target = hpa["scaleTargetRef"]
    _one(target["kind"], target["name"])  # the scaled workload exists
    for metric in hpa["metrics"]:
        assert metric["type"] == "External"  # served by the adapter's externalRules
        wanted = metric["external"]["metric"]
        rule = next(r for r in values["rules"]["external"]
                    if r.get("name", {}).get("as") == wanted["name"])
        series = re.match(r"\s*([a-zA-Z_:][a-zA-Z0-9_:]*)", rule["seriesQuery"])
        assert series is not None and series.group(1) == wanted["name"]
        # The selector narrows to labels the rule maps; its namespace is the one deployed to.
        labels = wanted.get("selector", {}).get("matchLabels", {})
        assert set(labels) <= set(rule["resources"]["overrides"]), labels
        assert labels.get("namespace", kustomize["namespace"]) == kustomize["namespace"]
        assert re.search(r"by \((\w+(,\s*)?)*namespace", rule["metricsQuery"])


# ---- What no schema says: the manifests refer to each other and to the code correctly ----

WORKLOADS = [d for _, d in MANIFESTS if d["kind"] in ("Deployment", "StatefulSet")]


def _containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    return containers


def _probes(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {kind: container[kind] for kind in ("startupProbe", "livenessProbe", "readinessProbe")
            if kind in container}


def test_selectors_services_ports_and_volumes_line_up() -> None:
    for workload in WORKLOADS:
        pod = workload["spec"]["template"]
        labels = pod["metadata"]["labels"]
        assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
        volumes = {v["name"] for v in pod["spec"].get("volumes", [])}
        volumes |= {c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])}
        for container in _containers(workload):
            ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
            for kind, probe in _probes(container).items():
                port = (probe.get("httpGet") or probe.get("tcpSocket") or {}).get("port")
                assert port is None or port in ports or port in ports.values(), (kind, port)
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, mount
    for _, service in [(s, d) for s, d in MANIFESTS if d["kind"] == "Service"]:
        selected = [w for w in WORKLOADS if service["spec"]["selector"].items()
                    <= w["spec"]["template"]["metadata"]["labels"].items()]
        assert selected, f"Service {service['metadata']['name']} selects no pods"
        names = {p.get("name") for w in selected for c in _containers(w)
                 for p in c.get("ports", [])}
        numbers = {p["containerPort"] for w in selected for c in _containers(w)
                   for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port.get("targetPort", port["port"]) in names | numbers, port


def test_configuration_references_exist() -> None:
    configmaps = {d["metadata"]["name"] for _, d in MANIFESTS if d["kind"] == "ConfigMap"}
    secrets = {d["metadata"]["name"] for _, d in MANIFESTS if d["kind"] == "Secret"}
    kustomize = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    for workload in WORKLOADS:
        for container in _containers(workload):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configmaps
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets
    # The Secret is applied by hand, so it carries the namespace kustomize would have set.
    for _, doc in MANIFESTS:
        if doc["kind"] == "Secret":
            assert doc["metadata"]["namespace"] == kustomize["namespace"]


def test_the_redis_url_reaches_the_statefulset() -> None:
    url = _one("ConfigMap", "shopkeep-config")["data"]["SHOPKEEP_REDIS_URL"]
    found = re.fullmatch(r"redis://([\w-]+)-(\d+)\.([\w-]+):(\d+)/\d+", url)
    assert found, url
    statefulset, ordinal, service_name, port = found.groups()
    redis = _one("StatefulSet", statefulset)["spec"]
    assert int(ordinal) < redis["replicas"] and redis["serviceName"] == service_name
    service = _one("Service", service_name)["spec"]
    assert service["clusterIP"] == "None"  # only a headless Service gives pods stable names
    assert int(port) in {p["port"] for p in service["ports"]}


def test_shopkeep_containers_run_real_commands_as_the_image_user() -> None:
    from bot.cli import build_parser

    uid = re.search(r"useradd\b.*--uid (\d+)", (DEPLOY / "Dockerfile").read_text())
    assert uid is not None
    parser = build_parser()
    for workload in WORKLOADS:
        spec = workload["spec"]["template"]["spec"]
        for container in _containers(workload):
            if not container["image"].startswith("shopkeep:"):
                continue
            # args, not command: command would replace the image's `shopkeep` entrypoint.
            assert "command" not in container
            assert parser.parse_args(container["args"]).command == container["args"][0]
            # The image's USER is a name; runAsNonRoot needs a numeric runAsUser to verify it.
            assert spec["securityContext"]["runAsUser"] == int(uid.group(1))


def test_the_ops_port_and_probe_timeouts_agree_with_the_code() -> None:
    from types import SimpleNamespace

    from bot.ops.server import CHECK_TIMEOUT_S, OpsFeature

    port = int(_one("ConfigMap", "shopkeep-config")["data"]["SHOPKEEP_METRICS_PORT"])
    bot = _one("Deployment", "shopkeep-bot")["spec"]["template"]
    container = _containers({"spec": {"template": bot}})[0]
    assert {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"] == port
    assert int(bot["metadata"]["annotations"]["prometheus.io/port"]) == port
    service = _one("Service", "shopkeep-bot")["spec"]["ports"]
    assert [p["port"] for p in service if p["name"] == "metrics"] == [port]
    # /readyz runs its checks one after another, each bounded by CHECK_TIMEOUT_S: a probe
    # that gives up sooner (the default is 1 s) marks a slow-but-healthy pod unready.
    fake = SimpleNamespace(settings=SimpleNamespace(metrics_port=port, metrics_host="0.0.0.0"),
                           store=None, lm=None)
    server = OpsFeature(fake).server  # type: ignore[arg-type]
    assert server is not None
    worst = len(server.checks) * CHECK_TIMEOUT_S
    probes = _probes(container)
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert probes["readinessProbe"].get("timeoutSeconds", 1) > worst
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    patience = int(compose["services"]["bot"]["healthcheck"]["timeout"].rstrip("s"))
    for kind in ("startupProbe", "livenessProbe"):
        assert probes[kind]["httpGet"]["path"] == "/healthz"
        assert probes[kind].get("timeoutSeconds", 1) >= patience, kind


@pytest.mark.parametrize("where", ["compose", "k8s"])
def test_redis_starts_with_the_arguments_the_files_give_it(where: str, tmp_path: Path) -> None:
    from bot.storage.embedded import redis_server_binary
    from tests.support.redis_server import free_port

    if where == "compose":
        compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
        command = compose["services"]["redis"]["command"]
        assert command[0] == "redis-server"
        args = command[1:]
    else:
        args = _containers(_one("StatefulSet", "redis"))[0]["args"]
    # The data volume becomes a temporary folder; a misspelt option or value stops the server.
    args = [str(tmp_path) if arg == "/data" else arg for arg in args]
    port = free_port()
    binary = shutil.which("redis-server") or redis_server_binary()
    process = subprocess.Popen([binary, *args, "--dir", str(tmp_path), "--port", str(port),
                                "--bind", "127.0.0.1", "--daemonize", "no"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    client = redis.Redis(port=port, socket_connect_timeout=0.2, decode_responses=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"redis-server refused {args}: {output[-500:]}")
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not answer within 10 s"
                time.sleep(0.05)
        config = client.config_get("*")
        assert config["appendonly"] == "yes"
        assert config["appendfsync"] in ("everysec", "always")
        assert config["maxmemory-policy"] == "noeviction"  # never drop the system of record
    finally:
        client.close()
        process.terminate()  # SIGTERM: Redis stops at once (the client's SHUTDOWN retries)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
