"""repeat_kv with and without grouped key/value heads, and examples shown only on some ops' pages."""

from __future__ import annotations

import shutil

import torch

from opdoc.cli import main
from opdoc.models.deepseek_ocr.deepseek_v2 import repeat_kv
from opdoc.pipeline import Paths, load
from opdoc_testing import ROOT, TINY

CATALOG, EV = load(Paths(root=ROOT))


def test_deepseek_ocr_gets_its_keys_back():
    keys = torch.randn(1, 10, 5, 128)
    assert repeat_kv(keys, 1) is keys  # 10 key/value heads for 10 query heads
    for example in ("prefill", "decode"):
        v = EV.evaluate_at("repeat_kv", example, None, None)
        assert v["io_bytes"] == v["peak"] == 0


def test_grouped_heads_copy_the_whole_cache():
    # 2 key/value heads for 10 query heads; bf16; P + S = 8192 positions in both examples
    for example in ("gqa_prefill", "gqa_decode"):
        v = EV.evaluate_at("repeat_kv", example, None, None)
        assert v["io_read_bytes"] == 1 * 2 * 8192 * 128 * 2 == 4_194_304
        assert v["io_write_bytes"] == v["peak"] == 1 * 10 * 8192 * 128 * 2 == 20_971_520
    keys = torch.randn(1, 2, 3, 4)
    out = repeat_kv(keys, 5)
    assert out.shape == (1, 10, 3, 4) and torch.equal(out[0, 5:10], keys[0, 1].expand(5, 3, 4))


def test_grouped_examples_are_shown_only_where_they_apply():
    assert CATALOG.specs["repeat_kv"].spec.examples[:2] == ["gqa_prefill", "gqa_decode"]
    assert CATALOG.specs["LlamaAttention"].spec.examples == ["prefill", "decode"]  # its formulas assume H_kv = H


def test_an_example_for_an_unknown_op_is_refused(tmp_path, capsys):
    shutil.copytree(TINY, tmp_path, dirs_exist_ok=True)
    model = tmp_path / "specs" / "tiny" / "model.yaml"
    text = model.read_text(encoding="utf-8")
    marker = "        why:"
    assert marker in text
    model.write_text(text.replace(marker, "        only: [NoSuchOp]\n" + marker, 1), encoding="utf-8")
    assert main(["build", "--root", str(tmp_path), "--site", str(tmp_path / "site")]) == 1
    err = capsys.readouterr().err
    assert "model.yaml:" in err and "only: no spec for 'NoSuchOp'" in err
