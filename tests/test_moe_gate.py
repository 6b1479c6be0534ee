"""MoEGate's routing methods as variants, and `only` naming several variants.

Counts at DeepSeek-OCR's prefill example (B=1, S=8192: n = 8192 tokens), E=64 experts, k=6, one expert
group (G_n = G_k = 1), against the counting rules of opdoc/check/rules.py worked by hand: softmax 5 per
score, sigmoid 4, a top-k or a max 1 per element it ranks, an elementwise op 1 per element, a mean
one add per element plus one division per result.
"""

from __future__ import annotations

import shutil

import pytest
import torch

from opdoc.cli import main
from opdoc.models.deepseek_ocr.config import DeepseekV2Config
from opdoc.models.deepseek_ocr.deepseek_v2 import MoEGate
from opdoc.pipeline import Paths, load
from opdoc_testing import ROOT, TINY

CATALOG, EV = load(Paths(root=ROOT))
n, E, k = 8192, 64, 6


def at(variant, example="prefill"):
    return EV.evaluate_at("MoEGate", example, variant, None)


@pytest.mark.parametrize("variant, cuda", [
    # softmax 5nE, top-k nE, scaling nk: 3,145,728 + 49,152
    ("greedy", 6 * n * E + n * k),
    # sigmoid 4nE instead of 5nE: 2,621,440 + 49,152
    ("sigmoid", 5 * n * E + n * k),
    # + group max nE, group top-k n·G_n, invert nE, masked_fill nE, top-k nE: 9nE + n + nk
    ("group_limited_greedy", 9 * n * E + n + n * k),
    # + bias add nE, top-2 per group nE, their sum 2n·G_n, group top-k n·G_n, invert, masked_fill, top-k
    ("noaux_tc", 10 * n * E + 3 * n + n * k),
    # greedy + scatter_add nk, normalise E, mean over S (nE + E), product E, sum E, batch mean 1 + 1, alpha 1
    ("training", 6 * n * E + n * k + n * k + E + (n * E + E) + E + E + 2 + 1),
])
def test_cuda_flops_of_each_routing_method(variant, cuda):
    v = at(variant)
    assert v["cuda_flops"] == cuda
    assert v["tensor_flops"] == 2 * n * 1280 * E  # the router product is the same in every method


def test_only_noaux_tc_has_the_correction_bias():
    assert at("noaux_tc")["parameters"] == E * 1280 + E  # 81,920 + 64
    assert at("greedy")["parameters"] == E * 1280


def test_the_moe_layer_routes_greedily():
    child = next(c for c in CATALOG.specs["DeepseekV2MoE"].spec.children if c.op == "MoEGate")
    assert child.variant == "greedy"


def test_group_limited_routing_keeps_experts_of_the_chosen_groups():
    """The reference really restricts the choice: with 8 groups of 8 and 3 kept, a token's 6 experts come
    from at most 3 groups, and the weights are the (unbiased) scores of the chosen experts."""
    torch.manual_seed(0)
    x = torch.randn(1, 32, 1280)
    for method in ("group_limited_greedy", "noaux_tc"):
        gate = MoEGate(DeepseekV2Config.from_scope(topk_method=method, n_group=8, topk_group=3)).eval()
        if method == "noaux_tc":
            gate.e_score_correction_bias.data = torch.randn(E) * 0.05
        idx, weight, aux = gate(x)
        assert aux is None
        assert max(len(set((row // 8).tolist())) for row in idx) <= 3
        scores = torch.softmax(x.view(32, -1) @ gate.weight.T, dim=-1)
        torch.testing.assert_close(weight, scores.gather(1, idx))


def test_training_mode_forms_the_sequence_loss():
    """Hand form of the sequence-level loss: E·(share of slots per expert) times the mean score, summed."""
    torch.manual_seed(1)
    gate = MoEGate(DeepseekV2Config.from_scope()).train()
    x = torch.randn(2, 5, 1280)
    idx, _, aux = gate(x)
    scores = torch.softmax(x.view(10, -1) @ gate.weight.T, dim=-1).view(2, 5, E)
    expected = 0.0
    for b in range(2):
        counts = torch.bincount(idx.view(2, -1)[b], minlength=E).float()
        expected += (counts / (5 * k) * E * scores[b].mean(0)).sum() / 2
    torch.testing.assert_close(aux, expected * 0.001)


def _tiny_with_variants(tmp_path, tensor_only: str, operation_only: str | None):
    shutil.copytree(TINY, tmp_path, dirs_exist_ok=True)
    spec = tmp_path / "specs" / "tiny" / "DeepseekV2MLP.yaml"
    text = spec.read_text(encoding="utf-8")
    text = text.replace("  tensor_flops: 2*B*S*h*d_ff\n", "")  # not the same in every variant below
    text = text.replace("tensors:\n", "variants:\n  a: first\n  b: second\n  c: third\ntensors:\n", 1)
    text = text.replace("  - {name: up, role: intermediate, shape: [B, S, d_ff]}",
                        f"  - {{name: up, role: intermediate, shape: [B, S, d_ff], only: {tensor_only}}}")
    op_only = f", only: {operation_only}" if operation_only else ""
    text = text.replace("writes: [up], explain: A matrix product.}", f"writes: [up]{op_only}, explain: A matrix product.}}")
    spec.write_text(text, encoding="utf-8")
    return tmp_path


def test_only_may_name_several_variants(tmp_path, capsys):
    root = _tiny_with_variants(tmp_path, "[a, b]", "[b, a]")
    assert main(["build", "--root", str(root), "--site", str(root / "site")]) == 0
    capsys.readouterr()
    _, ev = load(Paths(root=root))
    product = {v: ev.quantities("DeepseekV2MLP", v).tensor_flops for v in "abc"}
    B, S, h, d_ff = (CATALOG.symbols[name] for name in ("B", "S", "h", "d_ff"))
    assert product["a"] == product["b"] == product["c"] + 2 * B * S * h * d_ff  # the product runs in a and b only


def test_an_unknown_variant_in_an_only_list_is_named(tmp_path, capsys):
    root = _tiny_with_variants(tmp_path, "[a, z]", "a")
    assert main(["build", "--root", str(root), "--site", str(root / "site")]) == 1
    err = capsys.readouterr().err
    assert "DeepseekV2MLP.yaml:" in err and "tensors.2.only: 'z' is not one of this op's variants (a, b, c)" in err


def test_an_operation_must_run_only_where_its_tensors_exist(tmp_path, capsys):
    root = _tiny_with_variants(tmp_path, "[a, b]", "[a, c]")
    assert main(["build", "--root", str(root), "--site", str(root / "site")]) == 1
    err = capsys.readouterr().err
    assert "tensor 'up' exists only in variants 'a', 'b', but this operation runs in variants 'a', 'c'" in err
