"""Reference modules of the building blocks that PyTorch has no class for, in rows and features."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from opdoc.models.deepseek_ocr.deepencoder import quick_gelu

# The activations DeepSeek-OCR's MLPs apply, by the name its configurations use (hidden_act).
ACTIVATIONS = {
    "silu": F.silu,  # the language model's SwiGLU gate (ACT2FN["silu"])
    "gelu": F.gelu,  # SAM's nn.GELU(): the exact erf form
    "quick_gelu": quick_gelu,  # CLIP's x * sigmoid(1.702 x), three elementwise kernels
}


class Activation(nn.Module):
    """One elementwise activation, chosen by name; no parameters."""

    def __init__(self, kind: str = "silu") -> None:
        super().__init__()
        if kind not in ACTIVATIONS:
            raise ValueError(f"unknown activation {kind!r}; one of {', '.join(ACTIVATIONS)}")
        self.kind = kind

    def forward(self, x: Tensor) -> Tensor:
        return ACTIVATIONS[self.kind](x)
