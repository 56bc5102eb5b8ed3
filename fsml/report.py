"""Self-contained HTML reports rendered from Jinja2 templates, with matplotlib figures as PNG.

One file per report, no JavaScript and no network access needed to open it, so it can be
attached to an MLflow run, mailed or opened from a CI artefact. Every report extends
``fsml/templates/base.html.j2`` and may use the ``table`` and ``figure`` macros of
``fsml/templates/macros.html.j2``; a stage keeps its own templates in its ``templates`` folder.
"""

from __future__ import annotations

import base64
import io
from typing import Any


def figure_canvas(width: float = 5.0, height: float = 3.6) -> tuple[Any, Any]:
    """A matplotlib figure drawn off-screen (imported here: plotting is never on a hot path)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    return fig, fig.add_subplot(1, 1, 1)


def png(fig: Any) -> str:
    """A figure as a ``data:`` URI, embedded so the report is one file."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def number(value: Any) -> Any:
    """Floats to four significant digits; anything else as it is."""
    return f"{value:.4g}" if isinstance(value, float) else value


def render(package: str, template: str, **context: Any) -> str:
    """Render ``template`` from ``package``'s templates folder (base templates from fsml's)."""
    from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=ChoiceLoader([PackageLoader(package, "templates"), PackageLoader("fsml", "templates")]),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["number"] = number
    return env.get_template(template).render(**context)
