"""Check stage, harness: build each op's reference module at its scope's configuration, with inputs
that match the spec's input tensors at one binding of the symbols.

One builder per op is registered with ``@harness("Op")`` by the model's package (its ``harness``
module, e.g. ``opdoc.models.deepseek_ocr.harness``, imported by ``load_model_harness``); a second
builder for the same op is refused, and an op with a spec but no builder is reported by the runner.
``build(op, binding, kernel, device, dtype)`` returns a ``Case``: the module, a ``call`` that runs
one forward on the prepared inputs, and how to read the KV cache from what the forward returned.

Devices:

``fake``
    ``FakeTensorMode`` (no ShapeEnv): full size, nothing allocated, and ``scaled_dot_product_attention``
    reaches the fused CPU flash kernel, as on real tensors. The MoE sees no routing data and spreads
    token slots evenly over the experts (``tokens_per_expert``); totals are exact because an
    expert's cost is linear in its token count.
``meta``
    The meta device: full size, nothing allocated; SDPA runs its math path.
``cpu`` / ``cuda``
    Real tensors with seeded random weights and inputs: the router really routes, so experts get
    uneven token counts.

Kernels: for an op whose attention goes through ``config._attn_implementation`` (LlamaAttention and
the modules above it), ``eager`` selects the materialised-scores path and ``fused`` selects SDPA.
For a module that always calls ``F.scaled_dot_product_attention`` (CLIP's NoTPAttention), ``fused``
is the default dispatch (the flash kernel) and ``eager`` forces SDPA's math backend
(``sdpa_kernel(SDPBackend.MATH)``), the path meta tensors and unsupported inputs take.

Modules and activations are in the model dtype (bf16): modules are constructed with it as the
default dtype, as ``from_pretrained(torch_dtype=...)`` does, so buffers that the code creates as
fp32 on purpose (the rotary ``inv_freq``) stay fp32.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch._subclasses.fake_tensor import FakeTensor
from torch.utils._python_dispatch import TorchDispatchMode

from opdoc.registry import FLOAT_DTYPES
from opdoc.registry import KERNELS as _KERNELS

DEVICES = ("fake", "meta", "cpu", "cuda")
KERNELS = tuple(_KERNELS)
DTYPES = {name: getattr(torch, name) for name in FLOAT_DTYPES}


class HarnessError(RuntimeError):
    """An op cannot be built: no harness registered, or a binding that disagrees with the config."""


@dataclass
class Case:
    """One ready-to-run forward of an op's reference module."""

    module: nn.Module
    run: Callable[[], Any]  # the forward on the prepared inputs (mode and kernel already chosen)
    kv_cache: Callable[[Any], list[Tensor]] = lambda output: []  # cache tensors held after the forward
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    notes: Callable[[], list[str]] = lambda: []  # read after the forward (e.g. how the router routed)
    # Symbol values only the forward reveals (E_run under real routing), bound before comparing.
    observed: Callable[[], dict[str, Any]] = lambda: {}
    place: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext

    def call(self) -> Any:
        with self.place(), self.context():
            return self.run()

    def __iter__(self) -> Iterator[Any]:  # `module, call = build(...)`
        return iter((self.module, self.call))


Builder = Callable[["Context"], Case]


class HarnessRegistry:
    """op name -> builder; registering an op twice is an error."""

    def __init__(self) -> None:
        self._builders: dict[str, Builder] = {}
        self._declared: set[str] = set()  # built from a spec's `harness` block (replaced on each load)
        self.attention: set[str] = set()

    def __call__(self, op: str, *, attention: bool = False) -> Callable[[Builder], Builder]:
        def register(fn: Builder) -> Builder:
            if op in self._builders:
                raise HarnessError(f"duplicate harness for {op}: already {self._builders[op].__qualname__}")
            self._builders[op] = fn
            if attention:
                self.attention.add(op)
            return fn
        return register

    def declare(self, op: str, builder: Builder) -> None:
        """A builder made from a spec's `harness` block; an op with a registered builder may not declare one."""
        if op in self._builders and op not in self._declared:
            raise HarnessError(f"{op}: both a registered builder ({self._builders[op].__qualname__}) and a "
                               "`harness` block in its spec; keep one")
        self._builders[op] = builder
        self._declared.add(op)

    def __contains__(self, op: object) -> bool:
        return op in self._builders

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._builders))

    def get(self, op: str) -> Builder:
        if op not in self._builders:
            raise HarnessError(f"no harness for {op}: register a builder with @harness({op!r}) in the "
                               "model package's harness module")
        return self._builders[op]


harness = HarnessRegistry()


@dataclass
class Context:
    """What a builder needs: the symbol values, the kernel, where tensors live, and module/tensor factories."""

    op: str
    values: dict[str, int]  # every symbol of the scope at this point
    kernel: str
    device: str
    dtype: torch.dtype
    variant: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # overrides of the scope's config (small real checks)
    scope_config: dict[str, Any] | None = None  # the scope's configuration as loaded from the specs
    mode: Any = None  # the FakeTensorMode when device == "fake"
    seed: int = 0
    modules: dict | None = None  # reuse modules between points (same op, variant, kernel, device, config)
    # Every scope's configuration by scope name, for an op made of parts configured elsewhere (a whole
    # model holds encoders whose values live in their own scopes).
    scope_configs: dict[str, dict[str, Any]] | None = None

    def __getitem__(self, symbol: str) -> int:
        try:
            return int(self.values[symbol])
        except KeyError:
            raise HarnessError(f"{self.op}: symbol {symbol} is not bound at this point") from None

    # -- where tensors live -------------------------------------------------------------------
    def place(self) -> contextlib.AbstractContextManager:
        """Enter to create tensors where this case lives (fake mode, or a torch device)."""
        if self.device == "fake":
            return self.mode
        return torch.device(self.device)

    @property
    def real(self) -> bool:
        return self.device in ("cpu", "cuda")

    def tensor(self, *shape: int, dtype: torch.dtype | None = None) -> Tensor:
        dtype = dtype or self.dtype
        with self.place():
            if self.real:
                return torch.randn(*shape, dtype=torch.float32, generator=self._generator()).to(dtype)
            return torch.empty(*shape, dtype=dtype)

    def ids(self, *shape: int, high: int) -> Tensor:
        with self.place():
            if self.real:
                return torch.randint(0, high, shape, generator=self._generator())
            return torch.zeros(*shape, dtype=torch.long)

    def _generator(self) -> torch.Generator:
        if not hasattr(self, "_gen"):
            self._gen = torch.Generator(device=self.device).manual_seed(self.seed + 1)
        return self._gen

    def module(self, factory: Callable[[], nn.Module], *, built_for: tuple = ()) -> nn.Module:
        """Construct with the model dtype as default dtype, where the tensors live, in eval mode.

        With ``modules`` given, a module built earlier for the same op, variant, kernel, device,
        dtype and configuration is reused (its FakeTensorMode must be this context's ``mode``).
        ``built_for``: values the construction depends on beyond the configuration (e.g. the grid
        SAM's position tables are sized for), so that points differing in them get their own module.
        """
        key = (self.op, self.variant, self.kernel, self.device, self.dtype, id(self.mode),
               tuple(sorted(self.config.items())), built_for)
        if self.modules is not None and key in self.modules:
            return self.modules[key]
        module = self._construct(factory)
        if self.modules is not None:
            self.modules[key] = module
        return module

    def _construct(self, factory: Callable[[], nn.Module]) -> nn.Module:
        previous = torch.get_default_dtype()
        if self.real:
            torch.manual_seed(self.seed)
        with self.place(), (contextlib.nullcontext() if self.real else _NoValues()):
            torch.set_default_dtype(self.dtype)
            try:
                module = factory()
            finally:
                torch.set_default_dtype(previous)
        return module.eval()

    def check(self, **expected: int) -> None:
        """The module's configuration must give the symbol values the formulas use."""
        wrong = {s: (self[s], v) for s, v in expected.items() if self[s] != v}
        if wrong:
            listed = ", ".join(f"{s}: formula {a}, module {b}" for s, (a, b) in wrong.items())
            raise HarnessError(f"{self.op}: the binding disagrees with the module's configuration ({listed})")

    def sdpa_context(self) -> Callable[[], contextlib.AbstractContextManager]:
        """The attention backend of a module that always calls SDPA: math path for "eager"."""
        if self.kernel == "eager":
            from torch.nn.attention import SDPBackend, sdpa_kernel

            return lambda: sdpa_kernel(SDPBackend.MATH)
        return contextlib.nullcontext


class _NoValues(TorchDispatchMode):
    """Skips the random and constant fills that initialise parameters, while a module is built on fake or
    meta tensors: they would write values those tensors do not have, and leave every size, dtype and
    stride as it was (the fill returns the tensor it was given). A large model's thousands of
    ``uniform_`` calls are a good part of its construction time. A real tensor made on the way keeps its fills."""

    FILLS = frozenset({torch.ops.aten.uniform_, torch.ops.aten.normal_, torch.ops.aten.zero_, torch.ops.aten.fill_,
                       torch.ops.aten.bernoulli_, torch.ops.aten.exponential_, torch.ops.aten.random_,
                       torch.ops.aten.log_normal_, torch.ops.aten.cauchy_, torch.ops.aten.geometric_})

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in self.FILLS and (args[0].is_meta or isinstance(args[0], FakeTensor)):
            return args[0]
        return func(*args, **(kwargs or {}))


def build(op: str, binding: dict[Any, Any], kernel: str = "fused", device: str = "fake",
          dtype: torch.dtype | str = torch.bfloat16, *, variant: str | None = None,
          config: dict[str, Any] | None = None, mode: Any = None, seed: int = 0,
          modules: dict | None = None, scope_config: dict[str, Any] | None = None,
          scope_configs: dict[str, dict[str, Any]] | None = None,
          builder: Builder | None = None) -> Case:
    """The reference module of ``op`` and a forward on inputs shaped by ``binding``.

    ``binding`` maps symbols (sympy symbols or their names) to numbers, e.g. ``Evaluator.binding``.
    ``mode``: a FakeTensorMode to build in (a fresh one when None and device is "fake").
    ``modules``: a dict in which to keep and reuse modules between calls (with the same ``mode``).
    ``builder``: builds the Case instead of the op's registered harness (the upstream check's vendor classes).
    """
    if kernel not in KERNELS:
        raise HarnessError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if device not in DEVICES:
        raise HarnessError(f"device must be one of {DEVICES}, got {device!r}")
    if isinstance(dtype, str):
        dtype = DTYPES[dtype]
    values = {str(getattr(s, "name", s)): int(v) for s, v in binding.items()}
    if device == "fake" and mode is None:
        from torch._subclasses.fake_tensor import FakeTensorMode

        mode = FakeTensorMode()
    ctx = Context(op, values, kernel, device, dtype, variant, dict(config or {}), scope_config, mode, seed, modules,
                  scope_configs)
    case = (builder or harness.get(op))(ctx)
    case.place = ctx.place
    return case


def load_model_harness(catalog) -> None:
    """Import the model package's ``harness`` module, which registers its builders (once per process).

    A package that ships beside the specs (``package_path`` in model.yaml) is put on ``sys.path``
    first; implementations resolve inside the packages a model declares.
    """
    import importlib
    import importlib.util

    from opdoc.pipeline import model_package_path

    model_package_path(catalog)
    name = f"{catalog.model.package}.harness"
    if importlib.util.find_spec(name) is not None:
        importlib.import_module(name)
    for op in catalog.specs:
        builder = declared_builder(catalog, op)
        if builder is not None:
            harness.declare(op, builder)


def declared_builder(catalog, op: str) -> Builder | None:
    """A builder from the spec's `harness` block (constructor arguments and input tensors), or None.

    The class is the op's implementation in the model's package; arguments are formulas in the
    symbols and configuration keys, evaluated at the point's binding.
    """
    import importlib

    from opdoc.formula import parse_formula
    from opdoc.source import implementation_path

    item = catalog.specs[op]
    declared = item.spec.harness
    if declared is None:
        return None
    module_name, _, class_name = implementation_path(item, catalog).rpartition(".")
    inputs = [(index, tensor) for index, tensor in enumerate(item.spec.tensors) if tensor.role == "input"]

    def builder(ctx: Context) -> Case:
        cls = getattr(importlib.import_module(module_name), class_name)
        config = {**(ctx.scope_config or {}), **ctx.config}
        names = {key: value for key, value in config.items() if isinstance(value, int | float)
                 and not isinstance(value, bool)}
        names.update(ctx.values)

        def argument(value):
            if isinstance(value, str) and value in config:
                return config[value]
            if isinstance(value, str):
                return int(parse_formula(value, {k: parse_formula(v, {}) for k, v in names.items()}))
            return value

        arguments = {**declared.arguments, **declared.variants.get(ctx.variant or "", {})}
        kwargs = {name: argument(value) for name, value in arguments.items()}
        module = ctx.module(lambda: cls(**kwargs), built_for=tuple(sorted(kwargs.items())))
        values = {symbol: value for symbol, value in ctx.values.items()}
        tensors = []
        for index, tensor in inputs:
            shape = [int(item.exprs[f"tensors.{index}.shape.{axis}"].xreplace(
                {catalog.symbols[name]: value for name, value in values.items() if name in catalog.symbols}))
                for axis in range(len(tensor.shape))]
            dtype = None if tensor.dtype == "model" else getattr(torch, tensor.dtype)
            tensors.append(ctx.tensor(*shape, dtype=dtype))
        return Case(module, lambda: module(*tensors))
    return builder
