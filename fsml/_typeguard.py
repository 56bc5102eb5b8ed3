"""Switch off typeguard's ``@typechecked`` for Feast, as ``python -O`` would.

Feast decorates about 240 functions with ``typeguard.typechecked``. The decorator re-parses and
recompiles each one from its source when Feast is imported (8 s of the 10 s ``import feast``
takes on a 2-core machine) and then type-checks every call, including on the online read path.
typeguard documents the decorator as a no-op under ``python -O``; we apply that same switch
without stripping ``assert`` statements everywhere. It must run before Feast is imported.
"""

from __future__ import annotations

import sys
from typing import Any


def _passthrough(target: Any = None, **_: Any) -> Any:
    return target if target is not None else (lambda inner: inner)


def disable_typeguard_instrumentation() -> None:
    if "feast" in sys.modules:  # too late to matter; Feast's functions are already wrapped
        return
    try:
        import typeguard
    except ImportError:
        return
    typeguard.typechecked = _passthrough
