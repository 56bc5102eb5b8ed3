"""Profile one fast path with pyinstrument and write an HTML call tree, the first step before
any optimisation (the before and after figures go to bench/optimisations.md).

    python -m bench.profile offline|materialize [ROWS]

The profile is written to ``$FSML_BENCH_HOME/profiles/<part>.html`` (default .fsml/bench).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pyinstrument import Profiler

from bench.repo import REFS, build_table, entity_frame, store


def main(part: str, rows: int = 1_000_000) -> Path:
    home = Path(os.environ.get("FSML_BENCH_HOME", ".fsml/bench")).resolve()
    build_table(home)
    profiler = Profiler(interval=0.0005)
    if part == "offline":
        feature_store, entities = store(home, "fsml", "redis://127.0.0.1:6379/0"), entity_frame(rows)
        with profiler:
            feature_store.get_historical_features(entity_df=entities, features=REFS).to_df()
    elif part == "materialize":
        from bench.materialize import WINDOW
        from fsml.redis_server import RedisServer

        with RedisServer(home / "profile-redis") as redis:
            feature_store = store(home, "fsml", redis.url)
            with profiler:
                feature_store.materialize(start_date=WINDOW[0], end_date=WINDOW[1])
    else:
        raise SystemExit(f"unknown part {part!r}: offline or materialize")
    target = home / "profiles" / f"{part}.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(profiler.output_html())
    print(profiler.output_text(color=False, show_all=False)[:4000])
    print(f"profile: {target}")
    return target


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:3]))
