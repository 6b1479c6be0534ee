"""What makes `opdoc check` faster changes no result: forked workers (`--jobs N`) give the serial report
and still fail on a wrong formula; a module built on fake tensors skips its parameter fills but keeps
every shape; `measure_totals` (no module hooks) gives `measure`'s numbers."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from opdoc.check.harness import Context
from opdoc.check.runner import Task, format_table, run, work_units
from opdoc.check.workers import can_fork, run_forked

from test_mutations import assert_bites, mutated

ROOT = Path(__file__).resolve().parents[2]
needs_fork = pytest.mark.skipif(not can_fork(), reason="no fork start method on this system")


def table_without_timing(report) -> str:
    return "\n".join(line for line in format_table(report).splitlines() if not line.startswith("summary:"))


@needs_fork
def test_two_processes_give_the_serial_report():
    """Full-size points reusing one module, real-tensor points (MoEGate's real routing, repeat_kv) and
    an independent comparison (segment-anything's PatchEmbed): the same rows in the same order."""
    ops = ["MoEGate", "repeat_kv", "PatchEmbed"]
    serial = run(ROOT, ops, progress=False, jobs=1)
    forked = run(ROOT, ops, progress=False, jobs=2)
    assert serial.jobs == 1 and forked.jobs == 2
    assert serial.ok, format_table(serial)
    assert any(r.device == "cpu" for r in serial.rows) and any(r.device == "fake" for r in serial.rows)
    assert [asdict(r) for r in forked.rows] == [asdict(r) for r in serial.rows]
    assert forked.problems == serial.problems
    assert table_without_timing(forked) == table_without_timing(serial)
    assert [t.title for t in forked.timings] == [t.title for t in serial.timings]


@needs_fork
def test_a_wrong_formula_fails_in_worker_processes(tmp_path):
    """The S·(P+S) attention products replaced by S·P (as in test_mutations), checked in two processes:
    LlamaAttention's two variants are two units of work, so both workers run."""
    folder = mutated(tmp_path, "LlamaAttention", [
        ("{name: scores, unit: tensor, flops: 2*B*H*S*(P + S)*d_h", "{name: scores, unit: tensor, flops: 2*B*H*S*P*d_h"),
        ("{name: context, unit: tensor, flops: 2*B*H*S*(P + S)*d_h", "{name: context, unit: tensor, flops: 2*B*H*S*P*d_h"),
    ])
    report = run(ROOT, ["LlamaAttention"], quick=True, independent=False, specs=folder, progress=False, jobs=2)
    assert report.jobs == 2
    assert_bites(report, "LlamaAttention", {"tensor_flops"})
    assert {r.variant for r in report.failed} == {"per_layer", "shared_tables"}


def test_units_keep_one_module_per_op_variant_and_kernel_together():
    """Consecutive tasks of one (op, variant, kernel) share a unit (their module is reused); the
    independent comparisons make one unit; indices cover every item once, in order."""
    from opdoc.check.runner import Point

    point = Point("prefill")
    items = [Task("A", None, "eager", point), Task("A", None, "eager", point), Task("A", None, "fused", point),
             Task("B", "x", "fused", point), Task("B", "y", "fused", point)]

    class Comparison:
        op, variant, kernel = "A", None, "eager"

    items += [Comparison(), Comparison()]
    assert work_units(items) == [[0, 1], [2], [3], [4], [5, 6]]


@needs_fork
def test_forked_results_come_back_by_index_and_errors_keep_their_cause():
    seen: dict[int, tuple[int, int]] = {}
    run_forked(lambda i: (i * i, os.getpid()), [3, 0, 2, 1], 2, lambda i, result: seen.__setitem__(i, result))
    assert {i: square for i, (square, _) in seen.items()} == {0: 0, 1: 1, 2: 4, 3: 9}  # 3 * 3 = 9
    assert os.getpid() not in {pid for _, pid in seen.values()}

    def fails(i: int) -> int:
        if i == 1:
            raise ValueError("unit 1 broke")
        return i

    with pytest.raises(ValueError, match="unit 1 broke"):
        run_forked(fails, [0, 1, 2], 2, lambda i, result: None)


class _Census(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


def test_fake_construction_skips_fills_and_keeps_every_shape():
    """nn.Linear and nn.LayerNorm built on fake tensors: no uniform_/fill_ reaches the fake mode, and each
    parameter has the shape, dtype and strides of the same module built on real tensors."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    def factory() -> nn.Module:
        return nn.Sequential(nn.Linear(12, 5), nn.LayerNorm(5))

    real = Context("Toy", {}, "fused", "cpu", torch.bfloat16).module(factory)
    fake_ctx = Context("Toy", {}, "fused", "fake", torch.bfloat16, mode=FakeTensorMode())
    census = _Census()
    with census:  # entered first, so it sees only what the construction lets through
        fake = fake_ctx.module(factory)
    assert not {"aten.uniform_", "aten.fill_", "aten.zero_"} & set(census.ops)
    real_params = {name: (p.shape, p.dtype, p.stride()) for name, p in real.named_parameters()}
    fake_params = {name: (p.shape, p.dtype, p.stride()) for name, p in fake.named_parameters()}
    assert fake_params == real_params and len(real_params) == 4
    # real construction keeps its initialisation: LayerNorm's weight is ones, its bias zeros
    assert real[1].weight.float().sum().item() == 5 and real[1].bias.float().abs().sum().item() == 0


def test_measure_totals_gives_measure_numbers_without_the_module_breakdown():
    """A two-layer MLP on fake tensors at full width: 2 GEMMs of 2 * 8 * 64 * 256 = 262144 FLOPs each."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from opdoc.check import measure, measure_totals

    with FakeTensorMode():
        model = nn.Sequential(nn.Linear(64, 256, bias=False), nn.GELU(), nn.Linear(256, 64, bias=False))
        x = torch.empty(8, 64)
        full, totals = measure(model, x), measure_totals(model, x)
    assert totals.tensor_flops == full.tensor_flops == 2 * 262144
    for name in ("cuda_flops", "io_read_bytes", "io_write_bytes", "activation_total_bytes", "activation_peak_bytes"):
        assert getattr(totals, name) == getattr(full, name), name
    assert {op: s.calls for op, s in totals.per_op.items()} == {op: s.calls for op, s in full.per_op.items()}
    assert "Sequential.0" in full.per_module and totals.per_module == {}
