"""Check stage, counting: run a function and apply the rules of ``rules.py`` to every aten op it executes.

``OpCounter`` is a context manager around a ``TorchDispatchMode``. For each aten op it adds up

* tensor-core and CUDA-core FLOPs, by the op's rule;
* I/O bytes: every tensor input read once, every tensor output written once, per op. This is
  the unfused upper bound (each op goes to memory and back). ``free`` ops (views, metadata,
  allocations without writes) move no bytes; a stride-0 (expanded) dimension is read once;
  gathers read their indices and the rows they gather (see each rule's ``reads``);
* a breakdown by op and by the innermost ``nn.Module`` running, named by its path
  (``Root.blocks.0.attn``);
* ops without a rule, as *unknown* with a call count. They are run, never counted as 0, and
  ``OpCounter.ok`` is False while any was seen.

An op without a rule that torch can decompose (it has a CompositeImplicitAutograd kernel) is
decomposed, as ``FlopCounterMode`` does, and its parts are counted; it is listed under
``decomposed``.

Real CPU tensors, meta tensors and ``FakeTensorMode`` all work. ``FakeTensorMode`` is an infra
mode that torch keeps below every user mode whatever the order of the ``with`` statements, so
the counter sees the same ops whether the fake mode was entered outside or inside it, and
exactly the ops a real CPU run sees. Meta tensors differ in one place: scaled-dot-product
attention has no fused meta kernel and runs its math path (bmm, softmax, bmm). The tensor-core
count is the same; the CUDA-core count and peak memory are those of the math path.
"""

from __future__ import annotations

import weakref
from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.utils._python_dispatch import TorchDispatchMode

from opdoc.check.rules import (
    METADATA_OPS, RULES, Kind, Rule, RuleRegistry, tensors_in, footprint_bytes, op_name,
)

GLOBAL = "Global"  # the module path of ops run outside any nn.Module


@dataclass
class OpStats:
    """What one op (or one module's share of it) cost, summed over its calls."""

    calls: int = 0
    tensor_flops: Any = 0
    cuda_flops: Any = 0
    read_bytes: Any = 0
    write_bytes: Any = 0

    def add(self, other: OpStats) -> None:
        self.calls += other.calls
        self.tensor_flops += other.tensor_flops
        self.cuda_flops += other.cuda_flops
        self.read_bytes += other.read_bytes
        self.write_bytes += other.write_bytes


class ModuleStack:
    """Names the innermost ``nn.Module`` whose forward is running, via global forward hooks.

    A root module (one called outside any other) is named by its class; its descendants by the
    path ``named_modules`` gives them (``Root.blocks.0``). A module called from a parent that
    does not own it is named ``<parent>.<Class>``.
    """

    def __init__(self) -> None:
        self._names: weakref.WeakKeyDictionary[torch.nn.Module, str] = weakref.WeakKeyDictionary()
        self._stack: list[tuple[torch.nn.Module, str]] = []
        self._handles: list[Any] = []

    @property
    def current(self) -> str:
        return self._stack[-1][1] if self._stack else GLOBAL

    def _name(self, module: torch.nn.Module) -> str:
        name = self._names.get(module)
        if name is None:
            parent = self._stack[-1][1] if self._stack else None
            name = f"{parent}.{type(module).__name__}" if parent else type(module).__name__
            for sub_path, sub in module.named_modules():
                if sub_path and sub not in self._names:
                    self._names[sub] = f"{name}.{sub_path}"
            self._names[module] = name
        return name

    def _pre(self, module: torch.nn.Module, args: Any) -> None:
        self._stack.append((module, self._name(module)))

    def _post(self, module: torch.nn.Module, args: Any, output: Any) -> None:
        # Pop down to this module: a forward that raised skipped its children's post hooks.
        for depth in range(len(self._stack) - 1, -1, -1):
            if self._stack[depth][0] is module:
                del self._stack[depth:]
                return

    def __enter__(self) -> ModuleStack:
        self._handles = [register_module_forward_pre_hook(self._pre),
                         register_module_forward_hook(self._post, always_call=True)]
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._stack.clear()


class _CountingMode(TorchDispatchMode):
    def __init__(self, counter: OpCounter) -> None:
        super().__init__()
        self.counter = counter

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return self.counter.dispatch(func, args, kwargs or {})


class OpCounter:
    """Counts FLOPs and I/O bytes of every aten op run inside ``with OpCounter() as counter:``."""

    def __init__(self, registry: RuleRegistry = RULES, *, decompose_unknown: bool = True,
                 by_module: bool = True) -> None:
        self.registry = registry
        self.decompose_unknown = decompose_unknown
        # by_module=False: totals and per_op only; no global module hooks (every module call is faster),
        # and per_module stays empty.
        self.by_module = by_module
        self.modules = ModuleStack()
        self.reset()

    def reset(self) -> None:
        self.tensor_flops: Any = 0
        self.cuda_flops: Any = 0
        self.io_read_bytes: Any = 0
        self.io_write_bytes: Any = 0
        self.per_op: dict[str, OpStats] = {}
        self.per_module: dict[str, dict[str, OpStats]] = {}
        self.unknown: Counter[str] = Counter()
        self.decomposed: Counter[str] = Counter()

    @property
    def ok(self) -> bool:
        """True when every op executed had a rule."""
        return not self.unknown

    def dispatch(self, func: Any, args: tuple, kwargs: dict) -> Any:
        """Run one aten op and count it (the counting mode's work, also called by ``measure``'s mode)."""
        rule = self.registry.get(func)
        if rule is None:
            if self.decompose_unknown:
                with _CountingMode(self):  # the parts are counted (and seen by this counter only)
                    result = func.decompose(*args, **kwargs)
                if result is not NotImplemented:
                    self.decomposed[op_name(func)] += 1
                    return result
            out = func(*args, **kwargs)
            self.unknown[op_name(func)] += 1
            return out
        out = func(*args, **kwargs)
        if func.overloadpacket not in METADATA_OPS:
            self.record(rule, func, args, kwargs, out)
        return out

    def record(self, rule: Rule, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
        flops = rule.count(func, args, kwargs, out)
        if rule.kind is Kind.FREE:
            read = written = 0
        else:
            if rule.reads is not None:
                read = rule.reads(args, kwargs, out)
            else:
                read = sum(footprint_bytes(t) for t in tensors_in((args, kwargs)))
            written = sum(footprint_bytes(t) for t in tensors_in(out))
        stats = OpStats(1, flops.tensor, flops.cuda, read, written)

        self.tensor_flops += stats.tensor_flops
        self.cuda_flops += stats.cuda_flops
        self.io_read_bytes += read
        self.io_write_bytes += written
        name = op_name(func)
        self.per_op.setdefault(name, OpStats()).add(stats)
        if self.by_module:
            self.per_module.setdefault(self.modules.current, {}).setdefault(name, OpStats()).add(stats)

    def module_totals(self) -> dict[str, OpStats]:
        """Each module path's cost including its descendants (``Root`` holds ``Root.blocks.0``)."""
        return module_totals(self.per_module)

    def start(self) -> None:
        """Begin counting without a dispatch mode of its own (``measure`` dispatches to ``dispatch``)."""
        self.reset()
        if self.by_module:
            self.modules.__enter__()

    def stop(self, *exc: Any) -> None:
        if self.by_module:
            self.modules.__exit__(*exc)

    def __enter__(self) -> OpCounter:
        self.start()
        self._mode = _CountingMode(self)
        self._mode.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self._mode.__exit__(*exc)
        finally:
            self._mode = None
            self.stop(*exc)


def module_totals(per_module: dict[str, dict[str, OpStats]]) -> dict[str, OpStats]:
    """Roll innermost-module stats up to every enclosing path."""
    totals: dict[str, OpStats] = {}
    for path, ops in per_module.items():
        parts = path.split(".")
        for depth in range(1, len(parts) + 1):
            total = totals.setdefault(".".join(parts[:depth]), OpStats())
            for stats in ops.values():
                total.add(stats)
    return totals
