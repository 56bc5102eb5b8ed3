"""The online window engine on its own: exact values, and what it says beyond its bounds."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import numpy as np
import pytest
from fsml.features.windows import Aggregate, WindowView, from_feast

from fsml.errors import FsmlError

H = 3_600_000_000
VIEW = WindowView(
    name="w", source="s", id_column="id", join_keys=("k",), key_types=(None,), timestamp="t",
    aggregates=(
        Aggregate("n_1h", "count", "x", H, "int"), Aggregate("sum_1h", "sum", "x", H, "float"),
        Aggregate("max_1d", "max", "x", 24 * H, "float"), Aggregate("std_1d", "stddev", "x", 24 * H, "float"),
        Aggregate("distinct_1d", "count_distinct", "y", 24 * H, "int"),
        Aggregate("mean_1d", "mean", "x", 24 * H, "float"),
    ),
    columns=("x", "y"), ttl_micros=48 * H,
)  # fmt: skip


def _events(times: list[int], xs: list[float], ys: list[float]) -> list[tuple]:
    members = VIEW.pack(times, {"x": xs, "y": ys}, list(range(len(times))))
    return sorted(VIEW.unpack(members), key=lambda e: -e[0])


def test_values_match_a_brute_force_over_half_open_windows() -> None:
    rng = np.random.default_rng(1)
    times = sorted(rng.integers(0, 72 * H, 300).tolist())
    xs, ys = rng.uniform(0, 100, 300).tolist(), rng.integers(0, 5, 300).astype(float).tolist()
    for t in [*rng.integers(H, 80 * H, 200).tolist(), times[50] + H, times[50] + H + 1, times[50]]:
        before = [(tt, x, y) for tt, x, y in zip(times, xs, ys, strict=True) if tt < t]
        values, status = VIEW.evaluate(_events(*map(list, zip(*before, strict=True))) if before else [], t, None)
        last_hour = [x for tt, x, _ in before if tt >= t - H]
        day = [(x, y) for tt, x, y in before if tt >= t - 24 * H]
        if not before:
            assert status == "missing"
            continue
        assert values["n_1h"] == len(last_hour) and values["sum_1h"] == pytest.approx(sum(last_hour))
        assert values["distinct_1d"] == len({y for _, y in day})
        if len(day) > 1:
            assert values["std_1d"] == pytest.approx(float(np.std([x for x, _ in day], ddof=1)))
        assert values["max_1d"] == (max(x for x, _ in day) if day else None)


def test_stale_after_the_ttl_past_the_last_change_and_incomplete_beyond_the_watermark() -> None:
    events = _events([0], [5.0], [1.0])
    assert VIEW.evaluate(events, 24 * H + 1 + 48 * H, None)[1] == "ok"  # the empty state, within its TTL
    assert VIEW.evaluate(events, 24 * H + 2 + 48 * H, None)[1] == "stale"
    assert VIEW.evaluate(events, 10 * H, complete_from=0)[1] == "incomplete"  # t - 24 h reaches before it
    assert VIEW.evaluate(events, 24 * H + 1, complete_from=0)[1] == "ok"


def _view(aggregations: list, udf=None) -> SimpleNamespace:  # noqa: ANN001
    fields = [SimpleNamespace(name=a.name, dtype="Int64") for a in aggregations]
    return SimpleNamespace(
        name="v",
        stream_source=type("PushSource", (), {"name": "s", "batch_source": SimpleNamespace(timestamp_field="t")})(),
        features=fields, aggregations=aggregations, udf=udf, ttl=timedelta(days=1), join_keys=["k"],
        entity_columns=[], timestamp_field="t",
    )  # fmt: skip


def test_declarations_the_engines_cannot_compute_are_refused() -> None:
    from feast.aggregation import Aggregation

    with pytest.raises(FsmlError, match="not one of"):
        from_feast(
            _view([Aggregation(column="x", function="median", time_window=timedelta(hours=1), name="m")]), ["x"], "id"
        )
    with pytest.raises(FsmlError, match="neither pushed nor derived"):
        from_feast(
            _view([Aggregation(column="z", function="sum", time_window=timedelta(hours=1), name="m")]), ["x"], "id"
        )
    with pytest.raises(FsmlError, match="time_window"):
        from_feast(_view([Aggregation(column="x", function="sum", name="m")]), ["x"], "id")
