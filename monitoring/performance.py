"""Model performance on logged traffic, once its labels have matured (concept drift).

Logged predictions are joined to the label source by its id column (the ``fsml.id`` tag; the
log holds it as text under the same name); only labels available at the as-of time count. The
result is compared with the model's own test-window figures.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from fsml.featurestore import LabelSource
from fsml.model import ModelCard
from fsml.stores import quote_name


def labelled(logged: pd.DataFrame, source: LabelSource, as_of: datetime) -> pd.DataFrame:
    """Logged (id, score) rows with their label, where the label is known at ``as_of``; ``log_row``
    is the logged row's index label, to look up anything else about it (its segment)."""
    ids = logged[source.id] if source.id in logged else pd.Series(None, index=logged.index, dtype=object)
    rows = pd.DataFrame({"id": ids, "score": logged["score"], "log_row": logged.index}).loc[ids.notna()]
    rows["id"] = rows["id"].astype(str)
    if rows.empty or not source.exists():
        return rows.assign(label=pd.Series(dtype="int64")).iloc[0:0]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("logged", rows)
    return con.execute(
        f"""SELECT l.id, l.score, l.log_row, CAST(s.{quote_name(source.label)} AS BIGINT) AS label
            FROM logged l JOIN {source.relation()} s ON l.id = CAST(s.{quote_name(source.id)} AS VARCHAR)
            WHERE s.{quote_name(source.available_at)}::TIMESTAMPTZ <= $as_of""",
        {"as_of": as_of},
    ).df()


def performance(
    logged: pd.DataFrame,
    source: LabelSource,
    card: ModelCard,
    as_of: datetime,
    tolerance: float,
    min_positives: int,
) -> dict[str, Any]:
    joined = labelled(logged, source, as_of)
    return measure(joined, len(logged), card, tolerance, min_positives)


def measure(
    joined: pd.DataFrame, logged_rows: int, card: ModelCard, tolerance: float, min_positives: int
) -> dict[str, Any]:
    """Realised figures of labelled rows against the model's test-window PR-AUC."""
    y, score = joined["label"].to_numpy(np.int64), joined["score"].to_numpy(np.float64)
    positives = int(y.sum())
    reference = card.metrics.get("test_pr_auc", float("nan"))
    out: dict[str, Any] = {
        "logged_rows": logged_rows,
        "labelled_rows": len(joined),
        "positives": positives,
        "reference_pr_auc": reference,
        "tolerance": tolerance,
    }
    if positives < min_positives or positives == len(y):
        return out | {"status": "waiting for labels", "degraded": False}
    flagged = score >= card.threshold
    pr_auc = float(average_precision_score(y, score))
    floor = reference * (1 - tolerance)
    return out | {
        "status": "measured",
        "pr_auc": pr_auc,
        "roc_auc": float(roc_auc_score(y, score)),
        "recall_at_threshold": float(np.sum(flagged & (y == 1)) / positives),
        "precision_at_threshold": float(np.sum(flagged & (y == 1)) / max(int(flagged.sum()), 1)),
        "positive_rate": float(y.mean()),
        "floor": floor,
        "degraded": pr_auc < floor,
    }
