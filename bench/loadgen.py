"""HTTP load with wrk (Debian's wrk), summarised by bench/load.lua as one JSON line."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).with_name("load.lua")


def wrk(
    url: str,
    mode: str,
    connections: int,
    seconds: float,
    customers: int,
    merchants: int,
    refs: str = "[]",
    stamp: str | None = None,
) -> dict[str, float]:
    """Closed-loop load at saturation with ``connections`` connections; returns the summary."""
    binary = shutil.which("wrk")
    if binary is None:
        raise RuntimeError("wrk not found: apt-get install wrk")
    threads = min(connections, 2)
    command = [
        binary,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{int(seconds)}s",
        "--timeout",
        "5s",
        "-s",
        str(SCRIPT),
        url,
        "--",
        mode,
        str(customers),
        str(merchants),
        refs,
        *([stamp] if stamp else []),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRK_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no summary: {done.stdout[-500:]} {done.stderr[-500:]}")
    summary = json.loads(line.removeprefix("WRK_JSON "))
    summary["rps"] = summary["requests"] / summary["seconds"]
    return summary
