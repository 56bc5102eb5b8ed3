"""Processes killed in the middle of their work: what is lost is bounded, nothing stays behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import duckdb
import httpx
import psutil
import pytest
from fsml.serving.process import ServerProcess

from fsml.registry import FAILURE_TAG, client, experiment_id, fail_stale_runs, owner_tags
from tests.conftest import AS_OF, Champion, make_settings

pytestmark = pytest.mark.e2e

BODY = {"customer_id": 3, "merchant_id": 5, "amount": 42.5, "timestamp": AS_OF.isoformat()}
FLUSH_SECONDS = 1.0  # the default of FSML_LOG_FLUSH_SECONDS, which the README's promise quotes


def test_a_sigkill_under_load_loses_at_most_one_flush_interval_of_log_rows(champion: Champion) -> None:
    tag = uuid.uuid4().hex[:8]
    service = ServerProcess(champion.settings, extra_env={"FSML_LOG_FLUSH_SECONDS": str(FLUSH_SECONDS)}).start()
    answered: dict[str, float] = {}
    stop = threading.Event()

    def load(worker: int) -> None:
        with httpx.Client(base_url=service.url, timeout=5) as api:
            for i in range(1_000_000):
                if stop.is_set():
                    return
                tid = f"{tag}-{worker}-{i}"
                try:
                    reply = api.post("/v1/predict", json={**BODY, "transaction_id": tid})
                except httpx.HTTPError:
                    return
                if reply.status_code == 200:
                    answered[tid] = time.monotonic()

    threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(4.0)
        killed_at = time.monotonic()
        os.kill(service._process.pid, signal.SIGKILL)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        service.stop()
    pattern = f"{champion.settings.prediction_log_dir}/**/*.parquet"
    logged = {row[0] for row in duckdb.sql(f"SELECT transaction_id FROM read_parquet('{pattern}')").fetchall()} & set(
        answered
    )
    lost = set(answered) - logged
    recent = {t for t, at in answered.items() if at >= killed_at - FLUSH_SECONDS - 0.5}
    print(f"answered {len(answered)}, logged {len(logged)}, lost {len(lost)}, last interval {len(recent)}")
    assert len(answered) > 200
    assert lost <= recent  # only rows of the last flush interval (and the write under way) are lost


def test_workers_end_when_the_master_is_killed(champion: Champion) -> None:
    service = ServerProcess(champion.settings, workers=2).start()
    try:
        master = psutil.Process(service._process.pid)
        workers = master.children(recursive=True)
        assert len(workers) >= 2
        assert httpx.get(service.url + "/healthz", timeout=5).status_code == 200
        master.send_signal(signal.SIGKILL)
        _, alive = psutil.wait_procs(workers, timeout=20)
        assert alive == []
        with pytest.raises(httpx.ConnectError):
            httpx.get(service.url + "/healthz", timeout=2)
    finally:
        service.stop()


HOLD_A_RUN = textwrap.dedent(
    """
    import sys, time
    from fsml.registry import client, experiment_id, owner_tags
    from fsml.settings import Settings
    settings = Settings()
    mlflow_client = client(settings)
    run = mlflow_client.create_run(experiment_id(settings, mlflow_client), tags=owner_tags())
    print(run.info.run_id, flush=True)
    time.sleep(120)
    """
)

TERMINATED_IN_REGISTRATION = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import mlflow
    from fsml import registry
    from fsml.settings import Settings
    from fsml.signals import terminate_as_exception
    terminate_as_exception()
    bundle = registry.load_champion(Settings(), "")
    def slow(*args, **kwargs):
        print("registering", flush=True)
        time.sleep(120)
    mlflow.log_artifacts = slow
    target = Settings(home=Path(sys.argv[1]))
    record = registry.TrainingRecord(params={}, tags={}, artifacts={"x": Path(sys.argv[1])})
    registry.register_training(target, bundle, record)
    """
)


def _child(script: str, settings, *args: str) -> subprocess.Popen[str]:
    from fsml.serving.process import settings_environ

    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        env=settings_environ(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def test_a_killed_trainings_run_is_marked_failed_at_the_next_start(champion: Champion, tmp_path: Path) -> None:
    from fsml.training.pipeline import train

    settings = make_settings(tmp_path / "home", champion.settings.redis_url)
    child = _child(HOLD_A_RUN, settings)
    run_id = child.stdout.readline().strip()
    child.send_signal(signal.SIGKILL)
    child.wait()
    mlflow_client = client(settings)
    assert mlflow_client.get_run(run_id).info.status == "RUNNING"
    mine = mlflow_client.create_run(experiment_id(settings, mlflow_client), tags=owner_tags())  # a live owner
    with pytest.raises(Exception):  # noqa: B017  (the next training starts, then fails: no Feast registry here)
        train(settings, feature_service="nope")
    killed = mlflow_client.get_run(run_id)
    assert killed.info.status == "FAILED" and killed.data.tags[FAILURE_TAG].startswith("killed:")
    assert mlflow_client.get_run(mine.info.run_id).info.status == "RUNNING"
    assert fail_stale_runs(settings) == []
    mlflow_client.set_terminated(mine.info.run_id, "FINISHED")


def test_a_sigterm_during_registration_ends_the_run_failed(champion: Champion, tmp_path: Path) -> None:
    from mlflow.entities import ViewType

    target = tmp_path / "home"
    child = _child(TERMINATED_IN_REGISTRATION, champion.settings, str(target))
    assert child.stdout.readline().strip() == "registering"
    child.send_signal(signal.SIGTERM)
    assert child.wait(timeout=60) != 0
    settings = make_settings(target, champion.settings.redis_url, env=champion.settings.env)
    mlflow_client = client(settings, create=False)
    runs = mlflow_client.search_runs([experiment_id(settings, mlflow_client)], run_view_type=ViewType.ALL)
    assert [(r.info.status, r.info.lifecycle_stage) for r in runs] == [("FAILED", "deleted")]
    assert json.dumps(runs[0].data.tags[FAILURE_TAG]).find("SIGTERM") > 0
