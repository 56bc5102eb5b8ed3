"""Self-contained HTML reports: headings, tables and matplotlib figures embedded as PNG.

One file per report, no JavaScript and no network access needed to open it, so it can be
attached to an MLflow run, mailed or opened from a CI artefact.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Mapping
from typing import Any

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { margin-bottom: 0.2rem; } .sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.bad { color: #b00020; font-weight: 600; } .good { color: #1b7f3b; font-weight: 600; }
figure { display: inline-block; margin: 0.5rem; } figcaption { color: #555; font-size: 0.85rem; }
"""


def figure_canvas(width: float = 5.0, height: float = 3.6) -> tuple[Any, Any]:
    """A matplotlib figure drawn off-screen (imported here: plotting is never on a hot path)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    return fig, fig.add_subplot(1, 1, 1)


class Report:
    def __init__(self, title: str, subtitle: str = "") -> None:
        self.title = title
        self._parts = [f"<h1>{html.escape(title)}</h1>"]
        if subtitle:
            self._parts.append(f'<p class="sub">{html.escape(subtitle)}</p>')

    def heading(self, text: str) -> Report:
        self._parts.append(f"<h2>{html.escape(text)}</h2>")
        return self

    def paragraph(self, text: str, css: str = "") -> Report:
        cls = f' class="{css}"' if css else ""
        self._parts.append(f"<p{cls}>{html.escape(text)}</p>")
        return self

    def table(self, rows: Iterable[Mapping[str, Any]]) -> Report:
        rows = list(rows)
        if not rows:
            return self.paragraph("(no rows)")
        head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
        body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row.values()) + "</tr>" for row in rows)
        self._parts.append(f"<table><tr>{head}</tr>{body}</table>")
        return self

    def figure(self, fig: Any, caption: str = "") -> Report:
        buffer = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buffer, format="png")
        data = base64.b64encode(buffer.getvalue()).decode()
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        img = f'<img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
        self._parts.append(f"<figure>{img}{cap}</figure>")
        return self

    def html(self) -> str:
        body = "\n".join(self._parts)
        return (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}"
            f"</title><style>{_STYLE}</style></head><body>{body}</body></html>"
        )


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))
