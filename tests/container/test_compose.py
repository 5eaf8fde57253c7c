"""docker-compose.yml: valid, standalone and merged into the owner's stack, and in step
with the program (setting names and defaults) and the Dockerfile (stages, user).

No Compose binary runs here, so the checks Compose makes before starting anything are
reproduced: the schema, and its depends_on consistency rule (a dependency must be a
service of the project; one disabled by a profile is tolerated only with
required: false).
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from container_support import REPO_ROOT, interpolate, parse_dockerfile, shared_schema, stage_named

from coin_sync.config.load import load_settings
from coin_sync.config.settings import Settings
from coin_sync.config.table import setting_names

COMPOSE: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, Any] = COMPOSE["services"]
STAGES = parse_dockerfile()

# What the owner's stack looks like: a `backend` with a healthcheck (and its database).
OWNER_STACK: dict[str, Any] = {
    "services": {
        "mongodb": {"image": "mongo:7", "volumes": ["mongo-data:/data/db"]},
        "backend": {
            "build": "./backend",
            "ports": ["8888:8888"],
            "depends_on": {"mongodb": {"condition": "service_started"}},
            "healthcheck": {"test": ["CMD", "curl", "-f", "http://localhost:8888/health"], "interval": "10s"},
        },
    },
    "volumes": {"mongo-data": {}},
}
SEED_VARIABLES = (
    "BACKEND_URL",
    "SYNC_INTERVAL_SECONDS",
    "LOG_LEVEL",
    "LOG_DIR",
    "HTTP_TIMEOUT",
    "MAX_RETRIES",
    "RETRY_DELAY_SECONDS",
    "SYMBOLS_TO_SYNC",
)


def merged_with_owner() -> dict[str, Any]:
    """`docker compose -f theirs.yml -f docker-compose.yml`, for files with distinct services."""
    assert not set(SERVICES) & set(OWNER_STACK["services"])
    merged: dict[str, Any] = {k: v for k, v in OWNER_STACK.items() if k != "services"}
    merged["services"] = {**OWNER_STACK["services"], **SERVICES}
    for key, value in COMPOSE.items():
        if key != "services":
            merged[key] = {**merged.get(key, {}), **value}
    return merged


def depends_on_problems(project: dict[str, Any], profiles: set[str]) -> list[str]:
    """Compose's consistency check of depends_on for the given active profiles."""
    services = project["services"]
    enabled = {n for n, s in services.items() if not s.get("profiles") or profiles & set(s["profiles"])}
    problems = []
    for name in sorted(enabled):
        depends = services[name].get("depends_on") or {}
        for target in depends:
            spec = depends[target] if isinstance(depends, dict) else {}
            if target in enabled:
                continue
            if target in services and spec.get("required", True) is False:
                continue  # disabled by a profile, and optional: Compose only warns
            problems.append(f"service {name!r} depends on undefined service {target!r}")
    return problems


def test_valid_against_the_compose_spec_alone_and_merged() -> None:
    validator = jsonschema.Draft7Validator(shared_schema("compose-spec.json"))
    for project in (COMPOSE, merged_with_owner()):
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(project)]
        assert errors == []


@pytest.mark.parametrize("profiles", [set(), {"demo"}], ids=["default", "demo"])
@pytest.mark.parametrize("merged", [False, True], ids=["standalone", "merged"])
def test_depends_on_is_consistent(profiles: set[str], merged: bool) -> None:
    project = merged_with_owner() if merged else COMPOSE
    assert depends_on_problems(project, profiles) == []


def test_the_checker_rejects_what_compose_rejects() -> None:
    # The obvious design, `depends_on: backend`, breaks the file on its own.
    broken = {"services": {**SERVICES, "coin_sync": {**SERVICES["coin_sync"], "depends_on": {"backend": {}}}}}
    assert depends_on_problems(broken, set()) == ["service 'coin_sync' depends on undefined service 'backend'"]
    # ...and so does a depends_on on the demo backend without required: false.
    required = {"fake-backend": {"condition": "service_healthy"}}
    broken = {"services": {**SERVICES, "coin_sync": {**SERVICES["coin_sync"], "depends_on": required}}}
    assert depends_on_problems(broken, set()) != []


def test_merging_leaves_the_owners_stack_alone_and_reaches_its_backend() -> None:
    # A service of ours named like one of theirs would be merged INTO theirs.
    assert "backend" not in SERVICES
    assert "name" not in COMPOSE  # would rename the owner's project
    default_url = interpolate(SERVICES["coin_sync"]["environment"]["BACKEND_URL"], {})
    assert (urlsplit(default_url).hostname, urlsplit(default_url).port) == ("backend", 8888)


def test_the_loop_service() -> None:
    svc = SERVICES["coin_sync"]
    assert svc["command"] == ["loop"]
    assert svc["restart"] == "unless-stopped"
    assert svc["init"] is True
    assert svc["read_only"] is True
    assert svc["tmpfs"] == ["/tmp"]
    alone, merged = interpolate(svc, {}), interpolate(svc, {"COIN_SYNC_DIR": "/src/coin-sync"})
    assert alone["volumes"] == ["./logs:/logs"]
    assert merged["volumes"] == ["/src/coin-sync/logs:/logs"]
    assert (alone["build"]["context"], merged["build"]["context"]) == (".", "/src/coin-sync")
    assert alone["build"]["target"] == "runtime" == STAGES[-1].name
    # Same user as the image unless .env says otherwise.
    assert alone["user"] == stage_named(STAGES, "runtime").last("USER")


def test_environment_is_the_seeds_overridable_with_the_programs_defaults() -> None:
    environment: dict[str, str] = SERVICES["coin_sync"]["environment"]
    assert set(SEED_VARIABLES) <= set(environment)
    assert set(environment) <= set(setting_names()), "nombre de ajuste desconocido"
    for name, value in environment.items():
        if name not in ("LOG_DIR", "K8S_INTEGRATION"):
            assert re.fullmatch(rf"\$\{{{name}:-[^}}]*\}}", value), f"{name}: {value} no se puede cambiar desde .env"
    assert environment["LOG_DIR"] == "/logs"

    defaults = load_settings({}, {})
    from_compose = load_settings({}, interpolate(environment, {}))
    assert from_compose == replace(defaults, kubernetes=replace(defaults.kubernetes, integration="off"))
    overridden = interpolate(environment, {"SYNC_INTERVAL_SECONDS": "5", "SYMBOLS_TO_SYNC": "BTCUSDT"})
    assert (overridden["SYNC_INTERVAL_SECONDS"], overridden["SYMBOLS_TO_SYNC"]) == ("5", "BTCUSDT")


def test_the_loops_metrics_port_is_off_by_default_and_exposed_when_set() -> None:
    svc = SERVICES["coin_sync"]
    assert load_settings({}, interpolate(svc["environment"], {})).metrics.port is None
    on = {"METRICS_PORT": "9100"}
    assert load_settings({}, interpolate(svc["environment"], on)).metrics.port == 9100
    # The port a scraper on the compose network finds is the one the loop listens on;
    # METRICS_ADDRESS keeps its default, all interfaces, or nothing outside could reach it.
    assert interpolate(svc["expose"], on) == ["9100"] and interpolate(svc["expose"], {}) == ["9464"]
    assert "METRICS_ADDRESS" not in svc["environment"] and Settings().metrics.address == "0.0.0.0"
    assert "ports" not in svc  # a fixed host port could clash and stop `up`


def _seconds(duration: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(a + b for a, b in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def test_compose_waits_longer_than_the_loop_needs_to_stop() -> None:
    grace = _seconds(interpolate(SERVICES["coin_sync"]["stop_grace_period"], {}))
    assert grace >= Settings().sync.shutdown_grace_seconds + 1 + 2  # plus tini and Docker's own time


def test_the_demo_backend_answers_as_backend_and_its_healthcheck_works() -> None:
    svc = interpolate(SERVICES["fake-backend"], {})
    assert svc["profiles"] == ["demo"]
    assert svc["build"]["target"] == "demo"
    demo = stage_named(STAGES, "demo")
    assert demo.exec_form("ENTRYPOINT")[-1].endswith("/fake_backend.py")
    assert "backend" in svc["networks"]["default"]["aliases"]
    assert svc["command"][svc["command"].index("--port") + 1] == "8888"
    assert SERVICES["coin_sync"]["depends_on"]["fake-backend"] == {"condition": "service_healthy", "required": False}

    # Run the service's command and its healthcheck, on loopback and a free port.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    command = [port if w == "8888" else "127.0.0.1" if w == "0.0.0.0" else w for w in svc["command"]]
    test = svc["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "python"
    check = [sys.executable, *(w.replace("8888", port) for w in test[2:])]
    server = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "tests" / "fake_backend.py"), *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        assert server.stdout is not None
        server.stdout.readline()  # "escuchando en ...": it is up
        assert subprocess.run(check, capture_output=True, timeout=10, check=False).returncode == 0
    finally:
        server.terminate()
        server.wait(10)
    # And it fails once nothing answers, or the healthcheck would prove nothing.
    assert subprocess.run(check, capture_output=True, timeout=10, check=False).returncode != 0
