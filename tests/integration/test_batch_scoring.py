"""Batch scoring in slices: the answers of the point-in-time path through Feast, for files,
directories and globs, and nothing written when a job fails."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from fsml.serving import batch_task
from fsml.serving.batch import score_file

from fsml.errors import FsmlError
from fsml.featurestore import describe_service, open_store
from tests.conftest import AS_OF, Champion

pytestmark = pytest.mark.integration


def _transactions(champion: Champion, days: float = 4) -> pd.DataFrame:
    """Recent transactions with unknown customers, text numbers and times, and bad rows."""
    frame = pd.read_parquet(champion.settings.raw_dir / "transactions.parquet")
    frame = frame[frame["timestamp"] >= pd.Timestamp(AS_OF) - timedelta(days=days)]
    frame = frame[["transaction_id", "customer_id", "merchant_id", "amount", "timestamp"]].reset_index(drop=True)
    frame.loc[::37, "customer_id"] += 10_000  # customers the store has never seen
    return frame


def _reference(champion: Champion, rows: pd.DataFrame) -> pd.DataFrame:
    """What the first implementation gave: Feast's get_historical_features on the whole file,
    the encoder on a DataFrame, one predict, and every null feature listed as missing."""
    from fsml.training.dataset import with_features

    from fsml import registry

    bundle = registry.load_champion(champion.settings, "")
    store = open_store(champion.settings)
    spec = describe_service(store, bundle.card.feature_service)
    features = with_features(store, spec, rows.assign(event_timestamp=rows["timestamp"]))
    features = features.set_index("transaction_id").loc[rows["transaction_id"]]
    scores = bundle.predict_matrix(bundle.encoder.frame(features), num_threads=2)
    absent = features[bundle.card.columns].isna().to_numpy()
    missing = [[c for c, a in zip(bundle.card.columns, row, strict=True) if a] for row in absent]
    return pd.DataFrame({"score": scores, "missing": missing}, index=rows["transaction_id"].to_numpy())


def test_slices_give_the_answers_of_the_whole_file_through_feast(champion: Champion, tmp_path: Path) -> None:
    rows = _transactions(champion)
    source = tmp_path / "in.parquet"
    rows.to_parquet(source, index=False)
    settings = champion.settings.model_copy(update={"score_chunk_rows": 97})
    result = score_file(settings, source, tmp_path / "out.parquet")
    assert result["slices"] > 5 and result["rows_scored"] == len(rows) and result["rows_rejected"] == 0
    scored = pd.read_parquet(tmp_path / "out.parquet").set_index("transaction_id")
    expected = _reference(champion, rows)
    assert sorted(scored.index) == sorted(expected.index)
    scored = scored.loc[expected.index]
    np.testing.assert_array_equal(scored["score"].to_numpy(), expected["score"].to_numpy())
    assert [list(m) for m in scored["missing_features"]] == list(expected["missing"])
    assert any(len(m) for m in expected["missing"]) and not all(len(m) for m in expected["missing"])
    threshold = champion.outcome.trained.bundle.card.threshold
    assert (scored["decision"] == np.where(scored["score"] >= threshold, "flag", "pass")).all()
    assert (scored["model_version"] == champion.outcome.registered.version).all()
    assert pq.read_schema(tmp_path / "out.parquet").metadata[b"fsml.engine"] == b"local"


def test_text_values_are_coerced_and_bad_ones_set_aside(champion: Champion, tmp_path: Path) -> None:
    rows = _transactions(champion, days=1).head(40)
    text = rows.astype({"customer_id": str, "amount": str}).assign(timestamp=rows["timestamp"].astype(str))
    text.loc[0, "amount"] = "lots"
    text.loc[1, "customer_id"] = "7.5"
    text.loc[2, "timestamp"] = "yesterday"
    text.to_parquet(tmp_path / "text.parquet", index=False)
    settings = champion.settings.model_copy(update={"score_chunk_rows": 15})
    result = score_file(settings, tmp_path / "text.parquet", tmp_path / "out.parquet")
    assert (result["rows_scored"], result["rows_rejected"]) == (37, 3)
    reasons = pd.read_parquet(result["rejected"]).set_index("transaction_id")["reason"]
    assert reasons.to_dict() == {
        rows.loc[0, "transaction_id"]: "amount: missing or not a number",
        rows.loc[1, "transaction_id"]: "customer_id: not an integer",
        rows.loc[2, "transaction_id"]: "timestamp: missing or not a time",
    }
    scored = pd.read_parquet(tmp_path / "out.parquet").set_index("transaction_id")
    expected = _reference(champion, rows.iloc[3:])
    np.testing.assert_array_equal(scored.loc[expected.index, "score"].to_numpy(), expected["score"].to_numpy())


def _daily_files(champion: Champion, root: Path) -> list[Path]:
    rows = _transactions(champion, days=3)
    paths = []
    for day, part in rows.groupby(rows["timestamp"].dt.date):
        path = root / f"day={day}" / "part-0.parquet"
        path.parent.mkdir(parents=True)
        part.to_parquet(path, index=False)
        paths.append(path)
    (root / "_SUCCESS").write_text("")  # markers of other tools are not inputs
    return paths


@pytest.mark.parametrize("form", ["directory", "glob"])
def test_a_directory_or_glob_gives_the_same_layout(champion: Champion, tmp_path: Path, form: str) -> None:
    paths = _daily_files(champion, tmp_path / "in")
    source = str(tmp_path / "in") if form == "directory" else str(tmp_path / "in" / "day=*" / "*.parquet")
    settings = champion.settings.model_copy(update={"score_chunk_rows": 200})
    result = score_file(settings, source, tmp_path / "out")
    assert result["files"] == len(paths) == 3
    for path in paths:
        relative = path.relative_to(tmp_path / "in")
        scored = pd.read_parquet(tmp_path / "out" / relative)
        assert sorted(scored["transaction_id"]) == sorted(pd.read_parquet(path)["transaction_id"])
    assert sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file()) == ["part-0.parquet"] * 3


def test_a_failing_slice_leaves_no_output(champion: Champion, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _daily_files(champion, tmp_path / "in")
    calls = []
    real = batch_task.score_slice

    def fail_late(plan, piece):
        calls.append(piece)
        if len(calls) == 4:
            raise FsmlError("disk on fire")
        return real(plan, piece)

    monkeypatch.setattr("fsml.serving.batch.score_slice", fail_late)
    settings = champion.settings.model_copy(update={"score_chunk_rows": 200})
    with pytest.raises(FsmlError, match="disk on fire"):
        score_file(settings, tmp_path / "in", tmp_path / "out")
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()] if (tmp_path / "out").exists() else True


def test_output_may_not_overwrite_its_input(champion: Champion, tmp_path: Path) -> None:
    _daily_files(champion, tmp_path / "in")
    with pytest.raises(FsmlError, match="is the input file"):
        score_file(champion.settings, tmp_path / "in", tmp_path / "in")
    with pytest.raises(FsmlError, match="no input file"):
        score_file(champion.settings, str(tmp_path / "nothing-*.parquet"), tmp_path / "out")
    settings = champion.settings.model_copy(update={"score_chunk_rows": 500})
    score_file(settings, tmp_path / "in", tmp_path / "out")
    with pytest.raises(FsmlError, match="exists: remove it or pass --overwrite"):
        score_file(settings, tmp_path / "in", tmp_path / "out")
    score_file(settings, tmp_path / "in", tmp_path / "out", overwrite=True)
