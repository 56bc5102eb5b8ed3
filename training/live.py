"""The challenger's live record: rows both models scored in production, with their labels.

With ``FSML_SHADOW_FRACTION`` or ``FSML_CANARY_FRACTION`` set, the service scores the challenger
beside the champion on live requests, and writes each such row to the challenger's own log with
both scores (``score`` and ``model_version`` the challenger's, ``paired_score`` and
``paired_version`` the champion's). Once their labels mature, the promotion gate compares the two
models on exactly those rows, as well as on the offline window.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from fsml.featurestore import LabelSource
from fsml.tables import quote_name


def live_scores(
    directory: Path,
    source: LabelSource,
    challenger: str,
    champion: str | None,
    as_of: datetime,
    min_positives: int,
) -> dict[str, Any]:
    """Both models' PR-AUC and ROC-AUC on the live rows they both scored, labels known at ``as_of``."""
    files = sorted(str(p) for p in directory.glob("date=*/hour=*/*.parquet"))
    out: dict[str, Any] = {"log": str(directory), "rows": 0, "labelled_rows": 0, "positives": 0}
    if not files or champion is None or not source.exists():
        return out | {"status": "no live rows scored by both models"}
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    rows = con.execute(
        f"""SELECT l.{quote_name(source.id)} AS id, l.score, l.paired_score, l.route
            FROM read_parquet(?, union_by_name = true) l
            WHERE l.model_version = ? AND l.paired_version = ? AND l.paired_score IS NOT NULL""",
        [files, challenger, champion],
    ).df()
    con.register("live", rows)
    label, key, at = (quote_name(c) for c in (source.label, source.id, source.available_at))
    joined = con.execute(
        f"""SELECT l.score, l.paired_score, CAST(s.{label} AS BIGINT) AS label
            FROM live l JOIN {source.relation()} s ON l.id = CAST(s.{key} AS VARCHAR)
            WHERE CAST(s.{at} AS TIMESTAMPTZ) <= ?""",
        [as_of],
    ).df()
    y = joined["label"].to_numpy(np.int64)
    out |= {
        "rows": len(rows),
        "routes": rows["route"].value_counts().to_dict(),
        "labelled_rows": len(y),
        "positives": int(y.sum()),
    }
    if out["positives"] < min_positives or out["positives"] == len(y):
        return out | {"status": "waiting for labels"}
    figures = {}
    for role, column in (("challenger", "score"), ("champion", "paired_score")):
        score = joined[column].to_numpy(np.float64)
        figures[role] = {
            "pr_auc": float(average_precision_score(y, score)),
            "roc_auc": float(roc_auc_score(y, score)),
        }
    return out | {"status": "measured", **figures}


def live_verdict(live: dict[str, Any], margin: float) -> tuple[bool, str]:
    """Whether the live record lets the challenger through: it must be at least as good there
    too; without enough labelled live rows, it does not stand in the way."""
    if live.get("status") != "measured":
        return True, f"live: {live.get('status')} ({live.get('positives', 0)} positives)"
    ours, theirs = live["challenger"]["pr_auc"], live["champion"]["pr_auc"]
    ok = not math.isnan(ours) and ours >= theirs + margin
    relation = ">=" if ok else "<"
    return ok, (
        f"live ({live['labelled_rows']:,} rows both scored): PR-AUC {ours:.4f} {relation} champion "
        f"{theirs:.4f} + margin {margin}"
    )
