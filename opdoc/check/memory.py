"""Check stage, memory: bytes of activations a forward creates, in total and at its peak.

``ActivationTracker`` watches every aten op through a ``TorchDispatchMode`` and follows the
*storages* the ops create:

* a storage that an op returns and that no op input already used is new: its bytes count
  towards ``total_bytes`` (everything the forward produced: intermediates and outputs) and it
  stays *live* until it is freed;
* a storage is freed when the last tensor referring to it goes away; a ``weakref.finalize`` on
  the storage object sees that (torch keeps one Python object per storage while the storage
  lives, so the finalizer runs exactly when the memory would be returned);
* ``peak_bytes`` is the most bytes live at once; storages that existed before the forward
  (parameters, buffers, inputs, constants captured by the function) are never counted, whether
  an op reads them or returns a view of them.

Only sizes are read, so it runs on meta tensors and under ``FakeTensorMode`` at full size
without allocating. What it does not see: a kernel's internal workspace, allocator rounding and
caching (``cuda_peak`` measures those on a GPU), ``resize_``/``set_`` on a storage.

It also records which attention ran, since the peak depends on it: a fused kernel never holds
the S_q×S_k scores, the math path does (``attention_kernels``).

Why not ``torch.distributed._tools.mem_tracker.MemTracker``: it does run on meta and fake
tensors at full size, but (1) it tracks nothing when ``FakeTensorMode`` is entered inside it
(it only records ops whose active fake mode is the one present at its entry), so its result
depends on the nesting order; (2) any storage it has not been told about, such as an input
or a tensor the function captures, becomes an "activation" the first time an op returns a view
of it, unless each one is registered with ``track_external``; (3) it reports current and peak
bytes but not the total produced; (4) it replaces ``torch.UntypedStorage.resize_`` globally
while active. The tests compare this tracker's peak with MemTracker's where both apply.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from opdoc.check.rules import FUSED_ATTENTION_OPS, tensors_in, op_name

aten = torch.ops.aten
_SOFTMAX_OPS = frozenset({aten._softmax, aten._safe_softmax, aten._log_softmax})


def _storage(t: torch.Tensor) -> torch.UntypedStorage | None:
    try:
        return t.untyped_storage()
    except (RuntimeError, NotImplementedError):  # sparse or other storage-less layouts
        return None


class _TrackingMode(TorchDispatchMode):
    def __init__(self, tracker: ActivationTracker) -> None:
        super().__init__()
        self.tracker = tracker

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        return self.tracker.dispatch(func, args, kwargs, lambda: func(*args, **kwargs))


class ActivationTracker:
    """``with ActivationTracker() as mem: fn()`` -> ``mem.total_bytes``, ``mem.peak_bytes``."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.total_bytes: Any = 0
        self.live_bytes: Any = 0
        self.peak_bytes: Any = 0
        self.attention_kernels: Counter[str] = Counter()
        # storage id (its C++ address, unique while it lives) -> bytes; finalizers drop entries.
        self._live: dict[int, Any] = {}
        self._external: set[int] = set()
        self._finalizers: list[weakref.finalize] = []

    def _watch(self, storage: torch.UntypedStorage, on_free: Callable[[int], None]) -> None:
        self._finalizers.append(weakref.finalize(storage, on_free, storage._cdata))

    def _free(self, key: int) -> None:
        self.live_bytes -= self._live.pop(key, 0)

    def _note_inputs(self, tensors: list[torch.Tensor]) -> None:
        # A storage an op reads before any op made it existed before the forward.
        for t in tensors:
            storage = _storage(t)
            if storage is None:
                continue
            key = storage._cdata
            if key not in self._live and key not in self._external:
                self._external.add(key)
                self._watch(storage, self._external.discard)

    def _note_outputs(self, func: Any, args: tuple, outputs: list[torch.Tensor]) -> None:
        for t in outputs:
            storage = _storage(t)
            if storage is None:
                continue
            key = storage._cdata
            if key in self._live or key in self._external:
                continue  # a view, an in-place result, or a pre-existing tensor returned
            size = storage.nbytes()
            self._live[key] = size
            self.total_bytes += size
            self.live_bytes += size
            self._watch(storage, self._free)
            # sym_max: with symbolic sizes the peak stays an expression instead of guarding.
            self.peak_bytes = torch.sym_max(self.peak_bytes, self.live_bytes)
        self._note_attention(func, args)

    def _note_attention(self, func: Any, args: tuple) -> None:
        packet = func.overloadpacket
        if packet in FUSED_ATTENTION_OPS:
            self.attention_kernels[op_name(func)] += 1
        elif packet in _SOFTMAX_OPS and args[0].dim() >= 3 and args[1] in (-1, args[0].dim() - 1):
            # A softmax over the last dim of a ≥3-D tensor: the S_q×S_k scores of a math path.
            shape = "×".join(str(s) for s in args[0].shape)
            self.attention_kernels[f"math: {op_name(func)} over {shape}"] += 1

    def dispatch(self, func: Any, args: tuple, kwargs: dict, run: Callable[[], Any]) -> Any:
        """Track one aten op, which ``run`` executes (the tracking mode's work, also ``measure``'s)."""
        self._note_inputs(tensors_in((args, kwargs)))
        out = run()
        self._note_outputs(func, args, tensors_in(out))
        return out

    def start(self) -> None:
        """Begin tracking without a dispatch mode of its own (``measure`` dispatches to ``dispatch``)."""
        self.reset()

    def __enter__(self) -> ActivationTracker:
        self.start()
        self._mode = _TrackingMode(self)
        self._mode.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._mode.__exit__(*exc)
        self._mode = None
        self.stop()

    def stop(self) -> None:
        # Outputs still alive keep their storages; stop their finalizers calling back into us.
        self.live_at_exit_bytes = self.live_bytes
        for finalizer in self._finalizers:
            finalizer.detach()
        self._finalizers.clear()


def cuda_peak(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Peak CUDA bytes allocated while ``fn`` runs, beyond what was allocated before it.

    Uses the caching allocator's statistics (``reset_peak_memory_stats``,
    ``max_memory_allocated``), so it includes kernel workspaces and allocator rounding that
    ``ActivationTracker`` cannot see. Needs a CUDA device.
    """
    if not torch.cuda.is_available():
        raise RuntimeError("cuda_peak needs a CUDA device; use ActivationTracker on meta or fake tensors")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    result = fn(*args, **kwargs)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - before
    del result
    return peak
