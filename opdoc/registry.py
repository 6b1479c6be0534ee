"""The name -> behaviour tables every stage shares: quantities, families, attention kernels, dtypes.

Each table is stated once here; specs' allowed values, the renderer's units, the checker's
measurements and tolerances, `opdoc eval`/`export` and the API all derive from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Dtype:
    bytes: int
    short: str  # as pages print it


DTYPES: dict[str, Dtype] = {
    "bfloat16": Dtype(2, "bf16"),
    "float16": Dtype(2, "fp16"),
    "float32": Dtype(4, "fp32"),
    "int64": Dtype(8, "int64"),
    "int32": Dtype(4, "int32"),
    "bool": Dtype(1, "bool"),
    "uint8": Dtype(1, "uint8"),
}
# Dtypes a model's weights and activations may have (the others are for index and mask tensors).
FLOAT_DTYPES = ("bfloat16", "float16", "float32")

# Families in the order the index and the navigation list them, for a model whose model.yaml declares
# none (a model names its own, e.g. one per vision encoder).
FAMILIES: dict[str, str] = {
    "language_model": "Language model",
    "vision": "Vision encoder",
    "projector": "Projector",
    "preprocessing": "Preprocessing",
    "model": "Whole model",
}

# Attention kernels: eager materialises the scores, fused never does.
KERNELS: dict[str, str] = {
    "eager": "eager attention (scores materialised)",
    "fused": "fused attention kernel",
}


@dataclass(frozen=True)
class Quantity:
    unit: Literal["flops", "params", "bytes"]
    meaning: str
    additive: bool = False  # a parent's value is the sum of its children's (times their counts)
    # The checker's measurement of it and that comparison's tolerance (0: exact); None: not measured.
    measured: str | None = None
    tolerance: float = 0.0
    why: str = ""


QUANTITIES: dict[str, Quantity] = {
    "tensor_flops": Quantity("flops", "tensor-core FLOPs of one forward (matrix products, 2 per multiply-add)",
                             True, "tensor_flops", why="exact: matrix products, 2 FLOPs per multiply-add (rules.py)"),
    "cuda_flops": Quantity("flops", "CUDA-core FLOPs of one forward (every other arithmetic op)", True,
                           "cuda_flops", why="exact: every other computing aten op, by its rule in rules.py"),
    "forward_flops": Quantity("flops", "tensor-core plus CUDA-core FLOPs of one forward"),
    "backward_flops": Quantity("flops", "FLOPs of one backward pass", True),
    "training_step_flops": Quantity("flops", "forward plus backward FLOPs"),
    "parameters": Quantity("params", "parameters held (all instances built)", True, "parameters",
                           why="exact: elements of the module's named_parameters"),
    "active_parameters": Quantity("params", "parameters a token touches"),
    "parameter_bytes": Quantity("bytes", "bytes of the parameters", True, "parameter_bytes",
                                why="exact: elements times element size of the named_parameters"),
    "gradient_bytes": Quantity("bytes", "bytes of the gradients (parameters' dtype)"),
    "adamw_bytes": Quantity("bytes", "AdamW state bytes (two fp32 moments per parameter)"),
    "training_bytes": Quantity("bytes", "parameters, gradients, AdamW states and activations"),
    "activation_bytes": Quantity("bytes", "bytes of every intermediate and output tensor of one forward", True,
                                 "activation_bytes",
                                 why="exact: bytes of every storage the forward creates; the spec's "
                                     "activation_bytes plus its KV cache, which the forward also creates"),
    "kv_cache_bytes": Quantity("bytes", "bytes of the KV cache held after the forward", True, "kv_cache_bytes",
                               why="exact: bytes of the key and value tensors the returned cache holds"),
    "io_read_bytes": Quantity("bytes", "bytes read, every op reading its inputs (unfused upper bound)", True,
                              "io_read_bytes", why="exact: every tensor input of every op, read once (unfused bound)"),
    "io_write_bytes": Quantity("bytes", "bytes written, every op writing its outputs (unfused upper bound)", True,
                               "io_write_bytes", why="exact: every tensor output of every op, written once"),
    "io_bytes": Quantity("bytes", "bytes read plus written (unfused upper bound)"),
    "peak": Quantity("bytes", "most activation bytes live at once, at the model's attention kernel", False,
                     "peak_bytes", why="exact: most activation bytes live at once, as the tracker frees "
                                       "storages; the kernel that ran is noted beside it"),
    "peak_eager": Quantity("bytes", "peak activation bytes with the eager attention kernel"),
    "peak_fused": Quantity("bytes", "peak activation bytes with the fused attention kernel"),
}

ADDITIVE = tuple(name for name, q in QUANTITIES.items() if q.additive)
UNITS = {name: q.unit for name, q in QUANTITIES.items()}
