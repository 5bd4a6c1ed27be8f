"""docs/benchmarks.svg: first-run and warm-run median per tool, one panel per app, drawn as
plain SVG text (no plotting dependency). The time axis is logarithmic: the tools span 5 ms to
several seconds, and on a log axis equal ratios are equal distances."""

import math
import statistics
from xml.sax.saxutils import escape

WIDTH = 980
LABEL_RIGHT = 200  # tool names end here
PLOT_LEFT, PLOT_RIGHT = 210, 880  # the axis; value labels go right of the bars
BAR, BAR_GAP, ROW_GAP = 9, 2, 9
TITLE_HEIGHT, AXIS_HEIGHT, LEGEND_HEIGHT = 26, 22, 52
SERIES = [("first run", "first_ns", "#d95f02"), ("warm run", "warm_ns", "#1b9e77")]


def text(x, y, content, anchor="start", size=12, weight="normal", fill="#222"):
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
            f'font-weight="{weight}" fill="{fill}">{escape(content)}</text>')


def duration(ms):
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms"


class Axis:
    """Milliseconds to x on a log scale from 1 ms to the power of ten above the largest value."""

    def __init__(self, largest_ms):
        self.decades = max(1, math.ceil(math.log10(max(largest_ms, 10))))

    def x(self, ms):
        fraction = math.log10(max(ms, 1)) / self.decades
        return PLOT_LEFT + fraction * (PLOT_RIGHT - PLOT_LEFT)

    def ticks(self):
        return [10 ** d for d in range(self.decades + 1)]


def panel_rows(result):
    """(label, {series key: ms} or None, note) per tool of one app, floor last."""
    order = [key for key in result.builds if key != result.floor_key] + [result.floor_key]
    rows = []
    for key in order:
        build = result.builds[key]
        if build.error:
            rows.append((result.label(key), None, "build failed"))
        elif result.figures[key].error or not result.figures[key].warm_ns:
            rows.append((result.label(key), None, "fails to run"))
        else:
            figures = result.figures[key]
            values = {attr: statistics.median(getattr(figures, attr)) / 1e6 for _, attr, _ in SERIES}
            rows.append((result.label(key), values, ""))
    return rows


def panel(result, axis, top):
    """One app's panel starting at y=`top`; returns (SVG elements, height)."""
    rows = panel_rows(result)
    parts = [text(10, top + 17, result.app.name, size=14, weight="bold")]
    y = top + TITLE_HEIGHT
    row_height = len(SERIES) * (BAR + BAR_GAP) + ROW_GAP
    body_top = y
    for tick in axis.ticks():
        x = axis.x(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{body_top - 4}" x2="{x:.1f}" '
                     f'y2="{body_top + len(rows) * row_height}" stroke="#ddd"/>')
    for label, values, note in rows:
        weight = "bold" if label == "pyferry" else "normal"
        parts.append(text(LABEL_RIGHT, y + BAR + 5, label, anchor="end", weight=weight))
        if values is None:
            parts.append(text(PLOT_LEFT + 4, y + BAR + 5, note, fill="#999"))
        else:
            for index, (_, attr, colour) in enumerate(SERIES):
                bar_y = y + index * (BAR + BAR_GAP)
                x = axis.x(values[attr])
                parts.append(f'<rect x="{PLOT_LEFT}" y="{bar_y}" width="{max(x - PLOT_LEFT, 1):.1f}" '
                             f'height="{BAR}" fill="{colour}"/>')
                parts.append(text(x + 4, bar_y + BAR - 1, duration(values[attr]), size=10, fill="#444"))
        y += row_height
    for tick in axis.ticks():
        label = f"{tick // 1000} s" if tick >= 1000 else f"{tick} ms"
        parts.append(text(axis.x(tick), y + 12, label, anchor="middle", size=10, fill="#666"))
    return parts, y + AXIS_HEIGHT - top


def legend():
    parts = [text(10, 20, "Wall time of one run of each app, per tool (log scale; shorter is better)", size=14,
                  weight="bold")]
    x = 10
    for name, _, colour in SERIES:
        parts.append(f'<rect x="{x}" y="31" width="14" height="{BAR}" fill="{colour}"/>')
        parts.append(text(x + 18, 40, f"{name} (median)"))
        x += 150
    parts.append(text(x, 40, "failures: see the tables in benchmarks.md", fill="#666"))
    return parts


def render(results):
    """The SVG document for `results` (a list of report.AppResult)."""
    largest = max(
        (statistics.median(getattr(f, attr)) / 1e6
         for r in results for f in r.figures.values() if not f.error and f.warm_ns
         for _, attr, _ in SERIES),
        default=10,
    )
    axis = Axis(largest)
    parts, y = legend(), LEGEND_HEIGHT
    for result in results:
        elements, height = panel(result, axis, y)
        parts += elements
        y += height
    return "\n".join([
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y + 10}" '
        f'viewBox="0 0 {WIDTH} {y + 10}" font-family="DejaVu Sans, Arial, sans-serif">',
        f'<rect width="{WIDTH}" height="{y + 10}" fill="white"/>',
        *parts,
        "</svg>",
        "",
    ])
