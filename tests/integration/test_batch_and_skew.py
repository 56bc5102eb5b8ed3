"""Batch scoring with bad rows, and the same features and score online and in batch."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from fsml.serving.batch import score_file
from fsml.serving.materialize import materialize
from fsml.serving.scorer import load_champion

from fsml.errors import FsmlError
from fsml.featurestore import describe_service, open_store
from fsml.redis_server import RedisServer
from tests.conftest import AS_OF, Champion

pytestmark = pytest.mark.integration

ROWS = 240


def _requests(champion: Champion, at: pd.Timestamp, seed: int) -> pd.DataFrame:
    """Transactions at one moment: known and unknown customers, every merchant, many amounts."""
    rng = np.random.default_rng(seed)
    customers = rng.integers(1, 420, ROWS)  # a few ids beyond the 400 customers: unknown
    return pd.DataFrame(
        {
            "transaction_id": np.arange(1, ROWS + 1),
            "customer_id": customers,
            "merchant_id": rng.integers(1, 81, ROWS),
            "amount": np.round(rng.lognormal(3.3, 1.0, ROWS), 2),
            "timestamp": pd.Series([at] * ROWS).astype("datetime64[us, UTC]"),
        }
    )


def test_batch_scoring_sets_bad_rows_aside(champion: Champion, tmp_path: Path) -> None:
    rows = _requests(champion, pd.Timestamp(AS_OF), seed=1).head(20).astype({"amount": object, "customer_id": object})
    rows.loc[0, "amount"] = -3.0
    rows.loc[1, "amount"] = float("inf")
    rows.loc[2, "customer_id"] = None
    rows.loc[3, "timestamp"] = pd.NaT
    rows.loc[4, "customer_id"] = 2.5
    source = tmp_path / "in.parquet"
    rows.astype({"amount": float, "customer_id": float}).to_parquet(source)
    result = score_file(champion.settings, source, tmp_path / "out.parquet")
    assert (result["rows_in"], result["rows_scored"], result["rows_rejected"]) == (20, 15, 5)
    assert result["model_version"] == champion.outcome.registered.version
    rejected = pd.read_parquet(result["rejected"]).set_index("transaction_id")["reason"].to_dict()
    assert rejected == {
        1: "amount: below 0",
        2: "amount: not finite",
        3: "customer_id: missing or not a number",
        4: "timestamp: missing or not a time",
        5: "customer_id: not an integer",
    }
    scored = pd.read_parquet(result["output"])
    assert list(scored["transaction_id"]) == list(range(6, 21))  # input order kept
    assert scored["score"].between(0, 1).all() and set(scored["decision"]) <= {"flag", "pass"}
    metadata = pq.read_schema(result["output"]).metadata
    assert metadata[b"fsml.model_version"].decode() == champion.outcome.registered.version


def test_batch_scoring_bad_files_are_one_line_errors(champion: Champion, tmp_path: Path) -> None:
    with pytest.raises(FsmlError, match="no input file"):
        score_file(champion.settings, tmp_path / "nope.parquet", tmp_path / "out.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 broken")
    with pytest.raises(FsmlError, match="cannot read .* as Parquet"):
        score_file(champion.settings, tmp_path / "bad.parquet", tmp_path / "out.parquet")
    pd.DataFrame({"customer_id": [1]}).to_parquet(tmp_path / "thin.parquet")
    with pytest.raises(FsmlError, match="no column.*merchant_id"):
        score_file(champion.settings, tmp_path / "thin.parquet", tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


def _batch(champion: Champion, rows: pd.DataFrame, tmp_path: Path) -> pd.DataFrame:
    rows.to_parquet(tmp_path / "in.parquet")
    result = score_file(champion.settings, tmp_path / "in.parquet", tmp_path / "out.parquet")
    assert result["rows_rejected"] == 0
    return pd.read_parquet(tmp_path / "out.parquet").set_index("transaction_id")


def _offline_features(champion: Champion, rows: pd.DataFrame) -> pd.DataFrame:
    from fsml.training.dataset import with_features

    store = open_store(champion.settings)
    spec = describe_service(store, champion.settings.feature_service)
    return with_features(store, spec, rows.assign(event_timestamp=rows["timestamp"])).set_index("transaction_id")


def _assert_same(online: dict[int, dict], offline: pd.DataFrame, columns: list[str]) -> None:
    for tid, values in online.items():
        for column in columns:
            a, b = values[column], offline.loc[tid, column]
            if a is None or (isinstance(b, float) and np.isnan(b)) or b is None:
                assert a is None and (b is None or pd.isna(b)), f"{column} of {tid}: {a} != {b}"
            elif isinstance(a, str):
                assert a == b
            else:
                assert a == pytest.approx(float(b), rel=1e-12, abs=1e-12), f"{column} of {tid}"


def test_online_and_batch_agree_over_http(champion: Champion, server, tmp_path: Path) -> None:
    """Same transactions at the same moment: features and scores online equal those in batch."""
    rows = _requests(champion, pd.Timestamp(AS_OF), seed=2)
    body = [{**r, "timestamp": AS_OF.isoformat()} for r in rows.drop(columns="timestamp").to_dict("records")]
    online = {}
    with httpx.Client(base_url=server.url, timeout=30) as api:
        for start in range(0, ROWS, 40):
            reply = api.post("/v1/predict/batch?include_values=true", json={"rows": body[start : start + 40]})
            assert reply.status_code == 200, reply.text
            online |= {p["transaction_id"]: p for p in reply.json()["predictions"]}
    batch = _batch(champion, rows, tmp_path)
    offline = _offline_features(champion, rows)
    columns = champion.outcome.trained.bundle.card.columns
    _assert_same({t: p["features"]["values"] for t, p in online.items()}, offline, columns)
    scores_online = np.array([online[t]["score"] for t in batch.index])
    np.testing.assert_allclose(scores_online, batch["score"].to_numpy(), rtol=1e-6, atol=1e-7)
    assert any(online[t]["features"]["missing"] for t in online)  # unknown customers are covered


async def _read(url: str, scorer, requests: list[dict], moment) -> list:  # noqa: ANN001
    """The service's own read: one pipelined payload (hashes and window events) on its client."""
    from fsml.serving.redis_client import RedisClient

    client = RedisClient(url, timeout=10)
    try:
        return await client.execute(*scorer.reader.requests(requests, moment))
    finally:
        await client.aclose()


def test_online_path_agrees_with_offline_mid_history(champion: Champion, tmp_path: Path) -> None:
    """At another moment, inside the data: materialize up to it, read as the service does."""
    moment = AS_OF - timedelta(days=3, hours=-7, minutes=-13)
    server = RedisServer(tmp_path / "redis").start()
    try:
        settings = champion.settings.model_copy(update={"redis_url": server.url})
        materialize(settings, end=moment)
        scorer = load_champion(settings)
        rows = _requests(champion, pd.Timestamp(moment), seed=3)
        requests = [{**r, "timestamp": moment} for r in rows.drop(columns="timestamp").to_dict("records")]
        vectors = scorer.reader.assemble(requests, asyncio.run(_read(server.url, scorer, requests, moment)), moment)
        online = {r["transaction_id"]: v.values for r, v in zip(requests, vectors, strict=True)}
        _assert_same(online, _offline_features(champion, rows), scorer.bundle.card.columns)
        batch = _batch(champion, rows, tmp_path)
        np.testing.assert_allclose(scorer.predict(vectors), batch.loc[rows["transaction_id"], "score"], rtol=1e-6)
    finally:
        server.stop()
