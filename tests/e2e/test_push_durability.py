"""An acknowledged push survives SIGKILL of the server and of redis-server; Redis down refuses
pushes with nothing written; a push killed between its offline and its online write is finished
by the next process, and counted once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
import redis
from fsml.features.eventlog import EventLog
from fsml.serving.process import ServerProcess, settings_environ

from fsml.redis_server import RedisServer
from tests.conftest import API_KEY, AS_OF, Champion, live_settings

pytestmark = pytest.mark.e2e

PROJECT = "fraud_staging"  # the champion's environment
SEEN = f"fsml:{PROJECT}:push:transactions:seen"


def _rows(first: int, n: int) -> list[dict]:
    return [
        {"transaction_id": 8_000_000_000 + i, "customer_id": 5_000_000 + i % 7, "merchant_id": 1 + i % 5,
         "amount": 1.0 + i, "timestamp": (AS_OF + timedelta(seconds=i)).isoformat()}
        for i in range(first, first + n)
    ]  # fmt: skip


def _offline_ids(settings) -> set[int]:  # noqa: ANN001
    log = EventLog(settings.data_dir / "events" / "transactions")
    return {i for f in log.files() for i in pq.read_table(f, columns=["transaction_id"])["transaction_id"].to_pylist()}


def _online(url: str, ids: set[int]) -> tuple[set[int], int]:
    client = redis.Redis.from_url(url)
    held = client.hmget(SEEN, [str(i) for i in sorted(ids)])
    found = {i for i, h in zip(sorted(ids), held, strict=True) if h is not None}
    events = sum(client.zcard(k) for k in client.scan_iter(match=f"fsml:{PROJECT}:window:*", count=1000))
    return found, events


def test_acknowledged_pushes_survive_sigkill_and_redis_outages(champion: Champion, tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", persist=True).start()
    settings = live_settings(champion, tmp_path / "home", server.url)
    api = ServerProcess(settings).start()
    headers = {"X-API-Key": API_KEY}
    acked: set[int] = set()
    try:
        with httpx.Client(base_url=api.url, timeout=30, headers=headers) as client:
            for batch in range(10):
                rows = _rows(batch * 40, 40)
                assert client.post("/v1/push/transactions", json={"rows": rows}).json()["accepted"] == 40
                acked |= {r["transaction_id"] for r in rows}
            before = _offline_ids(settings)
            server.stop()  # Redis down: refused, nothing written anywhere
            down = client.post("/v1/push/transactions", json={"rows": _rows(1000, 5)})
            assert down.status_code == 503 and "nothing acknowledged" in down.text
            assert _offline_ids(settings) == before
            assert not list((settings.data_dir / "events" / "transactions" / "_pending").glob("*.pending"))
            server.start()
            again = client.post("/v1/push/transactions", json={"rows": _rows(1000, 5)})
            assert again.json() == {"accepted": 5, "duplicates": 0}
            acked |= {r["transaction_id"] for r in _rows(1000, 5)}
            last = _rows(2000, 40)
            assert client.post("/v1/push/transactions", json={"rows": last}).json()["accepted"] == 40
            acked |= {r["transaction_id"] for r in last}
        api.kill()  # right after the answer, both processes die without a chance to flush
        server.kill()
        server.start()
        assert _offline_ids(settings) >= acked
        found, events = _online(server.url, acked)
        assert found == acked and events >= len(acked)
        api = ServerProcess(settings).start()
        with httpx.Client(base_url=api.url, timeout=30, headers=headers) as client:
            assert client.post("/v1/push/transactions", json={"rows": last}).json() == {"accepted": 0, "duplicates": 40}
    finally:
        api.stop()
        server.stop()


CRASH = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from fsml.settings import Settings
    from fsml.serving.push import ingestor
    from fsml.serving.redis_client import RedisClient

    class DiesBeforeRedis(RedisClient):
        async def execute(self, commands, keys):
            if commands[0].startswith(b"*") and b"EVAL" in commands[0][:40]:
                if os.environ["APPLIED"] != "0":  # the first script only
                    await super().execute(commands[:1], keys[:1])
                os.kill(os.getpid(), signal.SIGKILL)  # after the pending file, before (the rest of) Redis
            return await super().execute(commands, keys)

    async def main():
        settings = Settings()
        rows = [{"transaction_id": 9_100_000_000 + i, "customer_id": 6_000_000, "merchant_id": 2,
                 "amount": 3.5, "timestamp": "2026-10-31T12:00:%02d+00:00" % i} for i in range(12)]
        await ingestor(settings, DiesBeforeRedis(settings.redis_url)).push("transactions", rows)

    asyncio.run(main())
    """
)


@pytest.mark.parametrize("applied", [0, 4], ids=["before-redis", "between-scripts"])
def test_a_push_killed_between_its_two_writes_is_finished_by_the_next_process(
    champion: Champion, tmp_path: Path, applied: int
) -> None:
    """Killed after its pending file, before Redis saw it (``applied`` 0) or after the first of
    its three 4-row scripts: the next process finishes the push, every row once."""
    with RedisServer(tmp_path / "redis", persist=True) as server:
        settings = live_settings(champion, tmp_path / "home", server.url).model_copy(update={"push_apply_rows": 4})
        env = {**settings_environ(settings), "APPLIED": str(applied)}
        done = subprocess.run([sys.executable, "-c", CRASH], env=env, capture_output=True)
        assert done.returncode == -9, done.stderr.decode()[-2000:]
        pending = list((settings.data_dir / "events" / "transactions" / "_pending").glob("*.pending"))
        assert len(pending) == 1
        ids = {9_100_000_000 + i for i in range(12)}
        assert not ids & _offline_ids(settings) and len(_online(server.url, ids)[0]) == applied
        with ServerProcess(settings) as api:  # start-up finishes the dead process's push
            found, _ = _online(server.url, ids)
            assert found == ids and ids <= _offline_ids(settings)
            assert not list(pending[0].parent.glob("*.pending"))
            rows = [{"transaction_id": i, "customer_id": 6_000_000, "merchant_id": 2, "amount": 3.5,
                     "timestamp": "2026-10-31T12:00:00+00:00"} for i in sorted(ids)]  # fmt: skip
            reply = httpx.post(f"{api.url}/v1/push/transactions", json={"rows": rows}, headers={"X-API-Key": API_KEY})
            assert reply.json() == {"accepted": 0, "duplicates": 12}
