"""The rule registry: one table, no duplicates, the convention exported, 2 FLOPs per multiply-add."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from opdoc.check import CONVENTION, RULES, Flops, Kind, OpCounter, RuleRegistry, convention_table

aten = torch.ops.aten


def test_a_second_rule_for_an_op_is_refused():
    registry = RuleRegistry()
    registry.free(aten.view, text="a view")
    with pytest.raises(RuntimeError, match="duplicate rule for aten.view"):
        registry.move(aten.view, text="a copy")
    with pytest.raises(RuntimeError, match="duplicate rule for aten.mm"):
        RULES.tensor_core(aten.mm, text="again")(lambda *a: Flops())


def test_rules_are_keyed_by_op_packet():
    registry = RuleRegistry()
    with pytest.raises(TypeError, match="not the overload"):
        registry.free(aten.view.default, text="an overload")
    with pytest.raises(TypeError, match="op packet"):
        registry.free("aten.view", text="a string")


def test_the_convention_is_stated_once_and_exported():
    assert "2 FLOPs" in CONVENTION and "unknown" in CONVENTION
    rows = convention_table()
    listed = [op for _, ops, _ in rows for op in ops]
    assert len(listed) == len(set(listed)) == len(RULES)
    kinds = {kind for kind, _, _ in rows}
    assert kinds == {k.value for k in Kind}
    by_op = {op: (kind, text) for kind, ops, text in rows for op in ops}
    assert by_op["aten.add"][0] == "cuda-core"
    assert by_op["aten._to_copy"][0] == "move"  # a cast: 0 FLOPs, bytes counted
    assert by_op["aten.view"][0] == "free"
    assert by_op["aten._scaled_dot_product_flash_attention_for_cpu"][0] == "tensor-core"


def test_torch_forward_formulas_are_all_covered():
    """Every forward op torch's FlopCounterMode counts has a tensor-core rule here."""
    from torch.utils.flop_counter import flop_registry

    forward = [op for op in flop_registry
               if isinstance(op, torch._ops.OpOverloadPacket) and "backward" not in op.__name__]
    not_reached = {aten.cudnn_convolution, aten._slow_conv2d_forward}  # below aten.convolution
    missing = [op for op in forward if op not in RULES and op not in not_reached]
    assert not missing
    assert all(RULES.get(op).kind is Kind.TENSOR_CORE for op in forward if op in RULES)


def test_a_gemm_counted_at_one_flop_per_multiply_add_would_disagree_with_torch():
    """Mutation: swap mm's rule for M·N·K; torch's counter and ours then differ by 2×."""
    mutant = RULES.without(aten.mm)
    mutant.tensor_core(aten.mm, text="1 per multiply-add (wrong)")(
        lambda func, args, kwargs, out: Flops(tensor=args[0].shape[0] * args[0].shape[1] * args[1].shape[1]))

    linear, x = torch.nn.Linear(64, 32, bias=False), torch.randn(16, 64)
    with FlopCounterMode(display=False) as fcm:
        linear(x)
    with OpCounter() as ours:
        linear(x)
    with OpCounter(mutant) as wrong:
        linear(x)
    assert ours.tensor_flops == fcm.get_total_flops() == 2 * 16 * 64 * 32  # 65536
    assert wrong.tensor_flops == 16 * 64 * 32 != fcm.get_total_flops()  # 32768
