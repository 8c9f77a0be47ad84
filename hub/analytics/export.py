"""Report rows as CSV or JSON, and charts as PNG through matplotlib's Agg canvas (no display needed)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any


def _cell(value: Any) -> Any:
    # Lists (cohort series) go into one cell, readable and re-parsable.
    return ";".join(str(v) for v in value) if isinstance(value, list | tuple) else value


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """CSV with a header from the union of the rows' keys, in first-seen order."""
    fields: dict[str, None] = {}
    for row in rows:
        fields.update(dict.fromkeys(row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
    return out.getvalue()


def to_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(rows), indent=2, default=str)


def retention_png(rows: Sequence[dict[str, Any]], *, title: str = "Customer retention") -> bytes:
    """A bar chart of the retention rate per period, with the active customers as a line."""
    # matplotlib takes ~1 s to import: load it only when a chart is asked for, not in every process
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    labels = [str(r["period"]) for r in rows]
    # Numeric positions with text ticks: period labels like "2025" would otherwise be read as numbers.
    positions = list(range(len(rows)))
    axes.bar(positions, [(r["rate"] or 0) * 100 for r in rows], color="#4a7bd0", label="retention %")
    axes.set_xticks(positions, labels)
    axes.set_ylim(0, 100)
    axes.set_ylabel("retained from previous period (%)")
    axes.set_title(title)
    axes.tick_params(axis="x", labelrotation=45)
    active = axes.twinx()
    active.plot(positions, [r["active"] for r in rows], color="#d0604a", marker="o", label="active customers")
    active.set_ylabel("active customers")
    figure.legend(loc="upper right")
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
