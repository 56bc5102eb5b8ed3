"""Training: determinism, the run record in MLflow, the model card, and model behaviour."""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from fsml.training.dataset import build_training_set
from fsml.training.pipeline import TrainOutcome
from fsml.training.train import TrainConfig, fit
from fsml.training.windows import Windows

from fsml import registry
from fsml.featurestore import describe_service, open_store
from tests.conftest import AS_OF, World

pytestmark = pytest.mark.integration


def test_same_inputs_give_the_same_model_bytes(world: World, trained: TrainOutcome) -> None:
    store = open_store(world.settings)
    spec = describe_service(store, world.settings.feature_service)
    settings = world.settings
    windows = Windows.ending_at(AS_OF, settings.train_days, settings.valid_days, settings.test_days)
    again = build_training_set(store, spec, windows, world.settings.feature_warmup_days)
    assert again.fingerprint == trained.training_set.fingerprint
    config = TrainConfig.from_settings(world.settings)
    refit = fit(again.parts, spec, windows, config, "m", again.fingerprint)
    assert refit.bundle.booster_text == trained.trained.bundle.booster_text
    # ...and the registered file is those same bytes, in LightGBM's text format.
    client = registry.client(world.settings)
    version = client.get_model_version(trained.registered.model_name, trained.registered.version)
    local = Path(mlflow.artifacts.download_artifacts(version.source))
    booster = local / "artifacts" / "model.lgb.txt"
    assert booster.read_text() == refit.bundle.booster_text
    assert booster.read_text().startswith("tree\nversion=")


def test_run_records_everything_needed_to_reproduce(world: World, trained: TrainOutcome) -> None:
    client = registry.client(world.settings)
    run = client.get_run(trained.registered.run_id)
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    for tag in (
        "fsml.git_commit",
        "fsml.code_fingerprint",
        "fsml.feature_repo_fingerprint",
        "fsml.window.train_start",
        "fsml.window.test_end",
    ):
        assert tags[tag]
    assert tags["feast.feature_service"] == "fraud_model_v1"
    assert tags["feast.project"] == "fraud_dev"
    assert tags["fsml.data_fingerprint"] == trained.training_set.fingerprint
    assert params["as_of"] == AS_OF.isoformat() and params["seed"] == "42"
    assert {
        "test_pr_auc",
        "test_roc_auc",
        "test_log_loss",
        "test_recall_at_1pct_fpr",
        "test_positive_rate",
    } <= set(metrics)
    artifacts = {
        a.path for folder in ("report", "evaluation", "data") for a in client.list_artifacts(run.info.run_id, folder)
    }
    assert {
        "report/training_report.html",
        "evaluation/test_predictions.parquet",
        "data/null_rates.json",
    } <= artifacts
    alias = client.get_model_version_by_alias(trained.registered.model_name, "challenger")
    assert str(alias.version) == trained.registered.version


def test_model_card_describes_inputs_threshold_and_references(trained: TrainOutcome) -> None:
    card = trained.trained.bundle.card
    assert card.columns == list(trained.training_set.null_rates)
    assert 0 < card.threshold < 1
    assert set(card.reference) == set(card.columns)
    region = next(f for f in card.features if f.name == "home_region")
    assert region.categories == sorted(region.categories) and len(region.categories) == 5
    assert len(card.score_reference["quantiles"]) == 101
    assert card.metrics["test_pr_auc"] > 5 * card.metrics["test_positive_rate"]


def test_report_is_html_with_plots(trained: TrainOutcome) -> None:
    html = trained.report.read_text()
    assert html.startswith("<!doctype html>") and html.count("data:image/png;base64,") == 6
    assert "Precision-recall" in html and "Calibration" in html


def _test_rows(trained: TrainOutcome) -> pd.DataFrame:
    return trained.training_set.parts["test"]


def test_night_burst_at_a_risky_merchant_raises_the_score(trained: TrainOutcome) -> None:
    bundle = trained.trained.bundle
    rows = _test_rows(trained)
    rows = rows[rows["label"] == 0].head(500).copy()
    base = bundle.predict_matrix(bundle.encoder.frame(rows))
    burst = rows.assign(
        **{
            "customer_transaction_windows__txn_count_1h": 6,
            "customer_transaction_windows__amount_sum_1h": 1_500.0,
            "customer_transaction_windows__txn_count_24h": rows["customer_transaction_windows__txn_count_24h"] + 6,
            "transaction_context__hour_of_day": 3,
            "transaction_context__is_night": 1,
            "merchant_risk__merchant_fraud_rate_30d": 0.2,
        }
    )
    risky = bundle.predict_matrix(bundle.encoder.frame(burst))
    assert np.mean(risky > base) > 0.9
    assert np.median(risky) > 10 * np.median(base)


def test_an_unseen_customer_and_merchant_still_get_a_score(trained: TrainOutcome) -> None:
    bundle = trained.trained.bundle
    row = {
        "transaction_context__txn_amount": 42.0,
        "transaction_context__hour_of_day": 13,
        "transaction_context__is_night": 0,
        "merchant_profile__category": "never-seen",
    }
    score = bundle.booster.predict(np.array([bundle.encoder.row(row)]), num_threads=1)[0]
    assert 0.0 < score < 1.0 and not math.isnan(score)
