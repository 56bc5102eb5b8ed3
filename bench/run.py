"""``make bench``: every benchmark in one run, on one machine, against stock Feast measured in
the same run on the same data; writes ``bench/results.json`` and ``docs/benchmarks.md``.

    python -m bench.run [--quick]

``--quick`` runs each part once on small sizes (a check of the harness, not a measurement).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from bench import report
from bench.common import machine, prepare

log = logging.getLogger("bench")
ROOT = Path(__file__).resolve().parent.parent


def main(
    quick: bool = typer.Option(False, help="Small sizes, one run each: checks the harness."),
    only: str = typer.Option(
        "",
        help="Comma-separated parts to run "
        "(online,shadow,live,push,build,windows,batch,materialize,offline,drift,scaling,cluster).",
    ),
) -> None:
    from fsml.console import setup_logging

    setup_logging()
    home = Path(os.environ.get("FSML_BENCH_HOME", ROOT / ".fsml" / "bench")).resolve()
    repeats = 1 if quick else 5
    everything = {
        "online",
        "shadow",
        "live",
        "push",
        "build",
        "windows",
        "batch",
        "materialize",
        "offline",
        "drift",
        "scaling",
        "cluster",
    }
    parts = set(only.split(",")) if only else everything
    results_path = ROOT / "bench" / "results.json"
    previous = json.loads(results_path.read_text()) if only and results_path.exists() else {}
    results: dict[str, Any] = {"machine": machine(), "quick": quick, "seconds": {}, **previous.get("parts", {})}
    began = time.perf_counter()
    world = prepare(home)
    results["seconds"]["prepare"] = time.perf_counter() - began

    def part(name: str, work: Callable[[], Any]) -> None:
        if name not in parts:
            return
        log.info("--- %s", name)
        started = time.perf_counter()
        results[name] = work()
        results["seconds"][name] = time.perf_counter() - started

    try:
        from bench import (
            batch,
            build,
            cluster,
            drift,
            live,
            materialize,
            offline,
            online,
            push,
            scaling,
            shadow,
            windows,
        )

        part("online", lambda: online.run(world, seconds=1 if quick else 3, repeats=repeats))
        part("shadow", lambda: shadow.run(world, seconds=1 if quick else 3, repeats=repeats))
        part("live", lambda: live.run(world, seconds=1 if quick else 3, repeats=repeats))
        part("push", lambda: push.run(world, rows=2_000 if quick else 20_000, repeats=1 if quick else 3))
        part("build", lambda: build.run(world, repeats=1 if quick else 3))
        part("windows", lambda: windows.run(world, repeats=3 if quick else 9))
        part("batch", lambda: batch.run(world, repeats=repeats, rows=100_000 if quick else 1_000_000))
        part("scaling", lambda: scaling.run(world, repeats=1 if quick else 3, rows=100_000 if quick else 1_000_000))
        part("cluster", lambda: cluster.run(world, seconds=1 if quick else 5, repeats=repeats))
        part("materialize", lambda: materialize.run(home, world.redis.url, repeats=repeats))
        sizes = {10_000: 1, 100_000: 1} if quick else {100_000: 5, 1_000_000: 5, 10_000_000: 5}
        part("offline", lambda: offline.run(home, world.redis.url, sizes))
        part("drift", lambda: drift.run(100_000 if quick else 1_000_000, repeats=repeats, evidently_repeats=1))
    finally:
        world.redis.stop()
    results["seconds"]["total"] = time.perf_counter() - began
    out = {k: v for k, v in results.items() if k not in ("machine", "quick", "seconds")}
    document = {"machine": results["machine"], "quick": quick, "seconds": results["seconds"], "parts": out}
    results_path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    markdown = ROOT / "docs" / "benchmarks.md"
    markdown.parent.mkdir(exist_ok=True)
    markdown.write_text(report.render(document))
    log.info("results: %s", results_path)
    log.info("report: %s", markdown)


if __name__ == "__main__":
    typer.run(main)
