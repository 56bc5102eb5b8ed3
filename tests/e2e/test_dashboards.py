"""deploy/: the alert rules and Prometheus config pass promtool, and every metric the Grafana
dashboard and the rules use is one the running service or the monitor really exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import AS_OF, Champion

pytestmark = pytest.mark.e2e

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "fsml.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (apt-get install prometheus; .ci/run does)"
)


@needs_promtool
def test_promtool_accepts_the_rules_and_the_config(tmp_path: Path) -> None:
    done = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 11 rules found" in done.stdout
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["rule_files"] = [str(RULES)]  # the compose mount point, here
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    done = subprocess.run([PROMTOOL, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def _expressions() -> list[str]:
    rules = yaml.safe_load(RULES.read_text())
    found = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    found += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    return found


def used_metrics() -> set[str]:
    names = set()
    for expr in _expressions():
        expr = re.sub(r'"[^"]*"', '""', expr)  # label values are not metric names
        expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)
        for token in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
            if token.startswith(("fsml_", "process_")):
                names.add(token)
    return names


def exposed(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()[:4]
            names.add(name)
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def test_dashboard_and_rules_use_only_exposed_metrics(server, champion: Champion) -> None:
    from fsml.monitoring.metrics import exposition
    from fsml.monitoring.monitor import run_monitor

    body = {"customer_id": 3, "merchant_id": 5, "amount": 42.5, "timestamp": AS_OF.isoformat()}
    for _ in range(5):
        assert httpx.post(server.url + "/v1/predict", json=body).status_code == 200
    time.sleep(2 * champion.settings.log_flush_seconds + 0.5)  # the prediction log is on disk
    run_monitor(champion.settings, AS_OF + timedelta(hours=1))  # a real monitor round: the history it records
    service = httpx.get(server.url + "/metrics").text
    monitor = exposition(champion.settings)
    assert "fsml_drift_detected{" in monitor
    assert served_by_the_exporter(champion) == monitor
    available = exposed(service) | exposed(monitor)
    used = used_metrics()
    assert {
        "fsml_requests_total",
        "fsml_drift_detected",
        "fsml_retrain_runs_total",
        "process_cpu_seconds_total",
    } <= used
    assert not used - available, sorted(used - available)


def served_by_the_exporter(champion: Champion) -> str:
    """``fsml monitor metrics --port`` as a process: what Prometheus scrapes in Kubernetes."""
    import subprocess
    import sys

    from fsml.serving.process import settings_environ

    from fsml.redis_server import free_port

    port = free_port()
    command = [
        str(Path(sys.executable).parent / "fsml"),
        "monitor",
        "metrics",
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
    ]
    process = subprocess.Popen(command, env=settings_environ(champion.settings), stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            try:
                return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "fsml monitor metrics did not answer"
                time.sleep(0.3)
    finally:
        process.terminate()
        process.wait(timeout=30)
