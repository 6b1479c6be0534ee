"""SVG plots for the knowledge base, byte-identical from run to run.

The functions take plain numbers (no spec objects, no torch) and return SVG text ready to be written
next to the pages. Determinism comes from: a private Figure (no pyplot state), a fixed hash salt for
matplotlib's element ids, text kept as <text> (svg.fonttype 'none', so no font glyph paths that
depend on the installed fonts), and no date or creator in the metadata.

* `op_scaling_svg`: how one op grows with the sequence (or image) size — FLOPs (tensor-core and
  CUDA-core work) and activation memory, two log-log panels, with the documented example marked.
* `scaling_plot_svg`: the general single-panel log-log plot behind it.
* `breakdown_svg`: for the index, where the FLOPs and the parameters go across the documented ops.
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # no display, no GUI toolkit; the SVG canvas below is used explicitly anyway

from matplotlib.backends.backend_svg import FigureCanvasSVG  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

__all__ = ["op_scaling_svg", "scaling_plot_svg", "breakdown_svg", "engineering_label"]

# Fixed look: colour-blind-safe colours (Okabe-Ito), the font matplotlib ships with.
COLORS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")
MARKER_COLOR = "#D55E00"
RC = {
    "svg.hashsalt": "opdoc",
    "svg.fonttype": "none",
    "text.parse_math": False,  # titles and labels come from specs: a `$` is a dollar, not TeX
    "svg.image_inline": True,
    "font.family": "DejaVu Sans",
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.labelsize": 9.0,
    "legend.fontsize": 8.0,
    "axes.grid": True,
    "grid.alpha": 0.35,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "path.simplify": False,
    "figure.dpi": 100,
    "savefig.dpi": 100,
}
METADATA = {"Date": None, "Creator": None, "Contributor": None, "Format": None, "Type": None}
_PREFIXES = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


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


def _styled(function):
    """Run a plotting function under opdoc's rc settings (read when artists are made and saved)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(RC):
            return function(*args, **kwargs)

    return wrapper


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    FigureCanvasSVG(fig)
    fig.savefig(buffer, format="svg", metadata=METADATA, facecolor="white")
    # matplotlib ends path-data lines with a space; drop it so committed files pass whitespace checks.
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _tick_label(value: float, unit: str) -> str:
    # Sizes such as S = 4096 read better exactly; large magnitudes in engineering notation.
    if not unit and value == int(value) and 1 <= value < 100_000:
        return f"{int(value):,}"
    return engineering_label(value, unit)


def _log_axis_formatting(axis, unit: str, low: float | None = None, high: float | None = None,
                         ticks: Sequence[float] | None = None) -> None:
    """Log-axis ticks: at `ticks` when given, else 1-2-5 per decade over short ranges, else decades."""
    if ticks is not None:
        axis.set_ticks(list(ticks))
    else:
        narrow = low is not None and high is not None and low > 0 and math.log10(high / low) < 2.5
        axis.set_major_locator(LogLocator(base=10.0, subs=(1.0, 2.0, 5.0) if narrow else (1.0,), numticks=12))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: _tick_label(v, unit)))
    axis.set_minor_formatter(NullFormatter())


def _check_series(xs: Sequence[float], ys: Sequence[float], name: str) -> None:
    if len(xs) != len(ys):
        raise ValueError(f"series {name!r}: {len(xs)} x values but {len(ys)} y values")
    if any(not (x > 0 and math.isfinite(x)) for x in xs):
        raise ValueError(f"series {name!r}: x values must be positive and finite for a log axis")


def _draw_panel(ax, series, x_label, y_label, y_unit, marker, title):
    """Draw log-log lines; mark `marker` = (x, label) on every series at that x."""
    for index, (name, xs, ys) in enumerate(series):
        _check_series(xs, ys, name)
        points = [(x, y) for x, y in zip(xs, ys) if y > 0 and math.isfinite(y)]
        color = COLORS[index % len(COLORS)]
        if not points:
            # Zero everywhere (say, no CUDA-core work) has no log-scale line; the legend still says so.
            ax.plot([], [], color=color, linewidth=1.6, linestyle=":", label=f"{name}: 0")
            continue
        ax.plot([p[0] for p in points], [p[1] for p in points], color=color, linewidth=1.6,
                marker="o", markersize=2.5, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    all_x = sorted({x for _, xs, _ in series for x in xs})
    all_y = [y for _, _, ys in series for y in ys if y > 0 and math.isfinite(y)]
    _log_axis_formatting(ax.xaxis, "", ticks=all_x if 0 < len(all_x) <= 8 else None,
                         low=all_x[0] if all_x else None, high=all_x[-1] if all_x else None)
    _log_axis_formatting(ax.yaxis, y_unit, low=min(all_y, default=None), high=max(all_y, default=None))
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    if title:
        ax.set_title(title, loc="left")
    if marker is not None:
        x, label, values = marker
        ax.axvline(x, color=MARKER_COLOR, linewidth=0.9, linestyle="--", zorder=1)
        positive = [v for v in values if v > 0 and math.isfinite(v)]
        for value in positive:
            ax.plot([x], [value], marker="o", markersize=6, markerfacecolor="white",
                    markeredgecolor=MARKER_COLOR, markeredgewidth=1.4, zorder=4)
        # The label sits at the top of the dashed line, on the side with more room.
        low, high = ax.get_xlim()
        right_side = math.log(x / low) < math.log(high / x) if low > 0 and x > 0 else True
        ax.annotate(
            label, xy=(x, 0.97), xycoords=("data", "axes fraction"),
            xytext=(5 if right_side else -5, 0), textcoords="offset points",
            ha="left" if right_side else "right", va="top", fontsize=8, color=MARKER_COLOR,
            bbox={"boxstyle": "round,pad=0.25", "facecolor": "white", "edgecolor": MARKER_COLOR,
                  "linewidth": 0.7},
            zorder=5,
        )
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", frameon=True, framealpha=0.9, edgecolor="none")


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


@_styled
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
    fig = _figure(6.4, 3.6)
    ax = fig.add_subplot()
    mark = None if marker is None else (marker[0], marker[2], [marker[1]])
    _draw_panel(ax, series, x_label, y_label, y_unit, mark, title)
    return _svg(fig)


@_styled
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
    activation memory in bytes. The example size `example_x` is drawn as a dashed line with a dot on
    every curve (the exact value when `example_x` is one of `xs`, else read off the curve) and
    labelled `example_label` in both panels.
    """
    for name, ys in (("tensor_flops", tensor_flops), ("cuda_flops", cuda_flops), ("act_bytes", act_bytes)):
        _check_series(xs, ys, name)
    fig = _figure(9.0, 3.5)
    left, right = fig.subplots(1, 2)

    def at_example(ys: list[float]) -> float | None:
        for x, y in zip(xs, ys):
            if x == example_x:
                return y
        return _interpolate_loglog(xs, ys, example_x)

    flop_series = [("tensor-core FLOPs", list(xs), list(tensor_flops)),
                   ("CUDA-core FLOPs", list(xs), list(cuda_flops))]
    flop_marks = [v for v in (at_example(tensor_flops), at_example(cuda_flops)) if v is not None]
    _draw_panel(left, flop_series, x_label, "FLOPs", "", (example_x, example_label, flop_marks),
                f"{op_name}: forward FLOPs")

    act_series = [("peak activation memory", list(xs), list(act_bytes))]
    act_marks = [v for v in (at_example(act_bytes),) if v is not None]
    _draw_panel(right, act_series, x_label, "bytes", "B", (example_x, example_label, act_marks),
                f"{op_name}: peak activation memory")
    return _svg(fig)


@_styled
def breakdown_svg(rows: list[tuple[str, float, float]]) -> str:
    """Horizontal bars for the index: forward FLOPs and parameters of each (op, flops, params) row.

    Rows keep the given order (top to bottom). Values spanning more than three decades are drawn on
    a log axis, otherwise linearly; zero is shown as an empty bar labelled "0" in both cases. Every
    bar carries its value in engineering notation.
    """
    if not rows:
        raise ValueError("breakdown_svg needs at least one row")
    names = [r[0] for r in rows]
    height = 1.2 + 0.28 * len(rows)
    fig = _figure(9.0, height)
    panels = fig.subplots(1, 2, sharey=True)
    for ax, column, title, unit, color in (
        (panels[0], 1, "Forward FLOPs", "FLOPs", COLORS[0]),
        (panels[1], 2, "Parameters", "", COLORS[2]),
    ):
        values = [float(r[column]) for r in rows]
        positive = [v for v in values if v > 0]
        use_log = bool(positive) and max(positive) / min(positive) > 1e3
        positions = list(range(len(rows)))
        if use_log:
            floor = 10 ** math.floor(math.log10(min(positive)))
            widths = [v - floor if v > 0 else 0 for v in values]
            ax.barh(positions, widths, left=floor, color=color, height=0.65)
            ax.set_xscale("log")
            ax.set_xlim(floor, 10 ** math.ceil(math.log10(max(positive)) + 0.6))
            _log_axis_formatting(ax.xaxis, "")
        else:
            ax.barh(positions, values, color=color, height=0.65)
            top = max(values) if values and max(values) > 0 else 1.0
            ax.set_xlim(0, top * 1.3)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: engineering_label(v)))
        for y, v in zip(positions, values):
            x = (v if v > 0 else floor) if use_log else v
            ax.annotate(engineering_label(v, unit), xy=(x, y), xytext=(3, 0), textcoords="offset points",
                        va="center", ha="left", fontsize=7.5)
        ax.set_title(title + (" (log scale)" if use_log else ""), loc="left")
        ax.grid(axis="y", visible=False)
    panels[0].set_yticks(list(range(len(rows))), names)
    panels[0].invert_yaxis()  # first row on top; the axis is shared, so both panels follow
    return _svg(fig)
