"""The reference preprocessing: the tile grid dynamic_preprocess picks, the tiles it cuts, the pixel transform.

Expected grids carry their arithmetic: a grid wins by the distance of its shape c_w / c_h to the
page's width / height; among equally near grids (visited fewest tiles first) a later one wins only
when width·height > 0.5 · 640² · c_w·c_h = 204800 · c_w·c_h. The vendor's own function is held
against ``tile_grid`` over a sweep in tests/check/test_upstream.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from opdoc.models.deepseek_ocr.preprocessing import (
    BasicImageTransform, candidate_grids, dynamic_preprocess, tile_grid, views_of,
)

ROOT = Path(__file__).resolve().parents[1]


def test_candidates_are_every_grid_of_two_to_nine_tiles():
    # divisors: 2 -> 2, 3 -> 2, 4 -> 3, 5 -> 2, 6 -> 4, 7 -> 2, 8 -> 4, 9 -> 3; 22 in all
    grids = candidate_grids()
    assert len(grids) == 22
    assert [w * h for w, h in grids] == sorted(w * h for w, h in grids)
    assert (1, 1) not in grids and (3, 3) in grids and (1, 9) in grids and (2, 5) not in grids


@pytest.mark.parametrize("width, height, grid", [
    # 1920/1080 = 1.78: shape 2 is 0.22 away, 1.5 is 0.28; (2,1) then (4,2) tie at shape 2:
    # 1920·1080 = 2073600 > 204800·8 = 1638400, so 4 x 2
    (1920, 1080, (4, 2)),
    # same shape, 1800·900 = 1620000 < 1638400: stays 2 x 1
    (1800, 900, (2, 1)),
    # squares: (2,2) then (3,3) tie at shape 1; 204800·9 = 1843200
    (1357, 1357, (2, 2)),  # 1357² = 1841449 < 1843200
    (1358, 1358, (3, 3)),  # 1358² = 1844164 > 1843200
    # 1250/1000 = 1.25, exactly between shapes 1 and 1.5: (2,2) first (0.25), then (3,2) as near:
    # 1250000 > 204800·6 = 1228800 takes it; (3,3) as near: 1250000 < 1843200 does not
    (1250, 1000, (3, 2)),
    # same shape, 1200·960 = 1152000 < 1228800: stays 2 x 2
    (1200, 960, (2, 2)),
    # 800/3000 = 0.267: shape 1/4 is 0.017 away, 1/3 is 0.067; no other grid of shape 1/4 has <= 9 tiles
    (800, 3000, (1, 4)),
])
def test_tile_grid_by_hand(width, height, grid):
    assert tile_grid(width, height) == grid


def test_infer_cuts_only_pages_larger_than_one_tile():
    assert views_of(640, 640) == (1, 1)
    assert views_of(600, 400) == (1, 1)
    assert views_of(641, 400) == tile_grid(641, 400) != (1, 1)


def test_bad_size_is_refused():
    with pytest.raises(ValueError, match="must be positive"):
        tile_grid(0, 100)


def test_the_page_table_is_what_tile_grid_picks():
    """Every row of the table on the dynamic_preprocess page: width × height -> c_w × c_h and tiles."""
    prose = yaml.safe_load((ROOT / "specs" / "deepseek_ocr" / "dynamic_preprocess.yaml").read_text())["prose"]
    rows = re.findall(r"^\|[^|]+\| (\d+) × (\d+) \| (\d+) × (\d+) \| (\d+) \|$", prose["what_it_is"], re.MULTILINE)
    assert len(rows) == 6
    for width, height, c_w, c_h, tiles in (tuple(map(int, row)) for row in rows):
        assert tile_grid(width, height) == (c_w, c_h), (width, height)
        assert tiles == c_w * c_h


def test_dynamic_preprocess_cuts_row_by_row():
    # 1280 x 640 is shape 2 with 819200 pixels < 1638400: grid 2 x 1, and the resize keeps the size
    page = Image.new("L", (1280, 640))
    page.paste(255, (640, 0, 1280, 640))  # the right half white
    tiles, grid = dynamic_preprocess(page)
    assert grid == (2, 1) and len(tiles) == 2
    assert [t.size for t in tiles] == [(640, 640)] * 2
    assert tiles[0].getextrema() == (0, 0) and tiles[1].getextrema() == (255, 255)
    with_thumbnail, _ = dynamic_preprocess(page, use_thumbnail=True)
    assert len(with_thumbnail) == 3 and with_thumbnail[2].size == (640, 640)


def test_transform_maps_bytes_to_minus_one_one_channels_first():
    pixels = torch.tensor([[[0, 51, 255]]], dtype=torch.uint8).expand(2, 3, 3).contiguous()  # H=2, W=3, C=3
    out = BasicImageTransform()(pixels)
    assert out.shape == (3, 2, 3) and out.dtype == torch.float32
    # (k / 255 - 0.5) / 0.5: 0 -> -1, 51 -> (0.2 - 0.5) / 0.5 = -0.6, 255 -> 1
    expected = torch.tensor([-1.0, -0.6, 1.0]).view(3, 1, 1).expand(3, 2, 3)
    assert torch.allclose(out, expected, atol=1e-6)


def test_transform_defaults_and_zero_std():
    pixels = torch.full((1, 1, 3), 102, dtype=torch.uint8)
    # std only: mean counts as zeros, 102 / 255 / 0.5 = 0.8
    assert torch.allclose(BasicImageTransform(mean=None, std=(0.5,) * 3)(pixels), torch.full((3, 1, 1), 0.8))
    # no normalisation: 102 / 255 = 0.4
    assert torch.allclose(BasicImageTransform(normalize=False)(pixels), torch.full((3, 1, 1), 0.4))
    with pytest.raises(ValueError, match="zero entry"):
        BasicImageTransform(std=(0.5, 0.0, 0.5))(pixels)
