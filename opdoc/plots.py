"""SVG plots for the knowledge base, written directly as SVG text: byte-identical from run to run.

The functions take plain numbers (no spec objects, no torch, no plotting library) and return SVG
text ready to be written next to the pages. A plotting library cost about 0.3 s per figure and a
second of imports; these charts need only axes, log ticks, lines, dots, bars, a legend and labels,
which a small writer draws in microseconds. Determinism comes from fixed layout rules, coordinates
printed with two decimals, and no ids, dates or tool versions in the output. Text stays <text>
(DejaVu Sans, the font whose advance widths below size the margins; any sans-serif stands in).

* `op_scaling_svg`: how one op grows with the sequence (or image) size — FLOPs (tensor-core and
  CUDA-core work) and activation memory, two log-log panels, with the documented example marked.
* `scaling_plot_svg`: the general single-panel log-log plot behind it.
* `breakdown_svg`: for the index, where the FLOPs and the parameters go across the documented ops.

Building blocks for another chart (a roofline, say): `Figure` (the canvas: rect, line, circle, text),
`Scale` (a linear or log axis), `log_limits`/`log_ticks`/`linear_ticks`, and `Axes` (spines, ticks
and grid, title and axis labels, a named series, a marked and labelled x, the legend);
`_loglog_panel` shows them put together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["op_scaling_svg", "scaling_plot_svg", "breakdown_svg", "engineering_label",
           "Figure", "Scale", "Axes", "log_limits", "log_ticks", "linear_ticks", "text_width"]

# Fixed look: colour-blind-safe colours (Okabe-Ito), grey grid, black axes.
COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")
MARKER_COLOR = "#D55E00"
GRID_COLOR = "#b0b0b0"
FONT = "'DejaVu Sans', sans-serif"
TICK_SIZE, LABEL_SIZE, TITLE_SIZE, LEGEND_SIZE, NOTE_SIZE, BAR_VALUE_SIZE = 9.0, 9.0, 10.0, 8.0, 8.0, 7.5
TICK_LENGTH, MINOR_TICK_LENGTH, PAD = 3.5, 2.0, 3.5
LINE_WIDTH, DOT_RADIUS = 1.6, 1.75
_PREFIXES = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))

# Advance widths of DejaVu Sans in thousandths of an em, for characters 32 (space) to 126 (~); other
# characters count as a digit. Measured once from the font file; they only size margins and boxes.
_ASCII_WIDTHS = (
    318, 401, 460, 838, 636, 950, 780, 275, 390, 390, 500, 838, 318, 361, 318, 337,  # space to /
    636, 636, 636, 636, 636, 636, 636, 636, 636, 636, 337, 337, 838, 838, 838, 531,  # 0 to ?
    1000, 684, 686, 698, 770, 632, 575, 775, 752, 295, 295, 656, 557, 863, 748, 787,  # @ to O
    603, 787, 695, 635, 611, 732, 684, 989, 685, 611, 685, 390, 337, 390, 838, 500,  # P to _
    500, 613, 635, 550, 635, 615, 352, 635, 634, 278, 278, 579, 278, 974, 634, 612,  # ` to o
    635, 635, 411, 521, 392, 634, 592, 818, 592, 592, 525, 636, 337, 636, 838,  # p to ~
)
_OTHER_WIDTHS = {"×": 838, "·": 318, "²": 401, "–": 500, "—": 1000, "≤": 838, "≥": 838, "µ": 636}


def text_width(text: str, size: float) -> float:
    """Width of `text` set in DejaVu Sans at `size`, in the same units as `size`."""
    total = 0
    for char in text:
        code = ord(char)
        total += _ASCII_WIDTHS[code - 32] if 32 <= code < 127 else _OTHER_WIDTHS.get(char, 636)
    return total * size / 1000


def engineering_label(value: float, unit: str = "") -> str:
    """A compact engineering-notation label: 430840000000 -> '430.8 G' (+ unit)."""
    if value == 0 or not math.isfinite(value):
        text = "0" if value == 0 else str(value)
        return f"{text} {unit}".strip()
    magnitude = abs(value)
    for scale, prefix in _PREFIXES:
        if magnitude >= scale:
            return f"{value / scale:.4g} {prefix}{unit}".strip()
    return f"{value:.4g} {unit}".strip()


def _tick_label(value: float, unit: str) -> str:
    # Sizes such as S = 4096 read better exactly; large magnitudes in engineering notation.
    if not unit and value == int(value) and 1 <= value < 100_000:
        return f"{int(value):,}"
    return engineering_label(value, unit)


def _escape(text: str) -> str:
    """Text as XML character data (xml.sax.saxutils would import urllib and http for this)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _num(value: float) -> str:
    """A coordinate as SVG text: two decimals at most, no trailing zeros, never '-0'."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


# ------------------------------------------------------------------ the canvas


class Figure:
    """An SVG document built element by element; sizes are in points, as the viewBox."""

    def __init__(self, width: float, height: float):
        self.width, self.height = width, height
        self.parts: list[str] = []
        self.rect(0, 0, width, height, fill="#ffffff")

    def _element(self, tag: str, attrs: dict[str, object], text: str | None = None) -> None:
        rendered = " ".join(f'{name.replace("_", "-")}="{_num(v) if isinstance(v, float | int) else v}"'
                            for name, v in attrs.items() if v is not None)
        self.parts.append(f"<{tag} {rendered}/>" if text is None else f"<{tag} {rendered}>{_escape(text)}</{tag}>")

    def rect(self, x: float, y: float, width: float, height: float, **style) -> None:
        self._element("rect", {"x": x, "y": y, "width": width, "height": height, **style})

    def line(self, points: Sequence[tuple[float, float]], color: str, width: float,
             dash: str | None = None, opacity: float | None = None) -> None:
        if len(points) == 2:
            (x1, y1), (x2, y2) = points
            self._element("line", {"x1": x1, "y1": y1, "x2": x2, "y2": y2, "stroke": color,
                                   "stroke_width": width, "stroke_dasharray": dash, "stroke_opacity": opacity})
            return
        path = " ".join(f"{_num(x)},{_num(y)}" for x, y in points)
        self._element("polyline", {"points": path, "fill": "none", "stroke": color, "stroke_width": width,
                                   "stroke_linejoin": "round", "stroke_dasharray": dash})

    def circle(self, x: float, y: float, radius: float, fill: str, stroke: str | None = None,
               stroke_width: float | None = None) -> None:
        self._element("circle", {"cx": x, "cy": y, "r": radius, "fill": fill, "stroke": stroke,
                                 "stroke_width": stroke_width})

    def text(self, x: float, y: float, text: str, size: float, anchor: str = "start",
             color: str = "#000000", vertical: bool = False) -> None:
        """Text whose baseline starts (or centres, or ends: `anchor`) at (x, y); `vertical` reads upwards."""
        attrs = {"x": x, "y": y, "font-size": size, "text-anchor": None if anchor == "start" else anchor,
                 "fill": None if color == "#000000" else color}
        if vertical:
            attrs["transform"] = f"rotate(-90 {_num(x)} {_num(y)})"
        self._element("text", attrs, text)

    def svg(self) -> str:
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{_num(self.width)}pt" '
                f'height="{_num(self.height)}pt" viewBox="0 0 {_num(self.width)} {_num(self.height)}" '
                f'font-family="{FONT}" stroke-linecap="butt">')
        return "\n".join([head, *self.parts, "</svg>"]) + "\n"


def _middle(y: float, size: float) -> float:
    """Baseline that centres text of `size` vertically on y (DejaVu's digits are about 0.73 em tall)."""
    return y + 0.36 * size


# ------------------------------------------------------------------ scales and ticks


@dataclass
class Scale:
    """Maps data values in [low, high] to positions in [start, end] (end < start for a y axis)."""

    low: float
    high: float
    start: float
    end: float
    log: bool = True

    def __call__(self, value: float) -> float:
        if self.log:
            t = (math.log10(value) - math.log10(self.low)) / (math.log10(self.high) - math.log10(self.low))
        else:
            t = (value - self.low) / (self.high - self.low)
        return self.start + t * (self.end - self.start)

    def contains(self, value: float) -> bool:
        return self.low * (1 - 1e-9) <= value <= self.high * (1 + 1e-9)


def log_limits(values: Sequence[float], margin: float = 0.05) -> tuple[float, float]:
    """Axis limits around positive values, padded by `margin` of the span in log space."""
    low, high = math.log10(min(values)), math.log10(max(values))
    pad = (high - low) * margin if high > low else 0.5
    return 10 ** (low - pad), 10 ** (high + pad)


def log_ticks(low: float, high: float, max_ticks: int = 11) -> tuple[list[float], list[float]]:
    """(major, minor) ticks of a log axis: 1-2-5 per decade over short ranges, else decades
    (every other one, or sparser, when there are too many); minor ticks fill in the decades."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))

    def within(subs: Sequence[int], stride: int = 1) -> list[float]:
        return [s * 10.0 ** d for d in range(first, last + 1) if (d - first) % stride == 0 for s in subs
                if low <= s * 10.0 ** d <= high]

    if math.log10(high / low) < 2.5:
        major = within((1, 2, 5))
        if len(major) < 2:
            major = within(range(1, 10))
        minor = [] if len(major) > 6 else [v for v in within(range(1, 10)) if v not in major]
        return major, minor
    stride = 1
    while len(within((1,), stride)) > max_ticks:
        stride += 1
    major = within((1,), stride)
    minor = [] if stride > 1 or last - first > 8 else [v for v in within(range(2, 10))]
    return major, minor


def linear_ticks(top: float, count: int = 5) -> list[float]:
    """Ticks from 0 to at most `top` at a 1-2-5 step, about `count` of them."""
    raw = top / count
    step = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * step:
            step *= factor
            break
    return [i * step for i in range(int(top / step + 1e-9) + 1)]


# ------------------------------------------------------------------ one panel


@dataclass
class Axes:
    """A plot area of `fig` between two scales: left and bottom spines, grid, ticks and labels."""

    fig: Figure
    x: Scale
    y: Scale
    legend_entries: list[tuple[str, str, bool]] = field(default_factory=list)  # (label, colour, dotted)

    @property
    def left(self) -> float:
        return min(self.x.start, self.x.end)

    @property
    def right(self) -> float:
        return max(self.x.start, self.x.end)

    @property
    def top(self) -> float:
        return min(self.y.start, self.y.end)

    @property
    def bottom(self) -> float:
        return max(self.y.start, self.y.end)

    def x_ticks(self, ticks: Sequence[float], labels: Sequence[str] | None, minor: Sequence[float] = (),
                grid: bool = True) -> None:
        for value in minor:
            self.fig.line([(self.x(value), self.bottom), (self.x(value), self.bottom + MINOR_TICK_LENGTH)],
                          "#000000", 0.6)
        for index, value in enumerate(ticks):
            x = self.x(value)
            if grid:
                self.fig.line([(x, self.bottom), (x, self.top)], GRID_COLOR, 0.6, opacity=0.35)
            self.fig.line([(x, self.bottom), (x, self.bottom + TICK_LENGTH)], "#000000", 0.8)
            if labels is not None:
                self.fig.text(x, self.bottom + TICK_LENGTH + PAD + 0.76 * TICK_SIZE, labels[index],
                              TICK_SIZE, "middle")

    def y_ticks(self, ticks: Sequence[float], labels: Sequence[str] | None, minor: Sequence[float] = (),
                grid: bool = True) -> None:
        for value in minor:
            self.fig.line([(self.left - MINOR_TICK_LENGTH, self.y(value)), (self.left, self.y(value))],
                          "#000000", 0.6)
        for index, value in enumerate(ticks):
            y = self.y(value)
            if grid:
                self.fig.line([(self.left, y), (self.right, y)], GRID_COLOR, 0.6, opacity=0.35)
            self.fig.line([(self.left - TICK_LENGTH, y), (self.left, y)], "#000000", 0.8)
            if labels is not None:
                self.fig.text(self.left - TICK_LENGTH - PAD, _middle(y, TICK_SIZE), labels[index], TICK_SIZE, "end")

    def spines(self) -> None:
        self.fig.line([(self.left, self.top), (self.left, self.bottom)], "#000000", 0.8)
        self.fig.line([(self.left, self.bottom), (self.right, self.bottom)], "#000000", 0.8)

    def title(self, text: str) -> None:
        self.fig.text(self.left, self.top - 6, text, TITLE_SIZE)

    def x_label(self, text: str) -> None:
        self.fig.text((self.left + self.right) / 2,
                      self.bottom + TICK_LENGTH + 2 * PAD + 1.0 * TICK_SIZE + 0.76 * LABEL_SIZE, text,
                      LABEL_SIZE, "middle")

    def y_label(self, text: str, x: float) -> None:
        self.fig.text(x + 0.76 * LABEL_SIZE, (self.top + self.bottom) / 2, text, LABEL_SIZE, "middle",
                      vertical=True)

    def series(self, name: str, points: Sequence[tuple[float, float]], color: str) -> None:
        """A line through points with a small dot on each; an empty series is only named in the legend."""
        if not points:
            # Zero everywhere (say, no CUDA-core work) has no log-scale line; the legend still says so.
            self.legend_entries.append((f"{name}: 0", color, True))
            return
        at = [(self.x(x), self.y(y)) for x, y in points]
        if len(at) > 1:
            self.fig.line(at, color, LINE_WIDTH)
        for x, y in at:
            self.fig.circle(x, y, DOT_RADIUS, color)
        self.legend_entries.append((name, color, False))

    def mark_x(self, x_value: float) -> None:
        """A dashed vertical line at x, drawn first so that the curves cross over it."""
        x = self.x(x_value)
        self.fig.line([(x, self.bottom), (x, self.top)], MARKER_COLOR, 0.9, dash="3.33,1.44")

    def label_x(self, x_value: float, label: str, values: Sequence[float]) -> None:
        """A ring on every curve at x, and the label in a box at the top of the dashed line."""
        x = self.x(x_value)
        for value in values:
            if value > 0 and math.isfinite(value) and self.y.contains(value):
                self.fig.circle(x, self.y(value), 3.0, "#ffffff", MARKER_COLOR, 1.4)
        # On the side with more room, wrapped to fit there.
        right_side = x - self.left <= self.right - x
        room = (self.right - x if right_side else x - self.left) - 10
        lines = _wrap(label, NOTE_SIZE, room)
        width = max(text_width(line, NOTE_SIZE) for line in lines) + 6
        box_left = x + 4 if right_side else x - 4 - width
        box_left = min(max(box_left, 2.0), self.fig.width - 2 - width)
        height = 1.25 * NOTE_SIZE * len(lines) + 3
        self.fig.rect(box_left, self.top + 3, width, height, fill="#ffffff", stroke=MARKER_COLOR,
                      stroke_width=0.7, rx=2.5)
        for index, line in enumerate(lines):
            self.fig.text(box_left + 3, self.top + 4.5 + 0.9 * NOTE_SIZE + 1.25 * NOTE_SIZE * index, line,
                          NOTE_SIZE, color=MARKER_COLOR)

    def legend(self) -> None:
        """The named series in the lower right corner, each with a line sample."""
        if not self.legend_entries:
            return
        row, sample = 1.35 * LEGEND_SIZE, 20.0
        width = 4 + sample + 5 + max(text_width(text, LEGEND_SIZE) for text, _, _ in self.legend_entries) + 4
        height = row * len(self.legend_entries) + 5
        left, top = self.right - 4 - width, self.bottom - 4 - height
        self.fig.rect(left, top, width, height, fill="#ffffff", fill_opacity=0.9)
        for index, (text, color, dotted) in enumerate(self.legend_entries):
            y = top + 2.5 + row * (index + 0.5)
            self.fig.line([(left + 4, y), (left + 4 + sample, y)], color, LINE_WIDTH,
                          dash="1.6,2.64" if dotted else None)
            if not dotted:
                self.fig.circle(left + 4 + sample / 2, y, DOT_RADIUS, color)
            self.fig.text(left + 4 + sample + 5, _middle(y, LEGEND_SIZE), text, LEGEND_SIZE)


def _wrap(text: str, size: float, room: float, most: int = 3) -> list[str]:
    """Split text at spaces into at most `most` lines, each fitting in `room` where the words allow."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and text_width(f"{lines[-1]} {word}", size) <= room:
            lines[-1] = f"{lines[-1]} {word}"
        elif len(lines) < most:
            lines.append(word)
        else:
            lines[-1] = f"{lines[-1]} {word}"
    return lines


# ------------------------------------------------------------------ log-log panels


def _check_series(xs: Sequence[float], ys: Sequence[float], name: str) -> None:
    if len(xs) != len(ys):
        raise ValueError(f"series {name!r}: {len(xs)} x values but {len(ys)} y values")
    if any(not (x > 0 and math.isfinite(x)) for x in xs):
        raise ValueError(f"series {name!r}: x values must be positive and finite for a log axis")


def _positive(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in points if y > 0 and math.isfinite(y)]


def _loglog_panel(fig: Figure, box: tuple[float, float, float, float], series, x_label: str, y_label: str,
                  y_unit: str, marker: tuple[float, str, list[float]] | None, title: str | None) -> Axes:
    """Draw one log-log panel inside `box` = (left, top, right, bottom) of the figure; margins for the
    tick labels, axis labels and title are taken from inside the box."""
    for name, xs, ys in series:
        _check_series(xs, ys, name)
    all_x = sorted({float(x) for _, xs, _ in series for x in xs})
    all_y = [y for _, xs, ys in series for _, y in _positive(list(zip(xs, ys)))]
    x_low, x_high = log_limits(all_x + ([marker[0]] if marker else []) or [1.0])
    y_low, y_high = log_limits(all_y or [1.0])
    # The sizes themselves are the x ticks when there are few of them (S = 256, 512, ...).
    x_major, x_minor = (all_x, []) if 0 < len(all_x) <= 8 else log_ticks(x_low, x_high)
    y_major, y_minor = log_ticks(y_low, y_high)
    x_labels = [_tick_label(v, "") for v in x_major]
    y_labels = [_tick_label(v, y_unit) for v in y_major]
    left, top, right, bottom = box
    plot_left = left + 4 + 1.2 * LABEL_SIZE + PAD + max(map(lambda t: text_width(t, TICK_SIZE), y_labels),
                                                         default=0) + PAD + TICK_LENGTH
    plot_right = right - max(10.0, text_width(x_labels[-1], TICK_SIZE) / 2 + 2) if x_labels else right - 10
    plot_top = top + (6 + 1.2 * TITLE_SIZE if title else 8)
    plot_bottom = bottom - (TICK_LENGTH + 2 * PAD + 1.2 * TICK_SIZE + 1.2 * LABEL_SIZE + 2)
    ax = Axes(fig, Scale(x_low, x_high, plot_left, plot_right), Scale(y_low, y_high, plot_bottom, plot_top))
    ax.x_ticks(x_major, x_labels, x_minor)
    ax.y_ticks(y_major, y_labels, y_minor)
    ax.spines()
    if marker is not None:
        ax.mark_x(marker[0])
    for index, (name, xs, ys) in enumerate(series):
        ax.series(name, _positive(list(zip(xs, ys))), COLORS[index % len(COLORS)])
    if marker is not None:
        ax.label_x(*marker)
    ax.legend()
    ax.x_label(x_label)
    ax.y_label(y_label, left + 4)
    if title:
        ax.title(title)
    return ax


def _interpolate_loglog(xs: Sequence[float], ys: Sequence[float], x: float) -> float | None:
    """y at x on the log-log polyline through (xs, ys); None outside the data or on non-positive y."""
    pairs = sorted((a, b) for a, b in zip(xs, ys) if a > 0 and b > 0)
    for (x0, y0), (x1, y1) in zip(pairs, pairs[1:]):
        if x0 <= x <= x1:
            if x1 == x0:
                return y0
            t = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
            return math.exp(math.log(y0) + t * (math.log(y1) - math.log(y0)))
    for a, b in pairs:
        if a == x:
            return b
    return None


def scaling_plot_svg(
    title: str,
    series: list[tuple[str, list[float], list[float]]],
    x_label: str,
    y_label: str,
    marker: tuple[float, float, str] | None = None,
    y_unit: str = "",
) -> str:
    """One log-log panel of several named series (name, xs, ys).

    `marker` = (x, y, label) marks and labels one point, typically the page's worked example; the
    label text appears verbatim in the SVG. Non-positive y values are left out (log axis).
    """
    fig = Figure(460.8, 259.2)  # 6.4 x 3.6 in
    mark = None if marker is None else (marker[0], marker[2], [marker[1]])
    _loglog_panel(fig, (0, 0, fig.width, fig.height), series, x_label, y_label, y_unit, mark, title)
    return fig.svg()


def op_scaling_svg(
    op_name: str,
    xs: list[float],
    tensor_flops: list[float],
    cuda_flops: list[float],
    act_bytes: list[float],
    example_x: float,
    example_label: str,
    x_label: str = "S (tokens)",
) -> str:
    """Two log-log panels for one op across sizes `xs` (usually the sequence length S).

    Left: FLOPs on tensor cores (matrix multiplies) and on CUDA cores (everything else). Right: the
    activation memory in bytes. The example size `example_x` is drawn as a dashed line with a ring on
    every curve (the exact value when `example_x` is one of `xs`, else read off the curve) and
    labelled `example_label` in both panels.
    """
    for name, ys in (("tensor_flops", tensor_flops), ("cuda_flops", cuda_flops), ("act_bytes", act_bytes)):
        _check_series(xs, ys, name)

    def at_example(ys: list[float]) -> float | None:
        for x, y in zip(xs, ys):
            if x == example_x:
                return y
        return _interpolate_loglog(xs, ys, example_x)

    fig = Figure(648, 252)  # 9 x 3.5 in
    half = fig.width / 2
    flop_series = [("tensor-core FLOPs", list(xs), list(tensor_flops)),
                   ("CUDA-core FLOPs", list(xs), list(cuda_flops))]
    flop_marks = [v for v in (at_example(tensor_flops), at_example(cuda_flops)) if v is not None]
    _loglog_panel(fig, (0, 0, half, fig.height), flop_series, x_label, "FLOPs", "",
                  (example_x, example_label, flop_marks), f"{op_name}: forward FLOPs")
    act_series = [("peak activation memory", list(xs), list(act_bytes))]
    act_marks = [v for v in (at_example(act_bytes),) if v is not None]
    _loglog_panel(fig, (half, 0, fig.width, fig.height), act_series, x_label, "bytes", "B",
                  (example_x, example_label, act_marks), f"{op_name}: peak activation memory")
    return fig.svg()


# ------------------------------------------------------------------ bars for the index


def breakdown_svg(rows: list[tuple[str, float, float]],
                  panels: tuple[tuple[str, str], tuple[str, str]] = (("Forward FLOPs", "FLOPs"), ("Parameters", ""))) -> str:
    """Horizontal bars: two values per (name, first, second) row, one panel each, titled and unit-labelled
    by `panels` (the index: forward FLOPs and parameters of each op).

    Rows keep the given order (top to bottom). Values spanning more than three decades are drawn on
    a log axis, otherwise linearly; zero is shown as an empty bar labelled "0" in both cases. Every
    bar carries its value in engineering notation.
    """
    if not rows:
        raise ValueError("breakdown_svg needs at least one row")
    fig = Figure(648, 72 * (1.2 + 0.28 * len(rows)))
    names = [r[0] for r in rows]
    names_width = max(text_width(name, TICK_SIZE) for name in names)
    top, bottom = 8 + 1.2 * TITLE_SIZE, fig.height - (TICK_LENGTH + PAD + 1.2 * TICK_SIZE + 6)
    start = 6 + names_width + PAD + TICK_LENGTH
    gap = 24.0
    width = (fig.width - start - gap - 12) / 2
    pitch = (bottom - top) / len(rows)
    rows_scale = Scale(-0.5, len(rows) - 0.5, top, bottom, log=False)  # row 0 on top
    for panel, (column, title, unit, color) in enumerate(((1, *panels[0], COLORS[0]), (2, *panels[1], COLORS[2]))):
        values = [float(r[column]) for r in rows]
        positive = [v for v in values if v > 0]
        use_log = bool(positive) and max(positive) / min(positive) > 1e3
        left = start + panel * (width + gap)
        # Each bar's value is printed after its end and must end before the next panel (or the figure's
        # edge): the axis is stretched until the widest such label fits.
        room = left + width + (gap if panel == 0 else 12) - 4
        value_widths = [3 + text_width(engineering_label(v, unit), BAR_VALUE_SIZE) for v in values]
        if use_log:
            floor = 10.0 ** math.floor(math.log10(min(positive)))
            high = 10 ** (math.ceil(math.log10(max(positive))) + 0.6)
            x = Scale(floor, high, left, left + width)
            while any(x(max(v, floor)) + w > room for v, w in zip(values, value_widths)) and x.high < high * 1e6:
                x = Scale(floor, x.high * 10 ** 0.5, left, left + width)
            ticks, minor = log_ticks(x.low, x.high)
            labels = [engineering_label(v) for v in ticks]
        else:
            floor = 0.0
            top_value = max(values) if values and max(values) > 0 else 1.0
            x = Scale(0.0, top_value * 1.3, left, left + width, log=False)
            while any(x(v) + w > room for v, w in zip(values, value_widths)) and x.high < top_value * 20:
                x = Scale(0.0, x.high * 1.25, left, left + width, log=False)
            ticks, minor = linear_ticks(x.high), []
            labels = [engineering_label(v) for v in ticks]
        ticks, labels = _spaced(ticks, labels, x)
        ax = Axes(fig, x, rows_scale)
        ax.x_ticks(ticks, labels, minor)
        ax.y_ticks(list(range(len(rows))), names if panel == 0 else None, grid=False)
        for row, value in enumerate(values):
            y = rows_scale(row)
            end = x(value) if value > 0 else x(floor) if use_log else x(0.0)
            if value > 0:
                fig.rect(ax.left, y - 0.325 * pitch, end - ax.left, 0.65 * pitch, fill=color)
            fig.text(end + 3, _middle(y, BAR_VALUE_SIZE), engineering_label(value, unit), BAR_VALUE_SIZE)
        ax.spines()
        ax.title(title + (" (log scale)" if use_log else ""))
    return fig.svg()


def _spaced(ticks: list[float], labels: list[str], scale: Scale) -> tuple[list[float], list[str]]:
    """Every k-th tick, the smallest k for which neighbouring labels do not touch."""
    for stride in range(1, len(ticks) + 1):
        kept = list(range(0, len(ticks), stride))
        if all(scale(ticks[b]) - scale(ticks[a]) >= (text_width(labels[a], TICK_SIZE) +
                                                        text_width(labels[b], TICK_SIZE)) / 2 + 4
               for a, b in zip(kept, kept[1:])):
            return [ticks[i] for i in kept], [labels[i] for i in kept]
    return ticks[:1], labels[:1]


# ------------------------------------------------------------------ roofline

POINT_COLORS = ("#000000", "#F0E442", "#999999", "#882255", "#44AA99", "#DDCC77")


def _marker(fig: Figure, x: float, y: float, shape: int, color: str) -> None:
    """A point: circle, square or diamond (by example), outlined so light colours stay visible."""
    if shape % 3 == 0:
        fig.circle(x, y, 3.4, color, "#000000", 0.6)
        return
    side = 6.0
    if shape % 3 == 1:
        fig.rect(x - side / 2, y - side / 2, side, side, fill=color, stroke="#000000", stroke_width=0.6)
    else:
        fig._element("polygon", {"points": f"{_num(x)},{_num(y - 4)} {_num(x + 4)},{_num(y)} "
                                           f"{_num(x)},{_num(y + 4)} {_num(x - 4)},{_num(y)}",
                                 "fill": color, "stroke": "#000000", "stroke_width": 0.6})


def roofline_svg(
    op_name: str,
    gpus: list[tuple[str, float, float]],
    points: list[tuple[str, str, float, float]],
    reference: str,
) -> str:
    """A roofline chart: attainable FLOP/s against arithmetic intensity (FLOP per byte), log-log.

    `gpus` = (name, tensor-core peak FLOP/s, bandwidth B/s): one ceiling each, min(peak, I × bandwidth).
    `points` = (op, example, intensity, FLOP/s at the time bound on the `reference` GPU): ops as points,
    one colour per op and one shape per example, named in a legend (labels beside points collide).
    """
    if not gpus:
        raise ValueError("roofline_svg needs at least one GPU")
    for op, example, x, y in points:
        if not (x > 0 and y > 0 and math.isfinite(x) and math.isfinite(y)):
            raise ValueError(f"point {op} @ {example}: intensity and FLOP/s must be positive and finite")
    ridges = [peak / bandwidth for _, peak, bandwidth in gpus]
    xs = [p[2] for p in points] + ridges
    x_low = 10 ** math.floor(math.log10(min(xs) / 3))
    x_high = 10 ** math.ceil(math.log10(max(xs) * 3))
    ys = [p[3] for p in points] + [peak for _, peak, _ in gpus] + [x_low * bw for _, _, bw in gpus]
    y_low, y_high = log_limits(ys)
    x_major, _ = log_ticks(x_low, x_high)
    y_major, _ = log_ticks(y_low, y_high)
    x_labels = [_tick_label(v, "") for v in x_major]
    y_labels = [_tick_label(v, "FLOP/s") for v in y_major]
    fig = Figure(518.4, 302.4)  # 7.2 x 4.2 in
    plot_left = 4 + 1.2 * LABEL_SIZE + PAD + max(text_width(t, TICK_SIZE) for t in y_labels) + PAD + TICK_LENGTH
    plot_bottom = fig.height - (TICK_LENGTH + 2 * PAD + 1.2 * TICK_SIZE + 1.2 * LABEL_SIZE + 2)
    plot_top = 6 + 1.2 * TITLE_SIZE
    plot_right = fig.width - max(14.0, text_width(x_labels[-1], TICK_SIZE) / 2 + 4)
    ax = Axes(fig, Scale(x_low, x_high, plot_left, plot_right), Scale(y_low, y_high, plot_bottom, plot_top))
    ax.x_ticks(x_major, x_labels)
    ax.y_ticks(y_major, y_labels)
    ax.spines()
    for index, ((name, peak, bandwidth), ridge) in enumerate(zip(gpus, ridges)):
        # Two segments are the whole ceiling: the bandwidth slope up to the ridge, then the flat peak.
        start = max(x_low, y_low / bandwidth)
        corners = [(start, start * bandwidth), (ridge, peak), (x_high, peak)]
        color = COLORS[index % len(COLORS)]
        fig.line([(ax.x(x), ax.y(y)) for x, y in corners], color, 1.3, opacity=None)
        ax.legend_entries.append((name, color, False))
    ops = list(dict.fromkeys(p[0] for p in points))
    examples = list(dict.fromkeys(p[1] for p in points))
    for op, example, x, y in points:
        _marker(fig, ax.x(x), ax.y(y), examples.index(example), POINT_COLORS[ops.index(op) % len(POINT_COLORS)])
    ax.legend()
    # The points' legend, upper left: one row per (op, example) pair, as drawn.
    pairs = list(dict.fromkeys((p[0], p[1]) for p in points))
    if pairs:
        row = 1.35 * LEGEND_SIZE
        texts = [f"{op} ({example})" for op, example in pairs]
        width = 4 + 10 + 5 + max(text_width(t, LEGEND_SIZE) for t in texts) + 4
        left, top = ax.left + 4, ax.top + 4
        fig.rect(left, top, width, row * len(pairs) + 5, fill="#ffffff", fill_opacity=0.9)
        for index, ((op, example), text) in enumerate(zip(pairs, texts)):
            y = top + 2.5 + row * (index + 0.5)
            _marker(fig, left + 9, y, examples.index(example), POINT_COLORS[ops.index(op) % len(POINT_COLORS)])
            fig.text(left + 4 + 10 + 5, _middle(y, LEGEND_SIZE), text, LEGEND_SIZE)
    ax.x_label("arithmetic intensity (FLOP per byte of the fused lower bound)")
    ax.y_label(f"FLOP/s (points: at the time bound on {reference})", 4)
    ax.title(f"{op_name}: roofline")
    return fig.svg()
