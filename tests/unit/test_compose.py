"""docker-compose.yml: structure, and every fsml command it runs exists with those options.

No Docker engine runs here; the file is checked statically against the CLI itself.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fsml.cli import app
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _commands() -> list[list[str]]:
    found = [s["command"] for s in COMPOSE["services"].values() if isinstance(s.get("command"), list)]
    dockerfile = (ROOT / "Dockerfile").read_text()
    found += [eval(m) for m in re.findall(r"^CMD (\[.*\])$", dockerfile, re.M)]  # noqa: S307
    found += [
        line.split("run --rm api ", 1)[1].split()
        for line in (ROOT / "docker-compose.yml").read_text().splitlines()
        if "run --rm api " in line
    ]
    return found


def test_services_and_their_wiring() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"redis", "api", "monitor", "mlflow", "prometheus", "grafana"}
    assert services["monitor"]["environment"]["FSML_SERVICE_URL"] == "http://api:8000"
    assert services["monitor"]["depends_on"]["api"]["condition"] == "service_healthy"
    redis = services["redis"]
    assert "redis-cli" in " ".join(redis["healthcheck"]["test"]) and "--appendonly" in redis["command"]
    assert redis["command"][redis["command"].index("--appendfsync") + 1] == "always"  # pushes are durable
    assert any(v.endswith(":/data") for v in redis["volumes"])
    api = services["api"]
    assert api["build"] == "." and api["depends_on"]["redis"]["condition"] == "service_healthy"
    assert api["environment"]["REDIS_URL"].startswith("redis://:${REDIS_PASSWORD:?")
    assert api["environment"]["REDIS_URL"].endswith("@redis:6379/0")
    for name in ("api", "monitor", "mlflow"):
        assert "fsml-home:/data" in services[name]["volumes"]
    mlflow = " ".join(services["mlflow"]["command"])
    assert "sqlite:////data/mlflow/mlflow.db" in mlflow  # the store fsml writes under FSML_HOME=/data
    assert set(COMPOSE["volumes"]) == {"redis-data", "fsml-home", "prometheus-data", "grafana-data"}
    for service in ("prometheus", "grafana"):  # provisioning files exist where they are mounted from
        for volume in services[service]["volumes"]:
            if volume.startswith("./"):
                assert (ROOT / volume.split(":")[0]).exists(), volume
    assert "--metrics-port" in services["monitor"]["command"]


@pytest.mark.parametrize("command", [c for c in _commands() if c[0] == "fsml"], ids=lambda c: " ".join(c[:2]))
def test_every_fsml_command_exists_with_its_options(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command[1:], "--help"], prog_name="fsml")
    assert result.exit_code == 0, result.output


def test_mlflow_ui_command_exists() -> None:
    command = next(c for c in _commands() if c[0] == "mlflow")
    mlflow = Path(sys.executable).parent / "mlflow"
    options = [c for c in command[1:] if c.startswith("--")]
    done = subprocess.run([str(mlflow), command[1], "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    for option in options:
        assert option in done.stdout


REQUIRED = re.compile(r"^\$\{(\w+):\?[^}]*\.env[^}]*\}$")


def test_secrets_come_from_the_users_env_file_and_stop_compose_when_missing() -> None:
    """No empty default: ``${VAR:?message}`` makes compose refuse to start without the value."""
    services = COMPOSE["services"]
    for name in ("api", "monitor"):
        environment = services[name]["environment"]
        assert REQUIRED.match(environment["FSML_API_KEY"]).group(1) == "FSML_API_KEY"
        password = environment["REDIS_URL"].split("redis://:", 1)[1].split("@redis:", 1)[0]
        assert REQUIRED.match(password).group(1) == "REDIS_PASSWORD"
    text = (ROOT / "docker-compose.yml").read_text()
    assert ":-}" not in text and "FSML_API_KEY:-" not in text  # no empty fallback anywhere
    readme = (ROOT / "README.md").read_text()
    assert "FSML_API_KEY=" in readme and "REDIS_PASSWORD=" in readme and ".env" in readme


def test_redis_has_a_password_and_is_not_published() -> None:
    redis = COMPOSE["services"]["redis"]
    command = redis["command"]
    assert REQUIRED.match(command[command.index("--requirepass") + 1]).group(1) == "REDIS_PASSWORD"
    assert REQUIRED.match(redis["environment"]["REDISCLI_AUTH"])  # the health check authenticates
    assert all(str(p).startswith("127.0.0.1:") for p in redis.get("ports", []))
    for name, service in COMPOSE["services"].items():  # whatever is published and has no auth: local only
        if name in ("mlflow",):
            assert all(str(p).startswith("127.0.0.1:") for p in service["ports"])


def test_image_runs_unprivileged_with_a_health_check() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)$", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0")
    assert dockerfile.index("USER ") > dockerfile.rindex("RUN ")  # nothing runs as root after it
    check = re.search(r"^HEALTHCHECK .*\n\s+CMD (.*)$", dockerfile, re.M)
    assert check and "/healthz" in check.group(1)
    for service in COMPOSE["services"].values():  # the image's check does not fit the other commands
        if service.get("command", [None])[0] != "fsml" or service["command"][1] != "serve":
            assert "healthcheck" in service
