"""The registered model as MLflow's own tools see it: a pyfunc that scores Feast's frames alone,
with a signature, an input example, its data sets, the classic layout and true run times."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from fsml.training.pipeline import TrainOutcome

from fsml import registry
from tests.conftest import AS_OF, World

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pyfunc(world: World, trained: TrainOutcome):
    registry.client(world.settings)
    return mlflow.pyfunc.load_model(f"models:/{trained.registered.model_name}/{trained.registered.version}")


def test_pyfunc_scores_a_historical_frame_as_the_bundle_does(pyfunc, trained: TrainOutcome) -> None:
    test = trained.training_set.parts["test"]  # Feast's historical frame: keys, times, label, view__feature
    out = pyfunc.predict(test)
    assert list(out.columns) == ["score", "decision", "all_missing"] and len(out) == len(test)
    np.testing.assert_allclose(
        out["score"].to_numpy(), trained.trained.test_predictions["score"].to_numpy(), rtol=0, atol=1e-12
    )
    threshold = trained.trained.bundle.card.threshold
    expected = np.where(out["all_missing"], "review", np.where(out["score"] >= threshold, "flag", "pass"))
    assert (out["decision"] == expected).all()
    assert {"flag", "pass"} <= set(out["decision"])
    unknown = test.head(2).assign(**{c: None for c in trained.trained.bundle.card.columns})
    assert pyfunc.predict(unknown, params={"missing_features_decision": "flag"})["decision"].tolist() == ["flag"] * 2


def test_pyfunc_takes_feast_online_features(champion) -> None:
    """``get_online_features(..., full_feature_names=True).to_dict()``, as Feast returns it."""
    from fsml.featurestore import open_store

    settings = champion.settings
    registry.client(settings)
    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name(settings.feature_service)}@champion")
    store = open_store(settings)
    rows = [{"customer_id": c, "merchant_id": m, "amount": 42.5, "timestamp": AS_OF} for c, m in ((3, 5), (17, 2))]
    online = store.get_online_features(
        features=store.get_feature_service(settings.feature_service), entity_rows=rows, full_feature_names=True
    ).to_dict()
    out = model.predict(online)
    bundle = champion.outcome.trained.bundle
    expected = bundle.score_frame(pd.DataFrame(online))
    np.testing.assert_allclose(out["score"].to_numpy(), expected["score"].to_numpy(), rtol=0, atol=1e-12)
    assert len(out) == 2 and set(out["decision"]) <= {"flag", "pass"}
    assert "customer_profile__age" in online  # the model's columns are Feast's full feature names


def test_signature_input_example_and_no_pickle(world: World, trained: TrainOutcome) -> None:
    client = registry.client(world.settings)
    version = client.get_model_version(trained.registered.model_name, trained.registered.version)
    info = mlflow.models.get_model_info(version.source)
    card = trained.trained.bundle.card
    assert [c["name"] for c in info.signature.inputs.to_dict()] == card.columns
    assert all(not c["required"] for c in info.signature.inputs.to_dict())
    assert [c["name"] for c in info.signature.outputs.to_dict()] == ["score", "decision", "all_missing"]
    assert info.signature.params.to_dict()[0]["name"] == "missing_features_decision"
    local = Path(mlflow.artifacts.download_artifacts(version.source))
    example = json.loads((local / "input_example.json").read_text())
    assert example["columns"] == card.columns and len(example["data"]) == 5
    assert not list(local.rglob("*.pkl")) and (local / "mlflow_model.py").is_file()
    assert (local / "code" / "fsml" / "model.py").read_text() == (
        Path(registry.__file__).parent / "model.py"
    ).read_text()
    assert version.tags["feast.feature_service"] == card.feature_service
    assert version.tags["fsml.data_fingerprint"] == trained.training_set.fingerprint


def test_run_has_datasets_classic_layout_and_true_times(world: World, trained: TrainOutcome) -> None:
    client = registry.client(world.settings)
    run = client.get_run(trained.registered.run_id)
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    inputs = {{t.key: t.value for t in d.tags}["mlflow.data.context"]: d.dataset for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"training", "validation", "testing"}
    assert inputs["training"].digest and json.loads(inputs["training"].profile)["num_rows"] == len(
        trained.training_set.parts["train"]
    )
    took = (run.info.end_time - run.info.start_time) / 1000
    assert took >= sum(trained.timings[k] for k in ("training_set", "fit")) * 0.9


def test_report_names_the_version_and_compares_with_the_champion(trained: TrainOutcome) -> None:
    html = trained.report.read_text()
    assert f"{trained.registered.model_name} v{trained.registered.version}: training evaluation" in html
    assert "Champion against this model" in html and "Confusion matrix at the threshold" in html
    assert "Precision and recall against the threshold" in html
    from fsml.training.report import confusion

    y = trained.trained.test_predictions["label"].to_numpy()
    scores = trained.trained.test_predictions["score"].to_numpy()
    cells = confusion(y, scores, trained.trained.bundle.card.threshold)
    assert sum(r["pass"] + r["flag"] for r in cells) == len(y)
    assert cells[1]["flag"] == int(((scores >= trained.trained.bundle.card.threshold) & (y == 1)).sum())
    assert f"<td>{cells[1]['flag']}</td>" in html


def test_training_progress_moves_with_the_boosting_rounds(world: World, trained: TrainOutcome) -> None:
    from fsml.training.train import TrainConfig, fit
    from fsml.training.windows import Windows

    from fsml.featurestore import describe_service, open_store

    spec = describe_service(open_store(world.settings), world.settings.feature_service)
    config = TrainConfig.from_settings(world.settings)
    seen: list[tuple[int, int]] = []
    days = world.settings
    windows = Windows.ending_at(AS_OF, days.train_days, days.valid_days, days.test_days)
    parts, fingerprint = trained.training_set.parts, trained.training_set.fingerprint
    refit = fit(parts, spec, windows, config, "m", fingerprint, on_iteration=lambda d, t: seen.append((d, t)))
    assert seen[0] == (1, config.num_boost_round) and len(seen) > 10
    assert [d for d, _ in seen] == list(range(1, len(seen) + 1))
    assert seen[-1][0] >= refit.best_iteration
