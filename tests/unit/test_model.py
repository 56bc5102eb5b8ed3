"""The model contract: encoding, vocabularies and profiles behave the same for frames and rows."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from fsml.model import FeatureEncoder, FeatureInfo, vocabularies
from fsml.profiles import bin_fractions, categorical_profile, numeric_profile

FEATURES = [
    FeatureInfo(column="v__amount", view="v", name="amount", dtype="float"),
    FeatureInfo(column="v__count", view="v", name="count", dtype="int"),
    FeatureInfo(column="v__region", view="v", name="region", dtype="string"),
]


def test_frame_and_row_encoding_agree() -> None:
    df = pd.DataFrame({"v__amount": [1.5, None, 3.0], "v__count": [1, 2, None], "v__region": ["b", "a", None]})
    features = vocabularies(df, FEATURES)
    assert features[2].categories == ["a", "b"]
    encoder = FeatureEncoder(features)
    matrix = encoder.frame(df.astype({"v__count": "Int64"}))
    rows = np.array([encoder.row(r) for r in df.replace({np.nan: None}).to_dict("records")], dtype=float)
    np.testing.assert_array_equal(matrix, rows)
    assert encoder.categorical_indices == [2]


def test_unseen_category_and_missing_values_become_nan() -> None:
    encoder = FeatureEncoder(
        vocabularies(pd.DataFrame({"v__region": ["a"], "v__amount": [1.0], "v__count": [1]}), FEATURES)
    )
    row = encoder.row({"v__amount": None, "v__region": "zzz"})
    assert all(math.isnan(v) for v in row)


def test_numeric_profile_bins_and_quantiles() -> None:
    values = np.concatenate([np.arange(1000, dtype=float), [np.nan] * 1000])
    profile = numeric_profile(values)
    assert profile["null_rate"] == 0.5
    assert len(profile["quantiles"]) == 101 and profile["quantiles"][0] == 0 and profile["quantiles"][-1] == 999
    assert np.isclose(sum(profile["bin_fractions"]), 1.0)
    assert max(profile["bin_fractions"]) < 0.13  # about deciles (edges sit in gaps near them)
    edges = np.array(profile["bin_edges"])
    np.testing.assert_allclose(bin_fractions(np.arange(1000, dtype=float), edges), profile["bin_fractions"])


def test_profiles_of_degenerate_columns() -> None:
    assert numeric_profile(np.array([np.nan, np.nan]))["null_rate"] == 1.0
    constant = numeric_profile(np.ones(50))
    assert constant["bin_edges"] == [] and constant["bin_fractions"] == [1.0]
    cats = categorical_profile(pd.Series(["a", "a", "b", None]))
    assert cats["frequencies"] == {"a": 2 / 3, "b": 1 / 3} and cats["null_rate"] == 0.25


def test_single_row_fast_path_gives_booster_predict_scores() -> None:
    import lightgbm as lgb

    from fsml.model import SingleRowPredictor

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2_000, 6))
    x[rng.random(x.shape) < 0.1] = np.nan
    y = (np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 1]) > 0.5).astype(int)
    booster = lgb.train({"objective": "binary", "verbosity": -1, "num_threads": 1}, lgb.Dataset(x, y), 50)
    fast = SingleRowPredictor(booster, 6)
    expected = booster.predict(x[:300], num_threads=1)
    assert [fast(row.tolist()) for row in x[:300]] == expected.tolist()
