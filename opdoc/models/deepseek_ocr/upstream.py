"""DeepSeek-OCR's own classes for `opdoc check --upstream`: load a model checkout and build each documented op.

A user's checkout of the ``deepseek-ai/DeepSeek-OCR`` model repository holds the vendor code
(``modeling_deepseekocr.py``, ``modeling_deepseekv2.py``, ``deepencoder.py``, ...) written for
transformers 4.46.3, whose ``LlamaAttention`` and ``LlamaFlashAttention2`` run in every decoder
layer (``use_mla`` is false). This module imports that folder as a package, without writing to it or
copying from it, and builds the vendor class of each op at the configuration its spec documents:
the checkout's ``config.json`` for the language model, and the values the vendor code itself
hard-codes for the vision encoders (``build_sam_vit_b``, ``vit_model_cfg``).

Running vendor code on CPU with fake tensors meets obstacles; each is met at run time, never by
changing a vendor method (``VendorRun`` holds the patches of one forward):

* ``modeling_deepseekocr.py`` imports torchvision, which does not import beside the pinned CPU torch
  (the only torchvision 0.28.0 wheel, PyPI's, is built against CUDA torch: its import fails with
  "operator torchvision::nms does not exist"): a stand-in ``torchvision.transforms`` module is
  registered while the checkout is imported. It provides only names: ``InterpolationMode`` and any
  transform, which raises when called, so the vendor's ``BasicImageTransform`` (it builds ToTensor
  and Normalize) is reported as not comparable (``not_comparable``) while infer()'s other helpers
  (``dynamic_preprocess``, ``BaseTransform``, ``NoEOSTextStreamer``) run; with a real torchvision
  installed the transform is compared like every other op;
* the OCR forward moves tensors with ``.cuda()``: ``Tensor.cuda`` returns the tensor itself;
* ``flash_attention_2`` needs the ``flash_attn`` package, which has no CPU build. The model is built
  with the configuration marked as already checked (as ``from_pretrained`` leaves it), and the
  kernel ``flash_attn_func`` that transformers' ``_flash_attention_forward`` calls is ``FlashStandIn``:
  it records what the kernel receives (layouts, causality) and runs torch's fused CPU flash kernel,
  so all the code around the kernel is transformers' and the vendor's, the check that position ids
  ascend before a prefill included. That check reads a one-byte verdict on the host (``not tensor``),
  which a fake tensor cannot answer: while it runs, a 0-dim boolean's truth is read with ``tolist``
  (no aten op, as the spec counts it) and taken as true without data (the model's positions are an
  arange);
* the MoE inference path ``moe_infer`` copies the per-expert token counts to the host
  (``.cpu().numpy()``), which a fake tensor cannot do: while a vendor MoE runs on fake tensors,
  ``Tensor.numpy`` answers with forced counts, the same even split of the B·S·k slots the reference
  assumes (so E_run = min(E, B·S·k)); with real tensors the router really routes;
* the OCR forward reads the pixel sums of the global view and of the tiles on the host
  (``torch.sum(...).item() != 0``) to decide whether there is an image and whether it was cropped: on
  fake tensors ``Tensor.item`` answers those reads, and only those, with the verdicts the reference
  module takes without data (``PixelSums``); the sums themselves still run.

The whole model's builders (``_ocr``) also seed transformers' ``DynamicCache`` with zero-length entries
at prefill, as the reference harness seeds its cache, and drive a request's generation in the
reference's greedy loop rather than through the vendor's ``generate()`` (see ``_ocr``).
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import importlib
import importlib.machinery
import importlib.util
import io
import json
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from opdoc.check.harness import Case, Context, HarnessError, HarnessRegistry

TRANSFORMERS_VERSION = "4.46.3"
VENDOR_FILES = ("modeling_deepseekocr.py", "modeling_deepseekv2.py", "deepencoder.py",
                "configuration_deepseek_v2.py", "conversation.py", "config.json")
LLAMA_FILE = "transformers/models/llama/modeling_llama.py"


class UpstreamError(RuntimeError):
    """The checkout or its environment cannot be used (the message says what to do)."""


# ------------------------------------------------------------------------------ import


class _TorchvisionStandIn:
    """A name imported from torchvision.transforms: fine to import, an error to use."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise UpstreamError(f"torchvision.transforms.{self.name} is a stand-in in the upstream check "
                            "(image preprocessing is not profiled)")


class InterpolationMode(enum.Enum):
    """The members torchvision's InterpolationMode has; the vendor file only imports the name."""

    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def _torchvision_stand_in() -> dict[str, types.ModuleType]:
    root = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    transforms.__getattr__ = lambda name: _TorchvisionStandIn(name)  # type: ignore[method-assign]
    functional.InterpolationMode = InterpolationMode  # type: ignore[attr-defined]
    transforms.functional = functional  # type: ignore[attr-defined]
    root.transforms = transforms  # type: ignore[attr-defined]
    return {"torchvision": root, "torchvision.transforms": transforms,
            "torchvision.transforms.functional": functional}


def check_environment() -> None:
    import transformers

    if transformers.__version__ != TRANSFORMERS_VERSION:
        raise UpstreamError(f"the vendor code targets transformers {TRANSFORMERS_VERSION}, this environment has "
                            f"{transformers.__version__}; run `make check-upstream` (it sets up .venv-upstream)")


def transformers_root() -> Path:
    """The folder holding the installed ``transformers`` package (upstream paths are relative to it)."""
    import transformers

    return Path(transformers.__file__).resolve().parent.parent


@dataclass
class Vendor:
    """The imported checkout: its package, modules, configuration file, and transformers' Llama module."""

    path: Path
    package: str
    modules: dict[str, types.ModuleType]
    config_json: dict[str, Any]
    llama: types.ModuleType
    torchvision: str  # "installed" or "stand-in"

    def __getitem__(self, file_stem: str) -> types.ModuleType:
        return self.modules[file_stem]


def missing_files(path: Path) -> list[str]:
    return [name for name in VENDOR_FILES if not (path / name).is_file()]


def load_checkout(path: Path) -> Vendor:
    """Import the checkout folder as a package (its files use relative imports), writing nothing there."""
    path = path.resolve()
    if not path.is_dir():
        raise UpstreamError(f"{path}: no such folder; pass a checkout of deepseek-ai/DeepSeek-OCR")
    missing = missing_files(path)
    if missing:
        raise UpstreamError(f"{path}: not a DeepSeek-OCR checkout, missing {', '.join(missing)}")
    check_environment()
    package = "deepseek_ocr_checkout_" + hashlib.sha256(str(path).encode()).hexdigest()[:10]
    if package not in sys.modules:
        spec = importlib.machinery.ModuleSpec(package, None, is_package=True)
        spec.submodule_search_locations = [str(path)]
        module = importlib.util.module_from_spec(spec)
        sys.modules[package] = module
    torchvision = "installed" if importlib.util.find_spec("torchvision") is not None else "stand-in"
    stand_in = _torchvision_stand_in() if torchvision == "stand-in" else {}
    saved = {name: sys.modules.get(name) for name in stand_in}
    writes = sys.dont_write_bytecode
    sys.dont_write_bytecode = True  # no __pycache__ inside the user's checkout
    try:
        sys.modules.update(stand_in)
        modules = {stem: importlib.import_module(f"{package}.{stem}")
                   for stem in ("configuration_deepseek_v2", "modeling_deepseekv2", "deepencoder",
                                "modeling_deepseekocr")}
    finally:
        sys.dont_write_bytecode = writes
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
    config_json = json.loads((path / "config.json").read_text(encoding="utf-8"))
    llama = importlib.import_module("transformers.models.llama.modeling_llama")
    return Vendor(path, package, modules, config_json, llama, torchvision)


# ------------------------------------------------------------------------------ run-time patches


@dataclass
class FlashCall:
    """What transformers handed the flash kernel in one call."""

    query: tuple[int, ...]
    key: tuple[int, ...]
    value: tuple[int, ...]
    is_causal: bool

    def describe(self) -> str:
        return (f"flash kernel stand-in got q {self.query}, k {self.key}, v {self.value} (B, S, H, d), "
                f"no mask, causal={self.is_causal}")


class FlashStandIn:
    """Stands in for flash-attn's ``flash_attn_func``: records the call, then computes it with torch's
    fused CPU flash kernel (causal without a mask, as flash_attn applies causality itself).

    flash_attn aligns the causal diagonal bottom-right and torch's kernel top-left; they agree when
    the queries are all the keys (prefill from an empty cache) or one query (decode). For a chunk of
    S > 1 queries over P > 0 cached keys the stand-in's numbers differ from flash_attn's; the counted
    work does not (both compute the full S × (P+S) product).
    """

    def __init__(self) -> None:
        self.calls: list[FlashCall] = []

    def __call__(self, q: Tensor, k: Tensor, v: Tensor, dropout_p: float = 0.0, softmax_scale: float | None = None,
                 causal: bool = False, **kwargs: Any) -> Tensor:
        self.calls.append(FlashCall(tuple(q.shape), tuple(k.shape), tuple(v.shape), bool(causal)))
        # (B, S, H, d) -> (B, H, S, d): views; torch's CPU kernel writes its output (B, S, H, d)-major,
        # so transposing back is a view too, as flash_attn's own output is.
        out = torch.nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), dropout_p=dropout_p,
            is_causal=causal and q.shape[1] > 1, scale=softmax_scale)
        return out.transpose(1, 2)


def _verdict_truth(original: Callable[[Tensor], bool]) -> Callable[[Tensor], bool]:
    """``bool(tensor)`` for the flash path's order check: a 0-dim boolean is read with ``tolist`` (a
    host read without an aten op) or, on a fake tensor, taken as true; anything else as before."""
    from torch._subclasses.fake_tensor import FakeTensor

    def truth(tensor: Tensor) -> bool:
        if tensor.dim() == 0 and tensor.dtype == torch.bool:
            return True if isinstance(tensor, FakeTensor) or tensor.is_meta else bool(tensor.tolist())
        return original(tensor)
    return truth


class ForcedRouting:
    """While a vendor MoE runs on fake tensors, ``Tensor.numpy`` returns its forced token counts (on
    real tensors, a copy of the real ones).

    ``moe_infer`` reads the per-expert counts on the host to slice the sorted tokens; a fake tensor
    holds no counts. The forced counts split the N·k slots evenly (the first experts take the
    remainder), so E_run = min(E, N·k) experts run, the value the spec's examples bind.
    """

    def __init__(self, moe_type: type, top_k: int) -> None:
        self.moe_type, self.top_k = moe_type, top_k
        self.active: list[int] = []  # slots of the MoE forwards running now (innermost last)
        self.forced: list[list[int]] = []

    @staticmethod
    def even_split(slots: int, experts: int) -> list[int]:
        q, r = divmod(slots, experts)
        return [q + (1 if e < r else 0) for e in range(experts)]

    def numpy(self, original: Callable[..., Any]) -> Callable[..., Any]:
        import numpy as np

        from torch._subclasses.fake_tensor import FakeTensor

        def numpy(tensor: Tensor, *args: Any, **kwargs: Any) -> Any:
            if not isinstance(tensor, FakeTensor):
                # On a GPU, .cpu() copies the counts to the host and the device tensor is freed when
                # the vendor rebinds its name; on CPU tensors numpy() would share (and keep alive) the
                # storage instead, so hand back a copy, as the GPU run has.
                return original(tensor, *args, **kwargs).copy()
            if not self.active or tensor.dim() != 1:
                raise UpstreamError("a vendor op read a fake tensor's data outside the MoE token counts")
            counts = self.even_split(self.active[-1], tensor.shape[0])
            self.forced.append(counts)
            return np.asarray(counts, dtype=np.int64)
        return numpy

    def hooks(self, root: nn.Module) -> list[Any]:
        def enter(module: nn.Module, args: tuple) -> None:
            x = args[0]
            self.active.append(x.numel() // x.shape[-1] * self.top_k)

        def leave(module: nn.Module, args: tuple, out: Any) -> None:
            self.active.pop()

        handles = []
        for module in root.modules():
            if isinstance(module, self.moe_type):
                handles.append(module.register_forward_pre_hook(enter))
                handles.append(module.register_forward_hook(leave, always_call=True))
        return handles


@contextlib.contextmanager
def vendor_run(vendor: Vendor, root: nn.Module, flash: FlashStandIn, routing: ForcedRouting | None
               ) -> Iterator[None]:
    """The run-time patches of one vendor forward (see the module docstring)."""
    flash_utils = importlib.import_module("transformers.modeling_flash_attention_utils")
    saved_numpy, saved_cuda, saved_bool = Tensor.numpy, Tensor.cuda, Tensor.__bool__
    missing = object()
    saved_kernel = {name: getattr(flash_utils, name, missing) for name in ("flash_attn_func", "_flash_supports_window_size")}
    saved_vendor_kernel = getattr(vendor["modeling_deepseekv2"], "flash_attn_func", missing)
    handles = routing.hooks(root) if routing else []
    try:
        Tensor.cuda = lambda self, *args, **kwargs: self  # CPU run: the OCR forward's .cuda() stays put
        if routing:
            Tensor.numpy = routing.numpy(saved_numpy)
        Tensor.__bool__ = _verdict_truth(saved_bool)
        # What `import flash_attn` would have defined in transformers' flash module: the kernel, and
        # whether it takes a sliding window (no model here uses one).
        flash_utils.flash_attn_func = flash
        flash_utils._flash_supports_window_size = True
        # DeepseekV2FlashAttention2 calls the kernel from its own module's globals.
        vendor["modeling_deepseekv2"].flash_attn_func = flash
        yield
    finally:
        Tensor.numpy, Tensor.cuda, Tensor.__bool__ = saved_numpy, saved_cuda, saved_bool
        for name, value in saved_kernel.items():
            if value is missing:
                delattr(flash_utils, name)
            else:
                setattr(flash_utils, name, value)
        if saved_vendor_kernel is missing:
            vars(vendor["modeling_deepseekv2"]).pop("flash_attn_func", None)
        else:
            vendor["modeling_deepseekv2"].flash_attn_func = saved_vendor_kernel
        for handle in handles:
            handle.remove()


# ------------------------------------------------------------------------------ building the ops


ATTENTION = {"eager": "eager", "fused": "flash_attention_2"}  # our kernel -> the vendor's implementation


def language_config(vendor: Vendor, ctx: Context):
    """The vendor's DeepseekV2Config from the checkout's config.json (as AutoConfig reads it), with the
    point's overrides and the attention implementation; its values must give the point's symbols."""
    config_class = vendor["modeling_deepseekocr"].DeepseekOCRConfig  # config.json's auto_map AutoConfig
    values = {k: v for k, v in vendor.config_json.items() if not k.startswith("_")}
    config = config_class(**{**values, **ctx.config})
    config._attn_implementation_internal = ATTENTION[ctx.kernel]
    # from_pretrained checks once that the implementation can load, then marks the config; a CPU run
    # cannot pass the flash check (no flash_attn), the stand-in kernel replaces it.
    config._attn_implementation_autoset = True
    config.use_cache = True
    ctx.check(h=config.hidden_size, H=config.num_attention_heads,
              d_h=config.hidden_size // config.num_attention_heads, d_ff=config.intermediate_size,
              d_e=config.moe_intermediate_size, E=config.n_routed_experts, k=config.num_experts_per_tok,
              E_s=config.n_shared_experts, V=config.vocab_size, L=config.num_hidden_layers,
              L_dense=config.first_k_dense_replace, G_n=config.n_group, G_k=config.topk_group,
              H_kv=config.num_key_value_heads)
    return config


# op name -> builder of the vendor class: `builder(vendor, ctx) -> Case` (duplicates refused, as for the harness).
upstream = HarnessRegistry()


def _dynamic_cache(ctx: Context, layers: int):
    """transformers' DynamicCache holding P positions in each layer (the vendor's cache class)."""
    from transformers.cache_utils import DynamicCache

    shape = (ctx["B"], ctx["H"], ctx["P"], ctx["d_h"])
    keys = [ctx.tensor(*shape) for _ in range(layers)]
    values = [ctx.tensor(*shape) for _ in range(layers)]

    def fresh() -> Any:
        cache = DynamicCache()
        cache.key_cache, cache.value_cache = list(keys), list(values)
        cache._seen_tokens = ctx["P"]
        return cache
    return fresh


def _cache_tensors(cache: Any) -> list[Tensor]:
    return [*cache.key_cache, *cache.value_cache]


def _positions(ctx: Context) -> Tensor:
    """position_ids P to P + S - 1 in B_pos rows: (1, S) as DeepseekV2Model makes them, shared by the
    batch, or a row per sequence as generation passes them."""
    with ctx.place():
        return torch.arange(ctx["P"], ctx["P"] + ctx["S"], dtype=torch.long)[None].expand(ctx["B_pos"], -1).contiguous()


def _vendor_mask(vendor: Vendor, ctx: Context, x: Tensor, implementation: str) -> Tensor | None:
    """The mask DeepseekV2Model hands its layers: none under flash_attention_2 (unpadded batch), else
    transformers' 4-D causal mask (None for a single query)."""
    if implementation == "flash_attention_2":
        return None
    with ctx.place(), torch.no_grad():
        return vendor["modeling_deepseekv2"]._prepare_4d_causal_attention_mask(
            None, (ctx["B"], ctx["S"]), x, ctx["P"])


def _with_patches(vendor: Vendor, ctx: Context, module: nn.Module, call: Callable[[], Any],
                  kv_cache: Callable[[Any], list[Tensor]] = lambda out: [], *, router_notes: bool = True,
                  **extra: Any) -> Case:
    """A Case whose forward runs under the vendor patches; notes say how it ran. ``router_notes``: add
    the reference harness's routing notes (and, on real tensors, the E_run the router gives), which
    read the point's S; a whole OCR request binds no S (its forwards differ in length)."""
    from opdoc.models.deepseek_ocr.harness import _routing

    mod = vendor["modeling_deepseekv2"]
    flash = FlashStandIn()
    moes = [m for m in module.modules() if isinstance(m, mod.DeepseekV2MoE)]
    routing = ForcedRouting(mod.DeepseekV2MoE, moes[0].num_experts_per_tok) if moes else None
    routed = _routing(ctx, module, mod.DeepseekV2MoE) if moes and router_notes else {}

    def run() -> Any:
        with vendor_run(vendor, module, flash, routing):
            return call()

    def notes() -> list[str]:
        out = list(routed["notes"]()) if routed else []
        if routing and routing.forced:
            out.append(f"moe_infer's host counts forced: even split, {sum(1 for c in routing.forced[-1] if c)} "
                       f"of {len(routing.forced[-1])} experts run")
        if flash.calls:
            out.append(flash.calls[-1].describe() + f" ×{len(flash.calls)}")
        return out
    return Case(module, run, kv_cache, notes=notes, **({"observed": routed["observed"]} if routed else {}),
                **extra)


def _hidden(name: str, make: Callable[[Any, Any], nn.Module]) -> None:
    """A builder for a language op called on one (B, S, h) tensor: `make(module_of_file, config)`."""
    def builder(vendor: Vendor, ctx: Context) -> Case:
        cfg = language_config(vendor, ctx)
        module = ctx.module(lambda: make(vendor["modeling_deepseekv2"], cfg))
        x = ctx.tensor(ctx["B"], ctx["S"], ctx["h"])
        return _with_patches(vendor, ctx, module, lambda: module(x))
    upstream(name)(builder)


_hidden("DeepseekV2RMSNorm", lambda m, cfg: m.DeepseekV2RMSNorm(cfg.hidden_size, eps=cfg.rms_norm_eps))
_hidden("DeepseekV2MLP", lambda m, cfg: m.DeepseekV2MLP(cfg))


@upstream("AddAuxiliaryLoss")
def _add_auxiliary_loss(vendor: Vendor, ctx: Context) -> Case:
    holder = ctx.module(nn.Module)
    x = ctx.tensor(ctx["B"], ctx["S"], ctx["h"])
    loss = ctx.tensor(1, dtype=torch.float32)[0]
    return _with_patches(vendor, ctx, holder, lambda: vendor["modeling_deepseekv2"].AddAuxiliaryLoss.apply(x, loss))


@upstream("repeat_kv")
def _repeat_kv(vendor: Vendor, ctx: Context) -> Case:
    """The vendor file's repeat_kv (transformers' own, copied there), on the keys of one eager call."""
    cfg = language_config(vendor, ctx)
    holder = ctx.module(nn.Module)
    keys = ctx.tensor(ctx["B"], ctx["H_kv"], ctx["P"] + ctx["S"], ctx["d_h"])
    n_rep = cfg.num_attention_heads // cfg.num_key_value_heads
    return _with_patches(vendor, ctx, holder, lambda: vendor["modeling_deepseekv2"].repeat_kv(keys, n_rep))


@upstream("MoEGate")
def _moe_gate(vendor: Vendor, ctx: Context) -> Case:
    """The vendor router with the variant's routing keys set in its config; `training` in train mode."""
    from opdoc.models.deepseek_ocr.harness import GATE_VARIANTS

    if ctx.variant not in GATE_VARIANTS:
        raise HarnessError(f"MoEGate: variant must be one of {list(GATE_VARIANTS)}, got {ctx.variant!r}")
    cfg = language_config(vendor, ctx)
    for key, value in GATE_VARIANTS[ctx.variant].items():
        setattr(cfg, key, value)
    module = ctx.module(lambda: vendor["modeling_deepseekv2"].MoEGate(cfg))
    module.train(ctx.variant == "training")
    x = ctx.tensor(ctx["B"], ctx["S"], ctx["h"])
    return _with_patches(vendor, ctx, module, lambda: module(x))

_hidden("DeepseekV2MoE", lambda m, cfg: m.DeepseekV2MoE(cfg))


def _layer_call(vendor: Vendor, ctx: Context, module: nn.Module, layer_idx: int, implementation: str,
                tables: bool = False) -> Case:
    """One attention or decoder layer called as DeepseekV2Model calls it: position_ids (no rotary
    tables, unless `tables`: the shared_tables variant), the model's mask for `implementation`, a
    DynamicCache holding P positions for every layer up to this one."""
    x = ctx.tensor(ctx["B"], ctx["S"], ctx["h"])
    positions = _positions(ctx)
    mask = _vendor_mask(vendor, ctx, x, implementation)
    cache = _dynamic_cache(ctx, layer_idx + 1)
    extra = {}
    if tables:  # built before the measured forward, by transformers' own rotary class
        with ctx.place(), torch.no_grad():
            extra["position_embeddings"] = module.rotary_emb(x, positions)

    def call() -> Any:
        return module(x, attention_mask=mask, position_ids=positions, past_key_value=cache(), use_cache=True, **extra)
    # LlamaAttention returns (out, weights, cache); the decoder layer (out, cache) without weights. The
    # cache also holds the earlier layers' seeded positions: only this layer's entry is its KV cache.
    return _with_patches(vendor, ctx, module, call,
                         lambda out: [out[-1].key_cache[layer_idx], out[-1].value_cache[layer_idx]])


def _attention_class(implementation: str) -> Callable[[Vendor, Context], Case]:
    """transformers' attention class that DeepseekV2DecoderLayer builds for `implementation`
    (ATTENTION_CLASSES["mha_" + implementation]); each class has one path, whatever the kernel."""
    def builder(vendor: Vendor, ctx: Context) -> Case:
        if ctx.variant not in ("per_layer", "shared_tables"):
            raise HarnessError(f"{ctx.op}: variant must be per_layer or shared_tables, got {ctx.variant!r}")
        cfg = language_config(vendor, ctx)
        cfg._attn_implementation_internal = implementation
        table = vendor["modeling_deepseekv2"].ATTENTION_CLASSES
        module = ctx.module(lambda: table["mha_" + implementation](config=cfg, layer_idx=0))
        return _layer_call(vendor, ctx, module, 0, implementation, tables=ctx.variant == "shared_tables")
    return builder


upstream("LlamaAttention")(_attention_class("eager"))
upstream("LlamaFlashAttention2")(_attention_class("flash_attention_2"))


@upstream("LlamaRotaryEmbedding")
def _llama_rotary(vendor: Vendor, ctx: Context) -> Case:
    # What each vendor attention layer constructs as its rotary_emb (the configuration has no rope_scaling).
    cfg = language_config(vendor, ctx)
    module = ctx.module(lambda: vendor.llama.LlamaRotaryEmbedding(config=cfg))
    values = ctx.tensor(ctx["B"], ctx["H"], ctx["S"], ctx["d_h"])
    positions = _positions(ctx)
    return _with_patches(vendor, ctx, module, lambda: module(values, positions))


@upstream("DeepseekV2DecoderLayer", attention=True)
def _decoder_layer(vendor: Vendor, ctx: Context) -> Case:
    cfg = language_config(vendor, ctx)
    if ctx.variant not in ("dense", "moe"):
        raise HarnessError(f"DeepseekV2DecoderLayer: variant must be dense or moe, got {ctx.variant!r}")
    layer_idx = 0 if ctx.variant == "dense" else cfg.first_k_dense_replace
    module = ctx.module(lambda: vendor["modeling_deepseekv2"].DeepseekV2DecoderLayer(cfg, layer_idx))
    return _layer_call(vendor, ctx, module, layer_idx, cfg._attn_implementation)


def _whole(name: str, cache_at: int) -> None:
    def builder(vendor: Vendor, ctx: Context) -> Case:
        cfg = language_config(vendor, ctx)
        module = ctx.module(lambda: getattr(vendor["modeling_deepseekv2"], name)(cfg))
        ids = ctx.ids(ctx["B"], ctx["S"], high=cfg.vocab_size)
        cache = _dynamic_cache(ctx, cfg.num_hidden_layers)
        # B_pos = 1: the model makes its arange row; B_pos = B > 1: a row per sequence, as generation passes.
        positions = _positions(ctx) if ctx["B_pos"] > 1 else None
        return _with_patches(vendor, ctx, module,
                             lambda: module(ids, position_ids=positions, past_key_values=cache(), use_cache=True,
                                            return_dict=False),
                             lambda out: _cache_tensors(out[cache_at]))
    upstream(name, attention=True)(builder)


_whole("DeepseekV2Model", cache_at=1)
_whole("DeepseekV2ForCausalLM", cache_at=1)


@upstream("DeepseekV2ForSequenceClassification", attention=True)
def _sequence_classifier(vendor: Vendor, ctx: Context) -> Case:
    """The vendor classifier with the end-of-text token as pad token, as the reference's harness
    documents it (DeepSeek-OCR's config.json sets none, with which the class refuses B > 1)."""
    cfg = language_config(vendor, ctx)
    if cfg.pad_token_id is None:
        cfg.pad_token_id = cfg.eos_token_id
    ctx.check(N_c=cfg.num_labels)
    module = ctx.module(lambda: vendor["modeling_deepseekv2"].DeepseekV2ForSequenceClassification(cfg))
    ids = ctx.ids(ctx["B"], ctx["S"], high=cfg.vocab_size)
    cache = _dynamic_cache(ctx, cfg.num_hidden_layers)
    positions = _positions(ctx) if ctx["B_pos"] > 1 else None
    return _with_patches(vendor, ctx, module,
                         lambda: module(ids, position_ids=positions, past_key_values=cache(), use_cache=True,
                                        return_dict=False),
                         lambda out: _cache_tensors(out[1]))


# ------------------------------------------------------------------------------ DeepSeek-V2-Lite (MLA)


def v2_lite_config(vendor: Vendor, ctx: Context):
    """The vendor's DeepseekV2Config at DeepSeek-V2-Lite's attention settings (the v2_lite scope), with
    DeepSeek-V2's q_lora_rank for the q_compressed variant."""
    values = dict(ctx.scope_config or {})
    v2_rank = values.pop("v2_q_lora_rank")
    if ctx.variant == "q_compressed":
        values["q_lora_rank"] = v2_rank
    config = vendor["configuration_deepseek_v2"].DeepseekV2Config(**{**values, **ctx.config})
    ctx.check(h=config.hidden_size, H=config.num_attention_heads, d_c=config.kv_lora_rank,
              d_r=config.qk_rope_head_dim, d_n=config.qk_nope_head_dim, d_v=config.v_head_dim)
    return config


def _mla(implementation: str) -> Callable[[Vendor, Context], Case]:
    """DeepseekV2Attention (eager) or DeepseekV2FlashAttention2, as ATTENTION_CLASSES builds them with
    use_mla, called as the harness calls the reference: a DynamicCache holding P positions of what the
    class caches, and a mask for the eager class (zeros for one query: it asserts one)."""
    def builder(vendor: Vendor, ctx: Context) -> Case:
        from transformers.cache_utils import DynamicCache

        from opdoc.models.deepseek_ocr.deepseek_v2 import causal_mask_4d

        cfg = v2_lite_config(vendor, ctx)
        cfg._attn_implementation_internal = implementation
        module = ctx.module(lambda: vendor["modeling_deepseekv2"].ATTENTION_CLASSES["mla_" + implementation](
            config=cfg, layer_idx=0))
        B, S, P, H = ctx["B"], ctx["S"], ctx["P"], ctx["H"]
        x = ctx.tensor(B, S, ctx["h"])
        positions = _positions(ctx)
        if implementation == "eager":
            slots = ((B, 1, P, ctx["d_r"]), (B, 1, P, ctx["d_c"]))
            with ctx.place(), torch.no_grad():
                mask = causal_mask_4d(B, S, P, ctx.dtype, x.device)
                if mask is None:
                    mask = torch.zeros(1, 1, 1, P + S, dtype=ctx.dtype).expand(B, 1, 1, P + S)
        else:
            slots = ((B, H, P, ctx["d_n"] + ctx["d_r"]),) * 2
            mask = None
        keys, values = ctx.tensor(*slots[0]), ctx.tensor(*slots[1])

        def call() -> Any:
            cache = DynamicCache()
            cache.key_cache, cache.value_cache = [keys], [values]
            cache._seen_tokens = P
            # The rotary table as generation leaves it: marked stale at construction, or P positions long.
            module.rotary_emb.max_seq_len_cached = P or None
            return module(x, attention_mask=mask, position_ids=positions, past_key_value=cache, use_cache=True)
        return _with_patches(vendor, ctx, module, call, lambda out: _cache_tensors(out[-1]))
    return builder


def _v2_rotary(name: str) -> Callable[[Vendor, Context], Case]:
    """A vendor rotary class with the arguments DeepseekV2Attention._init_rope would pass at V2-Lite's
    settings (the scaled classes with its factor), called for P + S positions in the state generation
    leaves it (see the reference harness)."""
    def builder(vendor: Vendor, ctx: Context) -> Case:
        from opdoc.models.deepseek_ocr.harness import mla_config, rotary_kwargs

        kwargs = rotary_kwargs(name, mla_config(ctx))
        module = ctx.module(lambda: getattr(vendor["modeling_deepseekv2"], name)(**kwargs))
        x = ctx.tensor(ctx["B"], ctx["H"], ctx["S"], ctx["d_r"])

        def call() -> Any:
            module.max_seq_len_cached = ctx["P"] or None
            return module(x, seq_len=ctx["P"] + ctx["S"])
        return _with_patches(vendor, ctx, module, call)
    return builder


from opdoc.models.deepseek_ocr.harness import V2_ROTARY_CLASSES  # noqa: E402 - the reference registers the same four

for _name in V2_ROTARY_CLASSES:
    upstream(_name)(_v2_rotary(_name))


upstream("DeepseekV2Attention")(_mla("eager"))
upstream("DeepseekV2FlashAttention2")(_mla("flash_attention_2"))


@upstream("PatchEmbed")
def _patch_embed(vendor: Vendor, ctx: Context) -> Case:
    # The patch embedding of the SAM-B encoder exactly as build_sam_vit_b constructs it.
    module = ctx.module(lambda: vendor["deepencoder"].build_sam_vit_b().patch_embed)
    conv = module.proj
    ctx.check(p=conv.kernel_size[0], C_in=conv.in_channels, h=conv.out_channels)
    x = ctx.tensor(ctx["B"], ctx["C_in"], ctx["H_img"], ctx["W_img"])
    return _with_patches(vendor, ctx, module, lambda: module(x))


@upstream("NoTPAttention", attention=True)
def _clip_attention(vendor: Vendor, ctx: Context) -> Case:
    # CLIP-L's attention with the configuration the vendor hard-codes (vit_model_cfg, used by build_clip_l).
    encoder = vendor["deepencoder"]
    cfg = encoder.vit_model_cfg
    ctx.check(h=cfg.hidden_size, H=cfg.num_attention_heads, d_h=cfg.hidden_size // cfg.num_attention_heads)
    module = ctx.module(lambda: encoder.NoTPAttention(cfg))
    x = ctx.tensor(ctx["B"], ctx["S"], ctx["h"])
    return _with_patches(vendor, ctx, module, lambda: module(x), context=ctx.sdpa_context())


def _vendor_sam(vendor: Vendor, ctx: Context, part: Callable[[nn.Module], nn.Module], built_for: tuple = ()):
    """A part of the SAM-B encoder exactly as the vendor's build_sam_vit_b constructs it."""
    return ctx.module(lambda: part(vendor["deepencoder"].build_sam_vit_b()), built_for=built_for)


def _vendor_function(name: str, make_call: Callable[[Vendor, Context, Callable[..., Any]], Callable[[], Any]]) -> None:
    """A vendor helper function of deepencoder.py (no parameters of its own) called as its spec says."""
    def builder(vendor: Vendor, ctx: Context) -> Case:
        holder = ctx.module(nn.Module)
        return _with_patches(vendor, ctx, holder, make_call(vendor, ctx, getattr(vendor["deepencoder"], name)))
    upstream(name)(builder)


@upstream("LayerNorm2d")
def _layer_norm_2d(vendor: Vendor, ctx: Context) -> Case:
    module = _vendor_sam(vendor, ctx, lambda sam: sam.neck[1])
    ctx.check(C=module.weight.shape[0])
    x = ctx.tensor(ctx["B"], ctx["C"], ctx["H_p"], ctx["W_p"])
    return _with_patches(vendor, ctx, module, lambda: module(x))


@upstream("MLPBlock")
def _sam_mlp(vendor: Vendor, ctx: Context) -> Case:
    module = _vendor_sam(vendor, ctx, lambda sam: sam.blocks[0].mlp)
    ctx.check(h=module.lin1.in_features, d_ff=module.lin1.out_features)
    x = ctx.tensor(ctx["B"], ctx["H_p"], ctx["W_p"], ctx["h"])
    return _with_patches(vendor, ctx, module, lambda: module(x))


@upstream("Attention", attention=True)
def _sam_attention(vendor: Vendor, ctx: Context) -> Case:
    # The attention of the first block whose tables are built for G_p: a windowed block (G_p = 14) or a
    # global one (the 64-patch grid).
    rows = 2 * ctx["G_p"] - 1
    module = _vendor_sam(vendor, ctx, lambda sam: next(b.attn for b in sam.blocks if b.attn.rel_pos_h.shape[0] == rows),
                         built_for=(rows,))
    x = ctx.tensor(ctx["B"], ctx["H_p"], ctx["W_p"], ctx["h"])
    return _with_patches(vendor, ctx, module, lambda: module(x), context=ctx.sdpa_context())


@upstream("Block", attention=True)
def _sam_block(vendor: Vendor, ctx: Context) -> Case:
    # The first windowed block (0) or the first global one (2) of the vendor's SAM-B.
    if ctx.variant not in ("windowed", "global"):
        raise HarnessError(f"Block: variant must be windowed or global, got {ctx.variant!r}")
    windowed = ctx.variant == "windowed"
    module = _vendor_sam(vendor, ctx, lambda sam: next(b for b in sam.blocks if (b.window_size > 0) == windowed))
    if windowed:
        ctx.check(w=module.window_size)
    x = ctx.tensor(ctx["B"], ctx["H_p"], ctx["W_p"], ctx["h"])
    return _with_patches(vendor, ctx, module, lambda: module(x), context=ctx.sdpa_context())


@upstream("ImageEncoderViT", attention=True)
def _sam_encoder(vendor: Vendor, ctx: Context) -> Case:
    module = _vendor_sam(vendor, ctx, lambda sam: sam)
    ctx.check(h=module.patch_embed.proj.out_channels, L_v=len(module.blocks), C_3=module.net_3.out_channels)
    x = ctx.tensor(ctx["B"], ctx["C_in"], ctx["H_img"], ctx["W_img"])
    return _with_patches(vendor, ctx, module, lambda: module(x), context=ctx.sdpa_context())


def _rel_pos_call(vendor: Vendor, ctx: Context, fn: Callable[..., Any]) -> Callable[[], Any]:
    table = ctx.tensor(2 * ctx["G_p"] - 1, ctx["d_h"])
    return lambda: fn(ctx["H_p"], ctx["H_p"], table)


def _decomposed_call(vendor: Vendor, ctx: Context, fn: Callable[..., Any]) -> Callable[[], Any]:
    from opdoc.models.deepseek_ocr.harness import _folded_queries

    q = _folded_queries(ctx)
    rows, cols = ctx.tensor(2 * ctx["G_p"] - 1, ctx["d_h"]), ctx.tensor(2 * ctx["G_p"] - 1, ctx["d_h"])
    grid = (ctx["H_p"], ctx["W_p"])
    return lambda: fn(q, rows, cols, grid, grid)


def _partition_call(vendor: Vendor, ctx: Context, fn: Callable[..., Any]) -> Callable[[], Any]:
    x = ctx.tensor(ctx["B"], ctx["H_p"], ctx["W_p"], ctx["h"])
    return lambda: fn(x, ctx["w"])


def _unpartition_call(vendor: Vendor, ctx: Context, fn: Callable[..., Any]) -> Callable[[], Any]:
    w = ctx["w"]
    rows, cols = -(-ctx["H_p"] // w), -(-ctx["W_p"] // w)
    windows = ctx.tensor(ctx["B"] * rows * cols, w, w, ctx["h"])
    return lambda: fn(windows, w, (rows * w, cols * w), (ctx["H_p"], ctx["W_p"]))


def _abs_pos_call(vendor: Vendor, ctx: Context, fn: Callable[..., Any]) -> Callable[[], Any]:
    table = ctx.tensor(1, ctx["G_p"], ctx["G_p"], ctx["h"])
    return lambda: fn(table, ctx["H_p"])


_vendor_function("get_abs_pos_sam", _abs_pos_call)
_vendor_function("get_rel_pos", _rel_pos_call)
_vendor_function("add_decomposed_rel_pos", _decomposed_call)
_vendor_function("window_partition", _partition_call)
_vendor_function("window_unpartition", _unpartition_call)


def _vendor_clip(vendor: Vendor, ctx: Context, part: Callable[[nn.Module], nn.Module]):
    """A part of CLIP-L exactly as the vendor's build_clip_l constructs it (its hard-coded vit_model_cfg)."""
    cfg = vendor["deepencoder"].vit_model_cfg
    ctx.check(h=cfg.hidden_size, H=cfg.num_attention_heads, d_ff=cfg.ffn_hidden_size, L_v=cfg.num_layers)
    return ctx.module(lambda: part(vendor["deepencoder"].build_clip_l()))


def _clip_view_and_features(ctx: Context) -> tuple[Tensor, Tensor]:
    return (ctx.tensor(ctx["B"], ctx["C_in"], ctx["H_img"], ctx["W_img"]),
            ctx.tensor(ctx["B"], ctx["h"], ctx["H_p"], ctx["W_p"]))


@upstream("CLIPVisionEmbeddings")
def _clip_embeddings(vendor: Vendor, ctx: Context) -> Case:
    module = _vendor_clip(vendor, ctx, lambda clip: clip.embeddings)
    view, features = _clip_view_and_features(ctx)
    return _with_patches(vendor, ctx, module, lambda: module(view, features))


@upstream("NoTPFeedForward")
def _clip_mlp(vendor: Vendor, ctx: Context) -> Case:
    module = _vendor_clip(vendor, ctx, lambda clip: clip.transformer.layers[0].mlp)
    x = ctx.tensor(ctx["B"], ctx["S"], ctx["h"])
    return _with_patches(vendor, ctx, module, lambda: module(x))


def _clip_sequence(name: str, part: Callable[[nn.Module], nn.Module]) -> None:
    def builder(vendor: Vendor, ctx: Context) -> Case:
        module = _vendor_clip(vendor, ctx, part)
        x = ctx.tensor(ctx["B"], ctx["S"], ctx["h"])
        return _with_patches(vendor, ctx, module, lambda: module(x), context=ctx.sdpa_context())
    upstream(name, attention=True)(builder)


_clip_sequence("NoTPTransformerBlock", lambda clip: clip.transformer.layers[0])
_clip_sequence("NoTPTransformer", lambda clip: clip.transformer)


@upstream("VitModel", attention=True)
def _clip_model(vendor: Vendor, ctx: Context) -> Case:
    module = _vendor_clip(vendor, ctx, lambda clip: clip)
    view, features = _clip_view_and_features(ctx)
    return _with_patches(vendor, ctx, module, lambda: module(view, features), context=ctx.sdpa_context())


def _clip_abs_pos_call(vendor: Vendor, ctx: Context, fn: Callable[..., Any]) -> Callable[[], Any]:
    table = ctx.tensor(1, ctx["G_p"] ** 2 + 1, ctx["h"])
    return lambda: fn(table, ctx["S"])


_vendor_function("get_abs_pos", _clip_abs_pos_call)


@upstream("MlpProjector")
def _projector(vendor: Vendor, ctx: Context) -> Case:
    # DeepseekOCRModel hard-codes projector_type "linear", input_dim 2048 and n_embed 1280 in its
    # constructor, which is not built here: the widths come from the projector scope, which copies them.
    # The other types (variants) at the scope's depth 2, mlp_ratio 1 and downsample_ratio r_d.
    encoder = vendor["deepencoder"]
    cfg = encoder.adict(projector_type=ctx.variant, input_dim=ctx["d_in"], n_embed=ctx["h"], depth=2, mlp_ratio=1,
                        downsample_ratio=ctx["r_d"])
    module = ctx.module(lambda: encoder.MlpProjector(cfg))
    x = ctx.tensor(ctx["B"], ctx["S"], ctx["d_in"])
    return _with_patches(vendor, ctx, module, lambda: module(x))


@upstream("LayerNormfp32")
def _layer_norm_fp32(vendor: Vendor, ctx: Context) -> Case:
    # Not built by OCR (vit_model_cfg sets no fp32norm): at the configuration that would use it, fp32 weights.
    cfg = vendor["deepencoder"].vit_model_cfg
    module = ctx.module(lambda: vendor["deepencoder"].LayerNormfp32(cfg.hidden_size, eps=cfg.pre_layernorm_epsilon,
                                                                   dtype=torch.float32))
    x = ctx.tensor(ctx["B"], ctx["S"], ctx["h"])
    return _with_patches(vendor, ctx, module, lambda: module(x))


# ------------------------------------------------------------------------------ the whole model


class PixelSums:
    """The OCR forward's "is there an image" reads, answered on fake tensors as the reference answers them.

    DeepseekOCRModel.forward sums the first request's global view and then each request's tiles and
    reads each sum on the host (``torch.sum(...).item() != 0``), which a fake tensor cannot answer.
    While the vendor forward runs, ``Tensor.item`` on a fake 0-dim tensor hands out the next scripted
    verdict (1.0 for "holds pixels", 0.0 for "blank"), the verdicts the reference's ``holds_image``
    falls back on without data: the global view holds an image, a request's tiles do when its crop grid
    has tiles. The sum itself still runs (one reduction each, as the spec counts); the read adds no
    aten op, as on fake tensors in the reference. A read of any other fake value, or one read more than
    scripted, is an error. Real tensors read their real sums.
    """

    def __init__(self, verdicts: list[bool]) -> None:
        self.verdicts = verdicts
        self.answered: list[bool] = []  # the last forward's answers

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        from torch._subclasses.fake_tensor import FakeTensor

        original = Tensor.item
        pending = list(self.verdicts)
        self.answered = []

        def item(tensor: Tensor) -> Any:
            if not isinstance(tensor, FakeTensor):
                return original(tensor)
            if tensor.dim() != 0 or not pending:
                raise UpstreamError("a vendor op read a fake tensor's value beyond the OCR forward's pixel sums "
                                    f"(scripted: {self.verdicts})")
            verdict = pending.pop(0)
            self.answered.append(verdict)
            return 1.0 if verdict else 0.0
        Tensor.item = item  # type: ignore[method-assign]
        try:
            yield
        finally:
            Tensor.item = original  # type: ignore[method-assign]

    def notes(self) -> list[str]:
        if not self.answered:
            return []
        said = ["holds pixels" if v else "blank (no crop)" for v in self.answered]
        return [f".item() of the pixel sums answered without data as the reference does: global view "
                f"{said[0]}, tiles {', '.join(said[1:]) or '-'}"]


def _greedy(module: nn.Module, ids: Tensor, tokens: int, cache: Any, images: dict[str, Any]) -> dict[str, Any]:
    """Generation as the reference's DeepseekOCRForCausalLM.generate runs it, over the vendor's forward:
    the prompt's forward, the argmax of its last logits, then tokens - 1 single-token forwards on the
    returned cache; between forwards only the cache and the chosen tokens stay referenced."""
    logits, kv = module(ids, **images, past_key_values=cache, use_cache=True, return_dict=False)
    token = logits[:, -1:].argmax(-1)
    chosen = [token]
    del logits
    for _ in range(tokens - 1):
        logits, kv = module(token, past_key_values=kv, use_cache=True, return_dict=False)
        token = logits[:, -1:].argmax(-1)
        chosen.append(token)
        del logits
    return {"tokens": torch.cat(chosen, dim=1), "cache": kv}


def _ocr(cls_name: str) -> Callable[[Vendor, Context], Case]:
    """The vendor's DeepseekOCRModel or DeepseekOCRForCausalLM at the reference harness's points and inputs.

    Built as ``from_pretrained`` builds them: the language model from the checkout's config.json, SAM-B,
    CLIP-L and the linear projector with the settings the vendor's constructor hard-codes (checked
    against the point's d_in and h). Inputs are the reference harness's own (``_ocr_prompt``: BOS, the
    S_v image positions, the rest of the prompt; the global view; the tiles or one blank D_g-sided
    placeholder; the crop grid as a list of (c_w, c_h) pairs, as the reference takes it, where infer()
    passes a host LongTensor whose elements the forward only reads as sizes).

    Variants:

    * prefill: the prompt's forward. The cache is a transformers 4.46.3 ``DynamicCache`` seeded with a
      zero-length (B, H, 0, d_h) key and value per layer, as the reference seeds its own: every
      layer's ``update`` then concatenates (the spec's cache append) instead of storing the tensor it
      was handed, which is what an unseeded DynamicCache would do at prefill;
    * decode: one token over a DynamicCache holding S_v + S_t + N_out - 2 positions per layer; the
      vendor's forward skips the vision path for a single position;
    * request (DeepseekOCRForCausalLM): the vendor's forward driven in the reference's greedy loop
      (``_greedy``), not the vendor's ``generate()``: infer() calls transformers' generation utilities,
      which add an attention mask, position ids from its cumulative sum, cache positions, the
      no-repeat-n-gram logits processor, a streamer and stopping criteria around each forward: work
      the spec does not document (it documents the forwards and the argmax). The same cache seeding
      as prefill.

    Obstacles met at run time (besides ``vendor_run``'s): the pixel-sum reads (``PixelSums``), and the
    ``.cuda()`` on images_seq_mask (``Tensor.cuda`` is the identity, as for every vendor forward here).
    The forward's progress prints (the feature shapes) go to a buffer.
    """
    def builder(vendor: Vendor, ctx: Context) -> Case:
        from opdoc.models.deepseek_ocr.harness import _ocr_prompt

        cfg = language_config(vendor, ctx)
        module = ctx.module(lambda: getattr(ocr_module(vendor), cls_name)(cfg))
        model = module if cls_name == "DeepseekOCRModel" else module.model
        projector = model.projector.layers
        ctx.check(d_in=projector.in_features, h=projector.out_features)

        def cache_at(past: int) -> Callable[[], Any]:
            return _dynamic_cache(replace(ctx, values={**ctx.values, "P": past}), cfg.num_hidden_layers)

        sums = PixelSums([])
        how = ["DynamicCache seeded with a zero-length key and value per layer (each append copies)"]
        if ctx.variant == "decode":
            past = ctx["S_v"] + ctx["S_t"] + ctx["N_out"] - 2
            how = [f"DynamicCache seeded with {past} positions per layer"]
            cache = cache_at(past)
            token = ctx.ids(ctx["B"], 1, high=1000)
            run: Callable[[], Any] = lambda: module(token, past_key_values=cache(), use_cache=True,  # noqa: E731
                                                    return_dict=False)
            kv_cache = lambda out: _cache_tensors(out[1])  # noqa: E731
        elif ctx.variant in ("prefill", "request"):
            if ctx.variant == "request" and cls_name != "DeepseekOCRForCausalLM":
                raise HarnessError(f"{ctx.op}: no variant 'request'")
            prompt, cache = _ocr_prompt(ctx), cache_at(0)
            # The global view of the first request, then each request's tiles (see PixelSums).
            sums = PixelSums([True] + [across * down > 1 for across, down in prompt["images_spatial_crop"]])
            how.append("images_seq_mask.cuda() returns the tensor itself (CPU run)")
            if ctx.variant == "prefill":
                run = lambda: module(**prompt, past_key_values=cache(), use_cache=True, return_dict=False)  # noqa: E731
                kv_cache = lambda out: _cache_tensors(out[1])  # noqa: E731
            else:
                how.append(f"the vendor forward in the reference's greedy loop ({ctx['N_out']} forwards), "
                           "not its generate()")
                ids = prompt.pop("input_ids")
                run = lambda: _greedy(module, ids, ctx["N_out"], cache(), prompt)  # noqa: E731
                kv_cache = lambda out: _cache_tensors(out["cache"])  # noqa: E731
        else:
            raise HarnessError(f"{ctx.op}: no variant {ctx.variant!r}")

        def call() -> Any:
            with sums.active(), contextlib.redirect_stdout(io.StringIO()):
                return run()
        # SAM and CLIP always call scaled-dot-product attention: the eager kernel means its math path.
        case = _with_patches(vendor, ctx, module, call, kv_cache, router_notes=False, context=ctx.sdpa_context())
        vendor_notes = case.notes
        case.notes = lambda: vendor_notes() + sums.notes() + how
        return case
    return builder


upstream("DeepseekOCRModel", attention=True)(_ocr("DeepseekOCRModel"))
upstream("DeepseekOCRForCausalLM", attention=True)(_ocr("DeepseekOCRForCausalLM"))


# ------------------------------------------------------------------------------ preprocessing (host side)


def ocr_module(vendor: Vendor) -> types.ModuleType:
    """The checkout's ``modeling_deepseekocr`` module (imported by ``load_checkout``, torchvision stand-in
    included where torchvision does not import): its classes, infer()'s helpers and the OCR models."""
    return vendor["modeling_deepseekocr"]


def not_comparable(vendor: Vendor) -> dict[str, str]:
    """Ops whose vendor class cannot run in this environment, each with the reason (reported, not failed)."""
    if vendor.torchvision == "stand-in":
        return {"BasicImageTransform": "torchvision is a stand-in here (no CPU build of torchvision 0.28 "
                                       "imports beside the pinned CPU torch 2.13.0), and the vendor class "
                                       "builds torchvision's ToTensor and Normalize; the reference check "
                                       "covers the same aten work"}
    return {}


def _pil_view(ctx: Context):
    """A W_img x H_img RGB PIL image with seeded pixels, as infer() hands each view to the transform."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(ctx.seed)
    return Image.fromarray(rng.integers(0, 256, (ctx["H_img"], ctx["W_img"], ctx["C_in"]), dtype=np.uint8), "RGB")


def _preprocessing_values(ctx: Context) -> dict[str, Any]:
    values = {**(ctx.scope_config or {}), **ctx.config}
    ctx.check(C_in=values["num_channels"])
    return values


@upstream("BasicImageTransform")
def _basic_image_transform(vendor: Vendor, ctx: Context) -> Case:
    """The vendor's transform as infer() builds it, on a PIL view (needs the real torchvision)."""
    if vendor.torchvision != "installed":
        raise HarnessError(not_comparable(vendor)["BasicImageTransform"])
    values = _preprocessing_values(ctx)
    transform = ocr_module(vendor).BasicImageTransform(mean=tuple(values["image_mean"]),
                                                       std=tuple(values["image_std"]),
                                                       normalize=values["normalize"])
    holder = ctx.module(nn.Module)
    view = _pil_view(ctx)
    return Case(holder, lambda: transform(view))


@upstream("BaseTransform")
def _base_transform(vendor: Vendor, ctx: Context) -> Case:
    holder = ctx.module(nn.Module)
    view = _pil_view(ctx)
    return Case(holder, lambda: ocr_module(vendor).BaseTransform()(view))


@upstream("dynamic_preprocess")
def _dynamic_preprocess(vendor: Vendor, ctx: Context) -> Case:
    """The vendor's tiling on a PIL page of W_img x H_img: PIL resize and crops, no aten op."""
    from PIL import Image

    values = _preprocessing_values(ctx)
    holder = ctx.module(nn.Module)
    page = Image.new("RGB", (ctx["W_img"], ctx["H_img"]))
    return Case(holder, lambda: ocr_module(vendor).dynamic_preprocess(
        page, min_num=values["min_num"], max_num=values["max_num"], image_size=values["image_size"]))


@upstream("DeepseekOCRConfig")
def _ocr_config(vendor: Vendor, ctx: Context) -> Case:
    """The vendor's configuration class built from the checkout's config.json, inside the measured call."""
    holder = ctx.module(nn.Module)
    return Case(holder, lambda: language_config(vendor, ctx))


class _MarkerTokenizer:
    """What NoEOSTextStreamer asks of a tokenizer: eos_token_id and decode()."""

    eos_token_id = 1

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return "".join("<eos>" if i == self.eos_token_id else f"<{i}>" for i in ids)


@upstream("NoEOSTextStreamer")
def _streamer(vendor: Vendor, ctx: Context) -> Case:
    """The vendor's streamer printing one finished piece (into a buffer)."""
    holder = ctx.module(nn.Module)
    streamer = ocr_module(vendor).NoEOSTextStreamer(_MarkerTokenizer(), skip_prompt=True, skip_special_tokens=False)

    def run() -> str:
        with contextlib.redirect_stdout(io.StringIO()) as printed:
            streamer.on_finalized_text("a line<eos>", stream_end=True)
        return printed.getvalue()
    return Case(holder, run)


# The vendor classes each op's spec documents, by file; used to list what has no spec yet.
def vendor_classes(vendor: Vendor) -> dict[str, list[str]]:
    """nn.Module classes defined in each vendor file (and the Llama classes OCR instantiates)."""
    found: dict[str, list[str]] = {}
    for stem, module in vendor.modules.items():
        names = [name for name, value in vars(module).items()
                 if isinstance(value, type) and issubclass(value, nn.Module) and value.__module__ == module.__name__]
        found[f"{stem}.py"] = sorted(names)
    found[LLAMA_FILE] = ["LlamaAttention", "LlamaFlashAttention2", "LlamaRotaryEmbedding"]
    return found


# ------------------------------------------------------------------------------ known deviations


@dataclass(frozen=True)
class Deviation:
    """A difference the upstream check found between the vendor's class and the spec, not fixed yet.

    Its rows are reported as ``known`` (both numbers and the differing aten ops still printed); an
    entry whose op and kernel no longer differ is an error, so the list cannot outlive the fix.
    """

    op: str
    kernels: tuple[str, ...]
    finding: str
    resolution: str


# No known deviation: issue 12 rewrote the LlamaAttention, LlamaFlashAttention2, decoder-layer and
# model specs to what the vendor runs (rotary tables per layer, a mask only on the eager path).
KNOWN_DEVIATIONS: tuple[Deviation, ...] = ()


# ------------------------------------------------------------------------------ building blocks


def _torch_class(op: str) -> Callable[[Vendor, Context], Case]:
    def builder(vendor: Vendor, ctx: Context) -> Case:
        """nn.Linear, nn.LayerNorm and nn.Conv2d: the vendor files build torch's own classes, so the vendor
        side is that class run in this environment (torch as the vendor's code imports it), built and fed
        exactly as the reference harness declares. nn.RMSNorm, which they do not build, is compared the
        same way: the vendor's torch against the reference run."""
        from opdoc.check.harness import harness as registry

        case = registry.get(op)(ctx)
        return _with_patches(vendor, ctx, case.module, case.run, router_notes=False)
    return builder


for _op in ("Linear", "LayerNorm", "Conv2d", "RMSNorm"):
    upstream(_op)(_torch_class(_op))


@upstream("scaled_dot_product_attention")
def _sdpa(vendor: Vendor, ctx: Context) -> Case:
    """torch's own function, which deepencoder.py's attention classes call, run in this environment on
    inputs laid out as each variant's caller lays them out, under the point's kernel."""
    from opdoc.models.deepseek_ocr.harness import sdpa_call

    holder = ctx.module(nn.Module)
    call = sdpa_call(ctx, ctx.variant, ctx["B"], ctx["H"], ctx["S"], ctx["S_k"], ctx["d_h"])
    return _with_patches(vendor, ctx, holder, call, router_notes=False, context=ctx.sdpa_context())


@upstream("Activation")
def _activation(vendor: Vendor, ctx: Context) -> Case:
    """Each activation as the vendor code applies it: deepencoder.py's quick_gelu (CLIP), torch's nn.GELU
    (SAM's MLPBlock), and transformers' ACT2FN["silu"] (the decoder's SwiGLU gate)."""
    from transformers.activations import ACT2FN

    kinds = {"quick_gelu": vendor["deepencoder"].quick_gelu, "gelu": nn.GELU(), "silu": ACT2FN["silu"]}
    if ctx.variant not in kinds:
        raise HarnessError(f"Activation: variant must be one of {list(kinds)}, got {ctx.variant!r}")
    holder = ctx.module(nn.Module)
    x = ctx.tensor(ctx["N"], ctx["F_in"])
    return _with_patches(vendor, ctx, holder, lambda: kinds[ctx.variant](x), router_notes=False)


@upstream("apply_rotary_pos_emb")
def _apply_rotary_pos_emb(vendor: Vendor, ctx: Context) -> Case:
    """transformers' own apply_rotary_pos_emb (the Llama module the vendor's attention comes from), on
    queries, keys and cos/sin tables shaped as the reference harness makes them."""
    holder = ctx.module(nn.Module)
    B, S, d_h = ctx["B"], ctx["S"], ctx["d_h"]
    q, k = ctx.tensor(B, ctx["H"], S, d_h), ctx.tensor(B, ctx["H_kv"], S, d_h)
    cos, sin = ctx.tensor(ctx["B_pos"], S, d_h), ctx.tensor(ctx["B_pos"], S, d_h)
    return _with_patches(vendor, ctx, holder, lambda: vendor.llama.apply_rotary_pos_emb(q, k, cos, sin),
                         router_notes=False)
