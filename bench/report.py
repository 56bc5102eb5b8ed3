"""``docs/benchmarks.md`` from ``bench/results.json``: the machine, the targets (met or by how
much missed), every measurement with its medians, p99s and ratios, and the optimisation log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

NOTES = Path(__file__).with_name("optimisations.md")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _n(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _target(name: str, measured: float | None, goal: float, higher: bool, unit: str = "") -> list[str]:
    if measured is None:
        return [name, "not measured", "", ""]
    met = measured >= goal if higher else measured <= goal
    gap = "" if met else (f"missed by {abs(goal - measured) / goal:.0%}")
    shown = f"{measured:,.2f}{unit}"
    return [name, shown, f"{'≥' if higher else '≤'} {goal:g}{unit}", "met" if met else gap]


def targets(parts: dict[str, Any]) -> list[list[str]]:
    rows = []
    online = parts.get("online", {}).get("summary", {})
    rows.append(_target("/v1/predict req/s ÷ feast serve req/s", online.get("speedup_vs_feast_serve"), 10, True, "×"))
    rows.append(_target("/v1/predict p99 at 1,000 req/s", online.get("p99_ms_at_1000rps"), 2, False, " ms"))
    live = parts.get("live", {}).get("summary", {})
    rows.append(_target("/v1/predict p99 at 1,000 req/s with 1,000 pushed events/s ÷ do-nothing server p99",
                        live.get("p99_ratio_to_hello"), 1.5, False, "×"))  # fmt: skip
    saturated = live.get("saturated_ratio")
    rows.append(_target("saturated /v1/predict req/s with pushes ÷ without", saturated, 0.9, True, "×"))
    push = parts.get("push", {}).get("summary", {})
    rows.append(_target("push rows/s: /v1/push ÷ stock FeatureStore.push", push.get("speedup_vs_stock"), 5, True, "×"))
    seen = push.get("visible_at_next_prediction")
    rows.append(["pushed event counted by the very next prediction", str(seen), "True", "met" if seen else "missed"])
    windows = parts.get("windows", {}).get("summary", {})
    rows.append(_target("window features per request, 20 events (in process)", windows.get("typical_us"), 50, False,
                        " µs"))  # fmt: skip
    build = parts.get("build", {}).get("summary", {})
    rows.append(_target("features build with 1% new events ÷ full build", build.get("incremental_share_of_full"), 0.1,
                        False, "×"))  # fmt: skip
    offline = parts.get("offline", {})
    for size in (1_000_000, 10_000_000):
        summary = offline.get(f"summary_{size}", {})
        label = f"{size // 1_000_000}M"
        rows.append(_target(f"training set {label}: stock ÷ fsml time", summary.get("speedup_vs_stock"), 5, True, "×"))
        rows.append(
            _target(f"training set {label}: fsml ÷ ASOF floor", summary.get("ratio_to_asof_floor"), 1.5, False, "×")
        )
        same = summary.get("identical_to_stock")
        rows.append(
            [f"training set {label}: values identical to stock", str(same), "True", "met" if same else "missed"]
        )
    materialize = parts.get("materialize", {}).get("summary", {})
    rows.append(_target("materialization: fsml ÷ stock rows/s", materialize.get("speedup_vs_stock"), 10, True, "×"))
    same = materialize.get("identical_redis_contents") and materialize.get("stock_reads_agree")
    rows.append(["materialization: same Redis keys and values, read by stock Feast", str(same), "True",
                 "met" if same else "missed"])  # fmt: skip
    shadow = parts.get("shadow", {})
    rows.append(_target("/v1/predict p99, shadow on ÷ off (1,000 req/s)", shadow.get("p99_ratio"), 1.1, False, "×"))
    batch = parts.get("batch", {})
    rows.append(_target("batch scoring 1M rows, local engine: rows/s", batch.get("rows_per_s"), 150_000, True))
    rows.append(_target("batch scoring ÷ bare LightGBM predict (floor)", batch.get("ratio_to_floor"), 0.6, True, "×"))
    scaling = parts.get("scaling", {}).get("summary", {})
    rows.append(_target("Ray scoring speed-up, 1 → 2 worker CPUs", scaling.get("scoring_speedup"), 1.6, True, "×"))
    rows.append(_target("Ray training-set join speed-up, 1 → 2 CPUs", scaling.get("join_speedup"), 1.6, True, "×"))
    cluster = parts.get("cluster", {}).get("summary", {})
    for mode, label in (("predict", "/v1/predict"), ("batch100", "/v1/predict/batch (100 rows)")):
        rows.append(_target(f"{label} req/s: Redis Cluster ÷ one Redis", cluster.get(f"ratio_{mode}"), 0.85, True, "×"))
    drift = parts.get("drift", {})
    rows.append(_target("drift 1M × 50: fsml seconds", drift.get("fsml_seconds"), 5, False, " s"))
    rows.append(_target("drift 1M × 50: Evidently ÷ fsml time", drift.get("speedup"), 10, True, "×"))
    return rows


def _online(online: dict[str, Any]) -> str:
    names = [
        ("fsml_predict_1000rps", "fsml /v1/predict, fixed 1,000 req/s offered (open loop)"),
        ("hello_1000rps", "an HTTP server doing nothing (bench/hello.py), fixed 1,000 req/s"),
        ("fsml_predict_c1", "fsml /v1/predict, 1 connection"),
        ("fsml_predict_c8", "fsml /v1/predict, 8 connections"),
        ("fsml_predict_c32", "fsml /v1/predict, 32 connections"),
        ("fsml_batch100_c1", "fsml /v1/predict/batch, 100 rows, 1 connection"),
        ("fsml_batch100_c8", "fsml /v1/predict/batch, 100 rows, 8 connections"),
        ("feast_serve_c1", "stock feast serve, features only, 1 connection"),
        ("feast_serve_c8", "stock feast serve, features only, 8 connections"),
        ("feast_serve_c32", "stock feast serve, features only, 32 connections"),
        ("floor_inprocess", "floor: redis-py HMGET + Booster.predict in process"),
    ]
    rows = []
    for key, label in names:
        if key in online:
            r = online[key]
            rows.append([label, _n(r["rps"]), _n(r["p50_ms"], 2), _n(r["p99_ms"], 2), r.get("errors", 0)])
    text = _table(["work", "req/s (median)", "p50 ms", "p99 ms", "errors"], rows)
    summary = online.get("summary", {})
    if summary:
        by = summary.get("speedup_vs_feast_serve_by_connections", {})
        text += (
            f"\nfsml ran {summary.get('workers')} uvicorn workers. Best fsml ÷ best feast serve: "
            f"**{summary['speedup_vs_feast_serve']:.1f}×**; at equal connections: "
            + ", ".join(f"{c}: {v:.1f}×" for c, v in by.items())
            + f". Batch endpoint: {summary.get('batch100_rows_per_s', 0):,.0f} rows/s scored at 8 connections.\n"
        )
    return text


def _live(live: dict[str, Any]) -> str:
    names = [
        ("predict_1000rps_pushing", "fsml /v1/predict, fixed 1,000 req/s, 1,000 events/s pushed"),
        ("predict_1000rps_alone", "fsml /v1/predict, fixed 1,000 req/s, no pushes"),
        ("hello_1000rps", "an HTTP server doing nothing (bench/hello.py), fixed 1,000 req/s"),
        ("predict_c32_pushing", "fsml /v1/predict, 32 connections (saturated), 1,000 events/s pushed"),
        ("predict_c32_alone", "fsml /v1/predict, 32 connections (saturated), no pushes"),
    ]
    rows = [[label, _n(live[k]["rps"]), _n(live[k]["p50_ms"], 2), _n(live[k]["p99_ms"], 2), live[k].get("errors", 0)]
            for k, label in names if k in live]  # fmt: skip
    s = live.get("summary", {})
    return _table(["work", "req/s (median)", "p50 ms", "p99 ms", "errors"], rows) + (
        f"\np99 with pushes ÷ do-nothing server p99: **{s.get('p99_ratio_to_hello', 0):.2f}×** (without pushes: "
        f"{s.get('p99_ms_alone', 0) / max(s.get('hello_p99_ms', 1), 1e-9):.2f}×); "
        "saturated req/s with pushes ÷ without: "
        f"**{s.get('saturated_ratio', 0):.2f}**. The pushed rows are of the bench's customers, timed just before the "
        f"requests, so every prediction aggregates them.\n"
    )


def _push(push: dict[str, Any]) -> str:
    rows = [["fsml `POST /v1/push/transactions`, batches of 500, "
             f"{push['fsml']['runs'][0].get('concurrency', 1)} connections", _n(push["fsml"]["rows_per_s"])],
            ["stock `FeatureStore.push(..., ONLINE_AND_OFFLINE)`, batches of 500, in process",
             _n(push["stock"]["rows_per_s"])]]  # fmt: skip
    v = push.get("visibility", {})
    return _table(["writer", "rows/s (median)"], rows) + (
        f"\n{push['rows']:,} rows per run. fsml ÷ stock: **{push['summary']['speedup_vs_stock']:.1f}×**. "
        f"Visibility: {v.get('seen_by_next_prediction')}/{v.get('tries')} pushes were counted by the prediction sent "
        f"right after the answer (never sleeping; also `tests/e2e/test_push.py`).\n"
    )


def _build(b: dict[str, Any]) -> str:
    return (
        f"{b['transactions']:,} transactions; the last {b['new_share']:.1%} ({b['new_transactions']:,}) and "
        f"{b['new_labels']:,} labels pushed after a build, plus {b['snapshot_days_added']} new snapshot day(s). "
        f"Incremental build: **{b['incremental_seconds']:.2f} s**; full build of the same data: "
        f"{b['full_seconds']:.2f} s; ratio **{b['summary']['incremental_share_of_full']:.2f}**.\n"
    )


def _windows(w: dict[str, Any]) -> str:
    rows = [[f"{k.removeprefix('events_')} events", _n(v["best_us"], 1), _n(v["median_us"], 1)]
            for k, v in w.items() if k.startswith("events_")]  # fmt: skip
    return _table(["events kept for the card", "best µs", "median µs"], rows) + (
        f"\nUnpacking a card's events and computing the {w['features']} features of `{w['view']}` at the request's "
        "time, in process (`bench/windows.py`); this is what a prediction adds per row for window views, besides "
        "one more Redis command in the same round trip.\n"
    )


def _offline(offline: dict[str, Any]) -> str:
    rows = []
    sizes = sorted({int(k.split("_")[1]) for k in offline if k.startswith("summary_")})
    for size in sizes:
        floor, ours, stock = (offline.get(f"{m}_{size}", {}) for m in ("asof", "fsml", "stock"))
        summary = offline[f"summary_{size}"]
        rows.append([
            f"{size:,}",
            _n(floor.get("seconds"), 2), _n(ours.get("seconds"), 2), _n(stock.get("seconds"), 2),
            f"{summary['speedup_vs_stock']:.1f}×", f"{summary['ratio_to_asof_floor']:.2f}×",
            summary["identical_to_stock"],
            f"{_n(floor.get('peak_mb'))} / {_n(ours.get('peak_mb'))} / {_n(stock.get('peak_mb'))}",
        ])  # fmt: skip
    return _table(
        ["entity rows", "ASOF floor s", "fsml s", "stock Feast s", "stock ÷ fsml", "fsml ÷ floor", "identical",
         "peak memory MB floor / fsml / stock"],
        rows,
    ) + (
        "\nThe three methods run interleaved in one process per size (repeat r starts with method r mod 3), "
        "so a slow spell of the machine falls on all of them. Peak memory: resident size during the call above "
        "the size when it started. fsml's first call on a file version also checks whether its (key, event time) "
        "pairs are unique (0.1–0.3 s at 1M feature rows); later calls reuse the answer.\n"
    )  # fmt: skip


def _materialize(m: dict[str, Any]) -> str:
    rows = [
        [label, _n(m[k]["rows_per_s"]), _n(m[k]["seconds"], 2), _n(m[k]["keys"])]
        for k, label in (
            ("fsml", "fsml compute engine"),
            ("stock", "stock feast materialize (local engine)"),
            ("raw", "floor: redis-py pipelined HSET of the same hashes"),
        )
        if k in m
    ]
    s = m.get("summary", {})
    return _table(["writer", "entity rows/s (median)", "seconds", "keys"], rows) + (
        f"\nfsml ÷ stock: **{s.get('speedup_vs_stock', 0):.1f}×**; fsml time ÷ raw floor time: "
        f"{s.get('ratio_to_raw_floor', 0):.2f}. Redis contents identical: {s.get('identical_redis_contents')}; "
        f"stock `get_online_features` reads the same from both: {s.get('stock_reads_agree')}.\n"
    )


def _batch(b: dict[str, Any]) -> str:
    rows = [
        ["fsml score (read, validate, point-in-time features, on-demand, predict, write)", _n(b["seconds"], 2),
         _n(b["rows_per_s"])],
        [f"floor: Booster.predict of the same matrix, all threads ({b['trees']} trees, {b['features']} features)",
         _n(b["floor_seconds"], 2), _n(b["floor_rows_per_s"])],
    ]  # fmt: skip
    memory = b.get("memory", {})
    peaks = "; ".join(f"{int(n):,} rows: +{_n(m['above_start_mb'])} MB" for n, m in memory.items())
    return _table(["work", "seconds (median)", "rows/s"], rows) + (
        f"\n{b['rows']:,} transactions in {b['slices']} slices of about {b['chunk_rows']:,} rows; "
        f"**{b['ratio_to_floor']:.2f}× the floor**. Peak memory above start, one run per size in a child "
        f"process: {peaks}.\n"
    )


def _scaling(s: dict[str, Any]) -> str:
    rows = [
        [f"{cpus} CPU{'s' if cpus > 1 else ''}", _n(s[f"cpus_{cpus}"]["scoring_seconds"], 2),
         _n(s[f"cpus_{cpus}"]["scoring_rows_per_s"]), _n(s[f"cpus_{cpus}"]["join_seconds"], 2)]
        for cpus in (1, 2)
        if f"cpus_{cpus}" in s
    ]  # fmt: skip
    summary = s.get("summary", {})
    text = _table(["local Ray", f"scoring {s['rows']:,} rows, s", "rows/s", "training-set join, s"], rows) + (
        f"\nSpeed-up 1 → 2 CPUs: scoring **{summary.get('scoring_speedup', 0):.2f}×**, training-set join "
        f"({summary.get('training_rows', 0):,} rows) **{summary.get('join_speedup', 0):.2f}×**.\n"
    )
    local, ray = s.get("training_local"), s.get("training_ray")
    if local and ray:
        keys = ("test_roc_auc", "test_pr_auc", "valid_pr_auc", "best_iteration")
        text += "\n" + _table(
            ["LightGBM on the same training set", "seconds", *keys],
            [
                ["local, 2 threads", _n(local["seconds"], 1), *(_n(local["metrics"][k], 4) for k in keys)],
                [
                    f"Ray Train, {ray['workers']} workers, data parallel",
                    _n(ray["seconds"], 1),
                    *(_n(ray["metrics"][k], 4) for k in keys),
                ],
            ],  # fmt: skip
        )
    return text


def _cluster(c: dict[str, Any]) -> str:
    rows = [
        [label, _n(c[f"single_{mode}_c8"]["rps"]), _n(c[f"cluster_{mode}_c8"]["rps"]), f"{c[f'ratio_{mode}']:.2f}×"]
        for mode, label in (("predict", "/v1/predict"), ("batch", "/v1/predict/batch, 100 rows"))
        if f"ratio_{mode}" in c
    ]
    summary = c.get("summary", {})
    return _table(["endpoint, 8 connections", "one Redis req/s", "3-master cluster req/s", "cluster ÷ one"], rows) + (
        f"\n{summary.get('workers')} uvicorn workers each; same score from both: {summary.get('same_score')}.\n"
    )


def _drift(d: dict[str, Any]) -> str:
    rows = [
        ["fsml monitor (against stored reference profiles)", _n(d["fsml_seconds"], 2), len(d["fsml_drifted"]),
         f"{d['fsml_correct']}/{d['columns']}"],
        ["Evidently DataDriftPreset (raw reference rows)", _n(d["evidently_seconds"], 2), len(d["evidently_drifted"]),
         f"{d['evidently_correct']}/{d['columns']}"],
    ]  # fmt: skip
    return _table(["method", "seconds (median)", "columns flagged", "verdicts right"], rows) + (
        f"\n{d['rows']:,} rows × {d['columns']} columns; speed-up **{d['speedup']:.0f}×**; the two agree on "
        f"{d['verdicts_agree']}/{d['columns']} columns. Building the reference profiles (once, at training "
        f"time) took {d['reference_profile_seconds']:.2f} s. Evidently ran {len(d['evidently_runs'])} time(s): "
        "one run is minutes, five would not fit the 20-minute budget.\n"
    )


def _shadow(s: dict[str, Any]) -> str:
    rows = [
        [f"`FSML_SHADOW_FRACTION={fraction}`", _n(s[mode]["rps"]), _n(s[mode]["p50_ms"], 2), _n(s[mode]["p99_ms"], 2),
         s[mode]["errors"]]
        for mode, fraction in (("off", 0), ("on", 1))
    ]  # fmt: skip
    return _table(["shadow", "req/s", "p50 ms", "p99 ms", "errors"], rows) + (
        f"\nOffered {s['offered_rps']:,} req/s to {s['workers']} workers, runs interleaved; challenger "
        f"v{s['challenger_version']} scored {s['shadow_scored']:,.0f} rows off the hot path. p99 with shadow "
        f"÷ without: **{s['p99_ratio']:.3f}×**.\n"
    )


def render(document: dict[str, Any]) -> str:
    parts, machine = document["parts"], document["machine"]
    out = ["# Benchmarks\n", "Generated by `make bench` (`python -m bench.run`); raw figures in `bench/results.json`. "
           "Every figure is the median of 5 runs unless said otherwise; stock Feast is measured in the same run, "
           "on the same data. These machines are noisy: compare the ratios, not the absolute times.\n"]  # fmt: skip
    if document.get("quick"):
        out.append("\n**Quick run** (`--quick`): small sizes, one run each. Not a measurement.\n")
    packages = ", ".join(f"{k} {v}" for k, v in machine.get("packages", {}).items())
    out.append("\n## Machine\n\n" + _table(["", ""], [
        ["CPU", f"{machine.get('cpu')} ({machine.get('cores')} cores)"], ["memory", machine.get("memory")],
        ["OS", machine.get("os")], ["Python", machine.get("python")], ["Redis", machine.get("redis")],
        ["packages", packages], ["date", machine.get("date")],
        ["wall time", ", ".join(f"{k} {v:.0f} s" for k, v in document.get("seconds", {}).items())],
    ]))  # fmt: skip
    out.append("\n## Targets\n\n" + _table(["target", "measured", "goal", "verdict"], targets(parts)))
    if "online" in parts:
        out.append("\n## Online: `/v1/predict` against `feast serve`\n\n" + _online(parts["online"]))
    if "live" in parts:
        out.append("\n## Live data: `/v1/predict` while pushes flow\n\n" + _live(parts["live"]))
    if "push" in parts:
        title = "\n## Push throughput: `/v1/push/transactions` against stock `FeatureStore.push`\n\n"
        out.append(title + _push(parts["push"]))
    if "build" in parts:
        out.append("\n## Incremental feature build\n\n" + _build(parts["build"]))
    if "windows" in parts:
        out.append("\n## Window features computed at request time\n\n" + _windows(parts["windows"]))
    if "offline" in parts:
        out.append(
            "\n## Offline: training-set build (`get_historical_features` + `to_df`)\n\n" + _offline(parts["offline"])
        )
    if "materialize" in parts:
        out.append("\n## Materialization into Redis (100,000 entities, 1,000,000 offline rows)\n\n"
                   + _materialize(parts["materialize"]))  # fmt: skip
    if "batch" in parts:
        out.append("\n## Batch scoring, end to end (local engine)\n\n" + _batch(parts["batch"]))
    if "scaling" in parts:
        out.append("\n## Ray engine: 1 and 2 worker CPUs on the same jobs\n\n" + _scaling(parts["scaling"]))
    if "cluster" in parts:
        out.append("\n## Online reads: Redis Cluster against one Redis\n\n" + _cluster(parts["cluster"]))
    if "shadow" in parts:
        out.append("\n## Shadow scoring: the champion's p99 with a challenger beside it\n\n" + _shadow(parts["shadow"]))
    if "drift" in parts:
        out.append("\n## Drift: 1,000,000 rows × 50 features against Evidently\n\n" + _drift(parts["drift"]))
    if NOTES.exists():
        out.append("\n" + NOTES.read_text())
    return "".join(out)
