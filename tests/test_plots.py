"""opdoc.plots: SVGs that are byte-identical across runs and processes, and say what they show."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib
import pytest

from opdoc import plots

REPO = Path(__file__).resolve().parents[1]
XS = [256, 512, 1024, 2048, 4096, 8192]
TENSOR = [2 * x * 1280 * 6848 * 3 + 4 * x * x * 1280 for x in XS]
CUDA = [10 * x * 1280 for x in XS]
ACT = [x * 1280 * 2 * 12 for x in XS]
LABEL = "example: S = 1000 (one page)"
ROWS = [("DeepseekV2MoE", 4.3e11, 6.4e8), ("LlamaRMSNorm", 5e6, 1280), ("Attention", 9.5e12, 3.1e6),
        ("Conv2d", 0.0, 0.0)]


def scaling() -> str:
    return plots.op_scaling_svg("DeepseekV2MLP", XS, TENSOR, CUDA, ACT, 1000, LABEL)


def texts(svg: str) -> list[str]:
    root = ET.fromstring(svg.encode())
    return ["".join(el.itertext()) for el in root.iter("{http://www.w3.org/2000/svg}text")]


def test_scaling_is_byte_identical_when_rendered_twice():
    assert scaling() == scaling()


def test_breakdown_is_byte_identical_when_rendered_twice():
    assert plots.breakdown_svg(ROWS) == plots.breakdown_svg(ROWS)


def test_output_is_identical_in_a_fresh_process_with_another_hash_seed():
    code = (
        "import sys; from tests.test_plots import scaling; from opdoc import plots;"
        "from tests.test_plots import ROWS; sys.stdout.write(scaling() + plots.breakdown_svg(ROWS))"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345", MPLBACKEND="svg")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                            text=True, check=True)
    assert result.stdout == scaling() + plots.breakdown_svg(ROWS)


@pytest.mark.parametrize("make", [scaling, lambda: plots.breakdown_svg(ROWS)], ids=["scaling", "breakdown"])
def test_svg_has_no_date_no_tool_version_and_no_trailing_spaces(make):
    svg = make()
    assert "<dc:date>" not in svg and "Date" not in svg
    assert not re.search(r"\b(19|20)\d\d-\d\d-\d\d", svg), "a date leaked into the SVG"
    assert "Matplotlib v" not in svg and matplotlib.__version__ not in svg
    assert not any(line != line.rstrip() for line in svg.splitlines())
    ET.fromstring(svg.encode())  # well-formed


def test_scaling_marks_the_example_in_both_panels_and_labels_everything():
    found = texts(scaling())
    assert found.count(LABEL) == 2, found
    for expected in ("tensor-core FLOPs", "CUDA-core FLOPs", "peak activation memory", "S (tokens)",
                     "DeepseekV2MLP: forward FLOPs", "DeepseekV2MLP: peak activation memory"):
        assert expected in found
    assert "1,024" in found  # the sizes are the x ticks, exactly


def test_marker_label_with_markup_characters_is_xml_escaped_text():
    svg = plots.op_scaling_svg("Op", XS, TENSOR, CUDA, ACT, 2048, "S < 4096 & <b>")
    assert "<b>" not in svg
    assert "S &lt; 4096 &amp; &lt;b&gt;" in svg
    assert "S < 4096 & <b>" in texts(svg)


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


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="x values"):
        plots.op_scaling_svg("Op", XS, TENSOR[:-1], CUDA, ACT, 1024, "e")
    with pytest.raises(ValueError, match="positive"):
        plots.scaling_plot_svg("t", [("a", [0, 1], [1, 2])], "x", "y", None)
    with pytest.raises(ValueError):
        plots.breakdown_svg([])


def test_global_matplotlib_settings_are_left_alone():
    before = dict(matplotlib.rcParams)
    scaling()
    plots.breakdown_svg(ROWS)
    assert dict(matplotlib.rcParams) == before


@pytest.mark.parametrize(("value", "unit", "text"), [
    (430_840_000_000, "FLOPs", "430.8 GFLOPs"), (1280, "", "1.28 k"), (0, "B", "0 B"), (12.5, "B", "12.5 B"),
    (3e15, "", "3 P"),
])
def test_engineering_label(value, unit, text):
    assert plots.engineering_label(value, unit) == text
