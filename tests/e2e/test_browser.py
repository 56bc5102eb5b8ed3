"""What a user sees in a browser: Feast's UI on our repo and the API docs, rendered by headless
Chromium (Debian's ``chromium``) with every host but this machine unreachable."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from fsml.serving.process import settings_environ

from fsml.redis_server import free_port
from tests.conftest import Champion

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does)"
)


def rendered(url: str, budget_ms: int = 20_000) -> str:
    """The DOM after the page's scripts ran, with no network but this machine (no CDN)."""
    with tempfile.TemporaryDirectory() as profile:
        command = [
            str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            f"--virtual-time-budget={budget_ms}", "--dump-dom", url,
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@needs_chromium
def test_docs_render_offline_with_every_route(server) -> None:
    dom = rendered(server.url + "/docs")
    assert "swagger-ui" in dom and "fsml scoring service" in dom
    for route in ("/v1/predict", "/v1/predict/batch", "/v1/model", "/readyz", "/admin/reload"):
        assert f'data-path="{route}"' in dom or f">{route}<" in dom, route
    redoc = rendered(server.url + "/redoc")
    assert "/v1/predict/batch" in redoc and "X-API-Key" in redoc


@needs_chromium
def test_feast_ui_shows_the_feature_views(champion: Champion) -> None:
    port = free_port()
    env = settings_environ(champion.settings)
    command = [str(Path(sys.executable).parent / "fsml"), "ui", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            try:
                projects = httpx.get(url + "/projects-list.json", timeout=2).json()["projects"]
                break
            except (httpx.HTTPError, ValueError):
                assert time.monotonic() < deadline, "fsml ui did not start"
                time.sleep(0.5)
        project = champion.settings.feast_project
        assert project in {p["id"] for p in projects}
        dom = rendered(f"{url}/p/{project}/feature-view")
    finally:
        process.terminate()
        process.wait(timeout=30)
    for view in ("customer_profile", "customer_transaction_windows", "merchant_risk", "transaction_context"):
        assert view in dom, view


def test_ci_installs_the_browser_and_promtool() -> None:
    """CI is a fresh machine: the tests above must run there, not skip."""
    script = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    assert "missing+=(chromium)" in script and "missing+=(prometheus)" in script
