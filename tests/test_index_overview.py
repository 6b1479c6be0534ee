"""The index's "where the FLOPs go" chart never draws a parent op beside its own children."""

from __future__ import annotations

import re

import pytest

from opdoc.pipeline import Paths, load
from opdoc.render import _draw_all, overview_job
from opdoc.view import ViewBuilder
from opdoc_testing import ROOT


@pytest.fixture(scope="module")
def chart_and_catalog():
    catalog, evaluator = load(Paths(root=ROOT))
    views = [ViewBuilder(catalog, evaluator, str, str, str).build(op) for op in catalog.specs]
    svg = _draw_all([overview_job(catalog, evaluator, views)])["plots/overview.svg"]
    return svg, catalog


def test_the_chart_plots_leaf_ops_only(chart_and_catalog):
    svg, catalog = chart_and_catalog
    labels = set(re.findall(r"<text[^>]*>([^<]+)</text>", svg))
    parents = {op for op, item in catalog.specs.items() if item.spec.children}
    leaves = set(catalog.specs) - parents
    # DeepseekV2Model (a parent of its decoder layers) was once drawn beside DeepseekV2DecoderLayer.
    assert {"DeepseekV2Model", "DeepseekV2DecoderLayer", "ImageEncoderViT"} <= parents
    assert not labels & parents, f"parents drawn: {sorted(labels & parents)}"
    assert leaves <= labels, f"leaves missing: {sorted(leaves - labels)}"


def test_the_index_says_what_the_chart_holds():
    index = (ROOT / "site" / "index.md").read_text(encoding="utf-8")
    caption = index.split("## Where the FLOPs and parameters go", 1)[1]
    assert "leaf op" in caption and "no bar contains another" in caption
