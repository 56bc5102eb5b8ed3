"""The promotion gate's live record: both models on the rows they both scored in production."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from fsml.training.live import live_scores, live_verdict

from fsml.featurestore import LabelSource

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
RNG = np.random.default_rng(2)


def _world(tmp_path: Path, rows: int = 4_000) -> LabelSource:
    ids = np.arange(1, rows + 1)
    label = (RNG.random(rows) < 0.05).astype(int)
    at = pd.Timestamp(AS_OF) - pd.to_timedelta(RNG.integers(-5, 20, rows), unit="D")  # some not known yet
    pd.DataFrame({"tid": ids, "fraud": label, "known_at": at}).to_parquet(tmp_path / "labels.parquet")
    good = np.clip(label * 0.6 + RNG.random(rows) * 0.5, 0, 1)  # the challenger separates better
    poor = np.clip(label * 0.2 + RNG.random(rows) * 0.5, 0, 1)
    part = tmp_path / "log" / "date=2026-10-20" / "hour=10"
    part.mkdir(parents=True)
    log = pd.DataFrame(
        {
            "event_timestamp": pd.Timestamp(AS_OF - timedelta(days=12)),
            "tid": ids.astype(str),
            "model_version": "2",
            "score": good,
            "paired_version": np.where(ids % 10 == 0, "0", "1"),  # a tenth scored beside another model
            "paired_score": poor,
            "route": np.where(ids % 2 == 0, "shadow", "canary"),
        }
    )
    log.to_parquet(part / "part-1.parquet")
    return LabelSource("tx", tmp_path / "labels.parquet", "ts", "fraud", "known_at", "tid")


def test_both_models_on_the_same_matured_rows(tmp_path: Path) -> None:
    source = _world(tmp_path)
    live = live_scores(tmp_path / "log", source, "2", "1", AS_OF, min_positives=20)
    assert live["status"] == "measured" and live["rows"] == 3_600
    assert 0 < live["labelled_rows"] < live["rows"]  # labels not yet known are left out
    assert live["challenger"]["pr_auc"] > live["champion"]["pr_auc"]
    ok, reason = live_verdict(live, margin=0.0)
    assert ok and reason.startswith("live (")
    reversed_ = {**live, "challenger": live["champion"], "champion": live["challenger"]}
    assert not live_verdict(reversed_, margin=0.0)[0]


def test_without_enough_live_labels_the_offline_gate_decides(tmp_path: Path) -> None:
    source = _world(tmp_path, rows=200)
    live = live_scores(tmp_path / "log", source, "2", "1", AS_OF, min_positives=50)
    assert live["status"] == "waiting for labels"
    assert live_verdict(live, 0.0) == (True, f"live: waiting for labels ({live['positives']} positives)")
    nothing = live_scores(tmp_path / "none", source, "2", "1", AS_OF, min_positives=5)
    assert nothing["status"] == "no live rows scored by both models"
