"""Promotion gate both ways, reproduction of a run, and bad inputs that must leave no trace."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from fsml.training.pipeline import TrainOutcome, train
from fsml.training.promote import promote
from fsml.training.reproduce import reproduce

from fsml import registry
from fsml.errors import FsmlError
from fsml.featurestore import apply_repo
from fsml.settings import Settings
from tests.conftest import AS_OF, World

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prod(world: World) -> Settings:
    """The session world seen as another environment: its own Feast project and MLflow names."""
    settings = world.settings.model_copy(update={"env": "prod"})
    apply_repo(settings)
    return settings


def test_promotion_gate_both_ways(prod: Settings) -> None:
    first = train(prod, as_of=AS_OF)
    decision = promote(prod, as_of=AS_OF)
    assert decision.promoted and decision.champion_version == first.registered.version
    assert decision.reason.startswith("first champion")

    weak = train(prod.model_copy(update={"num_boost_round": 1, "num_leaves": 2}), as_of=AS_OF)
    decision = promote(prod, as_of=AS_OF)
    assert not decision.promoted
    assert decision.champion_version == first.registered.version
    assert decision.scores["challenger"]["pr_auc"] < decision.scores["champion"]["pr_auc"]
    assert decision.window["rows"] > 0 and decision.window["positives"] > 0

    same = train(prod, as_of=AS_OF)  # identical model: "at least as good" holds
    decision = promote(prod, as_of=AS_OF)
    assert decision.promoted and decision.champion_version == same.registered.version
    assert decision.scores["challenger"]["pr_auc"] == decision.scores["champion"]["pr_auc"]

    client = registry.client(prod)
    name = prod.model_name(prod.feature_service)
    assert str(client.get_model_version_by_alias(name, "champion").version) == same.registered.version
    kept = client.get_model_version(name, weak.registered.version)
    assert kept.tags["fsml.promotion.decision"] == "kept"
    runs = client.search_runs([registry.experiment_id(prod, client)], "tags.`fsml.kind` = 'promotion'")
    assert len(runs) == 3 and all("challenger_pr_auc" in r.data.metrics for r in runs)

    forced = promote(prod, version=weak.registered.version, force=True, as_of=AS_OF)
    assert forced.promoted and forced.forced and forced.champion_version == weak.registered.version


def test_promotion_needs_a_challenger_and_labels(prod: Settings) -> None:
    with pytest.raises(FsmlError, match="has no version 999"):
        promote(prod, version="999", as_of=AS_OF)
    with pytest.raises(FsmlError, match="has no challenger"):
        promote(prod, as_of=AS_OF)  # the last challenger was promoted: none is pending
    with pytest.raises(FsmlError, match="empty time window"):
        promote(prod, version="1", as_of=AS_OF - timedelta(days=400))


def test_reproduce_reports_identical(world: World, trained: TrainOutcome) -> None:
    result = reproduce(world.settings, trained.registered.run_id)
    assert result["identical"] is True
    assert result["checks"]["model_bytes"]["match"] is True
    assert result["checks"]["test_predictions"]["max_abs_diff"] == 0.0
    assert "data_fingerprint" not in result["differences"]


def test_reproduce_rejects_unknown_runs(world: World, trained: TrainOutcome) -> None:
    with pytest.raises(FsmlError, match="unknown MLflow run"):
        reproduce(world.settings, "0" * 32)


def _state(settings: Settings) -> tuple[int, set[Path]]:
    client = registry.client(settings)
    runs = client.search_runs([registry.experiment_id(settings, client)], run_view_type=3)  # ALL
    return len(runs), {p for p in settings.home.rglob("*") if "mlflow" not in p.parts}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"feature_service": "nope"}, "unknown feature service 'nope'"),
        ({"as_of": AS_OF - timedelta(days=400)}, "empty time window"),
    ],
)
def test_bad_training_inputs_leave_nothing_behind(
    world: World, trained: TrainOutcome, change: dict, message: str
) -> None:
    before = _state(world.settings)
    with pytest.raises(FsmlError, match=message):
        train(world.settings, **{"as_of": AS_OF, **change})
    assert _state(world.settings) == before


def test_missing_feature_table_is_named_and_leaves_nothing(own_world: World) -> None:
    apply_repo(own_world.settings)
    before = _state(own_world.settings)
    table = own_world.settings.features_dir.resolve() / "merchant_risk"
    parts = sorted(table.glob("*.parquet"))
    for part in parts:
        part.unlink()
    with pytest.raises(FsmlError, match="merchant_risk"):
        train(own_world.settings, as_of=AS_OF)
    parts[0].write_bytes(b"PAR1 corrupted")
    with pytest.raises(FsmlError, match="merchant_risk"):
        train(own_world.settings, as_of=AS_OF)
    assert _state(own_world.settings) == before
