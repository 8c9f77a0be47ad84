"""Chart geometry for the reports page: plain data the template draws as inline SVG.

The page's CSP forbids inline scripts and styles, so charts are SVG shapes with presentation
attributes (fill, opacity) computed here; nothing runs in the browser.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STAGE_COLOURS = {"prospect": "#9ca3af", "cultivable": "#60a5fa", "key": "#2563eb", "advocate": "#10b981",
                 "sub_zero": "#ef4444"}
SERIES_COLOURS = ("#2563eb", "#f59e0b", "#10b981", "#8b5cf6")


@dataclass(frozen=True, slots=True)
class Shape:
    """A rectangle with an optional label and tooltip."""

    x: float
    y: float
    w: float
    h: float
    fill: str
    tip: str = ""
    opacity: float = 1.0


@dataclass(frozen=True, slots=True)
class Text:
    x: float
    y: float
    text: str
    anchor: str = "start"
    fill: str = "#374151"


@dataclass
class Chart:
    """Everything one SVG needs; `empty` is true when there was nothing to draw."""

    width: int
    height: int
    shapes: list[Shape] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)
    legend: list[tuple[str, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.shapes


def stacked_stages(rows: list[dict[str, Any]], stages: tuple[str, ...], width: int = 640, height: int = 240) -> Chart:
    """One stacked bar per date: customers in each stage then."""
    chart = Chart(width, height, legend=[(s, STAGE_COLOURS.get(s, "#999")) for s in stages])
    top = max((sum(r.get(s, 0) for s in stages) for r in rows), default=0)
    if not rows or top == 0:
        return chart
    plot_h, slot = height - 30, width / len(rows)
    bar_w = min(slot - 8, 60)
    for n, row in enumerate(rows):
        y, x = plot_h, n * slot + (slot - bar_w) / 2
        for stage in stages:
            h = plot_h * row.get(stage, 0) / top
            if h > 0:
                chart.shapes.append(Shape(x, y - h, bar_w, h, STAGE_COLOURS.get(stage, "#999"),
                                          f"{row['at']} {stage}: {row.get(stage, 0)}"))
            y -= h
        chart.texts.append(Text(n * slot + slot / 2, height - 12, str(row["at"])[:7], "middle"))
    return chart


def heatmap(cohorts: list[dict[str, Any]], width: int = 640, cell_h: int = 22) -> Chart:
    """Cohort rows by offset columns, darker where more of the cohort came back."""
    offsets = max((len(c["rates"]) for c in cohorts), default=0)
    chart = Chart(width, cell_h * (len(cohorts) + 1) + 4)
    if not cohorts:
        return chart
    label_w = 110
    cell_w = (width - label_w) / max(offsets, 1)
    for k in range(offsets):
        chart.texts.append(Text(label_w + k * cell_w + cell_w / 2, cell_h - 6, f"+{k}", "middle"))
    for n, row in enumerate(cohorts):
        y = cell_h * (n + 1)
        chart.texts.append(Text(4, y + cell_h - 7, f"{row['cohort']} ({row['size']})"))
        for k, rate in enumerate(row["rates"]):
            chart.shapes.append(Shape(label_w + k * cell_w + 1, y + 1, cell_w - 2, cell_h - 2, "#2563eb",
                                      f"{row['cohort']} +{k}: {row['active'][k]} of {row['size']} ({rate:.0%})",
                                      round(0.08 + 0.92 * rate, 3)))
            ink = "#ffffff" if rate > 0.5 else "#1f2937"
            chart.texts.append(Text(label_w + k * cell_w + cell_w / 2, y + cell_h - 7, f"{rate:.0%}", "middle", ink))
    return chart


def bars(rows: list[dict[str, Any]], label: str, series: tuple[str, ...], width: int = 640,
         bar_h: int = 14) -> Chart:
    """Horizontal grouped bars: one group per row, one bar per series."""
    group_h = bar_h * len(series) + 10
    chart = Chart(width, group_h * len(rows) + 6,
                  legend=[(s.replace("_", " "), SERIES_COLOURS[i % len(SERIES_COLOURS)]) for i, s in enumerate(series)])
    top = max((float(r.get(s) or 0) for r in rows for s in series), default=0.0)
    if not rows or top == 0:
        return chart
    label_w, plot_w = 150, width - 150 - 50
    for n, row in enumerate(rows):
        y0 = n * group_h + 4
        chart.texts.append(Text(4, y0 + group_h / 2, str(row[label])[:22]))
        for i, name in enumerate(series):
            value = float(row.get(name) or 0)
            w = plot_w * value / top
            y = y0 + i * bar_h
            chart.shapes.append(Shape(label_w, y, max(w, 1), bar_h - 2, SERIES_COLOURS[i % len(SERIES_COLOURS)],
                                      f"{row[label]} {name}: {value:g}"))
            chart.texts.append(Text(label_w + w + 4, y + bar_h - 4, f"{value:g}"))
    return chart
