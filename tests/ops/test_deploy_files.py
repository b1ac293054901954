"""The deployment files agree with the code: real settings, sane bounds, persistence on."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bot.settings import SECRET_FIELDS, Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ENV_NAME = re.compile(r"\b(SHOPKEEP_[A-Z0-9_]+)\b")
NOT_SETTINGS = {"SHOPKEEP_CONFIG", "SHOPKEEP_TEST_REDIS_URL"}


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _k8s() -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in _documents(path):
            if "kind" in doc and "metadata" in doc:
                found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def test_every_variable_named_in_deploy_is_a_real_setting() -> None:
    fields = {f"SHOPKEEP_{name.upper()}" for name in Settings.model_fields}
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            unknown = set(ENV_NAME.findall(path.read_text())) - fields - NOT_SETTINGS
            assert not unknown, f"{path.relative_to(DEPLOY)} names unknown settings {unknown}"


def test_secrets_stay_out_of_the_configmap() -> None:
    config = _k8s()[("ConfigMap", "shopkeep-config")]["data"]
    for name in SECRET_FIELDS:
        assert not any(name.upper() in key for key in config), name


def test_grace_periods_outlast_the_shutdown_bound() -> None:
    bound = float(_k8s()[("ConfigMap", "shopkeep-config")]["data"]["SHOPKEEP_SHUTDOWN_TIMEOUT_S"])
    watchdog = 5.0
    for name in ("shopkeep-bot", "shopkeep-lm-worker"):
        spec = _k8s()[("Deployment", name)]["spec"]["template"]["spec"]
        assert spec["terminationGracePeriodSeconds"] > bound + watchdog, name
    unit = (DEPLOY / "systemd" / "shopkeep.service").read_text()
    stop = int(re.search(r"^TimeoutStopSec=(\d+)$", unit, re.MULTILINE).group(1))  # type: ignore[union-attr]
    assert stop > Settings.model_fields["shutdown_timeout_s"].default + watchdog
    compose = _documents(DEPLOY / "docker-compose.yml")[0]
    grace = compose["x-shopkeep"]["stop_grace_period"]
    assert int(grace.rstrip("s")) > bound + watchdog


def test_redis_persists_everywhere() -> None:
    compose = _documents(DEPLOY / "docker-compose.yml")[0]
    command = compose["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert "redis-data:/data" in compose["services"]["redis"]["volumes"]
    redis = _k8s()[("StatefulSet", "redis")]["spec"]
    args = redis["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert redis["volumeClaimTemplates"][0]["metadata"]["name"] == "data"


def test_lm_workers_scale_on_queue_depth_and_probes_hit_the_ops_server() -> None:
    hpa = _k8s()[("HorizontalPodAutoscaler", "shopkeep-lm-worker")]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "shopkeep-lm-worker"
    metric = hpa["metrics"][0]["external"]["metric"]["name"]
    assert metric == "shopkeep_lm_queue_depth"
    from bot.ops.metrics import METRICS

    assert METRICS.registry.get_sample_value(metric) is not None  # the bot exports it
    bot = _k8s()[("Deployment", "shopkeep-bot")]["spec"]["template"]["spec"]["containers"][0]
    assert bot["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert bot["livenessProbe"]["httpGet"]["path"] == "/healthz"
    kustomize = _documents(DEPLOY / "k8s" / "kustomization.yaml")[0]["resources"]
    assert all((DEPLOY / "k8s" / name).is_file() for name in kustomize)
    assert "secret.example.yaml" not in kustomize


def test_dockerfile_installs_cpu_torch_before_shopkeep() -> None:
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    torch = next(i for i, line in enumerate(lines) if "torch==2.13.0" in line)
    shopkeep = next(i for i, line in enumerate(lines) if "pip install -e ." in line)
    assert torch < shopkeep and "whl/cpu" in lines[torch]
    assert sum(line.startswith("FROM ") for line in lines) == 2  # build and runtime stages
