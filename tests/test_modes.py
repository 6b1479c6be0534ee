"""The image-mode numbers: vision positions against the published mode table, the request as the sum of
its forward passes, the KV cache at the end by hand, and the crossover answer plugged back in."""

from __future__ import annotations

from pathlib import Path

import pytest
import sympy

from opdoc.modes import ModeCosts
from opdoc.pipeline import Paths, load
from opdoc.roofline import load_roofline

ROOT = Path(__file__).resolve().parents[1]
OP = "DeepseekOCRForCausalLM"


@pytest.fixture(scope="module")
def loaded():
    catalog, ev = load(Paths(ROOT))
    return catalog, ev, load_roofline(catalog, ev)


def totals(ev, example, variant, **overrides):
    return ev.evaluate(OP, ev.binding("ocr", example, overrides), variant).totals


# DeepSeek-OCR's README and model card: vision tokens per mode, and the positions they take with a
# newline after each row and one separator: Tiny 64 / 73, Small 100 / 111, Base 256 / 273, Large 400 / 421.
# Gundam: n tiles of 100 tokens plus the 256 of the global view; positions (10·c_w + 1)·(10·c_h) + 273.
@pytest.mark.parametrize("example, tokens, positions", [
    ("tiny", 64, 73), ("small", 100, 111), ("base", 256, 273), ("large", 400, 421),
    ("gundam_2x1", 2 * 100 + 256, (10 * 2 + 1) * (10 * 1) + 273),   # 456, 483
    ("gundam_3x2", 6 * 100 + 256, (10 * 3 + 1) * (10 * 2) + 273),   # 856, 893
    ("gundam_2x3", 6 * 100 + 256, (10 * 2 + 1) * (10 * 3) + 273),   # 856, 903: same tiles, fewer newlines
    ("gundam_3x3", 9 * 100 + 256, (10 * 3 + 1) * (10 * 3) + 273),   # 1156, 1203
])
def test_vision_tokens_and_positions_match_the_published_modes(loaded, example, tokens, positions):
    catalog, ev, roofline = loaded
    facts = dict(ModeCosts(catalog, ev, None).example(example).facts)
    assert facts["vision tokens"] == f"{tokens:,}"
    assert facts["image positions (tokens, newlines, separator)"] == f"{positions:,}"


def test_the_request_is_its_prompt_forward_plus_each_decode_step(loaded):
    """N_out = 4: the prompt's forward, then decode steps at 1, 2, 3 generated tokens (the decode variant
    is the request's last step, so N_out = n + 1 gives step n), plus the argmax of each step's logits."""
    catalog, ev, _ = loaded
    V, B, n_out = 129280, 1, 4
    request = totals(ev, "base", "request", N_out=n_out)
    prefill = totals(ev, "base", "prefill")
    steps = [totals(ev, "base", "decode", N_out=step + 1) for step in range(1, n_out)]
    argmax = B * V + (n_out - 1) * B * V  # first token, then one per step: one comparison per logit
    assert request["tensor_flops"] == prefill["tensor_flops"] + sum(s["tensor_flops"] for s in steps)
    assert request["cuda_flops"] == prefill["cuda_flops"] + sum(s["cuda_flops"] for s in steps) + argmax
    assert request["parameters"] == prefill["parameters"] == 3_336_106_240  # weights counted once


def test_the_kv_cache_at_the_end_by_hand(loaded):
    catalog, ev, _ = loaded
    # Base: 273 image + 12 prompt positions, 1,000 tokens generated; the last token is never fed back,
    # so the cache ends at 285 + 1,000 - 1 = 1,284 positions: keys and values, 12 layers, 10 heads of 128,
    # 2 bytes each: 2 × 12 × 10 × 128 × 1,284 × 2 = 78,888,960 bytes.
    assert totals(ev, "base", "request")["kv_cache_bytes"] == 2 * 12 * 10 * 128 * 1284 * 2 == 78_888_960


def test_a_request_past_the_trained_context_is_refused(loaded):
    catalog, ev, _ = loaded
    from opdoc.spec import SpecError

    # Base: 285 prompt positions; 285 + 7,908 - 1 = 8,192 is the last position allowed.
    assert totals(ev, "base", "request", N_out=7908)["kv_cache_bytes"] > 0
    with pytest.raises(SpecError, match="max_position_embeddings"):
        ev.binding("ocr", "base", {"N_out": 7909})


@pytest.mark.parametrize("example", ["tiny", "base"])
def test_decode_overtakes_the_prompt_at_the_stated_length(loaded, example):
    """The crossover, plugged back in: each decode step's roofline bound evaluated on its own (the decode
    variant at N_out = j + 1), summed step by step, reaches the prompt's forward bound at N* - 1 steps and
    not at N* - 2. The page's answer comes from a closed-form sum; this sums point by point."""
    catalog, ev, roofline = loaded
    cost = ModeCosts(catalog, ev, roofline).example(example)
    for row in cost.times[:2]:  # H100, H200
        first = roofline.times(roofline.point(OP, "prefill", example), row.gpu).bound
        assert row.first == first
        answer = row.crossover
        step_bounds = [roofline.times(roofline.point(OP, "decode", example, {"N_out": j + 1}), row.gpu).bound
                       for j in range(1, answer)]
        assert sum(step_bounds) >= first
        assert sum(step_bounds[:-1]) < first


def test_the_closed_form_steps_equal_the_step_by_step_sum(loaded):
    catalog, ev, roofline = loaded
    cost = ModeCosts(catalog, ev, roofline).example("tiny")
    row = cost.times[0]
    n_out = 1000
    by_step = sum(roofline.times(roofline.point(OP, "decode", "tiny", {"N_out": j + 1}), row.gpu).bound
                  for j in range(1, n_out))
    assert sympy.nsimplify(row.steps) == sympy.nsimplify(by_step)


def test_the_request_is_proven_the_sum_of_its_passes_for_every_output_length(loaded):
    """Symbolically, for any N_out: request = prompt's forward + Σ_{n=2}^{N_out} decode step at N_out = n,
    plus the argmax over V logits for each of the N_out tokens (tensor FLOPs: no argmax)."""
    from opdoc.evaluate import sum_steps

    catalog, ev, _ = loaded
    symbols = catalog.symbols
    n_out, n = symbols["N_out"], sympy.Symbol("n", positive=True, integer=True)
    request = ev.quantities(OP, "request")
    prefill, decode = ev.quantities(OP, "prefill"), ev.quantities(OP, "decode")
    steps_tensor = sum_steps(decode.tensor_flops.xreplace({n_out: n}), n, 2, n_out)
    assert sympy.expand(request.tensor_flops - prefill.tensor_flops - steps_tensor) == 0
    steps_cuda = sum_steps(decode.cuda_flops.xreplace({n_out: n}), n, 2, n_out)
    argmax = n_out * symbols["B"] * symbols["V"]
    assert sympy.expand(request.cuda_flops - prefill.cuda_flops - steps_cuda - argmax) == 0


def test_a_request_past_the_context_is_marked_where_it_is_shown(loaded, capsys):
    catalog, ev, _ = loaded
    # base_max_new_tokens: 285 prompt positions and infer()'s 8,192 new tokens: 285 + 8,192 - 1 = 8,476 > 8,192.
    cost = ModeCosts(catalog, ev, None).example("base_max_new_tokens")
    assert cost.beyond and "8,476 exceeds max_position_embeddings = 8,192" in cost.beyond[0]
    page = (ROOT / "site" / "mode-base.md").read_text(encoding="utf-8")
    assert '!!! warning "Beyond the trained context"' in page and "8,476 exceeds" in page
    assert ModeCosts(catalog, ev, None).example("base").beyond == []

    from opdoc.cli import main

    assert main(["eval", OP, "--example", "base", "--set", "N_out=9000", "--beyond-limits", "--format", "json",
                 "--root", str(ROOT)]) == 0
    # 285 + 9,000 - 1 = 9,284 positions
    assert "9,284 exceeds max_position_embeddings" in capsys.readouterr().out


def test_a_limit_moved_by_an_override_is_not_reported_as_passed(loaded):
    """The limits passed come from the binding's own check: a context raised with --set counts."""
    catalog, ev, _ = loaded
    # 285 + 9,000 - 1 = 9,284 positions: past the configured 8,192, within a context set to 16,384.
    assert ev.binding("ocr", "base", {"N_out": 9000}, allow_beyond=True).passed
    assert ev.binding("ocr", "base", {"N_out": 9000, "max_position_embeddings": 16384}).passed == ()
