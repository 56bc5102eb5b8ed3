"""Batch scoring follows the same missing-features policy as the service."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from fsml.serving.batch import score_file

from tests.conftest import AS_OF, Champion

pytestmark = pytest.mark.integration


def _input(tmp_path: Path) -> Path:
    source = tmp_path / "in.parquet"
    pd.DataFrame(
        {
            "transaction_id": [1, 2, 3],
            "customer_id": [3, 99_999_999, 99_999_999],  # known; unknown; unknown
            "merchant_id": [5, 5, 99_999],  # known; known; unknown
            "amount": [42.5, 42.5, 42.5],
            "timestamp": pd.Series([pd.Timestamp(AS_OF)] * 3).astype("datetime64[us, UTC]"),
        }
    ).to_parquet(source)
    return source


@pytest.mark.parametrize("policy", ["review", "flag", "pass"])
def test_rows_with_every_stored_feature_missing_follow_the_policy(
    champion: Champion, tmp_path: Path, policy: str
) -> None:
    settings = champion.settings.model_copy(update={"missing_features_decision": policy})
    result = score_file(settings, _input(tmp_path), tmp_path / "out.parquet")
    scored = pd.read_parquet(result["output"]).set_index("transaction_id")
    assert scored["all_missing"].tolist() == [False, False, True]
    assert scored.loc[3, "decision"] == policy
    assert set(scored.loc[[1, 2], "decision"]) <= {"flag", "pass"}


def test_overwrite_replaces_the_output_and_its_stale_side_file(champion: Champion, tmp_path: Path) -> None:
    target = tmp_path / "out.parquet"
    stale = tmp_path / "out.rejected.parquet"
    target.write_bytes(b"old")
    stale.write_bytes(b"old rejects")
    score_file(champion.settings, _input(tmp_path), target, overwrite=True)
    assert len(pd.read_parquet(target)) == 3 and not stale.exists()
