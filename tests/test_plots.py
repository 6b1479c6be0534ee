"""opdoc.plots: SVGs that are byte-identical across runs and processes, drawn on true log axes, and
that say what they show (axes, ticks, legend, the labelled example) without a plotting library."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from opdoc import plots

REPO = Path(__file__).resolve().parents[1]
SVG = "{http://www.w3.org/2000/svg}"
XS = [256, 512, 1024, 2048, 4096, 8192]
TENSOR = [2 * x * 1280 * 6848 * 3 + 4 * x * x * 1280 for x in XS]
CUDA = [10 * x * 1280 for x in XS]
ACT = [x * 1280 * 2 * 12 for x in XS]
LABEL = "example: S = 1000 (one page)"
ROWS = [("DeepseekV2MoE", 4.3e11, 6.4e8), ("LlamaRMSNorm", 5e6, 1280), ("Attention", 9.5e12, 3.1e6),
        ("Conv2d", 0.0, 0.0)]


def scaling() -> str:
    return plots.op_scaling_svg("DeepseekV2MLP", XS, TENSOR, CUDA, ACT, 1000, LABEL)


def root(svg: str) -> ET.Element:
    return ET.fromstring(svg.encode())


def texts(svg: str) -> list[str]:
    return ["".join(el.itertext()) for el in root(svg).iter(f"{SVG}text")]


def text_x(svg: str, label: str) -> list[float]:
    return [float(el.get("x")) for el in root(svg).iter(f"{SVG}text") if "".join(el.itertext()) == label]


def polylines(svg: str) -> dict[str, list[tuple[float, float]]]:
    """Each data line by its stroke colour, as (x, y) points."""
    found = {}
    for el in root(svg).iter(f"{SVG}polyline"):
        found.setdefault(el.get("stroke"), []).append(
            [tuple(map(float, pair.split(","))) for pair in el.get("points").split()])
    return found


def test_scaling_is_byte_identical_when_rendered_twice():
    assert scaling() == scaling()


def test_breakdown_is_byte_identical_when_rendered_twice():
    assert plots.breakdown_svg(ROWS) == plots.breakdown_svg(ROWS)


def test_output_is_identical_in_a_fresh_process_with_another_hash_seed():
    code = (
        "import sys; from tests.test_plots import scaling; from opdoc import plots;"
        "from tests.test_plots import ROWS; sys.stdout.write(scaling() + plots.breakdown_svg(ROWS))"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                            text=True, check=True)
    assert result.stdout == scaling() + plots.breakdown_svg(ROWS)


def test_drawing_and_building_import_no_plotting_library():
    code = ("import sys, opdoc.plots, opdoc.render, opdoc.pipeline; from tests.test_plots import scaling; scaling();"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'torch', 'numpy')))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("make", [scaling, lambda: plots.breakdown_svg(ROWS)], ids=["scaling", "breakdown"])
def test_svg_is_plain_well_formed_and_has_no_date_or_ids(make):
    svg = make()
    assert not re.search(r"\b(19|20)\d\d-\d\d-\d\d", svg), "a date leaked into the SVG"
    assert " id=" not in svg  # nothing that could differ between runs or clash on a page
    assert not any(line != line.rstrip() for line in svg.splitlines())
    assert svg.endswith("</svg>\n")
    assert root(svg).tag == f"{SVG}svg"


def test_scaling_marks_the_example_in_both_panels_and_labels_everything():
    found = texts(scaling())
    assert found.count(LABEL) == 2, found
    for expected in ("tensor-core FLOPs", "CUDA-core FLOPs", "peak activation memory", "S (tokens)", "FLOPs",
                     "bytes", "DeepseekV2MLP: forward FLOPs", "DeepseekV2MLP: peak activation memory"):
        assert expected in found
    # The sizes are the x ticks, exactly, in both panels.
    for size in ("256", "512", "1,024", "2,048", "4,096", "8,192"):
        assert found.count(size) == 2, size


def test_flop_axis_has_a_labelled_tick_at_every_decade_the_data_spans():
    # The FLOPs panel spans CUDA[0] = 10 * 256 * 1280 = 3,276,800 (3.3 M) to TENSOR[-1] =
    # 2 * 8192 * 1280 * 6848 * 3 + 4 * 8192**2 * 1280 = 774,436,978,688 (774 G): decades 10 M to 100 G.
    found = texts(scaling())
    for decade in ("10 M", "100 M", "1 G", "10 G", "100 G"):
        assert decade in found, decade
    # Activation bytes: 256 * 1280 * 2 * 12 = 7,864,320 B to 8192 * 1280 * 2 * 12 = 251,658,240 B, about
    # 1.5 decades, so the ticks step 1-2-5: 10 MB, 20 MB, 50 MB, 100 MB, 200 MB.
    for tick in ("10 MB", "20 MB", "50 MB", "100 MB", "200 MB"):
        assert tick in found, tick


def test_axes_are_logarithmic():
    svg = scaling()
    # x: each size doubles, so on a log axis the tick labels are evenly spaced.
    xs = [text_x(svg, f"{size:,}")[0] for size in XS]
    steps = [b - a for a, b in zip(xs, xs[1:])]
    assert max(steps) - min(steps) < 0.05, steps
    # y: decade labels are evenly spaced too.
    ys = [float(el.get("y")) for el in root(svg).iter(f"{SVG}text")
          if "".join(el.itertext()) in ("10 M", "100 M", "1 G", "10 G", "100 G")]
    gaps = [a - b for a, b in zip(ys, ys[1:])]
    assert len(gaps) == 4 and max(gaps) - min(gaps) < 0.05, ys
    # The CUDA-core line is a power law (10 * 1280 * S), so on log-log axes its points are collinear
    # and evenly spaced; the tensor-core line bends upwards as the S**2 term takes over.
    points = polylines(svg)[plots.COLORS[1]][0]
    dy = [b[1] - a[1] for a, b in zip(points, points[1:])]
    assert len(points) == 6 and max(dy) - min(dy) < 0.05, dy
    tensor = polylines(svg)[plots.COLORS[0]][0]
    rises = [a[1] - b[1] for a, b in zip(tensor, tensor[1:])]
    assert all(later > earlier for earlier, later in zip(rises, rises[1:])), rises


def test_the_example_rings_sit_on_the_dashed_line():
    svg = plots.op_scaling_svg("Op", XS, TENSOR, CUDA, ACT, 2048, "example")
    dashed = [el for el in root(svg).iter(f"{SVG}line") if el.get("stroke-dasharray") and
              el.get("stroke") == plots.MARKER_COLOR]
    assert len(dashed) == 2  # one per panel
    rings = [el for el in root(svg).iter(f"{SVG}circle") if el.get("fill") == "#ffffff"]
    assert len(rings) == 3  # tensor and CUDA FLOPs, activation bytes
    line_xs = {float(el.get("x1")) for el in dashed}
    assert {float(ring.get("cx")) for ring in rings} <= line_xs
    # At x = 2048 the tensor-core ring is above the CUDA-core ring (SVG y grows downwards).
    left = sorted(float(ring.get("cy")) for ring in rings if float(ring.get("cx")) == min(line_xs))
    assert len(left) == 2 and left[0] < left[1]


def test_marker_label_with_markup_characters_is_xml_escaped_text():
    svg = plots.op_scaling_svg("Op", XS, TENSOR, CUDA, ACT, 2048, "S < 4096 & <b>")
    assert "<b>" not in svg
    assert "S &lt; 4096 &amp; &lt;b&gt;" in svg
    assert "S < 4096 & <b>" in texts(svg)


def _extents(svg: str) -> list[tuple[ET.Element, float, float]]:
    """(element, left, right) of every horizontal text, from its anchor and DejaVu Sans advance widths."""
    found = []
    for el in root(svg).iter(f"{SVG}text"):
        if el.get("transform"):
            continue
        width = plots.text_width("".join(el.itertext()), float(el.get("font-size")))
        shift = {"start": 0.0, "middle": width / 2, "end": width}[el.get("text-anchor", "start")]
        found.append((el, float(el.get("x")) - shift, float(el.get("x")) - shift + width))
    return found


def test_a_long_example_label_is_wrapped_inside_the_figure():
    label = "one 1024 px Base view, B=1 (16x16 SAM features + class token)"
    svg = plots.op_scaling_svg("NoTPAttention", [512, 640, 1024, 1280], [5e8, 8e8, 2e9, 3e9],
                               [6e5, 1e6, 6e6, 1e7], [4e5, 7e5, 1.6e6, 2.5e6], 1024, label,
                               x_label="image side (px)")
    lines = ["".join(el.itertext()) for el in root(svg).iter(f"{SVG}text") if el.get("fill") == plots.MARKER_COLOR]
    assert len(lines) >= 4  # wrapped, in each of the two panels
    assert " ".join(lines[: len(lines) // 2]) == label  # every word kept, in order
    width = float(root(svg).get("viewBox").split()[2])
    for el, left, right in _extents(svg):
        assert 0 <= left and right <= width, ("".join(el.itertext()), left, right)


def test_series_that_is_zero_everywhere_is_named_in_the_legend():
    svg = plots.op_scaling_svg("MatmulOnly", XS, TENSOR, [0] * len(XS), ACT, 1024, "example")
    assert "CUDA-core FLOPs: 0" in texts(svg)


def test_op_without_any_flops_still_plots():
    # a pure data movement (SAM's window_partition): both FLOP series are zero, memory is not
    svg = plots.op_scaling_svg("CopyOnly", XS, [0] * len(XS), [0] * len(XS), ACT, 1024, "example")
    shown = texts(svg)
    assert "tensor-core FLOPs: 0" in shown and "CUDA-core FLOPs: 0" in shown and "peak activation memory" in shown


def test_generic_scaling_plot_labels_marker_and_axes():
    svg = plots.scaling_plot_svg("Attention FLOPs", [("tensor", XS, TENSOR)], "S", "FLOPs",
                                 (1024, TENSOR[2], "example at 1,024"))
    found = texts(svg)
    assert "example at 1,024" in found and "Attention FLOPs" in found and "FLOPs" in found
    assert svg == plots.scaling_plot_svg("Attention FLOPs", [("tensor", XS, TENSOR)], "S", "FLOPs",
                                         (1024, TENSOR[2], "example at 1,024"))


def test_breakdown_names_every_op_and_value():
    found = texts(plots.breakdown_svg(ROWS))
    for name, _, _ in ROWS:
        assert name in found
    assert "430 GFLOPs" in found and "9.5 TFLOPs" in found and "640 M" in found and "0 FLOPs" in found
    assert "Forward FLOPs (log scale)" in found  # 5e6 to 9.5e12 spans more than three decades


def test_breakdown_tick_labels_do_not_overlap():
    # The x tick labels are the centred texts; on a log axis from 1 k to 1 G they would collide if
    # every decade were labelled in a narrow panel.
    rows: dict[float, list[tuple[float, float]]] = {}
    for el, left, right in _extents(plots.breakdown_svg(ROWS)):
        if el.get("text-anchor") == "middle":
            rows.setdefault(float(el.get("y")), []).append((left, right))
    spans = [span for row in rows.values() for span in row]
    assert len(spans) >= 6
    for row in rows.values():
        row.sort()
        assert all(a[1] <= b[0] for a, b in zip(row, row[1:])), row


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="x values"):
        plots.op_scaling_svg("Op", XS, TENSOR[:-1], CUDA, ACT, 1024, "e")
    with pytest.raises(ValueError, match="positive"):
        plots.scaling_plot_svg("t", [("a", [0, 1], [1, 2])], "x", "y", None)
    with pytest.raises(ValueError):
        plots.breakdown_svg([])


@pytest.mark.parametrize(("low", "high", "major"), [
    (3e6, 8e11, [1e7, 1e8, 1e9, 1e10, 1e11]),  # over five decades: one tick per decade
    (7e6, 2.6e8, [1e7, 2e7, 5e7, 1e8, 2e8]),  # about 1.6 decades: 1-2-5 per decade
    # 31 decades: every 2nd would be 16 ticks, more than 11; every 3rd is 11 (1e0, 1e3, ..., 1e30).
    (1e0, 1e30, [10.0 ** (3 * i) for i in range(11)]),
])
def test_log_ticks(low, high, major):
    found, _ = plots.log_ticks(low, high)
    assert len(found) == len(major) and all(math.isclose(a, b) for a, b in zip(found, major)), found


def test_text_width_uses_dejavu_sans_advances():
    # DejaVu Sans: digits advance 1303 of 2048 font units (0.636 em), 'W' 2025 (0.989 em).
    assert plots.text_width("0", 10) == pytest.approx(6.36)
    assert plots.text_width("W0", 100) == pytest.approx(98.9 + 63.6)


@pytest.mark.parametrize(("value", "unit", "text"), [
    (430_840_000_000, "FLOPs", "430.8 GFLOPs"), (1280, "", "1.28 k"), (0, "B", "0 B"), (12.5, "B", "12.5 B"),
    (3e15, "", "3 P"),
])
def test_engineering_label(value, unit, text):
    assert plots.engineering_label(value, unit) == text
